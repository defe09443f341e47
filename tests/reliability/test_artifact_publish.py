"""`make train`'s publish (rec_models/artifact_publish.py) killed with SIGKILL before each of its
renames in turn: after `recover` (which the next train or export runs first), artifacts/ holds
exactly the old run's files (killed before the commit point) or exactly the new run's (after
it), never a mix, with the other steps' files (onnx/, the event log) untouched and no staging
folder left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import tree

from rec_models.artifact_publish import JOURNAL, publish, recover

# A process that stages a new run beside the old one and publishes it, SIGKILLing itself just
# before rename number KILL_AT (os.replace is the only way the publish changes artifacts/).
CHILD = """
import os, signal, sys
from pathlib import Path
import rec_models.artifact_publish as ap

artifacts, kill_at = Path(sys.argv[1]), int(sys.argv[2])
staged = ap.staging_dir(artifacts)
(staged / "models" / "serving").mkdir(parents=True)
(staged / "models" / "serving" / "weights").write_text("new weights")
(staged / "texts.json").write_text('{"items": ["new"]}')
(staged / "metrics.json").write_text('{"run": "new"}')
(staged / "report.md").write_text("new report")
calls = 0
real_replace = os.replace

def replace(src, dst):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

ap.os.replace = replace
ap.publish(staged, artifacts, remove=("encoder",))
print(calls)
"""


def old_run(artifacts: Path) -> None:
    (artifacts / "models" / "serving").mkdir(parents=True)
    (artifacts / "models" / "serving" / "weights").write_text("old weights")
    (artifacts / "models" / "temporal").mkdir()  # only the old run has it
    (artifacts / "models" / "temporal" / "weights").write_text("old temporal")
    (artifacts / "texts.json").write_text('{"items": ["old"]}')
    (artifacts / "metrics.json").write_text('{"run": "old"}')
    (artifacts / "report.md").write_text("old report")
    (artifacts / "encoder").mkdir()  # an earlier fine-tuned encoder, stale after the new run
    (artifacts / "encoder" / "model").write_text("old encoder")
    (artifacts / "onnx" / "scorer").mkdir(parents=True)  # export's: never touched by train
    (artifacts / "onnx" / "scorer" / "arrays.npz").write_text("export's")


def run_child(artifacts: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", CHILD, str(artifacts), str(kill_at)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def expected_new(artifacts: Path) -> dict[str, str]:
    folder = artifacts.parent / "want"
    old_run(folder)
    for gone in ("models", "encoder"):
        subprocess.run(["rm", "-rf", str(folder / gone)], check=True)
    (folder / "models" / "serving").mkdir(parents=True)
    (folder / "models" / "serving" / "weights").write_text("new weights")
    (folder / "texts.json").write_text('{"items": ["new"]}')
    (folder / "metrics.json").write_text('{"run": "new"}')
    (folder / "report.md").write_text("new report")
    return tree(folder)


def test_a_publish_killed_at_any_rename_leaves_one_run_whole(tmp_path: Path):
    probe = tmp_path / "probe"
    old_run(probe)
    done = run_child(probe, 0)  # no kill: how many renames a publish makes
    assert done.returncode == 0, done.stderr
    renames = int(done.stdout)
    new = tree(probe)
    assert new == expected_new(probe)
    outcomes = []
    for kill_at in range(1, renames + 1):
        artifacts = tmp_path / f"kill-{kill_at}"
        old_run(artifacts)
        old = tree(artifacts)
        killed = run_child(artifacts, kill_at)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        committed = (artifacts / JOURNAL).is_file()
        if not committed:
            assert tree(artifacts) == old  # untouched until the commit point
        assert recover(artifacts) == committed
        assert tree(artifacts) == (new if committed else old), kill_at
        assert not list(artifacts.glob(".*")), list(artifacts.glob(".*"))  # nothing left over
        outcomes.append(committed)
    # the journal write is the first rename: kill 1 keeps the old run, every later one the new
    assert outcomes == [False] + [True] * (renames - 1), outcomes
    assert renames >= 2 + 4  # journal, then the swaps: the loop above covered them


def test_recover_leaves_a_live_runs_staging_folder_alone(tmp_path: Path):
    artifacts = tmp_path / "artifacts"
    old_run(artifacts)
    live = artifacts / ".train-1-abcd"  # pid 1 always runs
    dead = artifacts / ".train-999999999-abcd"  # past pid_max: no such process
    legacy = artifacts / ".train-k2j3h4g5"  # an older run's folder, no pid in the name
    for folder in (live, dead, legacy):
        folder.mkdir()
    assert recover(artifacts) is False
    assert live.is_dir() and not dead.exists() and not legacy.exists()


def test_an_unreadable_journal_stops_recovery_rather_than_guess(tmp_path: Path):
    artifacts = tmp_path / "artifacts"
    old_run(artifacts)
    (artifacts / JOURNAL).write_text("{not json")
    before = tree(artifacts)
    with pytest.raises(RuntimeError, match="unreadable publish journal"):
        recover(artifacts)
    assert tree(artifacts) == before


def test_publish_in_process_replaces_and_removes(tmp_path: Path):
    artifacts = tmp_path / "artifacts"
    old_run(artifacts)
    staged = artifacts / ".train-stage"
    (staged / "models").mkdir(parents=True)
    (staged / "metrics.json").write_text(json.dumps({"run": "new"}))
    publish(staged, artifacts, remove=("encoder",))
    assert json.loads((artifacts / "metrics.json").read_text()) == {"run": "new"}
    assert not (artifacts / "encoder").exists() and not (artifacts / "models" / "serving").exists()
    assert (artifacts / "texts.json").is_file()  # not in the new run: left as it was
    assert not staged.exists() and not (artifacts / JOURNAL).exists()
