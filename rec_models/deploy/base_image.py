"""The base image, made here: no registry can be reached, Debian's package mirror can.

debootstrap writes a minimal Debian bookworm root filesystem with Debian's own python3.11; it is
packed into a tarball under .cache/container/ and imported with `podman import`. The tarball and
the image tag are keyed by a hash of the recipe, so a changed recipe makes a new base and an
unchanged one is never rebuilt (the tarball survives `podman system reset`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .tools import CACHE, ContainerError, require, run, stream


@dataclass(frozen=True)
class BaseRecipe:
    suite: str = "bookworm"  # Debian 12: python3 is 3.11, the project's Python
    variant: str = "minbase"  # essential packages + apt; no init, no docs
    # python3-venv: the image's venv; curl: the HEALTHCHECK; ca-certificates: TLS for the app.
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates", "curl")
    mirror: str = "http://deb.debian.org/debian"
    # Removed from the root filesystem before packing: caches that only cost space.
    prune: tuple[str, ...] = field(
        default=(
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/info",
        )
    )

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def tag(self) -> str:
        return f"localhost/adrec-base:{self.key()}"

    def tarball(self) -> Path:
        return CACHE / f"base-{self.key()}.tar"


def image_exists(tag: str) -> bool:
    return subprocess.run(["podman", "image", "exists", tag]).returncode == 0


def make_rootfs_tarball(recipe: BaseRecipe) -> Path:
    """debootstrap into a scratch folder, prune, pack; the tarball appears only when complete."""
    require("debootstrap")
    target = recipe.tarball()
    rootfs = target.with_suffix(".rootfs")
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    what = f"{recipe.suite} ({recipe.variant})"
    print(f"base image: debootstrap {what} into {rootfs} (takes minutes)", flush=True)
    stream(
        [
            "debootstrap",
            f"--variant={recipe.variant}",
            f"--include={','.join(recipe.packages)}",
            recipe.suite,
            str(rootfs),
            recipe.mirror,
        ],
        "debootstrap of the base root filesystem",
        CACHE / "logs" / "debootstrap.log",
        quiet=True,  # hundreds of lines; the log keeps them
    )
    for sub in recipe.prune:
        folder = rootfs / sub
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    partial = target.with_suffix(".tar.partial")
    run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], "packing the base root filesystem")
    partial.rename(target)
    shutil.rmtree(rootfs)
    return target


def ensure_base_image(recipe: BaseRecipe | None = None) -> str:
    """The tag of the local base image, importing (and first making) it when missing."""
    recipe = recipe or BaseRecipe()
    require("podman")
    tag = recipe.tag()
    if image_exists(tag):
        return tag
    tarball = recipe.tarball()
    if not tarball.is_file():
        make_rootfs_tarball(recipe)
    print(f"base image: podman import {tarball.name} as {tag}", flush=True)
    run(
        ["podman", "import", "--change", 'CMD ["/bin/bash"]', str(tarball), tag],
        "importing the base image",
    )
    if not image_exists(tag):
        raise ContainerError(f"podman import reported success but {tag} does not exist")
    return tag
