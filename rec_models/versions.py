"""Versions of the served scorer in the BentoML model store: list them, resolve one by name.

Every publish of `adrec-scorer` adds a version and keeps the older ones (`bentoml models list`
shows them all). `make export` publishes the first, with the version string BentoML draws;
`make retrain` names each of its versions by its number in publication order
(`adrec-scorer:2`, `adrec-scorer:3`, ...). A version is addressed by:

- `"current"`, `"latest"` or nothing: the newest version (what a service serves by default);
- its tag or version string as the store lists it (`adrec-scorer:2`, `2`, `adrec-scorer:k3x...`);
- its number in publication order (`1` is the oldest version the store holds), for versions
  whose version string is not a number (the one `make export` published).

Only bentoml and the standard library (and PyYAML, a bentoml dependency, for `make bento`): the
service resolves versions with this too. `python -m rec_models.versions` lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rec_models.config import ROOT
from rec_models.serving.store import SCORER_NAME, verify_files

CURRENT = ("current", "latest", "")


class UnknownVersion(ValueError):
    """No such version in the store; the message lists the versions there are."""


@dataclass(frozen=True)
class ScorerVersion:
    tag: str  # "adrec-scorer:2"
    version: str  # "2"
    number: int  # 1-based position in publication order
    created: datetime
    path: Path  # the model's folder in the store
    metadata: dict[str, Any]
    labels: dict[str, str]

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.metadata.get("metrics") or {})


def _bentoml():
    os.environ.setdefault("BENTOML_HOME", str(ROOT / "bentoml_home"))
    import bentoml

    return bentoml


def list_versions(name: str = SCORER_NAME) -> list[ScorerVersion]:
    """Every version of store model `name`, oldest first (empty when there is none)."""
    bentoml = _bentoml()
    try:
        found = bentoml.models.list(name)
    except bentoml.exceptions.NotFound:  # the store raises instead of listing nothing
        return []
    models = sorted(found, key=lambda m: m.info.creation_time)
    return [
        ScorerVersion(
            str(m.tag),
            str(m.tag.version),
            n,
            m.info.creation_time,
            Path(m.path),
            dict(m.info.metadata),
            dict(m.info.labels),
        )
        for n, m in enumerate(models, 1)
    ]


def resolve_version(
    ref: str | None = None, name: str = SCORER_NAME, verify: bool = True
) -> ScorerVersion:
    """The version `ref` names (see the module docstring), its files checked against the sha256
    map in its metadata when `verify`. UnknownVersion when there is no such version."""
    versions = list_versions(name)
    if not versions:
        raise UnknownVersion(f"model store: no {name} version (run `make export` first)")
    ref = (ref or "").strip()
    wanted = ref.split(":", 1)[1] if ref.startswith(f"{name}:") else ref
    if wanted.lower() in CURRENT:
        found = versions[-1]
    else:
        by_version = {v.version: v for v in versions}
        found = by_version.get(wanted)
        if found is None and wanted.isdigit() and 1 <= int(wanted) <= len(versions):
            found = versions[int(wanted) - 1]
        if found is None:
            listed = ", ".join(v.version for v in versions)
            raise UnknownVersion(f"model store: no version {ref!r} of {name} (there are: {listed})")
    if verify:
        verify_files(found.path, found.metadata.get("sha256") or {})
    return found


def current_version(name: str = SCORER_NAME, verify: bool = True) -> ScorerVersion | None:
    """The newest version, or None when the store holds none."""
    try:
        return resolve_version(None, name, verify)
    except UnknownVersion:
        return None


def next_version_name(name: str = SCORER_NAME) -> str:
    """The number the next version gets: one more than the versions there are (or than the
    highest numbered version string, should versions have been deleted)."""
    versions = list_versions(name)
    taken = [int(v.version) for v in versions if v.version.isdigit()]
    return str(max([len(versions), *taken]) + 1)


def shipped_models(models: list[str], name: str = SCORER_NAME) -> list[str]:
    """A bentofile's `models` with `name:latest` replaced by every version of `name` in the
    store, oldest first. A Bento's image carries only the models its bentofile lists, and there
    the store is that list: with `latest` alone, an A/B arm pinned to "1" (the oldest, by
    publication order) would get the newest version under that number. Every version keeps
    the numbers as they are here. Without any version the entry stays (the build names it)."""
    tags = [v.tag for v in list_versions(name)]
    out: list[str] = []
    for entry in models:
        if str(entry) == f"{name}:latest" and tags:
            out += [t for t in tags if t not in out]
        elif entry not in out:
            out.append(entry)
    return out


def write_bentofile(src: Path, dest: Path, name: str = SCORER_NAME) -> list[str]:
    """`src` (bentofile.yaml) with its models expanded by shipped_models, written to `dest`
    (what `bentoml build -f` reads); returns the model list."""
    import yaml

    spec = yaml.safe_load(Path(src).read_text())
    spec["models"] = shipped_models([str(m) for m in spec.get("models") or []], name)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    tmp.write_text(yaml.safe_dump(spec, sort_keys=False))
    os.replace(tmp, dest)
    return spec["models"]


def main(argv: list[str] | None = None) -> int:
    """`python -m rec_models.versions`: the scorer versions, oldest first;
    `--bentofile SRC DEST`: write SRC with every scorer version in its models (make bento)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m rec_models.versions", description=main.__doc__)
    p.add_argument("--bentofile", nargs=2, metavar=("SRC", "DEST"))
    args = p.parse_args(argv)
    if args.bentofile:
        models = write_bentofile(Path(args.bentofile[0]), Path(args.bentofile[1]))
        scorers = [m.split(":", 1)[1] for m in models if m.startswith(f"{SCORER_NAME}:")]
        print(f"{args.bentofile[1]}: {len(models)} models, scorer versions {', '.join(scorers)}")
        return 0
    for v in list_versions():
        source = v.labels.get("source", "export")
        print(f"{v.number:>3}  {v.tag:<40} {v.created:%Y-%m-%d %H:%M:%S}  {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
