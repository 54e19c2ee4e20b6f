"""Prices: price per gram, its trend and structural breaks, demand elasticity, competition, margins.

Everything here works on sales-weighted prices (sum of revenue / sum of grams), so a period's price is
what the average gram actually sold for, not the average of shelf prices.

- `price_table`: price per gram by period and any of category / region / municipality.
- `price_trend`: log-linear trend, annual rate = exp(k * slope) - 1 where k is the number of periods per
  year (12 for monthly data), with Newey-West (HAC) errors; plus a scan for one break in the trend (sup-F
  over the interior, p-value from an AR(1) wild residual bootstrap).
- `store_period_prices`: store x period (x category) panel with local competition averaged over days.
- `price_elasticity`: log grams on log price with store and period fixed effects, store-clustered.
- `competition_price_effect`: log price on local competition with store and period fixed effects.
- `price_index` / `compression_trend`: constant-quality price index (same stores, competition held fixed)
  and the annual compression of the base price.
- `margin_squeeze`: retail minus wholesale price per gram, its share of the retail price and its trend.
- `illicit_gap`: the legal price premium over an illicit price series (StatCan context figures included).

Fixed effects are absorbed by demeaning (`analysis.panel`), never dummy columns. docs/pricing.md explains
what the numbers mean.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import altair as alt
import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats

from cannabis_market import theme
from cannabis_market.analysis.panel import demean, fe_ols
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date, fmt_num, fmt_pct

PERIODS_PER_YEAR: dict[str, float] = {
    "daily": 365.25,
    "weekly": 365.25 / 7,
    "monthly": 12.0,
    "quarterly": 4.0,
    "annual": 1.0,
}
_TRUNCATE = {"daily": "1d", "weekly": "1w", "monthly": "1mo", "quarterly": "1q", "annual": "1y"}

DEFAULT_WHOLESALE_PER_G = 4.05
"""OCS average wholesale price of dried flower in calendar 2023, CA$ per gram (excl. HST; OCS "By the
Numbers" 2023). `margin_squeeze` uses it as a flat path for every period unless a path is given."""

STATCAN_SOURCE = "Statistics Canada, The Daily 2020-01-23"
_STATCAN_LEGAL_ILLICIT = (  # quarter start, legal CA$/g, illegal CA$/g (crowdsourced, Canada)
    (dt.date(2018, 10, 1), 9.69, 6.44),
    (dt.date(2019, 4, 1), 10.65, 5.93),
    (dt.date(2019, 7, 1), 10.23, 5.59),
    (dt.date(2019, 10, 1), 10.30, 5.73),
)

MIN_TREND_PERIODS = 6
MIN_BREAK_PERIODS = 16
MIN_PANEL_STORES = 5


# ------------------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error, interval (level 1 - alpha) and two-sided p-value."""

    estimate: float
    se: float
    lo: float
    hi: float
    p_value: float

    def as_pct(self) -> Estimate:
        """The same effect on a log scale expressed as a percentage change: exp(x) - 1."""
        return Estimate(
            math.expm1(self.estimate), float("nan"), math.expm1(self.lo), math.expm1(self.hi), self.p_value
        )


def _est_from_fe(res, name: str) -> Estimate:
    lo, hi = res.ci(name)
    return Estimate(float(res.coef[name]), float(res.se[name]), float(lo), float(hi), float(res.pvalue(name)))


def _check_freq(freq: str) -> float:
    if freq not in PERIODS_PER_YEAR:
        raise InputError(f"freq must be one of {sorted(PERIODS_PER_YEAR)}, got {freq!r}")
    return PERIODS_PER_YEAR[freq]


def _require(df: pl.DataFrame, cols: Sequence[str], where: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(
            f"{where}: required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(columns found: {', '.join(df.columns) or 'none'})"
        )


def _to_frame(df: pl.DataFrame | pl.LazyFrame, where: str) -> pl.DataFrame:
    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    if not isinstance(df, pl.DataFrame):
        raise InputError(f"{where}: expected a polars DataFrame, got {type(df).__name__}")
    return df


def _as_date(df: pl.DataFrame, col: str, where: str) -> pl.DataFrame:
    """Make `col` a pl.Date (accepts Date, Datetime or ISO strings)."""
    dtype = df.schema[col]
    if dtype == pl.Date:
        return df
    if isinstance(dtype, pl.Datetime):
        return df.with_columns(pl.col(col).dt.date())
    if dtype == pl.String:
        parsed = df[col].str.to_date(strict=False)
        bad = int((parsed.is_null() & df[col].is_not_null()).sum())
        if bad:
            raise InputError(
                f"{where}: column '{col}' has {bad} value(s) that are not ISO dates (YYYY-MM-DD)"
            )
        return df.with_columns(parsed.alias(col))
    raise InputError(f"{where}: column '{col}' must hold dates (got {dtype})")


def _positive(df: pl.DataFrame, col: str, where: str, what: str = "prices") -> pl.DataFrame:
    """Drop null values of `col`; raise on non-finite, zero or negative values (with counts)."""
    df = df.with_columns(pl.col(col).cast(pl.Float64))
    n_null = int(df[col].is_null().sum())
    if n_null == df.height:
        raise InputError(f"{where}: column '{col}' is empty (all {df.height} values are null)")
    df = df.drop_nulls(col)
    bad = int((~df[col].is_finite()).sum())
    if bad:
        raise InputError(f"{where}: column '{col}' has {bad} non-finite value(s) (NaN or infinity)")
    nonpos = df.filter(pl.col(col) <= 0)
    if nonpos.height:
        ex = ", ".join(f"{v:g}" for v in nonpos[col].head(3).to_list())
        raise InputError(
            f"{where}: {what} must be > 0, but column '{col}' has {nonpos.height} zero or negative "
            f"value(s) of {df.height} (e.g. {ex})"
        )
    return df


def _with_price(df: pl.DataFrame, where: str, need_grams: bool = True) -> tuple[pl.DataFrame, dict[str, int]]:
    """Add `price_per_g` = revenue / grams after checking the inputs; returns (frame, dropped-row counts).

    Rows with null grams (not reported) are dropped; rows with no sales at all (revenue = 0 and grams = 0)
    are dropped as they carry no price. Anything else that would give a zero, negative or undefined price
    is an InputError naming the rule and the count.
    """
    notes: dict[str, int] = {}
    if "grams" not in df.columns and not need_grams and "price_per_g" in df.columns:
        return _positive(df, "price_per_g", where), notes
    _require(df, ["revenue", "grams"], where)
    df = df.with_columns(pl.col("revenue").cast(pl.Float64), pl.col("grams").cast(pl.Float64))
    n_null = int(df["grams"].is_null().sum())
    if df.height == 0:
        raise InputError(f"{where}: no rows")
    if n_null == df.height:
        raise InputError(
            f"{where}: column 'grams' is empty (all {df.height} values are null); price per gram needs grams sold"
        )
    if n_null:
        notes["null_grams"] = n_null
        df = df.drop_nulls("grams")
    n_rev_null = int(df["revenue"].is_null().sum())
    if n_rev_null:
        notes["null_revenue"] = n_rev_null
        df = df.drop_nulls("revenue")
    no_sales = (pl.col("revenue") == 0) & (pl.col("grams") == 0)
    n_none = int(df.select(no_sales.sum()).item())
    if n_none:
        notes["no_sales"] = n_none
        df = df.filter(~no_sales)
    bad_g = df.filter(pl.col("grams") <= 0)
    if bad_g.height:
        raise InputError(
            f"{where}: column 'grams' must be > 0 where a price per gram is computed; "
            f"{bad_g.height} row(s) of {df.height} have grams <= 0 (with revenue != 0)"
        )
    bad_r = df.filter(pl.col("revenue") <= 0)
    if bad_r.height:
        raise InputError(
            f"{where}: zero or negative price per gram: {bad_r.height} row(s) of {df.height} have "
            "revenue <= 0 with grams > 0 (column 'revenue' must be > 0)"
        )
    bad_f = df.filter(~pl.col("revenue").is_finite() | ~pl.col("grams").is_finite())
    if bad_f.height:
        raise InputError(f"{where}: {bad_f.height} row(s) with non-finite revenue or grams")
    return df.with_columns(price_per_g=pl.col("revenue") / pl.col("grams")), notes


def _time_index(periods: pl.Series, freq: str) -> np.ndarray:
    """Time in periods since the first one: months for monthly data (day of month ignored), etc."""
    if freq in ("monthly", "quarterly"):
        months = (periods.dt.year().cast(pl.Int64) * 12 + periods.dt.month().cast(pl.Int64)).to_numpy()
        t = (months - months.min()).astype(float)
        return t / 3.0 if freq == "quarterly" else t
    if freq == "annual":
        y = periods.dt.year().cast(pl.Int64).to_numpy()
        return (y - y.min()).astype(float)
    days = periods.cast(pl.Int64).to_numpy().astype(float)
    days = days - days.min()
    return days / 7.0 if freq == "weekly" else days


def _nw_lags(n: int) -> int:
    """Newey-West (1994) rule of thumb: floor(4 (n/100)^(2/9)), at least 1."""
    return max(1, int(math.floor(4 * (n / 100.0) ** (2.0 / 9.0))))


HAC_METHODS = ("prewhitened", "nw")


@dataclass
class _Fit:
    params: np.ndarray
    bse: np.ndarray
    df_resid: int
    fittedvalues: np.ndarray
    resid: np.ndarray
    ar1: float


def _bartlett_sum(h: np.ndarray, lags: int) -> np.ndarray:
    """Newey-West sum of score outer products with Bartlett weights 1 - j / (lags + 1)."""
    s = h.T @ h
    for j in range(1, min(lags, h.shape[0] - 1) + 1):
        g = h[j:].T @ h[:-j]
        s += (1 - j / (lags + 1)) * (g + g.T)
    return s


def _hac_ols(y: np.ndarray, X: np.ndarray, maxlags: int, hac: str = "prewhitened") -> _Fit:
    """OLS with autocorrelation-robust standard errors.

    "nw": statsmodels' Newey-West HAC (`cov_type="HAC"`, Bartlett kernel, small-sample correction).
    "prewhitened" (default): the same Newey-West estimator applied to AR(1)-prewhitened scores and
    recoloured by 1 / (1 - phi)^2 (Andrews & Monahan 1992), with phi bias-corrected for the short,
    detrended sample (phi + (2 + 4 phi) / n). Price series are strongly autocorrelated; in simulations of
    54-72 monthly points with AR(1) noise (phi 0.5-0.8) plain NW intervals covered the true slope only
    70-85% of the time at a nominal 95%, the prewhitened ones about 92-94%.
    """
    n, k = X.shape
    ols = sm.OLS(y, X)
    if hac == "nw":
        r = ols.fit(cov_type="HAC", cov_kwds={"maxlags": maxlags, "use_correction": True}, use_t=True)
        return _Fit(
            np.asarray(r.params),
            np.asarray(r.bse),
            n - k,
            np.asarray(r.fittedvalues),
            np.asarray(r.resid),
            float("nan"),
        )
    if hac != "prewhitened":
        raise InputError(f"hac must be one of {HAC_METHODS}, got {hac!r}")
    r = ols.fit()
    u = np.asarray(r.resid)
    denom = float(u[:-1] @ u[:-1])
    phi = float(u[1:] @ u[:-1]) / denom if denom > 0 else 0.0
    phi = float(np.clip(phi + (2 + 4 * phi) / n, -0.97, 0.97))
    h = X * u[:, None]
    e = h[1:] - phi * h[:-1]
    s = _bartlett_sum(e, maxlags) * (n / (n - 1)) / (1 - phi) ** 2
    xtx_inv = np.linalg.inv(X.T @ X)
    vcov = xtx_inv @ s @ xtx_inv * n / (n - k)
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    return _Fit(np.asarray(r.params), se, n - k, np.asarray(r.fittedvalues), u, phi)


def _coef_est(res: _Fit, i: int, alpha: float) -> Estimate:
    b, se = float(res.params[i]), float(res.bse[i])
    q = stats.t.ppf(1 - alpha / 2, max(res.df_resid, 1))
    p = float(2 * stats.t.sf(abs(b / se), max(res.df_resid, 1))) if se > 0 else 0.0
    return Estimate(b, se, b - q * se, b + q * se, p)


def _annual(e: Estimate, k: float) -> Estimate:
    """Per-period log slope -> annual percentage change exp(k * slope) - 1 (monotone, so the interval maps)."""
    return Estimate(
        math.expm1(k * e.estimate), k * e.se, math.expm1(k * e.lo), math.expm1(k * e.hi), e.p_value
    )


# --------------------------------------------------------------------------------- price per gram


def price_table(
    sales: pl.DataFrame | pl.LazyFrame,
    by: Sequence[str] = ("category",),
    stores: pl.DataFrame | pl.LazyFrame | None = None,
    freq: str = "monthly",
) -> pl.DataFrame:
    """Sales-weighted price per gram (sum revenue / sum grams) by period and the columns in `by`.

    `sales` has date, store_id, revenue, grams (and category). Columns of `by` that are not in sales
    (region, municipality, chain) are joined from `stores`. Rows with null grams are left out; rows with no
    sales are dropped. Returns period, *by, revenue, grams, price_per_g sorted by period.
    """
    where = "price_table"
    _check_freq(freq)
    df = _to_frame(sales, where)
    _require(df, ["date"], where)
    by = list(by)
    extra = [c for c in by if c not in df.columns]
    if extra:
        if stores is None:
            raise InputError(f"{where}: column(s) {extra} are not in sales; pass `stores` to join them")
        st = _to_frame(stores, where)
        _require(st, ["store_id", *extra], f"{where} (stores)")
        _require(df, ["store_id"], where)
        df = df.join(st.select("store_id", *extra), on="store_id", how="left")
    df, _ = _with_price(df, where)
    df = _as_date(df, "date", where)
    out = (
        df.with_columns(period=pl.col("date").dt.truncate(_TRUNCATE[freq]))
        .group_by(["period", *by])
        .agg(pl.col("revenue").sum(), pl.col("grams").sum())
        .with_columns(price_per_g=pl.col("revenue") / pl.col("grams"))
        .sort(["period", *by])
    )
    return out


# ---------------------------------------------------------------------------------------- trend


@dataclass
class BreakResult:
    """The single most likely change in the trend rate, with a bootstrap p-value for 'no break'."""

    date: dt.date
    index: int
    f_stat: float
    p_value: float
    n_boot: int
    before: Estimate  # annual rate before the break
    after: Estimate  # annual rate from the break on
    ar1: float
    scan: pl.DataFrame  # period, f_stat over the candidate dates


@dataclass
class PriceTrendResult:
    """Log-linear price trend: annual rate exp(k * slope) - 1 with a HAC interval, plus one break."""

    freq: str
    alpha: float
    n: int
    start: dt.date
    end: dt.date
    slope: Estimate  # per-period slope of log price
    annual: Estimate  # annual percentage change (negative = compression)
    maxlags: int
    hac: str
    fitted: pl.DataFrame  # period, price_per_g, trend (and segmented when a break was scanned)
    brk: BreakResult | None = None
    break_note: str = ""
    n_dropped: int = 0
    label: str = "price per gram"
    resid_ar1: float = float("nan")  # first-order autocorrelation of the residuals around the single trend
    extra_note: str = ""

    @property
    def annual_rate(self) -> float:
        return self.annual.estimate

    @property
    def compression(self) -> float:
        """Annual price compression as a positive number when prices fall (minus the annual rate)."""
        return -self.annual.estimate

    def summary(self) -> pl.DataFrame:
        """One row per estimated rate (overall, and before/after the break) plus the break test."""
        rows = [
            {
                "measure": "annual_rate",
                "estimate": self.annual.estimate,
                "lo": self.annual.lo,
                "hi": self.annual.hi,
                "p_value": self.annual.p_value,
                "start": self.start,
                "end": self.end,
                "n": self.n,
            },
        ]
        if self.brk is not None:
            b = self.brk
            last_before = self.fitted["period"][b.index - 1]
            rows += [
                {
                    "measure": "annual_rate_before_break",
                    "estimate": b.before.estimate,
                    "lo": b.before.lo,
                    "hi": b.before.hi,
                    "p_value": b.before.p_value,
                    "start": self.start,
                    "end": last_before,
                    "n": b.index,
                },
                {
                    "measure": "annual_rate_after_break",
                    "estimate": b.after.estimate,
                    "lo": b.after.lo,
                    "hi": b.after.hi,
                    "p_value": b.after.p_value,
                    "start": b.date,
                    "end": self.end,
                    "n": self.n - b.index,
                },
                {
                    "measure": "break_sup_f",
                    "estimate": b.f_stat,
                    "lo": None,
                    "hi": None,
                    "p_value": b.p_value,
                    "start": b.date,
                    "end": b.date,
                    "n": self.n,
                },
            ]
        return pl.DataFrame(
            rows,
            schema={
                "measure": pl.String,
                "estimate": pl.Float64,
                "lo": pl.Float64,
                "hi": pl.Float64,
                "p_value": pl.Float64,
                "start": pl.Date,
                "end": pl.Date,
                "n": pl.Int64,
            },
        )

    def report(self) -> str:
        monthly = self.freq in ("monthly", "quarterly", "annual")
        lvl = f"{1 - self.alpha:.0%}"
        a = self.annual
        direction = "fell" if a.estimate < 0 else "rose"
        txt = (
            f"From {fmt_date(self.start, monthly)} to {fmt_date(self.end, monthly)} ({self.n} {self.freq} "
            f"observations) the {self.label} {direction} by {fmt_pct(abs(a.estimate))} a year on a log-linear "
            f"trend ({lvl} interval {fmt_pct(a.lo, signed=True)} to {fmt_pct(a.hi, signed=True)}; "
            f"Newey-West errors with {self.maxlags} lag(s)"
            f"{', AR(1)-prewhitened' if self.hac == 'prewhitened' else ''})."
        )
        if self.brk is not None:
            b = self.brk
            verdict = (
                "the change in the trend is statistically detectable (compare the two rates for its size)"
                if b.p_value < self.alpha
                else "this is within what noise alone produces, so a break is not established"
            )
            txt += (
                f" The best single break is at {fmt_date(b.date, monthly)}: {fmt_pct(b.before.estimate, signed=True)}"
                f" a year before ({fmt_pct(b.before.lo, signed=True)} to {fmt_pct(b.before.hi, signed=True)}) and "
                f"{fmt_pct(b.after.estimate, signed=True)} after ({fmt_pct(b.after.lo, signed=True)} to "
                f"{fmt_pct(b.after.hi, signed=True)}); sup-F {b.f_stat:.1f}, bootstrap p = {b.p_value:.3f} — "
                f"{verdict}. Intervals around the break are conditional on the break date."
            )
        elif self.break_note:
            txt += f" {self.break_note}"
        if self.extra_note:
            txt += f" {self.extra_note}"
        if self.resid_ar1 >= 0.9:
            txt += (
                f" The deviations from the single trend are very persistent (first-order autocorrelation "
                f"{self.resid_ar1:.2f}): one straight line describes this series poorly, which is why its interval "
                "is wide; the rates on either side of the break are the better summary."
            )
        return txt

    def chart(self) -> alt.LayerChart:
        """Observed price per gram with the overall trend and (if scanned) the two-segment fit."""
        f = self.fitted
        if f.height > 1600:  # daily input: show monthly means, the fits are smooth anyway
            f = f.group_by(pl.col("period").dt.truncate("1mo")).mean().sort("period")
        value_cols = [c for c in ("price_per_g", "trend", "segmented") if c in f.columns]
        names = {"price_per_g": "observed", "trend": "log-linear trend", "segmented": "trend with one break"}
        shown = [names[c] for c in value_cols]
        dashes = {"observed": [1, 0], "log-linear trend": [6, 4], "trend with one break": [2, 2]}
        long = f.unpivot(
            index="period", on=value_cols, variable_name="series", value_name="value"
        ).with_columns(pl.col("series").replace_strict(names))
        cut = self.brk.date if self.brk is not None else None
        long = long.with_columns(  # draw the two segments of the break fit as separate lines
            part=pl.when((pl.col("series") == "trend with one break") & (pl.col("period") >= cut))
            .then(pl.lit("after"))
            .otherwise(pl.lit("before"))
            if cut is not None
            else pl.lit("before")
        )
        lo, hi = float(long["value"].min()), float(long["value"].max())
        base = alt.Chart(long).encode(
            x=alt.X("period:T", title=None),
            y=alt.Y(
                "value:Q",
                title=f"{self.label} (log scale)",
                scale=alt.Scale(type="log", domain=[lo * 0.95, hi * 1.05], nice=False),
            ),
            color=alt.Color("series:N", title=None, sort=shown, legend=alt.Legend(orient="bottom")),
            strokeDash=alt.StrokeDash(
                "series:N", scale=alt.Scale(domain=shown, range=[dashes[n] for n in shown]), legend=None
            ),
            detail="part:N",
        )
        layers = [base.mark_line()]
        subtitle = (
            f"{1 - self.alpha:.0%} interval {fmt_pct(self.annual.lo, signed=True)} to "
            f"{fmt_pct(self.annual.hi, signed=True)}"
        )
        if self.brk is not None:
            b = self.brk
            rule = pl.DataFrame({"period": [b.date]})
            layers.append(alt.Chart(rule).mark_rule(color="#888", strokeDash=[2, 2]).encode(x="period:T"))
            subtitle += (
                f"; break {fmt_date(b.date, True)} (p = {b.p_value:.3f}): "
                f"{fmt_pct(b.before.estimate, signed=True)} a year before, "
                f"{fmt_pct(b.after.estimate, signed=True)} after"
            )
        title = alt.Title(
            f"{self.label.capitalize()}: {fmt_pct(self.annual.estimate, signed=True)} a year",
            subtitle=subtitle,
        )
        return alt.layer(*layers).properties(title=title)


def _segment_design(t: np.ndarray, k: int) -> np.ndarray:
    """Columns: before-intercept, before-slope, after-intercept, after-slope (break at index k)."""
    d = (np.arange(t.size) >= k).astype(float)
    return np.column_stack([1 - d, (1 - d) * t, d, d * t])


def _sup_f(Y: np.ndarray, q0: np.ndarray, qs: np.ndarray, n: int) -> np.ndarray:
    """Chow F statistics (2 restrictions: level and slope change) for each candidate, columns of Y."""
    yy = (Y**2).sum(axis=0)
    ssr0 = yy - ((q0.T @ Y) ** 2).sum(axis=0)
    proj = np.einsum("cnk,nb->ckb", qs, Y)
    ssr = yy[None, :] - (proj**2).sum(axis=1)
    ssr = np.maximum(ssr, 1e-300)
    return ((ssr0[None, :] - ssr) / 2.0) / (ssr / (n - 4))


def _scan_break(
    y: np.ndarray,
    t: np.ndarray,
    periods: pl.Series,
    alpha: float,
    k_year: float,
    maxlags: int,
    trim: float,
    n_boot: int,
    seed: int,
    hac: str,
    sw: np.ndarray,
    max_candidates: int = 200,
) -> BreakResult:
    """Scan break dates; `sw` are square-root weights (ones for OLS) applied to y and every design."""
    n = y.size
    y = y * sw
    lo = max(int(math.ceil(trim * n)), 4)
    hi = n - lo
    cands = np.arange(lo, hi + 1)
    if cands.size > max_candidates:
        cands = np.unique(np.linspace(lo, hi, max_candidates).round().astype(int))
    ts = (t - t.mean()) / (t.std() or 1.0)
    q0, _ = np.linalg.qr(np.column_stack([np.ones(n), ts]) * sw[:, None])
    qs = np.stack([np.linalg.qr(_segment_design(ts, k) * sw[:, None])[0] for k in cands])
    f_obs = _sup_f(y[:, None], q0, qs, n)[:, 0]
    best = int(np.argmax(f_obs))
    k = int(cands[best])
    res = _hac_ols(y, _segment_design(t, k) * sw[:, None], maxlags, hac)
    # AR(1) residual bootstrap of the sup-F under the null of one unbroken trend. F is invariant to the
    # trend itself, so the bootstrap series are pure AR(1) noise, with the AR coefficient and innovations
    # taken from the single-trend residuals (in simulations this kept the rejection rate near 5% with
    # AR(1) noise of 0.3-0.85; residuals of the fitted break model understate persistence and over-reject).
    X0 = np.column_stack([np.ones(n), t]) * sw[:, None]
    u = y - X0 @ np.linalg.lstsq(X0, y, rcond=None)[0]
    phi = float(np.clip((u[1:] @ u[:-1]) / max(u[:-1] @ u[:-1], 1e-300), -0.97, 0.97))
    e = u[1:] - phi * u[:-1]
    rng = np.random.default_rng(seed)
    # wild (Rademacher) signs keep each innovation at its own date, so a series that is noisier in some
    # stretches (e.g. early months priced from a handful of stores) keeps that pattern in the bootstrap
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n, n_boot))
    ustar = np.empty((n, n_boot))
    ustar[0] = u[0] * signs[0]
    for i in range(1, n):
        ustar[i] = phi * ustar[i - 1] + e[i - 1] * signs[i]
    f_boot = _sup_f(ustar, q0, qs, n).max(axis=0)
    p = float((1 + np.sum(f_boot >= f_obs[best])) / (n_boot + 1))
    before = _annual(_coef_est(res, 1, alpha), k_year)
    after = _annual(_coef_est(res, 3, alpha), k_year)
    scan = pl.DataFrame({"period": periods.gather(cands), "f_stat": f_obs})
    return BreakResult(
        date=periods[k],
        index=k,
        f_stat=float(f_obs[best]),
        p_value=p,
        n_boot=n_boot,
        before=before,
        after=after,
        ar1=phi,
        scan=scan,
    )


