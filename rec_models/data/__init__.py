"""Data: the canonical Dataset, the built-in datasets and bring-your-own loading, splits."""

from __future__ import annotations

from pathlib import Path

from rec_models.config import ConfigError, DataConfig
from rec_models.data.custom import load_custom, save_canonical
from rec_models.data.events import rows_of
from rec_models.data.schema import Dataset, DataValidationError, validate_dataset

SOURCES = ("movielens", "obd", "synthetic", "custom")
# Where `python -m rec_models.train --dataset NAME` finds each built-in dataset (`make data`).
DEFAULT_PATHS = {
    "movielens": "data/ml-100k",
    "obd": "data/obd",
    "synthetic": "data/synthetic-ads",
}


def load_dataset(cfg: DataConfig) -> Dataset:
    """The dataset named by `data.source` at `data.path`, its rows read as `data.rows` says,
    plus the logged impressions of `data.logged` (rec_models/data/logged.py)."""
    ds = _load_source(cfg)
    if not cfg.logged:
        return ds
    from rec_models.data.logged import read_logged, with_logged

    return with_logged(ds, read_logged(cfg.logged), Path(cfg.logged).name)


def _load_source(cfg: DataConfig) -> Dataset:
    rows = rows_of(cfg)
    if cfg.source == "movielens":
        from rec_models.data.movielens import load_movielens_100k

        return load_movielens_100k(cfg.path, rows, cfg.positive_threshold)
    if cfg.source == "obd":
        from rec_models.data.obd import load_obd

        return load_obd(cfg.path, rows, cfg.positive_threshold)
    if cfg.source in ("custom", "synthetic"):
        return load_custom(cfg.path, None, rows, cfg.positive_threshold)
    raise ConfigError(f"config: unknown data.source '{cfg.source}': choose {', '.join(SOURCES)}")


__all__ = [
    "DataValidationError",
    "Dataset",
    "load_custom",
    "load_dataset",
    "save_canonical",
    "validate_dataset",
]
