"""Intervention analysis (analysis.impact); the `impact` CLI subcommand is tested in test_cli_impact.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import altair as alt
import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.impact import ImpactResult, estimate_impact
from cannabis_market.errors import InputError

# ----------------------------------------------------------------------------------- data makers


def ar1(rng: np.random.Generator, n: int, coef: float) -> np.ndarray:
    e = rng.normal(size=n)
    out = np.empty(n)
    out[0] = e[0]
    for t in range(1, n):
        out[t] = coef * out[t - 1] + e[t]
    return out


def vignette_data(seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    """CausalImpact's vignette recipe: x1 = 100 + AR(1, 0.999), y = 1.2 x1 + N(0, 1), +10 on t = 71..100."""
    rng = np.random.default_rng(seed)
    x1 = 100 + ar1(rng, 100, 0.999)
    y = 1.2 * x1 + rng.normal(size=100)
    counterfactual = y.copy()
    y[70:] += 10.0
    return pl.DataFrame({"t": np.arange(1, 101), "y": y, "x1": x1}), counterfactual


def small_series(rng: np.random.Generator, n_pre: int, n_post: int, effect: float) -> pl.DataFrame:
    """Response = 5 + 1.5 * control + N(0, 1), control a random walk; `effect` added after n_pre."""
    n = n_pre + n_post
    x = 10 + np.cumsum(rng.normal(size=n)) * 0.5
    y = 5 + 1.5 * x + rng.normal(size=n)
    y[n_pre:] += effect
    return pl.DataFrame({"t": np.arange(n), "y": y, "x": x})


def daily_frame(n: int = 140, effect: float = -30.0, n_post: int = 28, seed: int = 5) -> pl.DataFrame:
    """Daily sales with a day-of-week pattern, two controls, and `effect` over the last n_post days."""
    rng = np.random.default_rng(seed)
    start = dt.date(2022, 3, 1)
    dates = pl.date_range(start, start + dt.timedelta(days=n - 1), eager=True)
    a = 1000 + np.cumsum(rng.normal(size=n)) * 8
    b = 400 + np.cumsum(rng.normal(size=n)) * 4
    weekday = np.array([d.weekday() for d in dates])
    dow = np.array([20.0, 10.0, 0.0, -5.0, 15.0, 60.0, -40.0])[weekday]
    y = 100 + 0.6 * a + 0.9 * b + dow + rng.normal(size=n) * 8
    y[n - n_post :] += effect
    return pl.DataFrame({"date": dates, "sales": y, "ctl_a": a, "ctl_b": b})


# ------------------------------------------------------------------------------------ vignette


def test_vignette_recovers_the_plus_10_effect() -> None:
    frame, counterfactual = vignette_data(seed=2024)
    r = estimate_impact(frame, "y", (1, 70), (71, 100), controls=["x1"], date_col="t", seed=1)
    s = r.summary()
    avg = s.filter(pl.col("row") == "average").row(0, named=True)
    print(
        f"\nvignette: predicted avg {avg['predicted']:.2f} [{avg['predicted_lo']:.2f}, {avg['predicted_hi']:.2f}]"
        f" (true counterfactual avg {counterfactual[70:].mean():.2f}); abs effect {avg['abs_effect']:.2f}"
        f" [{avg['abs_effect_lo']:.2f}, {avg['abs_effect_hi']:.2f}]; {r.p_value_text}"
    )
    assert avg["abs_effect_lo"] <= 10 <= avg["abs_effect_hi"]
    assert abs(avg["abs_effect"] - 10) <= 1.5
    assert abs(avg["predicted"] - counterfactual[70:].mean()) <= 2.0
    assert r.p_value < 0.01 and r.significant
    assert "strong evidence of an increase" in r.report()
    # the cumulative row is the average row times the post-period length
    cum = s.filter(pl.col("row") == "cumulative").row(0, named=True)
    for col in ("actual", "predicted", "predicted_lo", "abs_effect", "abs_effect_hi"):
        assert cum[col] == pytest.approx(30 * avg[col], rel=1e-9)
    assert cum["rel_effect"] == pytest.approx(avg["rel_effect"], rel=1e-9)


