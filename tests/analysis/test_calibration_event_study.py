"""The event study's interval for the total loss covers the truth at about its nominal rate (#17, fast).

The full run (>= 100 draws, band 0.90-0.98) is `benchmarks/bench_calibration_event_study.py`; this uses
the same simulation with few draws and a band that still fails an interval that is far too narrow or wide.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_calibration_event_study as cal  # noqa: E402


def test_total_loss_interval_covers_at_nominal_rate() -> None:
    res = cal.coverage_event_study(16, seed0=500)
    assert res["coverage"] >= 13 / 16  # binomial(16, 0.95): P(< 13) < 1%
    assert res["median_rel_error"] < 0.15


def test_interval_is_not_trivially_wide() -> None:
    from cannabis_market.analysis.event_study import event_study

    sales, inventory, truth = cal.simulate(7)
    res = event_study(
        sales.lazy(), cal.EVENT, inventory=inventory, stop_days=cal.STOP_DAYS, partial_fill=cal.FILL
    )
    assert res.lost_sales_lo <= truth <= res.lost_sales_hi
    assert (res.lost_sales_hi - res.lost_sales_lo) / truth < 0.6
    assert res.lost_sales == pytest.approx(truth, rel=0.2)
