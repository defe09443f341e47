"""benchmarks/results/summary.md: Markdown tables from the result files of the last runs."""

from __future__ import annotations

from typing import Any

from benchmarks.machine import RESULTS, read_result

NAMES = ("encoder", "load", "quality", "catalog")


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "**no**"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1 else f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]


def machine_section(results: dict[str, dict]) -> list[str]:
    first = next(iter(results.values()))
    m = first["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB",
        f"- Instruction sets: {', '.join(m['isa'])}",
        f"- Threads per engine: {m['threads']}",
        f"- Versions: {vers}",
        "",
        "1-minute load average (the machine is shared; above "
        f"{m['cores']} it is oversubscribed and absolute numbers are noisy):",
        "",
    ]
    rows = [
        [n, r["mode"], r["date"], r["load_avg_1m"]["start"], r["load_avg_1m"]["end"], r["seconds"]]
        for n, r in results.items()
    ]
    return lines + table(["benchmark", "mode", "date", "load start", "load end", "s"], rows)


def _value(t: dict[str, Any]) -> str:
    extra = []
    if t.get("value_vs_pytorch_1thread") is not None:
        extra.append(f"vs 1-thread PyTorch {t['value_vs_pytorch_1thread']}")
    if t.get("value_closed_loop") is not None:
        extra.append(f"without pauses (saturation): {t['value_closed_loop']}")
    if t.get("value_fastest_runs") is not None:
        extra.append(f"fastest runs {t['value_fastest_runs']}")
    value = "-" if t["value"] is None else str(t["value"])
    return value + (f" ({'; '.join(extra)})" if extra else "")


def targets_section(results: dict[str, dict]) -> list[str]:
    rows = [
        [name, t["target"], _value(t), t["met"]]
        for name, r in results.items()
        for t in r.get("targets", [])
    ]
    return [
        "## Targets (reported, not asserted)",
        "",
        "Encoder speedups: medians within one run; in brackets the same against PyTorch with",
        "1 thread (immune to OpenMP barrier stalls on an oversubscribed machine) and the ratio",
        "of the fastest runs (closest to a quiet machine).",
        "",
        *table(["", "target", "value", "met"], rows),
    ]


def encoder_section(r: dict) -> list[str]:
    cells = r["cells"]
    keys = sorted({(c["batch"], c["length"]) for c in cells}, key=lambda k: (k[1], k[0]))
    variants = list(dict.fromkeys(c["variant"] for c in cells))
    by = {(c["variant"], c["batch"], c["length"]): c for c in cells}
    head = ["variant"] + [f"b{b} x {n}t" for b, n in keys]

    def grid(fmt: str) -> list[str]:
        rows = [
            [v] + [fmt.format(**by[v, b, n]) if (v, b, n) in by else "-" for b, n in keys]
            for v in variants
        ]
        return table(head, rows)

    p = r["peaks"]
    lines = [
        "## Encoder",
        "",
        f"Grid {r['grid']}; rounds interleaved, order rotated. ms per batch, median / p99:",
        "",
        *grid("{median_ms:.1f} / {p99_ms:.1f}"),
        "",
        "Speedup (medians) vs PyTorch fp32 (2 threads) / vs its 1-thread control / vs the best",
        "sentence-transformers peer:",
        "",
        *grid("{speedup_vs_pytorch} / {speedup_vs_pytorch_1thread} / {speedup_vs_best_peer}"),
        "",
        "Speedup vs PyTorch fp32 from the fastest run of each (closest to a quiet machine):",
        "",
        *grid("{speedup_vs_pytorch_fastest}"),
        "",
        "Texts per second (median):",
        "",
        *grid("{texts_per_s}"),
        "",
        "Fraction of the measured int8 matmul roofline (analytic GOP / median time / peak):",
        "",
        *grid("{int8_roofline_fraction}"),
        "",
        f"Mean cosine to PyTorch fp32: {r['cosine_vs_pytorch']}",
        "",
        f"Measured peaks ({p['before']['threads']} threads, best of before/after the grid): "
        f"fp32 matmul {p['fp32_peak_gflops']} GFLOP/s, int8 matmul {p['int8_peak_gops']} "
        f"GOP/s, copy bandwidth {p['copy_gbps']} GB/s (details in encoder.json).",
    ]
    lines += padding_lines(r.get("padding")) + thread_lines(r.get("threads"))
    if r.get("skipped"):
        lines += ["", "Not run:", ""] + [f"- {k}: {v}" for k, v in r["skipped"].items()]
    return [*lines, "", "![latency](encoder_latency.png) ![roofline](roofline.png)"]


