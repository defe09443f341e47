"""kill -9 of a real `python -m rec_models.train` (a small MovieLens subset) at several points:
while it trains, once its staging folder holds models, right after its commit point and midway
through its swaps. Before the commit point the previous run's artifacts stay byte for byte and
load; after it, `recover` (run first by the next train or export) completes the new run: every
file one run's, never a mix, and no leftover folder for a later run to take for complete."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import tree
from subsets import movielens_subset

from rec_models.artifact_publish import JOURNAL, recover
from rec_models.config import ROOT
from rec_models.models.base import Recommender

pytestmark = pytest.mark.skipif(
    not (ROOT / "data" / "ml-100k" / ".complete").is_file(), reason="no data: run `make data`"
)
TIMEOUT_S = 300  # a generous bound for one small run on a busy machine, not a target
# A train run that SIGKILLs itself inside its publish: after the journal (the commit point) and
# before the first swap ("commit"), or after the second swap ("midway").
HOOKED = """
import os, signal, sys
import rec_models.artifact_publish as ap
from rec_models.train import main

where, real_replace, swaps = sys.argv[1], os.replace, []

def forward(artifacts, plan):
    if where == "commit":
        os.kill(os.getpid(), signal.SIGKILL)
    def replace(src, dst):
        swaps.append(dst)
        if len(swaps) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
    ap.os.replace = replace
    real_forward(artifacts, plan)

real_forward, ap._roll_forward = ap._roll_forward, forward
main(sys.argv[2:])
"""


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A complete small run (the artifacts a kill must not spoil) and its command line."""
    from rec_models.data.custom import save_canonical

    root = tmp_path_factory.mktemp("kill-train")
    save_canonical(movielens_subset(60, 150), root / "data")
    (root / "cfg.toml").write_text(
        f'protocols = ["recommenders"]\n[data]\nsource = "custom"\npath = "{root / "data"}"\n'
        'rows = "interactions"\n[mf]\nfactors = 8\nepochs = 2\n'
        "[attention]\nepochs = 1\ndim = 16\n[hybrid]\nalphas = [0.0, 0.5]\n"
    )
    args = ["--config", str(root / "cfg.toml"), "--artifacts", str(root / "artifacts")]
    done = subprocess.run(train_command(*args), cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # what export wrote beside train's artifacts: train must never touch it
    (root / "artifacts" / "onnx" / "scorer").mkdir(parents=True)
    (root / "artifacts" / "onnx" / "scorer" / "config.json").write_text("{}")
    return root / "artifacts", args


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def train_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rec_models.train", *args]


def assert_servable(artifacts: Path) -> None:
    """What export reads: the served hybrid, its state, the texts and the metrics."""
    Recommender.load(artifacts / "models" / "serving" / "hybrid")
    state = json.loads((artifacts / "models" / "state.json").read_text())
    assert "hybrid" in state["calibration"]
    assert json.loads((artifacts / "texts.json").read_text())["items"]
    assert "recommenders" in json.loads((artifacts / "metrics.json").read_text())["protocols"]


def kill_when(proc: subprocess.Popen[bytes], artifacts: Path, ready) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not ready(artifacts):
        assert proc.poll() is None, "the run ended before the kill point"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def staged(artifacts: Path, inside: str = "") -> bool:
    return any((f / inside).exists() for f in artifacts.glob(".train-*-*") if f.is_dir())


@pytest.mark.parametrize(
    "point",
    [
        lambda a: staged(a),  # training: the staging folder exists, nothing in it yet
        lambda a: staged(a, "models/recommenders/hybrid/weights.safetensors"),  # models saved
    ],
    ids=["while-training", "models-staged"],
)
def test_kill_before_the_commit_point_keeps_the_previous_run(previous, point):
    artifacts, args = previous
    before = tree(artifacts)
    proc = subprocess.Popen(train_command(*args), cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    kill_when(proc, artifacts, point)
    assert proc.returncode == -signal.SIGKILL
    assert tree(artifacts) == before  # byte for byte, before any recovery
    assert_servable(artifacts)
    assert list(artifacts.glob(".train-*"))  # the dead run's staging folder ...
    assert recover(artifacts) is False
    assert not list(artifacts.glob(".*")) and tree(artifacts) == before  # ... is gone


@pytest.mark.parametrize("where", ["commit", "midway"])
def test_kill_after_the_commit_point_is_completed_by_recover(previous, where):
    artifacts, args = previous
    # Mark the previous run's metrics: two runs of this small training can write byte-identical
    # files (its train time is rounded), and the new run must be told apart from the old one.
    metrics = json.loads((artifacts / "metrics.json").read_text())
    (artifacts / "metrics.json").write_text(json.dumps({**metrics, "previous_run": where}))
    before = tree(artifacts)
    cmd = [sys.executable, "-c", HOOKED, where, *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    journal = json.loads((artifacts / JOURNAL).read_text())
    stage = artifacts / journal["staged"]
    # the new run, as it will be: what is still staged, plus what was swapped in already
    want = {k: v for k, v in before.items() if k.split("/")[0] not in journal["names"]}
    for name in journal["names"]:
        source = stage / name if (stage / name).exists() else artifacts / name
        if source.is_dir():
            want |= {f"{name}/{k}": v for k, v in tree(source).items()}
        else:
            want[name] = hashlib.sha256(source.read_bytes()).hexdigest()
    assert want != before and want["metrics.json"] != before["metrics.json"]  # a new run
    assert recover(artifacts) is True
    assert tree(artifacts) == want
    assert_servable(artifacts)
    assert not list(artifacts.glob(".*"))
    assert (artifacts / "onnx" / "scorer" / "config.json").read_text() == "{}"
