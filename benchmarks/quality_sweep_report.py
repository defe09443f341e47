"""Render benchmarks/results/quality_sweep.json (benchmarks.quality_sweep) as a Markdown table
per phase and one bar chart of the validation NDCG@10 of every attention direction.

    python -m benchmarks.quality_sweep_report
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.machine import RESULTS


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Quality sweep (MovieLens-100K, validation split of `recommenders`, seed 42)",
        "",
        "Reproduce: `python -m benchmarks.quality_sweep` (every phase; `--phase mf|attention|blend`"
        " one at a time, `--only NAMES` some attention candidates, `--cold` a validation "
        "cold-start column), one torch thread, under `OMP_NUM_THREADS=1 nice -n 10`. "
        "Validation only: the test numbers of the chosen settings come from `make train`. "
        "s = seconds of the fit and its validation on the shared 2-core machine, load1 = the "
        "1-minute load average after it.",
        "",
    ]
    mf = results.get("mf", {})
    if mf:
        best = json.dumps(results.get("mf_best", {}), sort_keys=True)
        lines += [
            "## MF (iALS): coordinate search from 200 factors, reg 50, alpha 10, "
            "unobserved weight 1",
            "",
            "| overrides | val NDCG@10 | val tail NDCG@10 | s | load1 | kept |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for key, row in mf.items():
            kept = "yes" if key == best else ""
            key = "baseline" if key == "{}" else key
            scores = f"{_f(row['ndcg@10'])} | {_f(row['tail_ndcg@10'])}"
            lines.append(f"| `{key}` | {scores} | {row['seconds']} | {row['load1']} | {kept} |")
        lines.append("")
    att = results.get("attention", {})
    if att:
        head = "| candidate | direction | attention | att. tail | cold | hybrid | hybrid tail |"
        lines += [
            "## Attention directions (hybrid = best MF + this attention, alpha on validation)",
            "",
            head + " alpha | s | load1 | kept |",
            "|---|---|" + "---:|" * 8 + "---|",
        ]
        kept = set(results.get("kept", []))
        if "cold_random_ndcg@10" in results:
            lines.insert(
                -4,
                f"cold = validation cold-start NDCG@10 (random: "
                f"{_f(results['cold_random_ndcg@10'])}).\n",
            )
        for name, r in att.items():
            if "unfinished" in r:  # stopped by hand: r["unfinished"] says why
                ran = [f">{r['seconds']}", str(r["load1"])] if r["seconds"] else ["-", "-"]
                cells = " | ".join(["-"] * 6 + ran)
                lines.append(f"| {name} | {r['direction']} | {cells} | {r['unfinished']} |")
                continue
            lines.append(
                f"| {name} | {r['direction']} | {_f(r['attention']['ndcg@10'])} | "
                f"{_f(r['attention']['tail_ndcg@10'])} | {_f(r.get('cold_ndcg@10'))} | "
                f"{_f(r['hybrid']['ndcg@10'])} | {_f(r['hybrid']['tail_ndcg@10'])} | {r['alpha']} "
                f"| {r['seconds']} | {r['load1']} | {'yes' if name in kept else ''} |"
            )
        lines.append("")
    blend = results.get("blend", {})
    if blend:
        lines += [
            "## Per-user blend weight by history length (alpha per bucket on validation)",
            "",
            "Each bucket's alpha is chosen on the same validation users it is scored on, so "
            "these gains are in-sample (optimistic).",
            "",
            "| attention, edges | alphas | hybrid val NDCG@10 | tail |",
            "|---|---|---:|---:|",
        ]
        for name, r in blend.items():
            scores = f"{_f(r['ndcg@10'])} | {_f(r['tail_ndcg@10'])}"
            lines.append(f"| {name} | {r['alphas']} | {scores} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    att = results.get("attention", {})
    if not att:
        return
    names = [n for n in att if "unfinished" not in att[n]]
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(names))
    ax.bar(
        [i - 0.2 for i in x],
        [att[n]["attention"]["ndcg@10"] for n in names],
        0.4,
        label="attention (text)",
    )
    ax.bar([i + 0.2 for i in x], [att[n]["hybrid"]["ndcg@10"] for n in names], 0.4, label="hybrid")
    mf = results.get("mf", {}).get(json.dumps(results.get("mf_best", {}), sort_keys=True))
    if mf:
        ax.axhline(mf["ndcg@10"], color="k", linestyle="--", linewidth=1, label="MF alone")
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title("MovieLens-100K: attention directions on the validation split")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(results: dict[str, Any], folder: Path = RESULTS) -> None:
    (folder / "quality_sweep.md").write_text(markdown(results))
    plot(results, folder / "quality_sweep.png")


if __name__ == "__main__":
    render(json.loads((RESULTS / "quality_sweep.json").read_text()))
