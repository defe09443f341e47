"""Suite-wide defaults, so plain `pytest` behaves like `make test`, and the one real server the
server tests share (tests/harness.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The model store `make export` publishes to; set before any test imports bentoml.
os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from harness import (  # noqa: E402  (after BENTOML_HOME is set)
    BENTOML_HOME,
    MIB,
    Service,
    have_models,
    launch_service,
    port_open,
    stop_service,
    wait_ready,
)


@pytest.fixture(scope="session", autouse=True)
def _launched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service | None]:
    """The one server of the session: `bentoml serve service:Recommender` with gRPC, over the
    models of the store, launched before the first test when any test of the run uses it, so
    that its workers load (30-50 s) while the tests before the first server test run. The
    suite shares its CPUs with other jobs: a lax queue deadline keeps a slow moment from turning
    into 503s (shedding has tests of its own)."""
    wanted = any("service" in item.fixturenames for item in request.session.items)
    if not (wanted and have_models()):
        yield None
        return
    log = tmp_path_factory.mktemp("service") / "serve.log"
    svc = launch_service(
        log, ADREC_BATCH_MAX_LATENCY_MS="30000", ADREC_MAX_MESSAGE_BYTES=str(4 * MIB)
    )
    yield svc
    alive = stop_service(svc)
    assert not alive, f"still running after SIGTERM: {alive}"
    assert svc.proc.returncode == 0, svc.tail()
    assert not port_open(svc.port) and not port_open(svc.grpc_port)


@pytest.fixture(scope="session")
def service(_launched: Service | None) -> Service:
    """The session's server once every worker is ready."""
    if _launched is None:
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    return wait_ready(_launched)
