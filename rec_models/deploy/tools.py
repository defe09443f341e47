"""The one error type of the container recipe, and the external tools it calls."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from rec_models.config import ROOT

CACHE = ROOT / ".cache" / "container"  # git-ignored: base root filesystems, wheelhouses
INSTALL_HINT = "apt-get install -y podman buildah debootstrap runc"


class ContainerError(RuntimeError):
    """A step of building or running the image failed; the message says which and why."""


def require(*tools: str) -> None:
    """Fail with one line naming the first missing tool and the command that installs it."""
    for tool in tools:
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise ContainerError(f"missing tool '{tool}': install it with `{INSTALL_HINT}`")


def run(cmd: Sequence[str], what: str, timeout: float | None = None, **kw) -> str:
    """Run a command, return its stdout; on failure raise ContainerError with its output tail."""
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise ContainerError(f"{what}: timed out after {timeout} s ({' '.join(cmd)})") from e
    if done.returncode != 0:
        tail = (done.stdout[-2000:] + "\n" + done.stderr[-2000:]).strip()
        raise ContainerError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{tail}")
    return done.stdout


def stream(cmd: Sequence[str], what: str, log: Path, quiet: bool = False) -> None:
    """Run a long command, its output shown line by line (the progress) and kept in a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if not quiet:
                print(line, end="", flush=True)
        code = proc.wait()
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise ContainerError(f"{what} failed (exit {code}), log {log}:\n{tail}")
