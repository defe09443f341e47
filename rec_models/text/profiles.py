"""Item (ad) descriptions and user profile texts.

Light on purpose: the service builds cold-user profiles with the same code, so this module
imports only numpy (neither torch nor pandas).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_TITLES = 10  # most recent positively rated titles named in a profile
MAX_GENRES = 3  # dominant genres named in a profile


@dataclass
class ItemInfo:
    title: str
    year: int | None = None
    genres: list[str] = field(default_factory=list)
    text: str | None = None  # free description (ad copy) when the catalog has one


@dataclass
class Profile:
    """What we know of a user: demographics, behaviour (item ids, oldest first), free text."""

    age: int | None = None
    gender: str | None = None
    occupation: str | None = None
    history: list[int] = field(default_factory=list)
    text: str | None = None

    def is_empty(self) -> bool:
        return (
            self.age is None
            and not self.gender
            and not self.occupation
            and not self.history
            and not (self.text and self.text.strip())
        )


def item_text(item: ItemInfo) -> str:
    """'Star Wars (1977). Genres: Action, Adventure, Sci-Fi.' plus the item's own text, if any."""
    head = item.title.strip()
    if item.year is not None and f"({item.year})" not in head:
        head = f"{head} ({item.year})"
    parts = [head + "."]
    if item.genres:
        parts.append("Genres: " + ", ".join(item.genres) + ".")
    if item.text and item.text.strip():
        parts.append(item.text.strip())
    return " ".join(parts)


_GENDER = {"m": "man", "male": "man", "f": "woman", "female": "woman"}


def demographics_text(profile: Profile) -> str:
    words: list[str] = []
    if profile.age is not None:
        words.append(f"{profile.age}-year-old")
    if profile.gender:
        words.append(_GENDER.get(profile.gender.strip().lower(), profile.gender.strip()))
    if not words:
        words.append("person")
    occupation = (profile.occupation or "").strip()
    if occupation and occupation.lower() not in ("none", "other"):
        article = "an" if occupation[0].lower() in "aeiou" else "a"
        words.append(f"working as {article} {occupation}")
    if words == ["person"]:
        return ""
    return ("An " if words[0][0] in "8aeiou" else "A ") + " ".join(words) + "."


def dominant_genres(
    history: Sequence[int], items: Mapping[int, ItemInfo], n: int = MAX_GENRES
) -> list[str]:
    counts = Counter(g for i in history if i in items for g in items[i].genres)
    return [g for g, _ in counts.most_common(n)]


def profile_text(
    profile: Profile,
    items: Mapping[int, ItemInfo],
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 128,
) -> str:
    """Profile text from demographics, recent titles, dominant genres and free text.

    `profile.history` holds positively rated item ids, oldest first. Titles are dropped (oldest
    first) until `count_tokens(text) <= max_tokens` when a token counter is given.
    """
    recent = [i for i in reversed(profile.history) if i in items][:MAX_TITLES]
    genres = dominant_genres(profile.history, items)
    free = (profile.text or "").strip()

    def render(titles: list[int]) -> str:
        parts = [demographics_text(profile)]
        if titles:
            parts.append("Recently liked: " + "; ".join(items[i].title for i in titles) + ".")
        if genres:
            parts.append("Favourite genres: " + ", ".join(genres) + ".")
        if free:
            parts.append(free)
        return " ".join(p for p in parts if p)

    text = render(recent)
    if count_tokens is not None:
        while recent and count_tokens(text) > max_tokens:
            recent = recent[:-1]
            text = render(recent)
    return text


def history_vector(
    history: Sequence[int], item_emb: np.ndarray, half_life: float = 0.0
) -> np.ndarray:
    """The profile as a vector: L2-normalised (optionally recency-weighted) mean of the history's
    item embeddings; `history` holds row indices of `item_emb`, oldest first. Zeros if empty."""
    if len(history) == 0:
        return np.zeros(item_emb.shape[1], dtype=np.float32)
    emb = item_emb[np.asarray(history)]  # (L, d)
    w = (
        np.ones(len(history))
        if half_life <= 0
        else 0.5 ** (np.arange(len(history))[::-1] / half_life)
    )
    vec = (w[:, None] * emb).sum(0)
    return (vec / max(float(np.linalg.norm(vec)), 1e-12)).astype(np.float32)
