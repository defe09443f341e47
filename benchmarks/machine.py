"""What machine a result came from: CPU, cores, instruction sets, library versions, load average.

The development machine is shared, so every result file records the 1-minute load average at its
start and end: a reader can see how noisy the numbers were.
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the repository
RESULTS = Path(__file__).resolve().parent / "results"
ARTIFACTS = Path(os.environ.get("ADREC_ARTIFACTS") or ROOT / "artifacts")  # as export/ensure.py
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")  # fmt: skip
PACKAGES = ("torch", "onnxruntime", "transformers", "optimum", "optimum-onnx",
            "sentence-transformers", "numpy", "faiss-cpu", "bentoml", "tokenizers",
            "tritonclient", "httpx")  # fmt: skip
THREADS = 2  # intra-op threads for every engine: the same setting for all


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags") and key not in out:
            out[key] = value.strip()
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def describe_machine() -> dict[str, Any]:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    mem_gb = None
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return {
        "cpu": info.get("model name", platform.processor()),
        "cores": len(os.sched_getaffinity(0)),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "versions": versions(),
        "threads": THREADS,
    }


class Run:
    """Start/end bookkeeping of one benchmark: machine, mode, load averages, wall time."""

    def __init__(self, name: str, full: bool) -> None:
        self.name, self.full = name, full
        self.started = time.time()
        self.load_start = load_average()

    def header(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "mode": "full" if self.full else "quick",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "machine": describe_machine(),
            "load_avg_1m": {"start": self.load_start, "end": load_average()},
            "seconds": round(time.time() - self.started, 1),
        }

    def save(self, results: dict[str, Any]) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.header() | results, indent=1, default=_jsonable) + "\n")
        os.replace(tmp, path)
        return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_result(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


PINNED: set[str] = set()  # variables pin_threads set (the service subprocess does not get them)


def pin_threads() -> None:
    """Same thread count for numpy/torch/ORT before they load (OpenMP / MKL read these)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if var not in os.environ:
            os.environ[var] = str(THREADS)
            PINNED.add(var)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
