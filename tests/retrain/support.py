"""A small MovieLens subset whose users' hidden tastes drive the clicks of an event log.

Of each user's liked (>= 4) ratings, a third is kept out of the dataset files: those are the
user's tastes the dataset does not show. The log's responses show 10 items each, half of them
drawn from those hidden likes where there are enough; a hidden like is clicked with probability
0.6, any other item with 0.05. So the log holds signal the dataset lacks, and a model that
learns from it can rank the hold-out better than one that never saw it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from subsets import movielens_subset

from rec_models.config import ROOT
from rec_models.data.custom import save_canonical
from rec_models.data.schema import Dataset
from rec_models.events import EventKind, Feedback, Impressions, SQLiteSink

N_USERS, N_ITEMS = 40, 150
SEED = 7


def subset(folder: Path) -> dict[int, np.ndarray]:
    """Write the subset's files into `folder`; returns each user's hidden liked item ids."""
    sub = movielens_subset(N_USERS, N_ITEMS)
    inter = sub.interactions
    rng = np.random.default_rng(SEED)
    hidden = (inter["rating"] >= 4).to_numpy() & (rng.random(len(inter)) < 1 / 3)
    save_canonical(Dataset(sub.name, sub.users, sub.items, inter[~hidden]), folder)
    out: dict[int, np.ndarray] = {}
    for user, group in inter[hidden].groupby("user_id"):
        out[int(user)] = group["item_id"].to_numpy(np.int64)
    return out


def write_log(
    path: Path, hidden: dict[int, np.ndarray], item_ids: np.ndarray, responses: int, seed: int
) -> int:
    """`responses` logged responses of known users through the real SQLiteSink, with their
    clicks; returns the clicks logged. Responses are one second apart, ending an hour ago."""
    rng = np.random.default_rng(seed)
    users = np.array(sorted(hidden))
    start = time.time() - 3600 - responses
    clicks = 0
    with SQLiteSink(path) as sink:
        for r in range(responses):
            user = int(rng.choice(users))
            liked = hidden[user]
            n_liked = min(5, len(liked))
            shown = list(rng.choice(liked, n_liked, replace=False)) if n_liked else []
            others = np.setdiff1d(item_ids, shown)
            shown += list(rng.choice(others, 10 - n_liked, replace=False))
            shown = [int(i) for i in rng.permutation(shown)]
            ts = start + r
            request_id = f"r{seed}-{r}"
            ranked = [(i, 1.0 / (k + 1), 0.1) for k, i in enumerate(shown)]
            imp = Impressions.ranked(
                request_id,
                ranked,
                model_version="1",
                variant="A",
                encoder_variant="int8",
                timestamp=ts,
                user_id=user,
            )
            assert sink.log_impressions(imp)
            p = np.where(np.isin(shown, liked), 0.6, 0.05)
            chosen = [i for i, q in zip(shown, p, strict=True) if rng.random() < q]
            if chosen:
                events = [Feedback(request_id, i, EventKind.CLICK, ts + 1) for i in chosen]
                sink.submit_feedback(events).result(timeout=30)
                clicks += len(chosen)
        assert sink.flush(timeout=30)
    return clicks


def items_of(folder: Path) -> np.ndarray:
    return pd.read_csv(folder / "items.csv")["item_id"].to_numpy(np.int64)


# the fast configuration of the subset, and one that cannot rank: MF with two factors, a 2-wide
# text tower trained once
FAST = {"mf": "factors = 16\nepochs = 3", "attention": "dim = 32\nepochs = 2\nfolds = 2"}
CRIPPLED = {"mf": "factors = 2\nepochs = 1", "attention": "dim = 2\nepochs = 1\nfolds = 2"}


def config_text(data: Path, retrain: str, models: dict[str, str] = FAST) -> str:
    """A small configuration of the subset (one ranking protocol) with a [retrain] table."""
    return f"""protocols = ["recommenders"]
[data]
source = "custom"
path = "{data}"
rows = "interactions"
[encoder]
max_length = 32
[mf]
{models["mf"]}
[attention]
{models["attention"]}
[hybrid]
alphas = [0.0, 0.5, 1.0]
[retrain]
{retrain}
"""


def run_module(
    module: str, args: list[str], bentoml_home: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`python -m module args` (or `python -c CODE` with module "-c") against the model store
    at `bentoml_home`."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(bentoml_home),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "BENTOML_DO_NOT_TRACK": "True",
    }
    return subprocess.run(
        [sys.executable, *(["-c"] if module == "-c" else ["-m", module]), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )  # fmt: skip
