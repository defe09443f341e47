"""The build context of the image: the Bento, its models, a wheelhouse and the Dockerfile.

The Dockerfile is BentoML's own (base.j2, rendered by BentoML's generator from the Bento's
bento.yaml: user, BENTO_PATH, the bentofile's envs, entrypoint) with `Dockerfile.j2` overriding
its Python set-up, the ports and the health check. The bentofile itself stays untouched: the local
base image and the template are handed to the generator here. (`bentoml._internal` is pinned by
bentoml==1.4.40.)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import attrs

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


def render_dockerfile(docker, conda, bento_fs: Path, base_image: str) -> str:
    """The image's Dockerfile from a Bento's DockerOptions / CondaOptions, FROM `base_image`.

    BentoML's generator with `dockerfile_template` would do the same, but only accepts a template
    inside the working directory and outside hidden folders; this is its loading step, unrestricted.
    """
    from bentoml._internal.container import generate
    from jinja2.loaders import FileSystemLoader

    docker = attrs.evolve(
        docker,
        base_image=base_image,
        distro=None,  # the base image decides; BentoML would warn that these are ignored
        python_version=None,
        system_packages=None,
    )
    environment = generate.build_environment()
    base = environment.get_template("base.j2", globals=generate.J2_FUNCTION)
    paths = [*environment.loader.searchpath, str(TEMPLATE.parent)]
    ours = environment.overlay(loader=FileSystemLoader(paths, followlinks=True)).get_template(
        TEMPLATE.name, globals={"bento_base_template": base, **generate.J2_FUNCTION}
    )
    variables = generate.get_templates_variables(docker, conda, bento_fs, enable_buildkit=False)
    return ours.render(**variables, http_port=HTTP_PORT, grpc_port=GRPC_PORT)


def bento_dockerfile(bento: Path, base_image: str) -> str:
    """The image's Dockerfile for the built Bento folder `bento`."""
    info = bento_info(bento)
    return render_dockerfile(info.docker, info.conda, bento, base_image)


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
