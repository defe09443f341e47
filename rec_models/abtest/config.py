"""The `[ab]` configuration: arms with traffic shares, stable assignment, the analysis plan.

    [ab]
    experiment = "scorer-v2"   # salts the assignment hash: a new experiment reshuffles users
    control = "A"
    [[ab.variants]]
    name = "A"
    share = 0.5
    model_version = "1"        # optional: the scorer version this arm serves
    [[ab.variants]]
    name = "B"
    share = 0.5
    model_version = "2"
    encoder_variant = "int8"   # optional: the encoder variant this arm serves
    [ab.plan]                  # fixed before the experiment starts (no peeking)
    metric = "ctr"             # or "cvr"
    baseline = 0.05            # the control arm's expected rate
    mde = 0.10                 # minimum detectable effect...
    relative = true            # ...relative to the baseline (+10%); false: absolute (+0.10)
    alpha = 0.05               # two-sided
    power = 0.8
    # design_effect = 1.5      # optional; default: estimated from the log (see report.py)

A user lands in the arm where a uniform number drawn from blake2b(experiment, user key) falls in
the cumulative shares: stable across requests, restarts and workers, independent between
experiments. Every error names the key at fault.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

METRICS = ("ctr", "cvr")


@dataclass(frozen=True)
class Arm:
    name: str
    share: float
    model_version: str | None = None
    encoder_variant: str | None = None


@dataclass(frozen=True)
class Experiment:
    name: str
    arms: tuple[Arm, ...]
    control: str

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ab.experiment: must not be empty")
        if not self.arms:
            raise ValueError("ab.variants: at least one variant")
        names = [a.name for a in self.arms]
        for i, arm in enumerate(self.arms):
            if not isinstance(arm.name, str) or not arm.name:
                raise ValueError(f"ab.variants[{i}].name: must be a non-empty string")
            if arm.name in names[:i]:
                raise ValueError(f"ab.variants[{i}].name: {arm.name!r} appears twice")
            if not _number(arm.share) or not 0 < arm.share <= 1:
                raise ValueError(f"ab.variants[{i}].share: must be in (0, 1], got {arm.share!r}")
        total = math.fsum(a.share for a in self.arms)
        if abs(total - 1) > 1e-6:
            raise ValueError(f"ab.variants: shares must sum to 1, they sum to {total:g}")
        if self.control not in names:
            raise ValueError(f"ab.control: {self.control!r} is not a variant ({', '.join(names)})")

    @property
    def shares(self) -> dict[str, float]:
        return {a.name: a.share for a in self.arms}

    def assign(self, user_key: str) -> Arm:
        """The arm of a user ('u:<id>' or 'p:<fingerprint>'): the same answer every time."""
        digest = hashlib.blake2b(f"{self.name}\x00{user_key}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        cumulative = 0.0
        for arm in self.arms:
            cumulative += arm.share
            if u < cumulative:
                return arm
        return self.arms[-1]  # shares summing to 1 - 1e-7 leave a sliver: it goes to the last


@dataclass(frozen=True)
class Plan:
    baseline: float
    mde: float
    metric: str = "ctr"
    relative: bool = False
    alpha: float = 0.05
    power: float = 0.8
    design_effect: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"plan.metric: {self.metric!r} (valid: {', '.join(METRICS)})")
        checks = {
            "baseline": (self.baseline, 0, 1),
            "mde": (self.mde, 0, math.inf),
            "alpha": (self.alpha, 0, 0.5),
            "power": (self.power, 0.5, 1),
        }
        for name, (value, lo, hi) in checks.items():
            if not _number(value) or not lo < value < hi:
                raise ValueError(f"plan.{name}: must lie in ({lo:g}, {hi:g}), got {value!r}")
        if not isinstance(self.relative, bool):
            raise ValueError(f"plan.relative: must be true or false, got {self.relative!r}")
        if self.design_effect is not None and (
            not _number(self.design_effect) or self.design_effect < 1
        ):
            raise ValueError(f"plan.design_effect: must be >= 1, got {self.design_effect!r}")
        if not 0 < self.target < 1:
            raise ValueError(
                f"plan.mde: baseline {self.baseline:g} + effect {self.effect:g} leaves (0, 1)"
            )

    @property
    def effect(self) -> float:
        """The minimum detectable effect in absolute terms."""
        return self.baseline * self.mde if self.relative else self.mde

    @property
    def target(self) -> float:
        return self.baseline + self.effect


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table")
    known = {f.name for f in fields(cls)}
    for key in table:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (valid: {', '.join(sorted(known))})")
    try:
        return cls(**table)
    except TypeError as exc:  # a required key is missing
        raise ValueError(f"{where}: {exc}") from None


def parse_ab(table: dict[str, Any]) -> tuple[Experiment | None, Plan | None]:
    """The [ab] table -> (experiment, plan); either may be absent."""
    allowed = {"experiment", "control", "variants", "plan"}
    for key in table:
        if key not in allowed:
            raise ValueError(f"ab.{key}: unknown key (valid: {', '.join(sorted(allowed))})")
    plan = _build(Plan, table["plan"], "ab.plan") if "plan" in table else None
    experiment = None
    if "variants" in table:
        variants = table["variants"]
        if not isinstance(variants, list):
            raise ValueError("ab.variants: must be an array of tables ([[ab.variants]])")
        arms = tuple(_build(Arm, v, f"ab.variants[{i}]") for i, v in enumerate(variants))
        control = table.get("control", arms[0].name if arms else "")
        experiment = Experiment(str(table.get("experiment", "default")), arms, control)
    return experiment, plan


def load_ab(path: str | Path) -> tuple[Experiment | None, Plan | None]:
    """The [ab] table of a TOML file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    if "ab" not in data:
        raise ValueError(f"{path}: no [ab] table")
    return parse_ab(data["ab"])
