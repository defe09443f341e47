"""Benchmarks: separate scripts, not tests (nanoGPT's bench.py). `python -m benchmarks [--full]`.

encoder.py (ONNX variants vs PyTorch and sentence-transformers, plus a roofline), load.py (the
running service under concurrent load, HTTP and gRPC), quality.py (NDCG vs latency vs size),
catalog.py (exact vs ANN top-k on synthetic catalogs). Results: benchmarks/results/.
"""

from benchmarks.machine import pin_threads

pin_threads()  # before numpy / torch / ORT load in any submodule
