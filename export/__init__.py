"""Export: the encoder ONNX variants (fp32, opt, int8, distilled_int8, fp16), their gates,
the model store and the report. Run everything with `python -m export` (`make export`).
"""
