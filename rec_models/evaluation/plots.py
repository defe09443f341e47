"""The reliability diagram of the CTR view as a PNG (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def reliability_plot(
    bins: Mapping[str, list[dict[str, float]]], path: Path, title: str
) -> Path | None:
    """Observed click rate against mean predicted probability per bin, one line per model
    (points sized by bin count), the diagonal for perfect calibration. None if matplotlib is
    not installed (the numbers are in metrics.json either way)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    points = [
        v for rows in bins.values() for b in rows for v in (b["mean_predicted"], b["observed"])
    ]
    top = min(1.0, 1.1 * max(points, default=1.0)) or 1.0
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, rows in bins.items():
        total = sum(b["count"] for b in rows) or 1
        x = [b["mean_predicted"] for b in rows]
        y = [b["observed"] for b in rows]
        ax.plot(x, y, marker="o", linewidth=1, label=name)
        ax.scatter(x, y, s=[8 + 400 * b["count"] / total for b in rows], alpha=0.3)
    ax.set_xlabel("mean predicted click probability (equal-size bins)")
    ax.set_ylabel("observed click rate")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