def price_trend(
    prices: pl.DataFrame,
    alpha: float = 0.05,
    freq: str = "monthly",
    *,
    price_col: str = "price_per_g",
    breaks: bool = True,
    maxlags: int | None = None,
    trim: float = 0.15,
    n_boot: int = 499,
    seed: int = 0,
    hac: str = "prewhitened",
    weights: str | None = None,
    label: str = "price per gram",
) -> PriceTrendResult:
    """Annualized trend of a price series, with a HAC interval and a scan for one break in the trend.

    Fits log(price) = a + b * t by OLS, t in periods (months for monthly data), with Newey-West (HAC)
    errors (`maxlags` default floor(4 (n/100)^(2/9)); `hac="prewhitened"` (default) applies them to
    AR(1)-prewhitened scores, `hac="nw"` is plain statsmodels `cov_type="HAC"`). Interval: t quantiles with
    n - 2 degrees of freedom. Annual rate = exp(k * b) - 1, k = periods per year (12 monthly, 4 quarterly,
    365.25 daily); negative means prices are compressing. Null prices are dropped (counted in n_dropped).

    Break: for every candidate date in the middle (1 - 2 * trim) of the sample, a two-segment trend
    (own level and slope before and after) is compared with the single trend by a Chow F statistic; the
    largest (sup-F) picks the break date. Its p-value comes from `n_boot` bootstrap series of AR(1) noise
    fitted to the residuals, so autocorrelated prices do not produce spurious breaks (the textbook
    Andrews critical values assume independent errors). Before/after rates get HAC intervals that are
    conditional on the chosen date.

    `weights` names a column of positive weights (e.g. the number of stores behind each period's price) for
    weighted least squares: periods priced from a handful of stores are noisier and should count less.
    """
    where = "price_trend"
    k_year = _check_freq(freq)
    if not 0 < alpha < 1:
        raise InputError(f"{where}: alpha must be in (0, 1), got {alpha}")
    df = _to_frame(prices, where)
    _require(df, ["period", price_col, *([weights] if weights else [])], where)
    df = _as_date(df.select("period", price_col, *([weights] if weights else [])), "period", where)
    n_in = df.height
    df = _positive(df, price_col, where)
    if weights:
        df = _positive(df, weights, where, what="weights")
    n_dropped = n_in - df.height
    df = df.drop_nulls("period").sort("period")
    dup = df.filter(pl.col("period").is_duplicated())
    if dup.height:
        raise InputError(
            f"{where}: {dup['period'].n_unique()} period(s) appear more than once (e.g. {dup['period'][0]}); "
            "pass one price per period (filter a category/region first, or aggregate with price_table)"
        )
    n = df.height
    if n < 2:
        raise InputError(
            f"{where}: single-period data ({n} period with a price); a trend needs several periods"
        )
    if n < MIN_TREND_PERIODS:
        raise InputError(
            f"{where}: too few observations: {n} periods with a price; the trend needs at least {MIN_TREND_PERIODS}"
        )
    periods = df["period"]
    t = _time_index(periods, freq)
    y = np.log(df[price_col].to_numpy())
    lags = maxlags if maxlags is not None else _nw_lags(n)
    w = df[weights].to_numpy() if weights else np.ones(n)
    sw = np.sqrt(w / w.mean())
    X = np.column_stack([np.ones(n), t])
    res = _hac_ols(y * sw, X * sw[:, None], lags, hac)
    slope = _coef_est(res, 1, alpha)
    u = res.resid
    ar1 = float(u[1:] @ u[:-1] / (u[:-1] @ u[:-1])) if float(u[:-1] @ u[:-1]) > 0 else 0.0
    fitted = pl.DataFrame({"period": periods, "price_per_g": df[price_col], "trend": np.exp(X @ res.params)})
    brk, note = None, ""
    if breaks:
        if n >= MIN_BREAK_PERIODS:
            brk = _scan_break(y, t, periods, alpha, k_year, lags, trim, n_boot, seed, hac, sw)
            Xs = _segment_design(t, brk.index)
            seg = _hac_ols(y * sw, Xs * sw[:, None], lags, hac)
            fitted = fitted.with_columns(segmented=pl.Series(np.exp(Xs @ seg.params)))
        else:
            note = f"No break was scanned: {n} periods is too short (need {MIN_BREAK_PERIODS})."
    return PriceTrendResult(
        freq=freq,
        alpha=alpha,
        n=n,
        start=periods[0],
        end=periods[-1],
        slope=slope,
        annual=_annual(slope, k_year),
        maxlags=lags,
        hac=hac,
        resid_ar1=ar1,
        fitted=fitted,
        brk=brk,
        break_note=note,
        n_dropped=n_dropped,
        label=label,
    )


