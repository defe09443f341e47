"""The build context of the image: the Bento, its models, a wheelhouse and the Dockerfile.

The Dockerfile is BentoML's own (base_v2.j2, with the variables BentoML's generator gives it
from the Bento's bento.yaml: user, BENTO_PATH, the bentofile's envs, entrypoint) with
`Dockerfile.j2` overriding its Python set-up, the ports and the health check. The bentofile
stays untouched (a `docker.dockerfile_template` there would turn the Bento into the old format).
`bentoml._internal` is pinned by bentoml==1.4.40.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .tools import ContainerError

TEMPLATE = Path(__file__).with_name("Dockerfile.j2")
HTTP_PORT, GRPC_PORT = 3000, 8001  # EXPOSEd by Dockerfile.j2: BentoML's and the OIP gRPC default
CPU_RUNTIME = "onnxruntime=="
# No onnxruntime-gpu 1.32 exists; its [cuda,cudnn] extras bring the CUDA/cuDNN libraries as wheels,
# so the GPU image needs no CUDA base image (only the host's driver).
GPU_RUNTIME = "onnxruntime-gpu[cuda,cudnn]==1.31.1"


def image_requirements(bento_requirements: str, gpu: bool) -> str:
    """The Bento's requirements.txt, with onnxruntime swapped for onnxruntime-gpu when `gpu`."""
    lines = bento_requirements.splitlines()
    runtime = [i for i, line in enumerate(lines) if line.strip().startswith(CPU_RUNTIME)]
    if len(runtime) != 1:
        raise ContainerError(
            f"requirements.txt: expected one '{CPU_RUNTIME}<version>' line, found {len(runtime)}"
        )
    if gpu:
        lines[runtime[0]] = GPU_RUNTIME
    return "\n".join(lines) + "\n"


def bento_info(bento: Path):
    from bentoml._internal.bento.bento import BaseBentoInfo

    with open(bento / "bento.yaml", "rb") as f:
        return BaseBentoInfo.from_yaml_file(f)


def render_dockerfile(envs: list, bento_fs: Path, base_image: str) -> str:
    """The image's Dockerfile: BentoML's base_v2.j2 (the template of a new-style Bento, as
    `bentoml containerize` renders it) extended by Dockerfile.j2, FROM `base_image`, with the
    Bento's runtime `envs`. BentoML's own Python set-up (`image.commands`: apt-get of a compiler
    and git; uv; the requirements from the index) is what Dockerfile.j2 replaces.
    """
    from _bentoml_impl.docker import get_templates_variables
    from bentoml._internal.bento.bento import ImageInfo
    from bentoml._internal.container import generate, split_envs_by_stage
    from jinja2.loaders import FileSystemLoader

    runtime, build_stage = split_envs_by_stage(envs)
    if build_stage:  # those need BuildKit secrets, which podman's build has no use for here
        raise ContainerError(f"build-stage envs are not supported: {[e.name for e in build_stage]}")
    environment = generate.build_environment()
    base = environment.get_template("base_v2.j2")
    paths = [*environment.loader.searchpath, str(TEMPLATE.parent)]
    ours = environment.overlay(loader=FileSystemLoader(paths, followlinks=True)).get_template(
        TEMPLATE.name, globals={"bento_base_template": base}
    )
    variables = get_templates_variables(
        ImageInfo(base_image=base_image), bento_fs, enable_buildkit=False, envs=runtime
    )
    return ours.render(**variables, http_port=HTTP_PORT, grpc_port=GRPC_PORT)


def bento_dockerfile(bento: Path, base_image: str) -> str:
    """The image's Dockerfile for the built Bento folder `bento`."""
    return render_dockerfile(list(bento_info(bento).envs), bento, base_image)


def copy_models(bento: Path, dest: Path) -> list[str]:
    """Copy the models the Bento references from the local store into `dest` (a store layout)."""
    from _bentoml_sdk.models import BentoModel

    tags = []
    for model in bento_info(bento).all_models:
        ref = BentoModel.from_info(model)
        if ref.stored is None:
            raise ContainerError(f"model {model.tag} is not in the local store: run `make export`")
        ref.resolve(dest)
        tags.append(str(model.tag))
    return tags


def link_tree(src: Path, dest: Path) -> None:
    """Hard-link (same file system) or copy the files of `src` into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and path.suffix == ".whl":
            try:
                os.link(path, dest / path.name)
            except OSError:
                shutil.copy2(path, dest / path.name)


def make_context(bento: Path, base_image: str, wheelhouse: Path, requirements: str, dest: Path):
    """Fill `dest` (new or empty) with everything `podman build` needs, offline."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(bento, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    copy_models(bento, dest / "models")
    (dest / "env" / "python" / "requirements.txt").write_text(requirements)
    link_tree(wheelhouse, dest / "wheelhouse")
    dockerfile = dest / "env" / "docker" / "Dockerfile"
    dockerfile.write_text(bento_dockerfile(bento, base_image))
    return dockerfile