# ------------------------------------------------------------------------- calibration checks


def test_coverage_of_cumulative_interval_is_near_nominal() -> None:
    """150 short series with a known effect: the 95% cumulative interval covers the truth 90-99%."""
    rng = np.random.default_rng(20240601)
    n_pre, n_post, effect = 40, 10, 2.0
    hits = []
    for i in range(150):
        frame = small_series(rng, n_pre, n_post, effect)
        r = estimate_impact(
            frame,
            "y",
            (0, n_pre - 1),
            (n_pre, n_pre + n_post - 1),
            controls=["x"],
            date_col="t",
            n_sims=300,
            seed=i,
        )
        c = r.cumulative
        hits.append(c.lo <= effect * n_post <= c.hi)
    rate = float(np.mean(hits))
    print(f"\ncoverage of the 95% cumulative interval: {rate:.3f} over {len(hits)} series")
    assert 0.90 <= rate <= 0.99


def test_placebo_intervention_is_mostly_not_significant() -> None:
    rng = np.random.default_rng(77)
    quiet = []
    for i in range(60):
        frame = small_series(rng, 45, 15, effect=0.0)
        r = estimate_impact(frame, "y", (0, 44), (45, 59), controls=["x"], date_col="t", n_sims=300, seed=i)
        c = r.cumulative
        covers = c.lo <= 0 <= c.hi
        quiet.append(r.p_value > 0.05 and covers)
        text = r.report()
        if covers:  # the wording must follow the interval
            assert "cannot rule out no effect" in text and "strong evidence" not in text
        assert 1 / 301 <= r.p_value <= 1
    rate = float(np.mean(quiet))
    print(f"\nplacebo: {rate:.3f} of draws have p > 0.05 and an interval covering 0")
    assert rate >= 0.80


# ------------------------------------------------------------------------------ mechanics


def test_same_seed_same_summary_different_seed_different_draws() -> None:
    frame, _ = vignette_data(seed=3)
    kw = dict(controls=["x1"], date_col="t", n_sims=200)
    a = estimate_impact(frame, "y", (1, 70), (71, 100), seed=11, **kw)
    b = estimate_impact(frame, "y", (1, 70), (71, 100), seed=11, **kw)
    c = estimate_impact(frame, "y", (1, 70), (71, 100), seed=12, **kw)
    assert a.summary().equals(b.summary())
    assert a.series.equals(b.series)
    assert not a.summary().equals(c.summary())
    assert a.average.point == pytest.approx(c.average.point, abs=1.0)


def test_cumulative_interval_is_joint_not_summed_pointwise() -> None:
    frame, _ = vignette_data(seed=8)
    r = estimate_impact(frame, "y", (1, 70), (71, 100), controls=["x1"], date_col="t", n_sims=400)
    post = r.series.filter(pl.col("period") == "post")
    summed_widths = float((post["predicted_hi"] - post["predicted_lo"]).sum())
    cum = r.summary().filter(pl.col("row") == "cumulative").row(0, named=True)
    assert cum["predicted_hi"] - cum["predicted_lo"] < 0.6 * summed_widths
    # the series' last cumulative effect is the summary's cumulative effect
    assert post["cum_effect"][-1] == pytest.approx(cum["abs_effect"], rel=1e-9)
    assert post["cum_effect_lo"][-1] == pytest.approx(cum["abs_effect_lo"], rel=1e-9)
    # lost = minus the cumulative effect, interval flipped
    assert r.lost.point == pytest.approx(-cum["abs_effect"])
    assert (r.lost.lo, r.lost.hi) == pytest.approx((-cum["abs_effect_hi"], -cum["abs_effect_lo"]))