# ---------------------------------------------------------------------------------- elasticity


def _panel_prep(
    panel: pl.DataFrame | pl.LazyFrame, where: str, need_grams: bool = True, exclude_partial: bool = True
):
    """Validate a store-period panel, add price_per_g / log_p and the fixed-effect keys.

    Rows flagged `partial` (a store's opening or closing period: not a full period of trading) are dropped
    when `exclude_partial`; their competitor counts and volumes describe only part of the period.
    """
    df = _to_frame(panel, where)
    _require(df, ["period", "store_id"], where)
    n_partial = 0
    if exclude_partial and "partial" in df.columns:
        n_partial = int(df["partial"].fill_null(False).sum())
        df = df.filter(~pl.col("partial").fill_null(False))
    df, notes = _with_price(df, where, need_grams=need_grams)
    if n_partial:
        notes = {"partial_periods": n_partial, **notes}
    n_periods = df["period"].n_unique()
    if n_periods < 2:
        raise InputError(
            f"{where}: single-period data (1 period, {df.height} rows): with period fixed effects nothing "
            "identifies the effect; it needs prices observed over several periods"
        )
    n_stores = df["store_id"].n_unique()
    if n_stores < MIN_PANEL_STORES or df.height < 20:
        raise InputError(
            f"{where}: too few observations ({df.height} rows, {n_stores} stores); need at least "
            f"{MIN_PANEL_STORES} stores and 20 store-period rows"
        )
    has_cat = "category" in df.columns and df["category"].n_unique() > 1
    if has_cat:
        df = df.with_columns(
            _unit=pl.concat_str(
                [pl.col("store_id").cast(pl.String), pl.col("category").cast(pl.String)], separator="|"
            ),
            _time=pl.concat_str(
                [pl.col("period").cast(pl.String), pl.col("category").cast(pl.String)], separator="|"
            ),
        )
    else:
        df = df.with_columns(_unit=pl.col("store_id").cast(pl.String), _time=pl.col("period").cast(pl.String))
    return df.with_columns(log_p=pl.col("price_per_g").log(), _all=pl.lit(1)), notes, has_cat


