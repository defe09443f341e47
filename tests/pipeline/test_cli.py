"""`python -m rec_models.train` with bad input: one clear line, exit status 2, no traceback, no
artifacts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rec_models.config import ROOT


def train_cli(tmp: Path, config: str) -> subprocess.CompletedProcess[str]:
    (tmp / "cfg.toml").write_text(config)
    args = ["--config", str(tmp / "cfg.toml"), "--artifacts", str(tmp / "art")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "rec_models.train", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip


def dataset(tmp: Path, interactions: str) -> Path:
    folder = tmp / "shop"
    folder.mkdir()
    (folder / "users.csv").write_text("user_id,age\n1,30\n2,40\n")
    (folder / "items.csv").write_text("item_id,title\n10,Red shoes\n20,Blue hat\n")
    (folder / "interactions.csv").write_text(interactions)
    return folder


def assert_one_line(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: ")
    for part in parts:
        assert part in lines[0], lines[0]


def test_bad_row_names_file_row_and_column(tmp_path: Path) -> None:
    folder = dataset(tmp_path, "user_id,item_id,label\n1,10,1\n2,30,0\n")
    result = train_cli(tmp_path, f'[data]\nsource = "custom"\npath = "{folder}"\n')
    assert_one_line(result, "interactions.csv", "row 2", "column 'item_id'", "unknown id 30")
    art = tmp_path / "art"
    assert not (art / "metrics.json").exists() and not list(art.glob(".train-*"))


def test_bad_event_value(tmp_path: Path) -> None:
    folder = dataset(tmp_path, "user_id,item_id,event\n1,10,impression\n2,20,clicked\n")
    result = train_cli(tmp_path, f'[data]\nsource = "custom"\npath = "{folder}"\n')
    assert_one_line(result, "interactions.csv", "row 2", "column 'event'", "'clicked'")


def test_bad_config_key_and_value(tmp_path: Path) -> None:
    assert_one_line(train_cli(tmp_path, "[data]\nthreshold = 1\n"), "unknown key 'data.threshold'")
    assert_one_line(train_cli(tmp_path, '[data]\nrows = "clicks"\n'), "data.rows 'clicks'")
    assert_one_line(train_cli(tmp_path, "[data\n"), "not valid TOML")


def test_missing_dataset_folder(tmp_path: Path) -> None:
    config = f'[data]\nsource = "obd"\npath = "{tmp_path / "nowhere"}"\n'
    assert_one_line(train_cli(tmp_path, config), "make data DATASET=obd")
