"""Where the service listens and whom it lets in from a browser, by default and when told.

By default (`bentoml serve service:Recommender` with no --host, no ADREC_GRPC_HOST, no CORS
configuration) every listening socket of the process tree is on 127.0.0.1, and no CORS header
is sent to any origin. Told otherwise (--host, ADREC_GRPC_HOST, BentoML's CORS settings; here
127.0.0.2, still loopback) it listens there, and allows the configured origin only."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import psutil
import pytest
from harness import Service, have_models, launch_service, own_home, stop_service, wait_ready

pytestmark = pytest.mark.skipif(not have_models(), reason="no models: run `make export` first")
APP, EVIL = "http://app.example", "http://evil.example"
CORS_CONFIG = f"""services:
  Recommender:
    http:
      cors:
        enabled: true
        access_control_allow_origins: ["{APP}"]
        access_control_allow_methods: ["GET", "POST"]
        access_control_allow_headers: ["content-type", "authorization"]
"""  # BentoML's configuration file (BENTOML_CONFIG), as a deployment would give it


def listening(svc: Service) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of the server's process tree, IPv4 in an
    IPv6 socket (gRPC's ::ffff:127.0.0.1) as plain IPv4."""
    root = psutil.Process(svc.proc.pid)
    out = set()
    for proc in [root, *root.children(recursive=True)]:
        for conn in proc.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN:
                ip = ipaddress.ip_address(conn.laddr.ip)
                mapped = getattr(ip, "ipv4_mapped", None)
                out.add((str(mapped or ip), conn.laddr.port))
    return out


def preflight(svc: Service, origin: str) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type"}  # fmt: skip
    return httpx.options(f"{svc.url}/recommend", headers=headers, timeout=10)


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """Both servers of this file, launched together so that their workers load at the same
    time: "default" (no --host, no CORS settings) and, where 127.0.0.2 can be bound,
    "explicit" (--host and ADREC_GRPC_HOST 127.0.0.2, BentoML's CORS settings)."""
    folder = tmp_path_factory.mktemp("bind-default")
    home = own_home(folder)
    launched = {
        "default": launch_service(
            folder / "serve.log", BENTOML_HOME=home, ADREC_WORKERS="1", host=None
        )
    }
    try:
        if _can_bind("127.0.0.2"):
            folder = tmp_path_factory.mktemp("bind-explicit")
            (folder / "bentoml.yaml").write_text(CORS_CONFIG)
            launched["explicit"] = launch_service(
                folder / "serve.log", BENTOML_HOME=own_home(folder), ADREC_WORKERS="1",
                ADREC_GRPC_HOST="127.0.0.2", BENTOML_CONFIG=str(folder / "bentoml.yaml"),
                host="127.0.0.2",
            )  # fmt: skip
        for svc in launched.values():
            wait_ready(svc)
        yield launched
    finally:
        for svc in launched.values():
            stop_service(svc)


@pytest.fixture(scope="module")
def default(servers: dict[str, Service]) -> Service:
    return servers["default"]


def test_by_default_everything_listens_on_loopback_only(default):
    sockets = listening(default)
    assert ("127.0.0.1", default.port) in sockets and ("127.0.0.1", default.grpc_port) in sockets
    assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets


def test_by_default_no_origin_gets_cors_headers(default):
    for origin in (APP, EVIL):
        assert cors_headers(preflight(default, origin)) == {}
        got = httpx.post(f"{default.url}/recommend", json={"user_id": 1, "k": 3},
                         headers={"Origin": origin}, timeout=30)  # fmt: skip
        assert got.status_code == 200 and cors_headers(got) == {}


def test_binding_elsewhere_and_cors_are_explicit(servers):
    if "explicit" not in servers:
        pytest.skip("127.0.0.2 is not a loopback address here")
    svc = servers["explicit"]
    sockets = listening(svc)
    assert {("127.0.0.2", svc.port), ("127.0.0.2", svc.grpc_port)} <= sockets, sockets
    assert ("127.0.0.1", svc.port) not in sockets
    allowed = cors_headers(preflight(svc, APP))
    assert allowed.get("access-control-allow-origin") == APP, allowed
    assert "access-control-allow-origin" not in cors_headers(preflight(svc, EVIL))


def _can_bind(address: str) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True