def _binned(
    df: pl.DataFrame, x: str, y: str, fe: Sequence[str], controls: Sequence[str] = (), bins: int = 20
) -> pl.DataFrame:
    """Within (fixed-effects demeaned, controls partialled out) x and y averaged in quantile bins of x.

    By Frisch-Waugh-Lovell the slope through these points is the fixed-effects coefficient on x.
    """
    cols = [x, y, *controls]
    w = demean(df.drop_nulls(cols), cols, fe)
    if controls:
        C = w.select(controls).to_numpy()
        for c in (x, y):
            v = w[c].to_numpy()
            w = w.with_columns(pl.Series(c, v - C @ np.linalg.lstsq(C, v, rcond=None)[0]))
    return (
        w.with_columns(bin=(pl.col(x).rank("ordinal") - 1).floordiv(math.ceil(w.height / bins)))
        .group_by("bin")
        .agg(pl.col(x).mean(), pl.col(y).mean(), pl.len().alias("n"))
        .sort(x)
    )


@dataclass
class ElasticityResult:
    """Own-price elasticity of grams sold, from within-store price changes (store + period effects)."""

    elasticity: Estimate
    alpha: float
    nobs: int
    n_stores: int
    n_periods: int
    fe: tuple[str, ...]
    r2_within: float
    pooled: Estimate  # no fixed effects: all variation, across and within stores
    between: Estimate  # cross-section of store averages
    by_category: dict[str, Estimate] = field(default_factory=dict)
    binned: pl.DataFrame | None = None
    notes: dict[str, int] = field(default_factory=dict)
    controls: tuple[str, ...] = ()

    @property
    def estimate(self) -> float:
        return self.elasticity.estimate

    @property
    def lo(self) -> float:
        return self.elasticity.lo

    @property
    def hi(self) -> float:
        return self.elasticity.hi

    def summary(self) -> pl.DataFrame:
        """Fixed-effects estimate first, then the biased comparisons and any per-category estimates."""
        rows = [
            ("store + period fixed effects", "all", self.elasticity),
            ("pooled OLS, no fixed effects", "all", self.pooled),
            ("between stores (cross-section of averages)", "all", self.between),
            *[("store + period fixed effects", c, e) for c, e in self.by_category.items()],
        ]
        return pl.DataFrame(
            [
                {
                    "model": m,
                    "category": c,
                    "elasticity": e.estimate,
                    "std_error": e.se,
                    "lo": e.lo,
                    "hi": e.hi,
                    "p_value": e.p_value,
                }
                for m, c, e in rows
            ]
        )

    def report(self) -> str:
        e = self.elasticity
        lvl = f"{1 - self.alpha:.0%}"
        txt = (
            f"Price elasticity of demand: {e.estimate:.2f} ({lvl} interval {e.lo:.2f} to {e.hi:.2f}; "
            f"{fmt_num(self.nobs)} store-period rows, {self.n_stores} stores, {self.n_periods} periods, errors "
            f"clustered by store). A 1% higher price goes with about {abs(e.estimate):.2f}% "
            f"{'fewer' if e.estimate < 0 else 'more'} grams sold.\n"
            "What identifies it: only within-store variation — each store's price deviations over time from its "
            "own average, net of the market-wide swings that hit every store in the same period (period fixed "
            "effects"
            + (", by category" if "category" in self.fe[0] else "")
            + "). Permanent differences between stores (location, size, clientele) are removed by the store "
            "effects, so they cannot masquerade as a price response."
            + (
                " It also holds local competition fixed (log(1 + competitors)): a new store nearby moves both a "
                "store's price and its sales, which would otherwise be read as a price response."
                if "log1p_competitors" in self.controls
                else ""
            )
            + " It is causal only if those within-store price changes are not themselves reactions to "
            "store-specific demand shocks.\n"
            "Why a plain cross-sectional regression is biased: prices are set in response to demand. Busy stores "
            "in good locations can charge more and still sell more, so across stores price and quantity move "
            "together through unobserved store quality and location (simultaneity and omitted-variable bias), "
            "which pulls the slope toward zero or even above it; other fixed differences (pricier products "
            "selling fewer grams) can push it the other way. Either way the cross-section does not measure how "
            f"buyers respond to a price change. Here the pooled regression without fixed effects gives "
            f"{self.pooled.estimate:.2f} and the between-store cross-section {self.between.estimate:.2f}.\n"
            "Published estimates for context: about -0.4 to -1.8 (British Columbia regulated market -1.4; "
            "surveys -1.84; pre-legalization -0.42 to -0.60)."
        )
        if self.notes:
            txt += (
                "\nLeft out: "
                + ", ".join(f"{v} row(s) {k.replace('_', ' ')}" for k, v in self.notes.items())
                + "."
            )
        return txt

    def chart(self) -> alt.LayerChart:
        """Binned within-store log grams against log price, with the fitted elasticity line."""
        b = self.binned if self.binned is not None else pl.DataFrame({"log_p": [], "log_q": []})
        pts = (
            alt.Chart(b)
            .mark_point(filled=True, size=50)
            .encode(
                x=alt.X(
                    "log_p:Q",
                    title="log price per gram, within store (deviation from store and period means)",
                ),
                y=alt.Y("log_q:Q", title="log grams, within store"),
                tooltip=["n:Q"],
            )
        )
        xs = b["log_p"] if b.height else pl.Series([0.0])
        line_df = pl.DataFrame({"log_p": [float(xs.min()), float(xs.max())]}).with_columns(
            log_q=pl.col("log_p") * self.elasticity.estimate
        )
        line = alt.Chart(line_df).mark_line(color=theme.PALETTE[1]).encode(x="log_p:Q", y="log_q:Q")
        e = self.elasticity
        return alt.layer(pts, line).properties(
            title=alt.Title(
                f"Price elasticity {e.estimate:.2f}",
                subtitle=f"{1 - self.alpha:.0%} interval {e.lo:.2f} to {e.hi:.2f}; 20 bins of within-store variation",
            )
        )


