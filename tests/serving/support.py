"""Helpers of the serving tests: where the store's models lie."""

from __future__ import annotations

from pathlib import Path

from harness import BENTOML_HOME, free_port, have_models, port_open

__all__ = ["BENTOML_HOME", "free_port", "have_models", "port_open", "store_model_path"]


def store_model_path(name: str) -> Path:
    """Folder of the latest version of a store model (BentoML layout: models/<name>/latest)."""
    folder = BENTOML_HOME / "models" / name
    return folder / (folder / "latest").read_text().strip()
