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


def verify_files(folder: str | os.PathLike[str], expected: dict[str, str]) -> None:
    """ValueError naming the first file that is missing or whose sha256 differs."""
    if not expected:
        raise ValueError(f"{folder}: empty sha256 manifest, nothing to verify")
    root = Path(folder)
    for name, digest in sorted(expected.items()):
        path = root / name
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
