"""Run the HTTP service and the gRPC server together: `make serve`.

    python -m rec_models.serving.launch --port 3000 --grpc-port 8001

Children: `bentoml serve service:Recommender` (HTTP; BentoML's new-style services cannot serve
gRPC) and, when `rec_models/serving/grpc_server.py` exists, `python -m
rec_models.serving.grpc_server --host HOST --port GRPC_PORT` (the hook: `child_commands`).
Each child runs in its own process group; SIGINT/SIGTERM to the launcher stop them all, and one
child exiting stops the others, so they live and die together. BENTOML_HOME defaults to the
repository's bentoml_home/ (the model store `make export` fills).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: service.py, bentoml_home/
STOP_TIMEOUT_S = 20


def http_command(host: str, port: int, service: str = "service:Recommender") -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", service, "--host", host, "--port", str(port)]


def grpc_command(host: str, port: int) -> list[str] | None:
    """The gRPC server's command line, or None while the module does not exist."""
    if importlib.util.find_spec("rec_models.serving.grpc_server") is None:
        return None
    return [
        sys.executable,
        "-m",
        "rec_models.serving.grpc_server",
        "--host",
        host,
        "--port",
        str(port),
    ]


def child_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    commands = {"http": http_command(args.host, args.port, args.service)}
    grpc = None if args.no_grpc else grpc_command(args.host, args.grpc_port)
    if grpc is not None:
        commands["grpc"] = grpc
    return commands


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage analytics from a serving box
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # see service.py
    return env


def is_ready(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def stop_all(children: dict[str, subprocess.Popen[bytes]], sig: int = signal.SIGTERM) -> None:
    """Signal every child's process group, wait, and kill what is left after STOP_TIMEOUT_S."""
    for proc in children.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
    for proc in children.values():
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    env = child_env()
    children = {
        name: subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        for name, cmd in child_commands(args).items()
    }
    print(
        f"HTTP  http://{args.host}:{args.port}  (docs /, /readyz, /metrics, GET /info)", flush=True
    )
    if "grpc" in children:
        print(f"gRPC  {args.host}:{args.grpc_port}  (Open Inference Protocol v2)", flush=True)
    else:
        print(
            "gRPC  not started (--no-grpc, or rec_models.serving.grpc_server missing)", flush=True
        )
    code, announced = 0, False
    while not stop.wait(0.5):
        exited = {n: p.returncode for n, p in children.items() if p.poll() is not None}
        if exited:
            name, code = next(iter(exited.items()))
            print(f"{name} server exited with code {code}; stopping the others", flush=True)
            code = code or 1
            break
        if not announced and is_ready(args.host, args.port):
            print(f"ready: http://{args.host}:{args.port}", flush=True)
            announced = True
    stop_all(children, signal.SIGTERM)
    if received:
        print(f"stopped ({signal.Signals(received[0]).name})", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the recommender over HTTP and gRPC.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="HTTP port")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--no-grpc", action="store_true", help="HTTP only")
    parser.add_argument("--service", default="service:Recommender", help="or a Bento tag")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
