"""A BentoML service as a subprocess for the load benchmark: start, wait until ready, stop.

Runs `bentoml serve <target> --host 127.0.0.1 --port P` as `make serve` does (gRPC from the
same workers on ADREC_GRPC_PORT) on free loopback ports, with the models of the BentoML store
(BENTOML_HOME, default the repository's bentoml_home/, filled by `make export`). `env` sets the
service's ADREC_* settings (workers, threads, ...). The trivial ceiling service
(benchmarks/trivial_service.py) starts the same way, without gRPC.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import ARTIFACTS, PINNED, ROOT

LOGS = ROOT / ".cache" / "benchmarks"
START_TIMEOUT_S = 600


def bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME") or ROOT / "bentoml_home")


def have_models() -> bool:
    models = bentoml_home() / "models"
    return (models / "adrec-scorer").is_dir() and any(models.glob("adrec-encoder-*"))


def catalog() -> dict[str, Any]:
    """catalog.json of the served scorer bundle (store), else of artifacts/onnx/scorer."""
    folder = bentoml_home() / "models" / "adrec-scorer"
    latest = folder / "latest"
    path = ARTIFACTS / "onnx" / "scorer" / "catalog.json"
    if latest.is_file():
        path = folder / latest.read_text().strip() / "catalog.json"
    return json.loads(path.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`with Service("config", {"ADREC_WORKERS": "2"}) as svc:` -> svc.http_url, svc.grpc_url."""

    def __init__(
        self,
        name: str,
        env: dict[str, str] | None = None,
        target: str = "service:Recommender",
        grpc: bool = True,
    ) -> None:
        self.name, self.target, self.grpc = name, target, grpc
        self.port, self.grpc_port = free_port(), free_port()
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self.env = {k: v for k, v in os.environ.items() if k not in PINNED}  # the service's own
        self.env.setdefault("BENTOML_HOME", str(bentoml_home()))
        self.env |= {"ADREC_DEVICE": "cpu", "ADREC_GRPC_PORT": str(self.grpc_port if grpc else 0)}
        self.env |= env or {}
        self.settings = dict(env or {})
        key = self.env.get("ADREC_API_KEY")  # /info needs it when the service is keyed
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = LOGS / f"service-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.start_s = 0.0

    def __enter__(self) -> Service:
        cmd = [
            sys.executable, "-m", "bentoml", "serve", self.target,
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        t0 = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            self._wait_ready(t0 + START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self.start_s = round(time.monotonic() - t0, 1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, deadline: float) -> None:
        import httpx
        import tritonclient.grpc as grpcclient

        grpc = grpcclient.InferenceServerClient(self.grpc_url) if self.grpc else None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            with contextlib.suppress(Exception):  # not listening yet
                ok = httpx.get(f"{self.http_url}/readyz", timeout=2).is_success
                if ok and (grpc is None or grpc.is_server_ready(client_timeout=2)):
                    if self.grpc:
                        self.info = httpx.get(
                            f"{self.http_url}/info", headers=self.headers, timeout=10
                        ).json()
                    return
                info = httpx.get(f"{self.http_url}/info", headers=self.headers).json()
                if self.grpc and (err := info.get("error")):
                    raise RuntimeError(f"{self.name} failed to load: {err}")
            time.sleep(1)
        raise TimeoutError(f"{self.name} was not ready after {START_TIMEOUT_S} s; log {self.log}")

    def stop(self) -> None:
        """SIGTERM to `bentoml serve` (it stops its workers), SIGKILL to its group after 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
