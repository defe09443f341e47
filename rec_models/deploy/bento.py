"""The Bento the image is made from: `adrec:<short git HEAD>`, built once and reused.

`bentoml build --version V` refuses a tag that already exists, so a second `make container` on
the same commit reuses the Bento, unless its files no longer match the working tree (an edit
since it was built): then it is deleted and built again, so the image never ships stale code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from rec_models.config import ROOT

from .tools import ContainerError, run

NAME = "adrec"


def bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME", ROOT / "bentoml_home"))


def default_version() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else "dev"


def bentofile() -> dict:
    return yaml.safe_load((ROOT / "bentofile.yaml").read_text())


def serve_packages() -> list[str]:
    """The bentofile's Python packages: the serving set, what the image installs."""
    return [str(p) for p in bentofile()["python"]["packages"]]


def included_files() -> dict[str, bytes]:
    """The working tree's files that `bentoml build` puts into the Bento's src/."""
    spec = bentofile()
    files: dict[str, bytes] = {}
    for pattern in spec["include"]:
        # "/x" is anchored at the build context, as bentoml reads it; ROOT.glob wants it relative.
        for path in ROOT.glob(pattern.lstrip("/")):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and "__pycache__" not in rel and not rel.endswith(".pyc"):
                files[rel] = path.read_bytes()
    return files


def is_current(bento: Path) -> bool:
    """True when the Bento's sources, packages and envs are those of the working tree and it
    ships every scorer version of the store."""
    src = bento / "src"
    built = {
        p.relative_to(src).as_posix(): p.read_bytes()
        for p in src.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "bentofile.yaml"
    }
    wanted = included_files()
    if any(built.get(rel) != data for rel, data in wanted.items()):
        return False
    reqs = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    if not all(p in reqs for p in serve_packages()):
        return False
    built = yaml.safe_load((bento / "bento.yaml").read_text())
    wanted_envs = bentofile().get("envs") or []
    as_map = lambda envs: {e["name"]: str(e.get("value", "")) for e in envs}  # noqa: E731
    if as_map(built.get("envs") or []) != as_map(wanted_envs):
        return False
    # a scorer version published since (make retrain) must be in the image too
    from rec_models.serving.store import SCORER_NAME
    from rec_models.versions import list_versions

    built_models = {str(m["tag"]) for m in built.get("models") or []}
    return {v.tag for v in list_versions(SCORER_NAME)} <= built_models


def bentoml(*args: str, cwd: Path = ROOT, timeout: float = 900) -> str:
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home()), "BENTOML_DO_NOT_TRACK": "True"}
    return run(
        [sys.executable, "-m", "bentoml", *args], f"bentoml {args[0]}", timeout, cwd=cwd, env=env
    )


def build_bento(version: str) -> None:
    """`bentoml build` from a clean copy of the included files, not from the repository: an
    unanchored include pattern ("service.py") matches at any depth, so a build from the
    repository also takes the Bentos under bentoml_home/ (and a failed build's tmp/ copy, into
    itself until "File name too long")."""
    with tempfile.TemporaryDirectory(prefix="adrec-bento-") as ctx:
        for rel, data in included_files().items():
            (Path(ctx) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(ctx) / rel).write_bytes(data)
        # every scorer version, so an A/B arm pinned to an older one loads in the image too
        from rec_models.versions import write_bentofile

        write_bentofile(ROOT / "bentofile.yaml", Path(ctx) / "bentofile.yaml")
        bentoml("build", "--version", version, ".", cwd=Path(ctx))


def ensure_bento(version: str | None = None) -> Path:
    """The folder of the Bento `adrec:<version>`, building or rebuilding it when needed."""
    version = version or default_version()
    bento = bentoml_home() / "bentos" / NAME / version
    if (bento / "bento.yaml").is_file():
        if is_current(bento):
            print(f"bento: reusing {NAME}:{version} ({bento})", flush=True)
            return bento
        print(f"bento: {NAME}:{version} differs from the working tree: rebuilding", flush=True)
        bentoml("delete", "-y", f"{NAME}:{version}")
    print(f"bento: bentoml build --version {version} (from a clean copy)", flush=True)
    build_bento(version)
    if not (bento / "bento.yaml").is_file():
        raise ContainerError(f"bentoml build succeeded but {bento} has no bento.yaml")
    return bento
