"""The real service for the server tests: `bentoml serve` as `make serve` runs it (HTTP native +
v2 REST + gRPC from the BentoML workers), on free loopback ports, started and stopped by PID."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rec_models.serving.settings import cpu_count

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
BENTOML_HOME = Path(os.environ["BENTOML_HOME"])
START_TIMEOUT_S = 300
MIB = 1 << 20


def have_models() -> bool:
    models = BENTOML_HOME / "models"
    encoders = list(models.glob("adrec-encoder-*")) if models.is_dir() else []
    return (models / "adrec-scorer").is_dir() and bool(encoders)


def own_home(folder: Path) -> str:
    """A BENTOML_HOME of its own over the same model store, for a server started beside the
    session's: `bentoml serve` empties $BENTOML_HOME/prometheus_multiproc_dir at start, which
    would wipe the running server's metrics."""
    home = folder / "bentoml_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "models").exists():
        (home / "models").symlink_to(BENTOML_HOME / "models", target_is_directory=True)
    return str(home)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# What a worker logs once it answers every A/B arm (rec_models/serving/scorers.load_pins).
READY_LINE = "] ready to serve"


@dataclass
class Service:
    """A running `bentoml serve`: its HTTP and gRPC addresses, process and log."""

    url: str
    port: int
    grpc_port: int
    proc: subprocess.Popen[bytes]
    log: Path
    host: str = "127.0.0.1"
    workers: int = 1  # how many "ready to serve" lines mean every worker is ready

    @property
    def grpc(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def v2(self) -> str:  # tritonclient.http takes host:port
        return f"{self.host}:{self.port}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def serve_command(target: str, port: int, host: str | None = "127.0.0.1") -> list[str]:
    """`make serve`'s command line: `bentoml serve` alone, HTTP on `port` (`host` None: no
    --host, the service's own default)."""
    bentoml = [sys.executable, "-m", "bentoml", "serve", target]
    return [*bentoml, *(["--host", host] if host else []), "--port", str(port)]


def launch_service(
    log: Path,
    target: str = "service:Recommender",
    cwd: Path = ROOT,
    host: str | None = "127.0.0.1",
    **env: str,
) -> Service:
    """Start `bentoml serve target` on free ports and return at once; `wait_ready` waits. Apart,
    so that two servers load their models at the same time, or one while other tests run."""
    port, grpc_port = free_port(), free_port()
    # Every server gets a BENTOML_HOME of its own over the same models unless the test gives one:
    # `bentoml serve` empties $BENTOML_HOME/prometheus_multiproc_dir at start (see own_home).
    env.setdefault("BENTOML_HOME", own_home(log.parent))
    workers = int(env.get("ADREC_WORKERS") or os.environ.get("ADREC_WORKERS") or 0) or cpu_count()
    # The event log (and the reload target beside it) of a test server lives beside its log,
    # never in the artifacts folder.
    events = str(log.parent / "events" / "events.sqlite")
    environ = {**os.environ, "ADREC_GRPC_PORT": str(grpc_port), "ADREC_EVENTS_PATH": events, **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(target, port, host), cwd=cwd, env=environ, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    address = host or "127.0.0.1"  # the service's default: loopback (tests/reliability)
    return Service(f"http://{address}:{port}", port, grpc_port, proc, log, address, workers)


def wait_ready(svc: Service, headers: dict[str, str] | None = None) -> Service:
    """Wait until the launched `svc` answers HTTP and gRPC from every worker; `headers` go with
    the /info request (the API key of a server started with one)."""
    import httpx
    import tritonclient.grpc as tgrpc

    proc = svc.proc
    grpc_client = tgrpc.InferenceServerClient(svc.grpc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{svc.tail()}")
        try:
            http_ready = httpx.get(f"{svc.url}/readyz", timeout=2).status_code == 200
            # /readyz answers from whichever worker takes the connection: wait for every
            # worker's "ready to serve" line (logged once its A/B arms' versions are loaded too,
            # after "ready in"), or a request may still land on one that is loading.
            if (
                http_ready
                and grpc_client.is_server_ready(client_timeout=2)
                and svc.log.read_text(errors="replace").count(READY_LINE) >= svc.workers
            ):
                return svc
            error = httpx.get(f"{svc.url}/info", headers=headers, timeout=2).json().get("error")
        except Exception:  # not listening yet
            error = None
        if error:  # loading failed for good: no point waiting
            stop_service(svc)
            pytest.fail(f"the service failed to load: {error}\n{svc.tail()}")
        time.sleep(0.5)
    stop_service(svc)
    pytest.fail(f"the service was not ready after {START_TIMEOUT_S} s:\n{svc.tail()}")


def start_service(
    log: Path,
    target: str = "service:Recommender",
    cwd: Path = ROOT,
    headers: dict[str, str] | None = None,
    host: str | None = "127.0.0.1",
    **env: str,
) -> Service:
    """`launch_service` then `wait_ready`: `headers` go with the /info request, `host` is the
    --host flag (None: none given; the gRPC host is ADREC_GRPC_HOST's)."""
    return wait_ready(launch_service(log, target, cwd, host, **env), headers)


def stop_service(svc: Service) -> list[object]:
    """SIGTERM to `bentoml serve` (as Ctrl-C / `kill` would); returns the processes of its tree
    still alive 60 s later (then killed)."""
    import psutil

    try:
        family = psutil.Process(svc.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if svc.proc.poll() is None:
        svc.proc.send_signal(signal.SIGTERM)
    try:
        svc.proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(svc.proc.pid, signal.SIGKILL)
        svc.proc.wait()
    _, alive = psutil.wait_procs(family, timeout=10)
    for p in alive:
        p.kill()
    return alive


def tree_rss(pid: int) -> int:
    """Resident memory of process `pid` and all its descendants, in bytes."""
    import psutil

    proc = psutil.Process(pid)
    family = [proc, *proc.children(recursive=True)]
    total = 0
    for p in family:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:  # a worker that just exited
            continue
    return total


def tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` but the hidden (staging, journal) ones."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
