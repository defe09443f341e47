"""The wheels the image installs: fetched (or built) once from the package index, then offline.

A wheelhouse is keyed by a hash of the image's requirements and of constraints.txt, so the same
serving set is downloaded once; the image build itself then installs with `--no-index`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from pathlib import Path

from rec_models.config import ROOT

from .tools import CACHE, ContainerError, stream

CONSTRAINTS = ROOT / "constraints.txt"
# Never in the CPU image: the training stack, and CUDA libraries (onnxruntime-gpu, the nvidia-*
# wheels). nvidia-ml-py, the small NVML binding bentoml depends on, holds no CUDA library.
FORBIDDEN = re.compile(r"^(torch\w*|transformers|optimum|onnxruntime-gpu|nvidia-(?!ml-py-))")


def wheelhouse_key(requirements: str) -> str:
    digest = hashlib.sha256(requirements.encode())
    digest.update(CONSTRAINTS.read_bytes())
    return digest.hexdigest()[:12]


def ensure_wheelhouse(requirements: str) -> Path:
    """A folder of wheels for `requirements` (pinned by constraints.txt): complete or absent."""
    folder = CACHE / f"wheels-{wheelhouse_key(requirements)}"
    if (folder / ".complete").is_file():
        print(f"wheelhouse: reusing {folder}", flush=True)
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    reqs = folder / "requirements.txt"
    reqs.write_text(requirements)
    print(f"wheelhouse: pip wheel into {folder}", flush=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(folder)]
    stream(
        [*pip, "-r", str(reqs), "-c", str(CONSTRAINTS)],
        "pip wheel of the image's requirements",
        CACHE / "logs" / "wheelhouse.log",
    )
    if not any(folder.glob("*.whl")):
        raise ContainerError(f"pip wheel put no wheels into {folder}")
    (folder / ".complete").touch()
    return folder


def forbidden_wheels(folder: Path) -> list[str]:
    """Wheels of the training stack or CUDA that a CPU image must not carry."""
    names = [p.name.lower().replace("_", "-") for p in folder.glob("*.whl")]
    return sorted(n for n in names if FORBIDDEN.match(n))
