"""Inventory paths around the outage and closure events (stock cover, deliveries, stock-outs)."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np

from cannabis_market.data.generate.calibration import (
    CLOSURE_FROM,
    CLOSURE_NORMAL_FROM,
    INVENTORY_WINDOW_DAYS,
    OUTAGE_NORMAL_FROM,
    OUTAGE_PARTIAL_DAYS,
    OUTAGE_START,
    OUTAGE_STOP_DAYS,
    _Params,
)
from cannabis_market.data.generate.simulate import _Sim

# ------------------------------------------------------------------------------------------ inventory


def _event_windows(sim: _Sim) -> list[tuple[str, int, int, int, int]]:
    """(event, first, last, window_lo, window_hi) day indices for events overlapping the span."""
    out = []
    for name, s, e in (
        ("closure_2020", CLOSURE_FROM, CLOSURE_NORMAL_FROM - timedelta(days=1)),
        ("outage_2022", OUTAGE_START, OUTAGE_NORMAL_FROM - timedelta(days=1)),
    ):
        si, ei = (s - sim.first).days, (e - sim.first).days
        if ei < sim.span[0] or si > sim.span[1]:
            continue
        lo = max(si - INVENTORY_WINDOW_DAYS, sim.span[0])
        hi = min(ei + INVENTORY_WINDOW_DAYS, sim.span[1])
        out.append((name, si, ei, lo, hi))
    return out


def _ar1_paths(
    rng: np.random.Generator, n: int, t: int, sd: float, rho: float, from_zero: bool
) -> np.ndarray:
    """(n, t) AR(1) paths: stationary start, or starting from 0 at step -1 when `from_zero`."""
    x = np.empty((n, t))
    prev = np.zeros(n) if from_zero else rng.standard_normal(n) * sd
    innov = rng.standard_normal((n, t)) * sd * math.sqrt(1 - rho**2)
    for j in range(t):
        prev = rho * prev + innov[:, j]
        x[:, j] = prev
    return x


def _inventory(sim: _Sim, p: _Params, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days of cover per open store and day in a window around each event (day-major, store ascending)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 20220805]))
    days, stores, covers = [], [], []
    sd, rho = p.cover_fluctuation_sd, p.cover_fluctuation_ar1
    for name, si, _ei, lo, hi in _event_windows(sim):
        W = hi - lo + 1
        idx = np.nonzero((sim.opened <= hi) & (sim.closed >= lo))[0]
        if idx.size == 0:
            continue
        kappa = sim.cover[idx]
        cov = kappa[:, None] * np.exp(_ar1_paths(rng, idx.size, W, sd, rho, False))
        if name == "outage_2022" and sim.outage_stores is not None and sim.outage_served is not None:
            eve = si - 1
            pos = np.searchsorted(idx, sim.outage_stores)
            c0 = sim.cover[sim.outage_stores]
            served = sim.outage_served
            h = served.shape[1]
            deliv = np.array([0.0] * OUTAGE_STOP_DAYS + [p.outage_partial_fill] * OUTAGE_PARTIAL_DAYS)[:h]
            stock = np.maximum(c0[:, None] + np.cumsum(deliv)[None, :] - np.cumsum(served, axis=1), 0.0)
            m = len(pos)
            for j, d in enumerate(range(lo, hi + 1)):
                if d < eve:  # fluctuations bridged to exactly c0 on the eve
                    pass
                elif d == eve:
                    cov[pos, j] = c0
                elif d <= si + h - 1:
                    cov[pos, j] = stock[:, d - si]
            n_pre = max(0, eve - lo)
            if n_pre:
                back = _ar1_paths(rng, m, n_pre, sd, rho, True)[:, ::-1]  # back[:, -1] is the day before eve
                cov[pos, :n_pre] = c0[:, None] * np.exp(back)
            post0 = si + h  # first day of normal deliveries
            n_post = hi - post0 + 1
            if n_post > 0:
                k = np.arange(1, n_post + 1)[None, :]
                rebuild = c0[:, None] - (c0 - stock[:, -1])[:, None] * np.exp(-k / p.cover_recovery_days)
                fwd = _ar1_paths(rng, m, n_post, sd, rho, True)
                cov[pos, post0 - lo :] = rebuild * np.exp(fwd)
        dd = np.arange(lo, hi + 1)
        open_ = (sim.opened[idx, None] <= dd[None, :]) & (sim.closed[idx, None] >= dd[None, :])
        di, si_ = np.nonzero(open_.T)
        days.append((dd[di]).astype(np.int32))
        stores.append(idx[si_].astype(np.int32))
        covers.append(np.round(cov[si_, di], 2))
    if not days:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0)
    d, s, c = np.concatenate(days), np.concatenate(stores), np.concatenate(covers)
    order = np.lexsort((s, d))
    return d[order], s[order], c[order]
