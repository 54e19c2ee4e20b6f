"""The day-by-day simulation: store entry and exit, demand, cannibalization, prices, closures."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from cannabis_market.data.generate.calibration import (
    BREAKEVEN_REFERENCE,
    CATEGORY_PRICE_RATIO,
    CATEGORY_SHARE_END,
    CATEGORY_SHARE_END_DATE,
    CATEGORY_SHARE_START,
    CATS,
    CHAINS,
    CLOSURE_FROM,
    CLOSURE_NORMAL_FROM,
    CURBSIDE_FROM,
    DAY_OF_WEEK,
    DEFAULT_STORES,
    DEMAND_ANCHORS,
    DEMAND_GROWTH_AFTER,
    MARKET_START,
    MUNICIPALITIES,
    OUTAGE_PARTIAL_DAYS,
    OUTAGE_START,
    OUTAGE_STOP_DAYS,
    PRICE_REFERENCE,
    SEASONALITY,
    STORE_TARGETS,
    _Params,
)
from cannabis_market.data.outage_model import served_share

# ------------------------------------------------------------------------------------------ simulation


@dataclass
class _Sim:
    """Everything the writers need from one simulation run."""

    first: date
    n_days: int
    span: tuple[int, int]  # day indices of start and end (inclusive)
    muni_names: list[str]
    muni_regions: list[str]
    muni_pops: np.ndarray
    n: int
    store_muni: np.ndarray
    store_chain: np.ndarray
    opened: np.ndarray
    closed: np.ndarray  # last day open (day index) or BIG
    cover: np.ndarray
    # sales, in output order
    rows_day: np.ndarray
    rows_store: np.ndarray
    rows_rev: np.ndarray  # (rows, K)
    rows_grams: np.ndarray
    outage_served: np.ndarray | None  # (n_affected, horizon)
    outage_stores: np.ndarray | None
    outage_lost_store: dict[int, float]
    outage_lost_day: dict[int, float]
    closure_lost_store: dict[int, float]
    closure_lost_day: dict[int, float]
    daily_total: np.ndarray
    scale: float
    closures_by_year: dict[int, int]
    openings_by_year: dict[int, int]


BIG = np.iinfo(np.int32).max


class _StoreDraws:
    """Per-store random attributes, drawn in fixed-size blocks so the stream is reproducible."""

    BLOCK = 512

    def __init__(self, rng: np.random.Generator, p: _Params) -> None:
        self.rng, self.p = rng, p
        self.u_muni = np.empty(0)
        self.alpha = np.empty(0)
        self.price = np.empty(0)
        self.cover = np.empty(0)
        self.chain = np.empty(0, dtype=np.int16)
        self.z0 = np.empty(0)

    def ensure(self, n: int) -> None:
        while self.u_muni.size < n:
            r, p, k = self.rng, self.p, self.BLOCK
            shape = (p.cover_mean / p.cover_sd) ** 2
            scale = p.cover_sd**2 / p.cover_mean
            is_chain = r.random(k) < p.chain_probability
            zipf = 1.0 / np.arange(1, len(CHAINS) + 1)
            chain = r.choice(len(CHAINS), size=k, p=zipf / zipf.sum()).astype(np.int16)
            self.u_muni = np.concatenate([self.u_muni, r.random(k)])
            self.alpha = np.concatenate([self.alpha, r.standard_normal(k) * p.store_effect_sd])
            self.price = np.concatenate([self.price, r.standard_normal(k) * p.store_price_level_sd])
            self.cover = np.concatenate([self.cover, np.round(r.gamma(shape, scale, k), 2)])
            self.chain = np.concatenate([self.chain, np.where(is_chain, chain, -1).astype(np.int16)])
            self.z0 = np.concatenate([self.z0, r.standard_normal(k) * p.price_shock_sd])


def _select_municipalities(scale: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of the municipalities in the dataset: all at full scale, a random subset when scaled down."""
    pops = np.array([m[2] for m in MUNICIPALITIES], dtype=float)
    if scale >= 0.95:
        return np.arange(len(MUNICIPALITIES))
    target = scale * pops.sum()
    chosen: list[int] = []
    total = 0.0
    for i in rng.permutation(len(MUNICIPALITIES)):
        if total + pops[i] <= 1.15 * target:
            chosen.append(int(i))
            total += pops[i]
        if total >= 0.9 * target:
            break
    if not chosen:
        chosen = [int(np.argmin(pops))]
    return np.sort(np.array(chosen))


def _ar1(rng: np.random.Generator, n: int, sd: float, rho: float) -> np.ndarray:
    x = np.empty(n)
    innov = rng.standard_normal(n) * sd * math.sqrt(1 - rho**2)
    prev = rng.standard_normal() * sd
    for t in range(n):
        prev = rho * prev + innov[t]
        x[t] = prev
    return x