def test_series_layout_with_a_gap_between_periods() -> None:
    frame, _ = vignette_data(seed=9)
    r = estimate_impact(frame, "y", (11, 60), (66, 100), controls=["x1"], date_col="t", n_sims=200)
    s = r.series
    assert s.height == 90 and s["date"].to_list() == list(range(11, 101))
    assert s.filter(pl.col("period") == "gap")["date"].to_list() == [61, 62, 63, 64, 65]
    gap = s.filter(pl.col("period") == "gap")
    assert gap["cum_effect"].null_count() == 5 and gap["predicted"].null_count() == 0
    pre = s.filter(pl.col("period") == "pre")
    assert (pre["cum_effect"] == 0).all()
    assert pre["predicted"].drop_nulls().len() >= 45  # one-step predictions after the diffuse start
    assert set(s.columns) >= {
        "date", "actual", "predicted", "predicted_lo", "predicted_hi", "point_effect", "point_effect_lo",
        "point_effect_hi", "cum_effect", "cum_effect_lo", "cum_effect_hi",
    }  # fmt: skip
    ok = s.drop_nulls(["predicted_lo"])
    assert (ok["predicted_lo"] <= ok["predicted"]).all() and (ok["predicted"] <= ok["predicted_hi"]).all()
    assert (ok["point_effect_lo"] <= ok["point_effect_hi"]).all()


def test_huge_effect_hits_the_p_value_floor() -> None:
    frame, _ = vignette_data(seed=4)
    frame = frame.with_columns(pl.when(pl.col("t") > 70).then(pl.col("y") + 200).otherwise(pl.col("y")))
    r = estimate_impact(frame, "y", (1, 70), (71, 100), controls=["x1"], date_col="t", n_sims=300)
    assert r.p_value == pytest.approx(1 / 301) and r.p_value > 0
    assert r.p_value_text == "p < 1/301"
    assert "p < 1/301" in r.report()


def test_level_variance_respects_prior_level_sd() -> None:
    """The state-space family keeps the level variance under prior_level_sd squared."""
    rng = np.random.default_rng(1)
    n = 120
    x = np.cumsum(rng.normal(size=n))
    drift = np.cumsum(rng.normal(size=n)) * 2.0  # far more level movement than 0.01 sd allows
    frame = pl.DataFrame({"t": np.arange(n), "y": x + drift + rng.normal(size=n), "x": x})
    r = estimate_impact(
        frame, "y", (0, 99), (100, 119), controls=["x"], date_col="t", n_sims=200, model="state_space"
    )
    assert 0 <= r.params["sigma2_level"] <= 0.01**2 * (1 + 1e-9)
    wide = estimate_impact(
        frame,
        "y",
        (0, 99),
        (100, 119),
        controls=["x"],
        date_col="t",
        n_sims=200,
        model="state_space",
        prior_level_sd=0.5,
    )
    assert wide.params["sigma2_level"] > 0.01**2  # the bound, not the data, held the first fit down
    flat = estimate_impact(
        frame,
        "y",
        (0, 99),
        (100, 119),
        controls=["x"],
        date_col="t",
        n_sims=200,
        model="state_space",
        prior_level_sd=0.0,
    )
    assert "sigma2_level" not in flat.params


# ----------------------------------------------------------------------- frequencies, chart


def test_daily_dates_with_day_of_week_seasonality_and_controls() -> None:
    frame = daily_frame()
    post_start = frame["date"][-28]
    r = estimate_impact(
        frame,
        "sales",
        ("2022-03-01", post_start - dt.timedelta(days=1)),
        (post_start, frame["date"][-1]),
        controls=["ctl_a", "ctl_b"],
    )
    assert r.frequency == "daily" and r.seasonality == 7
    assert r.series.schema["date"] == pl.Date
    avg = r.average
    assert avg.lo <= -30 <= avg.hi and avg.hi < 0
    assert r.params["beta_ctl_a"] == pytest.approx(0.6, abs=0.15)
    none = estimate_impact(
        frame,
        "sales",
        (frame["date"][0], post_start - dt.timedelta(days=1)),
        (post_start, frame["date"][-1]),
        controls=["ctl_a", "ctl_b"],
        seasonality=None,
    )
    assert none.seasonality is None
    # ignoring a strong weekly pattern widens the counterfactual band
    width = lambda res: res.average.hi - res.average.lo  # noqa: E731
    assert width(none) > width(r)
    text = r.report(money=True)
    assert "CA$" in text and "per day" in text and "decrease" in text


