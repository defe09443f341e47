"""The container from the command line.

    python -m rec_models.deploy build [--gpu] [--version V]   # make container [GPU=1]
    python -m rec_models.deploy run [--gpu] [--port 3000] [--grpc-port 8001]
    python -m rec_models.deploy base                          # only the base image

`run` starts the image, waits for /readyz, prints the start-to-ready time, and stops the
container on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from rec_models.config import ROOT

os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))  # before bentoml is imported
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from .base_image import ensure_base_image
from .tools import ContainerError


def build(args: argparse.Namespace) -> None:
    from .image import build_image, describe

    print(describe(build_image(args.version, gpu=args.gpu)))


def serve(args: argparse.Namespace) -> None:
    from .image import image_tag
    from .probe import wait_ready
    from .runner import start

    tag = image_tag(args.version or "latest", args.gpu)  # default: the last `make container`
    container = start(tag, args.port, args.grpc_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(f"container {container.cid[:12]} starting: {tag}", flush=True)
        seconds = wait_ready(container, args.timeout)
        grpc = f"127.0.0.1:{args.grpc_port}"
        print(f"ready in {seconds:.1f} s: {container.url} (HTTP), {grpc} (gRPC)")
        print("Ctrl-C stops it", flush=True)
        while container.running():
            time.sleep(1)
        print(container.logs()[-4000:])
        raise ContainerError("the container exited")
    except KeyboardInterrupt:
        pass
    finally:
        container.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rec_models.deploy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image (make container)")
    r = sub.add_parser("run", help="start the image, wait until ready, stop on Ctrl-C")
    sub.add_parser("base", help="make and import only the base image")
    for p in (b, r):
        p.add_argument("--gpu", action="store_true", help="onnxruntime-gpu instead of onnxruntime")
        p.add_argument(
            "--version",
            help="build: the Bento version (default: the short git HEAD); "
            "run: the image's (default: latest, the last build)",
        )
    r.add_argument("--port", type=int, default=3000, help="host port of HTTP (127.0.0.1)")
    r.add_argument("--grpc-port", type=int, default=8001, help="host port of gRPC (127.0.0.1)")
    r.add_argument("--timeout", type=float, default=900, help="seconds to wait for /readyz")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args)
        elif args.command == "run":
            serve(args)
        else:
            print(ensure_base_image())
    except ContainerError as e:
        print(f"container: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
