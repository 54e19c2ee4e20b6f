"""Five simulated intervention cases with a known effect: the impact model's recovery tests and benchmark.

Each case returns a :class:`Case`: a frame (``date``, ``y``, controls), the pre/post periods and the
true relative effect (the post-period ``y`` is the counterfactual times ``1 + effect``, so the true
relative effect of the post-period average is exactly ``effect``).

* ``clean``      daily, 180 + 14 days, 3 controls (random walks with a weekly pattern) explain y, -5%;
* ``placebo``    the clean case without an effect (a significant result is a false positive);
* ``monthly``    44 pre months + 1-3 post months, 6 controls sharing y's trend and yearly seasonality,
                 each with 2-3% own noise (y 1%), -4%;
* ``ar_noise``   daily, 2 controls, y's noise is AR(1) with phi = 0.6 (not explained by the controls), -8%;
* ``misleading`` daily, 3 controls, one of which has a +15% level shift in the pre-period that y does
                 not share, -10%.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import numpy as np
import polars as pl

CASES = ("clean", "placebo", "monthly", "ar_noise", "misleading")
_DAILY_PRE, _DAILY_POST = 180, 14


class Case(NamedTuple):
    """One simulated series with its known effect."""

    name: str
    frame: pl.DataFrame
    controls: list[str]
    pre_period: tuple[dt.date, dt.date]
    post_period: tuple[dt.date, dt.date]
    effect: float


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    e = rng.normal(0.0, sd, n)
    out = np.empty(n)
    out[0] = e[0] / np.sqrt(1 - phi * phi)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + e[t]
    return out


def _daily(name: str, y0: np.ndarray, X: np.ndarray, effect: float) -> Case:
    n = len(y0)
    start = dt.date(2022, 1, 3)
    dates = [start + dt.timedelta(days=i) for i in range(n)]
    y = y0.copy()
    y[_DAILY_PRE:] *= 1 + effect
    controls = [f"x{j + 1}" for j in range(X.shape[1])]
    frame = pl.DataFrame({"date": dates, "y": y, **{c: X[:, j] for j, c in enumerate(controls)}})
    pre = (dates[0], dates[_DAILY_PRE - 1])
    return Case(name, frame, controls, pre, (dates[_DAILY_PRE], dates[-1]), effect)


def _controls(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """k daily controls around 100: a slow random walk each plus a shared weekly pattern."""
    week = np.array([0.0, 2.0, 1.0, 3.0, 6.0, 9.0, -4.0])[np.arange(n) % 7]
    return np.column_stack(
        [100 + np.cumsum(rng.normal(0, 0.8, n)) + week * rng.uniform(0.5, 1.5) for _ in range(k)]
    )


def simulate_case(name: str, seed: int) -> Case:
    """The case ``name`` (one of :data:`CASES`) drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    n = _DAILY_PRE + _DAILY_POST
    if name in ("clean", "placebo"):
        X = _controls(rng, n, 3)
        y0 = 0.5 * X[:, 0] + 0.3 * X[:, 1] + 0.2 * X[:, 2] + rng.normal(0, 1.0, n)
        return _daily(name, 10 * y0, X, -0.05 if name == "clean" else 0.0)
    if name == "ar_noise":
        X = _controls(rng, n, 2)
        y0 = 0.6 * X[:, 0] + 0.4 * X[:, 1] + _ar1(rng, n, 0.6, 1.5)
        return _daily(name, 10 * y0, X, -0.08)
    if name == "misleading":
        X = _controls(rng, n, 3)
        y0 = 0.5 * X[:, 0] + 0.3 * X[:, 1] + 0.2 * X[:, 2] + rng.normal(0, 1.0, n)
        shift_at = int(rng.integers(60, 150))
        X[shift_at:, 2] += 15.0  # the control moves, y does not
        return _daily(name, 10 * y0, X, -0.10)
    if name == "monthly":
        n_post = int(seed % 3) + 1
        n = 44 + n_post
        t = np.arange(n)
        factor = (1 + 0.008 * t) * (1 + 0.12 * np.sin(2 * np.pi * t / 12) + 0.05 * np.cos(2 * np.pi * t / 6))
        X = np.column_stack([factor * (1 + rng.normal(0, rng.uniform(0.02, 0.03), n)) for _ in range(6)])
        y0 = 500 * factor * (1 + rng.normal(0, 0.01, n))
        y = y0.copy()
        y[44:] *= 0.96
        dates = [dt.date(2018 + (m // 12), m % 12 + 1, 1) for m in range(n)]
        controls = [f"x{j + 1}" for j in range(6)]
        frame = pl.DataFrame({"date": dates, "y": y, **{c: X[:, j] for j, c in enumerate(controls)}})
        return Case(name, frame, controls, (dates[0], dates[43]), (dates[44], dates[-1]), -0.04)
    raise ValueError(f"unknown case {name!r}; one of {', '.join(CASES)}")
