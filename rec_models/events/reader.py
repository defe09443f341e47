"""Reading the log for analysis: per-arm sums for the A/B report, labelled rows for retraining.

Opens the file read-only, so it runs beside a live service (WAL readers never block the writer).
An impression is clicked / converted when the log holds that feedback for it, whenever it came.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rec_models.events.schema import open_reader

USER = (
    "CASE WHEN r.user_id IS NOT NULL THEN 'u:' || r.user_id ELSE 'p:' || r.profile_fingerprint END"
)
LABELLED = """
    SELECT r.request_id, r.ts, r.user_id, r.profile_fingerprint, r.model_version, r.variant,
           r.encoder_variant, i.item_id, i.rank, i.score, i.probability,
           fc.request_id IS NOT NULL AS clicked, fv.request_id IS NOT NULL AS converted
    FROM requests r JOIN impressions i ON i.request_id = r.request_id
    LEFT JOIN feedback fc
        ON fc.request_id = i.request_id AND fc.item_id = i.item_id AND fc.event = 'click'
    LEFT JOIN feedback fv
        ON fv.request_id = i.request_id AND fv.item_id = i.item_id AND fv.event = 'conversion'
    WHERE r.ts >= ? AND r.ts < ?
"""
PER_USER = f"""
    SELECT variant, user, COUNT(*) AS n, SUM(clicked) AS x, SUM(converted) AS c
    FROM (SELECT r.variant AS variant, {USER} AS user, clicked, converted
          FROM ({LABELLED}) AS r)
    GROUP BY variant, user
"""


@dataclass(frozen=True)
class ArmSums:
    """Sufficient statistics of one arm, per user u: n_u impressions, x_u clicks, c_u conversions.

    Enough for the CTR (x/n) and CVR (c/x) with their delta-method variances, clustered by user.
    """

    arm: str
    users: int
    impressions: int  # sum n
    clicks: int  # sum x
    conversions: int  # sum c
    sum_nn: int
    sum_xn: int
    sum_xx: int
    sum_cx: int
    sum_cc: int
    users_clicked: int  # users with x > 0: the units of the CVR

    @classmethod
    def from_users(cls, arm: str, per_user: Iterable[tuple[int, int, int]]) -> ArmSums:
        """From (impressions, clicks, conversions) per user."""
        s = [0] * 10
        for n, x, c in per_user:
            for j, v in enumerate((1, n, x, c, n * n, x * n, x * x, c * x, c * c, int(x > 0))):
                s[j] += v
        return cls(arm, *s)

    def __add__(self, other: ArmSums) -> ArmSums:
        """Two disjoint sets of users of one arm (e.g. two enrolment periods)."""
        if other.arm != self.arm:
            raise ValueError(f"cannot add sums of arms {self.arm!r} and {other.arm!r}")
        values = [getattr(self, f.name) + getattr(other, f.name) for f in fields(self)[1:]]
        return ArmSums(self.arm, *values)


@dataclass(frozen=True)
class LabelledImpression:
    request_id: str
    timestamp: float
    user_id: int | None
    profile_fingerprint: str | None
    model_version: str
    variant: str
    encoder_variant: str
    item_id: int
    rank: int
    score: float
    probability: float
    clicked: bool
    converted: bool


class EventLogReader:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = open_reader(self.path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> EventLogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _window(since: float | None, until: float | None) -> tuple[float, float]:
        return (-math.inf if since is None else since, math.inf if until is None else until)

    def overview(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Impressions and requests per (variant, model_version), the time span, drops."""
        rows = self.conn.execute(
            "SELECT r.variant, r.model_version, COUNT(DISTINCT r.request_id), COUNT(*), "
            "MIN(r.ts), MAX(r.ts) FROM requests r JOIN impressions i USING (request_id) "
            "WHERE r.ts >= ? AND r.ts < ? GROUP BY r.variant, r.model_version",
            self._window(since, until),
        ).fetchall()
        dropped = dict(
            self.conn.execute("SELECT variant, SUM(dropped) FROM counts_total GROUP BY variant")
        )
        mixed = self.conn.execute(
            f"SELECT COUNT(*) FROM (SELECT user FROM ({PER_USER}) "
            "GROUP BY user HAVING COUNT(DISTINCT variant) > 1)",
            self._window(since, until),
        ).fetchone()[0]
        return {
            "by_version": [
                {
                    "variant": v,
                    "model_version": m,
                    "requests": r,
                    "impressions": n,
                    "first": lo,
                    "last": hi,
                }
                for v, m, r, n, lo, hi in rows
            ],
            "dropped_all_time": {v: int(n) for v, n in dropped.items()},
            "users_in_several_arms": int(mixed),
        }

    def arm_sums(self, since: float | None = None, until: float | None = None) -> list[ArmSums]:
        """ArmSums per variant, for impressions served in [since, until)."""
        rows = self.conn.execute(
            "SELECT variant, COUNT(*), SUM(n), SUM(x), SUM(c), SUM(n * n), SUM(x * n), "
            f"SUM(x * x), SUM(c * x), SUM(c * c), SUM(x > 0) FROM ({PER_USER}) "
            "GROUP BY variant ORDER BY variant",
            self._window(since, until),
        ).fetchall()
        return [ArmSums(str(arm), *(int(v) for v in rest)) for arm, *rest in rows]

    def labelled_impressions(
        self, since: float | None = None, until: float | None = None
    ) -> Iterator[LabelledImpression]:
        """Every impression served in [since, until), oldest first, with its click/conversion."""
        cursor = self.conn.execute(LABELLED + " ORDER BY r.ts, i.rank", self._window(since, until))
        for row in cursor:
            *head, clicked, converted = row
            yield LabelledImpression(*head, bool(clicked), bool(converted))
