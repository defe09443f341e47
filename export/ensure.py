"""For tests and scripts: make sure `make export` has run, running `python -m export` if not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def is_stale(artifacts: Path) -> bool:
    """No report or fp32 variant yet, or a `make train` ran after the last export."""
    report = artifacts / "export_report.json"
    if not report.is_file() or not (artifacts / "onnx" / "fp32").is_dir():
        return True
    inputs = [artifacts / name for name in ("texts.json", "metrics.json")]
    return any(p.is_file() and p.stat().st_mtime > report.stat().st_mtime for p in inputs)


def ensure_exported(artifacts: Path | None = None, timeout: float = 1800) -> Path:
    """The artifacts folder (default: $ADREC_ARTIFACTS, else <repo>/artifacts), with the encoder
    variants and the export report in it."""
    from rec_models.artifact_publish import recover

    artifacts = Path(artifacts or os.environ.get("ADREC_ARTIFACTS") or ROOT / "artifacts")
    recover(artifacts)  # never judge (or export) a half-published training run
    if is_stale(artifacts):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
        subprocess.run(
            [sys.executable, "-m", "export", "--artifacts", str(artifacts)],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=timeout,
        )
    return artifacts
