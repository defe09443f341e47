"""The recommender at serving time: scorer bundle + ONNX towers + top-k index, no torch.

The sentence encoder is injected as `encode(texts) -> (N, d) float32` (L2-normalised rows) for
start-up and scripts (`OnnxEncoder(...).encode`). Known users' vectors are computed once by
`prepare()`; a cold profile (any subset of age, gender, occupation, history, text) is turned into
a profile text (`query_text`), encoded, and run through the user tower with ridge-folded-in MF
factors. The serving core encodes that text in its async micro-batcher and passes the embedding
in (`embedding=`), so no request thread ever blocks on the encoder.

Every method validates its arguments and raises `BadRequestError` / `UnknownIdError` (naming the
field) for bad input, so the HTTP and gRPC front ends share one set of rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rec_models.serving.bundle import ScorerBundle
from rec_models.serving.errors import BadRequestError, NotReadyError, UnknownIdError
from rec_models.serving.index import make_index
from rec_models.serving.towers import Towers, fold_in
from rec_models.text.profiles import Profile, profile_text

logger = logging.getLogger(__name__)

Encode = Callable[[list[str]], np.ndarray]
Query = int | Profile

MAX_K = 100  # results per /recommend or /similar_items
MAX_SCORE_ITEMS = 1000  # item_ids per /score
MAX_CANDIDATES = 10_000  # candidate_ids per /recommend
MAX_HISTORY = 1000  # history item ids in a cold profile
MAX_TEXTS = 256  # texts per /embed
MAX_TEXT_CHARS = 2000  # characters per text (the encoder reads max_length tokens of it anyway)
SELF_CHECK_TOL = 1e-3  # scorer.onnx vs user_vector . item_vector, relative to the score scale


class Recommendation(NamedTuple):
    item_id: int
    title: str
    score: float


class RecommenderRuntime:
    def __init__(
        self,
        bundle: ScorerBundle,
        encode: Encode,
        count_tokens: Callable[[str], int] | None = None,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        ann: Mapping[str, Any] | None = None,
    ) -> None:
        cfg, arr = bundle.config, bundle.arrays
        self.bundle, self.encode, self.count_tokens = bundle, encode, count_tokens
        self.max_length = int(cfg["max_length"])
        self.calibration = (float(cfg["calibration"]["a"]), float(cfg["calibration"]["b"]))
        self.foldin_reg = float(cfg["foldin_reg"])
        self.item_ids, self.titles = arr["item_ids"], bundle.titles
        self.item_vectors = np.ascontiguousarray(arr["item_vectors"], dtype=np.float32)  # (N, D)
        self.towers = Towers(
            bundle.folder,
            arr["item_emb"],
            arr["item_factors"],
            int(cfg["max_history"]),
            providers,
        )
        ann = dict(ann or {})  # make_index's ann_threshold, method, nprobe, ef_search
        self.item_index = make_index(self.item_vectors, threads=threads, **ann)
        emb = arr["item_emb"].astype(np.float32)
        emb /= np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)
        self.text_index = make_index(emb, threads=threads, **ann)  # cosine = inner product
        self.items = bundle.item_infos()
        self.user_vectors: np.ndarray | None = None  # (U, D), filled by prepare()
        self._prepared = False
        self.source: dict[str, Any] = {"path": str(bundle.folder)}

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        encode: Encode,
        sha256: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> RecommenderRuntime:
        """Load a bundle folder; with `sha256` ({file: digest}) every file is verified first."""
        if sha256 is not None:
            from rec_models.serving.store import verify_files

            verify_files(Path(folder), dict(sha256))
        return cls(ScorerBundle.load(folder), encode, **kwargs)

    @classmethod
    def from_store(
        cls, encode: Encode, tag: str = "adrec-scorer:latest", **kwargs: Any
    ) -> RecommenderRuntime:
        """Load the BentoML store model `tag`, verifying every file against its sha256 metadata."""
        from rec_models.serving.store import load_store_model

        path, _ = load_store_model(tag, verify=True)  # ValueError naming a file failing sha256
        runtime = cls(ScorerBundle.load(path), encode, **kwargs)
        runtime.source = {"tag": tag, "path": str(path), "sha256_verified": True}
        return runtime

    # -- start-up ---------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once prepare() has computed, checked and warmed up everything."""
        return self._prepared

    def profile_texts(self) -> list[str]:
        """The known users' profile texts (catalog.json), in user row order."""
        return [u.get("profile_text") or "" for u in self.bundle.users]

    def prepare(self, profile_emb: np.ndarray | None = None, batch_size: int = 64) -> None:
        """Run the user tower over the known users, self-check, warm up. `profile_emb` (U, d):
        the embeddings of `profile_texts()`, encoded here in batches when not given."""
        users = self.bundle.users
        if profile_emb is None:
            texts = self.profile_texts()
            chunks = [
                self.encode(texts[s : s + batch_size]) for s in range(0, len(texts), batch_size)
            ]
            profile_emb = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
        if len(profile_emb) != len(users):
            raise ValueError(f"profile_emb: {len(profile_emb)} rows for {len(users)} users")
        histories = [self._rows(self.bundle.history(u)) for u in range(len(users))]
        factors = self.bundle.arrays["user_factors"]
        vectors = [
            self.towers.user_vectors(
                profile_emb[s : s + 256], histories[s : s + 256], factors[s : s + 256]
            )
            for s in range(0, len(users), 256)
        ]
        self.user_vectors = (
            np.concatenate(vectors) if vectors else np.zeros((0, self.item_vectors.shape[1]))
        )
        self._self_check(profile_emb[:4], histories[:4], factors[:4])
        if len(users):
            self.recommend(int(self.bundle.user_map.ids[0]), k=10)
        self.recommend(Profile(age=30, text="warm-up"), k=10)
        logger.info("runtime ready: %d users, %d items", len(users), len(self.item_ids))
        self._prepared = True

    def _self_check(
        self, profile_emb: np.ndarray, histories: list[np.ndarray], factors: np.ndarray
    ) -> None:
        """scorer.onnx must equal user_vector . item_vector, or the bundle is inconsistent."""
        if not len(histories):
            return
        rows = np.arange(min(64, len(self.item_ids)))
        onnx_scores = self.towers.scores(profile_emb, histories, factors, rows)  # (B, C)
        dot = self.towers.user_vectors(profile_emb, histories, factors) @ self.item_vectors[rows].T
        err = float(np.abs(onnx_scores - dot).max() / max(1.0, float(np.abs(dot).max())))
        if err > SELF_CHECK_TOL:
            raise RuntimeError(
                f"scorer.onnx disagrees with item_vectors (relative error {err:.2e})"
            )

    # -- requests ---------------------------------------------------------------------------
    def recommend(
        self,
        user: Query,
        k: int = 10,
        exclude_seen: bool = True,
        candidate_ids: Sequence[int] | None = None,
        embedding: np.ndarray | None = None,
    ) -> list[Recommendation]:
        """Top-k items for a known user id or a cold Profile, best first. `embedding` (1, d):
        the encoded `query_text(user)` of a cold profile (encoded here when not given)."""
        _check_range("k", k, 1, MAX_K)
        candidates = None
        if candidate_ids is not None:
            _check_size("candidate_ids", candidate_ids, 1, MAX_CANDIDATES)
            candidates = self._rows(candidate_ids, "candidate_ids")
        vector, seen = self._user(user, embedding)
        rows, scores = self.item_index.search(vector, k, seen if exclude_seen else None, candidates)
        return [
            Recommendation(int(self.item_ids[r]), self.titles[r], float(s))
            for r, s in zip(rows, scores, strict=True)
        ]

    def score(
        self, user: Query, item_ids: Sequence[int], embedding: np.ndarray | None = None
    ) -> np.ndarray:
        """Click probabilities sigmoid(a * s + b) of `item_ids`, in input order. (len(item_ids),)"""
        _check_size("item_ids", item_ids, 1, MAX_SCORE_ITEMS)
        rows = self._rows(item_ids, "item_ids")
        vector, _ = self._user(user, embedding)
        return self.calibrate(self.item_vectors[rows] @ vector)

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        a, b = self.calibration
        return np.exp(-np.logaddexp(0.0, -(a * np.asarray(scores, dtype=np.float64) + b)))

    def similar_items(
        self, query: int | str, k: int = 10, embedding: np.ndarray | None = None
    ) -> list[Recommendation]:
        """Items whose text embedding is closest (cosine) to an item's or to a free text
        (`embedding` (1, d): that text, encoded by the caller; encoded here when not given)."""
        _check_range("k", k, 1, MAX_K)
        if isinstance(query, str):
            check_text("text", query)
            vector = (self.encode([query]) if embedding is None else embedding)[0]
            exclude = None
        elif isinstance(query, int | np.integer) and not isinstance(query, bool):
            row = self.bundle.item_map.row(int(query))
            if row is None:
                raise UnknownIdError("item_id", int(query))
            vector, exclude = self.text_index.vectors[row], np.array([row])
        else:
            raise BadRequestError("item_id", "give an item_id (integer) or a text")
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        rows, scores = self.text_index.search(vector, k, exclude)
        return [
            Recommendation(int(self.item_ids[r]), self.titles[r], float(s))
            for r, s in zip(rows, scores, strict=True)
        ]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        check_texts(texts)
        return self.encode(list(texts))

    # -- users ------------------------------------------------------------------------------
    def query_text(self, user: Query) -> str | None:
        """The text to encode for `user`: a cold profile's profile text (checked first), None
        for a known user id (its vector was computed at start-up)."""
        if not isinstance(user, Profile):
            return None
        check_profile(user)
        self._rows(user.history, "history")  # unknown ids: 404 before the encoder runs
        return profile_text(user, self.items, self.count_tokens, self.max_length)

    def _user(
        self, user: Query, embedding: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user vector (D,), seen item rows) of a known user id or a cold profile."""
        if isinstance(user, Profile):
            return self._cold_user(user, embedding)
        if not isinstance(user, int | np.integer) or isinstance(user, bool):
            raise BadRequestError("user_id", "must be an integer")
        row = self.bundle.user_map.row(int(user))
        if row is None:
            raise UnknownIdError("user_id", int(user))
        if self.user_vectors is None:
            raise NotReadyError()
        return self.user_vectors[row], self._rows(self.bundle.history(row))

    def _cold_user(
        self, profile: Profile, embedding: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        check_profile(profile)
        history = self._rows(profile.history, "history")
        if embedding is None:
            text = profile_text(profile, self.items, self.count_tokens, self.max_length)
            embedding = self.encode([text])
        profile_emb = np.asarray(embedding, dtype=np.float32).reshape(1, -1)  # (1, d)
        factors = fold_in(self.bundle.arrays["item_factors"][history], self.foldin_reg)
        vector = self.towers.user_vectors(profile_emb, [history], factors[None, :])[0]
        return vector, np.unique(history)

    def _rows(self, item_ids: Sequence[int] | np.ndarray, field: str = "item_ids") -> np.ndarray:
        rows, known = self.bundle.item_map.rows(np.asarray(item_ids, dtype=np.int64))
        if not known.all():
            bad = np.flatnonzero(~known)
            raise UnknownIdError(field, [int(item_ids[i]) for i in bad], bad.tolist())
        return rows

    def info(self) -> dict[str, Any]:
        cfg = self.bundle.config
        return {
            "ready": self.ready,
            "model": cfg.get("model", "hybrid"),
            "alpha": cfg.get("alpha"),
            "calibration": {"a": self.calibration[0], "b": self.calibration[1]},
            "catalog": {"items": len(self.item_ids), "users": len(self.bundle.users)},
            "index": self.item_index.describe(),
            "text_index": self.text_index.describe(),
            "towers_providers": list(self.towers.providers),
            "bundle": self.source,
        }


def check_profile(profile: Profile) -> None:
    if profile.is_empty():
        raise BadRequestError(
            "profile",
            "empty profile: give user_id or any of age, gender, occupation, history, text",
        )
    if profile.age is not None:
        _check_range("age", profile.age, 0, 130)
    if len(profile.history) > MAX_HISTORY:
        raise BadRequestError("history", f"at most {MAX_HISTORY} item ids")
    if profile.text is not None and len(profile.text) > MAX_TEXT_CHARS:
        raise BadRequestError("text", f"at most {MAX_TEXT_CHARS} characters")


def check_texts(texts: Sequence[str]) -> None:
    """The /embed rules: 1-MAX_TEXTS non-blank texts of at most MAX_TEXT_CHARS characters."""
    _check_size("texts", texts, 1, MAX_TEXTS)
    for i, text in enumerate(texts):
        check_text(("texts", i), text)


def _check_range(field: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadRequestError(field, f"must be an integer between {lo} and {hi}, got {value!r}")


def _check_size(field: str, values: Sequence[Any], lo: int, hi: int) -> None:
    if not lo <= len(values) <= hi:
        raise BadRequestError(field, f"must hold between {lo} and {hi} entries, got {len(values)}")


def check_text(field: str | tuple[str, int], text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise BadRequestError(field, "must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequestError(field, f"at most {MAX_TEXT_CHARS} characters, got {len(text)}")
