"""A model store publish (export/store.py, the last step of `make export` and `make retrain`)
killed with SIGKILL before each of its file copies and renames in turn: the store keeps the
previous version whole and `latest` on it, every version it lists verifies against its sha256
manifest, nothing half-copied is left for a later run to find, and the next publish works."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from rec_models.config import ROOT

# Publishes folder argv[2] as model argv[3], SIGKILLing itself at file operation number
# argv[4] (a copy or a rename; 0: never) and printing how many there were.
PUBLISH = """
import os, shutil, signal, sys
from pathlib import Path
import export.store as store

count, kill_at = 0, int(sys.argv[3])

def killing(real):
    def op(*args, **kwargs):
        global count
        count += 1
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return op

for module, name in ((shutil, "copy2"), (os, "rename"), (os, "replace")):
    setattr(module, name, killing(getattr(module, name)))
print(store.publish(Path(sys.argv[1]), sys.argv[2], {"variant": "test"}), count)
"""
# What a service loads: `latest`, verified; and every listed version, verified. With argv[2],
# that folder is published next and the same checked again.
CHECK = """
import json, sys
from pathlib import Path
import bentoml
import export.store as store
from rec_models.serving.store import load_store_model, verify_files

def state():
    path, _ = load_store_model(sys.argv[1] + ":latest")
    versions = bentoml.models.list(sys.argv[1])
    for model in versions:
        verify_files(model.path, model.info.metadata["sha256"])
    return {"marker": (path / "marker.txt").read_text(), "versions": len(versions)}

out = [state()]
if len(sys.argv) > 2:
    store.publish(Path(sys.argv[2]), sys.argv[1], {"variant": "test"})
    out.append(state())
print(json.dumps(out))
"""


def run(home: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    cmd = [sys.executable, "-c", script, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def variant(folder: Path, marker: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(os.urandom(256 << 10))
    (folder / "tokenizer.json").write_text('{"model": "tok"}')
    (folder / "config.json").write_text('{"variant": "test"}')
    (folder / "marker.txt").write_text(marker)
    return folder


def check(home: Path, then_publish: Path | None = None) -> list[dict]:
    done = run(home, CHECK, "adrec-test", *([str(then_publish)] if then_publish else []))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_publish_killed_at_any_step_leaves_the_store_whole(tmp_path: Path):
    first, second = variant(tmp_path / "v1", "first"), variant(tmp_path / "v2", "second")
    base, probe = tmp_path / "base", tmp_path / "probe"
    assert run(base, PUBLISH, str(first), "adrec-test", "0").returncode == 0  # the old version
    shutil.copytree(base, probe)
    done = run(probe, PUBLISH, str(second), "adrec-test", "0")
    assert done.returncode == 0, done.stderr[-3000:]
    steps = int(done.stdout.split()[-1])
    print(f"{steps} file operations per publish")
    assert steps >= 4 + 2  # four file copies, the version's rename, latest's
    assert check(probe) == [{"marker": "second", "versions": 2}]
    for kill_at in range(1, steps + 1):
        home = tmp_path / f"home-{kill_at}"
        shutil.copytree(base, home)
        killed = run(home, PUBLISH, str(second), "adrec-test", str(kill_at))
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr[-2000:])
        # loads and verifies (or the test fails here), then the next publish works
        after, again = check(home, then_publish=second)
        renamed_in = kill_at == steps  # killed only before `latest` moved
        assert after == {"marker": "first", "versions": 2 if renamed_in else 1}, kill_at
        assert again == {"marker": "second", "versions": after["versions"] + 1}, kill_at
        assert not list(home.glob(".adrec-publish-*"))  # the dead run's staging store went
