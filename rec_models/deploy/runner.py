"""Run the image here: `podman run` with the runc runtime and rlimits this kernel accepts.

Measured on these machines: without `--ulimit`, runc (and crun) fail with "error setting rlimit
type 7 (NOFILE): operation not permitted"; `--ulimit nproc` above kernel.pid_max (32768 here) fails
the same way for type 6 (NPROC), even at the host's own soft limit. Values at or below the host's
hard limits and pid_max start the container, with podman's default bridge network publishing its
ports on 127.0.0.1.
"""

from __future__ import annotations

import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .context import GRPC_PORT, HTTP_PORT
from .tools import require, run

PID_MAX = Path("/proc/sys/kernel/pid_max")
SITE_PACKAGES = "/app/.venv/lib/python3.11/site-packages"


def _hard(limit: int, cap: int) -> int:
    hard = resource.getrlimit(limit)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def rlimit_flags() -> list[str]:
    """`--ulimit` flags at the largest values the OCI runtime may set here, read now."""
    pid_max = int(PID_MAX.read_text()) if PID_MAX.is_file() else 32768
    nofile = _hard(resource.RLIMIT_NOFILE, 1 << 20)
    nproc = _hard(resource.RLIMIT_NPROC, pid_max)
    return ["--runtime", "runc", "--ulimit", f"nofile={nofile}:{nofile}",
            "--ulimit", f"nproc={nproc}:{nproc}"]  # fmt: skip


def run_command(
    image: str, http_port: int, grpc_port: int, env: dict[str, str] | None = None
) -> list[str]:
    """The `podman run -d` command line of the image, ports published on 127.0.0.1 only."""
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    # The HEALTHCHECK stays in the image; podman's periodic runner needs systemd (none here), so
    # its timer is off and the check is run on demand (Container.healthcheck).
    return [
        "podman", "run", "-d", *rlimit_flags(), "--health-interval=disable",
        "-p", f"127.0.0.1:{http_port}:{HTTP_PORT}", "-p", f"127.0.0.1:{grpc_port}:{GRPC_PORT}",
        *flags, image,
    ]  # fmt: skip


@dataclass
class Container:
    cid: str
    http_port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def running(self) -> bool:
        out = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.Running}}", self.cid],
            capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip() == "true"

    def logs(self) -> str:
        out = subprocess.run(["podman", "logs", self.cid], capture_output=True, text=True)
        return out.stdout + out.stderr

    def healthcheck(self) -> bool:
        """The image's own HEALTHCHECK, run once now (podman's timer needs systemd)."""
        return subprocess.run(["podman", "healthcheck", "run", self.cid]).returncode == 0

    def stop(self) -> None:
        subprocess.run(["podman", "stop", "-t", "20", self.cid], capture_output=True)
        subprocess.run(["podman", "rm", "-f", self.cid], capture_output=True)


def start(
    image: str, http_port: int, grpc_port: int, env: dict[str, str] | None = None
) -> Container:
    require("podman", "runc")
    cid = run(run_command(image, http_port, grpc_port, env), "podman run", timeout=120).strip()
    return Container(cid.splitlines()[-1], http_port, grpc_port)


def site_packages(image: str) -> list[str]:
    """The names in the image's virtualenv site-packages (what the image can import)."""
    out = run(
        ["podman", "run", "--rm", *rlimit_flags(), "--network", "none", "--no-healthcheck",
         "--entrypoint", "ls", image, SITE_PACKAGES],
        "listing the image's site-packages", timeout=120,
    )  # fmt: skip
    return out.split()
