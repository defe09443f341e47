"""Data: the canonical Dataset, MovieLens-100K and bring-your-own loading, evaluation splits."""

from __future__ import annotations

from rec_models.config import DataConfig
from rec_models.data.schema import (
    Dataset,
    DataValidationError,
    load_custom,
    save_canonical,
    validate_dataset,
)

SOURCES = ("movielens", "custom")


def load_dataset(cfg: DataConfig) -> Dataset:
    """The dataset named by `data.source` ("movielens" or "custom") at `data.path`."""
    if cfg.source == "movielens":
        from rec_models.data.movielens import load_movielens_100k

        return load_movielens_100k(cfg.path)
    if cfg.source == "custom":
        return load_custom(cfg.path)
    raise ValueError(f"unknown data.source '{cfg.source}': choose one of {', '.join(SOURCES)}")


__all__ = [
    "DataValidationError",
    "Dataset",
    "load_custom",
    "load_dataset",
    "save_canonical",
    "validate_dataset",
]
