"""The supply-outage mechanism shared by the data generator and the what-if simulator.

A store enters a delivery stop holding `days_of_cover` days of its normal demand on the shelf.
Each day it sells what demand asks for, up to what it holds plus what arrives:

- full stop (`stop_days` days): nothing arrives;
- partial restart (`partial_days` days): a fraction `partial_fill` of a normal day's demand arrives daily;
- afterwards deliveries are normal and every day's demand is served again.

Served share on day t is ``min(1, stock_t + delivery_t)`` (in days of demand) and the stock carries
forward. Lost sales are the unserved share times the day's demand. Keeping this in one place means the
simulator, fed the generator's inputs, reproduces the generator's ground truth exactly.
"""

from __future__ import annotations

import numpy as np


def served_share(
    days_of_cover: np.ndarray,
    stop_days: int,
    partial_days: int,
    partial_fill: float | np.ndarray,
    horizon: int | None = None,
) -> np.ndarray:
    """Share of each day's demand a store can serve, shape (n_stores, horizon), day 0 = stop start.

    `days_of_cover` may be any array shape (..., n_stores); the day axis is appended last.
    `partial_fill` is one fraction, or an array broadcasting against `days_of_cover` (e.g. shape (m, 1):
    one fraction per simulated run of m).
    """
    if stop_days < 0 or partial_days < 0:
        raise ValueError("stop_days and partial_days must be >= 0")
    if not np.all((np.asarray(partial_fill) >= 0.0) & (np.asarray(partial_fill) <= 1.0)):
        raise ValueError(f"partial_fill must be within [0, 1], got {partial_fill}")
    cover = np.maximum(np.asarray(days_of_cover, dtype=float), 0.0)
    horizon = stop_days + partial_days + 1 if horizon is None else horizon
    out = np.ones(cover.shape + (horizon,), dtype=float)
    stock = cover.copy()
    for t in range(min(horizon, stop_days + partial_days)):
        delivery = 0.0 if t < stop_days else partial_fill
        available = stock + delivery
        served = np.minimum(1.0, available)
        out[..., t] = served
        stock = available - served
    return out


def lost_share(
    days_of_cover: np.ndarray, stop_days: int, partial_days: int, partial_fill: float
) -> np.ndarray:
    """Total demand-days lost per store over the whole disruption (sum of 1 - served share)."""
    s = served_share(days_of_cover, stop_days, partial_days, partial_fill)
    return (1.0 - s).sum(axis=-1)