def _resolve_controls(
    df: pl.DataFrame, controls: Sequence[str] | str, where: str
) -> tuple[pl.DataFrame, list[str]]:
    """'auto' -> log(1 + competitors) when a competitors column exists; names must be numeric columns."""
    if controls == "auto":
        has = "competitors" in df.columns or "log1p_competitors" in df.columns
        controls = ["log1p_competitors"] if has else []
    elif isinstance(controls, str):
        controls = [controls]
    out = []
    for c in controls:
        if c == "log1p_competitors" and "log1p_competitors" not in df.columns:
            _require(df, ["competitors"], where)
            df = df.with_columns(log1p_competitors=pl.col("competitors").cast(pl.Float64).log1p())
        else:
            _require(df, [c], where)
            df = df.with_columns(pl.col(c).cast(pl.Float64))
        out.append(c)
    return df, out


def price_elasticity(
    panel: pl.DataFrame | pl.LazyFrame,
    alpha: float = 0.05,
    controls: Sequence[str] | str = "auto",
) -> ElasticityResult:
    """Elasticity of grams sold with respect to price per gram, with store and period fixed effects.

    `panel` has period, store_id, revenue, grams (and optionally category; then the effects are
    store x category and period x category, and per-category estimates are added). Price = revenue / grams.
    `controls`: extra regressors; "auto" adds log(1 + competitors) when the panel has `competitors`,
    because a new nearby store moves both a store's price and its sales (leaving it out biases the
    elasticity). Errors are clustered by store. Pooled and between-store regressions (same controls, no
    fixed effects) are reported for comparison only: they use the cross-store variation that is biased by
    demand-driven pricing.
    """
    where = "price_elasticity"
    if not 0 < alpha < 1:
        raise InputError(f"{where}: alpha must be in (0, 1), got {alpha}")
    df, notes, has_cat = _panel_prep(panel, where)
    df, ctrl = _resolve_controls(df, controls, where)
    df = df.with_columns(log_q=pl.col("grams").log())
    x = ["log_p", *ctrl]
    fe = ("_unit", "_time")
    res = fe_ols(df, "log_q", x, fe=fe, cluster="store_id", alpha=alpha)
    pooled = fe_ols(df, "log_q", x, fe=("_all",), cluster="store_id", alpha=alpha)
    means = df.group_by("_unit").agg(pl.col("log_q", *x).mean(), pl.lit(1).alias("_all"))
    try:
        between = _est_from_fe(fe_ols(means, "log_q", x, fe=("_all",), cluster=None, alpha=alpha), "log_p")
    except InputError:  # e.g. the control does not vary across stores
        between = Estimate(*(float("nan"),) * 5)
    by_cat: dict[str, Estimate] = {}
    if has_cat:
        for (cat,), sub in df.group_by("category"):
            try:
                r = fe_ols(sub, "log_q", x, fe=fe, cluster="store_id", alpha=alpha)
            except InputError:
                continue
            by_cat[str(cat)] = _est_from_fe(r, "log_p")
        by_cat = dict(sorted(by_cat.items()))
    return ElasticityResult(
        elasticity=_est_from_fe(res, "log_p"),
        alpha=alpha,
        nobs=res.nobs,
        n_stores=df["store_id"].n_unique(),
        n_periods=df["period"].n_unique(),
        fe=("store x category", "period x category") if has_cat else ("store", "period"),
        r2_within=res.r2_within,
        pooled=_est_from_fe(pooled, "log_p"),
        between=between,
        by_category=by_cat,
        binned=_binned(df, "log_p", "log_q", fe, ctrl),
        notes=notes,
        controls=tuple(ctrl),
    )


# --------------------------------------------------------------------------------- competition


@dataclass
class CompetitionResult:
    """How store prices move with local competition (store + period fixed effects)."""

    alpha: float
    nobs: int
    n_stores: int
    n_clusters: int
    cluster: str
    log1p_competitors: Estimate | None  # change in log price per unit of log(1 + competitors)
    per_competitor: Estimate | None  # change in log price per additional local competitor
    density: Estimate | None  # change in log price per +1 store per 10,000 residents
    binned: pl.DataFrame | None = None
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def per_competitor_pct(self) -> Estimate | None:
        """Percentage price change per additional local competitor (exp(b) - 1)."""
        return self.per_competitor.as_pct() if self.per_competitor else None

    def summary(self) -> pl.DataFrame:
        rows = []
        specs = (
            ("log(1 + competitors)", "log price per unit log(1 + local competitors)", self.log1p_competitors),
            ("competitors", "log price per additional local competitor", self.per_competitor),
            ("density", "log price per +1 store per 10,000 residents", self.density),
        )
        for term, meaning, e in specs:
            if e is not None:
                rows.append(
                    {
                        "term": term,
                        "meaning": meaning,
                        "estimate": e.estimate,
                        "std_error": e.se,
                        "lo": e.lo,
                        "hi": e.hi,
                        "p_value": e.p_value,
                    }
                )
        return pl.DataFrame(rows)

    def report(self) -> str:
        lvl = f"{1 - self.alpha:.0%}"
        parts = [
            f"Local competition and price ({fmt_num(self.nobs)} store-period rows, {self.n_stores} stores; store "
            f"and period fixed effects, errors clustered by {self.cluster}, {self.n_clusters} clusters). "
            "Identification comes from stores whose local competition changed over time (new stores opening, "
            "others closing nearby) compared with stores where it did not, in the same period."
        ]
        pc = self.per_competitor_pct
        if pc is not None:
            parts.append(
                f"Each additional local competitor goes with a {fmt_pct(pc.estimate, 2, signed=True)} change in a "
                f"store's price per gram ({lvl} interval {fmt_pct(pc.lo, 2, signed=True)} to "
                f"{fmt_pct(pc.hi, 2, signed=True)})."
            )
        if self.log1p_competitors is not None:
            e = self.log1p_competitors
            parts.append(
                f"On a log scale, doubling (1 + competitors) goes with a {fmt_pct(2**e.estimate - 1, signed=True)} "
                f"price change (coefficient {e.estimate:.3f}, {lvl} interval {e.lo:.3f} to {e.hi:.3f})."
            )
        if self.density is not None:
            e = self.density
            parts.append(
                f"One more store per 10,000 residents goes with a {fmt_pct(math.expm1(e.estimate), signed=True)} "
                f"price change ({lvl} interval {fmt_pct(math.expm1(e.lo), signed=True)} to "
                f"{fmt_pct(math.expm1(e.hi), signed=True)})."
            )
        parts.append(
            "Entry is not random — stores open where demand is growing — so read these as associations net of "
            "fixed store differences and common trends, not as guaranteed causal effects."
        )
        return " ".join(parts)

    def chart(self) -> alt.Chart:
        """Mean within-store log price by number of local competitors (deviation from store/period means)."""
        b = (
            self.binned
            if self.binned is not None
            else pl.DataFrame({"competitors": [], "log_p": [], "n": []})
        )
        return (
            alt.Chart(b)
            .mark_line(point=True)
            .encode(
                x=alt.X("competitors:Q", title="local competitors (other open stores in the municipality)"),
                y=alt.Y("log_p:Q", title="log price per gram, within store"),
                tooltip=["competitors:Q", "log_p:Q", "n:Q"],
            )
            .properties(
                title=alt.Title("Price and local competition", subtitle="store and period effects removed")
            )
        )


