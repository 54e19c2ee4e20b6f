"""Benchmark: the impact model (``analysis.impact.estimate_impact``): fit + 1,000 simulated paths.

A 500-day daily series with two controls and a known step effect after day 410 (numpy, fixed seed).
Timed through the public function only: runs with 1,000 and with 100 paths alternate, so

* time per estimate = median of the 1,000-path runs (what a user waits for);
* paths per second = 900 / (median 1,000-path time - median 100-path time), the marginal cost of a
  path including the filter re-runs for parameter draws;
* fit (and everything else that does not scale with paths) = 100-path time - 100 / paths per second.

The first call is reported separately: it pays one-off imports inside statsmodels/scipy.
"""

from __future__ import annotations

import datetime as dt
import time

from _common import median

N_DAYS = 500
N_PRE = 410
EFFECT = -15.0
N_SIMS = 1_000
FEW_SIMS = 100


def make_series(n_days: int = N_DAYS, seed: int = 7):
    """Daily frame (date, y, x1, x2): y follows the controls, a weekly pattern and noise."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    t = np.arange(n_days)
    x1 = 100.0 + np.cumsum(rng.normal(0.0, 1.0, n_days))
    x2 = 50.0 + 10.0 * np.sin(2 * np.pi * t / 7) + rng.normal(0.0, 1.0, n_days)
    y = 20.0 + 0.8 * x1 + 1.5 * x2 + rng.normal(0.0, 2.0, n_days)
    y[N_PRE:] += EFFECT
    dates = [dt.date(2023, 1, 1) + dt.timedelta(days=int(i)) for i in t]
    return pl.DataFrame({"date": dates, "y": y, "x1": x1, "x2": x2})


def run(quick: bool = False) -> dict:
    from cannabis_market.analysis.impact import estimate_impact

    frame = make_series()
    d = frame["date"]
    pre, post = (d[0], d[N_PRE - 1]), (d[N_PRE], d[-1])

    def once(n_sims: int):
        t = time.perf_counter()
        res = estimate_impact(frame, "y", pre, post, controls=["x1", "x2"], n_sims=n_sims, seed=1)
        return time.perf_counter() - t, res

    cold, first = once(N_SIMS)
    repeats = 2 if quick else 7
    many, few = [], []
    for i in range(repeats):
        for n in (N_SIMS, FEW_SIMS) if i % 2 == 0 else (FEW_SIMS, N_SIMS):
            (many if n == N_SIMS else few).append(once(n)[0])
    t_many, t_few = median(many), median(few)
    extra = t_many - t_few
    paths_per_s = (N_SIMS - FEW_SIMS) / extra if extra > 0 else None
    fit = t_few - FEW_SIMS / paths_per_s if paths_per_s else None
    avg = first.average
    return {
        "figures": {
            "series": f"{N_DAYS} daily points, 2 controls, pre-period {N_PRE} days",
            "first call, 1,000 paths (s)": round(cold, 3),
            "time per estimate, 1,000 paths (s, median)": round(t_many, 3),
            "time per estimate, 100 paths (s, median)": round(t_few, 3),
            "runs (each)": repeats,
            "paths per second (marginal)": round(paths_per_s) if paths_per_s else "n/a (noise)",
            "paths per second (whole estimate, 1,000 paths)": round(N_SIMS / t_many),
            "fit and fixed costs (s)": round(fit, 3) if fit is not None else "n/a (noise)",
            "model used (model='auto')": f"{first.model} ({first.model_choice})",
            "seasonality chosen": first.seasonality,
            "estimated average effect (true -15)": f"{avg.point:.2f} [{avg.lo:.2f}, {avg.hi:.2f}]",
            "interval covers the true effect": bool(avg.lo <= EFFECT <= avg.hi),
        },
        "comparisons": [],
        "tables": [
            {
                "title": "Raw times (s)",
                "columns": ["paths", "runs"],
                "rows": [
                    [f"{N_SIMS:,}", " / ".join(f"{v:.3f}" for v in many)],
                    [f"{FEW_SIMS:,}", " / ".join(f"{v:.3f}" for v in few)],
                ],
            }
        ],
        "notes": ["No target was set for the impact model; the figures are for tracking over time."],
    }
