"""The faults benchmark's plot: throughput and p99 over time, kill -9 of a worker beside 4x
overload (benchmarks/results/reliability_faults.png, from reliability.json)."""

from __future__ import annotations

import json
from pathlib import Path


def plot(results: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(results).read_text())
    panels = [(k, t) for k, t in (("worker_kill", "kill -9 of one of 2 workers"),
                                  ("overload", "4x the saturating load")) if k in data]  # fmt: skip
    if not panels:
        return
    fig, axes = plt.subplots(2, len(panels), figsize=(6.5 * len(panels), 6), squeeze=False)
    for col, (key, title) in enumerate(panels):
        s = data[key]["series"]
        top, bottom = axes[0][col], axes[1][col]
        top.plot(s["t_s"], s["ok_per_s"], label="200 / s", color="tab:blue")
        top.plot(s["t_s"], s["shed_per_s"], label="shed (429/503) / s", color="tab:orange")
        top.plot(s["t_s"], s["failed_per_s"], label="failed / s", color="tab:red")
        p99 = [(t, v) for t, v in zip(s["t_s"], s["p99_ms"], strict=True) if v is not None]
        bottom.plot([t for t, _ in p99], [v for _, v in p99], color="tab:purple")
        for ax in (top, bottom):
            if key == "worker_kill":
                ax.axvline(s["kill_at_s"], color="k", ls="--", lw=1)
                if s.get("ready_at_s"):
                    ax.axvline(s["ready_at_s"], color="tab:green", ls="--", lw=1)
            else:
                ax.axvspan(s["overload_from_s"], s["overload_to_s"], color="0.9")
            ax.grid(alpha=0.3)
        if key == "overload":
            ref = data[key]["saturation"]["p99_ms"]
            bottom.axhline(2 * ref, color="tab:red", ls=":", lw=1, label="2x p99 at saturation")
            bottom.legend(fontsize=8)
        top.set_title(f"{title} (load {data[key]['load_average'][0]})", fontsize=10)
        top.legend(fontsize=8)
        bottom.set_yscale("log")
        bottom.set_ylabel("p99 of 200s (ms), per second")
        top.set_ylabel("requests per second")
        bottom.set_xlabel(
            "seconds"
            + (
                " (dashed: kill, green: new worker ready)"
                if key == "worker_kill"
                else " (grey: overload)"
            )
        )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
