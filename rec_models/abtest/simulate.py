"""A simulated population with a known click model, to check the A/B report end to end.

User u has a click propensity p_u ~ Beta(m k, (1 - m) k): mean m (the baseline CTR) and
concentration k (smaller k: users differ more, so one user's impressions are more correlated
and the design effect is larger). In arm a every shown item is clicked independently with
probability min(1, p_u (1 + ctr_lift[a])), and a click converts with probability
cvr (1 + cvr_lift[a]). So arm a's true CTR is m (1 + ctr_lift[a]) (the cap at 1 is reached
with negligible probability for the defaults). Each user makes 1 + Poisson(requests - 1)
requests of `k_items` items; users are assigned to arms by the experiment's stable hash.

`draw(...)` draws the users (arm, probabilities, requests); `counts(draws)` gives per-arm sums
directly (binomial draws, fast enough for hundreds of repeated experiments); `users_of(draws)`
yields every impression's outcome, `log_users(sink, users)` sends those through a real
EventSink as impressions and feedback, and `arm_sums(users)` is what the log should then hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from rec_models.abtest.config import Experiment
from rec_models.events.model import EventKind, Feedback, Impressions
from rec_models.events.reader import ArmSums
from rec_models.events.sink import EventSink


@dataclass(frozen=True)
class Population:
    baseline_ctr: float = 0.10
    concentration: float = 8.0
    requests: float = 2.0  # mean requests per user
    k_items: int = 10  # items per response
    cvr: float = 0.10  # conversions per click
    catalog: int = 1682  # item ids 1..catalog


@dataclass(frozen=True)
class Draws:
    """Per simulated user (arrays of one length): id, arm, click and conversion probabilities."""

    user_ids: np.ndarray  # int
    arms: list[str]
    p_click: np.ndarray  # float, the arm's lift applied
    p_convert: np.ndarray  # float
    requests: np.ndarray  # int, >= 1


@dataclass(frozen=True)
class SimUser:
    user_id: int
    arm: str
    clicks: np.ndarray  # (requests, k_items) bool
    conversions: np.ndarray  # (requests, k_items) bool, only where clicked

    @property
    def counts(self) -> tuple[int, int, int]:
        return int(self.clicks.size), int(self.clicks.sum()), int(self.conversions.sum())


def draw(
    population: Population,
    experiment: Experiment,
    users: int,
    rng: np.random.Generator,
    ctr_lift: dict[str, float] | None = None,
    cvr_lift: dict[str, float] | None = None,
    first_user: int = 1,
) -> Draws:
    pop, ctr_lift, cvr_lift = population, ctr_lift or {}, cvr_lift or {}
    ids = np.arange(first_user, first_user + users)
    arms = [experiment.assign(f"u:{u}").name for u in ids]
    a = pop.baseline_ctr * pop.concentration
    b = (1 - pop.baseline_ctr) * pop.concentration
    lift = np.array([1 + ctr_lift.get(arm, 0.0) for arm in arms])
    conv = np.array([pop.cvr * (1 + cvr_lift.get(arm, 0.0)) for arm in arms])
    p_click = np.minimum(1.0, rng.beta(a, b, size=users) * lift)
    requests = 1 + rng.poisson(pop.requests - 1, size=users)
    return Draws(ids, arms, p_click, np.minimum(1.0, conv), requests)


def counts(draws: Draws, k_items: int, rng: np.random.Generator) -> list[ArmSums]:
    """Per-arm sums drawn directly (binomial counts per user): fast, for many repeated runs."""
    n = draws.requests * k_items
    x = rng.binomial(n, draws.p_click)
    c = rng.binomial(x, draws.p_convert)
    arms = np.asarray(draws.arms)
    out = []
    for arm in sorted(set(draws.arms)):
        m = arms == arm
        nu, xu, cu = n[m], x[m], c[m]
        sums = (nu, xu, cu, nu * nu, xu * nu, xu * xu, cu * xu, cu * cu, xu > 0)
        out.append(ArmSums(arm, int(m.sum()), *(int(v.sum()) for v in sums)))
    return out


def users_of(draws: Draws, k_items: int, rng: np.random.Generator) -> Iterator[SimUser]:
    """Every impression's click and conversion, user by user (to log them through a sink)."""
    for i, user_id in enumerate(draws.user_ids.tolist()):
        clicks = rng.random((int(draws.requests[i]), k_items)) < draws.p_click[i]
        conversions = clicks & (rng.random(clicks.shape) < draws.p_convert[i])
        yield SimUser(user_id, draws.arms[i], clicks, conversions)


def arm_sums(users: Iterable[SimUser]) -> list[ArmSums]:
    """Per-arm sums of simulated users, as EventLogReader.arm_sums computes them from a log."""
    per_arm: dict[str, list[tuple[int, int, int]]] = {}
    for user in users:
        per_arm.setdefault(user.arm, []).append(user.counts)
    return [ArmSums.from_users(arm, rows) for arm, rows in sorted(per_arm.items())]


async def log_users(
    sink: EventSink,
    users: Iterable[SimUser],
    rng: np.random.Generator,
    start: float,
    catalog: int = Population.catalog,
    model_versions: dict[str, str] | None = None,
    in_flight: int = 256,
) -> None:
    """Serve and click: each request's impressions are logged, then its clicks and conversions
    recorded, up to `in_flight` feedback calls awaiting their commit at once (as concurrent
    clients would). Request times advance by one second from `start`."""
    now, pending = start, []
    for user in users:
        version = (model_versions or {}).get(user.arm, "1")
        for r in range(user.clicks.shape[0]):
            now += 1.0
            request_id = f"sim-{user.user_id}-{r}"
            items = rng.choice(catalog, size=user.clicks.shape[1], replace=False) + 1
            ranked = [(int(i), float(-rank), 0.1) for rank, i in enumerate(items)]
            imp = Impressions.ranked(
                request_id,
                ranked,
                model_version=version,
                variant=user.arm,
                encoder_variant="int8",
                timestamp=now,
                user_id=user.user_id,
            )
            if not sink.log_impressions(imp):
                raise RuntimeError("the simulation's impressions were dropped: queue too small")
            events = [
                Feedback(request_id, int(items[j]), EventKind.CLICK, now + 1)
                for j in np.flatnonzero(user.clicks[r])
            ]
            events += [
                Feedback(request_id, int(items[j]), EventKind.CONVERSION, now + 2)
                for j in np.flatnonzero(user.conversions[r])
            ]
            if events:
                pending.append(sink.record_feedback(events))
            if len(pending) >= in_flight:
                await asyncio.gather(*pending)
                pending = []
    await asyncio.gather(*pending)
