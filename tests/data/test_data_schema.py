"""Bring-your-own data: validation errors name file, row and column; round trip via CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rec_models.config import DataConfig
from rec_models.data import load_dataset
from rec_models.data.custom import load_custom, save_canonical
from rec_models.data.schema import Dataset, DataValidationError, validate_dataset

USERS = """user_id,age,gender,occupation,zip
1,24,M,technician,85711
2,53,F,other,94043
3,23,M,writer,32067
"""
ITEMS = """item_id,title,year,genres
10,Toy Story,1995,Animation|Comedy
20,"Heat, The",1995,Action
30,Alien,,
"""
INTER = """user_id,item_id,rating,timestamp
1,10,4,881250949
1,20,3,2020-01-01T00:00:00Z
2,30,5,881250950
"""


def write(folder: Path, users: str = USERS, items: str = ITEMS, inter: str = INTER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users.csv").write_text(users)
    (folder / "items.csv").write_text(items)
    (folder / "interactions.csv").write_text(inter)
    return folder


# (file to replace, its content, file name, row, column) for every malformed-value case
BAD_VALUES = [
    ("users", "user_id,age\n1,20\nabc,30\n3,40\n", "users.csv", 2, "user_id"),
    ("users", "user_id,age\n1,20\n2,3x\n3,40\n", "users.csv", 2, "age"),
    ("users", "user_id,age\n1,20\n2,30\n1,40\n", "users.csv", 3, "user_id"),
    ("users", "user_id,age\n1,20\n\n2,30\n3,40\n", "users.csv", 2, "user_id"),  # blank line
    ("items", "item_id,title\n10,A\n20,\n30,C\n", "items.csv", 2, "title"),
    ("items", "item_id,title\n10,A\n20,B\n30,   \n", "items.csv", 3, "title"),
    ("items", "item_id,title\n10,A\n20,B\n30,C\n20,D\n", "items.csv", 4, "item_id"),
    ("items", "item_id,title,year\n10,A,1995\n20,B,19x5\n30,C,\n", "items.csv", 2, "year"),
    ("items", "item_id,title\n10,A\n2.5,B\n30,C\n", "items.csv", 2, "item_id"),
    ("inter", "user_id,item_id,rating\n1,10,4\n2,20,abc\n", "interactions.csv", 2, "rating"),
    ("inter", "user_id,item_id,rating\n1,10,4\n2,20,\n", "interactions.csv", 2, "rating"),
    ("inter", "user_id,item_id\n1,10\n2,20\n9,30\n", "interactions.csv", 3, "user_id"),
    ("inter", "user_id,item_id\n1,10\n2,99\n", "interactions.csv", 2, "item_id"),
    ("inter", "user_id,item_id\n1,10\n1.5,20\n", "interactions.csv", 2, "user_id"),
    ("inter", "user_id,item_id\n1,10\n,20\n", "interactions.csv", 2, "user_id"),
    ("inter", "user_id,item_id,timestamp\n1,10,5\n2,20,yesterday\n", "interactions.csv", 2,
     "timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "content", "file", "row", "column"), BAD_VALUES)
def test_bad_value_names_file_row_column(
    tmp_path: Path, kind: str, content: str, file: str, row: int, column: str
) -> None:
    write(tmp_path, **{kind: content})
    with pytest.raises(DataValidationError) as err:
        load_custom(tmp_path)
    msg = str(err.value)
    assert file in msg and f"row {row} " in msg and f"column '{column}'" in msg, msg
    assert "1-based data row, header not counted" in msg
    assert (err.value.file, err.value.row, err.value.column) == (file, row, column)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("kind", "content", "file", "column"),
    [
        ("items", "item_id,name\n10,A\n", "items.csv", "title"),
        ("users", "id,age\n1,20\n", "users.csv", "user_id"),
        ("inter", "user_id,rating\n1,4\n", "interactions.csv", "item_id"),
    ],
)
def test_missing_column(tmp_path: Path, kind: str, content: str, file: str, column: str) -> None:
    write(tmp_path, **{kind: content})
    with pytest.raises(DataValidationError, match="missing required column") as err:
        load_custom(tmp_path)
    msg = str(err.value)
    assert file in msg and "row header" in msg and f"column '{column}'" in msg, msg


@pytest.mark.parametrize("content", ["", "user_id,item_id,rating\n", "user_id,item_id\n\n\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    write(tmp_path, inter=content)
    with pytest.raises(DataValidationError, match="empty file") as err:
        load_custom(tmp_path)
    assert "interactions.csv" in str(err.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    (write(tmp_path) / "items.csv").unlink()
    with pytest.raises(DataValidationError, match="missing file") as err:
        load_custom(tmp_path)
    assert "items.csv" in str(err.value)
    with pytest.raises(DataValidationError, match="does not exist"):
        load_custom(tmp_path / "nowhere")


def test_both_csv_and_parquet_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path)
    pd.DataFrame({"user_id": [1]}).to_parquet(tmp_path / "users.parquet")
    with pytest.raises(DataValidationError, match=r"both users\.csv and users\.parquet"):
        load_custom(tmp_path)


def test_parquet_bad_value_and_happy_path(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "interactions.csv").unlink()
    bad = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [10, 20, 77], "rating": [4.0, 3.0, 1.0]})
    bad.to_parquet(tmp_path / "interactions.parquet")
    with pytest.raises(DataValidationError) as err:
        load_custom(tmp_path)
    msg = str(err.value)
    assert "interactions.parquet" in msg and "row 3 " in msg and "column 'item_id'" in msg, msg

    times = pd.to_datetime(["2020-01-01 00:00:00", "2020-01-01 00:00:10"])  # naive -> UTC
    good = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 20], "timestamp": times})
    good.to_parquet(tmp_path / "interactions.parquet")
    inter = load_custom(tmp_path).interactions
    assert inter["timestamp"].tolist() == [1577836800, 1577836810]
    assert inter["rating"].tolist() == [1.0, 1.0]  # rating column optional


def test_happy_path_types_and_defaults(tmp_path: Path) -> None:
    ds = load_custom(write(tmp_path / "shop"))
    assert ds.name == "shop"
    assert list(ds.users.columns) == ["user_id", "age", "gender", "occupation", "zip"]
    assert list(ds.items.columns) == ["item_id", "title", "year", "genres"]
    assert list(ds.interactions.columns) == [
        "user_id", "item_id", "rating", "timestamp", "click", "conversion"
    ]  # fmt: skip
    assert ds.users["user_id"].dtype == np.int64 and ds.items["item_id"].dtype == np.int64
    assert ds.items["year"].dtype == "Int64"
    assert ds.items["year"].isna().tolist() == [False, False, True]
    assert ds.items["title"].tolist() == ["Toy Story", "Heat, The", "Alien"]
    inter = ds.interactions
    assert [str(inter[c].dtype) for c in inter] == [
        "int64", "int64", "float64", "int64", "bool", "bool"
    ]  # fmt: skip
    assert inter["timestamp"].tolist() == [881250949, 1577836800, 881250950]  # ISO-8601 mixed in
    assert inter["click"].tolist() == [True, False, True]  # rating >= positive_threshold 4
    assert not inter["conversion"].any()
    assert 3 in ds.users["user_id"].tolist()  # a user without interactions is fine

    (tmp_path / "shop" / "interactions.csv").write_text("user_id,item_id\n2,10\n1,30\n")
    inter = load_custom(tmp_path / "shop").interactions
    assert inter["rating"].tolist() == [1.0, 1.0] and inter["timestamp"].tolist() == [0, 1]
    assert inter["click"].all()  # no outcome column: a log of clicks


def test_save_canonical_round_trip_is_atomic(tmp_path: Path) -> None:
    ds = load_custom(write(tmp_path / "src"))
    ds.users["text"] = pd.Series(["likes sci-fi", None, "reads, a lot\nand more"], dtype="string")
    out = save_canonical(ds, tmp_path / "out" / "canon")
    assert sorted(p.name for p in out.iterdir()) == ["interactions.csv", "items.csv", "users.csv"]
    back = load_custom(out)
    for kind in ("users", "items", "interactions"):
        pd.testing.assert_frame_equal(getattr(back, kind), getattr(validate_dataset(ds), kind))
    ds.interactions = ds.interactions.iloc[:1]
    save_canonical(ds, out)  # replaces the previous folder
    assert len(load_custom(out).interactions) == 1
    assert [p.name for p in out.parent.iterdir()] == ["canon"]  # no temp folders left behind


def test_save_canonical_refuses_invalid_data(tmp_path: Path) -> None:
    ds = load_custom(write(tmp_path / "src"))
    ds.interactions.loc[0, "item_id"] = 999
    with pytest.raises(DataValidationError, match="unknown id 999"):
        save_canonical(ds, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_validate_dataset_any_frames() -> None:
    ds = Dataset(
        "mem",
        users=pd.DataFrame({"user_id": ["1", "2"]}),
        items=pd.DataFrame({"item_id": [5.0], "title": ["X"]}),
        interactions=pd.DataFrame(
            {"user_id": [2], "item_id": [5], "rating": [3], "timestamp": [9]}
        ),
    )
    out = validate_dataset(ds)
    assert out.users["user_id"].tolist() == [1, 2] and out.items["item_id"].dtype == np.int64
    assert out.interactions["rating"].dtype == np.float64
    assert out.interactions["click"].tolist() == [True]  # no flags: every row a click
    ds.interactions = ds.interactions.drop(columns="timestamp")
    with pytest.raises(DataValidationError, match="column 'timestamp'"):
        validate_dataset(ds)


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    ds = load_dataset(DataConfig(source="custom", path=str(write(tmp_path / "c"))))
    assert len(ds.interactions) == 3
    with pytest.raises(ValueError, match="movielens, obd, synthetic, custom"):
        load_dataset(DataConfig(source="kaggle"))