def test_datetime_and_string_dates_are_accepted() -> None:
    frame = daily_frame(n=90, n_post=20)
    as_dt = frame.with_columns(pl.col("date").cast(pl.Datetime("us")))
    as_str = frame.with_columns(pl.col("date").cast(pl.String))
    kw = dict(pre_period=("2022-03-01", "2022-05-09"), post_period=("2022-05-10", "2022-05-29"), n_sims=200)
    a = estimate_impact(as_dt, "sales", controls=["ctl_a"], **kw)
    b = estimate_impact(as_str, "sales", controls=["ctl_a"], **kw)
    assert a.summary().equals(b.summary())


def test_monthly_dates_use_month_of_year_when_two_cycles() -> None:
    rng = np.random.default_rng(12)
    months = pl.date_range(dt.date(2019, 4, 1), dt.date(2024, 12, 1), interval="1mo", eager=True)
    n = months.len()
    season = np.array([0, -3, 2, 4, 6, 5, 3, 1, -2, 8, -6, -18.0])[[d.month - 1 for d in months]]
    control = 200 + np.cumsum(rng.normal(size=n)) * 3
    y = 50 + 0.8 * control + season + rng.normal(size=n) * 1.5
    y[-12:] -= 15
    frame = pl.DataFrame({"month": months, "revenue": y, "ontario_ex": control})
    r = estimate_impact(
        frame, "revenue", ("2019-04-01", "2023-12-01"), ("2024-01-01", "2024-12-01"),
        controls=["ontario_ex"], date_col="month", n_sims=400,
    )  # fmt: skip
    assert r.frequency == "monthly" and r.seasonality == 12
    assert r.cumulative.lo <= -15 * 12 <= r.cumulative.hi
    assert "Jan 2024" in r.report() and "per month" in r.report()
    short = estimate_impact(
        frame, "revenue", ("2022-06-01", "2023-12-01"), ("2024-01-01", "2024-12-01"),
        controls=["ontario_ex"], date_col="month", n_sims=200,
    )  # fmt: skip
    assert short.seasonality is None  # 19 pre months: fewer than 2 yearly cycles


def test_integer_index_has_no_seasonality_and_chart_is_well_formed() -> None:
    frame, _ = vignette_data(seed=6)
    r = estimate_impact(frame, "y", (1, 70), (71, 100), controls=["x1"], date_col="t", n_sims=200)
    assert r.frequency == "index" and r.seasonality is None
    ch = r.chart()
    assert isinstance(ch, alt.VConcatChart) and len(ch.vconcat) == 3
    spec = ch.to_dict()
    assert max(len(v) for v in spec["datasets"].values()) <= 100
    assert "quantitative" in json.dumps(spec)
    # a very long series is thinned to at most 5,000 rows before it reaches altair
    big = pl.concat([r.series] * 60).with_columns(pl.int_range(pl.len()).alias("date"))
    spec = dataclasses.replace(r, series=big).chart().to_dict()
    assert max(len(v) for v in spec["datasets"].values()) <= 5000


def test_daily_chart_uses_temporal_axis_and_rule() -> None:
    frame = daily_frame(n=70, n_post=14)
    r = estimate_impact(
        frame, "sales", ("2022-03-01", "2022-04-25"), ("2022-04-26", "2022-05-09"), n_sims=200
    )
    spec = json.dumps(r.chart().to_dict())
    assert '"temporal"' in spec and '"rule"' in spec


