"""Fast calibration checks of the growth report's 95% intervals (the full run is benchmarks/bench_calibration.py).

Each test simulates data with a known truth, runs the public estimator and counts how often the interval
contains the truth. Few draws, so the bands are wide; they still fail for an interval that is clearly
too narrow (e.g. the i.i.d. bootstrap of growth curves, ~0.6-0.8) or far too wide (the models' own
forecast intervals before issue #17: 0.99-1.0, which the upper bounds below exclude). The seasonal-naive
case has serially dependent errors (the same 12 outcome months at every horizon): scoring the forecast
errors leaving out only their origin covered 0.81 there, below the band.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_calibration as BC  # noqa: E402
import study_forecast_intervals as BI  # noqa: E402


def test_forecast_intervals_from_backtest_errors_cover_about_95_percent():
    # the interval machinery with the cheap naive model on random walks: 30 draws x 12 horizons
    res = BC.coverage_forecast(30, seed0=100, models=("naive",), random_walk=True)
    assert 0.88 <= res["coverage"] <= 0.985, res
    # and with seasonal naive on seasonal data
    res = BC.coverage_forecast(20, seed0=200, models=("snaive",))
    assert 0.86 <= res["coverage"] <= 0.99, res


def test_default_forecast_interval_is_neither_too_narrow_nor_too_wide():
    from cannabis_market.analysis.growth import forecast_demand

    df, future = BC.sim_sales(301)
    s = forecast_demand(df, horizon=12).summary()
    inside = (s["lo"].to_numpy() <= future) & (future <= s["hi"].to_numpy())
    assert inside.sum() >= 9, inside
    # the 95% band one month ahead is a few times the noise (sd ~0.035 in logs), not 10x
    width = float(np.log(s["hi"][0] / s["lo"][0]))
    assert 0.05 < width < 0.4, width


def test_forecast_interval_follows_heavy_tailed_errors_at_80_and_95_percent():
    # issue #17's case with a known truth: seasonal series with i.i.d. Student-t(3) noise, seasonal naive
    # (its backtest errors are i.i.d. at each horizon). t quantile x RMS error covered ~0.85 at nominal
    # 80% (the RMS is inflated by the tails) while right at 95%; the errors' own distribution is ~0.8/0.95.
    import datetime as dt

    import polars as pl

    from cannabis_market.analysis.growth import demand as D
    from cannabis_market.analysis.growth import forecast_demand

    hits = {"new80": [], "new95": [], "old80": []}
    for s in range(48):
        y = BI.sim_iid(s, 3.0)
        df = pl.DataFrame({"period": BC._months(dt.date(2019, 1, 1), 60), "sales": y[:60]})
        res = forecast_demand(df, horizon=12, models=("snaive",))
        bt = res.backtest.filter(pl.col("model") == "snaive").sort("horizon")
        for alpha, key in ((0.2, "new80"), (0.05, "new95")):
            s_ = res.at_level(alpha)
            hits[key].append((s_["lo"].to_numpy() <= y[60:]) & (y[60:] <= s_["hi"].to_numpy()))
        f = np.log(res.summary()["forecast"].to_numpy())
        old = D._half_width(bt["rmse_log"].to_numpy(), bt["n_origins"].to_numpy(), 0.2)
        hits["old80"].append(np.abs(np.log(y[60:]) - f) <= old)
    cov = {k: float(np.mean(v)) for k, v in hits.items()}
    assert 0.72 <= cov["new80"] <= 0.83, cov
    assert 0.92 <= cov["new95"] <= 0.99, cov
    assert cov["new80"] <= cov["old80"] - 0.04, cov  # the shape changed where the t rule was too wide


def test_forecast_interval_scale_and_small_sample_fallback():
    from cannabis_market.analysis.growth import demand as D

    rng = np.random.default_rng(0)
    # the scale never shrinks with the horizon: a decreasing RMS is pooled into one value
    errs = [rng.normal(0, sd, 12) for sd in (0.1, 0.05, 0.02)]
    s = D._scale(errs)
    assert np.all(np.diff(s) >= 0) and np.isclose(s[0], np.sqrt(np.mean(np.concatenate(errs) ** 2)))
    up = [rng.normal(0, sd, 12) for sd in (0.02, 0.05, 0.1)]
    assert np.allclose(D._scale(up), [np.sqrt(np.mean(e**2)) for e in up])
    # 1 horizon x 5 origins: 5 scores allow an 80% interval (rank ceil(6 x 0.8) = 5 of 5)
    # but not a 95% one (ceil(6 x 0.95) = 6 > 5): that falls back to t x RMS x sqrt(1 + 1/k)
    e = rng.normal(0, 0.05, 5)
    cal = D._calibrate([e], [np.arange(5.0)])
    assert cal.enough(0.2) and not cal.enough(0.05)
    assert np.isclose(cal.half_width(0.2)[0], cal.scores[4] * cal.scale[0])
    assert np.isclose(
        cal.half_width(0.05)[0], D._half_width(np.array([np.sqrt(np.mean(e**2))]), np.array([5]), 0.05)[0]
    )
    # each score leaves out the errors that share its origin or outcome month: with one horizon that is
    # plain leave-one-out
    loo = sorted(abs(e[i]) / np.sqrt(np.mean(np.delete(e, i) ** 2)) for i in range(5))
    assert np.allclose(cal.scores, loo)
    # two horizons: the origin-2 error at h=1 (outcome month 3) also drops the origin-3 error at h=0
    e2 = [rng.normal(0, 0.05, 4), rng.normal(0, 0.08, 4)]
    org = [np.arange(4.0), np.arange(4.0)]
    keep0 = np.array([True, True, True, False]) & (org[0] != 2)
    ref = abs(e2[1][2]) / D._scale([e2[0][keep0], np.delete(e2[1], 2)])[1]
    assert np.isclose(D._calibrate(e2, org).scores, ref).any()


def test_growth_capacity_interval_covers_true_K():
    res = BC.coverage_capacity(12, seed0=400, n_boot=100)
    assert res["coverage"] >= 9 / 12, res


def test_cannibalization_interval_covers_true_elasticity():
    res = BC.coverage_cannibalization(12, seed0=500)
    assert res["coverage"] >= 9 / 12, res