def _category_shares(ords: np.ndarray) -> np.ndarray:
    """(days, K) revenue shares in CATS order, linear between the start and end shares."""
    t0, t1 = MARKET_START.toordinal(), CATEGORY_SHARE_END_DATE.toordinal()
    f = np.clip((ords - t0) / (t1 - t0), 0.0, 1.0)[:, None]
    a = np.array([CATEGORY_SHARE_START[c] for c in CATS])
    b = np.array([CATEGORY_SHARE_END[c] for c in CATS])
    w = a[None, :] * (1 - f) + b[None, :] * f
    return w / w.sum(axis=1, keepdims=True)


def _market_daily(ords: np.ndarray, months: np.ndarray, weekdays: np.ndarray) -> np.ndarray:
    """Counterfactual total store sales per day (CAD), full province scale, before events and shocks."""
    ax = np.array([d.toordinal() for d, _ in DEMAND_ANCHORS], dtype=float)
    ay = np.log([v for _, v in DEMAND_ANCHORS])
    lvl = np.exp(np.interp(ords, ax, ay))
    after = ords > ax[-1]
    lvl[after] *= (1 + DEMAND_GROWTH_AFTER) ** ((ords[after] - ax[-1]) / 365.25)
    season = np.array(SEASONALITY)[months - 1]
    dow = np.array(DAY_OF_WEEK)[weekdays]
    return lvl * 12 / 365.25 * season * dow


def _store_target(ords: np.ndarray, scale: float) -> np.ndarray:
    tx = np.array([d.toordinal() for d, _, _ in STORE_TARGETS], dtype=float)
    ty = np.array([v for _, v, _ in STORE_TARGETS], dtype=float)
    t = np.interp(ords, tx, ty)
    return np.maximum(1, np.round(t * scale)).astype(np.int64)


