"""Fast calibration checks of the growth report's 95% intervals (the full run is benchmarks/bench_calibration.py).

Each test simulates data with a known truth, runs the public estimator and counts how often the interval
contains the truth. Few draws, so the bands are wide; they still fail for an interval that is clearly
too narrow (e.g. the i.i.d. bootstrap of growth curves, ~0.6-0.8) or far too wide (the models' own
forecast intervals before issue #17: 0.99-1.0, which the upper bounds below exclude).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_calibration as BC  # noqa: E402


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


def test_growth_capacity_interval_covers_true_K():
    res = BC.coverage_capacity(12, seed0=400, n_boot=100)
    assert res["coverage"] >= 9 / 12, res


def test_cannibalization_interval_covers_true_elasticity():
    res = BC.coverage_cannibalization(12, seed0=500)
    assert res["coverage"] >= 9 / 12, res
