"""Top-k by inner product over a catalog: exact (numpy) or approximate (faiss), one interface.

`make_index(vectors)` picks `ExactIndex` below `ann_threshold` items (default 50,000) and
`AnnIndex` from there on. Both answer `search(query, k, exclude, candidates)` with item rows and
their exact inner products, best first (ties broken by the lower row). The ANN index only proposes
candidates: it over-fetches `k + len(exclude)` of them (so exclusions never leave fewer than k),
and the survivors are re-scored exactly, so a score never depends on which path served it.
A candidate subset (a few thousand rows at most) is always scored exactly.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

ANN_THRESHOLD = 50_000  # catalogs from this size on get the ANN index
ANN_KINDS = ("ivf", "hnsw")  # ivf: quick to build (default); hnsw: faster queries, slow to build


class TopKIndex(Protocol):
    kind: str
    size: int

    def search(
        self,
        query: np.ndarray,
        k: int,
        exclude: np.ndarray | None = None,
        candidates: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def describe(self) -> dict[str, Any]: ...


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest finite scores, best first, ties by position. (n,) -> (<=k,)"""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.arange(n) if k == n else np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((part, -scores[part]))]
    return order[np.isfinite(scores[order])]


def _as_query(query: np.ndarray, dim: int) -> np.ndarray:
    q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
    if q.shape[0] != dim:
        raise ValueError(f"query has dimension {q.shape[0]}, the index {dim}")
    return q


def search_subset(
    vectors: np.ndarray, q: np.ndarray, k: int, exclude: np.ndarray | None, candidates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over the rows `candidates` (duplicates counted once) minus `exclude`."""
    cand = np.unique(np.asarray(candidates, dtype=np.int64))
    if exclude is not None and len(exclude):
        cand = cand[~np.isin(cand, exclude)]
    scores = vectors[cand] @ q  # (C,)
    order = top_k(scores, k)
    return cand[order], scores[order]


class ExactIndex:
    """Brute force: one (N, D) x (D,) product and an argpartition; ~10 ms for 1M x 64 floats."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (N, D)
        self.size, self.dim = self.vectors.shape

    def search(
        self,
        query: np.ndarray,
        k: int,
        exclude: np.ndarray | None = None,
        candidates: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        q = _as_query(query, self.dim)
        if candidates is not None:
            return search_subset(self.vectors, q, k, exclude, candidates)
        scores = self.vectors @ q  # (N,)
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        order = top_k(scores, k)
        return order, scores[order]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size}


class AnnIndex:
    """faiss inner-product index (IVF-Flat or HNSW-Flat) proposing candidates, re-scored exactly.

    IVF: `nlist` ~ sqrt(N) k-means cells trained on <= 64 points per cell (seconds for 1M items),
    `nprobe` cells searched per query. HNSW: graph with `m` links, `ef_search` beam width (raised
    to the over-fetch size when that is larger); better latency, minutes to build for 1M items.
    """

    kind = "ann"

    def __init__(
        self,
        vectors: np.ndarray,
        method: str = "ivf",
        nlist: int | None = None,
        nprobe: int = 32,
        m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        import faiss

        if method not in ANN_KINDS:
            raise ValueError(f"ANN method '{method}': choose one of {', '.join(ANN_KINDS)}")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (N, D)
        self.size, self.dim = self.vectors.shape
        self.method = method
        if threads:
            faiss.omp_set_num_threads(threads)
        metric = faiss.METRIC_INNER_PRODUCT
        if method == "ivf":
            self.nlist = nlist or int(np.clip(np.sqrt(self.size), 16, 65_536))
            self.nprobe = min(nprobe, self.nlist)
            self.index = faiss.index_factory(self.dim, f"IVF{self.nlist},Flat", metric)
            ivf = faiss.extract_index_ivf(self.index)
            ivf.cp.niter = 10
            ivf.cp.seed = seed
            ivf.cp.max_points_per_centroid = 64
            self.index.train(self.vectors)
        else:
            self.m, self.ef_search = m, ef_search
            self.index = faiss.IndexHNSWFlat(self.dim, m, metric)
            self.index.hnsw.efConstruction = ef_construction
        self.index.add(self.vectors)

    def _propose(self, q: np.ndarray, fetch: int, widen: int) -> np.ndarray:
        import faiss

        if self.method == "ivf":
            params = faiss.SearchParametersIVF(nprobe=min(self.nlist, self.nprobe * widen))
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, fetch) * widen)
        _, ids = self.index.search(q[None, :], fetch, params=params)
        return ids[0][ids[0] >= 0]  # faiss pads with -1 when it finds fewer than `fetch`

    def search(
        self,
        query: np.ndarray,
        k: int,
        exclude: np.ndarray | None = None,
        candidates: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        q = _as_query(query, self.dim)
        if candidates is not None:
            return search_subset(self.vectors, q, k, exclude, candidates)
        n_excl = 0 if exclude is None else len(exclude)
        want = min(k, self.size - n_excl)
        fetch, widen = min(self.size, k + n_excl), 1
        while True:
            ids = self._propose(q, fetch, widen)
            if n_excl:
                ids = ids[~np.isin(ids, exclude)]
            if len(ids) >= want or widen >= 64:
                break
            widen *= 4  # the probed cells held too few items: search wider
        scores = self.vectors[ids] @ q  # exact re-scoring of the proposals
        order = top_k(scores, k)
        return ids[order], scores[order]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "method": self.method, "size": self.size}
        if self.method == "ivf":
            out |= {"nlist": self.nlist, "nprobe": self.nprobe}
        else:
            out |= {"m": self.m, "ef_search": self.ef_search}
        return out


def make_index(
    vectors: np.ndarray,
    ann_threshold: int = ANN_THRESHOLD,
    method: str = "ivf",
    threads: int | None = None,
    **ann_options: Any,
) -> ExactIndex | AnnIndex:
    """Exact below `ann_threshold` items (the serving settings' ADREC_ANN_THRESHOLD), else an
    ANN index of kind `method` (ivf | hnsw) with `ann_options` (nprobe, ef_search)."""
    if len(vectors) < ann_threshold:
        return ExactIndex(vectors)
    return AnnIndex(vectors, method=method, threads=threads, **ann_options)
