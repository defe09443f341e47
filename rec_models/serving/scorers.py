"""Scorer versions in a worker: the current one (hot-swapped) and those A/B arms pin.

    scorers = ScorerVersions(core, experiment, settings)
    answer = await scorers.request("2")   # POST /admin/reload: resolve, record, load, switch
    asyncio.create_task(scorers.watch())   # every worker follows the recorded target

A reload reaches one worker (whichever accepted the connection), but every worker must switch:
the worker asked resolves the version in the model store (rec_models.versions: "current" is
the newest, "2" a numbered one), writes it to `scorer_target.json` beside the event log, and
every worker polls that file (a stat every `reload_poll_ms`). A worker that sees a new target
builds the runtime in a thread (the store's files sha256-verified, the user tower run over the
known users, self-checked) while it keeps serving the old one, then switches in one step on the
event loop (ServingCore.swap_runtime): no request fails or mixes versions. A version that fails
to load leaves the old one serving; /info says why. A restarted worker starts on the recorded
target, so the workers agree after a crash too. Pinned arms ([ab] `model_version`) keep their
version across swaps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from rec_models.serving.errors import ServingError

logger = logging.getLogger("bentoml.adrec")
CONTROL_FILE = "scorer_target.json"


class UnknownVersionError(ServingError, LookupError):
    status, grpc_code, kind = 404, "NOT_FOUND", "unknown_version"

    def __init__(self, reason: str) -> None:
        super().__init__([(("version",), reason)])


def resolve(ref: str) -> tuple[str, str]:
    """(version, tag) of store scorer version `ref` ('current', '2', 'adrec-scorer:2')."""
    from rec_models.versions import UnknownVersion, resolve_version

    try:
        found = resolve_version(ref, verify=False)  # the runtime verifies every file it loads
    except UnknownVersion as exc:
        raise UnknownVersionError(str(exc)) from None
    return found.version, found.tag


class ScorerVersions:
    def __init__(self, core: Any, experiment: Any, control_dir: Path, poll_s: float) -> None:
        self.core = core
        self.experiment = experiment
        self.control = Path(control_dir) / CONTROL_FILE
        self.poll_s = poll_s
        self._pinned: dict[str, Any] = {}  # version -> runtime, for the arms that name one
        self.pins_ready = False  # the arms' versions loaded and checked (load_pins)
        self.loading: str | None = None  # the version being built now
        self.error: str | None = None  # why the last reload failed
        self.swaps: list[dict[str, Any]] = []  # this worker's switches, oldest first
        self._acted: float | None = None  # requested_at of the last target acted upon
        self._lock = asyncio.Lock()

    # -- what serves --------------------------------------------------------------------------
    @property
    def current(self) -> str:
        from rec_models.serving.feedback import model_version

        return model_version(self.core.runtime) if self.core.runtime is not None else ""

    def pinned(self, version: str) -> Any:
        """The runtime of pinned `version` (None until loaded: the arm serves the current)."""
        return self._pinned.get(version)

    def info(self) -> dict[str, Any]:
        return {
            "version": self.current,
            "tag": str(self.core.runtime.source.get("tag")) if self.core.runtime else None,
            "loading": self.loading,
            "error": self.error,
            "swaps": self.swaps[-5:],
            "pinned": {a.name: a.model_version for a in self._pinned_arms()},
        }

    def _pinned_arms(self) -> list[Any]:
        arms = self.experiment.arms if self.experiment is not None else ()
        return [a for a in arms if a.model_version]

    # -- start-up -----------------------------------------------------------------------------
    def startup_tag(self) -> str | None:
        """The recorded target's tag, when there is one and the store still holds it."""
        target = self._read()
        if target is None:
            return None
        self._acted = target["requested_at"]
        try:
            return resolve(target["version"])[1]
        except UnknownVersionError as exc:
            logger.warning(
                "%s names a version that is gone (%s): serving the newest", self.control, exc
            )
            return None

    async def load_pins(self) -> None:
        """Build the runtimes of the versions the A/B arms pin (after the core has loaded)."""
        try:
            for arm in self.experiment.arms if self.experiment is not None else ():
                if arm.encoder_variant and arm.encoder_variant != self.core.variant:
                    raise ValueError(
                        f"arm {arm.name!r}: encoder_variant {arm.encoder_variant!r}, but this "
                        f"worker serves {self.core.variant!r} (one encoder per worker; set "
                        "ADREC_ENCODER_VARIANT): arms choose scorer versions"
                    )
            for arm in self._pinned_arms():
                version, tag = await asyncio.to_thread(resolve, arm.model_version)
                if arm.model_version in self._pinned:
                    continue
                if version == self.current:
                    runtime = self.core.runtime
                else:
                    runtime = await asyncio.to_thread(self.core.build_runtime, tag)
                self._pinned[arm.model_version] = runtime
        except Exception as exc:
            logger.exception("loading the A/B arms' scorer versions failed")
            self.error = f"A/B arm versions: {type(exc).__name__}: {exc}"
            return
        self.pins_ready = True
        # The line a supervisor (or the tests' harness) waits for: this worker answers every arm.
        logger.info("ready to serve: %d pinned scorer version(s) loaded", len(self._pinned))

    # -- reload -------------------------------------------------------------------------------
    async def request(self, ref: str) -> dict[str, Any]:
        """POST /admin/reload: resolve `ref`, record it for every worker, start loading here."""
        version, tag = await asyncio.to_thread(resolve, ref or "current")
        previous = self.current
        target = {"version": version, "tag": tag, "requested_at": time.time()}
        await asyncio.to_thread(self._write, target)
        state = "serving" if version == previous else "loading"
        if state == "loading":
            asyncio.get_running_loop().create_task(self.check())
        return {"version": version, "tag": tag, "previous": previous, "state": state}

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.check()
            except Exception:  # the watch must outlive any one bad target
                logger.exception("checking %s failed", self.control)

    async def check(self) -> None:
        """Switch to the recorded target if it is new (one check at a time)."""
        if self._lock.locked() or self.core.runtime is None:
            return
        async with self._lock:
            target = await asyncio.to_thread(self._read)
            if target is None or target["requested_at"] == self._acted:
                return
            self._acted = target["requested_at"]
            if target["version"] != self.current:
                await self._swap(target["version"], target["tag"])

    async def _swap(self, version: str, tag: str) -> None:
        self.loading, t0, previous = version, time.monotonic(), self.current
        try:
            runtime = await asyncio.to_thread(self.core.build_runtime, tag)
        except Exception as exc:
            logger.exception("loading scorer %s failed; still serving %s", tag, previous)
            self.error = f"loading {tag} failed: {type(exc).__name__}: {exc}"
            return
        finally:
            self.loading = None
        self.core.swap_runtime(runtime)  # one step on the loop: atomic for every request
        self.error = None
        took = round(time.monotonic() - t0, 2)
        self.swaps.append({"from": previous, "to": version, "at": time.time(), "load_s": took})
        logger.info("scorer %s -> %s (loaded in %.1f s)", previous, version, took)

    # -- the control file ---------------------------------------------------------------------
    def _read(self) -> dict[str, Any] | None:
        try:
            target = json.loads(self.control.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("%s unreadable (%s): ignored", self.control, exc)
            return None
        if not isinstance(target, dict) or not {"version", "tag", "requested_at"} <= set(target):
            logger.warning("%s lacks version / tag / requested_at: ignored", self.control)
            return None
        return target

    def _write(self, target: dict[str, Any]) -> None:
        """Atomically (a reader sees the old file or the new one, never half of it)."""
        self.control.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.control.with_name(f".{self.control.name}.{os.getpid()}")
        tmp.write_text(json.dumps(target))
        os.replace(tmp, self.control)
