"""The real artifacts of `make export`; `python -m export` runs first if they are missing, so
these tests never skip silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def artifacts() -> Path:
    from export.ensure import ensure_exported

    return ensure_exported()


@pytest.fixture(scope="session")
def report(artifacts: Path) -> dict:
    return json.loads((artifacts / "export_report.json").read_text())


@pytest.fixture(scope="session")
def split(artifacts: Path):
    from export.texts import load_texts, split_texts

    return split_texts(load_texts(artifacts))


@pytest.fixture(scope="session")
def gate_texts(split) -> list[str]:
    """Unseen texts: the held-out catalog slice, then the generic sentences."""
    return split.gate


@pytest.fixture(scope="session")
def teacher(gate_texts: list[str]) -> np.ndarray:
    from export.measure import teacher_embeddings

    return teacher_embeddings(gate_texts)
