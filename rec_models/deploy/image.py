"""`make container`: the OCI image of the Bento, built offline with podman.

Steps, each cached: the Bento (bento.py), the local base image (base_image.py), the wheelhouse of
the serving set (wheelhouse.py); then a build context (context.py) and `podman build --network
none`, so nothing in the image comes from the network at build time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .base_image import ensure_base_image
from .bento import NAME, ensure_bento
from .context import image_requirements, make_context
from .runner import rlimit_flags
from .tools import CACHE, ContainerError, require, run, stream
from .wheelhouse import ensure_wheelhouse, forbidden_wheels


@dataclass
class ImageBuild:
    tag: str
    bento: str
    base: str
    gpu: bool
    size_bytes: int
    build_s: float


def image_tag(version: str, gpu: bool) -> str:
    return f"localhost/{NAME}:{version}{'-gpu' if gpu else ''}"


def image_id(tag: str) -> str | None:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
    )
    return out.stdout.strip() or None if out.returncode == 0 else None


def image_size(tag: str) -> int:
    return int(run(["podman", "image", "inspect", "--format", "{{.Size}}", tag], "size").strip())


def build_image(version: str | None = None, gpu: bool = False) -> ImageBuild:
    require("podman", "runc")
    started = time.monotonic()
    bento = ensure_bento(version)
    version = bento.name
    base = ensure_base_image()
    requirements = image_requirements(
        (bento / "env" / "python" / "requirements.txt").read_text(), gpu
    )
    wheelhouse = ensure_wheelhouse(requirements)
    if not gpu and (bad := forbidden_wheels(wheelhouse)):
        raise ContainerError(f"the CPU image's wheelhouse holds {bad}: the serving set leaks")
    tag = image_tag(version, gpu)
    # Outside the repository: bentoml's unanchored include patterns ("service.py") would pick up
    # a copy of the Bento left inside it by an interrupted build.
    context = Path(tempfile.mkdtemp(prefix="adrec-image-"))
    previous = image_id(tag)
    try:
        dockerfile = make_context(bento, base, wheelhouse, requirements, context)
        print(f"image: podman build {tag} (offline)", flush=True)
        stream(
            ["podman", "build", "--format", "docker",  # docker format keeps HEALTHCHECK
             "--network", "none", *rlimit_flags(), "--layers=false",
             "-t", tag, "-t", f"localhost/{NAME}:latest{'-gpu' if gpu else ''}",
             "-f", str(dockerfile), str(context)],
            "podman build", CACHE / "logs" / f"build-{version}{'-gpu' if gpu else ''}.log",
        )  # fmt: skip
    finally:
        shutil.rmtree(context, ignore_errors=True)
    if previous and previous != image_id(tag):  # the replaced build would linger as <none>
        subprocess.run(["podman", "rmi", previous], capture_output=True)
    result = ImageBuild(tag, f"{NAME}:{version}", base, gpu, image_size(tag), 0.0)
    result.build_s = round(time.monotonic() - started, 1)
    record = CACHE / f"image-{version}{'-gpu' if gpu else ''}.json"
    record.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def describe(result: ImageBuild) -> str:
    kind = "GPU" if result.gpu else "CPU"
    return f"{result.tag}: {result.size_bytes / 1e6:,.0f} MB ({kind}), built in {result.build_s} s"


def remove_image(tag: str) -> None:
    subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)