def _simulate(
    seed: int, stores: int, start: date, end: date, p: _Params, progress: Callable[[str], None]
) -> _Sim:
    ss = np.random.SeedSequence([seed, 20190401])
    rng_geo, rng_store, rng_noise, rng_close, rng_common = (np.random.default_rng(s) for s in ss.spawn(5))
    scale = stores / DEFAULT_STORES
    first = MARKET_START
    n_days = (end - first).days + 1
    ords = np.arange(first.toordinal(), end.toordinal() + 1)
    cal = [date.fromordinal(int(o)) for o in ords]
    months = np.array([d.month for d in cal])
    weekdays = np.array([d.weekday() for d in cal])
    day_of = {d: i for i, d in enumerate(cal)}
    span = ((start - first).days, (end - first).days)

    # geography
    sel = _select_municipalities(scale, rng_geo)
    muni_names = [MUNICIPALITIES[i][0] for i in sel]
    muni_regions = [MUNICIPALITIES[i][1] for i in sel]
    muni_pops = np.array([MUNICIPALITIES[i][2] for i in sel], dtype=float)
    attract = np.exp(rng_geo.standard_normal(len(sel)) * p.municipality_attractiveness_sd)
    weight = muni_pops * attract
    cum_w = np.cumsum(weight) / weight.sum()
    muni_effect = p.population_elasticity * np.log(muni_pops / p.reference_population)

    # calendars and common parts
    market = _market_daily(ords.astype(float), months, weekdays) * scale
    eta = _ar1(rng_common, n_days, p.common_shock_sd, p.common_shock_ar1)
    common = market * np.exp(eta - p.common_shock_sd**2 / 2)
    shares = _category_shares(ords.astype(float))
    target = _store_target(ords.astype(float), scale)
    tau = (ords - PRICE_REFERENCE.toordinal()) / 365.25
    lam = math.log1p(p.price_compression_annual)
    base_price = np.array([p.flower_price_base * CATEGORY_PRICE_RATIO[c] for c in CATS])
    be_years = np.maximum(0.0, (ords - BREAKEVEN_REFERENCE.toordinal()) / 365.25)
    breakeven = p.breakeven_monthly_revenue * (1 + p.breakeven_growth_annual) ** be_years

    # event factors for all stores (2020 closure)
    event_factor = np.ones(n_days)
    closure_days: list[int] = []
    for d, i in day_of.items():
        if CLOSURE_FROM <= d < CURBSIDE_FROM:
            event_factor[i] = 0.0
            closure_days.append(i)
        elif CURBSIDE_FROM <= d < CLOSURE_NORMAL_FROM:
            event_factor[i] = p.curbside_share
            closure_days.append(i)
    out_first = day_of.get(OUTAGE_START)
    out_eve = day_of.get(OUTAGE_START - timedelta(days=1))
    no_open_days = (
        set(range(out_first, out_first + OUTAGE_STOP_DAYS + OUTAGE_PARTIAL_DAYS)) if out_first else set()
    )

    # stores
    draws = _StoreDraws(rng_store, p)
    cap = 1024
    opened = np.full(cap, BIG, dtype=np.int64)
    closed = np.full(cap, BIG, dtype=np.int64)
    muni = np.zeros(cap, dtype=np.int64)
    z_last = np.zeros(cap)
    hist = np.zeros((cap, p.closure_trailing_months))
    n_full = np.zeros(cap, dtype=np.int64)
    n = 0
    n_open = 0
    K = len(CATS)

    outage_served = outage_stores = None
    out_lost_store: dict[int, float] = {}
    out_lost_day: dict[int, float] = {}
    clo_lost_store: dict[int, float] = {}
    clo_lost_day: dict[int, float] = {}
    rows_day: list[np.ndarray] = []
    rows_store: list[np.ndarray] = []
    rows_rev: list[np.ndarray] = []
    rows_grams: list[np.ndarray] = []
    daily_total = np.zeros(n_days)
    closures_by_year: dict[int, int] = {}
    openings_by_year: dict[int, int] = {}
    rho_z = p.price_shock_ar1
    innov_sd = p.price_shock_sd * math.sqrt(1 - rho_z**2)

    # month blocks
    bounds = [0] + [i for i in range(1, n_days) if cal[i].day == 1] + [n_days]
    for d0, d1 in zip(bounds[:-1], bounds[1:], strict=False):
        D = d1 - d0
        # ---- openings: follow the target; closures of last month are replaced evenly over this month
        prev_target = int(target[d0 - 1]) if d0 > 0 else 0
        deficit = max(0, prev_target - n_open)
        for j, d in enumerate(range(d0, d1)):
            desired = int(target[d]) - (deficit - (deficit * (j + 1)) // D)
            if d in no_open_days:
                continue
            k = desired - n_open
            if k <= 0:
                continue
            if n + k > cap:
                grow = max(cap, k)
                opened = np.concatenate([opened, np.full(grow, BIG, dtype=np.int64)])
                closed = np.concatenate([closed, np.full(grow, BIG, dtype=np.int64)])
                muni = np.concatenate([muni, np.zeros(grow, dtype=np.int64)])
                z_last = np.concatenate([z_last, np.zeros(grow)])
                hist = np.concatenate([hist, np.zeros((grow, hist.shape[1]))])
                n_full = np.concatenate([n_full, np.zeros(grow, dtype=np.int64)])
                cap += grow
            draws.ensure(n + k)
            opened[n : n + k] = d
            muni[n : n + k] = np.searchsorted(cum_w, draws.u_muni[n : n + k], side="right").clip(
                0, len(sel) - 1
            )
            z_last[n : n + k] = draws.z0[n : n + k]
            n += k
            n_open += k
            openings_by_year[cal[d].year] = openings_by_year.get(cal[d].year, 0) + k

        alive = np.nonzero(closed[:n] >= d0)[0]
        A = alive.size
        if A == 0:
            continue
        dd = np.arange(d0, d1)
        op = (opened[alive, None] <= dd[None, :]) & (closed[alive, None] >= dd[None, :])
        m_alive = muni[alive]
        cnt = np.zeros((len(sel), D))
        np.add.at(cnt, m_alive, op.astype(float))
        comp = cnt[m_alive] - op
        L = np.log1p(np.where(op, comp, 0.0))

        # exogenous price shock, daily AR(1) per store
        z = np.empty((A, D))
        zp = z_last[alive]
        innov = rng_noise.standard_normal((A, D)) * innov_sd
        for j in range(D):
            zp = rho_z * zp + innov[:, j]
            z[:, j] = zp
        z_last[alive] = zp

        a_i = draws.price[alive][:, None]
        alpha_i = (draws.alpha[alive] + muni_effect[m_alive])[:, None]
        logB = alpha_i + (1 + p.price_elasticity) * (a_i + z) + p.cannibalization_elasticity * L
        B = np.where(op, np.exp(logB), 0.0)
        tot = B.sum(axis=0)
        S = B / np.where(tot > 0, tot, 1.0)
        u = rng_noise.standard_normal((A, D)) * p.store_day_noise_sd - p.store_day_noise_sd**2 / 2
        e = rng_noise.standard_normal((A, D, K)) * p.category_noise_sd - p.category_noise_sd**2 / 2
        r_store = S * common[None, d0:d1] * np.exp(u)
        r_cf = r_store[:, :, None] * shares[None, d0:d1, :] * np.exp(e)  # counterfactual revenue

        factor = np.broadcast_to(event_factor[None, d0:d1], (A, D)).copy()
        if out_first is not None and d0 <= out_first < d1 and out_eve is not None:
            aff = np.nonzero((opened[alive] <= out_eve) & (closed[alive] >= out_eve))[0]
            h = OUTAGE_STOP_DAYS + OUTAGE_PARTIAL_DAYS
            served = served_share(
                draws.cover[alive[aff]],
                OUTAGE_STOP_DAYS,
                OUTAGE_PARTIAL_DAYS,
                p.outage_partial_fill,
                horizon=h,
            )
            lo, hi = out_first - d0, min(out_first - d0 + h, D)
            factor[aff, lo:hi] *= served[:, : hi - lo]
            outage_served, outage_stores = served, alive[aff]
            lost = r_cf[aff, lo:hi, :].sum(axis=2) * (1 - served[:, : hi - lo])
            in_span = ((dd[lo:hi] >= span[0]) & (dd[lo:hi] <= span[1]))[None, :]
            lost = lost * in_span
            for s_idx, v in zip(alive[aff], lost.sum(axis=1), strict=False):
                if v > 0:
                    out_lost_store[int(s_idx)] = float(v)
            for j, v in enumerate(lost.sum(axis=0)):
                if in_span[0, j]:
                    out_lost_day[int(d0 + lo + j)] = float(v)
        r = r_cf * factor[:, :, None]

        if closure_days and d0 <= closure_days[-1] and d1 > closure_days[0]:
            cd = np.array(
                [c for c in closure_days if d0 <= c < d1 and span[0] <= c <= span[1]], dtype=np.int64
            )
            if cd.size:
                lost = r_cf[:, cd - d0, :].sum(axis=2) * (1 - factor[:, cd - d0]) * op[:, cd - d0]
                for s_idx, v in zip(alive, lost.sum(axis=1), strict=False):
                    if v > 0:
                        clo_lost_store[int(s_idx)] = clo_lost_store.get(int(s_idx), 0.0) + float(v)
                for c, v in zip(cd, lost.sum(axis=0), strict=False):
                    clo_lost_day[int(c)] = float(v)

        logp = lam * tau[None, d0:d1] + p.price_density_effect * L + a_i + z
        price = base_price[None, None, :] * np.exp(logp)[:, :, None]
        grams = r / price
        r = np.where(op[:, :, None], r, 0.0)
        grams = np.where(op[:, :, None], grams, 0.0)
        daily_total[d0:d1] = r.sum(axis=(0, 2))

        # ---- collect rows inside the requested span (day-major, store ascending, category inner)
        lo_d, hi_d = max(d0, span[0]), min(d1 - 1, span[1])
        if lo_d <= hi_d:
            sub = op[:, lo_d - d0 : hi_d - d0 + 1].T
            di, si = np.nonzero(sub)
            jj = di + (lo_d - d0)
            rows_day.append((jj + d0).astype(np.int32))
            rows_store.append(alive[si].astype(np.int32))
            rows_rev.append(r[si, jj, :])
            rows_grams.append(grams[si, jj, :])

        # ---- closure rule at the end of a complete month (not on the last day of the data)
        if d1 < n_days:
            mrev = r.sum(axis=(1, 2))
            full = opened[alive] <= d0
            fa = alive[full]
            hist[fa, n_full[fa] % p.closure_trailing_months] = mrev[full]
            n_full[fa] += 1
            avg = hist[alive].mean(axis=1)
            draw = rng_close.random(A)
            close = (
                (n_full[alive] >= p.closure_trailing_months)
                & (avg < breakeven[d1 - 1])
                & (draw < p.closure_probability)
            )
            if close.any():
                closed[alive[close]] = d1 - 1
                n_open -= int(close.sum())
                y = cal[d1 - 1].year
                closures_by_year[y] = closures_by_year.get(y, 0) + int(close.sum())
        if cal[d0].month == 1 or d0 == 0:
            progress(f"simulating {cal[d0]:%Y-%m}: {n_open:,} stores open")

    def cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(shape, dtype=dtype)

    return _Sim(
        first=first,
        n_days=n_days,
        span=span,
        muni_names=muni_names,
        muni_regions=muni_regions,
        muni_pops=muni_pops,
        n=n,
        store_muni=muni[:n].copy(),
        store_chain=draws.chain[:n].copy(),
        opened=opened[:n].copy(),
        closed=closed[:n].copy(),
        cover=draws.cover[:n].copy(),
        rows_day=cat(rows_day, (0,), np.int32),
        rows_store=cat(rows_store, (0,), np.int32),
        rows_rev=cat(rows_rev, (0, K), float),
        rows_grams=cat(rows_grams, (0, K), float),
        outage_served=outage_served,
        outage_stores=outage_stores,
        outage_lost_store=out_lost_store,
        outage_lost_day=out_lost_day,
        closure_lost_store=clo_lost_store,
        closure_lost_day=clo_lost_day,
        daily_total=daily_total,
        scale=scale,
        closures_by_year=closures_by_year,
        openings_by_year=openings_by_year,
    )
