"""The exported sentence encoder at serving time: ONNX Runtime + tokenizers + numpy, no torch.

Reads an encoder variant folder (`model.onnx`, `tokenizer.json`, `config.json`; README contract),
tokenizes with truncation to `max_length` and padding to the longest text of each batch, runs the
graph, then mean-pools `last_hidden_state` over the attention mask and L2-normalises, the same for
every variant (fp32, opt, int8, distilled_int8, fp16).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_FILES = ("model.onnx", "tokenizer.json", "config.json")


def load_variant_config(variant_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The variant's config.json; ValueError naming the folder if the variant is incomplete."""
    folder = Path(variant_dir)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"encoder variant {folder}: missing {', '.join(missing)}")
    return json.loads((folder / "config.json").read_text())


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def mean_pool(last_hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, T, d), (B, T) -> (B, d) float32 mean over the mask, L2-normalised."""
    m = mask[..., None].astype(np.float32)  # (B, T, 1)
    pooled = (last_hidden.astype(np.float32) * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)  # (B, 1)
    return pooled / np.clip(norms, 1e-12, None)


class OnnxEncoder:
    """`encode(texts)` -> (N, dim) float32, L2-normalised rows, with one ONNX Runtime session."""

    def __init__(
        self,
        variant_dir: str | os.PathLike[str],
        providers: list[str] | None = None,
        threads: int | None = None,
        batch_size: int = 64,
        spinning: bool | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.path = Path(variant_dir)
        self.config = load_variant_config(self.path)
        self.variant: str = self.config["variant"]
        self.dim: int = int(self.config["dim"])
        self.max_length: int = int(self.config["max_length"])
        self.batch_size = batch_size

        # The shipped tokenizer.json pads to a fixed 128: pad to the longest text instead.
        self._counter = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        self.tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        pad = self.tokenizer.padding or {}
        pad_token = pad.get("pad_token", "[PAD]")
        pad_id = self.tokenizer.token_to_id(pad_token)
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if spinning is not None:  # None: ONNX Runtime's default (its threads spin-wait)
            options.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if spinning else "0"
            )
        self.session = ort.InferenceSession(
            str(self.path / "model.onnx"), options, providers=providers or ["CPUExecutionProvider"]
        )
        self.provider: str = self.session.get_providers()[0]
        self._inputs = {i.name for i in self.session.get_inputs()}

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` with special tokens, before truncation."""
        return len(self._counter.encode(text).ids)

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (B, T)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B, T)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self.session.run(["last_hidden_state"], feed)  # (B, T, d)
        return mean_pool(hidden, mask)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings of `texts`, in order."""
        if isinstance(texts, str) or len(texts) == 0:
            raise ValueError("texts: expected a non-empty list of strings")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Length-sorted batches pad little; rows go back to their positions.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([texts[i] for i in idx])
        return out
