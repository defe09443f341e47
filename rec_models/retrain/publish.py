"""All or nothing: the retrained artifacts replace the old ones and the store gains a version,
or neither changes.

Everything is built in a staging folder inside artifacts/ (same file system, so a rename is
atomic). Promotion moves each replaced artifact aside into a backup folder, then the staged
one into place; the store version is created last (BentoML writes a model into a temporary
folder and renames it in when the `create` block ends). Any failure on the way puts the backup
back and deletes the version if it was created, so artifacts/ and the store stay as they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

# What make retrain rewrites in artifacts/ (onnx/scorer beside them); the encoder variants,
# the export report and the event log are left alone.
REPLACED = (
    "metrics.json",
    "report.md",
    "reliability.png",
    "models",
    "texts.json",
    "train_config.json",
    "logged.csv",
    "onnx/scorer",
)


def staging_dir(artifacts: Path) -> Path:
    artifacts.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".retrain-", dir=artifacts))


def _swap_in(staging: Path, artifacts: Path, backup: Path) -> list[str]:
    """Move the old artifacts into `backup` and the staged ones in; returns what was moved."""
    moved: list[str] = []
    for rel in REPLACED:
        dest, new = artifacts / rel, staging / rel
        if dest.exists():
            (backup / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(dest, backup / rel)
        moved.append(rel)  # from here on, restoring must look at it
        if new.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(new, dest)
    return moved


def _restore(artifacts: Path, backup: Path, moved: list[str]) -> None:
    for rel in reversed(moved):
        dest, old = artifacts / rel, backup / rel
        if dest.is_dir():
            shutil.rmtree(dest)
        elif dest.exists():
            dest.unlink()
        if old.exists():
            os.replace(old, dest)


def promote_and_publish(staging: Path, artifacts: Path, publish: Callable[[], str]) -> str:
    """Swap the staged artifacts in, then call `publish` (which adds the store version and
    returns its tag); on any failure, artifacts/ is put back as it was and the error re-raised."""
    backup = Path(tempfile.mkdtemp(prefix=".retrain-old-", dir=artifacts))
    moved: list[str] = []
    try:
        moved = _swap_in(staging, artifacts, backup)
        return publish()
    except BaseException:
        _restore(artifacts, backup, moved)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def publish_scorer(
    scorer_dir: Path, metadata: dict, labels: dict[str, str], version: str, name: str
) -> str:
    """The scorer bundle as store version `name:version` (sha256 manifest verified); a version
    created but failing verification is deleted again."""
    import bentoml

    from export.store import publish

    try:
        return publish(scorer_dir, name, metadata, version=version, labels=labels)
    except BaseException:
        with contextlib.suppress(bentoml.exceptions.NotFound):
            bentoml.models.delete(f"{name}:{version}")
        raise
