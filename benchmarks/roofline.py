"""Roofline of the encoder: analytic FLOPs per batch over the measured time, against this
machine's matmul peaks (fp32: torch and numpy; int8: ORT MatMulInteger and torch._int_mm) and
its memory bandwidth, all measured with the same thread count as the encoder runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.engines import color
from benchmarks.machine import THREADS

SIZE = 1024  # square matmul of the microbenchmark


def encoder_flops(layers: int, hidden: int, intermediate: int, batch: int, length: int) -> float:
    """Multiply-adds x 2 of a BERT encoder forward pass (matmuls only; softmax, LayerNorm, GELU
    and the embedding lookup are < 2% and left out). Per token and layer: Q, K, V and output
    projections 4 * d^2, feed-forward 2 * d * f, attention scores and weighted sum 2 * T * d."""
    per_token_layer = 4 * hidden**2 + 2 * hidden * intermediate + 2 * length * hidden
    return 2.0 * batch * length * layers * per_token_layer


def _best_of(fn: Callable[[], Any], repeats: int = 10) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times))  # a peak: the best run, least disturbed by other processes


def _ort_int8_matmul() -> Callable[[], Any]:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    b = numpy_helper.from_array(rng.integers(-128, 127, (SIZE, SIZE), dtype=np.int8), "B")
    node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    graph = helper.make_graph(
        [node],
        "mmi",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [SIZE, SIZE])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [SIZE, SIZE])],
        [b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    a = rng.integers(0, 255, (SIZE, SIZE), dtype=np.uint8)
    onnx.checker.check_model(model)
    return lambda: sess.run(None, {"A": a})


def measure_peaks() -> dict[str, Any]:
    """GFLOP/s (GOP/s for int8) of a 1024^3 matmul per engine, and copy bandwidth in GB/s."""
    import torch

    torch.set_num_threads(THREADS)
    flop = 2.0 * SIZE**3
    out: dict[str, Any] = {"matmul_size": SIZE, "threads": THREADS}
    x, y = torch.randn(SIZE, SIZE), torch.randn(SIZE, SIZE)
    out["fp32_torch_gflops"] = flop / _best_of(lambda: x @ y) / 1e9
    xn, yn = x.numpy(), y.numpy()
    out["fp32_numpy_gflops"] = flop / _best_of(lambda: xn @ yn) / 1e9
    try:
        out["int8_ort_gops"] = flop / _best_of(_ort_int8_matmul()) / 1e9
    except Exception as exc:  # an ORT build without the kernel: say so
        out["int8_ort_error"] = f"{type(exc).__name__}: {exc}"
    try:
        a8 = torch.randint(-128, 127, (SIZE, SIZE), dtype=torch.int8)
        b8 = torch.randint(-128, 127, (SIZE, SIZE), dtype=torch.int8)
        out["int8_torch_gops"] = flop / _best_of(lambda: torch._int_mm(a8, b8)) / 1e9
    except Exception as exc:
        out["int8_torch_error"] = f"{type(exc).__name__}: {exc}"
    big = np.ones(64 * 2**20 // 8, dtype=np.float64)  # 64 MiB, well past the L2
    dst = np.empty_like(big)
    out["copy_gbps"] = 2 * big.nbytes / _best_of(lambda: np.copyto(dst, big), 5) / 1e9
    out["fp32_peak_gflops"] = max(out["fp32_torch_gflops"], out["fp32_numpy_gflops"])
    int8 = [out[k] for k in ("int8_ort_gops", "int8_torch_gops") if k in out]
    out["int8_peak_gops"] = max(int8) if int8 else None
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def merge_peaks(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The higher of the two measurements per figure (the peak is what the machine can do)."""
    out = {"before": before, "after": after}
    for key in ("fp32_peak_gflops", "int8_peak_gops", "copy_gbps"):
        values = [d[key] for d in (before, after) if d.get(key)]
        out[key] = max(values) if values else None
    return out


def plot_roofline(cells: list[dict[str, Any]], peaks: dict[str, Any], path: Any) -> None:
    """Achieved GFLOP/s per variant vs tokens per batch (B x T), with the measured peaks. Both
    from the fastest run (the machine is shared: the median measures its load as well)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    by_variant: dict[str, list[tuple[int, float]]] = {}
    for c in cells:
        if c.get("gflops_best"):
            point = (c["batch"] * c["length"], c["gflops_best"])
            by_variant.setdefault(c["variant"], []).append(point)
    for name, pts in sorted(by_variant.items()):
        pts.sort()
        style = "--" if name.startswith("st_") else "-"
        xs_, ys_ = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs_, ys_, style, marker="o", label=name, ms=4, color=color(name))
    tokens = [c["batch"] * c["length"] for c in cells] or [16, 16_384]
    xs = np.array([min(tokens) / 2, max(tokens) * 2])
    if peaks.get("fp32_peak_gflops"):
        ax.axhline(peaks["fp32_peak_gflops"], color="k", ls="--", lw=1, label="fp32 matmul peak")
    if peaks.get("int8_peak_gops"):
        ax.axhline(peaks["int8_peak_gops"], color="r", ls="--", lw=1, label="int8 matmul peak")
    if peaks.get("copy_gbps"):  # fp32 weights streamed from memory once per batch
        ax.plot(
            xs, peaks["copy_gbps"] * xs / 2, ":", color="gray", label="fp32 weight-stream bound"
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="tokens per batch (batch x length)",
        ylabel="achieved GFLOP/s (analytic FLOPs / fastest run)",
        title=f"Encoder roofline, {THREADS} threads",
    )
    top = max(peaks.get("int8_peak_gops") or 0, peaks.get("fp32_peak_gflops") or 0) * 3
    ax.set_ylim(bottom=0.5, top=top or None)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