def _density(df: pl.DataFrame, population: pl.DataFrame, where: str) -> pl.DataFrame:
    """Stores per 10,000 residents by municipality and period: (competitors + 1) / population * 1e4."""
    pop = _to_frame(population, where)
    _require(pop, ["municipality", "year", "population"], f"{where} (population)")
    _require(df, ["municipality", "competitors"], where)
    pop = pop.select(
        pl.col("municipality").cast(pl.String), pl.col("year").cast(pl.Int64), pl.col("population")
    )
    df = df.with_columns(
        year=pl.col("period").dt.year().cast(pl.Int64), municipality=pl.col("municipality").cast(pl.String)
    )
    df = df.join(pop, on=["municipality", "year"], how="left")
    miss = df.filter(pl.col("population").is_null() | (pl.col("population") <= 0))
    if miss.height:
        raise InputError(
            f"{where}: {miss.height} row(s) have no positive population for their municipality and year "
            f"(e.g. {miss['municipality'][0]} {miss['year'][0]})"
        )
    return df.with_columns(density=(pl.col("competitors") + 1) / pl.col("population") * 1e4).drop("year")


def competition_price_effect(
    panel: pl.DataFrame | pl.LazyFrame,
    alpha: float = 0.05,
    population: pl.DataFrame | pl.LazyFrame | None = None,
    cluster: str | None = None,
    exclude_partial: bool = True,
) -> CompetitionResult:
    """Log price per gram against local competition, with store and period fixed effects.

    `panel` has period, store_id, revenue, grams (or price_per_g) and `competitors` (other open stores in
    the same municipality) and/or `density` (stores per 10,000 residents). With `population` (municipality,
    year, population) the density is computed as (competitors + 1) / population * 10,000. Three separate
    regressions (one regressor each): log(1 + competitors), competitors (-> % price change per additional
    competitor) and density. Errors are clustered by municipality when there are at least 10 of them (the
    level at which competition varies), otherwise by store. A `log1p_competitors` column (e.g. the average of
    log(1 + competitors) over the days of the period, from `store_period_prices`) is used as is when present.
    Rows flagged `partial` are dropped unless `exclude_partial=False`.
    """
    where = "competition_price_effect"
    if not 0 < alpha < 1:
        raise InputError(f"{where}: alpha must be in (0, 1), got {alpha}")
    df, notes, _ = _panel_prep(panel, where, need_grams=False, exclude_partial=exclude_partial)
    if population is not None:
        df = _density(df, population, where)
    if "competitors" not in df.columns and "density" not in df.columns:
        raise InputError(
            f"{where}: needs a 'competitors' column (other open stores in the municipality) or a 'density' "
            f"column (stores per 10,000 residents); columns found: {', '.join(df.columns)}"
        )
    if cluster is None:
        cluster = (
            "municipality"
            if "municipality" in df.columns and df["municipality"].n_unique() >= 10
            else "store_id"
        )
    _require(df, [cluster], where)
    fe = ("_unit", "_time")
    out: dict[str, Estimate | None] = {"log1p_competitors": None, "per_competitor": None, "density": None}
    nobs = n_cl = 0
    binned = None
    if "competitors" in df.columns:
        df = df.with_columns(pl.col("competitors").cast(pl.Float64)).with_columns(
            log1p_comp=pl.col("log1p_competitors")
            if "log1p_competitors" in df.columns
            else pl.col("competitors").log1p()
        )
        neg = int((df["competitors"] < 0).sum())
        if neg:
            raise InputError(f"{where}: column 'competitors' has {neg} negative value(s)")
        r1 = fe_ols(df, "log_p", ["log1p_comp"], fe=fe, cluster=cluster, alpha=alpha)
        r2 = fe_ols(df, "log_p", ["competitors"], fe=fe, cluster=cluster, alpha=alpha)
        out["log1p_competitors"] = _est_from_fe(r1, "log1p_comp")
        out["per_competitor"] = _est_from_fe(r2, "competitors")
        nobs, n_cl = r2.nobs, r2.n_clusters
        w = demean(df.drop_nulls(["log_p", "competitors"]), ["log_p"], fe)
        binned = (
            df.drop_nulls(["log_p", "competitors"])
            .select(
                pl.col("competitors").round().clip(upper_bound=float(df["competitors"].quantile(0.98) or 0))
            )
            .with_columns(w["log_p"])
            .group_by("competitors")
            .agg(pl.col("log_p").mean(), pl.len().alias("n"))
            .filter(pl.col("n") >= 5)
            .sort("competitors")
        )
    if "density" in df.columns:
        r3 = fe_ols(df, "log_p", ["density"], fe=fe, cluster=cluster, alpha=alpha)
        out["density"] = _est_from_fe(r3, "density")
        nobs, n_cl = nobs or r3.nobs, n_cl or r3.n_clusters
    return CompetitionResult(
        alpha=alpha,
        nobs=nobs,
        n_stores=df["store_id"].n_unique(),
        n_clusters=n_cl,
        cluster=cluster,
        binned=binned,
        notes=notes,
        **out,
    )


# -------------------------------------------------------------------------------- price index


def _period_effects(d: pl.DataFrame, col: str, tol: float = 1e-10, max_iter: int = 1000) -> pl.DataFrame:
    """Period effects g_t of `col` = unit effect + g_t + noise (alternating projections, no dummies)."""
    d = d.select("_unit", "period", pl.col(col).alias("_r")).with_columns(_g=pl.lit(0.0))
    for _ in range(max_iter):
        d = d.with_columns(_a=(pl.col("_r") - pl.col("_g")).mean().over("_unit"))
        g_new = (pl.col("_r") - pl.col("_a")).mean().over("period")
        change = float(d.select((g_new - pl.col("_g")).abs().max()).item())
        d = d.with_columns(_g=g_new)
        if change < tol:
            break
    return d.group_by("period").agg(pl.col("_g").first().alias(col), n_obs=pl.len()).sort("period")


def _index_parts(
    panel: pl.DataFrame | pl.LazyFrame,
    adjust_competition: bool,
    exclude_partial: bool,
    alpha: float,
    where: str,
) -> tuple[pl.DataFrame, Estimate | None]:
    df, _, _ = _panel_prep(panel, where, need_grams=False, exclude_partial=exclude_partial)
    df = df.with_columns(_period=pl.col("period").cast(pl.String))
    adjust = adjust_competition and ("competitors" in df.columns or "log1p_competitors" in df.columns)
    delta = None
    cols = ["log_p"]
    if adjust:
        df, _ = _resolve_controls(df, "auto", where)
        fit = fe_ols(
            df, "log_p", ["log1p_competitors"], fe=("_unit", "_period"), cluster="store_id", alpha=alpha
        )
        delta = _est_from_fe(fit, "log1p_competitors")
        cols.append("log1p_competitors")
    d = df.drop_nulls(cols)
    g = _period_effects(d, "log_p")
    if adjust:
        g = g.join(_period_effects(d, "log1p_competitors").drop("n_obs"), on="period")
        g = g.with_columns(competition_adjustment=-delta.estimate * pl.col("log1p_competitors")).with_columns(
            log_index=pl.col("log_p") + pl.col("competition_adjustment")
        )
    else:
        g = g.with_columns(
            log_index=pl.col("log_p"), competition_adjustment=pl.lit(0.0), log1p_competitors=pl.lit(0.0)
        )
    first = g.row(0, named=True)
    g = g.with_columns(
        pl.col("log_index") - first["log_index"],
        pl.col("competition_adjustment") - first["competition_adjustment"],
        pl.col("log1p_competitors") - first["log1p_competitors"],
    )
    if "grams" in df.columns:
        raw = df.group_by("period").agg(price_per_g=pl.col("revenue").sum() / pl.col("grams").sum())
    else:
        raw = df.group_by("period").agg(pl.col("price_per_g").mean())
    out = g.with_columns(index=100 * pl.col("log_index").exp()).join(raw, on="period", how="left")
    return out, delta


def price_index(
    panel: pl.DataFrame | pl.LazyFrame,
    adjust_competition: bool = True,
    exclude_partial: bool = True,
) -> pl.DataFrame:
    """Constant-quality price index: what the same stores charge over time, with local competition held fixed.

    The market-average price per gram falls for two reasons: every store cuts prices (compression), and
    the mix changes (new stores, more competitors nearby, other categories). This index keeps only the
    first: log price = store(x category) effect + period effect + delta * log(1 + competitors) + noise;
    delta comes from the fixed-effects regression (as in `competition_price_effect`), and the period
    effects (found by alternating projections, no dummies) are the index. Pass a panel by category
    (`store_period_prices(..., by_category=True)`) so that a shift toward pricier categories is not read
    as a price rise. Returns period, index (100 in the first period), log_index, competition_adjustment
    (log points added back for the change in local competition since the first period), n_obs and the raw
    sales-weighted price_per_g. `compression_trend` turns it into an annual rate with an interval.
    """
    out, _ = _index_parts(panel, adjust_competition, exclude_partial, 0.05, "price_index")
    return out.select("period", "index", "log_index", "competition_adjustment", "n_obs", "price_per_g")


