"""Benchmark: do the growth report's 95% intervals cover the truth 95% of the time? (issue #17)

For each interval the growth report publishes, many datasets are simulated with a known truth and the
estimator is run on each; coverage is the share of intervals that contain the truth. Target: 0.90-0.98
over >= 100 draws at nominal 95% (two binomial standard errors at 100 draws are about +-0.044).

- forecast: `forecast_demand` (default combination) on simulated monthly log sales (drifting level,
  fixed seasonal pattern, AR(1) noise), 60 months of history; truth = the 12 following months;
- growth-curve capacity: `fit_store_growth` (logistic) on a logistic store path with AR(1) noise;
  truth = K;
- cannibalization: `cannibalization` on a store-month panel with staggered openings, store and month
  effects and store-level AR(1) noise; truth = the elasticity b.

`tests/analysis/test_calibration.py` runs the same simulations with few draws and wide bands.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import warnings
from typing import Any

from _common import comparison

NOMINAL = 0.95
BAND = (0.90, 0.98)


def _months(start: dt.date, n: int) -> list[dt.date]:
    return [
        dt.date(start.year + (start.month - 1 + k) // 12, (start.month - 1 + k) % 12 + 1, 1) for k in range(n)
    ]


# ------------------------------------------------------------------------------------------ simulators


def sim_sales(seed: int, n: int = 60, extra: int = 12, random_walk: bool = False):
    """Monthly sales [period, sales] and the `extra` true future values (log scale model, see module doc)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    t = np.arange(n + extra)
    if random_walk:
        y = np.log(5e7) + np.cumsum(rng.normal(0.005, 0.04, t.size))
    else:
        season = 0.12 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 2 * np.pi)) + 0.05 * np.cos(
            2 * np.pi * t / 6
        )
        level = np.cumsum(rng.normal(0.008, 0.015, t.size))
        e = np.zeros(t.size)
        for i in range(1, t.size):
            e[i] = 0.3 * e[i - 1] + rng.normal(0, 0.03)
        y = np.log(5e7) + level + season + e
    df = pl.DataFrame({"period": _months(dt.date(2019, 1, 1), n), "sales": np.exp(y[:n])})
    return df, np.exp(y[n:])


def sim_counts(seed: int, n: int = 70, K: float = 1800.0, r: float = 0.12, t0: float = 30.0):
    """Open-store counts on a logistic path plus AR(1) noise (phi 0.6, sd 20)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    t = np.arange(n)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = 0.6 * e[i - 1] + rng.normal(0, 20.0)
    y = np.maximum(K / (1 + np.exp(-r * (t - t0))) + e, 0).round()
    return pl.DataFrame({"period": _months(dt.date(2019, 4, 1), n), "stores_open": y})


def sim_panel(seed: int, b: float = -0.25, n_stores: int = 120, n_munis: int = 20, n_months: int = 48):
    """Store-month panel [period, store_id, revenue, competitors, opened_on]: stores open on the 1st of a
    random month; competitors = other stores open in the municipality; store AR(1) noise."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    months = _months(dt.date(2019, 1, 1), n_months)
    muni = rng.integers(0, n_munis, n_stores)
    opened = np.where(rng.random(n_stores) < 0.3, 0, rng.integers(1, n_months - 6, n_stores))
    is_open = np.arange(n_months)[None, :] >= opened[:, None]
    per_muni = np.zeros((n_munis, n_months))
    np.add.at(per_muni, muni, is_open.astype(float))
    comp = per_muni[muni] - is_open
    a = rng.normal(np.log(150_000), 0.5, n_stores)
    g = np.cumsum(rng.normal(0.01, 0.03, n_months))
    e = np.zeros((n_stores, n_months))
    for j in range(1, n_months):
        e[:, j] = 0.5 * e[:, j - 1] + rng.normal(0, 0.06, n_stores)
    rev = np.exp(a[:, None] + g[None, :] + b * np.log1p(comp) + e)
    si, ti = np.nonzero(is_open)
    return pl.DataFrame(
        {
            "period": [months[j] for j in ti],
            "store_id": [f"s{i}" for i in si],
            "municipality": [f"m{muni[i]}" for i in si],
            "revenue": rev[si, ti],
            "competitors": comp[si, ti].astype(float),
            "opened_on": [months[opened[i]] for i in si],
        }
    )


