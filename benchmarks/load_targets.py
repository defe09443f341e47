"""The serving targets (issue: one serving core), each evaluated from one load run's rows.

Relative targets compare with peers measured in the same run (the trivial BentoML service, the
in-process serving core, the bare encoder), so a loaded machine moves both sides alike.
"""

from __future__ import annotations

from typing import Any

TARGETS = (
    "known 32: >= 90% of trivial req/s, p99 <= 1.2x trivial",
    "known 1: p50 <= 1.2x trivial p50",
    "cold 32: >= 400 req/s, p99 <= 150 ms",
    "cold 1: p50 <= 8 ms",
    "embed 32: >= 600 req/s, p99 <= 100 ms",
    "embed 1: p50 <= 1.5x the encoder's batch-1 latency",
    "gRPC encoder 32: >= 600 req/s, HTTP within 15%",
    "service / in-process core >= 80%",
)


def find(rows: list[dict], service: str, endpoint: str, clients: int, texts: int = 1) -> dict:
    for r in rows:
        key = (r["service"], r["endpoint"], r["concurrency"], r["texts_per_request"])
        if key == (service, endpoint, clients, texts):
            return r
    return {}


def _row(case: str, value: str, goal: str, met: bool | None) -> dict[str, Any]:
    return {"case": case, "value": value, "goal": goal, "target": f"{case}: {goal}", "met": met}


def _rps_p(r: dict, p: str = "p99_ms") -> str:
    return f"{r.get('rps')} req/s, {p[:3]} {r.get(p)} ms" if r else "not measured"


def evaluate(rows: list[dict], core: dict[str, Any], layout: str) -> list[dict[str, Any]]:
    """One dict per row of the issue's table: case, measured value, target, met."""

    def get(endpoint: str, clients: int, texts: int = 1, service: str = layout) -> dict:
        return find(rows, service, endpoint, clients, texts)

    def ok(*conds: Any) -> bool | None:
        return None if any(c is None for c in conds) else all(conds)

    def lt(a: Any, b: Any) -> bool | None:
        return None if a is None or b is None else a <= b

    out = []
    triv32, triv1 = get("trivial", 32, service="trivial"), get("trivial", 1, service="trivial")
    k32, k1 = get("recommend_known", 32), get("recommend_known", 1)
    ratio = round(k32["rps"] / triv32["rps"], 2) if k32 and triv32 else None
    p99x = round(k32["p99_ms"] / triv32["p99_ms"], 2) if k32 and triv32 else None
    out.append(
        _row(
            "/recommend known, 32 clients",
            f"{_rps_p(k32)} ({ratio}x req/s, {p99x}x p99 of trivial: {_rps_p(triv32)})",
            ">= 0.9x trivial req/s, p99 <= 1.2x",
            ok(lt(0.9, ratio), lt(p99x, 1.2)),
        )
    )
    p50x = round(k1["median_ms"] / triv1["median_ms"], 2) if k1 and triv1 else None
    out.append(
        _row(
            "/recommend known, 1 client",
            f"p50 {k1.get('median_ms')} ms ({p50x}x trivial's {triv1.get('median_ms')} ms)",
            "p50 <= 1.2x trivial",
            ok(lt(p50x, 1.2)),
        )
    )
    c32, c1 = get("recommend_cold", 32), get("recommend_cold", 1)
    out.append(
        _row(
            "/recommend cold, 32 clients",
            _rps_p(c32),
            ">= 400 req/s, p99 <= 150 ms",
            ok(lt(400, c32.get("rps")), lt(c32.get("p99_ms"), 150)),
        )
    )
    out.append(
        _row(
            "/recommend cold, 1 client",
            f"p50 {c1.get('median_ms')} ms",
            "p50 <= 8 ms",
            ok(lt(c1.get("median_ms"), 8)),
        )
    )
    e32, e1 = get("embed", 32), get("embed", 1)
    out.append(
        _row(
            "/embed 1 text, 32 clients",
            _rps_p(e32),
            ">= 600 req/s, p99 <= 100 ms",
            ok(lt(600, e32.get("rps")), lt(e32.get("p99_ms"), 100)),
        )
    )
    enc = core.get("encoder_batch1", {})
    e1x = round(e1["median_ms"] / enc["median_ms"], 2) if e1 and enc.get("median_ms") else None
    out.append(
        _row(
            "/embed 1 text, 1 client",
            f"p50 {e1.get('median_ms')} ms ({e1x}x the "
            f"encoder's {enc.get('median_ms')} ms, {enc.get('threads')} thread)",
            "p50 <= 1.5x in-process encoder",
            ok(lt(e1x, 1.5)),
        )
    )
    g32 = get("grpc_encoder", 32)
    http_vs = round(e32["rps"] / g32["rps"], 2) if e32 and g32 else None
    out.append(
        _row(
            "gRPC encoder 1 text, 32 clients",
            f"{_rps_p(g32)} (HTTP/gRPC {http_vs})",
            ">= 600 req/s, HTTP >= 0.85x gRPC",
            ok(lt(600, g32.get("rps")), lt(0.85, http_vs)),
        )
    )
    inproc = core.get("core_embed_32", {})
    share = round(e32["rps"] / inproc["rps"], 2) if e32 and inproc.get("rps") else None
    out.append(
        _row(
            "service / in-process core (1-text embeds, 32 clients)",
            f"{share} ({e32.get('rps')} vs {inproc.get('rps')} req/s)",
            ">= 0.8",
            ok(lt(0.8, share)),
        )
    )
    others = (
        ("score", 32, 1, "/score 100 items, 32 clients"),
        ("embed", 4, 32, "/embed 32 texts, 4 clients"),
        ("grpc_encoder", 1, 1, "gRPC encoder 1 text, 1 client"),
    )
    for endpoint, clients, texts, label in others:
        r = get(endpoint, clients, texts)
        out.append(_row(label, _rps_p(r) + f", p50 {r.get('median_ms')} ms", "(no target)", None))
    return out