def compression_trend(
    panel: pl.DataFrame | pl.LazyFrame,
    alpha: float = 0.05,
    freq: str = "monthly",
    *,
    adjust_competition: bool = True,
    exclude_partial: bool = True,
    **trend_kw,
) -> PriceTrendResult:
    """Annual compression of the base price: the trend of `price_index`, weighted by the rows per period.

    Weighted least squares (weights = store-category rows behind each period) keeps the first months,
    priced from a handful of stores, from dominating. The index depends on the estimated competition
    effect delta, so its trend error has a second source; the interval adds it by the delta method:
    se^2 = se_trend^2 + (slope of the competition period effects)^2 * se_delta^2. Other arguments go to
    `price_trend` (breaks, n_boot, seed, hac, maxlags).
    """
    where = "compression_trend"
    if not 0 < alpha < 1:
        raise InputError(f"{where}: alpha must be in (0, 1), got {alpha}")
    parts, delta = _index_parts(panel, adjust_competition, exclude_partial, alpha, where)
    res = price_trend(
        parts,
        alpha,
        freq,
        price_col="index",
        weights="n_obs",
        label="constant-quality price index",
        **trend_kw,
    )
    if delta is None:
        return res
    n = parts.height
    t = _time_index(parts["period"], freq)
    w = parts["n_obs"].cast(pl.Float64).to_numpy()
    X = np.column_stack([np.ones(n), t]) * np.sqrt(w)[:, None]
    b_l = float(np.linalg.lstsq(X, parts["log1p_competitors"].to_numpy() * np.sqrt(w), rcond=None)[0][1])
    sl = res.slope
    se = math.sqrt(sl.se**2 + (b_l * delta.se) ** 2)
    df_resid = max(n - 2, 1)
    q = stats.t.ppf(1 - alpha / 2, df_resid)
    p = float(2 * stats.t.sf(abs(sl.estimate / se), df_resid)) if se > 0 else 0.0
    slope = Estimate(sl.estimate, se, sl.estimate - q * se, sl.estimate + q * se, p)
    res.slope = slope
    res.annual = _annual(slope, _check_freq(freq))
    res.extra_note = (
        f"The index holds local competition fixed (delta = {delta.estimate:.3f} per log(1 + competitors)); "
        "its interval includes the uncertainty of that adjustment."
    )
    return res


# ------------------------------------------------------------------------------------- margins


def wholesale_path(
    periods: Sequence[dt.date] | pl.Series,
    anchor: float = DEFAULT_WHOLESALE_PER_G,
    anchor_year: int = 2023,
    annual_change: float = 0.0,
) -> pl.DataFrame:
    """A wholesale price path: `anchor` CA$/g in mid-`anchor_year`, changing by `annual_change` a year.

    The default (flat CA$4.05/g, OCS's 2023 average for dried flower) holds wholesale constant, so the
    margin moves only with retail prices; pass e.g. annual_change=-0.05 to let wholesale fall too.
    """
    if anchor <= 0:
        raise InputError(f"wholesale_path: anchor must be > 0, got {anchor}")
    if annual_change <= -1:
        raise InputError(f"wholesale_path: annual_change must be > -1, got {annual_change}")
    p = pl.Series("period", list(periods)).cast(pl.Date)
    mid = dt.date(anchor_year, 7, 1)
    epoch = dt.date(1970, 1, 1)
    years = (p.cast(pl.Int64).to_numpy() - (mid - epoch).days) / 365.25
    return pl.DataFrame({"period": p, "wholesale_per_g": anchor * (1 + annual_change) ** years})


@dataclass
class MarginResult:
    """Retail gross margin per gram (retail - wholesale), its share of the retail price and their trends."""

    alpha: float
    freq: str
    frame: pl.DataFrame  # period, price_per_g, wholesale_per_g, margin_per_g, margin_pct
    margin_pct_trend: Estimate  # change in margin share per year, in fractions (0.01 = 1 point)
    margin_trend: PriceTrendResult | None  # log-linear trend of margin per gram (None if any margin <= 0)
    retail_trend: PriceTrendResult
    wholesale_note: str = ""

    def summary(self) -> pl.DataFrame:
        f = self.frame
        rows = [
            {"measure": "margin_pct_start", "estimate": float(f["margin_pct"][0]), "lo": None, "hi": None},
            {"measure": "margin_pct_end", "estimate": float(f["margin_pct"][-1]), "lo": None, "hi": None},
            {
                "measure": "margin_pct_change_per_year",
                "estimate": self.margin_pct_trend.estimate,
                "lo": self.margin_pct_trend.lo,
                "hi": self.margin_pct_trend.hi,
            },
            {
                "measure": "retail_price_annual_rate",
                "estimate": self.retail_trend.annual.estimate,
                "lo": self.retail_trend.annual.lo,
                "hi": self.retail_trend.annual.hi,
            },
        ]
        if self.margin_trend is not None:
            a = self.margin_trend.annual
            rows.append(
                {"measure": "margin_per_g_annual_rate", "estimate": a.estimate, "lo": a.lo, "hi": a.hi}
            )
        return pl.DataFrame(
            rows, schema={"measure": pl.String, "estimate": pl.Float64, "lo": pl.Float64, "hi": pl.Float64}
        )

    def report(self) -> str:
        f = self.frame
        lvl = f"{1 - self.alpha:.0%}"
        m = self.margin_pct_trend
        txt = (
            f"Retail gross margin (retail price per gram minus wholesale): {fmt_pct(f['margin_pct'][0])} of the "
            f"retail price in {fmt_date(f['period'][0], True)} and {fmt_pct(f['margin_pct'][-1])} in "
            f"{fmt_date(f['period'][-1], True)}; the share changes by {100 * m.estimate:+.1f} points a year "
            f"({lvl} interval {100 * m.lo:+.1f} to {100 * m.hi:+.1f}). Retail prices change by "
            f"{fmt_pct(self.retail_trend.annual.estimate, signed=True)} a year."
        )
        if self.margin_trend is not None:
            a = self.margin_trend.annual
            txt += (
                f" The margin per gram changes by {fmt_pct(a.estimate, signed=True)} a year ({lvl} interval "
                f"{fmt_pct(a.lo, signed=True)} to {fmt_pct(a.hi, signed=True)})"
            )
            if a.estimate < self.retail_trend.annual.estimate:
                txt += (
                    ", faster than the retail price: wholesale prices fell less than retail (or not at all), so a "
                    "given retail price cut takes a larger percentage bite out of the margin."
                )
            else:
                txt += ", no faster than the retail price: wholesale prices fell at least as fast as retail."
        else:
            txt += (
                " In some periods the retail price is at or below the wholesale price (no positive margin)."
            )
        if self.wholesale_note:
            txt += f" {self.wholesale_note}"
        return txt

    def chart(self) -> alt.Chart:
        """Retail and wholesale price per gram over time; the gap between them is the margin."""
        f = self.frame
        if f.height > 1600:
            f = f.group_by(pl.col("period").dt.truncate("1mo")).mean().sort("period")
        long = f.select(
            "period", retail="price_per_g", wholesale="wholesale_per_g", margin="margin_per_g"
        ).unpivot(index="period", variable_name="series", value_name="price per gram")
        return (
            alt.Chart(long)
            .mark_line()
            .encode(
                x=alt.X("period:T", title=None), y="price per gram:Q", color=alt.Color("series:N", title=None)
            )
            .properties(
                title=alt.Title(
                    "Margin squeeze",
                    subtitle=f"margin share {fmt_pct(f['margin_pct'][0])} → {fmt_pct(f['margin_pct'][-1])}",
                )
            )
        )


def margin_squeeze(
    prices: pl.DataFrame,
    wholesale: float | pl.DataFrame = DEFAULT_WHOLESALE_PER_G,
    alpha: float = 0.05,
    freq: str = "monthly",
    *,
    maxlags: int | None = None,
    hac: str = "prewhitened",
) -> MarginResult:
    """Retailer gross margin per gram = retail price per gram - wholesale price per gram, and its trend.

    `prices` has period, price_per_g (retail). `wholesale` is a scalar CA$/g for every period (default
    CA$4.05, the OCS 2023 dried-flower average, held flat) or a frame of period -> wholesale_per_g
    (e.g. from `wholesale_path`); each retail period takes the latest wholesale value at or before it.
    Margin % = margin / retail price; its trend is linear in points per year with Newey-West errors
    (same `hac` choice as `price_trend`); margin per gram gets a log-linear trend when it is always > 0.
    """
    where = "margin_squeeze"
    k_year = _check_freq(freq)
    df = _to_frame(prices, where)
    _require(df, ["period", "price_per_g"], where)
    df = _positive(_as_date(df.select("period", "price_per_g"), "period", where), "price_per_g", where).sort(
        "period"
    )
    note = ""
    if isinstance(wholesale, int | float):
        if not wholesale > 0 or not math.isfinite(wholesale):
            raise InputError(f"{where}: wholesale price must be > 0, got {wholesale}")
        df = df.with_columns(wholesale_per_g=pl.lit(float(wholesale)))
        if float(wholesale) == DEFAULT_WHOLESALE_PER_G:
            note = (
                "Wholesale is the default flat CA$4.05/g (OCS average dried-flower wholesale price, 2023); in "
                "other years the true wholesale price differed, so pass a path for a real squeeze estimate."
            )
    else:
        w = _to_frame(wholesale, f"{where} (wholesale)")
        col = "wholesale_per_g" if "wholesale_per_g" in w.columns else "price_per_g"
        _require(w, ["period", col], f"{where} (wholesale)")
        w = _positive(
            _as_date(w.select("period", col), "period", where),
            col,
            f"{where} (wholesale)",
            "wholesale prices",
        )
        w = w.rename({col: "wholesale_per_g"}).sort("period")
        df = df.join_asof(w, on="period", strategy="backward")
        miss = int(df["wholesale_per_g"].is_null().sum())
        if miss:
            raise InputError(
                f"{where}: the wholesale path starts at {w['period'][0]}, after {miss} retail period(s) "
                f"(first retail period {df['period'][0]}); extend the path back"
            )
    df = df.with_columns(margin_per_g=pl.col("price_per_g") - pl.col("wholesale_per_g")).with_columns(
        margin_pct=pl.col("margin_per_g") / pl.col("price_per_g")
    )
    retail = price_trend(
        df, alpha, freq, breaks=False, maxlags=maxlags, hac=hac, label="retail price per gram"
    )
    n = df.height
    t = _time_index(df["period"], freq)
    lags = maxlags if maxlags is not None else _nw_lags(n)
    r = _hac_ols(df["margin_pct"].to_numpy(), np.column_stack([np.ones(n), t]), lags, hac)
    e = _coef_est(r, 1, alpha)
    pct_trend = Estimate(k_year * e.estimate, k_year * e.se, k_year * e.lo, k_year * e.hi, e.p_value)
    mtrend = None
    if bool((df["margin_per_g"] > 0).all()):
        mtrend = price_trend(
            df.select("period", price_per_g="margin_per_g"),
            alpha,
            freq,
            breaks=False,
            maxlags=maxlags,
            hac=hac,
            label="margin per gram",
        )
    return MarginResult(
        alpha=alpha,
        freq=freq,
        frame=df,
        margin_pct_trend=pct_trend,
        margin_trend=mtrend,
        retail_trend=retail,
        wholesale_note=note,
    )


