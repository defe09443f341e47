"""`bentoml build` works offline, ships only the serving set, and the built Bento serves.

Built into a throw-away BENTOML_HOME whose models/ links to the real store, so the repository's
store gains no test Bentos.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rec_models.config import ROOT
from rec_models.serving.bundle import ScorerBundle

from .support import BENTOML_HOME, free_port, have_models, stop, store_model_path, wait_ready


@pytest.mark.slow
def test_bento_builds_offline_and_serves(tmp_path: Path):
    if not have_models():
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    home = tmp_path / "bentoml_home"
    home.mkdir()
    (home / "models").symlink_to(BENTOML_HOME / "models")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    version = f"test-{secrets.token_hex(3)}"
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--version", version],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    bento = home / "bentos" / "adrec" / version
    src = {p.relative_to(bento / "src").as_posix() for p in (bento / "src").rglob("*.py")}
    assert {"service.py", "rec_models/serving/runtime.py", "rec_models/text/profiles.py"} <= src
    assert not [p for p in src if p.startswith(("rec_models/models/", "export/", "tests/"))]
    assert "rec_models/train.py" not in src and "rec_models/text/encoder.py" not in src
    reqs = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "onnxruntime==1.32.0" in reqs and "torch" not in reqs and "transformers" not in reqs
    manifest = (bento / "bento.yaml").read_text()  # models are referenced by tag, not copied
    assert "tag: adrec-scorer:" in manifest and "tag: adrec-encoder-" in manifest

    user = int(ScorerBundle.load(store_model_path("adrec-scorer")).user_map.ids[0])
    port, log = free_port(), tmp_path / "bento.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", f"adrec:{version}",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log, 300)
        resp = httpx.post(f"{url}/recommend", json={"user_id": user, "k": 3}, timeout=60)
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["items"]) == 3
    finally:
        stop(proc)
