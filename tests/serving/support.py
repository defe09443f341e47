"""Helpers of the server tests: the store location, free ports, readiness, stopping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from rec_models.config import ROOT

os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
BENTOML_HOME = Path(os.environ["BENTOML_HOME"])
START_TIMEOUT_S = 300


def store_model_path(name: str) -> Path:
    """Folder of the latest version of a store model (BentoML layout: models/<name>/latest)."""
    folder = BENTOML_HOME / "models" / name
    return folder / (folder / "latest").read_text().strip()


def have_models() -> bool:
    models = BENTOML_HOME / "models"
    encoders = list(models.glob("adrec-encoder-*")) if models.is_dir() else []
    return (models / "adrec-scorer").is_dir() and bool(encoders)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
            error = httpx.get(f"{url}/info", timeout=2).json().get("error")
        except (httpx.HTTPError, ValueError):
            error = None
        if error:  # loading failed for good: no point waiting
            pytest.fail(f"server failed to load: {error}\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"server not ready after {timeout} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
