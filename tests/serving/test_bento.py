"""`make bento` builds offline (network cut with `unshare -n`), twice on the same version, leaves
nothing behind when it fails, ships only the serving set, and the built Bento serves HTTP and
gRPC from its workers.

Built into a throw-away BENTOML_HOME whose models/ links to the real store, so the repository's
store gains no test Bentos.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from harness import ROOT, have_models, start_service, stop_service

from rec_models.serving.bundle import ScorerBundle

from .support import BENTOML_HOME, store_model_path


def make_bento(home: Path, version: str) -> subprocess.CompletedProcess[str]:
    """`make bento` with the network namespace cut: no package index, no hub."""
    cmd = [
        "unshare",
        "-n",
        "make",
        "-s",
        "bento",
        f"BENTOML_HOME={home}",
        f"BENTO_VERSION={version}",
    ]
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_bento_builds_offline_twice_and_serves_http_and_grpc(tmp_path: Path):
    if not have_models():
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode:
        pytest.skip("`unshare -n` is not available here (needs root or user namespaces)")
    home = tmp_path / "bentoml_home"
    (home / "models").mkdir(parents=True)
    version = f"test-{secrets.token_hex(3)}"

    failed = make_bento(home, version)  # an empty model store: the build must fail cleanly
    assert failed.returncode != 0 and "adrec-scorer" in failed.stdout + failed.stderr
    assert not (home / "tmp").exists() and not (home / "bentos" / "adrec" / version).exists()

    (home / "models").rmdir()
    (home / "models").symlink_to(BENTOML_HOME / "models")
    for attempt in range(2):  # the same version twice: the second build replaces the first
        build = make_bento(home, version)
        assert build.returncode == 0, (
            f"build {attempt}: {build.stdout[-3000:]}{build.stderr[-3000:]}"
        )
        assert not (home / "tmp").exists()

    bento = home / "bentos" / "adrec" / version
    src = {p.relative_to(bento / "src").as_posix() for p in (bento / "src").rglob("*.py")}
    assert {"service.py", "rec_models/serving/core.py", "rec_models/text/profiles.py"} <= src
    assert not [p for p in src if p.startswith(("rec_models/models/", "export/", "tests/"))]
    assert not [p for p in src if "bentoml_home" in p or p.startswith((".venv", "artifacts"))]
    assert "rec_models/train.py" not in src and "rec_models/text/encoder.py" not in src
    reqs = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "onnxruntime==1.32.0" in reqs and "torch" not in reqs and "transformers" not in reqs
    manifest = (bento / "bento.yaml").read_text()  # models are referenced by tag, not copied
    assert "tag: adrec-scorer:" in manifest and "tag: adrec-encoder-" in manifest

    user = int(ScorerBundle.load(store_model_path("adrec-scorer")).user_map.ids[0])
    svc = start_service(
        tmp_path / "bento.log", f"adrec:{version}", cwd=tmp_path, BENTOML_HOME=str(home),
        ADREC_WORKERS="1",
    )  # fmt: skip
    try:
        resp = httpx.post(f"{svc.url}/recommend", json={"user_id": user, "k": 3}, timeout=60)
        assert resp.status_code == 200, resp.text
        ids = [it["item_id"] for it in resp.json()["items"]]
        t = tgrpc.InferInput("USER_ID", [1], "INT64")
        t.set_data_from_numpy(np.array([user], dtype=np.int64))
        k = tgrpc.InferInput("K", [1], "INT32")
        k.set_data_from_numpy(np.array([3], dtype=np.int32))
        out = tgrpc.InferenceServerClient(svc.grpc).infer("recommender", [t, k])
        assert out.as_numpy("ITEM_IDS").tolist() == [ids]
    finally:
        assert not stop_service(svc)
