"""The service as a subprocess for the load benchmark: start, wait until ready, stop.

Runs `python -m rec_models.serving.launch --port P --grpc-port G` (HTTP + gRPC) on free loopback
ports with the models of the BentoML store (BENTOML_HOME, default the repository's
bentoml_home/, filled by `make export`). Batching is switched through the variables the service
reads. BentoML refuses max_batch_size=1 ("'max_batch_size' must be > 1"), so the HTTP service
can only run unbatched through a switch of its own (ADREC_BATCHING=0, proposed: the Encoder's
`embed` then declared batchable=False, the gRPC batcher max size 1); until service.py reads it,
"batching off" runs the gRPC server alone with `--max-batch-size 1`.
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

from benchmarks.machine import ARTIFACTS, PINNED, ROOT, THREADS

LOGS = ROOT / ".cache" / "benchmarks"
START_TIMEOUT_S = 600
START_ATTEMPTS = 2
BATCHING_SWITCH = "ADREC_BATCHING"  # 0 = off; the variable service.py should read


def http_can_disable_batching() -> bool:
    return BATCHING_SWITCH in (ROOT / "service.py").read_text()


class LoadFailedError(RuntimeError):
    """The service came up but could not load its models (it reports why in GET /info)."""


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
    """`with Service(batching=True) as svc:` -> svc.http_url, svc.grpc_url, svc.info."""

    def __init__(self, batching: bool = True, variant: str | None = None) -> None:
        self.batching = batching
        self.grpc_only = not batching and not http_can_disable_batching()
        self.port, self.grpc_port = free_port(), free_port()
        self.http_url = f"http://127.0.0.1:{self.port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self.env = {k: v for k, v in os.environ.items() if k not in PINNED}  # the service's own
        self.env.setdefault("BENTOML_HOME", str(bentoml_home()))
        self.env |= {"ADREC_THREADS": str(THREADS), "ADREC_DEVICE": "cpu"}
        if variant:
            self.env["ADREC_ENCODER_VARIANT"] = variant
        if not batching:
            self.env[BATCHING_SWITCH] = "0"
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = LOGS / f"service-{'batching' if batching else 'nobatching'}.log"
        self.log.write_bytes(b"")
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.start_s = 0.0
        self.start_errors: list[str] = []

    def __enter__(self) -> Service:
        """Start and wait; a start whose model loading failed is retried once (on a loaded
        2-core machine the Encoder can shed the start-up embedding requests as overloaded)."""
        for attempt in range(START_ATTEMPTS):
            try:
                self._start()
                return self
            except LoadFailedError as exc:
                self.stop()
                self.start_errors.append(str(exc))
                if attempt + 1 == START_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _start(self) -> None:
        cmd = [
            sys.executable, "-m", "rec_models.serving.launch",
            "--port", str(self.port), "--grpc-port", str(self.grpc_port),
        ]  # fmt: skip
        if self.grpc_only:
            cmd = [
                sys.executable, "-m", "rec_models.serving.grpc_server", "--host", "127.0.0.1",
                "--port", str(self.grpc_port), "--max-batch-size", "1",
            ]  # fmt: skip
        t0 = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(t0 + START_TIMEOUT_S)
        self.start_s = round(time.monotonic() - t0, 1)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, deadline: float) -> None:
        import httpx
        import tritonclient.grpc as grpcclient

        http_ok, grpc_ok = self.grpc_only, False
        grpc = grpcclient.InferenceServerClient(self.grpc_url)
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the service exited with {self.proc.returncode}:\n{tail}")
            try:
                http_ok = http_ok or httpx.get(f"{self.http_url}/readyz", timeout=2).is_success
                grpc_ok = grpc_ok or grpc.is_server_ready(client_timeout=2)
            except Exception:  # not listening yet
                pass
            if http_ok and grpc_ok:
                if not self.grpc_only:
                    self.info = httpx.get(f"{self.http_url}/info", timeout=10).json()
                return
            error = None
            with contextlib.suppress(Exception):  # /info says why loading failed
                if not self.grpc_only:
                    error = httpx.get(f"{self.http_url}/info", timeout=2).json().get("error")
            if error:
                raise LoadFailedError(f"the HTTP service failed to load: {error}")
            time.sleep(1)
        raise TimeoutError(f"the service was not ready after {START_TIMEOUT_S} s; log {self.log}")

    def stop(self) -> None:
        """SIGTERM to the launcher (it stops its children), SIGKILL to its group after 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
