"""Benchmark: does the outage event study's 95% interval for the total loss cover the truth? (issue #17)

Each draw simulates a store x day panel (store effects, a weekly cycle and common daily shocks, store-day
noise); stores whose inventory cover is shorter than the stop run out with the stock-out mechanism the
default dataset uses (`data.outage_model.served_share`), and the truth is the sales they lost. The event
study (store and date fixed effects by demeaning, store-clustered errors) is fitted on each draw.
Target: coverage in 0.90-0.98 over >= 100 draws at nominal 95%.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import polars as pl
from _common import comparison

NOMINAL = 0.95
BAND = (0.90, 0.98)
EVENT = dt.date(2022, 8, 5)
STOP_DAYS, RESTART_DAYS, FILL = 5, 8, 0.5


def simulate(
    seed: int, n: int = 200, days: int = 84, event_day: int = 56
) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """(daily store sales, inventory cover on the eve of the event, true total lost sales)."""
    from cannabis_market.data.outage_model import served_share

    rng = np.random.default_rng(seed)
    base = rng.lognormal(np.log(4000), 0.4, n)
    t = np.arange(days)
    common = (1 + 0.15 * np.sin(2 * np.pi * t / 7)) * np.exp(rng.normal(0, 0.05, days))
    demand = base[:, None] * common[None, :] * rng.lognormal(-0.02, 0.2, (n, days))
    cover = np.round(rng.gamma(4.0, 2.2, n), 2)
    served = served_share(cover, STOP_DAYS, RESTART_DAYS, FILL, horizon=days - event_day)
    lost = (1 - served) * demand[:, event_day:]
    sold = demand.copy()
    sold[:, event_day:] -= lost
    ids = np.array([f"S{i:04d}" for i in range(n)])
    dates = np.datetime64(EVENT - dt.timedelta(days=event_day)) + t
    sales = pl.DataFrame(
        {"date": np.tile(dates, n), "store_id": np.repeat(ids, days), "revenue": sold.ravel()}
    ).with_columns(pl.col("date").cast(pl.Date))
    inventory = pl.DataFrame(
        {"date": [EVENT - dt.timedelta(days=1)] * n, "store_id": ids, "days_of_cover": cover}
    )
    return sales, inventory, float(lost.sum())


def coverage_event_study(draws: int, seed0: int = 0) -> dict[str, Any]:
    """Share of draws whose 95% interval for the total lost sales contains the true loss."""
    from cannabis_market.analysis.event_study import event_study

    hits, rel_err = 0, []
    for s in range(seed0, seed0 + draws):
        sales, inventory, truth = simulate(s)
        res = event_study(
            sales.lazy(), EVENT, window=(-28, 27), inventory=inventory, stop_days=STOP_DAYS,
            partial_fill=FILL, alpha=1 - NOMINAL,
        )  # fmt: skip
        hits += bool(res.lost_sales_lo <= truth <= res.lost_sales_hi)
        rel_err.append(abs(res.lost_sales / truth - 1))
    return {"coverage": hits / draws, "draws": draws, "median_rel_error": float(np.median(rel_err))}


def run(quick: bool = False) -> dict[str, Any]:
    draws = 3 if quick else 120
    t0 = time.perf_counter()
    res = coverage_event_study(draws)
    sec = time.perf_counter() - t0
    cov = res["coverage"]
    name = "event study: total lost sales (95% interval)"
    return {
        "title": "Calibration of the outage event study's interval (simulations with known truth)",
        "comparisons": [
            comparison(
                name,
                cov,
                NOMINAL,
                round(cov / NOMINAL, 3),
                f"coverage in {BAND[0]}-{BAND[1]}",
                None if quick else bool(BAND[0] <= cov <= BAND[1]),
                baseline_label="nominal",
            )  # fmt: skip
        ],
        "tables": [
            {
                "title": "Coverage at nominal 95%",
                "columns": ["interval", "draws", "coverage", "median relative error", "seconds"],
                "rows": [[name, draws, cov, round(res["median_rel_error"], 4), round(sec, 1)]],
            }
        ],
        "notes": [f"Target: coverage in {BAND[0]}-{BAND[1]} over >= 100 draws."],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1, default=str))
