"""An arm pinned to an older scorer version must load inside the Bento's image too.

The image's model store is what the Bento lists (rec_models/deploy/context.py copies those
models in, and BentoML serves from them). With `adrec-scorer:latest` alone the image holds one
version, and an arm pinned to "1" (the oldest, by publication order) would silently get the
newest under that number. `make bento` and the container build list every version
(rec_models.versions.write_bentofile). Checked against a throw-away store of small stand-in
models: the real `bentoml build -f` of the expanded bentofile, then the image's store as the
container build fills it, where version "1" resolves to the first version published.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FAKE_STORE = """
import time, bentoml
for name in ("adrec-scorer", "adrec-scorer", "adrec-encoder-int8",
             "adrec-encoder-distilled-int8", "adrec-encoder-fp16"):
    with bentoml.models.create(name) as m:
        open(m.path_of("weights.bin"), "wb").write(b"stand-in")
    time.sleep(0.05)  # distinct creation times: publication order
"""
RESOLVE = """
import json
from rec_models.versions import list_versions, resolve_version
print(json.dumps({"one": resolve_version("1", verify=False).tag,
                  "current": resolve_version("current", verify=False).tag,
                  "all": [v.tag for v in list_versions()]}))
"""


def python(code: str, home: Path, *args: str, timeout: float = 300) -> str:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run([sys.executable, *(["-c", code] if code else []), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("store") / "bentoml_home"
    python(FAKE_STORE, home)
    return home


def test_the_bentofile_lists_every_scorer_version_oldest_first(store: Path, tmp_path: Path):
    versions = json.loads(python(RESOLVE, store))["all"]
    assert len(versions) == 2
    dest = tmp_path / "bentofile.yaml"
    out = python("", store, "-m", "rec_models.versions", "--bentofile", "bentofile.yaml",
                 str(dest))  # fmt: skip
    models = yaml.safe_load(dest.read_text())["models"]
    assert models[:2] == versions  # in place of adrec-scorer:latest, in publication order
    assert "adrec-encoder-int8:latest" in models and "adrec-scorer:latest" not in models
    assert out.strip().endswith(", ".join(v.split(":")[1] for v in versions))
    source = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert {k: v for k, v in source.items() if k != "models"} == {
        k: v for k, v in yaml.safe_load(dest.read_text()).items() if k != "models"
    }  # nothing else changes


def test_an_image_with_latest_alone_would_pin_the_wrong_version(store: Path, tmp_path: Path):
    """Why every version ships: numbers count the versions the store holds."""
    versions = json.loads(python(RESOLVE, store))["all"]
    newest = versions[1].split(":")[1]
    image = tmp_path / "image" / "models" / "adrec-scorer"
    shutil.copytree(store / "models" / "adrec-scorer" / newest, image / newest)
    (image / "latest").write_text(newest)
    assert json.loads(python(RESOLVE, tmp_path / "image"))["one"] == versions[1]


@pytest.mark.slow
def test_built_bento_ships_every_version_and_one_stays_the_first(store: Path, tmp_path: Path):
    if shutil.which("uv") is None and not (Path(sys.executable).parent / "uv").exists():
        pytest.skip("bentoml build needs uv offline (make setup installs it)")
    versions = json.loads(python(RESOLVE, store))["all"]
    bentofile = tmp_path / "bentofile.yaml"
    python("", store, "-m", "rec_models.versions", "--bentofile", "bentofile.yaml", str(bentofile))
    ctx = tmp_path / "ctx"  # a clean copy of the included files, as the container build does
    for pattern in yaml.safe_load(bentofile.read_text())["include"]:
        for path in ROOT.glob(pattern.lstrip("/")):
            if path.is_file() and "__pycache__" not in path.parts:
                (ctx / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, ctx / path.relative_to(ROOT))
    env = {**os.environ, "BENTOML_HOME": str(store), "BENTOML_DO_NOT_TRACK": "True",
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}  # fmt: skip
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile), "--version", "t1", "."],
        cwd=ctx, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    manifest = yaml.safe_load((store / "bentos" / "adrec" / "t1" / "bento.yaml").read_text())
    shipped = [str(m["tag"]) for m in manifest["models"]]
    assert [t for t in shipped if t.startswith("adrec-scorer:")] == versions

    # the image's store as the container build fills it (a process of its own: BENTOML_HOME
    # is read once per process)
    copy = (
        "import sys; from pathlib import Path; from rec_models.deploy.context import "
        "copy_models; copy_models(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    python(copy, store, str(store / "bentos" / "adrec" / "t1"), str(tmp_path / "image" / "models"))
    image = json.loads(python(RESOLVE, tmp_path / "image"))
    assert image["all"] == versions
    assert image["one"] == versions[0] and image["current"] == versions[1]