# ----------------------------------------------------------------------------------- illicit gap


def statcan_legal_illicit() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Crowdsourced average Canadian price per gram, legal and illegal, by quarter (period = quarter start).

    Source: Statistics Canada, The Daily 2020-01-23 (StatsCannabis crowdsourcing, Q4 2018 to Q4 2019;
    self-selected sample, Canada-wide). Returns (legal, illicit), each with period, price_per_g.
    """
    period = [r[0] for r in _STATCAN_LEGAL_ILLICIT]
    legal = pl.DataFrame({"period": period, "price_per_g": [r[1] for r in _STATCAN_LEGAL_ILLICIT]})
    illicit = pl.DataFrame({"period": period, "price_per_g": [r[2] for r in _STATCAN_LEGAL_ILLICIT]})
    return legal, illicit


def illicit_gap(legal: pl.DataFrame, illicit: pl.DataFrame, align: str | None = None) -> pl.DataFrame:
    """Legal price per gram against an illicit-market price series, period by period.

    Both frames have period, price_per_g. With `align` ("monthly", "quarterly", "annual") both are first
    averaged within that period (e.g. monthly legal prices against a quarterly illicit series). Returns
    period, legal, illicit, gap (legal - illicit, per gram), premium_pct (legal / illicit - 1) for the
    periods both series cover.
    """
    where = "illicit_gap"
    frames = []
    for name, f in (("legal", legal), ("illicit", illicit)):
        f = _to_frame(f, f"{where} ({name})")
        _require(f, ["period", "price_per_g"], f"{where} ({name})")
        f = _positive(
            _as_date(f.select("period", "price_per_g"), "period", where), "price_per_g", f"{where} ({name})"
        )
        if align is not None:
            _check_freq(align)
            f = f.group_by(pl.col("period").dt.truncate(_TRUNCATE[align])).agg(pl.col("price_per_g").mean())
        dup = int(f["period"].is_duplicated().sum())
        if dup:
            raise InputError(
                f"{where} ({name}): {dup} rows share a period; pass one price per period or use align="
            )
        frames.append(f.rename({"price_per_g": name}))
    out = frames[0].join(frames[1], on="period", how="inner").sort("period")
    if out.height == 0:
        raise InputError(
            f"{where}: the legal and illicit series share no period (legal {frames[0]['period'].min()}.."
            f"{frames[0]['period'].max()}, illicit {frames[1]['period'].min()}..{frames[1]['period'].max()}); "
            "try align='quarterly'"
        )
    return out.with_columns(
        gap=pl.col("legal") - pl.col("illicit"), premium_pct=pl.col("legal") / pl.col("illicit") - 1
    )


def illicit_gap_chart(gap: pl.DataFrame, source: str | None = None) -> alt.LayerChart:
    """Legal and illicit price per gram over time (lines) from an `illicit_gap` frame."""
    _require(gap, ["period", "legal", "illicit"], "illicit_gap_chart")
    g = gap.select("period", "legal", "illicit")
    if g.height > 2000:
        g = g.group_by(pl.col("period").dt.truncate("1mo")).mean().sort("period")
    long = g.unpivot(index="period", variable_name="market", value_name="price per gram")
    lines = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("period:T", title=None),
            y=alt.Y("price per gram:Q", scale=alt.Scale(zero=False)),
            color=alt.Color("market:N", title=None),
        )
    )
    last = gap.sort("period").tail(1)
    sub = f"legal premium {fmt_pct(float(last['premium_pct'][0]), signed=True)} in {fmt_date(last['period'][0], True)}"
    if source:
        sub += f"; source: {source}"
    return alt.layer(lines).properties(title=alt.Title("Legal vs illicit price per gram", subtitle=sub))


# ------------------------------------------------------------------------------------ dataset glue


def store_period_prices(
    sales: pl.DataFrame | pl.LazyFrame,
    stores: pl.DataFrame | pl.LazyFrame,
    freq: str = "monthly",
    by_category: bool = False,
) -> pl.DataFrame:
    """Store-period panel for the estimators, with local competition measured day by day.

    Returns period, store_id, (category), revenue, grams, municipality, region, competitors (average over
    the store's open days in the period of the other stores open in its municipality), log1p_competitors
    (average of log(1 + competitors) over those days), open_days and partial (the store's opening or
    closing period, or open on fewer days than the period has; in monthly data opening dates are often
    rounded to the 1st, so the opening month is flagged regardless). Averaging over days matters for daily data: a snapshot
    count (e.g. mid-month) misstates competition in months when stores open, and that error leaks into
    the elasticity through the competition control.
    """
    where = "store_period_prices"
    _check_freq(freq)
    s = _as_date(_to_frame(sales, where), "date", where)
    st = _to_frame(stores, f"{where} (stores)")
    _require(s, ["date", "store_id", "revenue", "grams"], where)
    _require(st, ["store_id", "municipality", "opened_on", "closed_on"], f"{where} (stores)")
    trunc = _TRUNCATE[freq]
    keys = ["period", "store_id", *(["category"] if by_category and "category" in s.columns else [])]
    panel = (
        s.with_columns(period=pl.col("date").dt.truncate(trunc))
        .group_by(keys)
        .agg(pl.col("revenue").sum(), pl.col("grams").sum())
    )
    first = panel["period"].min()
    step = {"daily": "1d", "weekly": "1w", "monthly": "1mo", "quarterly": "1q", "annual": "1y"}[freq]
    last_end = pl.select(pl.lit(panel["period"].max()).dt.offset_by(step) - pl.duration(days=1)).item()
    days = pl.DataFrame({"date": pl.date_range(first, last_end, "1d", eager=True)})
    geo = [c for c in ("municipality", "region") if c in st.columns]
    st = st.select("store_id", *geo, pl.col("opened_on").cast(pl.Date), pl.col("closed_on").cast(pl.Date))
    open_days = (
        st.join(days, how="cross")
        .filter(
            (pl.col("opened_on") <= pl.col("date"))
            & (pl.col("closed_on").is_null() | (pl.col("date") <= pl.col("closed_on")))
        )
        .with_columns(c=(pl.len().over("municipality", "date") - 1).cast(pl.Float64))
        .group_by("store_id", period=pl.col("date").dt.truncate(trunc))
        .agg(
            competitors=pl.col("c").mean(),
            log1p_competitors=pl.col("c").log1p().mean(),
            open_days=pl.len().cast(pl.Int64),
        )
    )
    period_days = days.group_by(period=pl.col("date").dt.truncate(trunc)).agg(_n=pl.len().cast(pl.Int64))
    edges = st.select(
        "store_id",
        _open_p=pl.col("opened_on").dt.truncate(trunc),
        _close_p=pl.col("closed_on").dt.truncate(trunc),
    )
    return (
        panel.join(st.select("store_id", *geo), on="store_id", how="left")
        .join(open_days, on=["store_id", "period"], how="left")
        .join(period_days, on="period", how="left")
        .join(edges, on="store_id", how="left")
        .with_columns(
            pl.col("competitors").fill_null(0.0),
            pl.col("log1p_competitors").fill_null(0.0),
            pl.col("open_days").fill_null(0),
        )
        .with_columns(
            partial=(pl.col("open_days") < pl.col("_n"))
            | (pl.col("period") == pl.col("_open_p")).fill_null(False)
            | (pl.col("period") == pl.col("_close_p")).fill_null(False)
        )
        .drop("_n", "_open_p", "_close_p")
        .sort(keys)
    )
