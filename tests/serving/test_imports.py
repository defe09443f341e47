"""The serving set stays free of torch and transformers (the Bento and its image carry neither)."""

from __future__ import annotations

import subprocess
import sys

from rec_models.config import ROOT

FORBIDDEN = ("torch", "transformers", "optimum", "sentence_transformers")
MODULES = [
    "service",
    "rec_models.serving.batcher",
    "rec_models.serving.bundle",
    "rec_models.serving.core",
    "rec_models.serving.errors",
    "rec_models.serving.feedback",
    "rec_models.serving.feedback_routes",
    "rec_models.serving.index",
    "rec_models.serving.loading",
    "rec_models.serving.metrics",
    "rec_models.serving.oip.codecs",
    "rec_models.serving.oip.grpc_server",
    "rec_models.serving.oip.protocol",
    "rec_models.serving.oip.rest",
    "rec_models.serving.runtime",
    "rec_models.serving.schemas",
    "rec_models.serving.scorers",
    "rec_models.serving.settings",
    "rec_models.serving.towers",
    "rec_models.serving.web",
    "rec_models.versions",
]


def test_service_imports_neither_torch_nor_transformers():
    code = (
        "import importlib, sys\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "import rec_models.serving.index as ix, numpy as np\n"
        "ix.AnnIndex(np.random.rand(64, 4).astype('float32'), nlist=4)\n"  # faiss loaded too
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "heavy = sorted(m for m in ('onnxruntime',) if m in sys.modules)\n"
        "print('forbidden', bad, 'heavy', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "forbidden [] heavy []" in out.stdout, out.stdout  # onnxruntime waits for __init__
