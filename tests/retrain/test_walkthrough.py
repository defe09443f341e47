"""The README's walkthrough on a small scale, through benchmarks/walkthrough.py's own steps:
a real `bentoml serve` with the example A/B config (A pinned to version 1, B on the newest),
real HTTP traffic into it (/recommend + /feedback, the taste click model), `make retrain`'s
command on the service's event log publishing version 2, POST /admin/reload under traffic with
no failed request, and the A/B report on the impressions after the swap: A = v1, B = v2, a
verdict only at the planned size, never B worse.

The scale: the MovieLens subset of the retrain tests (tests/retrain/support.py, FAST models);
version 1 is what `make train` + `make export`'s scorer step make of it, published into a store
of its own with the real encoders linked in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import BENTOML_HOME, have_models

from benchmarks.walkthrough import ok, run
from rec_models.serving.store import SCORER_NAME
from tests.retrain.support import config_text, run_module, subset

LENIENT = "ndcg_margin = 0.5\nauc_margin = 0.5\nmin_holdout_clicks = 5"
FIRST_VERSION = """
import json, sys
from pathlib import Path
from export.scorer import export_scorer
from export.store import publish
from rec_models.config import load_config
from rec_models.train import train
cfg = load_config(sys.argv[1])
cfg.artifacts_dir = sys.argv[2]
train(cfg)
scorer = Path(export_scorer(Path(sys.argv[2]), cfg))
config = json.loads((scorer / "config.json").read_text())
meta = {"model": config.get("model"), "metrics": config.get("metrics", {})}
print(publish(scorer, "adrec-scorer", meta, version="1"))
"""


@pytest.mark.slow
def test_serve_traffic_retrain_swap_and_ab_report(tmp_path: Path):
    if not have_models():
        pytest.skip(f"no adrec models in {BENTOML_HOME}: run `make export` first")
    home = tmp_path / "bentoml_home"
    (home / "models").mkdir(parents=True)
    for folder in (BENTOML_HOME / "models").glob("adrec-encoder-*"):
        (home / "models" / folder.name).symlink_to(folder.resolve())
    data, art = tmp_path / "data", tmp_path / "artifacts"
    subset(data)
    config = tmp_path / "config.toml"
    config.write_text(config_text(data, LENIENT))
    first = run_module("-c", [FIRST_VERSION, str(config), str(art)], home)
    assert first.returncode == 0 and f"{SCORER_NAME}:1" in first.stdout, first.stderr[-3000:]
    retrain = ["--config", str(config), "--artifacts", str(art)]

    work = tmp_path / "walk"
    work.mkdir()
    rec = run(work, home, retrain, config, before=300, after=300, clients=4, workers="1")

    assert rec["started"]["scorer"]["pinned"] == {"A": "1"}
    assert rec["before"]["served"] == {"A": ["1"], "B": ["1"]}  # both arms on version 1
    assert rec["before"]["failed"] == 0 and rec["before"]["feedback_failed"] == 0
    clicks = sum(c["clicks"] for c in rec["before"]["by_arm_and_version"].values())
    assert rec["before"]["requests"] == 300 and clicks > 0
    assert rec["retrain"]["returncode"] == 0, rec["retrain"]["stderr_tail"]
    assert f"published {SCORER_NAME}:2 (kept: {SCORER_NAME}:1)" in rec["retrain"]["stdout"]

    swap = rec["swap"]
    assert swap["reload"]["status"] == 202 and swap["reload"]["version"] == "2"
    assert swap["failed"] == 0 and swap["feedback_failed"] == 0, swap["failure_kinds"]
    assert swap["settled"] is not None
    assert swap["served"] == {"A": ["1"], "B": ["1", "2"]}  # A stays pinned; B swapped
    assert not rec["service_left_running"] and ok(rec)

    report = rec["abtest"]["json"]
    assert {a["arm"] for a in report["arms"]} == {"A", "B"}
    served = {(r["variant"], r["model_version"]) for r in report["overview"]["by_version"]}
    assert served == {("A", "1"), ("B", "2")}  # after the swap: a clean v1-vs-v2 comparison
    trials = sum(a["ctr"]["trials"] for a in report["arms"])
    assert 300 <= trials <= 10 * swap["requests"]  # at least the 300 responses after the swap
    # a verdict only once every arm has the planned size (no peeking); whether 40 users get
    # there depends on how long the swap took to settle, and on the design effect the log shows
    reached = all(report["reached"].values())
    assert report["comparisons"] and all(
        (c["status"] == "underpowered") == (not reached) for c in report["comparisons"]
    ), json.dumps(report["comparisons"])
    assert ("underpowered" in rec["abtest"]["text"]) == (not reached)
    # users remember their clicks (benchmarks/simulate_clicks.py): the retrained B moves on from
    # what they clicked, A shows it again, so B cannot be found worse
    assert all(c["status"] != "worse" for c in report["comparisons"]), rec["abtest"]["text"]
