"""Deterministic synthetic Ontario-like dataset with known ground truth.

`generate_dataset` simulates the private cannabis retail market of Ontario day by day from the first
store openings (2019-04-01): a store count that follows the public milestones, market demand that
follows the public sales totals, local cannibalization, prices that compress over time and with local
competition, endogenous closures of stores below break-even, the April 2020 COVID closure and the
August 2022 wholesale outage. Every parameter the simulation used is written to `manifest.yml` under
`truth:` so estimators can be checked against it. `data/README.md` documents the equations and the
public facts they are calibrated to.

Same arguments give byte-identical files. The output folder appears atomically (written to a temporary
sibling, then renamed), so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from cannabis_market.data.contract import CATEGORIES, FREQUENCIES
from cannabis_market.data.outage_model import served_share
from cannabis_market.errors import InputError

GENERATOR_VERSION = "1.0.0"

MARKET_START = date(2019, 4, 1)  # first day of private retail in Ontario (C1)
LATEST_END = date(2030, 12, 31)
DEFAULT_STORES = 1758  # peak of the calibrated open-store curve (C24, Sept 2023)
MIN_STORES = 10
MAX_STORES = 5000
DATASET_NAME = "synthetic-ontario"

# ------------------------------------------------------------------------------------------ geography
# Real Ontario municipalities with approximate 2021 census populations (Statistics Canada, Census of
# Population 2021), grouped into six regions. Approximate: rounded figures, good to a few per cent.
REGIONS: tuple[str, ...] = ("Toronto", "GTA", "Central", "East", "West", "North")
MUNICIPALITIES: tuple[tuple[str, str, int], ...] = (
    ("Toronto", "Toronto", 2794000),
    ("Ottawa", "East", 1017000),
    ("Mississauga", "GTA", 718000),
    ("Brampton", "GTA", 656000),
    ("Hamilton", "Central", 569000),
    ("London", "West", 422000),
    ("Markham", "GTA", 339000),
    ("Vaughan", "GTA", 323000),
    ("Kitchener", "Central", 257000),
    ("Windsor", "West", 230000),
    ("Oakville", "GTA", 214000),
    ("Richmond Hill", "GTA", 202000),
    ("Burlington", "GTA", 187000),
    ("Oshawa", "GTA", 175000),
    ("Greater Sudbury", "North", 166000),
    ("Barrie", "Central", 148000),
    ("Guelph", "Central", 144000),
    ("Whitby", "GTA", 139000),
    ("Cambridge", "Central", 138000),
    ("St. Catharines", "Central", 137000),
    ("Milton", "GTA", 133000),
    ("Kingston", "East", 132000),
    ("Ajax", "GTA", 127000),
    ("Waterloo", "Central", 121000),
    ("Thunder Bay", "North", 109000),
    ("Brantford", "Central", 105000),
    ("Chatham-Kent", "West", 104000),
    ("Clarington", "GTA", 101000),
    ("Pickering", "GTA", 99000),
    ("Niagara Falls", "Central", 94000),
    ("Newmarket", "GTA", 88000),
    ("Peterborough", "Central", 84000),
    ("Kawartha Lakes", "Central", 79000),
    ("Caledon", "GTA", 77000),
    ("Sault Ste. Marie", "North", 72000),
    ("Sarnia", "West", 72000),
    ("Norfolk County", "West", 67000),
    ("Halton Hills", "GTA", 63000),
    ("Aurora", "GTA", 62000),
    ("Welland", "Central", 57000),
    ("Belleville", "East", 55000),
    ("North Bay", "North", 53000),
    ("Whitchurch-Stouffville", "GTA", 50000),
    ("Haldimand County", "Central", 49000),
    ("Cornwall", "East", 48000),
    ("Georgina", "GTA", 48000),
    ("Woodstock", "West", 47000),
    ("Quinte West", "East", 47000),
    ("New Tecumseth", "Central", 44000),
    ("Innisfil", "Central", 43000),
    ("Bradford West Gwillimbury", "Central", 43000),
    ("St. Thomas", "West", 43000),
    ("Timmins", "North", 41000),
    ("Lakeshore", "West", 40000),
    ("Brant County", "Central", 39000),
    ("East Gwillimbury", "GTA", 35000),
    ("Orillia", "Central", 33000),
    ("Stratford", "West", 33000),
    ("Fort Erie", "Central", 33000),
    ("LaSalle", "West", 33000),
    ("Centre Wellington", "Central", 31000),
    ("Orangeville", "Central", 30000),
    ("Leamington", "West", 30000),
    ("Grimsby", "Central", 29000),
    ("Lincoln", "Central", 26000),
    ("Prince Edward County", "East", 26000),
    ("Wasaga Beach", "Central", 25000),
    ("Collingwood", "Central", 25000),
    ("Thorold", "Central", 24000),
    ("Amherstburg", "West", 24000),
    ("Tecumseh", "West", 23000),
    ("Oro-Medonte", "Central", 23000),
    ("Essa", "Central", 23000),
    ("Scugog", "GTA", 22000),
    ("Kingsville", "West", 22000),
    ("Brockville", "East", 22000),
    ("Owen Sound", "West", 22000),
    ("Uxbridge", "GTA", 22000),
    ("Essex", "West", 21000),
    ("Huntsville", "Central", 21000),
    ("Cobourg", "East", 21000),
    ("Port Colborne", "Central", 20000),
    ("Niagara-on-the-Lake", "Central", 19000),
    ("Tillsonburg", "West", 19000),
    ("Pelham", "Central", 18000),
    ("Petawawa", "East", 18000),
    ("Midland", "Central", 18000),
    ("Port Hope", "East", 17000),
    ("Greater Napanee", "East", 17000),
    ("Bracebridge", "Central", 16000),
    ("Kenora", "North", 15000),
    ("Clearview", "Central", 15000),
    ("Pembroke", "East", 14000),
    ("Trent Hills", "East", 14000),
    ("Ingersoll", "West", 14000),
    ("Gravenhurst", "Central", 13000),
    ("Carleton Place", "East", 12500),
    ("Brighton", "East", 12100),
    ("Elliot Lake", "North", 11400),
    ("Hawkesbury", "East", 10200),
    ("Temiskaming Shores", "North", 9600),
    ("Arnprior", "East", 9600),
    ("Smiths Falls", "East", 9300),
    ("Kapuskasing", "North", 8100),
    ("Hanover", "West", 8000),
    ("Goderich", "West", 7900),
    ("Kirkland Lake", "North", 7800),
    ("Fort Frances", "North", 7500),
    ("Dryden", "North", 7400),
    ("Parry Sound", "North", 6900),
    ("Perth", "East", 6500),
    ("Sioux Lookout", "North", 5800),
    ("Cochrane", "North", 5400),
    ("Gananoque", "East", 5400),
    ("Espanola", "North", 5200),
    ("Hearst", "North", 4800),
)
POPULATION_GROWTH = {
    "Toronto": 0.008,
    "GTA": 0.014,
    "Central": 0.013,
    "East": 0.012,
    "West": 0.011,
    "North": 0.004,
}
CHAINS: tuple[str, ...] = tuple(
    f"Synth {n}"
    for n in (
        "Alder",
        "Birch",
        "Cedar",
        "Dogwood",
        "Elm",
        "Fir",
        "Ginkgo",
        "Hemlock",
        "Ironwood",
        "Juniper",
        "Larch",
        "Maple",
    )
)

# ------------------------------------------------------------------------------------------ calibration
# Target count of open stores (net of closures), linear in between, flat after the last point.
STORE_TARGETS: tuple[tuple[date, int, str], ...] = (
    (date(2019, 4, 1), 10, "C1"),
    (date(2019, 6, 30), 22, "C3"),
    (date(2019, 7, 31), 24, "C2"),
    (date(2019, 11, 30), 27, "interpolation"),
    (date(2020, 3, 31), 52, "C3"),
    (date(2020, 4, 4), 52, "C4"),
    (date(2020, 6, 9), 87, "C5"),
    (date(2020, 6, 26), 100, "C6"),
    (date(2020, 9, 1), 150, "C7"),
    (date(2020, 9, 30), 178, "C9"),
    (date(2020, 11, 28), 250, "C10"),
    (date(2021, 3, 31), 572, "C12"),
    (date(2021, 6, 30), 834, "C14"),
    (date(2021, 8, 20), 1000, "C15"),
    (date(2021, 9, 30), 1115, "C16"),
    (date(2021, 12, 31), 1333, "C16"),
    (date(2022, 3, 31), 1460, "C18"),
    (date(2022, 8, 15), 1600, "A4/C21"),
    (date(2023, 3, 31), 1661, "C23"),
    (date(2023, 9, 30), 1758, "C24"),
    (date(2024, 12, 31), 1720, "C26"),
)
# Market demand: de-seasonalised store sales, CAD per month, log-linear in between; after the last
# point it grows at DEMAND_GROWTH_AFTER per year.
DEMAND_ANCHORS: tuple[tuple[date, float], ...] = (
    (date(2019, 4, 15), 16.0e6),
    (date(2019, 9, 15), 26.0e6),
    (date(2020, 2, 15), 31.0e6),
    (date(2020, 6, 15), 42.0e6),
    (date(2020, 10, 15), 68.0e6),
    (date(2021, 3, 15), 95.0e6),
    (date(2021, 7, 15), 123.0e6),
    (date(2021, 12, 15), 137.0e6),
    (date(2022, 7, 15), 146.0e6),
    (date(2023, 7, 15), 161.0e6),
    (date(2024, 7, 15), 181.0e6),
    (date(2024, 12, 15), 186.0e6),
)
DEMAND_GROWTH_AFTER = 0.03
# Daily-rate multipliers by calendar month (mean 1) and by ISO weekday Mon..Sun (mean 1).
SEASONALITY = (0.94, 0.93, 0.96, 0.98, 1.01, 1.01, 1.05, 1.07, 1.03, 0.99, 0.97, 1.06)
DAY_OF_WEEK = (0.85, 0.87, 0.93, 1.00, 1.22, 1.18, 0.95)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Category revenue shares at the start (2019-04-01) and end (2024-12-31) of the ramp, linear in between.
CATEGORY_SHARE_START = {
    "dried_flower": 0.58, "pre_rolls": 0.10, "vapes": 0.13, "edibles": 0.08,
    "beverages": 0.03, "extracts": 0.05, "other": 0.03,
}  # fmt: skip
CATEGORY_SHARE_END = {
    "dried_flower": 0.44, "pre_rolls": 0.21, "vapes": 0.16, "edibles": 0.07,
    "beverages": 0.03, "extracts": 0.06, "other": 0.03,
}  # fmt: skip
CATEGORY_SHARE_END_DATE = date(2024, 12, 31)
# Price per gram-equivalent relative to dried flower.
CATEGORY_PRICE_RATIO = {
    "dried_flower": 1.0, "pre_rolls": 1.15, "vapes": 1.5, "edibles": 1.3,
    "beverages": 1.6, "extracts": 1.3, "other": 1.2,
}  # fmt: skip


@dataclass(frozen=True)
class _Params:
    """Every structural parameter of the simulation (all of it goes to `truth:`)."""

    cannibalization_elasticity: float = -0.22  # b: total effect of log(1+c) on log revenue
    price_elasticity: float = -1.2  # epsilon: d log grams / d log price
    price_compression_annual: float = -0.065  # fractional change per year of the base price
    price_density_effect: float = -0.16  # delta: d log price / d log(1+c)
    flower_price_base: float = 13.2  # CAD/g at 2019-04-01, no competitor, store price level 0
    store_price_level_sd: float = 0.05  # a_i
    price_shock_sd: float = 0.06  # z_it stationary sd
    price_shock_ar1: float = 0.9  # z_it daily persistence
    store_effect_sd: float = 0.5  # sd of the store demand fixed effect (log scale)
    population_elasticity: float = 0.22  # theta: store effect rises with log(population)
    reference_population: int = 100000
    municipality_attractiveness_sd: float = 0.35  # openings go to municipalities by pop x attractiveness
    chain_probability: float = 0.35
    store_day_noise_sd: float = 0.18  # u_it
    category_noise_sd: float = 0.10  # e_ikt
    common_shock_sd: float = 0.03  # eta_t stationary sd
    common_shock_ar1: float = 0.5
    breakeven_monthly_revenue: float = 68000.0  # CAD at BREAKEVEN_REFERENCE
    breakeven_growth_annual: float = 0.22
    closure_trailing_months: int = 6
    closure_probability: float = 0.022  # monthly, for a store below break-even
    outage_partial_fill: float = 0.72
    cover_mean: float = 7.0  # days of cover, Gamma
    cover_sd: float = 3.0
    cover_fluctuation_sd: float = 0.15  # day-to-day log fluctuation of cover outside the outage
    cover_fluctuation_ar1: float = 0.8
    cover_recovery_days: float = 4.0  # e-folding time of the rebuild after the outage
    curbside_share: float = 0.6


PARAMS = _Params()
BREAKEVEN_REFERENCE = date(2023, 1, 1)
PRICE_REFERENCE = MARKET_START

OUTAGE_START = date(2022, 8, 5)
OUTAGE_PARTIAL_FROM = date(2022, 8, 10)
OUTAGE_NORMAL_FROM = date(2022, 8, 18)
OUTAGE_STOP_DAYS = (OUTAGE_PARTIAL_FROM - OUTAGE_START).days  # 5
OUTAGE_PARTIAL_DAYS = (OUTAGE_NORMAL_FROM - OUTAGE_PARTIAL_FROM).days  # 8
CLOSURE_ORDER = date(2020, 4, 4)  # stores ordered closed at 23:59 (A16)
CLOSURE_FROM = date(2020, 4, 5)
CURBSIDE_FROM = date(2020, 4, 7)  # A17
CLOSURE_NORMAL_FROM = date(2020, 5, 19)  # modelling choice: in-store shopping back to normal
INVENTORY_WINDOW_DAYS = 30

CATS = tuple(sorted(CATEGORIES))  # output order (alphabetical, as the sort order of the sales table)


# ------------------------------------------------------------------------------------------ arguments


def _as_date(value: str | date, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"{what}: {value!r} is not a date in ISO format YYYY-MM-DD") from None
    raise InputError(f"{what}: expected a date or an ISO date string, got {type(value).__name__}")


def _is_generated(folder: Path) -> bool:
    m = folder / "manifest.yml"
    if not m.is_file():
        return False
    try:
        man = yaml.safe_load(m.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return False
    return (
        isinstance(man, dict) and man.get("source") == "synthetic" and isinstance(man.get("generator"), dict)
    )


def _check_args(
    out: str | Path, seed: int, stores: int | None, start: str | date, end: str | date, frequency: str
) -> tuple[Path, int, int, date, date, str]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if stores is None:
        stores = DEFAULT_STORES
    if isinstance(stores, bool) or not isinstance(stores, (int, np.integer)):
        raise InputError(f"stores must be an integer (or None for the province-wide default), got {stores!r}")
    if not MIN_STORES <= stores <= MAX_STORES:
        raise InputError(
            f"stores must be between {MIN_STORES} and {MAX_STORES} (peak number of open stores), got {stores}"
        )
    if frequency not in FREQUENCIES:
        raise InputError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {frequency!r}")
    s, e = _as_date(start, "start"), _as_date(end, "end")
    if e <= s:
        raise InputError(f"end ({e}) must be after start ({s})")
    if s < MARKET_START:
        raise InputError(
            f"start ({s}) is before {MARKET_START}, the first day of private cannabis retail in Ontario"
        )
    if e > LATEST_END:
        raise InputError(f"end ({e}) is after {LATEST_END}, the latest date the generator extrapolates to")
    if frequency == "monthly":  # monthly datasets cover whole months
        s = s.replace(day=1)
        e = _month_end(e)
        e = min(e, LATEST_END)
    if out is None or (isinstance(out, str) and not out.strip()):
        raise InputError("out: an output folder is required")
    path = Path(out)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"out: {path} exists and is a file; give a folder path for the dataset")
        if any(path.iterdir()) and not _is_generated(path):
            raise InputError(
                f"out: folder {path} is not empty and is not a previously generated dataset; "
                "refusing to overwrite it (choose another folder or empty it)"
            )
    return path, int(seed), int(stores), s, e, frequency


def _month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


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


# ------------------------------------------------------------------------------------------ tables

_EPOCH = date(1970, 1, 1)


def _date_series(name: str, day_idx: np.ndarray, first: date) -> pl.Series:
    return pl.Series(name, day_idx.astype(np.int32) + np.int32((first - _EPOCH).days), dtype=pl.Int32).cast(
        pl.Date
    )


def _store_ids(n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"ON{i + 1:0{width}d}" for i in range(n)]


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _stores_frame(sim: _Sim, ids: list[str], monthly: bool) -> tuple[pl.DataFrame, np.ndarray]:
    keep = np.nonzero((sim.opened <= sim.span[1]) & (sim.closed >= sim.span[0]))[0]
    opened = [sim.first + timedelta(days=int(sim.opened[i])) for i in keep]
    if monthly:
        opened = [_month_start(d) for d in opened]
    closed = [
        sim.first + timedelta(days=int(sim.closed[i])) if sim.closed[i] <= sim.span[1] else None for i in keep
    ]
    df = pl.DataFrame(
        {
            "store_id": [ids[i] for i in keep],
            "municipality": [sim.muni_names[sim.store_muni[i]] for i in keep],
            "region": [sim.muni_regions[sim.store_muni[i]] for i in keep],
            "opened_on": opened,
            "closed_on": closed,
            "chain": [CHAINS[sim.store_chain[i]] if sim.store_chain[i] >= 0 else None for i in keep],
        },
        schema={
            "store_id": pl.String,
            "municipality": pl.String,
            "region": pl.String,
            "opened_on": pl.Date,
            "closed_on": pl.Date,
            "chain": pl.String,
        },
    )
    return df, keep


def _population_frame(sim: _Sim, start: date, end: date) -> pl.DataFrame:
    rows = []
    order = sorted(range(len(sim.muni_names)), key=lambda i: sim.muni_names[i])
    for i in order:
        g = POPULATION_GROWTH[sim.muni_regions[i]]
        for y in range(start.year, end.year + 1):
            rows.append((sim.muni_names[i], y, int(round(sim.muni_pops[i] * (1 + g) ** (y - 2021)))))
    return pl.DataFrame(
        rows, schema={"municipality": pl.String, "year": pl.Int64, "population": pl.Int64}, orient="row"
    )


def _sales_frame(sim: _Sim, ids: list[str], monthly: bool) -> pl.DataFrame:
    K = len(CATS)
    n_rows = sim.rows_day.size
    df = pl.DataFrame(
        [
            _date_series("date", np.repeat(sim.rows_day, K), sim.first),
            pl.Series("store_id", ids).gather(pl.Series(np.repeat(sim.rows_store, K))),
            pl.Series("category", list(CATS)).gather(
                pl.Series(np.tile(np.arange(K, dtype=np.int32), n_rows))
            ),
            pl.Series("revenue", sim.rows_rev.ravel()),
            pl.Series("grams", sim.rows_grams.ravel()),
        ]
    )
    if monthly:
        df = (
            df.group_by(pl.col("date").dt.truncate("1mo"), "store_id", "category")
            .agg(pl.col("revenue").sum(), pl.col("grams").sum())
            .sort("date", "store_id", "category")
        )
    return df.with_columns(pl.col("revenue").round(2), pl.col("grams").round(3))


def _inventory_frame(sim: _Sim, ids: list[str], p: _Params, seed: int, monthly: bool) -> pl.DataFrame:
    d, s, c = _inventory(sim, p, seed)
    df = pl.DataFrame(
        [
            _date_series("date", d, sim.first),
            pl.Series("store_id", ids).gather(pl.Series(s))
            if s.size
            else pl.Series("store_id", [], dtype=pl.String),
            pl.Series("days_of_cover", c, dtype=pl.Float64),
        ]
    )
    if monthly:  # opening-stock snapshot on the first day of each month
        df = df.filter(pl.col("date").dt.day() == 1)
    return df


def _events_frame(sim: _Sim, p: _Params) -> pl.DataFrame:
    rows = []
    for name, _si, _ei, _, _ in _event_windows(sim):
        if name == "closure_2020":
            rows.append(
                (
                    "closure_2020",
                    "closure",
                    CLOSURE_FROM,
                    CLOSURE_NORMAL_FROM - timedelta(days=1),
                    "all",
                    f"SYNTHETIC: COVID-19 order; stores closed {CLOSURE_FROM} and {CLOSURE_FROM + timedelta(days=1)}, "
                    f"curbside pick-up and delivery only from {CURBSIDE_FROM} (sales at {p.curbside_share:.0%} of "
                    f"normal) until {CLOSURE_NORMAL_FROM - timedelta(days=1)}",
                )
            )
        else:
            rows.append(
                (
                    "outage_2022",
                    "outage",
                    OUTAGE_START,
                    OUTAGE_NORMAL_FROM - timedelta(days=1),
                    "all",
                    f"SYNTHETIC: wholesale delivery outage; no deliveries {OUTAGE_START} to "
                    f"{OUTAGE_PARTIAL_FROM - timedelta(days=1)}, partial deliveries from {OUTAGE_PARTIAL_FROM}, "
                    f"normal from {OUTAGE_NORMAL_FROM}; stores sell from stock (days_of_cover)",
                )
            )
    schema = {
        "event_id": pl.String,
        "kind": pl.String,
        "start": pl.Date,
        "end": pl.Date,
        "scope": pl.String,
        "description": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


# ------------------------------------------------------------------------------------------ manifest


def _r2(x: float) -> float:
    return float(round(float(x), 2))


def _truth(sim: _Sim, p: _Params, ids: list[str], start: date, end: date) -> dict[str, Any]:
    b, eps, delta = p.cannibalization_elasticity, p.price_elasticity, p.price_density_effect
    gamma = b - (1 + eps) * delta
    shape = (p.cover_mean / p.cover_sd) ** 2
    day = lambda i: sim.first + timedelta(days=int(i))  # noqa: E731

    def lost_block(by_store: dict[int, float], by_day: dict[int, float]) -> dict[str, Any]:
        per_store = {ids[i]: _r2(v) for i, v in sorted(by_store.items()) if _r2(v) > 0}
        return {
            "lost_sales_total": _r2(sum(per_store.values())),
            "lost_sales_by_store": per_store,
            "lost_sales_by_day": {day(i): _r2(v) for i, v in sorted(by_day.items())},
            "stores_affected": len(per_store),
        }

    out_span = end >= OUTAGE_START and start <= OUTAGE_NORMAL_FROM - timedelta(days=1)
    clo_span = end >= CLOSURE_FROM and start <= CLOSURE_NORMAL_FROM - timedelta(days=1)
    n_eve = int(sim.outage_stores.size) if sim.outage_stores is not None else 0
    ever = int(np.sum(sim.opened <= sim.span[1]))
    return {
        "model": (
            "daily, store i, category k: log price = log(base_k) + log(1 + price_compression_annual) * years "
            "+ price_density_effect * log(1 + c_it) + a_i + z_it; log grams = period_k(t) + store_i "
            "+ price_elasticity * log price + quantity_competition_elasticity * log(1 + c_it) + noise; "
            "revenue = price * grams; c_it = other stores open in the same municipality that day. "
            "See data/README.md."
        ),
        "cannibalization_elasticity": b,
        "cannibalization_definition": (
            "b in log(store revenue) = store FE + period FE + b * log(1 + c_it) + noise, c_it = number of "
            "other stores open in the same municipality that day (includes the price channel)"
        ),
        "quantity_competition_elasticity": float(round(gamma, 6)),
        "quantity_competition_definition": (
            "gamma in log(grams) = store FE + period FE + price_elasticity * log(price) + gamma * log(1 + c_it) "
            "+ noise; gamma = b - (1 + price_elasticity) * price_density_effect"
        ),
        "price_elasticity": eps,
        "price_elasticity_definition": (
            "elasticity of grams w.r.t. own price, identified by the exogenous store price shocks z_it "
            "(independent of demand); control for log(1 + c_it), which moves price and grams"
        ),
        "price_compression_annual": p.price_compression_annual,
        "price_compression_log_rate": float(round(math.log1p(p.price_compression_annual), 6)),
        "price_compression_definition": (
            "fraction change per year of the base price per gram: base(t) = base(2019-04-01) * "
            "(1 + price_compression_annual) ** years_since_2019-04-01; log-rate = log(1 + price_compression_annual)"
        ),
        "price_density_effect": delta,
        "price_density_definition": (
            "d log(price per gram) / d log(1 + c_it), c_it = other stores open in the same municipality that day; "
            "same for all categories"
        ),
        "base_price_per_gram": {
            c: float(round(p.flower_price_base * CATEGORY_PRICE_RATIO[c], 4)) for c in CATEGORIES
        },
        "base_price_date": PRICE_REFERENCE,
        "store_price_level_sd": p.store_price_level_sd,
        "price_shock": {
            "sd": p.price_shock_sd,
            "ar1": p.price_shock_ar1,
            "step": "daily, per store, exogenous",
        },
        "demand": {
            "definition": (
                "counterfactual total store sales per day = monthly level / (365.25 / 12) * seasonality[month] * "
                "day_of_week[weekday] * scale; level is log-linear between the anchors (CAD per month, "
                "de-seasonalised); stores share it in proportion to exp(store effect + (1 + price_elasticity) * "
                "(a_i + z_it) + cannibalization_elasticity * log(1 + c_it))"
            ),
            "anchors_cad_per_month": {d: float(v) for d, v in DEMAND_ANCHORS},
            "growth_after_last_anchor": DEMAND_GROWTH_AFTER,
            "scale": float(round(sim.scale, 6)),
        },
        "seasonality": {m: float(v) for m, v in zip(range(1, 13), SEASONALITY, strict=True)},
        "day_of_week": {w: float(v) for w, v in zip(WEEKDAY_NAMES, DAY_OF_WEEK, strict=True)},
        "category_share_start": {c: CATEGORY_SHARE_START[c] for c in CATEGORIES},
        "category_share_end": {c: CATEGORY_SHARE_END[c] for c in CATEGORIES},
        "category_share_end_date": CATEGORY_SHARE_END_DATE,
        "category_price_ratio": {c: CATEGORY_PRICE_RATIO[c] for c in CATEGORIES},
        "store_heterogeneity_sd": p.store_effect_sd,
        "population_elasticity": p.population_elasticity,
        "reference_population": p.reference_population,
        "municipality_attractiveness_sd": p.municipality_attractiveness_sd,
        "population_growth_annual": dict(POPULATION_GROWTH),
        "chains": {
            "probability": p.chain_probability,
            "names": list(CHAINS),
            "size_weights": "Zipf: 1 / rank",
            "effect": "none beyond the store fixed effect",
        },
        "noise": {
            "store_day_sd": p.store_day_noise_sd,
            "category_sd": p.category_noise_sd,
            "common_daily_shock_sd": p.common_shock_sd,
            "common_daily_shock_ar1": p.common_shock_ar1,
        },
        "openings": {
            "target_open_stores": {d: int(v) for d, v, _ in STORE_TARGETS},
            "scale": float(round(sim.scale, 6)),
            "rule": (
                "each day open stores = round(scale * target), target linear between the dated points; "
                "closures are replaced evenly over the following month; no openings during the 2022 outage"
            ),
        },
        "closure_rule": {
            "breakeven_monthly_revenue": p.breakeven_monthly_revenue,
            "breakeven_reference_date": BREAKEVEN_REFERENCE,
            "breakeven_growth_annual": p.breakeven_growth_annual,
            "trailing_months": p.closure_trailing_months,
            "monthly_probability": p.closure_probability,
            "rule": (
                "at each month end, a store open for at least trailing_months full months whose average monthly "
                "revenue over the last trailing_months months is below breakeven(t) = breakeven_monthly_revenue * "
                "(1 + breakeven_growth_annual) ** years since the reference date closes with probability "
                "monthly_probability; closed_on = that month's last day (last day open)"
            ),
        },
        "breakeven_monthly_revenue": p.breakeven_monthly_revenue,
        "stores_ever_opened": ever,
        "closures_by_year": {int(y): int(v) for y, v in sorted(sim.closures_by_year.items())},
        "openings_by_year": {int(y): int(v) for y, v in sorted(sim.openings_by_year.items())},
        "outage_2022": {
            "in_span": bool(out_span),
            "start": OUTAGE_START,
            "partial_from": OUTAGE_PARTIAL_FROM,
            "normal_from": OUTAGE_NORMAL_FROM,
            "stop_days": OUTAGE_STOP_DAYS,
            "partial_days": OUTAGE_PARTIAL_DAYS,
            "partial_fill": p.outage_partial_fill,
            "mechanism": "cannabis_market.data.outage_model.served_share(days_of_cover on the eve, stop_days, partial_days, partial_fill)",
            "days_of_cover": {
                "distribution": "gamma",
                "mean": p.cover_mean,
                "sd": p.cover_sd,
                "shape": float(round(shape, 6)),
                "scale": float(round(p.cover_sd**2 / p.cover_mean, 6)),
                "rounded_to": 0.01,
                "measured_on": OUTAGE_START - timedelta(days=1),
            },
            "stores_open_on_eve": n_eve,
            **lost_block(sim.outage_lost_store, sim.outage_lost_day),
            "lost_sales_note": (
                "CAD, tax excluded, all categories, days inside the dataset span; lost = counterfactual revenue x "
                "(1 - served share); stores with zero loss are omitted from lost_sales_by_store"
            ),
        },
        "closure_2020": {
            "in_span": bool(clo_span),
            "order": CLOSURE_ORDER,
            "closed_from": CLOSURE_FROM,
            "curbside_from": CURBSIDE_FROM,
            "normal_from": CLOSURE_NORMAL_FROM,
            "curbside_share": p.curbside_share,
            "closed_share": 0.0,
            **lost_block(sim.closure_lost_store, sim.closure_lost_day),
        },
        "inventory": {
            "window_days": INVENTORY_WINDOW_DAYS,
            "fluctuation_sd": p.cover_fluctuation_sd,
            "fluctuation_ar1": p.cover_fluctuation_ar1,
            "recovery_days": p.cover_recovery_days,
            "definition": "days_of_cover = stock at the close of the day, in days of the store's normal demand",
        },
    }


def _manifest(
    sim: _Sim, p: _Params, ids: list[str], seed: int, stores: int, start: date, end: date, frequency: str
) -> dict[str, Any]:
    return {
        "name": DATASET_NAME,
        "description": (
            "SYNTHETIC data: a simulated Ontario-like legal cannabis retail market (not real sales). Generated by "
            "cannabis_market.data.generate with known ground truth under `truth:`; calibrated to public facts "
            "(see data/README.md). Revenue is CAD, tax excluded; grams are dried-flower gram-equivalents."
        ),
        "source": "synthetic",
        "frequency": frequency,
        "currency": "CAD",
        "region": "Ontario",
        "generator": {
            "version": GENERATOR_VERSION,
            "seed": seed,
            "stores": stores,
            "start": start,
            "end": end,
        },
        "truth": _truth(sim, p, ids, start, end),
    }


# ------------------------------------------------------------------------------------------ public API


def generate_dataset(
    out: str | Path,
    seed: int = 2022,
    stores: int | None = None,
    start: str | date = "2019-04-01",
    end: str | date = "2024-12-31",
    frequency: str = "daily",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a synthetic Ontario-like dataset (manifest with ground truth + tables) to the folder `out`.

    `stores` is the peak number of open stores (None = Ontario's 1,758); smaller values scale the market
    down with fewer municipalities. The same arguments always give byte-identical files. The folder is
    written next to `out` and renamed into place; a previously generated dataset at `out` is replaced.
    Raises InputError for bad arguments.
    """
    path, seed, n_stores, s, e, frequency = _check_args(out, seed, stores, start, end, frequency)
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    p = PARAMS
    monthly = frequency == "monthly"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        sim = _simulate(seed, n_stores, s, e, p, say)
        ids = _store_ids(sim.n)
        stores_df, _ = _stores_frame(sim, ids, monthly)
        say(f"stores: {stores_df.height:,} ({sim.n:,} ever opened since {MARKET_START})")
        sales = _sales_frame(sim, ids, monthly)
        say(f"sales: {sales.height:,} rows")
        sales.write_parquet(tmp / "sales.parquet", compression="zstd", statistics=True)
        del sales
        stores_df.write_csv(tmp / "stores.csv")
        _population_frame(sim, s, e).write_csv(tmp / "population.csv")
        events = _events_frame(sim, p)
        if events.height:
            events.write_csv(tmp / "events.csv")
        inv = _inventory_frame(sim, ids, p, seed, monthly)
        if inv.height:
            inv.write_parquet(tmp / "inventory.parquet", compression="zstd", statistics=True)
        manifest = _manifest(sim, p, ids, seed, n_stores, s, e, frequency)
        (tmp / "manifest.yml").write_text(
            yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        say("wrote tables")
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
    return path


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished temporary folder to `path`, replacing an empty or previously generated folder."""
    if path.exists():
        if any(path.iterdir()):
            if not _is_generated(path):  # re-check: the folder may have changed while we were generating
                raise InputError(f"out: folder {path} is not empty and is not a previously generated dataset")
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
            return
        os.rmdir(path)
    os.replace(tmp, path)
