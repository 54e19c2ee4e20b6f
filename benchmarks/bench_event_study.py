"""Benchmark: event study on a 1,800-store x 730-day store-day panel (wall time and peak memory).

Builds the panel with numpy (fixed seed), hands it to polars, and times `event_study` on it with the
default 56-day window and the treatment taken from an inventory snapshot. Run as a script to print
the numbers; `run()` returns them as a dict.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import time
import tracemalloc

import numpy as np
import polars as pl

from cannabis_market.analysis.event_study import event_study
from cannabis_market.data.outage_model import served_share

N_STORES = 1_800
N_DAYS = 730
START = dt.date(2021, 9, 1)
EVENT = dt.date(2022, 8, 5)


def build_panel(n_stores: int = N_STORES, n_days: int = N_DAYS, seed: int = 2022):
    """Store-day revenue with store and day effects and an outage hitting low-cover stores.

    Returns (sales, inventory, true total lost sales).
    """
    rng = np.random.default_rng(seed)
    ev = (EVENT - START).days
    base = rng.lognormal(np.log(4_000.0), 0.45, n_stores)
    day = 1.0 + 0.15 * np.sin(2 * np.pi * np.arange(n_days) / 7) + rng.normal(0.0, 0.04, n_days)
    demand = base[:, None] * day[None, :] * rng.lognormal(-0.02, 0.2, (n_stores, n_days))
    cover = rng.gamma(4.0, 2.2, n_stores)
    served = served_share(cover, 5, 8, 0.5, horizon=n_days - ev)
    true_lost = float(((1.0 - served) * demand[:, ev:]).sum())
    demand[:, ev:] *= served
    ids = np.array([f"S{i:04d}" for i in range(n_stores)])
    dates = np.datetime64(START) + np.arange(n_days)
    sales = pl.DataFrame(
        {
            "date": np.tile(dates, n_stores),
            "store_id": np.repeat(ids, n_days),
            "revenue": demand.ravel(),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    inventory = pl.DataFrame(
        {"date": [EVENT - dt.timedelta(days=1)] * n_stores, "store_id": ids, "days_of_cover": cover}
    )
    return sales, inventory, true_lost


def run(n_stores: int = N_STORES, n_days: int = N_DAYS) -> dict:
    """Time one event study (default window, treatment from inventory) on the synthetic panel."""
    sales, inventory, true_lost = build_panel(n_stores, n_days)
    tracemalloc.start()  # numpy allocations; polars' own memory shows in max RSS
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    res = event_study(sales, EVENT, inventory=inventory)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "stores": n_stores,
        "days": n_days,
        "rows": sales.height,
        "seconds": round(wall, 3),
        "peak_python_mb": round(peak / 2**20, 1),
        "max_rss_mb": round(rss1 / 1024, 1),
        "rss_growth_mb": round((rss1 - rss0) / 1024, 1),
        "n_treated": res.n_treated,
        "lost_sales": round(res.lost_sales),
        "lost_sales_lo": round(res.lost_sales_lo),
        "lost_sales_hi": round(res.lost_sales_hi),
        "true_lost_sales": round(true_lost),
    }


if __name__ == "__main__":
    out = run()
    width = max(len(k) for k in out)
    for k, v in out.items():
        print(f"{k:<{width}}  {v}")
    sys.exit(0)