# ---------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def base() -> pl.DataFrame:
    return daily_frame(n=120, n_post=20)


def _call(frame: pl.DataFrame, **kw) -> ImpactResult:
    args = dict(
        y="sales",
        pre_period=("2022-03-01", "2022-06-08"),
        post_period=("2022-06-09", "2022-06-28"),
        controls=["ctl_a"],
        n_sims=100,
    )
    args.update(kw)
    return estimate_impact(frame, **args)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            dict(post_period=("2022-03-01", "2022-03-20"), pre_period=("2022-04-01", "2022-06-28")),
            "after the pre-period",
        ),
        (dict(post_period=("2022-06-01", "2022-06-28")), "overlap"),
        (dict(pre_period=("2022-01-01", "2022-06-08")), "outside the data"),
        (dict(post_period=("2022-06-09", "2022-12-31")), "outside the data"),
        (dict(pre_period=("2022-06-01", "2022-06-08")), "too short"),
        (dict(seasonality=60), "cycles"),
        (dict(controls=["ctl_a", "nope"]), "'nope' not present"),
        (dict(y="revenue"), "'revenue' not present"),
        (dict(date_col="day"), "'day' not present"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=1.2), "alpha"),
        (dict(n_sims=50), "n_sims"),
        (dict(pre_period=("March 1", "2022-06-08")), "ISO"),
        (dict(pre_period=("2022-06-08", "2022-03-01")), "after its end"),
        (dict(prior_level_sd=-1.0), "prior_level_sd"),
        (dict(seasonality="weekly"), "seasonality"),
    ],
)
def test_bad_arguments_raise_input_error(base: pl.DataFrame, change: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        _call(base, **change)


def test_missing_values_name_column_and_count(base: pl.DataFrame) -> None:
    holes = base.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([3, 50, 110]))
        .then(None)
        .otherwise(pl.col("sales"))
        .alias("sales"),
        pl.when(pl.int_range(pl.len()).is_in([7, 8]))
        .then(float("nan"))
        .otherwise(pl.col("ctl_a"))
        .alias("ctl_a"),
    )
    with pytest.raises(InputError, match=r"'sales' has 3 missing.*'ctl_a' has 2 missing"):
        _call(holes)


def test_duplicated_and_missing_dates_are_rejected(base: pl.DataFrame) -> None:
    with pytest.raises(InputError, match="duplicated"):
        _call(pl.concat([base, base.slice(10, 2)]))
    with pytest.raises(InputError, match=r"gaps: 3 missing date"):
        _call(base.filter(~pl.int_range(pl.len()).is_in([20, 21, 40])))


def test_constant_series_are_rejected(base: pl.DataFrame) -> None:
    flat = base.with_columns(
        pl.when(pl.col("date") < dt.date(2022, 6, 9)).then(5.0).otherwise(pl.col("sales")).alias("sales")
    )
    with pytest.raises(InputError, match="constant"):
        _call(flat)
    with pytest.raises(InputError, match="'ctl_a'.*constant"):
        _call(base.with_columns(pl.lit(3.0).alias("ctl_a")))


def test_input_error_is_a_value_error(base: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="alpha"):
        _call(base, alpha=2)


def test_report_never_overclaims_without_controls() -> None:
    """No controls: the counterfactual is a level extrapolation; a small effect is not called strong."""
    rng = np.random.default_rng(99)
    y = 50 + rng.normal(size=80) * 3
    y[60:] += 0.5
    frame = pl.DataFrame({"t": np.arange(80), "y": y})
    r = estimate_impact(frame, "y", (0, 59), (60, 79), date_col="t", n_sims=300)
    c = r.cumulative
    assert c.lo <= 0.5 * 20 <= c.hi
    if c.lo <= 0 <= c.hi:
        assert "cannot rule out no effect" in r.report()
    assert not math.isnan(r.summary()["rel_effect"][0])
