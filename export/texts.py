"""The texts that gates, calibration and distillation use.

Catalog texts come from `artifacts/texts.json` (`make train`); generic English sentences outside
the catalog's domain from `export/data/generic_sentences.txt`, and other everyday sentences for
calibration from `export/data/calibration_sentences.txt` (both written for this project, by hand
and from templates; no dataset copied; no sentence in both). `split_texts` holds a seeded slice
of the catalog back: the gates measure texts that no variant was calibrated, tuned or distilled
on.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
GENERIC_FILE = DATA / "generic_sentences.txt"  # gate only
CALIBRATION_FILE = DATA / "calibration_sentences.txt"  # build only: recipe choice, calibration


@dataclass(frozen=True)
class Texts:
    items: list[str]
    users: list[str]

    @property
    def all(self) -> list[str]:
        return self.items + self.users


@dataclass(frozen=True)
class GateSplit:
    """Unseen gate texts and the texts every build step may learn from.

    `catalog`: held-out items + held-out user profiles; `generic`: out-of-domain sentences;
    `distill`: the rest of the catalog (distillation, quantization calibration, the per-layer
    sensitivity probe). `gate` = catalog + generic; neither part is in `distill`."""

    catalog: list[str]
    generic: list[str]
    distill: list[str]

    @property
    def gate(self) -> list[str]:
        return self.catalog + self.generic


def load_texts(artifacts_dir: Path) -> Texts:
    path = Path(artifacts_dir) / "texts.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make train` first (it writes the texts)")
    data = json.loads(path.read_text())
    items, users = list(data.get("items", [])), list(data.get("users", []))
    if not items or not users:
        raise ValueError(f"{path}: 'items' and 'users' must be non-empty lists of texts")
    return Texts(items, users)


def load_generic(path: Path = GENERIC_FILE) -> list[str]:
    """The out-of-domain gate sentences, one a line (blank lines skipped)."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def load_calibration(path: Path = CALIBRATION_FILE) -> list[str]:
    """Out-of-domain sentences for build steps (never in the gate): one a line."""
    gate = set(load_generic())
    return [t for t in load_generic(path) if t not in gate]


def split_texts(texts: Texts, n_items: int = 150, n_users: int = 300, seed: int = 42) -> GateSplit:
    """A seeded held-out slice of the catalog (at most a tenth of the items and half the users)
    plus the generic sentences. Held out by text, so a duplicate profile or title cannot leak
    into what the builders learn from."""
    rng = random.Random(seed)
    gate_items = rng.sample(texts.items, min(n_items, len(texts.items) // 10))
    user_idx = set(rng.sample(range(len(texts.users)), min(n_users, len(texts.users) // 2)))
    gate_users = [t for i, t in enumerate(texts.users) if i in user_idx]
    held_out = set(gate_items) | set(gate_users)
    generic = [t for t in load_generic() if t not in held_out]
    seen = held_out | set(generic)
    distill = [t for t in texts.all if t not in seen]
    return GateSplit(catalog=gate_items + gate_users, generic=generic, distill=distill)
