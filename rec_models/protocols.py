"""Which evaluations apply to a dataset, what each one measures, and why the others are skipped.

The report names every protocol it ran with one sentence on its split, its relevant items and its
candidates, and every evaluation it did not run with the reason (no meaningless numbers: no CVR
without conversions, no re-ranking of impressions where nothing was shown and left unclicked).
"""

from __future__ import annotations

from rec_models.config import ConfigError, TrainConfig
from rec_models.data.events import has_impressions
from rec_models.data.splits import PROTOCOLS
from rec_models.pipeline import Context

NOTES = {
    "recommenders": "per-user stratified 75/25 split (Microsoft Recommenders' "
    "python_stratified_split); relevant: the user's test positives; candidates: the training "
    "catalog minus the user's training positives",
    "temporal": "per user, the latest 20% of rows by time are test; relevant and candidates as "
    "in recommenders",
    "cold_start": "20% of the items (cold ads) never appear in training; relevant: test "
    "positives; candidates: the cold items",
    "cold_user": "20% of the users never appear in training (profile: demographics and free "
    "text only); relevant: their positives; candidates: the training catalog",
    "ctr_sampled": "the recommenders test rows (liked = click, the others non-click) plus as "
    "many sampled unseen items as non-clicks; Platt calibration on the validation split",
    "ctr_impressions": "time-ordered: models fit on the earliest 64% of impressions, Platt "
    "calibration on the next 16%, measured on the latest 20% (held-out impressions)",
    "cvr": "the held-out clicks of the time-ordered split, label = converted",
    "impression_ranking": "the time-ordered split's held-out impressions of each user "
    "re-ranked by the model; relevant: the clicked ones",
}


def plan(cfg: TrainConfig, ctx: Context) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """(ranking protocols to run, {evaluation: what it measures}, {skipped one: why})."""
    inter = ctx.dataset.interactions
    impressions = has_impressions(inter)
    default = ["recommenders", "temporal", "cold_start"] + (["cold_user"] if impressions else [])
    protocols = list(cfg.protocols) or default
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(
            f"config: train.protocols: unknown {', '.join(unknown)} (valid: {', '.join(PROTOCOLS)})"
        )
    skipped = {p: "not in train.protocols" for p in PROTOCOLS if p not in protocols}
    ran = [*protocols]
    if impressions:
        ran += ["ctr_impressions", "impression_ranking"]
        skipped["ctr_sampled"] = "the log has real shown-but-not-clicked impressions"
        if not inter["conversion"].any():
            skipped["cvr"] = "no conversions in the log"
        else:
            ran.append("cvr")
    else:
        ran.append("ctr_sampled")
        why = "no shown-but-not-clicked rows: every row is a positive"
        skipped |= {"ctr_impressions": why, "impression_ranking": why}
        skipped["cvr"] = "no impression log with conversions"
    return protocols, {name: NOTES[name] for name in ran}, skipped