# ------------------------------------------------------------------------------------------ coverage


def coverage_forecast(
    draws: int, seed0: int = 0, models: tuple[str, ...] = ("combined",), **sim: Any
) -> dict:
    """Share of true future months inside the 95% forecast interval (pooled over horizons and draws)."""

    from cannabis_market.analysis.growth import forecast_demand

    inside, total, per_h = 0, 0, None
    for s in range(seed0, seed0 + draws):
        df, future = sim_sales(s, **sim)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = forecast_demand(df, horizon=future.size, alpha=1 - NOMINAL, models=models).summary()
        hit = (res["lo"].to_numpy() <= future) & (future <= res["hi"].to_numpy())
        per_h = hit.astype(float) if per_h is None else per_h + hit
        inside, total = inside + int(hit.sum()), total + hit.size
    return {"coverage": inside / total, "draws": draws, "by_horizon": (per_h / draws).round(3).tolist()}


def coverage_capacity(draws: int, seed0: int = 0, n_boot: int = 200) -> dict:
    """Share of logistic-capacity intervals that contain the true K."""
    from cannabis_market.analysis.growth import fit_store_growth

    hits = 0
    for s in range(seed0, seed0 + draws):
        f = fit_store_growth(sim_counts(s), models=("logistic",), horizon=0, n_boot=n_boot, seed=s).fits[
            "logistic"
        ]
        lo, hi = f.interval["K"]
        hits += bool(lo <= 1800.0 <= hi)
    return {"coverage": hits / draws, "draws": draws}


def coverage_cannibalization(draws: int, seed0: int = 0, b: float = -0.25) -> dict:
    """Share of store-clustered elasticity intervals that contain the true b."""
    from cannabis_market.analysis.growth import cannibalization

    hits = 0
    for s in range(seed0, seed0 + draws):
        res = cannibalization(sim_panel(s, b=b), alpha=1 - NOMINAL)
        hits += bool(res.lo <= b <= res.hi)
    return {"coverage": hits / draws, "draws": draws}


def run(quick: bool = False) -> dict[str, Any]:
    draws = (
        {"forecast": 2, "capacity": 4, "cannibalization": 4}
        if quick
        else {"forecast": 100, "capacity": 200, "cannibalization": 200}
    )
    estimators = {
        "forecast (95% interval, 1-12 months ahead, pooled)": lambda: (
            # quick mode checks the harness only: the cheap naive model on random walks
            coverage_forecast(draws["forecast"], models=("naive",), random_walk=True)
            if quick
            else coverage_forecast(draws["forecast"])
        ),
        "growth-curve capacity K (95% interval)": lambda: coverage_capacity(draws["capacity"]),
        "cannibalization elasticity (95% interval)": lambda: coverage_cannibalization(
            draws["cannibalization"]
        ),
    }
    comps, rows, notes = [], [], []
    for name, fn in estimators.items():
        t0 = time.perf_counter()
        res = fn()
        sec = time.perf_counter() - t0
        cov = res["coverage"]
        ok = BAND[0] <= cov <= BAND[1]
        comps.append(
            comparison(
                name,
                cov,
                NOMINAL,
                round(cov / NOMINAL, 3),
                f"coverage in {BAND[0]}-{BAND[1]}",
                None if quick else bool(ok),
                baseline_label="nominal",
            )
        )
        rows.append([name, res["draws"], cov, round(sec, 1)])
        if "by_horizon" in res:
            notes.append(
                "Forecast coverage by horizon 1-12: " + ", ".join(f"{v:.2f}" for v in res["by_horizon"])
            )
    return {
        "title": "Calibration of the growth report's intervals (simulations with known truth)",
        "comparisons": comps,
        "tables": [
            {
                "title": "Coverage at nominal 95%",
                "columns": ["interval", "draws", "coverage", "seconds"],
                "rows": rows,
            }
        ],
        "notes": notes
        + [
            f"Target: coverage in {BAND[0]}-{BAND[1]} over >= 100 draws; binomial noise at 100 draws is about +-{2 * math.sqrt(0.95 * 0.05 / 100):.3f}."
        ],
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=1, default=str))
