"""Serving runtime: ONNX Runtime sessions, provider choice, tokenizer, index (no torch)."""
