"""Dataset presets (rec_models/config_presets.py) lie beneath a config file: MovieLens gets its
own model settings, the click logs keep the defaults, and a key the file sets wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from rec_models import config_presets
from rec_models.config import TrainConfig, load_config


@pytest.fixture
def preset(monkeypatch):
    monkeypatch.setitem(config_presets.PRESETS, "movielens", {"mf": {"factors": 7, "reg": 3.0}})


def test_movielens_gets_its_preset_and_click_logs_do_not(preset) -> None:
    assert load_config(None).mf.factors == 7
    assert load_config(None, "obd").mf.factors == TrainConfig().mf.factors
    assert load_config(None, "synthetic").mf.reg == TrainConfig().mf.reg


def test_a_file_overrides_the_preset_key_by_key(preset, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[mf]\nfactors = 11\n")
    cfg = load_config(path)
    assert (cfg.mf.factors, cfg.mf.reg) == (11, 3.0)
    path.write_text('[data]\nsource = "obd"\npath = "data/obd"\n')
    assert load_config(path).mf.factors == TrainConfig().mf.factors


def test_the_shipped_movielens_preset_only_names_known_keys() -> None:
    cfg = load_config(None)  # an unknown key would raise ConfigError here
    for table, values in config_presets.PRESETS["movielens"].items():
        for key, value in values.items():
            assert getattr(getattr(cfg, table), key) == value
