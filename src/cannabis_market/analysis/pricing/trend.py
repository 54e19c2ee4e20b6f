"""Price trend: log-linear annual rate with a HAC interval, and a scan for one break in the trend
(sup-F over the interior, p-value from an AR(1) wild residual bootstrap)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from cannabis_market.analysis.inference import ar1, bootstrap_p_value, hac_ols, nw_lags, rademacher
from cannabis_market.analysis.pricing import charts
from cannabis_market.analysis.pricing._base import (
    MIN_BREAK_PERIODS,
    MIN_TREND_PERIODS,
    Estimate,
    annual_rate,
    as_date,
    check_freq,
    positive,
    require,
    time_index,
    to_frame,
)
from cannabis_market.analysis.results import check_alpha
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date, fmt_pct

if TYPE_CHECKING:
    import altair as alt


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
    currency: str | None = None  # ISO code from the dataset manifest, for axis labels
    resid_ar1: float = float("nan")  # first-order autocorrelation of the residuals around the single trend
    extra_note: str = ""

    @property
    def annual_rate(self) -> float:
        return self.annual.estimate

    def figures(self) -> dict[str, float]:
        """What the pricing notebook records: the annual rate of change and its interval."""
        a = self.annual
        return {
            "price_change_annual": a.estimate,
            "price_change_annual_lo": a.lo,
            "price_change_annual_hi": a.hi,
        }

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

    def plot_data(self) -> pl.DataFrame:
        """What `chart()` draws: period, series (observed / trend / trend with one break), value, part
        (before/after the break). Daily series are shown as monthly means (the fits are smooth anyway)."""
        f = self.fitted
        if f.height > 1600:
            f = f.group_by(pl.col("period").dt.truncate("1mo")).mean().sort("period")
        names = {"price_per_g": "observed", "trend": "log-linear trend", "segmented": "trend with one break"}
        cols = [c for c in names if c in f.columns]
        long = f.unpivot(index="period", on=cols, variable_name="series", value_name="value").with_columns(
            pl.col("series").replace_strict(names)
        )
        if self.brk is None:
            return long.with_columns(part=pl.lit("before"))
        after = (pl.col("series") == "trend with one break") & (pl.col("period") >= self.brk.date)
        return long.with_columns(part=pl.when(after).then(pl.lit("after")).otherwise(pl.lit("before")))

    def chart(self) -> alt.LayerChart:
        """Observed price per gram with the overall trend and (if scanned) the two-segment fit."""
        return charts.trend_chart(self)


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
    res = hac_ols(y, _segment_design(t, k) * sw[:, None], maxlags, hac)
    # AR(1) residual bootstrap of the sup-F under the null of one unbroken trend. F is invariant to the
    # trend itself, so the bootstrap series are pure AR(1) noise, with the AR coefficient and innovations
    # taken from the single-trend residuals (in simulations this kept the rejection rate near 5% with
    # AR(1) noise of 0.3-0.85; residuals of the fitted break model understate persistence and over-reject).
    X0 = np.column_stack([np.ones(n), t]) * sw[:, None]
    u = y - X0 @ np.linalg.lstsq(X0, y, rcond=None)[0]
    phi = float(np.clip(ar1(u), -0.97, 0.97))
    e = u[1:] - phi * u[:-1]
    rng = np.random.default_rng(seed)
    # wild (Rademacher) signs keep each innovation at its own date, so a series that is noisier in some
    # stretches (e.g. early months priced from a handful of stores) keeps that pattern in the bootstrap
    signs = rademacher(rng, (n, n_boot))
    ustar = np.empty((n, n_boot))
    ustar[0] = u[0] * signs[0]
    for i in range(1, n):
        ustar[i] = phi * ustar[i - 1] + e[i - 1] * signs[i]
    f_boot = _sup_f(ustar, q0, qs, n).max(axis=0)
    p = bootstrap_p_value(float(f_obs[best]), f_boot)
    before = annual_rate(res.estimate(1, alpha), k_year)
    after = annual_rate(res.estimate(3, alpha), k_year)
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
    currency: str | None = None,
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

    `currency` (the manifest's ISO code, e.g. "USD") labels the chart's price axis.

    `weights` names a column of positive weights (e.g. the number of stores behind each period's price) for
    weighted least squares: periods priced from a handful of stores are noisier and should count less.
    """
    where = "price_trend"
    k_year = check_freq(freq)
    check_alpha(alpha, where)
    df = to_frame(prices, where)
    require(df, ["period", price_col, *([weights] if weights else [])], where)
    df = as_date(df.select("period", price_col, *([weights] if weights else [])), "period", where)
    n_in = df.height
    df = positive(df, price_col, where)
    if weights:
        df = positive(df, weights, where, what="weights")
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
    t = time_index(periods, freq)
    y = np.log(df[price_col].to_numpy())
    lags = maxlags if maxlags is not None else nw_lags(n)
    w = df[weights].to_numpy() if weights else np.ones(n)
    sw = np.sqrt(w / w.mean())
    X = np.column_stack([np.ones(n), t])
    res = hac_ols(y * sw, X * sw[:, None], lags, hac)
    slope = res.estimate(1, alpha)
    u = res.resid
    rho = ar1(u)
    fitted = pl.DataFrame({"period": periods, "price_per_g": df[price_col], "trend": np.exp(X @ res.params)})
    brk, note = None, ""
    if breaks:
        if n >= MIN_BREAK_PERIODS:
            brk = _scan_break(y, t, periods, alpha, k_year, lags, trim, n_boot, seed, hac, sw)
            Xs = _segment_design(t, brk.index)
            seg = hac_ols(y * sw, Xs * sw[:, None], lags, hac)
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
        annual=annual_rate(slope, k_year),
        maxlags=lags,
        hac=hac,
        resid_ar1=rho,
        fitted=fitted,
        brk=brk,
        break_note=note,
        n_dropped=n_dropped,
        label=label,
        currency=currency,
    )
