"""Publish a staged set of artifacts into `artifacts/` all at once, even across a kill -9.

    publish(staged, artifacts, remove=("encoder",))   # make train's last step
    recover(artifacts)                                 # before anything reads artifacts/

artifacts/ holds the outputs of several steps (train's models and metrics beside export's
onnx/ and report, the event log), so train cannot swap the folder as a whole, and renaming its
children one by one leaves a mix of two runs if the process dies in between. So the swap is
journalled: the staged folder is complete first, then a journal naming it is written (one
atomic rename: the commit point), then each child is swapped in (the old one moved aside), then
the journal is deleted. A run killed before the commit point leaves the old artifacts as they
were; one killed after it is rolled forward by `recover` (every step can be redone), which the
next `make train` and `make export` call first: either way every reader sees one run's
artifacts, never a mix. `metrics.json` (make's sign that training is done) is swapped last.
The staging folders of runs that died before their commit point are removed by `recover`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

JOURNAL = ".train-publish.json"
STAGING_PREFIX = ".train-"
LAST = "metrics.json"


def staging_dir(artifacts: Path) -> Path:
    """A new staging folder inside `artifacts` (same file system: renames are atomic), named
    after this process so `recover` can tell a live run's folder from a dead one's."""
    artifacts.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=artifacts))


def publish(staged: Path, artifacts: Path, remove: Iterable[str] = ()) -> None:
    """Replace each child of `staged` in `artifacts` (and delete `remove`, names train no longer
    writes), all or nothing across a crash; `staged` is consumed."""
    names = sorted((p.name for p in staged.iterdir()), key=lambda n: (n == LAST, n))
    backup = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-old-", dir=artifacts))
    plan = {
        "staged": staged.name,
        "backup": backup.name,
        "names": names,
        "remove": [n for n in remove if n not in names],
    }
    _write_atomic(artifacts / JOURNAL, json.dumps(plan, indent=2))  # the commit point
    _roll_forward(artifacts, plan)


def recover(artifacts: Path) -> bool:
    """Finish a publish a killed run committed to, and remove the staging folders of dead runs;
    True when a publish was finished."""
    artifacts = Path(artifacts)
    journal = artifacts / JOURNAL
    finished = False
    if journal.is_file():
        try:
            plan = json.loads(journal.read_text())
        except (OSError, ValueError):  # cannot happen (written by rename); never guess
            raise RuntimeError(f"{journal}: unreadable publish journal") from None
        _roll_forward(artifacts, plan)
        finished = True
    for leftover in artifacts.glob(f"{STAGING_PREFIX}*"):
        if leftover.name != JOURNAL and not _owner_alive(leftover.name):
            _discard(leftover)
    return finished


def _roll_forward(artifacts: Path, plan: dict) -> None:
    """Every step redoable: a child still in the staging folder has not been swapped yet (what
    is in its place is the old one); one no longer there is in place already."""
    staged, backup = artifacts / plan["staged"], artifacts / plan["backup"]
    backup.mkdir(exist_ok=True)
    for name in plan["remove"]:
        if (artifacts / name).exists() or (artifacts / name).is_symlink():
            os.replace(artifacts / name, backup / name)
    for name in plan["names"]:
        new, dest = staged / name, artifacts / name
        if not (new.exists() or new.is_symlink()):
            continue  # swapped in by an earlier attempt
        if dest.exists() or dest.is_symlink():
            _discard(backup / name)  # a half-moved old copy of an earlier attempt
            os.replace(dest, backup / name)
        os.replace(new, dest)
    _fsync_dir(artifacts)
    (artifacts / JOURNAL).unlink()  # done: what follows is only tidying up
    _fsync_dir(artifacts)
    shutil.rmtree(backup, ignore_errors=True)
    shutil.rmtree(staged, ignore_errors=True)


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{STAGING_PREFIX}{os.getpid()}-journal.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable (a power cut, not only a kill, keeps the order)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _owner_alive(name: str) -> bool:
    """Whether the process that made staging folder `name` (.train-<pid>-...) still runs."""
    pid = name[len(STAGING_PREFIX) :].split("-", 1)[0]
    if not pid.isdigit():
        return False  # an older run's folder (no pid in its name): nobody owns it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
