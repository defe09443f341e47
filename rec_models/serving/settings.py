"""Every setting of the service, read once from the environment into one typed object.

    settings = ServingSettings.from_env(os.environ)

`ADREC_<FIELD>` sets a field (`ADREC_WORKERS=2`, `ADREC_BATCH_MAX_SIZE=32`); the event log's
own fields come from `ADREC_EVENTS_<FIELD>` (rec_models.events.settings). An unknown `ADREC_*`
variable, or a value of the wrong type or range, is an error naming the variable: a typo never
silently falls back to a default. Nothing else in rec_models.serving reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from rec_models.events.settings import ENV_PREFIX as EVENTS_PREFIX
from rec_models.events.settings import EventLogSettings

PREFIX = "ADREC_"
# Not the service's: the artifacts folder of training/export, the container test's opt-in switch.
OTHER_VARIABLES = frozenset({"ADREC_ARTIFACTS", "ADREC_CONTAINER_TEST"})
DEVICES = ("auto", "cpu", "cuda")
ANN_KINDS = ("ivf", "hnsw")


def cpu_count() -> int:
    """Cores this process may run on (the container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ServingSettings:
    # -- models -------------------------------------------------------------------------------
    device: str = "auto"  # auto (CUDA when onnxruntime-gpu sees a GPU, else CPU), cpu, cuda
    encoder_variant: str = ""  # empty: chosen by providers.select_runtime (int8 on CPU)
    scorer_tag: str = "adrec-scorer:latest"  # the scorer bundle in the model store
    # -- processes and threads ----------------------------------------------------------------
    # Worker processes, each with its own serving core (encoder, batcher, runtime, index).
    # 0: one per core. Measured on 2 cores (README): 2 x 1 thread beat 1 x 2 threads.
    workers: int = 0
    threads: int = 0  # ONNX Runtime intra-op threads per worker; 0: cores / workers (>= 1)
    # ONNX Runtime's idle threads spin for a while after each run; with one process per core
    # they only steal the core from the other worker and the event loop: off by default.
    thread_spinning: bool = False
    # -- the encoder's micro-batcher ----------------------------------------------------------
    batch_max_size: int = 64  # texts per encoder run
    batch_max_queue: int = 512  # texts waiting for the encoder; beyond: 503 / RESOURCE_EXHAUSTED
    # A request still queued after this long is refused (503) rather than answered late.
    batch_max_latency_ms: int = 5000
    # -- admission (per worker; rec_models/serving/admission.py) -------------------------------
    # Measured on 2 cores (README, "Reliability and security"): a worker is one core, so past
    # a few requests in flight more only share it; at 4x overload 16 in flight let the cold
    # profiles' time in the route reach a p99 of ~600 ms (they queue for the one encoder), 4
    # kept it ~150 ms; 256 + 512 let p99 and RSS run away. 2 (+ 32 queued, 100 ms) meets a p99
    # within 2x under 4x overload but sheds closed loops and batches less (README).
    max_concurrent_requests: int = 4  # POST requests / gRPC ModelInfer calls in flight
    max_queued_requests: int = 64  # more waiting for a slot; beyond: 429 / RESOURCE_EXHAUSTED
    # Once the queue has not been empty for queue_grace_ms (an overload, not a burst), a longer
    # (expected) wait for a slot is refused, 429; 0: no bound.
    max_queue_wait_ms: int = 250
    queue_grace_ms: int = 1000
    # -- transports ---------------------------------------------------------------------------
    grpc_port: int = 8001  # the OIP gRPC server inside every worker (SO_REUSEPORT); 0: off
    grpc_host: str = "127.0.0.1"
    max_body_bytes: int = 1 << 20  # native JSON routes: 256 texts of 2,000 characters fit
    # A body not in full within this long of the request's start is refused (408): a client
    # trickling it (slow-loris) holds its connection, never an admission slot (body.py).
    body_timeout_ms: int = 5000
    max_message_bytes: int = 4 << 20  # v2 REST and gRPC, per request and per response
    access_log: bool = False  # one log line per request costs ~10% of a known-user request
    # -- access -------------------------------------------------------------------------------
    # An API key every request but the health probes and the API docs must carry
    # (`Authorization: Bearer <key>`, gRPC metadata `authorization`); empty: no key. Given
    # directly or as a file holding it (a mounted secret); never shown by /info or repr().
    api_key: str = field(default="", repr=False)
    api_key_file: str = ""
    # -- the top-k index ----------------------------------------------------------------------
    ann_threshold: int = 50_000  # items from which an ANN index replaces the exact one
    ann_kind: str = "ivf"  # ivf or hnsw
    ann_nprobe: int = 32
    ann_ef_search: int = 128
    # -- the feedback loop (rec_models/serving/feedback.py, scorers.py) ------------------------
    event_log: bool = True  # log every /recommend item as an impression; off: no log, no /feedback
    ab_config: str = ""  # a TOML file with an [ab] table: arms, shares, their scorer versions
    # Every worker checks this often whether a reload was asked for (of any worker: the target
    # version is written beside the event log), so all workers switch, not just the one asked.
    reload_poll_ms: int = 1000
    events: EventLogSettings = field(default_factory=EventLogSettings)

    def __post_init__(self) -> None:
        for f in fields(self):
            value, kind = getattr(self, f.name), f.type
            if kind in ("int", "bool", "str") and type(value).__name__ != kind:
                raise ValueError(f"{f.name}: expected {kind}, got {value!r}")
            if kind == "int":
                lowest = (
                    0
                    if f.name
                    in ("workers", "threads", "grpc_port", "max_queue_wait_ms", "queue_grace_ms")
                    else 1
                )
                if value < lowest:
                    raise ValueError(f"{f.name}: must be at least {lowest}, got {value}")
        if self.device not in DEVICES:
            raise ValueError(f"device: {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.ann_kind not in ANN_KINDS:
            raise ValueError(f"ann_kind: {self.ann_kind!r} is not one of {', '.join(ANN_KINDS)}")
        if self.grpc_port > 65535:
            raise ValueError(f"grpc_port: {self.grpc_port} is not a port number")
        if self.api_key_file and not self.api_key:
            # frozen: the key read from the file takes the place of the empty api_key (a copy
            # made with dataclasses.replace carries the key already read, and keeps it)
            object.__setattr__(self, "api_key", read_api_key_file(self.api_key_file))
        elif self.api_key:
            check_api_key("api_key", self.api_key)
        if self.batch_max_queue < self.batch_max_size:
            raise ValueError(
                f"batch_max_queue: {self.batch_max_queue} is below batch_max_size "
                f"{self.batch_max_size}: a full batch could never queue"
            )

    # -- derived ------------------------------------------------------------------------------
    @property
    def worker_count(self) -> int:
        return self.workers or cpu_count()

    @property
    def intra_op_threads(self) -> int:
        return self.threads or max(1, cpu_count() // self.worker_count)

    def public(self) -> dict[str, Any]:
        """What GET /info shows: every setting but the API key (only whether one is set)."""
        hidden = ("events", "api_key")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        out |= {"workers": self.worker_count, "threads": self.intra_op_threads}
        out["api_key_required"] = bool(self.api_key)
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServingSettings:
        """From ADREC_<FIELD> variables (empty values mean the default)."""
        known = {f.name: f for f in fields(cls) if f.name != "events"}
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if not key.startswith(PREFIX) or key.startswith(EVENTS_PREFIX):
                continue
            if key in OTHER_VARIABLES:
                continue
            name = key[len(PREFIX) :].lower()
            if name not in known:
                valid = ", ".join(PREFIX + n.upper() for n in known)
                raise ValueError(f"{key}: unknown variable (valid: {valid}, {EVENTS_PREFIX}*)")
            if raw.strip():
                values[name] = _parse(key, raw.strip(), known[name].type)
        if values.get("api_key") and values.get("api_key_file"):
            both = f"set {PREFIX}API_KEY or {PREFIX}API_KEY_FILE, not both"
            raise ValueError(f"{PREFIX}API_KEY: {both}")
        try:
            return cls(**values, events=EventLogSettings.from_env(env))
        except ValueError as exc:  # name the variable, not the field
            head, _, reason = str(exc).partition(": ")
            if head in known:
                raise ValueError(f"{PREFIX}{head.upper()}: {reason}") from None
            raise


def check_api_key(name: str, key: str) -> None:
    """A key a client can send in a header: printable ASCII without spaces, 16 characters at
    least (messages never repeat the key)."""
    if not all("!" <= ch <= "~" for ch in key):
        raise ValueError(f"{name}: the key must be printable ASCII without spaces")
    if len(key) < 16:
        raise ValueError(f"{name}: the key has {len(key)} characters; use at least 16")


def read_api_key_file(path: str) -> str:
    """The key in `path` (surrounding whitespace, such as a final newline, dropped)."""
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ValueError(f"api_key_file: cannot read {path}: {reason}") from None
    if not key:
        raise ValueError(f"api_key_file: {path} is empty")
    check_api_key(f"api_key_file: {path}", key)
    return key


def _parse(key: str, raw: str, kind: Any) -> Any:
    if kind == "str":
        return raw
    if kind == "bool":
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}={raw!r}: expected a boolean (1/0, true/false, on/off)")
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{key}={raw!r}: expected an integer") from None
