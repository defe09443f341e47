"""The scorer bundle (README "Scorer bundle"), loaded and checked against its contract.

`ScorerBundle.load(folder)` reads config.json, arrays.npz (allow_pickle=False) and catalog.json,
and raises `BundleError` naming the file and key when something is missing or mis-shaped, so a bad
export fails at start-up rather than on the first request. The ONNX files are opened by the runtime.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_models.serving.errors import BundleError
from rec_models.text.profiles import ItemInfo

FILES = ("user_tower.onnx", "scorer.onnx", "arrays.npz", "catalog.json", "config.json")
ARRAYS = (
    "item_ids", "item_emb", "item_factors", "item_vectors", "item_popularity",
    "user_ids", "user_factors", "history_indptr", "history_items",
    "positive_indptr", "positive_items",
)  # fmt: skip
CONFIG_KEYS = (
    "embedding_dim",
    "factors",
    "user_dim",
    "max_history",
    "calibration",
    "foldin_reg",
    "max_length",
)


class IdMap:
    """External ids -> rows, vectorised (a sorted copy + searchsorted, no per-id Python dict)."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted = self.ids[self._order]
        if len(self._sorted) > 1 and (np.diff(self._sorted) == 0).any():
            raise BundleError("ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, values: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, known) for each value; rows of unknown values are -1."""
        v = np.asarray(values, dtype=np.int64).reshape(-1)
        pos = np.clip(np.searchsorted(self._sorted, v), 0, max(len(self._sorted) - 1, 0))
        known = (self._sorted[pos] == v) if len(self._sorted) else np.zeros(len(v), bool)
        return np.where(known, self._order[pos], -1), known

    def row(self, value: int) -> int | None:
        rows, known = self.rows([value])
        return int(rows[0]) if known[0] else None


class CatalogItems(Mapping[int, ItemInfo]):
    """item_id -> ItemInfo, built on access (a 1M-item catalog keeps plain lists, not objects)."""

    def __init__(self, ids: IdMap, items: list[dict[str, Any]]) -> None:
        self._ids, self._items = ids, items

    def __getitem__(self, item_id: int) -> ItemInfo:
        row = self._ids.row(item_id)
        if row is None:
            raise KeyError(item_id)
        it = self._items[row]
        return ItemInfo(it["title"], it.get("year"), list(it.get("genres") or []), it.get("text"))

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, int | np.integer) and self._ids.row(int(item_id)) is not None

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self._ids.ids)

    def __len__(self) -> int:
        return len(self._ids)


@dataclass
class ScorerBundle:
    folder: Path
    config: dict[str, Any]
    arrays: dict[str, np.ndarray]
    items: list[dict[str, Any]]  # catalog items, in the row order of the arrays
    users: list[dict[str, Any]]  # catalog users, in the row order of user_ids
    item_map: IdMap
    user_map: IdMap

    @property
    def titles(self) -> list[str]:
        return [it["title"] for it in self.items]

    def item_infos(self) -> CatalogItems:
        return CatalogItems(self.item_map, self.items)

    def history(self, user_row: int, positive: bool = False) -> np.ndarray:
        """A known user's training item ids, oldest first (all of them, or the positive ones)."""
        name = "positive" if positive else "history"
        indptr = self.arrays[f"{name}_indptr"]
        return self.arrays[f"{name}_items"][indptr[user_row] : indptr[user_row + 1]]

    @classmethod
    def load(cls, folder: str | Path) -> ScorerBundle:
        folder = Path(folder)
        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing:
            raise BundleError(f"scorer bundle {folder}: missing {', '.join(missing)}")
        config = json.loads((folder / "config.json").read_text())
        absent = [k for k in CONFIG_KEYS if k not in config]
        if absent:
            raise BundleError(f"{folder / 'config.json'}: missing keys {', '.join(absent)}")
        with np.load(folder / "arrays.npz", allow_pickle=False) as z:
            absent = [k for k in ARRAYS if k not in z.files]
            if absent:
                raise BundleError(f"{folder / 'arrays.npz'}: missing arrays {', '.join(absent)}")
            arrays = {k: z[k] for k in z.files}
        catalog = json.loads((folder / "catalog.json").read_text())
        item_map, user_map = IdMap(arrays["item_ids"]), IdMap(arrays["user_ids"])
        items = _in_row_order(catalog.get("items", []), item_map, "item_id", folder)
        users = _in_row_order(catalog.get("users", []), user_map, "user_id", folder)
        bundle = cls(folder, config, arrays, items, users, item_map, user_map)
        bundle.check_shapes()
        return bundle

    def check_shapes(self) -> None:
        a, c = self.arrays, self.config
        n, u = len(a["item_ids"]), len(a["user_ids"])
        expect = {
            "item_emb": (n, c["embedding_dim"]),
            "item_factors": (n, c["factors"]),
            "item_vectors": (n, c["user_dim"]),
            "item_popularity": (n,),
            "user_factors": (u, c["factors"]),
            "history_indptr": (u + 1,),
            "positive_indptr": (u + 1,),
        }
        for key, shape in expect.items():
            if tuple(a[key].shape) != shape:
                raise BundleError(f"arrays.npz: '{key}' has shape {a[key].shape}, expected {shape}")
        for name in ("history", "positive"):
            if a[f"{name}_indptr"][-1] != len(a[f"{name}_items"]):
                raise BundleError(
                    f"arrays.npz: '{name}_indptr' does not end at len('{name}_items')"
                )
            _, known = self.item_map.rows(a[f"{name}_items"])
            if not known.all():
                raise BundleError(f"arrays.npz: '{name}_items' holds ids missing from 'item_ids'")


def _in_row_order(
    records: list[dict[str, Any]], ids: IdMap, key: str, folder: Path
) -> list[dict[str, Any]]:
    if len(records) != len(ids):
        raise BundleError(
            f"{folder / 'catalog.json'}: {len(records)} {key}s, arrays.npz has {len(ids)}"
        )
    rows, known = ids.rows([r[key] for r in records])
    if not known.all():
        raise BundleError(f"{folder / 'catalog.json'}: {key}s missing from arrays.npz")
    out: list[dict[str, Any]] = [{}] * len(records)
    for row, rec in zip(rows.tolist(), records, strict=True):
        out[row] = rec
    return out
