"""Where the encoder's time goes: ONNX Runtime's profiler, per op type, per variant and shape.

    python -m benchmarks.profile [--variants fp32,opt,int8,distilled_int8] [--runs 20]

For each variant and each shape (batch x exact token length of real texts, no padding) one
profiling session (2 intra-op threads, as every benchmark) runs the graph: warm-up runs first,
whose events are dropped, then `runs` timed runs. Per op type: kernel ms per run and share of the
kernel total; per cell: the median `model_run` wall time and what the kernels do not explain
(the executor's overhead). Results: results/profile.json, results/profile.md, results/profile.png.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from benchmarks.machine import ARTIFACTS, RESULTS, THREADS, Run, pin_threads
from benchmarks.texts import exact_length_texts, load_pool

VARIANTS = ("fp32", "opt", "int8", "distilled_int8")
SHAPES = ((1, 16), (32, 32), (32, 128))  # batch, tokens
WARMUP = 3
TOP = 8  # op types listed per cell in the Markdown table


def feed_for(variant_dir: Path, texts: list[str], inputs: set[str]) -> dict[str, np.ndarray]:
    """Token ids of `texts` with the variant's own tokenizer (all the same length: no padding)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(variant_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    enc = tok.encode_batch(texts)
    lengths = {len(e.ids) for e in enc}
    if len(lengths) != 1:
        raise ValueError(f"texts: expected one token length, got {sorted(lengths)}")
    feed = {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }
    return {k: v for k, v in feed.items() if k in inputs}


def op_breakdown(events: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    """Kernel time per op type of the last `runs` model runs in an ORT profile (a list of
    Chrome-trace events): the warm-up runs before them are dropped by timestamp."""
    model_runs = sorted(
        (e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
        key=lambda e: e["ts"],
    )
    if len(model_runs) < runs:
        raise ValueError(f"profile has {len(model_runs)} model runs, expected >= {runs}")
    kept = model_runs[-runs:]
    start = kept[0]["ts"]
    per_op: dict[str, float] = {}
    count: dict[str, int] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if e["ts"] < start:
            continue
        op = e.get("args", {}).get("op_name", "?")
        per_op[op] = per_op.get(op, 0.0) + e["dur"] / 1e3
        count[op] = count.get(op, 0) + 1
    kernel_ms = sum(per_op.values()) / runs
    wall = float(np.median([e["dur"] for e in kept])) / 1e3
    ops = {
        op: {
            "ms": round(ms / runs, 3),
            "share": round(ms / runs / kernel_ms, 4) if kernel_ms else 0.0,
            "nodes": count[op] // runs,
        }
        for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])
    }
    return {
        "model_run_median_ms": round(wall, 3),
        "kernel_ms": round(kernel_ms, 3),
        "overhead_ms": round(wall - kernel_ms, 3),
        "ops": ops,
    }


