"""The [ab] configuration: stable assignment by traffic share, the plan, errors naming keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from rec_models.abtest.config import Arm, Experiment, Plan, load_ab, parse_ab


def _experiment(name: str = "exp", shares: tuple[float, float] = (0.5, 0.5)) -> Experiment:
    return Experiment(name, (Arm("A", shares[0]), Arm("B", shares[1])), "A")


def test_a_user_always_lands_in_the_same_arm() -> None:
    exp = _experiment()
    first = [exp.assign(f"u:{u}").name for u in range(2000)]
    assert first == [exp.assign(f"u:{u}").name for u in range(2000)]
    assert _experiment().assign("p:" + "ab" * 16) == exp.assign("p:" + "ab" * 16)


def test_traffic_follows_the_shares() -> None:
    exp = _experiment(shares=(0.9, 0.1))
    n = 20_000
    b = sum(exp.assign(f"u:{u}").name == "B" for u in range(n))
    sd = (n * 0.1 * 0.9) ** 0.5
    assert abs(b - n * 0.1) < 4 * sd


def test_experiments_shuffle_users_independently() -> None:
    one, two = _experiment("one"), _experiment("two")
    n = 10_000
    same = sum(one.assign(f"u:{u}") == two.assign(f"u:{u}") for u in range(n))
    assert abs(same - n / 2) < 4 * (n * 0.25) ** 0.5  # agreement of two fair coins


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"variants": [{"name": "A", "share": 0.5}, {"name": "B", "share": 0.4}]},
         "shares must sum to 1, they sum to 0.9"),
        ({"variants": [{"name": "A", "share": 0.5}, {"name": "A", "share": 0.5}]},
         r"ab.variants\[1\].name: 'A' appears twice"),
        ({"variants": [{"name": "A", "share": 1.0, "weight": 2}]},
         r"ab.variants\[0\].weight: unknown key"),
        ({"variants": [{"name": "A", "share": 1.0}], "control": "Z"},
         "ab.control: 'Z' is not a variant"),
        ({"variants": [{"name": "A", "share": "half"}]}, r"ab.variants\[0\].share"),
        ({"colour": "red"}, "ab.colour: unknown key"),
        ({"plan": {"baseline": 1.5, "mde": 0.1}}, r"plan.baseline: must lie in \(0, 1\)"),
        ({"plan": {"baseline": 0.5, "mde": 0.6}}, "plan.mde: baseline 0.5 \\+ effect 0.6"),
        ({"plan": {"baseline": 0.1, "mde": 0.1, "metric": "ndcg"}}, "plan.metric: 'ndcg'"),
        ({"plan": {"baseline": 0.1}}, "ab.plan: .*mde"),
        ({"plan": {"baseline": 0.1, "mde": 0.1, "design_effect": 0.5}}, "design_effect"),
    ],
)  # fmt: skip
def test_config_errors_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ab(table)


def test_the_ab_table_of_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "ab.toml"
    path.write_text(
        """
[ab]
experiment = "scorer-v2"
control = "A"
[[ab.variants]]
name = "A"
share = 0.9
model_version = "1"
[[ab.variants]]
name = "B"
share = 0.1
model_version = "2"
encoder_variant = "int8"
[ab.plan]
baseline = 0.05
mde = 0.1
relative = true
"""
    )
    experiment, plan = load_ab(path)
    assert experiment is not None and experiment.shares == {"A": 0.9, "B": 0.1}
    assert experiment.arms[1] == Arm("B", 0.1, "2", "int8")
    assert plan == Plan(baseline=0.05, mde=0.1, relative=True)
    assert plan.effect == pytest.approx(0.005) and plan.target == pytest.approx(0.055)
    (tmp_path / "bad.toml").write_text("[ab\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_ab(tmp_path / "bad.toml")
    (tmp_path / "none.toml").write_text("[data]\n")
    with pytest.raises(ValueError, match=r"no \[ab\] table"):
        load_ab(tmp_path / "none.toml")
