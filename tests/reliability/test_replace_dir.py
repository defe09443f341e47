"""export/variant_dir.replace_dir, which `staging` (every encoder variant, the scorer bundle)
publishes with: the target is the old folder or the new one at every moment, never absent. A
process killed with SIGKILL inside the staging block leaves the old folder as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from export import variant_dir
from export.variant_dir import replace_dir, staging
from rec_models.config import ROOT


def folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "model.onnx").write_text(text)
    return path


def test_replace_dir_exchanges_in_one_step(tmp_path: Path, monkeypatch):
    target, new = folder(tmp_path / "int8", "old"), folder(tmp_path / ".int8-new", "new")
    renames = []
    real = variant_dir.os.replace
    monkeypatch.setattr(
        variant_dir.os, "replace", lambda a, b: renames.append((a, b)) or real(a, b)
    )
    replace_dir(new, target)
    assert (target / "model.onnx").read_text() == "new"
    assert not new.exists() and renames == []  # one renameat2 call, no window without target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"]


def test_replace_dir_falls_back_to_two_renames(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(variant_dir, "_exchange", lambda a, b: False)  # a file system without
    target, new = folder(tmp_path / "int8", "old"), folder(tmp_path / ".int8-new", "new")
    replace_dir(new, target)
    assert (target / "model.onnx").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"]


def test_replace_dir_into_an_absent_target(tmp_path: Path):
    new = folder(tmp_path / ".fp16-new", "new")
    replace_dir(new, tmp_path / "fp16")
    assert (tmp_path / "fp16" / "model.onnx").read_text() == "new" and not new.exists()


KILLED_IN_STAGING = """
import os, signal, sys
from pathlib import Path
from export.variant_dir import staging

with staging(Path(sys.argv[1])) as tmp:
    (tmp / "model.onnx").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kill_inside_staging_leaves_the_old_folder(tmp_path: Path):
    target = folder(tmp_path / "onnx" / "opt", "old")
    cmd = [sys.executable, "-c", KILLED_IN_STAGING, str(target)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (target / "model.onnx").read_text() == "old"
    leftovers = [p.name for p in target.parent.iterdir() if p.name != "opt"]
    assert all(name.startswith(".opt-") for name in leftovers)  # hidden, never taken for a variant
    with staging(target) as tmp:  # the next build works as before
        (tmp / "model.onnx").write_text("new")
    assert (target / "model.onnx").read_text() == "new"
