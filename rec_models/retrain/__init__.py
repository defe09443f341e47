"""`make retrain`: learn from the event log; publish a new scorer version only if it is no worse.

    events.sqlite ──snapshot.py──▶ logged.csv (known users' impressions, clicked or not)
    dataset + logged.csv ──train──▶ every protocol, as `make train` (rec_models/train.py)
    dataset + logged.csv minus the hold-out ──holdout.py──▶ new vs current version on the
        latest 10% of the log (AUC over its impressions, NDCG@10 re-ranking each response)
    gate.py: refuse when NDCG@10 or AUC falls by more than the margin (one line, exit 1)
    publish.py: export the scorer, swap artifacts/ in, add the version to the model store

`python -m rec_models.retrain` runs it (rec_models/retrain/__main__.py).
"""

from __future__ import annotations


class RetrainError(ValueError):
    """Retraining cannot go on (a bad or empty event log, no model to compare with, ...);
    the message is the one line the command prints."""


class Refused(RetrainError):
    """The new version is worse than the current one by more than the margin: not published."""
