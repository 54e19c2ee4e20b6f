"""Market growth: store-count dynamics, demand forecasts, saturation and cannibalization.

Four estimators, each returning a result object with point estimates, intervals, `summary()` (a polars
frame) and altair charts:

- `fit_store_growth` fits logistic and Gompertz curves to the number of open stores. Store counts
  drift away from any smooth curve for months at a time, so residuals are strongly autocorrelated and
  an i.i.d. bootstrap is far too narrow; a moving-block bootstrap was still too narrow in our checks
  (75-85% coverage for nominal 95%) because the fitted curve absorbs part of the slow drift. Intervals
  therefore come from a residual bootstrap with AR(1) noise calibrated so that refitted residuals
  match the observed ones. Forecast intervals add that noise, starting from the last observed gap.
- `forecast_demand` forecasts monthly market sales with ETS and SARIMAX (both on log sales) and picks
  the model with the lower rolling-origin backtest MASE; the backtest table is part of the result.
- `saturation` tracks sales per open store, store density and the stores whose trailing revenue is
  below a break-even level. Shared output holds counts and group averages only, never store rows.
- `cannibalization` regresses log store-month revenue on log(1 + nearby competitors) with store and
  period fixed effects absorbed by demeaning (`analysis.panel.fe_ols`), clustering errors by store.

Monthly periods are the first day of the month (`pl.Date`).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import polars as pl
from scipy import optimize, stats

import cannabis_market  # noqa: F401  (registers the chart theme)
from cannabis_market.analysis.panel import FEResult, fe_ols
from cannabis_market.data.aggregate import openings_closures, period_end
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_cad, fmt_date, fmt_num, fmt_pct
from cannabis_market.theme import BAND, PALETTE

__all__ = [
    "CannibalizationResult",
    "DemandForecast",
    "GrowthFit",
    "SaturationResult",
    "StoreGrowthResult",
    "add_competitors",
    "cannibalization",
    "fit_store_growth",
    "forecast_demand",
    "market_sales",
    "saturation",
    "store_counts",
    "store_month_panel",
]

MAX_CHART_ROWS = 5_000


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _frame(obj: Any, name: str) -> pl.DataFrame:
    """Collect a LazyFrame / accept a DataFrame; anything else is an InputError naming `name`."""
    if isinstance(obj, pl.LazyFrame):
        obj = obj.collect()
    if not isinstance(obj, pl.DataFrame):
        raise InputError(f"{name}: expected a polars DataFrame or LazyFrame, got {type(obj).__name__}")
    return obj


def _need(df: pl.DataFrame, cols: Sequence[str], name: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{name}: missing column(s) {missing} (have {df.columns})")


def _to_month(df: pl.DataFrame, col: str, name: str) -> pl.DataFrame:
    """Cast `col` (Date, Datetime or 'YYYY-MM[-DD]' text) to the first day of its month."""
    dtype = df.schema[col]
    if dtype == pl.String:
        expr = (pl.col(col).str.slice(0, 7) + "-01").str.to_date("%Y-%m-%d", strict=False)
    elif isinstance(dtype, pl.Datetime):
        expr = pl.col(col).dt.date()
    elif dtype == pl.Date:
        expr = pl.col(col)
    else:
        raise InputError(f"{name}: column '{col}' must hold dates (Date, Datetime or 'YYYY-MM'), got {dtype}")
    out = df.with_columns(expr.dt.truncate("1mo").alias(col))
    if out[col].null_count() > df[col].null_count():
        raise InputError(
            f"{name}: column '{col}' has values that are not dates (expected 'YYYY-MM' or a date)"
        )
    return out


def _month_no(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def _add_months(d: dt.date, k: int) -> dt.date:
    y, m = divmod(_month_no(d) + k, 12)
    return dt.date(y, m + 1, 1)


def _month_index(s: pl.Series) -> np.ndarray:
    return (s.dt.year().cast(pl.Int64) * 12 + s.dt.month().cast(pl.Int64) - 1).to_numpy()


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        raise InputError(f"alpha must be between 0 and 1 (e.g. 0.05 for 95% intervals), got {alpha!r}")


@contextlib.contextmanager
def _blas_single_thread() -> Iterator[None]:
    """Run small-matrix numerics with OpenBLAS limited to one thread, then restore.

    statsmodels' state-space filters make thousands of tiny BLAS calls; on a busy machine OpenBLAS'
    worker threads make each call up to 50x slower than a single thread. Best effort: on any platform
    where the libraries cannot be found this does nothing.
    """
    restore: list[tuple[Any, int]] = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {
                ln.split()[-1] for ln in fh if "openblas" in ln.lower() and ".so" in ln.rsplit("/", 1)[-1]
            }
    except OSError:
        paths = set()
    for p in sorted(paths):
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for stem in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64_", ""):
                get = getattr(lib, f"{stem}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{stem}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    try:
                        restore.append((put, int(get())))
                        put(1)
                    except Exception:  # pragma: no cover - exotic builds
                        pass
                    break
            else:
                continue
            break
    try:
        yield
    finally:
        for put, n in restore:
            with contextlib.suppress(Exception):
                put(n)


_SYMBOLS = {"CAD": "CA$", "USD": "US$", "EUR": "€"}


def _money(x: float | None, currency: str) -> str:
    return fmt_cad(x, symbol=_SYMBOLS.get(currency, f"{currency} "))


def _is_dataset(obj: Any) -> bool:
    return (
        hasattr(obj, "stores") and hasattr(obj, "sales") and not isinstance(obj, pl.DataFrame | pl.LazyFrame)
    )


# --------------------------------------------------------------------------------------------------
# Panels and counts
# --------------------------------------------------------------------------------------------------


def store_month_panel(ds: Any) -> pl.DataFrame:
    """Store-month revenue from a loaded dataset, with the store's municipality, region and dates.

    Columns: period, store_id, municipality, region, revenue, grams, opened_on, closed_on,
    competitors (+ lat/lon when the stores table has them). `competitors` is the average number of
    OTHER stores of the same municipality open on a day of that month (open days / days in month), so a
    neighbour opening mid-month counts in proportion to the days it traded. Monthly datasets only give
    the opening month (opened_on is its 1st); a neighbour then counts half in its opening month, the
    expected share of a month traded by a store opening on a random day.
    """
    stores = _frame(getattr(ds, "stores", None), "dataset stores table")
    sales = _frame(getattr(ds, "sales", None), "dataset sales table")
    _need(stores, ["store_id", "municipality", "region", "opened_on"], "stores")
    _need(sales, ["date", "store_id", "revenue"], "sales")
    if "closed_on" not in stores.columns:
        stores = stores.with_columns(closed_on=pl.lit(None, pl.Date))
    has_grams = "grams" in sales.columns
    monthly = (
        sales.with_columns(period=pl.col("date").dt.truncate("1mo"))
        .group_by("period", "store_id")
        .agg(
            revenue=pl.col("revenue").sum(),
            grams=pl.col("grams").sum() if has_grams else pl.lit(None, pl.Float64).first(),
        )
    )
    extra = [c for c in ("lat", "lon", "chain") if c in stores.columns]
    keep = ["store_id", "municipality", "region", "opened_on", "closed_on", *extra]
    panel = monthly.join(stores.select(keep), on="store_id", how="inner")
    if panel.height == 0:
        raise InputError("dataset: no sales rows match a store in the stores table (store_id)")
    half = getattr(ds, "frequency", None) == "monthly" and bool((stores["opened_on"].dt.day() == 1).all())
    comp = _municipality_open_days(stores, panel["period"].unique().sort(), half)
    panel = panel.join(comp, on=["municipality", "period"], how="left").with_columns(
        competitors=(
            (pl.col("_open_days") - _own_open_days(half))
            / pl.col("period").dt.month_end().dt.day().cast(pl.Float64)
        ).clip(lower_bound=0.0)
    )
    return panel.drop("_open_days").sort("period", "store_id")


def _own_open_days(half_opening_month: bool = False) -> pl.Expr:
    """Days in the row's month during which the row's store was open (needs opened_on/closed_on)."""
    start = pl.max_horizontal(pl.col("opened_on"), pl.col("period"))
    end = pl.min_horizontal(
        pl.col("closed_on").fill_null(pl.col("period").dt.month_end()), pl.col("period").dt.month_end()
    )
    days = ((end - start).dt.total_days() + 1).clip(lower_bound=0).cast(pl.Float64)
    if half_opening_month:
        days = (
            pl.when(pl.col("opened_on").dt.truncate("1mo") == pl.col("period")).then(days / 2).otherwise(days)
        )
    return days


def _municipality_open_days(stores: pl.DataFrame, periods: pl.Series, half: bool = False) -> pl.DataFrame:
    """Total store-days open per municipality and month."""
    grid = stores.select("store_id", "municipality", "opened_on", "closed_on").join(
        pl.DataFrame({"period": periods}), how="cross"
    )
    return (
        grid.with_columns(_d=_own_open_days(half))
        .group_by("municipality", "period")
        .agg(_open_days=pl.col("_d").sum())
    )


def add_competitors(panel: pl.DataFrame | pl.LazyFrame, within: str | None = "municipality") -> pl.DataFrame:
    """Add `competitors`: other stores reporting revenue in the same period (and `within` group).

    `within=None` counts the whole market (every other reporting store), which is what is available
    when a panel has no geography (e.g. Washington's licence-level report).
    """
    df = _frame(panel, "panel")
    keys = ["period"] + ([within] if within else [])
    _need(df, ["store_id", "revenue", *keys], "panel")
    present = pl.col("revenue").fill_null(0) > 0
    n = df.filter(present).group_by(keys).agg(_n=pl.col("store_id").n_unique())
    return (
        df.join(n, on=keys, how="left")
        .with_columns(
            competitors=(pl.col("_n").fill_null(0) - present.cast(pl.Int64))
            .clip(lower_bound=0)
            .cast(pl.Float64)
        )
        .drop("_n")
    )


def market_sales(data: Any) -> pl.DataFrame:
    """Monthly market sales `[period, sales]` from a dataset, a store-month panel or a sales table."""
    if _is_dataset(data):
        df = _frame(data.sales, "dataset sales table").rename({"date": "period"})
    else:
        df = _frame(data, "sales")
        if "period" not in df.columns and "date" in df.columns:
            df = df.rename({"date": "period"})
    _need(df, ["period", "revenue"], "sales")
    df = _to_month(df, "period", "sales")
    return df.group_by("period").agg(sales=pl.col("revenue").sum()).sort("period")


def store_counts(
    source: pl.DataFrame | pl.LazyFrame,
    *,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    geo: str | None = None,
) -> pl.DataFrame:
    """Open stores, openings and closures per month: `[period, stores_open, openings, closures, net_change]`.

    `source` may be
    - a stores table (store_id, opened_on, closed_on = LAST day open): `stores_open` counts stores open
      on the month's last day; an opening is counted in the month of `opened_on`, a closure in the month
      of the first day closed (`closed_on + 1`), so open(m) = open(m-1) + openings(m) - closures(m);
    - a series table (date, geo, metric, value) with metric "stores": the last value in each month;
      only the net change is known, so openings/closures are null;
    - a store-month panel (period, store_id, revenue): stores reporting revenue; a store's opening is its
      first reporting month, its closure the month after its last one (none at the data's edges).
    """
    df = _frame(source, "store_counts source")
    cols = set(df.columns)
    if {"period", "store_id"} <= cols:
        out = _counts_from_panel(df)
    elif "opened_on" in cols:
        out = _counts_from_stores(df, start, end)
    elif {"metric", "value"} <= cols:
        out = _counts_from_series(df, geo)
    else:
        raise InputError(
            "store_counts: source must be a stores table (store_id, opened_on, closed_on), a series table "
            f"(date, geo, metric, value) or a store-month panel (period, store_id, revenue); got {df.columns}"
        )
    if start is not None:
        out = out.filter(pl.col("period") >= _as_date(start, "start").replace(day=1))
    if end is not None:
        out = out.filter(pl.col("period") <= _as_date(end, "end"))
    if out.height == 0:
        raise InputError("store_counts: no months left between `start` and `end`")
    return out


def _as_date(x: dt.date | str, name: str) -> dt.date:
    if isinstance(x, dt.datetime):
        return x.date()
    if isinstance(x, dt.date):
        return x
    try:
        return dt.date.fromisoformat(str(x) if len(str(x)) > 7 else f"{x}-01")
    except ValueError as e:
        raise InputError(f"{name}: expected a date like '2019-04-01', got {x!r}") from e


def _counts_from_stores(df: pl.DataFrame, start: Any, end: Any) -> pl.DataFrame:
    _need(df, ["store_id", "opened_on"], "stores")
    if df.height == 0:
        raise InputError("stores: the table is empty; there are no stores to count")
    df = df.with_columns(pl.col("opened_on").cast(pl.Date))
    closed = (
        df["closed_on"].cast(pl.Date) if "closed_on" in df.columns else pl.Series("closed_on", [], pl.Date)
    )
    if df["opened_on"].null_count():
        raise InputError("stores: column 'opened_on' has empty values")
    first = (
        _as_date(start, "start").replace(day=1) if start is not None else df["opened_on"].min().replace(day=1)
    )
    last_cands = [df["opened_on"].max(), closed.drop_nulls().max()]
    last = _as_date(end, "end") if end is not None else max(d for d in last_cands if d is not None)
    stores = df.select(
        "store_id", "opened_on", closed_on=closed if "closed_on" in df.columns else pl.lit(None, pl.Date)
    )
    counts = openings_closures(
        stores.lazy(), "month", start=first, end=period_end(last.replace(day=1), "month")
    )
    return counts.select("period", "stores_open", "openings", "closures").with_columns(
        net_change=pl.col("openings") - pl.col("closures")
    )


def _counts_from_series(df: pl.DataFrame, geo: str | None) -> pl.DataFrame:
    date_col = "date" if "date" in df.columns else "period"
    _need(df, [date_col, "metric", "value"], "series")
    s = df.filter(pl.col("metric") == "stores")
    if s.height == 0:
        raise InputError("series: no rows with metric 'stores' (needed for store counts)")
    if "geo" in s.columns:
        geos = s["geo"].unique().sort().to_list()
        if geo is not None:
            s = s.filter(pl.col("geo") == geo)
            if s.height == 0:
                raise InputError(f"series: no 'stores' rows for geo {geo!r} (have {geos[:10]})")
        elif len(geos) > 1:
            raise InputError(f"series: 'stores' rows cover {len(geos)} geos ({geos[:5]}...); pass `geo=`")
    s = _to_month(s.rename({date_col: "period"}) if date_col != "period" else s, "period", "series")
    out = (
        s.sort("period")
        .group_by("period", maintain_order=True)
        .agg(stores_open=pl.col("value").last())
        .sort("period")
        .with_columns(net_change=pl.col("stores_open").diff())
    )
    return out.select(
        "period",
        "stores_open",
        openings=pl.lit(None, pl.Int64),
        closures=pl.lit(None, pl.Int64),
        net_change="net_change",
    )


def _counts_from_panel(df: pl.DataFrame) -> pl.DataFrame:
    df = _to_month(df, "period", "panel")
    if "revenue" in df.columns:
        df = df.filter(pl.col("revenue").fill_null(0) > 0)
    if df.height == 0:
        raise InputError("panel: no store-month rows with revenue > 0")
    p0, p1 = df["period"].min(), df["period"].max()
    periods = pl.date_range(p0, p1, "1mo", eager=True)
    span = df.group_by("store_id").agg(first=pl.col("period").min(), last=pl.col("period").max())
    n = df.group_by("period").agg(stores_open=pl.col("store_id").n_unique())
    opens = (
        span.filter(pl.col("first") > p0).group_by("first").agg(openings=pl.len()).rename({"first": "period"})
    )
    closes = (
        span.filter(pl.col("last") < p1)
        .with_columns(period=pl.col("last").dt.offset_by("1mo"))
        .group_by("period")
        .agg(closures=pl.len())
    )
    out = (
        pl.DataFrame({"period": periods})
        .join(n, on="period", how="left")
        .join(opens, on="period", how="left")
        .join(closes, on="period", how="left")
        .with_columns(
            pl.col("stores_open").fill_null(0).cast(pl.Int64),
            pl.col("openings").fill_null(0).cast(pl.Int64),
            pl.col("closures").fill_null(0).cast(pl.Int64),
        )
        .with_columns(
            openings=pl.when(pl.col("period") == p0).then(None).otherwise(pl.col("openings")),
        )
    )
    return out.with_columns(net_change=pl.col("stores_open").diff()).sort("period")


# --------------------------------------------------------------------------------------------------
# 1. Store-count growth curves
# --------------------------------------------------------------------------------------------------


def _logistic(t: np.ndarray, K: float, r: float, t0: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return K / (1.0 + np.exp(-r * (t - t0)))


def _gompertz(t: np.ndarray, K: float, r: float, t0: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return K * np.exp(-np.exp(-r * (t - t0)))


_CURVES = {"logistic": _logistic, "gompertz": _gompertz}
_PARAMS = ("K", "r", "t0")


def _fit_curve(f, t, y, starts, bounds) -> tuple[np.ndarray, float] | None:
    best: tuple[np.ndarray, float] | None = None
    lo, hi = bounds
    for p0 in starts:
        p0 = np.clip(np.asarray(p0, float), np.asarray(lo) + 1e-9, np.asarray(hi) - 1e-9)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p, _ = optimize.curve_fit(
                    f, t, y, p0=p0, bounds=bounds, method="trf", x_scale="jac", max_nfev=2000
                )
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            continue
        sse = float(((y - f(t, *p)) ** 2).sum())
        if np.isfinite(sse) and (best is None or sse < best[1]):
            best = (p, sse)
    return best


def _starts(t: np.ndarray, y: np.ndarray, model: str) -> list[tuple[float, float, float]]:
    ymax = float(y.max())
    span = max(float(t[-1] - t[0]), 1.0)
    out = []
    for kf in (1.05, 1.5, 3.0):
        K = kf * ymax
        target = K / 2 if model == "logistic" else K / math.e
        hit = np.nonzero(y >= target)[0]
        t0 = float(t[hit[0]]) if hit.size else float(t[-1] + 0.3 * span * kf)
        for rs in (4.0, 12.0):
            out.append((K, rs / span, t0))
    return out


def _acf1(e: np.ndarray) -> float:
    e = e - e.mean()
    denom = float((e**2).sum())
    return float((e[1:] * e[:-1]).sum() / denom) if denom > 0 else 0.0


def _ar1_noise(phi: float, innov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) path of length n whose innovations are resampled from `innov`."""
    u = rng.choice(innov, n, replace=True)
    out = np.empty(n)
    out[0] = u[0] / math.sqrt(max(1.0 - phi**2, 1e-4))
    for i in range(1, n):
        out[i] = phi * out[i - 1] + u[i]
    return out


def _calibrate_noise(f, t, fit, theta, bounds, resid, rng, reps: int = 40, rounds: int = 3):
    """AR(1) residual process whose *refitted* residuals look like the observed ones.

    A fitted curve soaks up slow swings of autocorrelated noise, so residuals understate both the
    persistence and the size of the noise; bootstrapping them as they are gives intervals that are
    too narrow (measured: 75-85% coverage for nominal 95%). Here the AR(1) coefficient and innovation
    scale are adjusted until curves refitted to simulated data leave residuals with the observed lag-1
    autocorrelation and variance (indirect inference). Innovations keep the observed shape.
    """
    phi_obs, var_obs = _acf1(resid), float(resid.var())
    u = resid[1:] - phi_obs * resid[:-1]
    u = u - u.mean()
    u = u / (u.std() or 1.0)
    phi = float(np.clip(phi_obs, 0.0, 0.99))
    sig = math.sqrt(max(var_obs * (1 - phi**2), 1e-12))
    for _ in range(rounds):
        acfs, vars_ = [], []
        for _ in range(reps):
            ys = fit + _ar1_noise(phi, sig * u, t.size, rng)
            res = _fit_curve(f, t, ys, [theta], bounds)
            if res is None:
                continue
            rr = ys - f(t, *res[0])
            acfs.append(_acf1(rr))
            vars_.append(float(rr.var()))
        if not acfs:
            break
        phi = float(np.clip(phi + (phi_obs - float(np.mean(acfs))), 0.0, 0.99))
        sig *= math.sqrt(var_obs / max(float(np.mean(vars_)), 1e-12))
    return phi, sig * u


@dataclass
class GrowthFit:
    """One growth curve fitted to open-store counts, with residual-bootstrap intervals.

    K is the carrying capacity (stores), r the growth rate per month, t0 the midpoint in months after
    the first period (logistic: K/2 reached; Gompertz: inflection at K/e).
    """

    model: str
    estimate: dict[str, float]
    interval: dict[str, tuple[float, float]]
    sse: float
    aic: float
    bic: float
    rmse: float
    residual_ar1: float
    noise_ar1: float
    noise_sd: float
    n_boot_ok: int
    fitted: np.ndarray = field(repr=False)
    draws: np.ndarray = field(repr=False)

    @property
    def K(self) -> float:
        return self.estimate["K"]

    @property
    def r(self) -> float:
        return self.estimate["r"]

    @property
    def t0(self) -> float:
        return self.estimate["t0"]


@dataclass
class StoreGrowthResult:
    """Growth-curve fits of open-store counts, model comparison and a store-count forecast."""

    counts: pl.DataFrame
    fits: dict[str, GrowthFit]
    best_model: str
    forecast: pl.DataFrame
    fitted: pl.DataFrame
    alpha: float
    horizon: int
    start: dt.date
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> GrowthFit:
        return self.fits[self.best_model]

    def midpoint(self, model: str | None = None) -> dt.date:
        """Calendar month of the curve's midpoint t0."""
        return _add_months(self.start, round(self.fits[model or self.best_model].t0))

    def comparison(self) -> pl.DataFrame:
        """AIC/BIC (Gaussian, on the level of store counts) and fit error per model."""
        best_aic = min(f.aic for f in self.fits.values())
        best_bic = min(f.bic for f in self.fits.values())
        return pl.DataFrame(
            [
                {
                    "model": m,
                    "aic": f.aic,
                    "bic": f.bic,
                    "delta_aic": f.aic - best_aic,
                    "delta_bic": f.bic - best_bic,
                    "rmse": f.rmse,
                    "residual_ar1": f.residual_ar1,
                    "noise_ar1": f.noise_ar1,
                    "n_boot_ok": f.n_boot_ok,
                }
                for m, f in self.fits.items()
            ]
        )

    def summary(self) -> pl.DataFrame:
        """One row per model: K, r, t0 with intervals, midpoint month, AIC, BIC, best flag."""
        rows = []
        for m, f in self.fits.items():
            row: dict[str, Any] = {"model": m}
            for p in _PARAMS:
                row[p] = f.estimate[p]
                row[f"{p}_lo"], row[f"{p}_hi"] = f.interval[p]
            row["midpoint"] = self.midpoint(m)
            row["aic"], row["bic"], row["rmse"] = f.aic, f.bic, f.rmse
            row["best"] = m == self.best_model
            rows.append(row)
        return pl.DataFrame(rows)

    def chart(self) -> alt.LayerChart:
        """Observed open stores, fitted curves and the best model's forecast with its interval."""
        obs = self.counts.select("period", value="stores_open").with_columns(series=pl.lit("observed"))
        fit = self.fitted.select("period", value="fitted", series="model")
        fc = self.forecast.filter(pl.col("model") == self.best_model)
        base = alt.Chart(obs.vstack(fit).head(MAX_CHART_ROWS)).encode(
            x=alt.X("period:T", title=None),
            y=alt.Y("value:Q", title="open stores"),
            color=alt.Color("series:N", title=None),
        )
        layers = [base.mark_line(), base.transform_filter(alt.datum.series == "observed").mark_point(size=12)]
        if fc.height:
            f = fc.select("period", "forecast", "lo", "hi").head(MAX_CHART_ROWS)
            band = alt.Chart(f).mark_area(color=BAND, opacity=0.5).encode(x="period:T", y="lo:Q", y2="hi:Q")
            line = (
                alt.Chart(f)
                .mark_line(strokeDash=[5, 3], color=PALETTE[0])
                .encode(x="period:T", y="forecast:Q")
            )
            layers = [band, *layers, line]
        lvl = int(round(100 * (1 - self.alpha)))
        return alt.layer(*layers).properties(
            title=alt.Title(
                "Open stores: growth curves and forecast",
                subtitle=f"best by AIC: {self.best_model}; shaded: {lvl}% prediction interval",
            )
        )

    def chart_flows(self) -> alt.Chart:
        """Openings and closures per month (bars), when the counts carry them."""
        if self.counts["openings"].null_count() == self.counts.height:
            raise InputError(
                "counts: no openings/closures columns (e.g. counts from a series table); use store_counts() on stores"
            )
        long = (
            self.counts.select("period", "openings", closures=-pl.col("closures"))
            .unpivot(index="period", variable_name="flow", value_name="stores")
            .drop_nulls()
        )
        return (
            alt.Chart(long.head(MAX_CHART_ROWS))
            .mark_bar()
            .encode(x=alt.X("period:T", title=None), y=alt.Y("stores:Q", title="stores"), color="flow:N")
            .properties(title="Store openings (up) and closures (down) per month")
        )

    def report(self) -> str:
        f = self.best
        lvl = int(round(100 * (1 - self.alpha)))
        K_lo, K_hi = f.interval["K"]
        obs_max = float(self.counts["stores_open"].max())
        lines = [
            f"Open stores were fitted with {', '.join(self.fits)} growth curves; {self.best_model} has the lower AIC.",
            f"Its carrying capacity is {fmt_num(f.K)} stores ({lvl}% interval {fmt_num(K_lo)}-{fmt_num(K_hi)}); "
            f"the most stores observed open at once was {fmt_num(obs_max)}.",
            f"Growth was fastest around {fmt_date(self.midpoint(), monthly=True)} "
            f"(growth rate {f.r:.3f} per month).",
        ]
        last_t = _month_no(self.counts["period"].max()) - _month_no(self.start)
        if f.t0 < 0 or f.t0 > last_t:
            lines.append(
                "That midpoint lies outside the observed months: the fast-growth phase was not observed, so the "
                "curve's shape there (and the growth rate) is an extrapolation."
            )
        if self.forecast.height:
            last = self.forecast.filter(pl.col("model") == self.best_model).tail(1).row(0, named=True)
            lines.append(
                f"Forecast for {fmt_date(last['period'], monthly=True)}: {fmt_num(last['forecast'])} stores "
                f"({lvl}% interval {fmt_num(last['lo'])}-{fmt_num(last['hi'])}). A growth curve only extrapolates "
                "the past path; licensing policy changes are not in it."
            )
        lines += self.notes
        return "\n".join(lines)


def fit_store_growth(
    counts: pl.DataFrame | pl.LazyFrame,
    models: Sequence[str] = ("logistic", "gompertz"),
    horizon: int = 24,
    alpha: float = 0.05,
    n_boot: int = 500,
    seed: int = 0,
) -> StoreGrowthResult:
    """Fit logistic/Gompertz curves to monthly open-store counts `[period, stores_open]`.

    Least squares on the count level. Intervals: residual bootstrap with autocorrelated (AR(1)) noise
    whose persistence and scale are calibrated so that refitted residuals match the observed ones
    (see `_calibrate_noise`); each replicate is refitted; percentile intervals. Forecast paths are each
    replicate's curve plus AR(1) noise that starts from the last observed gap between counts and curve.
    Models are compared by Gaussian AIC/BIC (which, like any i.i.d. likelihood, flatters models when
    residuals are autocorrelated; the comparison is between curves fitted to the same data).
    """
    df = _frame(counts, "counts")
    _need(df, ["period", "stores_open"], "counts")
    bad = [m for m in models if m not in _CURVES]
    if not models or bad:
        raise InputError(
            f"models: unknown growth model(s) {bad or list(models)}; choose from {list(_CURVES)}"
        )
    if not isinstance(horizon, int) or horizon < 0:
        raise InputError(f"horizon must be a whole number of months >= 0, got {horizon!r}")
    if not isinstance(n_boot, int) or n_boot < 20:
        raise InputError(f"n_boot must be an integer >= 20 (bootstrap replicates), got {n_boot!r}")
    _check_alpha(alpha)
    df = _to_month(df, "period", "counts").drop_nulls(["period", "stores_open"])
    df = df.sort("period").group_by("period", maintain_order=True).agg(pl.all().last())
    n = df.height
    if n < 8:
        raise InputError(f"counts: a 3-parameter growth curve needs at least 8 periods, got {n}")
    y = df["stores_open"].cast(pl.Float64).to_numpy()
    if not np.isfinite(y).all() or (y < 0).any():
        raise InputError("counts: column 'stores_open' must be finite and >= 0")
    if y.max() - y.min() <= 0:
        raise InputError("counts: column 'stores_open' never changes; a growth curve cannot be fitted")
    start = df["period"].min()
    t = (_month_index(df["period"]) - _month_no(start)).astype(float)
    span = max(t[-1] - t[0], 1.0)
    ymax = float(y.max())
    bounds = ([0.5 * ymax, 1e-4, t[0] - 3 * span], [50 * ymax + 1, 5.0, t[-1] + 5 * span])
    rng = np.random.default_rng(seed)
    tf = t[-1] + np.arange(1, horizon + 1)
    fut = [_add_months(start, int(k)) for k in tf]
    q = [alpha / 2, 1 - alpha / 2]
    fits: dict[str, GrowthFit] = {}
    fc_rows, fitted_rows, notes = [], [], []
    with _blas_single_thread():
        for m in models:
            f = _CURVES[m]
            best = _fit_curve(f, t, y, _starts(t, y, m), bounds)
            if best is None:
                raise InputError(f"counts: the {m} curve could not be fitted to 'stores_open'")
            theta, sse = best
            fit = f(t, *theta)
            resid = y - fit
            ec = resid - resid.mean()
            phi_obs = _acf1(ec)
            phi, innov = _calibrate_noise(f, t, fit, theta, bounds, ec, rng)
            draws, paths, curves = [], [], []
            for _ in range(n_boot):
                ystar = fit + _ar1_noise(phi, innov, n, rng)
                res = _fit_curve(f, t, ystar, [theta], bounds) or _fit_curve(
                    f, t, ystar, _starts(t, ystar, m), bounds
                )
                if res is None:
                    continue
                th = res[0]
                draws.append(th)
                if horizon:
                    cb = f(tf, *th)
                    gap = y[-1] - float(f(t[-1:], *th)[0])
                    eps = np.zeros(horizon)
                    prev = 0.0
                    u = rng.choice(innov, horizon, replace=True)
                    for h in range(horizon):
                        prev = phi * prev + u[h]
                        eps[h] = prev
                    paths.append(np.maximum(cb + gap * phi ** np.arange(1, horizon + 1) + eps, 0.0))
                    curves.append(cb)
            D = np.asarray(draws)
            if D.shape[0] < max(10, n_boot // 4):
                raise InputError(
                    f"counts: the {m} curve failed on most bootstrap replicates; the series is too erratic"
                )
            lo_hi = np.quantile(D, q, axis=0)
            k = 4  # K, r, t0 and the residual variance
            aic = n * math.log(sse / n) + 2 * k if sse > 0 else -math.inf
            bic = n * math.log(sse / n) + k * math.log(n) if sse > 0 else -math.inf
            fits[m] = GrowthFit(
                model=m,
                estimate=dict(zip(_PARAMS, map(float, theta), strict=True)),
                interval={p: (float(lo_hi[0, i]), float(lo_hi[1, i])) for i, p in enumerate(_PARAMS)},
                sse=sse,
                aic=aic,
                bic=bic,
                rmse=math.sqrt(sse / n),
                residual_ar1=phi_obs,
                noise_ar1=phi,
                noise_sd=float(innov.std()),
                n_boot_ok=int(D.shape[0]),
                fitted=fit,
                draws=D,
            )
            if theta[0] > 0.95 * bounds[1][0] or fits[m].interval["K"][1] > 0.95 * bounds[1][0]:
                notes.append(
                    f"{m}: the data do not pin down the capacity K (it runs into the {bounds[1][0]:,.0f}-store bound); "
                    "the series has not visibly started to level off."
                )
            fitted_rows.append(pl.DataFrame({"model": [m] * n, "period": df["period"], "fitted": fit}))
            if horizon:
                P, C = np.asarray(paths), np.asarray(curves)
                gap_hat = y[-1] - float(fit[-1])
                point = np.maximum(f(tf, *theta) + gap_hat * phi ** np.arange(1, horizon + 1), 0.0)
                pq, cq = np.quantile(P, q, axis=0), np.quantile(C, q, axis=0)
                fc_rows.append(
                    pl.DataFrame(
                        {
                            "model": [m] * horizon,
                            "period": pl.Series(fut, dtype=pl.Date),
                            "curve": f(tf, *theta),
                            "curve_lo": cq[0],
                            "curve_hi": cq[1],
                            "forecast": point,
                            "lo": pq[0],
                            "hi": pq[1],
                        }
                    )
                )
    best_model = min(fits, key=lambda k: fits[k].aic)
    forecast = (
        pl.concat(fc_rows)
        if fc_rows
        else pl.DataFrame(
            schema={
                "model": pl.String,
                "period": pl.Date,
                "curve": pl.Float64,
                "curve_lo": pl.Float64,
                "curve_hi": pl.Float64,
                "forecast": pl.Float64,
                "lo": pl.Float64,
                "hi": pl.Float64,
            }
        )
    )
    out_counts = df.select(
        "period",
        pl.col("stores_open").cast(pl.Float64),
        *[c for c in ("openings", "closures") if c in df.columns],
    )
    for c in ("openings", "closures"):
        if c not in out_counts.columns:
            out_counts = out_counts.with_columns(pl.lit(None, pl.Int64).alias(c))
    return StoreGrowthResult(
        counts=out_counts,
        fits=fits,
        best_model=best_model,
        forecast=forecast,
        fitted=pl.concat(fitted_rows),
        alpha=alpha,
        horizon=horizon,
        start=start,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------------
# 2. Demand forecast
# --------------------------------------------------------------------------------------------------

_DEMAND_MODELS = ("ets", "sarimax", "snaive", "naive")


def _pd_series(y: np.ndarray, start: dt.date):
    import pandas as pd  # statsmodels boundary

    return pd.Series(y, index=pd.date_range(start, periods=y.size, freq="MS"))


def _fc_ets(y, h, alpha, m, seasonal, start):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    s = _pd_series(y, start)
    kw = {"error": "add", "trend": "add", "damped_trend": True}
    if seasonal:
        kw |= {"seasonal": "add", "seasonal_periods": m}
    last_err: Exception | None = None
    for init in ("heuristic", "estimated"):
        try:
            res = ETSModel(s, initialization_method=init, **kw).fit(disp=False)
            sf = res.get_prediction(start=y.size, end=y.size + h - 1).summary_frame(alpha=alpha)
            out = sf["mean"].to_numpy(), sf["pi_lower"].to_numpy(), sf["pi_upper"].to_numpy()
            if all(np.isfinite(a).all() for a in out):
                return out
        except Exception as e:  # noqa: BLE001 - try the next initialisation
            last_err = e
    raise RuntimeError(f"ETS fit failed: {last_err}")


def _fc_sarimax(y, h, alpha, m, seasonal, start):
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    s = _pd_series(y, start)
    if seasonal:  # the "airline" model: robust on short monthly retail series
        mod = SARIMAX(s, order=(0, 1, 1), seasonal_order=(0, 1, 1, m))
    else:
        mod = SARIMAX(s, order=(1, 1, 0), trend="t")
    res = mod.fit(disp=False)
    sf = res.get_forecast(h).summary_frame(alpha=alpha)
    return sf["mean"].to_numpy(), sf["mean_ci_lower"].to_numpy(), sf["mean_ci_upper"].to_numpy()


def _fc_snaive(y, h, alpha, m, seasonal, start):
    z = stats.norm.ppf(1 - alpha / 2)
    if y.size <= m:
        return _fc_naive(y, h, alpha, m, seasonal, start)
    steps = np.arange(h)
    mean = y[y.size - m + (steps % m)]
    sd = float(np.std(y[m:] - y[:-m], ddof=1)) if y.size > m + 1 else 0.0
    half = z * sd * np.sqrt(steps // m + 1)
    return mean, mean - half, mean + half


def _fc_naive(y, h, alpha, m, seasonal, start):
    z = stats.norm.ppf(1 - alpha / 2)
    mean = np.full(h, y[-1])
    sd = float(np.std(np.diff(y), ddof=1)) if y.size > 2 else 0.0
    half = z * sd * np.sqrt(np.arange(1, h + 1))
    return mean, mean - half, mean + half


_FORECASTERS = {"ets": _fc_ets, "sarimax": _fc_sarimax, "snaive": _fc_snaive, "naive": _fc_naive}


@dataclass
class DemandForecast:
    """Monthly market-sales forecast of the backtest-chosen model, with all candidates' backtests.

    Models run on log sales; `forecast` is the back-transformed median and lo/hi the prediction
    interval. Backtest errors: `mape` (fraction, 0.05 = 5%) and `mase` (error / in-sample seasonal-naive
    error) per horizon, averaged over rolling origins.
    """

    chosen_model: str
    history: pl.DataFrame
    forecasts: pl.DataFrame
    backtest: pl.DataFrame
    alpha: float
    horizon: int
    seasonal: bool
    n_origins: int
    models: tuple[str, ...]
    currency: str = "CAD"

    def summary(self) -> pl.DataFrame:
        """Chosen model's forecast: period, forecast, lo, hi."""
        return self.forecasts.filter(pl.col("model") == self.chosen_model).select(
            "period", "forecast", "lo", "hi"
        )

    def backtest_error(self, model: str | None = None) -> dict[str, float]:
        """Mean MAPE and MASE over horizons for `model` (default: the chosen one)."""
        b = self.backtest.filter(pl.col("model") == (model or self.chosen_model))
        return {"mape": float(b["mape"].mean()), "mase": float(b["mase"].mean())}

    def benchmark_better(self) -> str | None:
        """Name of a naive benchmark with lower backtest MASE than the chosen model, if any."""
        mine = self.backtest_error()["mase"]
        best = None
        for b in ("snaive", "naive"):
            if b in self.models:
                continue
            v = self.backtest_error(b)["mase"]
            if math.isfinite(v) and v < mine and (best is None or v < best[1]):
                best = (b, v)
        return best[0] if best else None

    def chart(self) -> alt.LayerChart:
        """Sales history, the chosen model's forecast and its prediction interval."""
        hist = self.history.tail(MAX_CHART_ROWS - self.horizon)
        fc = self.summary()
        band = alt.Chart(fc).mark_area(color=BAND, opacity=0.5).encode(x="period:T", y="lo:Q", y2="hi:Q")
        h = (
            alt.Chart(hist)
            .mark_line(color=PALETTE[2])
            .encode(x=alt.X("period:T", title=None), y=alt.Y("sales:Q", title="monthly sales"))
        )
        f = alt.Chart(fc).mark_line(strokeDash=[5, 3], color=PALETTE[0]).encode(x="period:T", y="forecast:Q")
        lvl = int(round(100 * (1 - self.alpha)))
        err = self.backtest_error()
        return alt.layer(band, h, f).properties(
            title=alt.Title(
                "Market sales and forecast",
                subtitle=f"{self.chosen_model}; {lvl}% prediction interval; backtest MAPE {fmt_pct(err['mape'])}",
            )
        )

    def chart_backtest(self) -> alt.Chart:
        """Backtest MASE by forecast horizon, one line per model (below 1 beats seasonal naive in-sample)."""
        return (
            alt.Chart(self.backtest)
            .mark_line(point=True)
            .encode(
                x=alt.X("horizon:Q", title="months ahead"),
                y=alt.Y("mase:Q", title="MASE"),
                color=alt.Color("model:N", title=None),
            )
            .properties(title=f"Rolling-origin backtest ({self.n_origins} origins)")
        )

    def report(self) -> str:
        err = self.backtest_error()
        lvl = int(round(100 * (1 - self.alpha)))
        fc = self.summary()
        total = float(fc["forecast"].sum())
        lines = [
            f"Model chosen by rolling-origin backtest ({self.n_origins} origins, 1-{self.horizon} months ahead): "
            f"{self.chosen_model} (mean MAPE {fmt_pct(err['mape'])}, mean MASE {err['mase']:.2f}).",
            f"Forecast sales over the next {self.horizon} months: {_money(total, self.currency)}; monthly {lvl}% "
            f"prediction intervals range from {_money(float(fc['lo'].min()), self.currency)} to "
            f"{_money(float(fc['hi'].max()), self.currency)}.",
        ]
        bench = self.benchmark_better()
        if bench:
            b = self.backtest_error(bench)
            lines.append(
                f"Caution: the {bench} benchmark did better in the backtest (mean MAPE {fmt_pct(b['mape'])}); "
                "the recent past is not well described by the fitted models."
            )
        if not self.seasonal:
            lines.append("The history is too short for seasonal models; forecasts carry no seasonality.")
        return "\n".join(lines)


def forecast_demand(
    monthly_sales: pl.DataFrame | pl.LazyFrame,
    horizon: int = 12,
    alpha: float = 0.05,
    backtest_origins: int = 12,
    models: Sequence[str] = ("ets", "sarimax"),
    seasonal_periods: int = 12,
    currency: str = "CAD",
) -> DemandForecast:
    """Forecast monthly market sales `[period, sales]` with prediction intervals.

    Candidates (`models`, any of ets/sarimax/snaive/naive) are fitted on log sales. Each is backtested
    from `backtest_origins` rolling origins (the last origin leaves exactly `horizon` months to test);
    the candidate with the lowest mean MASE is chosen. Seasonal-naive and naive always appear in the
    backtest table as benchmarks. Seasonal models need >= 2 seasonal cycles + 4 months in every
    training window; otherwise all models run without seasonality.
    """
    df = _frame(monthly_sales, "monthly_sales")
    _need(df, ["period", "sales"], "monthly_sales")
    bad = [m for m in models if m not in _FORECASTERS]
    if not models or bad:
        raise InputError(
            f"models: unknown demand model(s) {bad or list(models)}; choose from {list(_FORECASTERS)}"
        )
    if not isinstance(horizon, int) or horizon < 1:
        raise InputError(f"horizon must be a whole number of months >= 1, got {horizon!r}")
    if not isinstance(backtest_origins, int) or backtest_origins < 1:
        raise InputError(f"backtest_origins must be an integer >= 1, got {backtest_origins!r}")
    _check_alpha(alpha)
    m = int(seasonal_periods)
    df = _to_month(df, "period", "monthly_sales").drop_nulls(["period"]).sort("period")
    if df.height == 0:
        raise InputError("monthly_sales: the frame is empty")
    if df["period"].n_unique() != df.height:
        raise InputError(
            "monthly_sales: more than one row per month in 'period'; aggregate first (market_sales())"
        )
    idx = _month_index(df["period"])
    gaps = np.nonzero(np.diff(idx) != 1)[0]
    if gaps.size:
        raise InputError(
            f"monthly_sales: months are missing after {df['period'][int(gaps[0])]}; the series must be gap-free"
        )
    Y = df["sales"].cast(pl.Float64).to_numpy()
    if not np.isfinite(Y).all() or (Y <= 0).any():
        raise InputError("monthly_sales: column 'sales' must be positive and finite in every month")
    n, H = Y.size, horizon
    y = np.log(Y)
    start = df["period"][0]
    min_seasonal = 2 * m + 4
    seasonal = n - H - 2 >= min_seasonal  # room for >= 3 seasonal backtest origins
    min_train = min_seasonal if seasonal else 8
    B = min(backtest_origins, n - H - min_train + 1)
    if B < 1:
        raise InputError(
            f"monthly_sales: {n} months are too few for a {H}-month backtest; need at least {min_train + H} "
            "(lower `horizon` or supply a longer series)"
        )
    # import statsmodels before silencing warnings: its modules install "always" filters on import
    import statsmodels.tsa.exponential_smoothing.ets  # noqa: F401
    import statsmodels.tsa.statespace.sarimax  # noqa: F401

    cands = list(dict.fromkeys([*models, "snaive", "naive"]))
    errs: dict[str, list[list[tuple[float, float]]]] = {c: [[] for _ in range(H)] for c in cands}
    with _blas_single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for o in range(n - H - B + 1, n - H + 1):
            train, actual = y[:o], Y[o : o + H]
            lag = m if o > m else 1
            scale = float(
                np.mean(
                    np.abs(
                        np.diff(np.exp(train), n=1)
                        if lag == 1
                        else np.exp(train[lag:]) - np.exp(train[:-lag])
                    )
                )
            )
            scale = scale if scale > 0 else float(np.mean(np.exp(train))) * 1e-6
            for c in cands:
                try:
                    mean, _, _ = _FORECASTERS[c](train, H, alpha, m, seasonal, start)
                except Exception:  # noqa: BLE001 - a failed fit counts as missing, not as a crash
                    continue
                pred = np.exp(mean)
                for h in range(H):
                    e = abs(actual[h] - pred[h])
                    errs[c][h].append((e / actual[h], e / scale))
        rows = []
        for c in cands:
            for h in range(H):
                a = np.asarray(errs[c][h]) if errs[c][h] else np.full((0, 2), np.nan)
                rows.append(
                    {
                        "model": c,
                        "horizon": h + 1,
                        "mape": float(a[:, 0].mean()) if a.size else float("nan"),
                        "mase": float(a[:, 1].mean()) if a.size else float("nan"),
                        "n_origins": int(a.shape[0]),
                    }
                )
        backtest = pl.DataFrame(rows)
        score = (
            backtest.filter(pl.col("model").is_in(list(models)))
            .group_by("model")
            .agg(mase=pl.col("mase").mean(), ok=pl.col("n_origins").min())
        )
        score = score.filter((pl.col("ok") > 0) & pl.col("mase").is_finite())
        if score.height == 0:
            raise InputError("monthly_sales: every candidate model failed in the backtest; check the series")
        order = {c: i for i, c in enumerate(models)}
        chosen = min(score.iter_rows(named=True), key=lambda r: (r["mase"], order[r["model"]]))["model"]
        future = pl.Series([_add_months(df["period"][-1], k) for k in range(1, H + 1)], dtype=pl.Date)
        fcs = []
        for c in models:
            try:
                mean, lo, hi = _FORECASTERS[c](y, H, alpha, m, seasonal, start)
            except Exception as e:  # noqa: BLE001
                if c == chosen:
                    raise InputError(
                        f"monthly_sales: the chosen model {c} failed on the full series: {e}"
                    ) from e
                continue
            fcs.append(
                pl.DataFrame(
                    {
                        "model": [c] * H,
                        "period": future,
                        "forecast": np.exp(mean),
                        "lo": np.exp(lo),
                        "hi": np.exp(hi),
                    }
                )
            )
    return DemandForecast(
        chosen_model=chosen,
        history=df.select("period", pl.col("sales").cast(pl.Float64)),
        forecasts=pl.concat(fcs),
        backtest=backtest,
        alpha=alpha,
        horizon=H,
        seasonal=seasonal,
        n_origins=B,
        models=tuple(models),
        currency=currency,
    )


# --------------------------------------------------------------------------------------------------
# Partial months (shared by saturation and cannibalization)
# --------------------------------------------------------------------------------------------------


def _flag_partial(panel: pl.DataFrame) -> pl.DataFrame:
    """Add boolean `partial`: the store may have traded only part of that month.

    With opened_on: the month of opening is always partial (monthly datasets round opening dates to the
    1st, so an exact check is not possible), and the month of closing unless closed_on is its last day.
    Otherwise an existing `partial` column is kept; failing that, each store's first and last reporting
    month is partial, except at the edges of the data, where nothing says the store was new or closing.
    """
    if "opened_on" in panel.columns:
        closed = pl.col("closed_on") if "closed_on" in panel.columns else pl.lit(None, pl.Date)
        eom = pl.col("period").dt.month_end()
        part = (pl.col("opened_on").dt.truncate("1mo") == pl.col("period")) | (
            closed.is_not_null() & (closed < eom) & (closed >= pl.col("period"))
        )
        return panel.with_columns(partial=part.fill_null(False))
    if "partial" in panel.columns:
        return panel.with_columns(pl.col("partial").fill_null(False).cast(pl.Boolean))
    p0, p1 = panel["period"].min(), panel["period"].max()
    first = pl.col("period").min().over("store_id")
    last = pl.col("period").max().over("store_id")
    part = ((pl.col("period") == first) & (first > p0)) | ((pl.col("period") == last) & (last < p1))
    return panel.with_columns(partial=part)


def _prepare_panel(data: Any, name: str) -> pl.DataFrame:
    if _is_dataset(data):
        return store_month_panel(data)
    df = _frame(data, name)
    _need(df, ["period", "store_id", "revenue"], name)
    if df.height == 0:
        raise InputError(f"{name}: the frame is empty")
    return _to_month(df, "period", name)


# --------------------------------------------------------------------------------------------------
# 3. Saturation
# --------------------------------------------------------------------------------------------------


@dataclass
class SaturationResult:
    """Sales per open store, density, demand-implied capacity and stores at risk (counts only).

    Group averages, and at-risk counts of groups, computed from fewer than `min_cell` stores are blanked
    (null) so that no single store's revenue or status can be read off a shared table (the 'All' row
    still counts them); `stores_at_risk_detail` holds store ids for internal follow-up and is never part
    of `summary()` or the charts.
    """

    breakeven_monthly_revenue: float
    trailing_months: int
    as_of: dt.date
    by: str
    min_cell: int
    over_time: pl.DataFrame
    at_risk: pl.DataFrame
    current: dict[str, float]
    capacity: pl.DataFrame | None
    density: pl.DataFrame | None
    density_slope: dict[str, float] | None
    stores_at_risk_detail: pl.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)
    currency: str = "CAD"

    @property
    def stores_at_risk(self) -> int:
        """Stores (all groups) whose trailing revenue is below break-even."""
        return int(self.at_risk.filter(pl.col("group") == "All")["stores_at_risk"][0])

    def summary(self) -> pl.DataFrame:
        """Per group (and 'All'): open stores, trailing sales per store, stores judged and at risk."""
        return self.at_risk

    def chart(self) -> alt.Chart:
        """Average monthly sales per open store over time, one line per group (largest groups first)."""
        ot = self.over_time.drop_nulls("sales_per_store")
        top = (
            ot.filter(pl.col("period") == self.as_of)
            .sort("stores_open", descending=True)["group"]
            .head(9)
            .to_list()
        )
        keep = list(dict.fromkeys(["All", *top]))
        data = (
            ot.filter(pl.col("group").is_in(keep))
            .select("period", "group", "sales_per_store")
            .head(MAX_CHART_ROWS)
        )
        rule = (
            alt.Chart(pl.DataFrame({"y": [self.breakeven_monthly_revenue]}))
            .mark_rule(strokeDash=[4, 3], color="#888")
            .encode(y="y:Q")
        )
        line = (
            alt.Chart(data)
            .mark_line()
            .encode(
                x=alt.X("period:T", title=None),
                y=alt.Y("sales_per_store:Q", title="monthly sales per open store"),
                color=alt.Color("group:N", title=self.by),
            )
        )
        return alt.layer(line, rule).properties(
            title=alt.Title(
                "Sales per open store",
                subtitle=f"dashed: break-even {_money(self.breakeven_monthly_revenue, self.currency)}/month",
            )
        )

    def chart_density(self) -> alt.Chart:
        """Stores per 10,000 residents against sales per store, one point per municipality."""
        if self.density is None:
            raise InputError("saturation: no population/municipality data, so no density chart")
        d = self.density.drop_nulls(["stores_per_10k", "sales_per_store"]).head(MAX_CHART_ROWS)
        return (
            alt.Chart(d)
            .mark_circle(opacity=0.6)
            .encode(
                x=alt.X("stores_per_10k:Q", title="stores per 10,000 residents"),
                y=alt.Y("sales_per_store:Q", title="monthly sales per store"),
                size=alt.Size("population:Q", legend=None),
                tooltip=["municipality", "stores_open", "stores_per_10k", "sales_per_store"],
            )
            .properties(title="Store density and sales per store (municipalities)")
        )

    def chart_capacity(self) -> alt.LayerChart:
        """Open stores against the number of stores forecast demand can carry at break-even."""
        if self.capacity is None:
            raise InputError("saturation: pass `forecast=` (a DemandForecast) to get demand-implied capacity")
        c = self.capacity
        band = (
            alt.Chart(c)
            .mark_area(color=BAND, opacity=0.5)
            .encode(
                x=alt.X("period:T", title=None), y=alt.Y("capacity_lo:Q", title="stores"), y2="capacity_hi:Q"
            )
        )
        cap = alt.Chart(c).mark_line(color=PALETTE[0]).encode(x="period:T", y="capacity:Q")
        cur = (
            alt.Chart(c)
            .mark_line(color=PALETTE[3], strokeDash=[5, 3])
            .encode(x="period:T", y="stores_open:Q")
        )
        return alt.layer(band, cap, cur).properties(
            title=alt.Title(
                "Demand-implied store capacity",
                subtitle="green: forecast sales / break-even; red dashed: stores open now",
            )
        )

    def report(self) -> str:
        a = self.at_risk.filter(pl.col("group") == "All").row(0, named=True)
        lines = [
            f"As of {fmt_date(self.as_of, monthly=True)}, {fmt_num(a['stores_open'])} stores were open; average sales per "
            f"store over the last {self.trailing_months} months were {_money(a['sales_per_store'], self.currency)} a month.",
            f"{fmt_num(a['stores_at_risk'])} of {fmt_num(a['stores_judged'])} stores with enough full months "
            f"({fmt_pct(a['share_at_risk'])}) averaged less than the break-even {_money(self.breakeven_monthly_revenue, self.currency)} "
            "a month. This is a screen on revenue alone; costs differ by store.",
            f"Current sales would carry about {fmt_num(self.current['capacity_now'])} stores at break-even "
            f"(oversupply {fmt_num(self.current['oversupply_now'])}).",
        ]
        if self.capacity is not None and self.capacity.height:
            last = self.capacity.tail(1).row(0, named=True)
            lines.append(
                f"Forecast demand in {fmt_date(last['period'], monthly=True)} carries {fmt_num(last['capacity'])} stores "
                f"(interval {fmt_num(last['capacity_lo'])}-{fmt_num(last['capacity_hi'])}), against {fmt_num(last['stores_open'])} open now."
            )
        if self.density_slope:
            s = self.density_slope
            lines.append(
                f"Across municipalities, 1% more stores per resident goes with {s['estimate']:+.2f}% sales per store "
                f"(interval {s['lo']:+.2f} to {s['hi']:+.2f}; an association, not a causal effect)."
            )
        return "\n".join(lines + self.notes)


def saturation(
    data: Any,
    *,
    breakeven_monthly_revenue: float,
    trailing_months: int = 6,
    forecast: DemandForecast | None = None,
    population: pl.DataFrame | pl.LazyFrame | None = None,
    by: str = "region",
    min_cell: int = 3,
    currency: str = "CAD",
) -> SaturationResult:
    """Saturation indicators from a loaded dataset or a store-month panel `[period, store_id, revenue, ...]`.

    - sales per open store per month, overall and by `by` (region or municipality);
    - stores at risk: open in the last month and averaging less than `breakeven_monthly_revenue` over
      their full (not opening/closing) months in the last `trailing_months`; stores with fewer than
      min(3, trailing_months) full months are counted as too new to judge;
    - demand-implied capacity (with `forecast`): forecast sales / break-even per future month, and the
      oversupply = stores open now - capacity, its interval from the forecast's interval;
    - density (with municipality + population): stores per 10,000 residents vs sales per store.
    """
    if (
        not isinstance(breakeven_monthly_revenue, int | float)
        or not math.isfinite(breakeven_monthly_revenue)
        or breakeven_monthly_revenue <= 0
    ):
        raise InputError(
            f"breakeven_monthly_revenue must be a positive amount per store-month, got {breakeven_monthly_revenue!r}"
        )
    if not isinstance(trailing_months, int) or trailing_months < 1:
        raise InputError(f"trailing_months must be a whole number >= 1, got {trailing_months!r}")
    if forecast is not None and not isinstance(forecast, DemandForecast):
        raise InputError(
            f"forecast must be a DemandForecast from forecast_demand(), got {type(forecast).__name__}"
        )
    if population is None and _is_dataset(data) and getattr(data, "population", None) is not None:
        population = data.population
    panel = _prepare_panel(data, "panel")
    panel = panel.filter(pl.col("revenue").is_not_null() & (pl.col("revenue") > 0))
    if panel.height == 0:
        raise InputError("panel: no store-month rows with revenue > 0")
    notes: list[str] = []
    if by not in panel.columns:
        notes.append(f"The panel has no '{by}' column; figures are for the whole market only.")
        panel = panel.with_columns(pl.lit("All").alias(by))
    whole_market = panel[by].n_unique() == 1 and panel[by][0] == "All"
    panel = _flag_partial(panel).with_columns(pl.col(by).cast(pl.String).alias("group"))
    as_of = panel["period"].max()
    win0 = _add_months(as_of, -(trailing_months - 1))

    def per_period(keys: list[str]) -> pl.DataFrame:
        return panel.group_by(keys).agg(
            stores_open=pl.col("store_id").n_unique(), sales=pl.col("revenue").sum()
        )

    ot = pl.concat(
        [
            *([per_period(["period", "group"])] if not whole_market else []),
            per_period(["period"])
            .with_columns(group=pl.lit("All"))
            .select("period", "group", "stores_open", "sales"),
        ]
    )
    over_time = ot.with_columns(
        sales_per_store=pl.when(pl.col("stores_open") >= min_cell).then(
            pl.col("sales") / pl.col("stores_open")
        )
    ).sort("group", "period")

    now = panel.filter(pl.col("period") == as_of)
    if "closed_on" in now.columns:
        now = now.filter(
            pl.col("closed_on").is_null() | (pl.col("closed_on") >= pl.col("period").dt.month_end())
        )
    open_now = now.select("store_id", "group").unique("store_id")
    need = min(3, trailing_months)
    trail = (
        panel.filter((pl.col("period") >= win0) & ~pl.col("partial"))
        .join(open_now.select("store_id"), on="store_id", how="semi")
        .group_by("store_id")
        .agg(full_months=pl.len(), mean_revenue=pl.col("revenue").mean())
    )
    detail = (
        open_now.join(trail, on="store_id", how="left")
        .with_columns(
            pl.col("full_months").fill_null(0),
            judged=pl.col("full_months").fill_null(0) >= need,
        )
        .with_columns(at_risk=pl.col("judged") & (pl.col("mean_revenue") < breakeven_monthly_revenue))
    )

    window = (
        over_time.filter(pl.col("period") >= win0)
        .group_by("group")
        .agg(_s=pl.col("sales").sum(), _n=pl.col("stores_open").sum(), _min=pl.col("stores_open").min())
    )

    def risk(d: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
        return d.group_by(keys).agg(
            stores_open=pl.len(),
            stores_judged=pl.col("judged").sum(),
            stores_at_risk=pl.col("at_risk").sum(),
            stores_too_new=(~pl.col("judged")).sum(),
        )

    at_risk = (
        pl.concat(
            [
                *([risk(detail, ["group"])] if not whole_market else []),
                risk(detail.with_columns(group=pl.lit("All")), ["group"]),
            ]
        )
        .join(window, on="group", how="left")
        .with_columns(
            sales_per_store=pl.when(pl.col("_min") >= min_cell).then(pl.col("_s") / pl.col("_n")),
            share_at_risk=pl.when(pl.col("stores_judged") >= min_cell).then(
                pl.col("stores_at_risk") / pl.col("stores_judged")
            ),
            stores_at_risk=pl.when(pl.col("stores_judged") >= min_cell).then(pl.col("stores_at_risk")),
        )
        .select(
            "group",
            pl.col("stores_open").cast(pl.Int64),
            "sales_per_store",
            pl.col("stores_judged").cast(pl.Int64),
            pl.col("stores_at_risk").cast(pl.Int64),
            "share_at_risk",
            pl.col("stores_too_new").cast(pl.Int64),
        )
        .sort(pl.col("group") == "All", "group")
    )
    n_open = int(open_now.height)
    all_win = over_time.filter((pl.col("group") == "All") & (pl.col("period") >= win0))
    trailing_sales = float(all_win["sales"].mean())
    cap_now = trailing_sales / breakeven_monthly_revenue
    current = {
        "stores_open": float(n_open),
        "trailing_monthly_sales": trailing_sales,
        "capacity_now": cap_now,
        "oversupply_now": n_open - cap_now,
    }
    capacity = None
    if forecast is not None:
        capacity = (
            forecast.summary()
            .select(
                "period",
                demand="forecast",
                demand_lo="lo",
                demand_hi="hi",
                capacity=pl.col("forecast") / breakeven_monthly_revenue,
                capacity_lo=pl.col("lo") / breakeven_monthly_revenue,
                capacity_hi=pl.col("hi") / breakeven_monthly_revenue,
            )
            .with_columns(
                stores_open=pl.lit(float(n_open)),
                oversupply=n_open - pl.col("capacity"),
                oversupply_lo=n_open - pl.col("capacity_hi"),
                oversupply_hi=n_open - pl.col("capacity_lo"),
            )
        )
        notes.append(
            "Capacity holds the store count at its current level and divides forecast sales evenly across stores."
        )
    density, slope = _density(panel, detail, population, as_of, min_cell, notes)
    return SaturationResult(
        breakeven_monthly_revenue=float(breakeven_monthly_revenue),
        trailing_months=trailing_months,
        as_of=as_of,
        by=by,
        min_cell=min_cell,
        over_time=over_time,
        at_risk=at_risk,
        current=current,
        capacity=capacity,
        density=density,
        density_slope=slope,
        stores_at_risk_detail=detail.filter(pl.col("at_risk")).select(
            "store_id", "group", "full_months", "mean_revenue"
        ),
        notes=notes,
        currency=currency,
    )


def _density(panel, detail, population, as_of, min_cell, notes):
    if population is None or "municipality" not in panel.columns:
        return None, None
    pop = _frame(population, "population")
    _need(pop, ["municipality", "year", "population"], "population")
    yr = as_of.year
    pop = (
        pop.with_columns(_d=(pl.col("year") - yr).abs() + (pl.col("year") > yr).cast(pl.Int64) * 0.5)
        .sort("_d")
        .group_by("municipality", maintain_order=True)
        .first()
        .select("municipality", "population")
    )
    muni = panel.filter(pl.col("period") == as_of).select("store_id", "municipality").unique("store_id")
    d = (
        detail.join(muni, on="store_id", how="left")
        .group_by("municipality")
        .agg(
            stores_open=pl.len(),
            _judged=pl.col("judged").sum(),
            _spm=pl.col("mean_revenue").filter(pl.col("judged")).mean(),
        )
    )
    dens = (
        pop.join(d, on="municipality", how="left")
        .with_columns(pl.col("stores_open").fill_null(0).cast(pl.Int64))
        .with_columns(stores_per_10k=pl.col("stores_open") / pl.col("population") * 1e4)
    )
    fit_df = dens.filter(
        (pl.col("_judged") > 0) & (pl.col("population") > 0) & pl.col("_spm").is_not_null()
    ).with_columns(ly=pl.col("_spm").log(), lx=pl.col("stores_per_10k").log(), _all=pl.lit(1))
    slope = None
    if fit_df.height >= 10 and fit_df["lx"].std() > 0:
        r = fe_ols(fit_df, "ly", ["lx"], fe=["_all"])
        lo, hi = r.ci("lx")
        slope = {"estimate": r.coef["lx"], "lo": lo, "hi": hi, "n_municipalities": float(fit_df.height)}
    else:
        notes.append("Too few municipalities with stores to relate density to sales per store.")
    dens = dens.with_columns(
        sales_per_store=pl.when(pl.col("_judged") >= min_cell).then(pl.col("_spm"))
    ).select("municipality", "population", "stores_open", "stores_per_10k", "sales_per_store")
    return dens.sort("municipality"), slope


# --------------------------------------------------------------------------------------------------
# 4. Cannibalization
# --------------------------------------------------------------------------------------------------


def _share_taken(b: float, c: float) -> float:
    """Fraction of an incumbent's sales lost when competitors go from c to c + 1 (positive = loss)."""
    return 1.0 - ((2.0 + c) / (1.0 + c)) ** b


@dataclass
class CannibalizationResult:
    """Elasticity of store sales to local competitors and the share of sales a new neighbour takes.

    `elasticity` is b in log(sales) = store + period effects + b * log(1 + competitors). `share_taken`
    is 1 - ((2 + c) / (1 + c))^b at the median competitor count c: the fraction of an incumbent's sales
    a new neighbour takes (negative would mean sales rise with competition).
    """

    elasticity: float
    lo: float
    hi: float
    se: float
    p_value: float
    alpha: float
    median_competitors: float
    share_taken: float
    share_taken_lo: float
    share_taken_hi: float
    nobs: int
    n_stores: int
    n_periods: int
    n_excluded_partial: int
    n_excluded_ramp: int
    period_effects: bool
    fit: FEResult = field(repr=False)
    by_distance: pl.DataFrame | None = None
    max_competitors: float = 0.0
    notes: list[str] = field(default_factory=list)

    def share_taken_at(self, c: float) -> tuple[float, float, float]:
        """(share, lo, hi) of an incumbent's sales taken when competitors go from c to c + 1."""
        return _share_taken(self.elasticity, c), _share_taken(self.hi, c), _share_taken(self.lo, c)

    def summary(self) -> pl.DataFrame:
        """Elasticity, share taken at the median competitor count and per distance band (if any)."""
        rows = [
            {"quantity": "elasticity", "estimate": self.elasticity, "lo": self.lo, "hi": self.hi},
            {
                "quantity": f"share_taken_at_c={self.median_competitors:g}",
                "estimate": self.share_taken,
                "lo": self.share_taken_lo,
                "hi": self.share_taken_hi,
            },
        ]
        if self.by_distance is not None:
            rows += [
                {
                    "quantity": f"elasticity_{r['band']}",
                    "estimate": r["estimate"],
                    "lo": r["lo"],
                    "hi": r["hi"],
                }
                for r in self.by_distance.iter_rows(named=True)
            ]
        return pl.DataFrame(rows)

    def curve(self, max_c: int | None = None) -> pl.DataFrame:
        """Share of sales taken by one more neighbour for c = 0..max_c current competitors."""
        top = int(max_c if max_c is not None else max(5, min(30, math.ceil(self.max_competitors))))
        rows = [
            dict(zip(("competitors", "share_taken", "lo", "hi"), (c, *self.share_taken_at(c)), strict=True))
            for c in range(top + 1)
        ]
        return pl.DataFrame(rows)

    def chart(self) -> alt.LayerChart:
        """Share of an incumbent's sales a new neighbour takes, by how many competitors it already has."""
        d = self.curve()
        band = (
            alt.Chart(d)
            .mark_area(color=BAND, opacity=0.5)
            .encode(
                x=alt.X("competitors:Q", title="competitors already nearby"),
                y=alt.Y("lo:Q", title="share of sales taken by one more", axis=alt.Axis(format="%")),
                y2="hi:Q",
            )
        )
        line = (
            alt.Chart(d).mark_line(point=True, color=PALETTE[0]).encode(x="competitors:Q", y="share_taken:Q")
        )
        lvl = int(round(100 * (1 - self.alpha)))
        return alt.layer(band, line).properties(
            title=alt.Title(
                "Cannibalization: sales a new neighbour takes",
                subtitle=f"elasticity {self.elasticity:.3f} [{self.lo:.3f}, {self.hi:.3f}], {lvl}% interval, store-clustered",
            )
        )

    def report(self) -> str:
        lvl = int(round(100 * (1 - self.alpha)))
        fe = (
            "store and month fixed effects"
            if self.period_effects
            else "store fixed effects only (no month effects)"
        )
        lines = [
            f"Elasticity of store sales to log(1 + competitors): {self.elasticity:.3f} ({lvl}% interval {self.lo:.3f} to {self.hi:.3f}), "
            f"from {fmt_num(self.nobs)} store-months of {fmt_num(self.n_stores)} stores with {fe}.",
            (
                f"At the median of {self.median_competitors:.0f} competitors, one more takes about "
                f"{fmt_pct(self.share_taken, 2)} of an incumbent's sales (interval {fmt_pct(self.share_taken_lo, 2)} "
                f"to {fmt_pct(self.share_taken_hi, 2)})."
                if self.share_taken >= 0
                else f"At the median of {self.median_competitors:.0f} competitors, one more goes with "
                f"{fmt_pct(-self.share_taken, 2)} HIGHER incumbent sales (interval {fmt_pct(-self.share_taken_hi, 2)} "
                f"to {fmt_pct(-self.share_taken_lo, 2)}): no cannibalization is visible."
            ),
            f"Opening and closing months ({fmt_num(self.n_excluded_partial)} store-months) were left out because they are partial.",
        ]
        return "\n".join(lines + self.notes)


def _haversine_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    dlat = la[:, None] - la[None, :]
    dlon = lo[:, None] - lo[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(la[:, None]) * np.cos(la[None, :]) * np.sin(dlon / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _distance_bands(
    present: pl.DataFrame,
    coords: pl.DataFrame,
    d: pl.DataFrame,
    bands: Sequence[float],
    fe: list[str],
    alpha: float,
) -> pl.DataFrame | None:
    """Elasticities to log(1 + competitors) counted in distance bands (any municipality)."""
    coords = coords.drop_nulls().unique("store_id").sort("store_id")
    if coords.height < 3:
        return None
    ids = coords["store_id"].to_list()
    pos = {s: i for i, s in enumerate(ids)}
    periods = present["period"].unique().sort().to_list()
    tpos = {p: i for i, p in enumerate(periods)}
    P = np.zeros((len(periods), len(ids)), dtype=np.float32)
    for p, s in present.select("period", "store_id").iter_rows():
        if s in pos:
            P[tpos[p], pos[s]] = 1.0
    D = _haversine_km(coords["lat"].to_numpy(), coords["lon"].to_numpy())
    np.fill_diagonal(D, np.inf)
    edges = [0.0, *sorted(bands)]
    names = [f"{edges[i]:g}-{edges[i + 1]:g}km" for i in range(len(edges) - 1)]
    d = d.filter(pl.col("store_id").is_in(ids))
    ti = np.array([tpos[p] for p in d["period"].to_list()])
    si = np.array([pos[s] for s in d["store_id"].to_list()])
    cols = {}
    for i in range(len(names)):
        A = ((edges[i] < D) & (edges[i + 1] >= D)).astype(np.float32)
        counts = P @ A  # (T x N): stores present in band around each store
        cols[f"_b{i}"] = np.log1p(counts[ti, si].astype(float))
    dd = d.with_columns([pl.Series(k, v) for k, v in cols.items()])
    usable = [k for k in cols if dd[k].std() > 0]
    if not usable:
        return None
    try:
        r = fe_ols(dd, "_ly", usable, fe=fe, cluster="store_id", alpha=alpha)
    except InputError:
        return None
    rows = []
    for k in usable:
        lo, hi = r.ci(k)
        rows.append({"band": names[int(k[2:])], "estimate": r.coef[k], "lo": lo, "hi": hi})
    return pl.DataFrame(rows)


def cannibalization(
    panel: Any,
    alpha: float = 0.05,
    *,
    exclude_partial: bool = True,
    period_effects: bool = True,
    ramp_months: int = 0,
    controls: Sequence[str] = (),
    stores: pl.DataFrame | pl.LazyFrame | None = None,
    distance_bands_km: Sequence[float] = (1.0, 3.0, 10.0),
) -> CannibalizationResult:
    """Elasticity of store-month revenue to log(1 + competitors), store + period fixed effects.

    `panel`: `[period, store_id, revenue, competitors]` (+ opened_on/closed_on to find partial months
    exactly, + lat/lon for distance bands), or a loaded dataset. Months a store traded only in part
    (its opening and closing months) are dropped when `exclude_partial` - their low revenue says nothing
    about competition. `ramp_months` also drops a store's first months after opening while sales build
    up. `period_effects=False` keeps store effects only: needed when competitors is a market-wide count
    (it would be absorbed by month effects), at the cost of confounding with anything else that moved
    the whole market in the same months. Errors are clustered by store.
    """
    _check_alpha(alpha)
    df = _prepare_panel(panel, "panel")
    _need(df, ["competitors", *controls], "panel")
    if not isinstance(ramp_months, int) or ramp_months < 0:
        raise InputError(f"ramp_months must be a whole number >= 0, got {ramp_months!r}")
    if stores is not None:
        st = _frame(stores, "stores")
        add = [c for c in ("opened_on", "closed_on", "lat", "lon") if c in st.columns and c not in df.columns]
        if add:
            df = df.join(st.select("store_id", *add), on="store_id", how="left")
    df = df.filter(pl.col("revenue").is_not_null() & (pl.col("revenue") > 0))
    if df.height == 0:
        raise InputError("panel: no store-month rows with revenue > 0")
    comp = df["competitors"].cast(pl.Float64)
    if comp.null_count() or not np.isfinite(comp.to_numpy()).all() or (comp < 0).any():
        raise InputError("panel: column 'competitors' must be a non-negative number in every row")
    present = df.select("period", "store_id")
    df = _flag_partial(df)
    n_part = int(df["partial"].sum()) if exclude_partial else 0
    if exclude_partial:
        df = df.filter(~pl.col("partial"))
    n_ramp = 0
    if ramp_months:
        opened = (
            pl.col("opened_on").dt.truncate("1mo")
            if "opened_on" in df.columns
            else pl.col("period").min().over("store_id")
        )
        age = (pl.col("period").dt.year() * 12 + pl.col("period").dt.month()) - (
            opened.dt.year() * 12 + opened.dt.month()
        )
        p0 = df["period"].min()
        young = (age < ramp_months) & (opened > p0) if "opened_on" not in df.columns else age < ramp_months
        n_before = df.height
        df = df.filter(~young.fill_null(False))
        n_ramp = n_before - df.height
    varying = df.group_by("store_id").agg(pl.col("competitors").n_unique() > 1)["competitors"].sum()
    if df.height == 0 or not varying:
        raise InputError(
            "panel: column 'competitors' never changes within a store over time (after dropping partial months); "
            "nothing identifies a cannibalization effect"
        )
    d = df.with_columns(_ly=pl.col("revenue").log(), _lc=pl.col("competitors").cast(pl.Float64).log1p())
    fe = ["store_id", "period"] if period_effects else ["store_id"]
    try:
        r = fe_ols(d, "_ly", ["_lc", *controls], fe=fe, cluster="store_id", alpha=alpha)
    except InputError as e:
        hint = (
            " When 'competitors' counts the whole market it moves only with the month; use period_effects=False."
            if period_effects
            else ""
        )
        raise InputError(
            f"panel: cannot estimate the competitor effect from column 'competitors': {e}.{hint}"
        ) from e
    b = r.coef["_lc"]
    lo, hi = r.ci("_lc")
    used = d["competitors"].cast(pl.Float64)
    c_med = float(used.median())
    notes = []
    if not period_effects:
        notes.append(
            "Without month effects, anything that moved the whole market alongside the store count (demand growth, "
            "price falls, a pandemic) loads onto the elasticity; read it as an association, not a causal effect."
        )
    by_dist = None
    if "lat" in d.columns and "lon" in d.columns:
        by_dist = _distance_bands(
            present, d.select("store_id", "lat", "lon"), d, distance_bands_km, fe, alpha
        )
    return CannibalizationResult(
        elasticity=b,
        lo=lo,
        hi=hi,
        se=r.se["_lc"],
        p_value=r.pvalue("_lc"),
        alpha=alpha,
        median_competitors=c_med,
        share_taken=_share_taken(b, c_med),
        share_taken_lo=_share_taken(hi, c_med),
        share_taken_hi=_share_taken(lo, c_med),
        nobs=r.nobs,
        n_stores=int(d["store_id"].n_unique()),
        n_periods=int(d["period"].n_unique()),
        n_excluded_partial=n_part,
        n_excluded_ramp=n_ramp,
        period_effects=period_effects,
        fit=r,
        by_distance=by_dist,
        max_competitors=float(used.quantile(0.95) or 0.0),
        notes=notes,
    )
