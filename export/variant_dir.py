"""The encoder variant folder (`model.onnx`, `tokenizer.json`, `config.json`) and its atomic build.

Every variant is built in a temporary folder beside its target and renamed into place only after
its gate passes, so `artifacts/onnx/<variant>` is either a complete, gated variant or absent.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
VARIANT_FILES = (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)


def read_config(variant_dir: Path) -> dict[str, Any]:
    return json.loads((Path(variant_dir) / CONFIG_FILE).read_text())


def write_config(variant_dir: Path, config: dict[str, Any]) -> None:
    (Path(variant_dir) / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def update_config(variant_dir: Path, **changes: Any) -> dict[str, Any]:
    config = {**read_config(variant_dir), **changes}
    write_config(variant_dir, config)
    return config


def is_complete(variant_dir: Path) -> bool:
    return all((Path(variant_dir) / name).is_file() for name in VARIANT_FILES)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_stats(model_path: Path) -> dict[str, Any]:
    """Parameter count (initializer elements) and op histogram of an ONNX graph."""
    import onnx

    model = onnx.load(str(model_path))
    params = sum(int(_numel(t.dims)) for t in model.graph.initializer)
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"parameters": params, "ops": ops, "opset": opset}


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `target`; on success it replaces `target` atomically,
    on any exception it is deleted and `target` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the published folder is not
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(new: Path, target: Path) -> None:
    """Put folder `new` in the place of `target` in one step: a kill -9 at any moment leaves
    either the old or the new folder there, never none. A rename cannot replace a non-empty
    folder, so the two are exchanged (renameat2 RENAME_EXCHANGE) and the old one, now at `new`,
    deleted. Where the file system cannot exchange, two renames, with a short window."""
    if target.exists() and _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)
        return
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths `a` and `b` atomically; False where unsupported (not Linux, old kernel or C
    library, a file system without RENAME_EXCHANGE)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextmanager
def scratch(near: Path, prefix: str = ".work-") -> Iterator[Path]:
    """A throwaway folder beside `near` (same file system), deleted afterwards."""
    Path(near).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=near))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
