"""Fast part of the pricing calibration suite (#17): nominal 95% intervals of the price trend, the
elasticity and the competition effect cover a known truth on simulated data. The full run (200 draws
each, coverage within 0.90-0.98) is benchmarks/bench_calibration_pricing.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_calibration_pricing import TRUTH, coverage  # noqa: E402


@pytest.mark.parametrize(("kind", "draws"), [("trend", 40), ("elasticity", 30), ("competition", 25)])
def test_nominal_95_intervals_cover_the_truth(kind, draws):
    c = coverage(kind, draws, seed=101)
    # with 25-40 draws a calibrated 95% interval misses more than 15% of the time with probability < 1%
    assert c["coverage"] >= 0.85, c
    assert abs(c["mean_estimate"] - TRUTH[kind]) < 0.25 * c["mean_width"], c  # no bias worth an interval
