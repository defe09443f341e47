"""Online counts per A/B variant and model version, over the last hour and all time.

The SQLite writer keeps two small tables in the same transactions as the events themselves, so
the counts are exactly the committed log and every worker process sees the same numbers:
`counts_total` (one row per variant and model version) and `counts_minute` (one row per minute,
variant and model version, kept for `minute_counts_kept_s`). Reading them is a few indexed rows,
cheap enough for every `/stats` request and every Prometheus scrape.

An impression is counted in the minute its response was built, a click or a conversion in the
minute of its own timestamp. "Last hour" is the current minute and the 59 before it. CTR is
clicks / impressions, CVR conversions / clicks (a conversion needs a click on that impression).
`dropped` counts impressions the log shed under overload: they are not in the log at all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

WINDOW_MINUTES = 60


@dataclass(frozen=True)
class Counts:
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    dropped: int = 0

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def cvr(self) -> float | None:
        return self.conversions / self.clicks if self.clicks else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.impressions + other.impressions,
            self.clicks + other.clicks,
            self.conversions + other.conversions,
            self.dropped + other.dropped,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ctr": self.ctr, "cvr": self.cvr}


@dataclass(frozen=True)
class ArmStats:
    variant: str
    model_version: str
    all_time: Counts
    last_hour: Counts


@dataclass(frozen=True)
class EventStats:
    """What GET /stats answers: per (variant, model version), and summed over them."""

    generated_at: float  # unix seconds
    window_start: float  # first second of the last-hour window
    arms: list[ArmStats] = field(default_factory=list)

    @property
    def total(self) -> tuple[Counts, Counts]:
        """(all time, last hour) over every variant and model version."""
        all_time, last_hour = Counts(), Counts()
        for arm in self.arms:
            all_time, last_hour = all_time + arm.all_time, last_hour + arm.last_hour
        return all_time, last_hour

    def to_dict(self) -> dict[str, Any]:
        all_time, last_hour = self.total
        return {
            "generated_at": self.generated_at,
            "last_hour_since": self.window_start,
            "total": {"all_time": all_time.to_dict(), "last_hour": last_hour.to_dict()},
            "by_variant": [
                {
                    "variant": a.variant,
                    "model_version": a.model_version,
                    "all_time": a.all_time.to_dict(),
                    "last_hour": a.last_hour.to_dict(),
                }
                for a in self.arms
            ],
        }


def minute_of(timestamp: float) -> int:
    return int(timestamp // 60)


def read_stats(conn: sqlite3.Connection, now: float) -> EventStats:
    """The counts as committed, read in one transaction (a consistent snapshot)."""
    first_minute = minute_of(now) - (WINDOW_MINUTES - 1)
    cols = "impressions, clicks, conversions, dropped"
    conn.execute("BEGIN")
    try:
        totals = conn.execute(f"SELECT variant, model_version, {cols} FROM counts_total").fetchall()
        recent = conn.execute(
            "SELECT variant, model_version, SUM(impressions), SUM(clicks), SUM(conversions), "
            "SUM(dropped) FROM counts_minute WHERE minute >= ? GROUP BY variant, model_version",
            (first_minute,),
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    hour = {(v, m): Counts(*map(int, rest)) for v, m, *rest in recent}
    arms = [
        ArmStats(v, m, Counts(*rest), hour.get((v, m), Counts())) for v, m, *rest in sorted(totals)
    ]
    return EventStats(generated_at=now, window_start=first_minute * 60.0, arms=arms)
