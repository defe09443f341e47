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
    port_open,
    start_service,
    stop_service,
)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The one server of the session: `bentoml serve service:Recommender` with gRPC, over the
    models of the store. The suite shares its CPUs with other jobs: a lax queue deadline keeps a
    slow moment from turning into 503s (shedding has tests of its own)."""
    if not have_models():
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    log = tmp_path_factory.mktemp("service") / "serve.log"
    svc = start_service(
        log, ADREC_BATCH_MAX_LATENCY_MS="30000", ADREC_MAX_MESSAGE_BYTES=str(4 * MIB)
    )
    yield svc
    alive = stop_service(svc)
    assert not alive, f"still running after SIGTERM: {alive}"
    assert svc.proc.returncode == 0, svc.tail()
    assert not port_open(svc.port) and not port_open(svc.grpc_port)