def profile_cell(variant_dir: Path, texts: list[str], runs: int) -> dict[str, Any]:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        sess = ort.InferenceSession(
            str(variant_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        feed = feed_for(variant_dir, texts, {i.name for i in sess.get_inputs()})
        for _ in range(WARMUP + runs):
            sess.run(["last_hidden_state"], feed)
        path = sess.end_profiling()
        events = json.loads(Path(path).read_text())
    return op_breakdown(events, runs)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Encoder profile: ONNX Runtime kernel time per op type",
        "",
        f"{THREADS} intra-op threads; {result['runs']} runs per cell after {WARMUP} warm-up runs; "
        f"load average {result['load_avg_1m']['start']} -> {result['load_avg_1m']['end']}; "
        f"CPU {result['machine']['cpu']} ({', '.join(result['machine']['isa'])}).",
        "",
        "| variant | batch x tokens | run ms (median) | kernels ms | overhead ms | top op types "
        "(ms per run, share of kernel time) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for cell in result["cells"]:
        tops = ", ".join(
            f"{op} {v['ms']:.2f} ({100 * v['share']:.0f}%)"
            for op, v in list(cell["ops"].items())[:TOP]
        )
        lines.append(
            f"| {cell['variant']} | {cell['batch']} x {cell['length']} | "
            f"{cell['model_run_median_ms']:.2f} | {cell['kernel_ms']:.2f} | "
            f"{cell['overhead_ms']:.2f} | {tops} |"
        )
    return "\n".join(lines) + "\n"


def plot(cells: list[dict[str, Any]], path: Path) -> None:
    """One stacked bar per cell: each op type's share of the kernel time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals: dict[str, float] = {}
    for c in cells:
        for op, v in c["ops"].items():
            totals[op] = totals.get(op, 0.0) + v["share"]
    shown = sorted(totals, key=lambda op: -totals[op])[:10]
    fig, ax = plt.subplots(figsize=(max(8, len(cells) * 0.8), 5))
    labels = [f"{c['variant']}\n{c['batch']}x{c['length']}" for c in cells]
    bottom = np.zeros(len(cells))
    for i, op in enumerate([*shown, "other"]):
        if op == "other":
            vals = np.array([1 - sum(c["ops"].get(o, {}).get("share", 0) for o in shown)
                             for c in cells])  # fmt: skip
        else:
            vals = np.array([c["ops"].get(op, {}).get("share", 0.0) for c in cells])
        ax.bar(
            labels, vals, bottom=bottom, label=op, color=f"C{i % 10}" if op != "other" else "0.7"
        )
        bottom += vals
    ax.set(
        ylabel="share of kernel time",
        title=f"ONNX Runtime kernel time by op type, {THREADS} threads",
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(variants: list[str], runs: int, merge: bool = False) -> dict[str, Any]:
    pin_threads()
    run_ = Run("profile", full=False)
    present = [v for v in variants if (ARTIFACTS / "onnx" / v / "model.onnx").is_file()]
    skipped = {
        v: f"artifacts/onnx/{v}/ missing (run `make export`)" for v in variants if v not in present
    }
    if not present:
        raise SystemExit(f"no variant to profile under {ARTIFACTS / 'onnx'}: run `make export`")
    pool = load_pool()
    tok = ARTIFACTS / "onnx" / present[0] / "tokenizer.json"
    texts = {n: exact_length_texts(pool, n, max(b for b, m in SHAPES if m == n), tok)
             for _, n in SHAPES}  # fmt: skip
    cells = []
    for (b, n), v in tqdm([(s, v) for s in SHAPES for v in present], desc="profile", unit="cell"):
        cell = profile_cell(ARTIFACTS / "onnx" / v, texts[n][:b], runs if b > 1 else runs * 5)
        cells.append({"variant": v, "batch": b, "length": n, **cell})
    if merge and (RESULTS / "profile.json").is_file():  # keep the other variants' cells
        old = json.loads((RESULTS / "profile.json").read_text())
        cells = [c for c in old["cells"] if c["variant"] not in present] + cells
        cells.sort(key=lambda c: (c["batch"], c["length"], VARIANTS.index(c["variant"])))
    result = {"runs": runs, "warmup": WARMUP, "skipped": skipped, "cells": cells}
    path = run_.save(result)
    saved = json.loads(path.read_text())
    (RESULTS / "profile.md").write_text(markdown(saved))
    plot(cells, RESULTS / "profile.png")
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--runs", type=int, default=20, help="profiled runs per cell (x5 at batch 1)"
    )
    parser.add_argument(
        "--merge", action="store_true", help="keep the other variants' cells of the last run"
    )
    args = parser.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or args.runs < 1:
        parser.error(f"--variants: unknown {', '.join(unknown)}; valid: {', '.join(VARIANTS)}"
                     if unknown else "--runs: must be >= 1")  # fmt: skip
    result = run(names, args.runs, args.merge)
    print((RESULTS / "profile.md").read_text())
    if result["skipped"]:
        print("skipped:", result["skipped"])


if __name__ == "__main__":
    main()
