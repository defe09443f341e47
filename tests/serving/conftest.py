"""The server tests use the session's one real service (tests/conftest.py: `bentoml serve`
with HTTP and gRPC over the models of the store; skipped with a hint when `make export` has not
run)."""

from __future__ import annotations

import httpx
import pytest
from harness import Service

from rec_models.serving.bundle import ScorerBundle

from .support import store_model_path


@pytest.fixture(scope="session")
def server(service: Service) -> Service:
    return service


@pytest.fixture
def client(server: Service) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def bundle(server: Service) -> ScorerBundle:
    """The scorer bundle the server serves (to know users' histories, item ids, titles)."""
    return ScorerBundle.load(store_model_path("adrec-scorer"))
