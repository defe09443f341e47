"""Artifacts in the BentoML model store, read-only at serving time, verified by sha256.

Export (`export/store.py`) saves each encoder variant as `adrec-encoder-<variant>` (underscores
become dashes) and the scorer bundle as `adrec-scorer`, with a `sha256` map {file name: hex} in
the model's metadata; services load `<name>:latest` and verify the files before use.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

ENCODER_PREFIX = "adrec-encoder-"
SCORER_NAME = "adrec-scorer"


def encoder_model_name(variant: str) -> str:
    """'distilled_int8' -> 'adrec-encoder-distilled-int8'."""
    return ENCODER_PREFIX + variant.replace("_", "-")


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_map(folder: str | os.PathLike[str]) -> dict[str, str]:
    """{relative file name: sha256 hex} of every file under `folder`."""
    root = Path(folder)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# BentoML's own record of a store entry (its metadata holds the manifest): not in the manifest.
STORE_RECORD = "model.yaml"


def manifest_path(root: Path, name: object) -> Path:
    """The file a manifest entry names, refused when it could lie outside `root` (an absolute
    path, '..', or a link that leads out)."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise ValueError(f"{root}: sha256 manifest entry {name!r} is not a file name")
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"{root}: sha256 manifest entry {name!r} points outside the folder")
    path = root / name
    if path.exists() and not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{path}: a link that leads outside {root}")
    return path


def verify_files(folder: str | os.PathLike[str], expected: dict[str, str]) -> None:
    """ValueError naming the first file that is missing, whose sha256 differs, that the
    manifest does not list, or that lies (or links) outside the folder."""
    if not expected:
        raise ValueError(f"{folder}: empty sha256 manifest, nothing to verify")
    root = Path(folder)
    listed = {manifest_path(root, name): digest for name, digest in sorted(expected.items())}
    for path in sorted(root.rglob("*")):
        if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
            raise ValueError(f"{path}: a link that leads outside {root}")
        unlisted = path not in listed and path.relative_to(root).as_posix() != STORE_RECORD
        if path.is_file() and unlisted:
            raise ValueError(f"{path}: not in the sha256 manifest (an unexpected file)")
    for path, digest in listed.items():
        if not path.is_file():
            raise ValueError(f"{path}: missing (listed in the sha256 manifest)")
        actual = sha256_file(path)
        if actual != digest:
            raise ValueError(
                f"{path}: sha256 {actual[:12]}... does not match the manifest's "
                f"{digest[:12]}...: the artifact is corrupted or was modified"
            )


def load_store_model(tag: str, verify: bool = True) -> tuple[Path, dict[str, Any]]:
    """(folder, metadata) of a model store entry such as 'adrec-encoder-int8:latest', its files
    checked against the sha256 map in its metadata."""
    import bentoml

    model = bentoml.models.get(tag)
    metadata = dict(model.info.metadata)
    path = Path(model.path)
    if verify:
        verify_files(path, metadata.get("sha256") or {})
    return path, metadata
