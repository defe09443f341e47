"""The real HTTP server, started once per session through the launcher on a free port.

It serves the models of the BentoML store (BENTOML_HOME, default the repository's bentoml_home/,
filled by `make export`); without them the server tests are skipped with that hint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rec_models.config import ROOT
from rec_models.serving.bundle import ScorerBundle

from .support import (
    BENTOML_HOME,
    START_TIMEOUT_S,
    free_port,
    have_models,
    port_open,
    stop,
    store_model_path,
    wait_ready,
)


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    if not have_models():
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "rec_models.serving.launch", "--port", str(port), "--no-grpc"]
    # The suite shares its CPUs with other jobs: a lax shedding deadline keeps a slow moment from
    # turning into 503s (BentoML's load shedding is not what is under test here).
    env = {**os.environ, "ADREC_BATCH_MAX_LATENCY_MS": "10000"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    srv = Server(url, port, proc, log)
    try:
        wait_ready(url, proc, log, START_TIMEOUT_S)
        yield srv
    finally:
        stop(proc)
    # The launcher forwards SIGTERM: the HTTP server must be gone with it.
    assert proc.returncode == 0, log.read_text()[-4000:]
    assert not port_open(port), "the HTTP server outlived the launcher"
    assert "stopped (SIGTERM)" in log.read_text()


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def bundle(server: Server) -> ScorerBundle:
    """The scorer bundle the server serves (to know users' histories, item ids, titles)."""
    return ScorerBundle.load(store_model_path("adrec-scorer"))
