"""`python -m rec_models.retrain` end to end on a small MovieLens subset and real event logs
(written through the SQLiteSink), against a model store of its own: a first version into an
empty store, a deliberately worse model refused with the store and artifacts/ untouched, then a
second version compared with the first and published beside it; bad event logs get one line."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from rec_models.config import load_config
from rec_models.data import load_dataset
from rec_models.serving.store import SCORER_NAME
from tests.retrain.support import (
    CRIPPLED,
    FAST,
    config_text,
    items_of,
    run_module,
    subset,
    write_log,
)

GATE = "ndcg_margin = 0.5\nauc_margin = 0.5\nmin_holdout_clicks = 5"
STRICT = "ndcg_margin = 0.0\nauc_margin = 0.0\nmin_holdout_clicks = 5"
VERSIONS = (
    "import json; from rec_models.versions import list_versions, resolve_version as r; "
    "print(json.dumps({'all': [{'tag': v.tag, 'metadata': v.metadata, 'labels': v.labels} "
    "for v in list_versions()], 'current': r('current').tag, 'one': r('1').tag, "
    "'two': r('adrec-scorer:2').tag}))"
)


class World:
    def __init__(self, root: Path) -> None:
        self.root, self.data = root, root / "data"
        self.hidden = subset(self.data)
        self.items = items_of(self.data)
        self.art, self.store = root / "artifacts", root / "bentoml"
        self.logs = {"first": root / "first.sqlite", "second": root / "second.sqlite"}
        write_log(self.logs["first"], self.hidden, self.items, responses=150, seed=1)
        write_log(self.logs["second"], self.hidden, self.items, responses=300, seed=2)

    def retrain(self, log: Path, retrain: str = GATE, models: dict[str, str] = FAST):
        config = self.root / "config.toml"
        config.write_text(config_text(self.data, retrain, models))
        args = ["--config", str(config), "--artifacts", str(self.art), "--events", str(log)]
        return run_module("rec_models.retrain", args, self.store)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress bar (training prints them on stderr)


def one_line(result, code: int) -> str:
    """The one line on stderr besides progress bars, which is the last."""
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    said = [line for line in lines if not PROGRESS.search(line)]
    assert len(said) == 1 and said[0] == lines[-1], result.stderr[-3000:]
    return said[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("retrain"))


@pytest.fixture(scope="module")
def first(world):
    result = world.retrain(world.logs["first"])
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def store_list(world) -> str:
    result = run_module("bentoml", ["models", "list"], world.store)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_first_version_into_an_empty_store(world, first):
    assert f"published {SCORER_NAME}:1" in first.stdout
    assert f"{SCORER_NAME}:1" in store_list(world)
    config = json.loads((world.art / "train_config.json").read_text())
    # later steps rebuild the same dataset: the snapshot lies in artifacts/, not the staging
    assert config["data"]["logged"] == str(world.art / "logged.csv")
    served = load_dataset(load_config(world.art / "train_config.json").data)
    base = pd.read_csv(world.data / "interactions.csv")
    logged = pd.read_csv(world.art / "logged.csv")
    assert len(logged) == 1500 and len(served.interactions) == len(base) + len(logged)
    assert served.interactions["click"].sum() == len(base) + logged["label"].sum()
    assert (world.art / "onnx" / "scorer" / "scorer.onnx").is_file()
    assert not [p for p in world.art.iterdir() if p.name.startswith(".retrain")]


def test_worse_model_is_refused_and_nothing_changes(world, first):
    before_store, before_art = digest(world.store / "models"), digest(world.art)
    # a model that cannot rank, compared with zero margin
    result = world.retrain(world.logs["second"], STRICT, CRIPPLED)
    line = one_line(result, 1)
    assert line.startswith(f"refused: not published, worse than {SCORER_NAME}:1: "), line
    assert "falls by more than 0" in line
    assert digest(world.store / "models") == before_store
    assert digest(world.art) == before_art
    assert f"{SCORER_NAME}:2" not in store_list(world)


@pytest.fixture(scope="module")
def second(world, first):
    result = world.retrain(world.logs["second"])
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_second_version_is_compared_published_and_the_first_kept(world, second):
    assert f"published {SCORER_NAME}:2 (kept: {SCORER_NAME}:1)" in second.stdout
    listed = store_list(world)
    assert f"{SCORER_NAME}:1" in listed and f"{SCORER_NAME}:2" in listed
    result = run_module("-c", [VERSIONS], world.store)
    assert result.returncode == 0, result.stderr[-3000:]
    versions = json.loads(result.stdout)
    assert versions["current"] == versions["two"] == f"{SCORER_NAME}:2"
    assert versions["one"] == f"{SCORER_NAME}:1"
    meta = versions["all"][1]["metadata"]
    assert 0 < meta["metrics"]["ndcg@10"] <= 1 and 0 < meta["metrics"]["ctr_auc"] <= 1
    assert meta["parent"] == f"{SCORER_NAME}:1" and versions["all"][1]["labels"]["parent"] == "1"
    holdout = meta["holdout"]
    assert holdout["new"]["impressions"] == holdout["current"]["impressions"] > 0
    names = {c["name"] for c in meta["gate"]["comparisons"]}
    assert {"holdout ndcg@10", "holdout auc", "recorded ndcg@10"} <= names
    assert meta["events"]["impressions"] == 3000
    # every hold-out impression is ranked, or left out as an item the user had clicked before
    left_out = holdout["left_out_clicked_before"]
    assert meta["events"]["holdout_impressions"] == holdout["new"]["impressions"] + left_out
    assert f"({left_out} left out: items the user had clicked before" in second.stdout
    # the served probabilities: Platt fitted on the hold-out's logged impressions
    calibration = holdout["calibration"]
    served = json.loads((world.art / "onnx" / "scorer" / "config.json").read_text())
    assert served["calibration"] == {"a": calibration["a"], "b": calibration["b"]}
    assert abs(calibration["mean_predicted_ctr"] - calibration["observed_ctr"]) < 0.02
    for c in meta["gate"]["comparisons"]:
        assert f"{c['name']} {c['current']:.4f} -> {c['new']:.4f}" in second.stdout


def test_bad_event_logs_get_one_line(world, first):
    cases = {}
    missing = world.root / "missing.sqlite"
    cases["no such file"] = missing
    text = world.root / "notes.sqlite"
    text.write_text("not a database")
    cases["not a readable event log"] = text
    other = world.root / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    cases["not an event log"] = other
    foreign = world.root / "foreign.sqlite"  # a log of another catalog
    write_log(foreign, world.hidden, world.items + 100_000, responses=3, seed=3)
    cases["is not in dataset"] = foreign
    before = digest(world.store / "models")
    for expected, path in cases.items():
        line = one_line(world.retrain(path), 2)
        assert line.startswith("error: ") and expected in line, line
        assert str(path) in line, line
    assert digest(world.store / "models") == before
