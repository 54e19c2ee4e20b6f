"""Recovery of the impact model on the five simulated cases, control selection, AR errors, placebo."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.impact import PlaceboResult, estimate_impact
from cannabis_market.analysis.impact.cases import CASES, simulate_case
from cannabis_market.errors import InputError


def _fit(name: str, seed: int, **kw):
    case = simulate_case(name, seed)
    r = estimate_impact(
        case.frame,
        "y",
        case.pre_period,
        case.post_period,
        controls=case.controls,
        seed=seed,
        n_sims=500,
        **kw,
    )
    return case, r, r.summary().filter(pl.col("row") == "average").row(0, named=True)


@pytest.mark.parametrize("name", CASES)
def test_each_case_recovers_the_known_effect(name: str) -> None:
    """Three seeds per case: the 95% interval covers the true relative effect, the point is close."""
    for seed in range(3):
        case, r, avg = _fit(name, seed)
        assert avg["rel_effect_lo"] <= case.effect <= avg["rel_effect_hi"], (name, seed, avg)
        assert abs(avg["rel_effect"] - case.effect) < (0.02 if name == "monthly" else 0.012), (name, seed)
        if name == "placebo":
            assert not r.significant
        else:
            assert r.significant, (name, seed)


def test_ar_noise_is_reported_and_widens_the_interval() -> None:
    """AR(1) noise: residual autocorrelation shows in summary('model'); the interval is wider than with
    white noise of the same innovation sd."""
    _, r_ar, avg_ar = _fit("ar_noise", 4)
    model = r_ar.summary("model").row(0, named=True)
    assert model["residual_acf1"] > 0.35 and model["model"] == "regression"
    assert "autocorrelation" in r_ar.report()
    _, _, avg_clean = _fit("clean", 4)
    assert avg_ar["rel_effect_hi"] - avg_ar["rel_effect_lo"] > 1.5 * (
        avg_clean["rel_effect_hi"] - avg_clean["rel_effect_lo"]
    )


def test_short_pre_period_with_more_controls_than_the_3_per_parameter_rule() -> None:
    """22 monthly points, 7 controls (the StatCan shape): runs, picks the informative controls."""
    rng = np.random.default_rng(11)
    n = 23
    factor = 100 * (1 + 0.02 * np.arange(n)) + np.cumsum(rng.normal(0, 2, n))
    X = np.column_stack(
        [factor * (1 + rng.normal(0, 0.01, n)) for _ in range(2)]
        + [100 + np.cumsum(rng.normal(0, 3, n)) for _ in range(5)]
    )
    y = 3 * factor * (1 + rng.normal(0, 0.01, n))
    y[-1] *= 0.9
    dates = [dt.date(2020 + (9 + m) // 12, (9 + m) % 12 + 1, 1) for m in range(n)]
    names = [f"p{i}" for i in range(7)]
    frame = pl.DataFrame({"date": dates, "y": y, **{c: X[:, i] for i, c in enumerate(names)}})
    r = estimate_impact(frame, "y", (dates[0], dates[-2]), (dates[-1], dates[-1]), controls=names, seed=2)
    assert r.model == "regression" and "too short for the state-space" in r.model_choice
    incl = dict(r.summary("controls").select("control", "inclusion_prob").iter_rows())
    assert max(incl["p0"], incl["p1"]) > 0.5
    assert all(incl[c] < 0.5 for c in names[2:])
    avg = r.summary().row(0, named=True)
    assert avg["rel_effect_lo"] <= -0.1 <= avg["rel_effect_hi"]  # y fell by 10% in the post month
    for c in names:
        assert f"'{c}'" in r.report()
    with pytest.raises(InputError, match="too short"):
        estimate_impact(
            frame, "y", (dates[0], dates[-2]), (dates[-1], dates[-1]), controls=names, model="state_space"
        )


def test_a_control_whose_relation_breaks_in_the_pre_period_is_dropped() -> None:
    rng = np.random.default_rng(3)
    n = 150
    x1 = 100 + np.cumsum(rng.normal(0, 1, n))
    twin = x1 + rng.normal(0, 0.5, n)
    twin[60:] += np.cumsum(rng.normal(0, 2.0, n - 60))  # the relation breaks after day 60
    y = 2 * x1 + rng.normal(0, 1, n)
    y[130:] -= 20
    frame = pl.DataFrame({"t": np.arange(n), "y": y, "x1": x1, "twin": twin})
    r = estimate_impact(
        frame, "y", (0, 129), (130, 149), controls=["x1", "twin"], date_col="t", model="regression"
    )
    incl = dict(r.summary("controls").select("control", "inclusion_prob").iter_rows())
    assert incl["x1"] > 0.9 and incl["twin"] < 0.2
    assert r.average.lo <= -20 <= r.average.hi


def test_state_space_family_still_available_and_named() -> None:
    _, r, avg = _fit("clean", 1, model="state_space")
    assert r.model == "state_space" and r.model_choice == "requested"
    assert avg["rel_effect_lo"] <= -0.05 <= avg["rel_effect_hi"]
    assert set(r.summary("controls")["inclusion_prob"]) == {1.0}
    assert "structural time series" in r.report()
    with pytest.raises(InputError, match="model must be"):
        _fit("clean", 1, model="bsts")


def test_in_time_placebo_separates_a_real_effect_from_none() -> None:
    _, real, _ = _fit("clean", 2)
    p = real.placebo(n_dates=8, n_sims=200)
    assert isinstance(p, PlaceboResult) and 5 <= p.n <= 8
    pre_end = real.pre_period[1]
    assert all(d <= pre_end for d in p.table["fake_start"])
    assert p.share_as_large == 0.0 and p.p_value == pytest.approx(1 / (p.n + 1))
    assert "stands out" in p.report() and f"{p.n} fake intervention dates" in p.report()
    _, none, _ = _fit("placebo", 2)
    q = none.placebo(n_dates=8, n_sims=200)
    assert q.share_as_large > 0.1  # a null effect is matched by placebo effects
    assert "caution" in q.report()
    assert q.summary().columns == [
        "n_placebos",
        "share_as_large",
        "p_value",
        "false_positive_rate",
        "real_rel_effect",
    ]


def test_summary_keeps_its_columns_and_rejects_unknown_tables() -> None:
    _, r, _ = _fit("monthly", 0)
    assert r.summary().columns[:2] == ["row", "actual"] and r.summary().height == 2
    assert r.summary("controls").columns == ["control", "inclusion_prob", "coefficient", "weight"]
    assert r.summary("controls").height == 6
    with pytest.raises(ValueError, match="summary"):
        r.summary("nope")


def test_long_series_refused_for_the_state_space_model_with_a_suggestion() -> None:
    n = 6_000
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=n))
    frame = pl.DataFrame({"t": np.arange(n), "y": x + rng.normal(size=n), "x": x})
    with pytest.raises(InputError, match=r"too long.*aggregate"):
        estimate_impact(
            frame, "y", (0, n - 11), (n - 10, n - 1), controls=["x"], date_col="t", model="state_space"
        )


def test_many_controls_use_the_gibbs_sampler_and_find_the_two_that_matter() -> None:
    """12 controls (past exact enumeration): the two that drive y are kept, the ten others dropped."""
    rng = np.random.default_rng(5)
    n = 80
    X = np.column_stack([100 + np.cumsum(rng.normal(size=n)) for _ in range(12)])
    y = 2 * X[:, 0] + X[:, 5] + rng.normal(size=n)
    y[70:] -= 10
    names = [f"c{i}" for i in range(12)]
    frame = pl.DataFrame({"t": np.arange(n), "y": y, **{c: X[:, i] for i, c in enumerate(names)}})
    r = estimate_impact(frame, "y", (0, 69), (70, 79), controls=names, date_col="t", model="regression")
    incl = dict(r.summary("controls").select("control", "inclusion_prob").iter_rows())
    assert incl["c0"] > 0.9 and incl["c5"] > 0.9
    assert all(incl[c] < 0.3 for c in names if c not in ("c0", "c5"))
    assert r.average.lo <= -10 <= r.average.hi
