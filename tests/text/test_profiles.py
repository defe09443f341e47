from __future__ import annotations

import numpy as np

from rec_models.text.profiles import ItemInfo, Profile, history_vector, item_text, profile_text

ITEMS = {
    0: ItemInfo("Toy Story", 1995, ["Animation", "Comedy"]),
    1: ItemInfo("Fargo", 1996, ["Crime", "Drama"]),
    2: ItemInfo("Heat", 1995, ["Crime", "Thriller"], text="A heist in Los Angeles."),
}


def test_item_text_has_title_year_genres_and_own_text():
    assert item_text(ITEMS[0]) == "Toy Story (1995). Genres: Animation, Comedy."
    assert item_text(ITEMS[2]).endswith("A heist in Los Angeles.")


def test_profile_names_demographics_recent_titles_and_dominant_genres():
    text = profile_text(
        Profile(age=24, gender="M", occupation="technician", history=[0, 1, 2]), ITEMS
    )
    assert text.startswith("A 24-year-old man working as a technician.")
    assert "Recently liked: Heat; Fargo; Toy Story." in text  # most recent first
    assert "Favourite genres: Crime" in text  # the dominant genre leads


def test_profile_drops_oldest_titles_to_fit_the_token_budget():
    words = lambda s: len(s.split())  # noqa: E731 - a stand-in token counter
    full = profile_text(Profile(history=[0, 1, 2]), ITEMS)
    short = profile_text(
        Profile(history=[0, 1, 2]), ITEMS, count_tokens=words, max_tokens=words(full) - 2
    )
    assert "Heat" in short and "Toy Story" not in short and words(short) <= words(full) - 2


def test_empty_profile_and_history_vector():
    assert Profile().is_empty() and not Profile(text="likes jazz").is_empty()
    emb = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(
        history_vector([0, 1], emb), np.array([1, 1, 0]) / np.sqrt(2), atol=1e-6
    )
    assert not history_vector([], emb).any()
