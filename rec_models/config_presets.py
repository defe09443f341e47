"""Model settings of a built-in dataset, chosen on its validation split, applied beneath a config
file's own values (a key the file sets wins; the dataclass defaults of config.py lie beneath).

MovieLens-100K's come from `python -m benchmarks.quality_sweep` (README "Measured quality": the
table of every direction tried); the click logs (obd, synthetic, custom) keep the defaults, on
which tests/pipeline/test_click_log.py measures them.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # iALS: the coordinate search's best on validation (NDCG@10 0.2471 against 0.2435 for
    # 200 factors and alpha 10), and 2x faster to fit
    "movielens": {"mf": {"factors": 128, "alpha": 7.5}},
}


def preset_values(source: str, values: dict[str, Any]) -> dict[str, Any]:
    """`values` (a config file's tables) laid over the preset of `source`."""
    out: dict[str, Any] = {k: dict(v) for k, v in PRESETS.get(source, {}).items()}
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = out[key] | value
        else:
            out[key] = value
    return out
