"""What a row means: event logs fold into impressions, labels and ratings mark clicks, errors
name file, row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rec_models.config import ConfigError, DataConfig
from rec_models.data import load_dataset
from rec_models.data.custom import load_custom, save_canonical
from rec_models.data.events import has_impressions, rows_of, to_canonical
from rec_models.data.schema import DataValidationError

USERS = "user_id\n1\n2\n"
ITEMS = "item_id,title\n10,A\n20,B\n30,C\n"


def folder(tmp: Path, inter: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "users.csv").write_text(USERS)
    (tmp / "items.csv").write_text(ITEMS)
    (tmp / "interactions.csv").write_text(inter)
    return tmp


def rows(inter: pd.DataFrame) -> list[tuple]:
    cols = ["user_id", "item_id", "timestamp", "click", "conversion"]
    return [tuple(r) for r in inter[cols].itertuples(index=False)]


def test_event_log_folds_into_impressions(tmp_path: Path) -> None:
    log = """user_id,item_id,event,timestamp
1,10,impression,100
1,20,impression,100
1,10,click,105
2,30,click,200
1,10,impression,300
1,10,click,301
1,10,conversion,400
2,20,conversion,500
2,10,impression,600
2,10,impression,610
2,10,click,620
"""
    inter = load_custom(folder(tmp_path, log)).interactions
    assert rows(inter) == [
        (1, 10, 100, True, False),  # the click at 105 marks it
        (1, 20, 100, False, False),  # shown, never clicked: a shown negative
        (2, 30, 200, True, False),  # a click without an impression stands for one
        (1, 10, 300, True, True),  # clicked at 301, converted at 400 (the latest click)
        (2, 20, 500, True, True),  # a conversion alone implies the click and the impression
        (2, 10, 600, False, False),  # the click at 620 marks the latest earlier impression
        (2, 10, 610, True, False),
    ]
    assert has_impressions(inter)


def test_same_time_events_and_file_order(tmp_path: Path) -> None:
    log = "user_id,item_id,event,timestamp\n1,10,click,5\n1,10,impression,5\n1,20,Impression,6\n"
    inter = load_custom(folder(tmp_path, log)).interactions
    # at one timestamp the impression comes before its click; case and spaces do not matter
    assert rows(inter) == [(1, 10, 5, True, False), (1, 20, 6, False, False)]


def test_label_and_conversion_columns(tmp_path: Path) -> None:
    log = "user_id,item_id,label,conversion\n1,10,1,0\n1,20,0,0\n2,30,0,1\n2,10,1,1\n"
    inter = load_custom(folder(tmp_path, log)).interactions
    assert inter["click"].tolist() == [True, False, True, True]  # a conversion is a click
    assert inter["conversion"].tolist() == [False, False, True, True]
    assert inter["rating"].tolist() == [1.0] * 4 and inter["timestamp"].tolist() == [0, 1, 2, 3]


def test_rating_threshold_is_what_a_click_is(tmp_path: Path) -> None:
    log = "user_id,item_id,rating\n1,10,1\n1,20,0\n2,30,0\n"
    path = folder(tmp_path, log)
    inter = load_custom(path, positive_threshold=1.0).interactions
    assert inter["click"].tolist() == [True, False, False]
    # rows = interactions (MovieLens' preset): every row is a positive, the rating kept
    inter = load_custom(path, rows="interactions", positive_threshold=1.0).interactions
    assert inter["click"].all() and inter["rating"].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("inter", "row", "column", "reason"),
    [
        ("user_id,item_id,event\n1,10,impression\n1,10,purchase\n", 2, "event", "unknown event"),
        ("user_id,item_id,label\n1,10,1\n1,20,2\n", 2, "label", "expected 0 or 1"),
        ("user_id,item_id,label,conversion\n1,10,1,yes\n", 1, "conversion", "expected 0 or 1"),
        ("user_id,item_id,label\n1,10,0\n1,20,0\n", None, "label", "no row is a click"),
        ("user_id,item_id,rating\n1,10,1\n", None, "rating", "positive_threshold 4.0"),
        ("user_id,item_id,event\n1,10,impression\n", None, "event", "no click or conversion"),
        ("user_id,item_id,click\n1,10,1\n", "header", "click", "put a 0/1 click outcome"),
        ("user_id,item_id,event,label\n1,10,click,1\n", "header", "label", "event or a label"),
        ("user_id,item_id,event,conversion\n1,10,click,1\n", 1, "conversion", "event log"),
    ],
)
def test_bad_outcomes_name_row_and_column(tmp_path, inter, row, column, reason) -> None:
    with pytest.raises(DataValidationError, match=reason) as err:
        load_custom(folder(tmp_path, inter))
    assert (err.value.file, err.value.row, err.value.column) == ("interactions.csv", row, column)


def test_interactions_rows_refuse_an_event_log(tmp_path: Path) -> None:
    path = folder(tmp_path, "user_id,item_id,event\n1,10,click\n")
    with pytest.raises(DataValidationError, match=r"needs data\.rows = 'impressions'"):
        load_custom(path, rows="interactions")


def test_rows_setting_resolves_per_source() -> None:
    assert rows_of(DataConfig()) == "interactions"  # MovieLens keeps its meaning
    assert rows_of(DataConfig(source="custom")) == "impressions"
    assert rows_of(DataConfig(source="obd")) == "impressions"
    assert rows_of(DataConfig(source="custom", rows="interactions")) == "interactions"
    with pytest.raises(ConfigError, match=r"data\.rows 'clicks'"):
        rows_of(DataConfig(rows="clicks"))
    with pytest.raises(ConfigError, match=r"data\.rows"):
        load_dataset(DataConfig(source="custom", rows="clicks"))


def test_save_canonical_round_trips_clicks_and_conversions(tmp_path: Path) -> None:
    log = "user_id,item_id,label,conversion,timestamp\n1,10,1,1,7\n1,20,0,0,8\n2,30,1,0,9\n"
    ds = load_custom(folder(tmp_path / "src", log))
    out = save_canonical(ds, tmp_path / "out")
    header = (out / "interactions.csv").read_text().splitlines()[0]
    assert header == "user_id,item_id,rating,timestamp,label,conversion"
    pd.testing.assert_frame_equal(load_custom(out).interactions, ds.interactions)


def test_to_canonical_keeps_row_order_of_typed_frames() -> None:
    frame = pd.DataFrame({"user_id": [2, 1], "item_id": [10, 20], "rating": [5.0, 2.0]})
    out = to_canonical(frame, "mem", positive_threshold=4.0)
    assert out["user_id"].tolist() == [2, 1] and out["click"].tolist() == [True, False]