def padding_lines(p: dict | None) -> list[str]:
    if not p:
        return []
    rows = [
        [
            r["variant"],
            r["padded_ms_per_32"],
            r["length_sorted_ms_per_32"],
            r["speedup_sorted_vs_padded"],
        ]
        for r in p["rows"]
    ]
    return [
        "",
        f"Padding: {p['texts']} real texts in batches of {p['batch']} ({p['real_tokens_per_text']}"
        f" tokens per text; padded in arrival order {p['padded_tokens_per_text']}, "
        f"length-sorted {p['sorted_tokens_per_text']}). ms per 32 texts, median:",
        "",
        *table(["variant", "arrival order, padded", "length-sorted", "x"], rows),
    ]


def thread_lines(cells: list[dict] | None) -> list[str]:
    if not cells:
        return []
    rows = [
        [
            c["variant"],
            f"{c['batch']} x {c['length']}",
            c["threads"],
            "on" if c["spinning"] else "off",
            c["median_ms"],
            c["p99_ms"],
            c["texts_per_s_per_thread"],
        ]
        for c in cells
    ]
    head = ["variant", "shape", "threads", "spinning", "median ms", "p99 ms", "texts/s/thread"]
    return ["", "Intra-op threads and spin-waiting:", "", *table(head, rows)]


def load_section(r: dict) -> list[str]:
    if "skipped" in r:
        return ["## Service under load", "", f"Skipped: {r['skipped']}"]
    rows = [
        [s["service"], s["endpoint"], s["texts_per_request"], s["concurrency"], s["rps"],
         s.get("median_ms"), s.get("p99_ms"), s["errors"], s["client_cpu_pct"]]
        for s in r["scenarios"]
    ]  # fmt: skip
    info = r["services"].get(r["default_layout"], {}).get("info", {})
    targets = [[t["case"], t["value"], t["goal"], t["met"]] for t in r.get("targets", [])]
    return [
        "## Service under load",
        "",
        f"Variant {info.get('variant')} on {info.get('provider')}; `bentoml serve` with "
        f"{r['default_layout']} (workers x ONNX Runtime threads) unless the service column says "
        f"otherwise; closed-loop clients ({r['grid']['duration_s']} s per case after "
        f"{r['grid']['warmup_s']} s of warm-up) in one asyncio process on the same cores "
        "(client CPU % shows its share); `trivial` is the framework's ceiling, measured in the "
        "same run.",
        "",
        *table(["case", "measured", "target", "met"], targets),
        "",
        *table(
            [
                "service",
                "endpoint",
                "texts/req",
                "clients",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "client CPU %",
            ],
            rows,
        ),
        "",
        "![throughput](load_throughput.png) ![p99](load_p99_vs_clients.png)",
    ]


def quality_section(r: dict) -> list[str]:
    rows = [
        [
            n,
            q.get("ndcg@10"),
            q.get("cold_start_ndcg@10"),
            q.get("size_mb"),
            q.get("median_ms"),
            q.get("speedup_vs_pytorch"),
            ", ".join(k for k, f in r["pareto"].items() if n in f) or "-",
        ]
        for n, q in r["rows"].items()
    ]
    c = r["latency_cell"]
    return [
        "## Quality vs speed",
        "",
        f"Latency: batch {c['batch']} x {c['length']} tokens.",
        "",
        *table(
            ["encoder", "NDCG@10", "cold-start NDCG@10", "MB", "ms", "x PyTorch", "Pareto"], rows
        ),
        "",
        "NDCG sources:",
        "",
        *[f"- {k}: {v}" for k, v in r["notes"].items()],
        "",
        "![quality](quality_vs_latency.png)",
    ]


def catalog_section(r: dict) -> list[str]:
    rows = [
        [
            x["catalog"],
            x["size"],
            x["method"],
            f"{x['param'] or ''} {x['value'] or ''}",
            x["queries"],
            x["build_s"],
            x["median_ms"],
            x["p99_ms"],
            x["recall@10"],
        ]
        for x in r["rows"]
    ]
    return [
        "## Catalog scale",
        "",
        *[f"- {n}" for n in r["notes"]],
        "",
        *table(
            [
                "catalog",
                "items",
                "index",
                "setting",
                "queries",
                "build s",
                "p50 ms",
                "p99 ms",
                "recall@10",
            ],
            rows,
        ),
        "",
        "![catalog](catalog_recall_latency.png)",
    ]


def write_summary() -> str:
    results = {n: r for n in NAMES if (r := read_result(n)) is not None}
    if not results:
        return ""
    lines = ["# Benchmarks", "", "Generated by `python -m benchmarks` from results/*.json.", ""]
    lines += [*machine_section(results), "", *targets_section(results)]
    sections = {
        "encoder": encoder_section,
        "load": load_section,
        "quality": quality_section,
        "catalog": catalog_section,
    }
    for name, fn in sections.items():
        if name in results:
            lines += ["", *fn(results[name])]
    path = RESULTS / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


if __name__ == "__main__":
    print(write_summary())
