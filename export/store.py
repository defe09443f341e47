"""Step 6: publish variant folders into the BentoML model store with a sha256 manifest.

BENTOML_HOME defaults to the project's git-ignored `bentoml_home/` (as the Makefile sets it).
Publishing the same files again reuses the latest tag instead of adding an identical version.
A version is built in a staging store beside the real one and renamed in whole, so a kill -9
of `make export` never leaves a half-copied version nor a `latest` naming one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from rec_models.serving.store import sha256_map, verify_files

ROOT = Path(__file__).resolve().parent.parent
STAGING_PREFIX = ".adrec-publish-"  # beside models/ in BENTOML_HOME
LIBRARIES = (
    "onnx",
    "onnxruntime",
    "optimum",
    "optimum-onnx",
    "transformers",
    "torch",
    "tokenizers",
)

__all__ = ["library_versions", "publish", "unpublish", "verify"]


def _bentoml():
    os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
    import bentoml

    return bentoml


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def _store_safe(value: Any) -> Any:
    """BentoML metadata takes no None: drop None entries, recursively."""
    if isinstance(value, dict):
        return {str(k): _store_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_store_safe(v) for v in value if v is not None]
    return value


def publish(
    variant_dir: Path,
    name: str,
    metadata: dict[str, Any],
    version: str | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """Copy every file of `variant_dir` into a new store model `name`; returns its tag
    ("name:version"). The metadata gets `sha256` {file: hex} and `libraries` {package: version}.
    `version`: the version string (default: one BentoML draws); `labels`: the model's labels."""
    bentoml = _bentoml()
    variant_dir = Path(variant_dir)
    digests = sha256_map(variant_dir)
    if not digests:
        raise ValueError(f"{variant_dir}: nothing to publish")
    try:
        latest = bentoml.models.get(f"{name}:latest")
        if latest.info.metadata.get("sha256") == digests:
            return str(latest.tag)  # same files: no new version
    except bentoml.exceptions.NotFound:
        pass
    meta = _store_safe({**metadata, "sha256": digests, "libraries": library_versions()})
    tag = f"{name}:{version}" if version else name
    store = models_dir()
    with _staging_store(store) as staged:
        from bentoml._internal.models.model import ModelStore

        with bentoml.models.create(
            tag, metadata=meta, labels=labels, _model_store=ModelStore(staged)
        ) as model:
            for rel in digests:
                dest = Path(model.path) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(variant_dir / rel, dest)
        built = staged / model.tag.name / model.tag.version
        verify(built, digests)
        _rename_in(built, store, model.tag.name, model.tag.version)
    return str(model.tag)


def models_dir() -> Path:
    """The model store's folder ($BENTOML_HOME/models), links resolved: a test server's own
    BENTOML_HOME links its models/ to the shared store."""
    return Path(os.path.realpath(Path(os.environ["BENTOML_HOME"]) / "models"))


@contextmanager
def _staging_store(store: Path) -> Iterator[Path]:
    """A throwaway model store beside `store` (same file system: the finished version is
    renamed in), outside models/ (BentoML takes every folder there for a model). Those of
    publishes killed earlier (their process gone) are removed first."""
    for old in store.parent.glob(f"{STAGING_PREFIX}*"):
        pid = old.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    store.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=store.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rename_in(built: Path, store: Path, name: str, version: str) -> None:
    """The finished version folder into the store in one rename, then `latest` pointed at it
    by another: a kill at any moment leaves the store with or without the whole version, and
    `latest` naming the old version or the new one (BentoML itself copies the files into the
    store folder by folder and rewrites `latest` in place)."""
    (store / name).mkdir(exist_ok=True)
    os.rename(built, store / name / version)  # fails rather than merge into an existing one
    latest = store / name / "latest"
    tmp = store / name / f".latest-{os.getpid()}"
    tmp.write_text(version)
    os.replace(tmp, latest)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def verify(model_dir: Path, sha256: dict[str, str]) -> None:
    """ValueError on any missing or modified file (see rec_models.serving.store.verify_files)."""
    verify_files(model_dir, sha256)


def unpublish(name: str) -> int:
    """Delete every version of store model `name` (a variant that failed its gate must not be
    served from an older version); returns how many were deleted."""
    bentoml = _bentoml()
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name)
    except NotFound:  # never published in this store
        return 0
    for model in models:
        bentoml.models.delete(model.tag)
    return len(models)
