"""Suite-wide defaults, so plain `pytest` behaves like `make test`."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The model store `make export` publishes to; set before any test imports bentoml.
os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
