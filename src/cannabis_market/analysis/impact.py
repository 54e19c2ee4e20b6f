"""Intervention analysis in the manner of Google's CausalImpact, built on statsmodels.

What it does
------------
Given a response series ``y`` (for example daily revenue of the stores hit by an outage), optional
control series that the intervention did not touch (for example revenue of unaffected regions), a
pre-period and a post-period, :func:`estimate_impact` fits a structural time-series model on the
pre-period only, simulates what ``y`` would have looked like in the post-period without the
intervention (the counterfactual), and reports the difference with intervals.

The model (all on data standardized with the pre-period mean and sd of each column, as CausalImpact
does by default)::

    y_t     = mu_t + gamma_t + x_t' beta + eps_t,      eps_t ~ N(0, s2_irregular)
    mu_t+1  = mu_t + eta_t,                             eta_t ~ N(0, s2_level)
    gamma_t = -(gamma_t-1 + ... + gamma_t-S+1) + w_t    (dummy seasonal, only when seasonal)

It is statsmodels' ``UnobservedComponents`` with ``irregular``, a stochastic ``level``, an optional
dummy ``seasonal`` of period S, and the controls as ``exog`` with ``mle_regression=False``: the
regression coefficients are then part of the state vector (exact-diffuse initialised, i.e. a flat
prior), so their estimation uncertainty is carried by the Kalman filter and ends up in the simulated
paths, much as CausalImpact's posterior draws of the coefficients do.

Level disturbance bound
-----------------------
CausalImpact puts an informative prior on the level standard deviation (``prior.level.sd = 0.01``
in standardized units) so that the local level cannot soak up the intervention or wander off during
the post-period. Here the variances are estimated by maximum likelihood over an explicit
parametrisation that enforces the bound (a "parameter transformation"):

* ``s2_irregular = exp(t0)`` (always positive);
* ``s2_level = B * t1**2 / (1 + t1**2)`` with ``B = prior_level_sd**2`` -- any real ``t1`` maps into
  ``[0, B)``, zero is an interior point (``t1 = 0``) so the likelihood stays smooth there;
* ``s2_seasonal = t2**2`` (free: CausalImpact's seasonal prior is weak).

A hard bound rather than a prior was chosen because it keeps the fit a plain (fast, deterministic)
optimisation and guarantees the property users rely on -- the counterfactual level cannot drift
faster than ``prior_level_sd`` sd units per step. ``prior_level_sd=0`` gives a constant level.

Uncertainty
-----------
The counterfactual is simulated jointly over the gap and post-period with
``MLEResults.simulate(anchor="end", repetitions=..., exog=..., rng=...)``: each path starts from a
draw of the state at the end of the pre-period (level, seasonal states *and* regression
coefficients, from the filter's predicted mean and covariance), then adds state disturbances and
observation noise. Parameter uncertainty is added by drawing the transformed variance parameters
from a normal approximation to the likelihood (inverse numerical Hessian) in groups: every group
re-runs the filter with its own parameter draw and simulates a share of the paths. Pointwise
predictions are path means, intervals are path quantiles, and cumulative and average intervals come
from per-path sums (never from summing pointwise bounds).

The tail-area probability ``p_value`` is the share of simulated post-period sums at least as extreme
as the observed sum, in the direction of the estimated effect, counting the observation itself (so
its floor is ``1 / (n_sims + 1)`` and it is never 0) -- the same one-sided statistic CausalImpact
prints as "posterior tail-area probability".
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import altair as alt
import numpy as np
import polars as pl

from cannabis_market import theme  # importing the package registers and enables the altair theme
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_cad, fmt_date, fmt_interval, fmt_num, fmt_pct

__all__ = ["Estimate", "ImpactResult", "estimate_impact"]

Frequency = Literal["daily", "weekly", "monthly", "index"]
PeriodBound = dt.date | dt.datetime | str | int
_MAX_CHART_ROWS = 5000
_UNIT = {"daily": "day", "weekly": "week", "monthly": "month", "index": "period"}
_SUMMARY_COLUMNS = [
    "actual",
    "predicted",
    "predicted_lo",
    "predicted_hi",
    "abs_effect",
    "abs_effect_lo",
    "abs_effect_hi",
    "rel_effect",
    "rel_effect_lo",
    "rel_effect_hi",
]


class Estimate(NamedTuple):
    """A point estimate with its interval."""

    point: float
    lo: float
    hi: float


# ----------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ImpactResult:
    """Result of :func:`estimate_impact`.

    ``series`` has one row per time point from the pre-period start to the post-period end: column
    ``date`` (a ``pl.Date``, or ``pl.Int64`` for an integer time index), ``actual``, ``predicted``
    (one-step-ahead in-sample predictions in the pre-period, mean of the simulated counterfactual
    paths afterwards), ``predicted_lo/hi``, ``point_effect`` (actual - predicted) with ``_lo/_hi``,
    and ``cum_effect`` with ``_lo/_hi`` (0 in the pre-period, null in a gap between the periods,
    running sum of the post-period effect from per-path cumulative sums). ``period`` says which
    window each row belongs to ("pre", "gap", "post").
    """

    y: str
    controls: list[str]
    series: pl.DataFrame
    alpha: float
    p_value: float
    n_sims: int
    seed: int
    frequency: Frequency
    seasonality: int | None
    pre_period: tuple[Any, Any]
    post_period: tuple[Any, Any]
    prior_level_sd: float
    params: dict[str, float] = field(default_factory=dict)
    _summary: pl.DataFrame = field(default=None, repr=False)  # type: ignore[assignment]

    # -- numbers -----------------------------------------------------------------------------
    def summary(self) -> pl.DataFrame:
        """Two rows, ``average`` and ``cumulative`` (column ``row``), over the post-period.

        Columns: actual, predicted (+ _lo/_hi), abs_effect = actual - predicted (+ _lo/_hi),
        rel_effect = abs_effect / predicted (+ _lo/_hi, from the per-path ratios).
        """
        return self._summary.clone()

    def _row(self, name: str) -> dict[str, float]:
        return self._summary.filter(pl.col("row") == name).row(0, named=True)

    @property
    def average(self) -> Estimate:
        """Average absolute effect per time step over the post-period, with interval."""
        r = self._row("average")
        return Estimate(r["abs_effect"], r["abs_effect_lo"], r["abs_effect_hi"])

    @property
    def cumulative(self) -> Estimate:
        """Absolute effect summed over the post-period, with interval."""
        r = self._row("cumulative")
        return Estimate(r["abs_effect"], r["abs_effect_lo"], r["abs_effect_hi"])

    @property
    def lost(self) -> Estimate:
        """What the intervention cost: minus the cumulative effect (positive = lost), with interval."""
        c = self.cumulative
        return Estimate(-c.point, -c.hi, -c.lo)

    @property
    def significant(self) -> bool:
        """True when the cumulative interval excludes zero and ``p_value < alpha``."""
        c = self.cumulative
        return (c.lo > 0 or c.hi < 0) and self.p_value < self.alpha

    @property
    def p_value_text(self) -> str:
        """'p = 0.034', or 'p < 1/1001' when no simulated path was as extreme as the data."""
        floor = 1.0 / (self.n_sims + 1)
        if self.p_value <= floor * (1 + 1e-9):
            return f"p < 1/{self.n_sims + 1}"
        return f"p = {self.p_value:.3f}"

    # -- text --------------------------------------------------------------------------------
    def text_table(self, money: bool = False) -> str:
        """The summary as an aligned plain-text table (what the CLI prints)."""
        avg, cum = self._row("average"), self._row("cumulative")
        fa, fc = _formatter(avg, money), _formatter(cum, money)
        level = f"{100 * (1 - self.alpha):g}%"

        def cell(r: dict[str, float], key: str, f) -> str:
            return f"{f(r[key])} {fmt_interval(r[key + '_lo'], r[key + '_hi'], fmt=f)}"

        def pct(x: float) -> str:
            return fmt_pct(x, signed=True)

        lines = [
            ("", "Average", "Cumulative"),
            ("Actual", fa(avg["actual"]), fc(cum["actual"])),
            (f"Prediction ({level} interval)", cell(avg, "predicted", fa), cell(cum, "predicted", fc)),
            (f"Absolute effect ({level})", cell(avg, "abs_effect", fa), cell(cum, "abs_effect", fc)),
            (f"Relative effect ({level})", cell(avg, "rel_effect", pct), cell(cum, "rel_effect", pct)),
        ]
        w0 = max(len(a) for a, _, _ in lines)
        w1 = max(len(b) for _, b, _ in lines)
        out = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in lines]
        out.append(f"Tail-area probability: {self.p_value_text} ({self.n_sims} simulated paths)")
        return "\n".join(out)

    def report(self, money: bool = False, width: int | None = None) -> str:
        """A plain-language paragraph: average and cumulative effect with intervals, p-value, verdict.

        ``money=True`` formats amounts as CAD. The wording never claims more than the interval
        supports: when it includes zero the text says that no effect cannot be ruled out.
        """
        avg, cum = self._row("average"), self._row("cumulative")
        fmt, fcum = _formatter(avg, money), _formatter(cum, money)
        unit = _UNIT[self.frequency]
        monthly = self.frequency == "monthly"
        level = f"{100 * (1 - self.alpha):g}%"
        post = self.series.filter(pl.col("period") == "post")
        n_post = post.height
        first, last = post["date"][0], post["date"][-1]
        if self.frequency == "index":
            span = f"periods {first} to {last}"
        else:
            span = f"{fmt_date(first, monthly=monthly)} to {fmt_date(last, monthly=monthly)}"
        plural = "" if n_post == 1 else "s"
        direction = "increase" if avg["abs_effect"] > 0 else "decrease"
        excludes_zero = cum["abs_effect_lo"] > 0 or cum["abs_effect_hi"] < 0

        parts = [
            f"Over the post-period ({span}, {n_post} {unit}{plural}) '{self.y}' averaged "
            f"{fmt(avg['actual'])} per {unit}. Had the pre-period relationship continued, the model "
            f"expected {fmt(avg['predicted'])} ({level} interval "
            f"{fmt_interval(avg['predicted_lo'], avg['predicted_hi'], fmt=fmt)}).",
            f"The estimated average effect is {fmt(avg['abs_effect'])} per {unit} "
            f"({level} interval {fmt_interval(avg['abs_effect_lo'], avg['abs_effect_hi'], fmt=fmt)}), "
            f"a relative effect of {fmt_pct(avg['rel_effect'], signed=True)} "
            f"{fmt_interval(avg['rel_effect_lo'], avg['rel_effect_hi'], fmt=fmt_pct, signed=True)}; "
            f"summed over the period it is {fcum(cum['abs_effect'])} "
            f"{fmt_interval(cum['abs_effect_lo'], cum['abs_effect_hi'], fmt=fcum)}.",
            f"Under the model, the probability of a post-period total at least this far from the "
            f"counterfactual in this direction is {self.p_value_text} (one-sided tail area).",
        ]
        if excludes_zero and self.p_value < self.alpha:
            parts.append(
                f"The interval excludes zero, so the data give strong evidence of {_article(direction)} "
                f"relative to the counterfactual -- provided the controls were not themselves affected "
                f"by the intervention and their pre-period relationship with '{self.y}' held afterwards."
            )
        elif excludes_zero:
            parts.append(
                f"The interval excludes zero but the tail-area probability is not below {self.alpha:g}, "
                f"so the evidence of {_article(direction)} is weak."
            )
        else:
            parts.append(
                f"The interval includes zero, so we cannot rule out no effect: an apparent {direction} "
                f"of this size could arise by chance under the model."
            )
        text = " ".join(parts)
        return textwrap.fill(text, width, break_on_hyphens=False) if width else text

    # -- chart -------------------------------------------------------------------------------
    def chart(self) -> alt.VConcatChart:
        """Three stacked panels: observed vs counterfactual, pointwise effect, cumulative effect.

        Bands are the ``1 - alpha`` intervals; the dashed vertical rule marks the post-period start.
        """
        data = self.series.drop("period")
        if data.height > _MAX_CHART_ROWS:
            step = math.ceil(data.height / _MAX_CHART_ROWS)
            data = data.gather_every(step)
        is_index = self.frequency == "index"
        xtype = "quantitative" if is_index else "temporal"
        x = alt.X("date", type=xtype, title="period" if is_index else "date")
        level = f"{100 * (1 - self.alpha):g}%"
        post_start = self.series.filter(pl.col("period") == "post")["date"][0]
        rule_data = pl.DataFrame({"date": [post_start]})
        rule = (
            alt.Chart(rule_data)
            .mark_rule(strokeDash=[4, 3], color="#555")
            .encode(x=alt.X("date", type=xtype))
        )
        base = alt.Chart(data)
        band_color = theme.BAND

        observed = base.transform_fold(["actual", "predicted"], as_=["series", "value"]).mark_line()
        observed = observed.encode(
            x=x,
            y=alt.Y("value:Q", title=self.y, scale=alt.Scale(zero=False)),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=["actual", "predicted"], range=theme.PALETTE[:2]),
                legend=alt.Legend(orient="top"),
            ),
            strokeDash=alt.StrokeDash(
                "series:N",
                scale=alt.Scale(domain=["actual", "predicted"], range=[[1, 0], [5, 3]]),
                legend=None,
            ),
        )
        band1 = base.mark_area(color=band_color, opacity=0.5).encode(
            x=x, y=alt.Y("predicted_lo:Q", title=self.y), y2="predicted_hi:Q"
        )
        top = (band1 + observed + rule).properties(
            height=200,
            title=alt.Title(f"'{self.y}': observed vs counterfactual", subtitle=f"band: {level} interval"),
        )

        def effect_panel(col: str, title: str, axis: str) -> alt.LayerChart:
            band = base.mark_area(color=band_color, opacity=0.5).encode(
                x=x, y=alt.Y(f"{col}_lo:Q", title=axis), y2=f"{col}_hi:Q"
            )
            line = base.mark_line(color=theme.PALETTE[0]).encode(x=x, y=f"{col}:Q")
            zero = alt.Chart(pl.DataFrame({"zero": [0.0]})).mark_rule(color="#888").encode(y="zero:Q")
            return (band + line + zero + rule).properties(height=150, title=title)

        return alt.vconcat(
            top,
            effect_panel("point_effect", "Pointwise effect (actual - counterfactual)", "effect"),
            effect_panel("cum_effect", "Cumulative effect", "cumulative effect"),
        ).resolve_scale(color="independent")


def _formatter(row: dict[str, float], money: bool):
    """A number formatter for one summary row: enough decimals that the interval ends differ."""
    width = min(
        (
            row[f"{k}_hi"] - row[f"{k}_lo"]
            for k in ("predicted", "abs_effect")
            if row[f"{k}_hi"] > row[f"{k}_lo"]
        ),
        default=1.0,
    )
    big = max(abs(row["actual"]), abs(row["predicted"]))
    if money and big >= 1e6:
        unit = 1e9 if big >= 1e9 else 1e6
        digits = int(min(4, max(1, math.ceil(-math.log10(width / unit)) + 1)))

        def f(x: float) -> str:
            return fmt_cad(x, digits=digits)

        return f
    digits = int(min(6, max(0, math.ceil(-math.log10(width)) + 1)))
    if money:

        def g(x: float) -> str:
            return (
                fmt_cad(x, digits=digits)
                if abs(x) >= 1e6
                else f"{'-' if x < 0 else ''}CA${fmt_num(abs(x), digits)}"
            )

        return g

    def h(x: float) -> str:
        return fmt_num(x, digits)

    return h


# ----------------------------------------------------------------------------------- input checks


def _coerce_bound(value: Any, kind: Frequency, what: str) -> dt.date | int:
    """Turn one window bound into the date column's type (a date, or an int for an index)."""
    if kind == "index":
        if isinstance(value, bool):
            raise InputError(f"{what} {value!r} must be an integer time index")
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise InputError(f"{what} {value!r} must be an integer time index (the date column holds integers)")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise InputError(f"{what} {value!r} must be a date or an ISO date string like '2022-08-05'")


def _coerce_period(period: Any, kind: Frequency, name: str) -> tuple[dt.date | int, dt.date | int]:
    if isinstance(period, str | bytes) or not hasattr(period, "__len__") or len(period) != 2:
        raise InputError(f"{name} must be a (start, end) pair, got {period!r}")
    start = _coerce_bound(period[0], kind, f"{name} start")
    end = _coerce_bound(period[1], kind, f"{name} end")
    if start > end:
        raise InputError(f"{name} start {start} is after its end {end}")
    return start, end


def _month_number(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def _examples(values: list[Any], k: int = 3) -> str:
    return ", ".join(str(v) for v in values[:k])


def _detect_frequency(dates: pl.Series, kind: str, date_col: str) -> Frequency:
    """Check the window's dates are unique and evenly spaced; return the frequency."""
    dup = dates.filter(dates.is_duplicated()).unique().sort()
    if dup.len():
        raise InputError(
            f"date column '{date_col}' has duplicated dates ({dup.len()} value(s), e.g. {_examples(dup.to_list())}); "
            "aggregate to one row per date first"
        )
    if dates.len() < 2:
        return "index" if kind == "index" else "daily"
    if kind == "index":
        steps = dates.diff().drop_nulls()
        if (steps != 1).any():
            missing = sorted(set(range(dates.min(), dates.max() + 1)) - set(dates.to_list()))
            raise InputError(
                f"date column '{date_col}' (integer index) has gaps: {len(missing)} missing value(s), "
                f"e.g. {_examples(missing)}; the series must be consecutive integers"
            )
        return "index"
    vals: list[dt.date] = dates.to_list()
    days = [(b - a).days for a, b in zip(vals, vals[1:], strict=False)]
    if all(d == 1 for d in days):
        return "daily"
    if all(d == 7 for d in days):
        return "weekly"
    if all(v.day == 1 for v in vals):
        months = [_month_number(v) for v in vals]
        if all(b - a == 1 for a, b in zip(months, months[1:], strict=False)):
            return "monthly"
        have = set(months)
        missing = [dt.date(m // 12, m % 12 + 1, 1) for m in range(months[0], months[-1]) if m not in have]
        raise InputError(
            f"date column '{date_col}' (monthly) has gaps: {len(missing)} missing month(s), "
            f"e.g. {_examples(missing)}; controls and response must share one complete calendar"
        )
    if min(days) == 1:
        have = set(vals)
        span = (vals[-1] - vals[0]).days
        missing = [
            vals[0] + dt.timedelta(days=i) for i in range(span) if vals[0] + dt.timedelta(days=i) not in have
        ]
        raise InputError(
            f"date column '{date_col}' (daily) has gaps: {len(missing)} missing date(s), "
            f"e.g. {_examples(missing)}; controls and response must share one complete calendar"
        )
    raise InputError(
        f"date column '{date_col}' is not evenly spaced (daily, weekly, or month-start monthly dates, "
        "or a consecutive integer index, are supported)"
    )


def _prepare_dates(frame: pl.DataFrame, date_col: str) -> tuple[pl.DataFrame, Literal["date", "index"]]:
    dtype = frame.schema[date_col]
    if dtype == pl.Date:
        kind: Literal["date", "index"] = "date"
    elif isinstance(dtype, pl.Datetime):
        frame = frame.with_columns(pl.col(date_col).dt.date())
        kind = "date"
    elif dtype.is_integer():
        frame = frame.with_columns(pl.col(date_col).cast(pl.Int64))
        kind = "index"
    elif dtype == pl.String:
        parsed = frame[date_col].str.to_date(strict=False)
        if parsed.null_count() > frame[date_col].null_count():
            raise InputError(
                f"date column '{date_col}' holds text that is not ISO dates (e.g. "
                f"{frame.filter(parsed.is_null())[date_col].drop_nulls().head(1).to_list()}); "
                "use YYYY-MM-DD dates or an integer time index"
            )
        frame = frame.with_columns(parsed.alias(date_col))
        kind = "date"
    else:
        raise InputError(f"date column '{date_col}' has type {dtype}; it must hold dates or integers")
    n_null = frame[date_col].null_count()
    if n_null:
        raise InputError(f"date column '{date_col}' has {n_null} missing value(s)")
    return frame.sort(date_col), kind


def _resolve_seasonality(
    seasonality: int | None | str, frequency: Frequency, n_pre: int, n_controls: int, level: bool
) -> int | None:
    if seasonality is None or (isinstance(seasonality, str) and seasonality == "none"):
        return None
    if isinstance(seasonality, str):
        if seasonality != "auto":
            raise InputError(f"seasonality must be 'auto', None, or an integer period, got {seasonality!r}")
        period = {"daily": 7, "monthly": 12}.get(frequency)
        if period is None or n_pre < 2 * period:
            return None
        if _length_problem(n_pre, n_controls, level, period) is not None:
            return None
        return period
    if isinstance(seasonality, bool) or not isinstance(seasonality, int | np.integer):
        raise InputError(f"seasonality must be 'auto', None, or an integer period, got {seasonality!r}")
    s = int(seasonality)
    if s in (0, 1):
        return None
    if s < 0:
        raise InputError(f"seasonality must be a positive period, got {s}")
    if n_pre < 2 * s:
        raise InputError(
            f"pre-period too short for seasonality {s}: it has {n_pre} points, fewer than 2 seasonal "
            f"cycles ({2 * s}); lengthen the pre-period or pass seasonality=None"
        )
    return s


def _length_problem(n_pre: int, n_controls: int, level: bool, season: int | None) -> str | None:
    """Pre-period length rule; returns a description of the shortfall or None.

    Estimated quantities: the variances (irregular, level when stochastic, seasonal), the initial
    level and one coefficient per control. The pre-period needs 3 points per quantity, and after the
    diffuse start-up of the filter (one point per state) still 3 points per variance.
    """
    n_var = 1 + int(level) + int(season is not None)
    k_states = 1 + n_controls + (season - 1 if season else 0)
    need = max(3 * (n_var + 1 + n_controls), k_states + 3 * n_var)
    if n_pre < need:
        return (
            f"pre-period too short: it has {n_pre} points but the model "
            f"({n_controls} control(s){f', seasonality {season}' if season else ''}) needs at least {need} "
            "(3 per estimated parameter)"
        )
    return None


# ------------------------------------------------------------------------------------ model fit


class _Spec(NamedTuple):
    level_bound: float  # upper bound of the level variance (0 = deterministic level)
    season: int | None


def _build_model(y: np.ndarray, X: np.ndarray | None, spec: _Spec):
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    kw: dict[str, Any] = {}
    if spec.season:
        kw.update(seasonal=spec.season, stochastic_seasonal=True)
    if X is not None:
        kw.update(exog=X, mle_regression=False)
    return UnobservedComponents(
        y,
        irregular=True,
        level=True,
        stochastic_level=spec.level_bound > 0,
        use_exact_diffuse=True,
        **kw,
    )


def _to_params(theta: np.ndarray, spec: _Spec) -> np.ndarray:
    """Map unconstrained ``theta`` to statsmodels' params (variances), enforcing the level bound."""
    theta = np.clip(theta, -30.0, 30.0)
    out = [math.exp(min(max(theta[0], -25.0), 10.0))]
    i = 1
    if spec.level_bound > 0:
        t2 = theta[i] ** 2
        out.append(spec.level_bound * t2 / (1.0 + t2))
        i += 1
    if spec.season:
        out.append(theta[i] ** 2)
    return np.asarray(out, dtype=float)


def _fit(model, spec: _Spec) -> tuple[np.ndarray, np.ndarray]:
    """Maximum likelihood in the transformed space; returns (theta_hat, covariance of theta)."""
    from scipy.optimize import minimize

    def nll(theta: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = model.loglike(_to_params(theta, spec))
        return -v if np.isfinite(v) else 1e12

    starts = []
    for lvl in (0.5, 3.0) if spec.level_bound > 0 else (None,):
        th = [math.log(0.3)] + ([lvl] if lvl is not None else []) + ([0.05] if spec.season else [])
        starts.append(np.asarray(th))
    best = None
    for th0 in starts:
        # BFGS on the unconstrained theta (the transformation already enforces every constraint)
        res = minimize(nll, th0, method="BFGS", options={"maxiter": 200})
        if best is None or res.fun < best.fun:
            best = res
    theta = np.asarray(best.x, dtype=float)
    # Level/seasonal enter as squares: report the non-negative root (the likelihood is even in them).
    theta[1:] = np.abs(theta[1:])
    cov = _inverse_hessian(nll, theta)
    return theta, cov


def _inverse_hessian(f, theta: np.ndarray, max_var: float = 25.0) -> np.ndarray:
    """Covariance from a central-difference Hessian, regularised to be positive definite."""
    k = theta.size
    h = 1e-3 * np.maximum(np.abs(theta), 1.0)
    H = np.empty((k, k))
    f0 = f(theta)
    for i in range(k):
        for j in range(i, k):
            if i == j:
                e = np.zeros(k)
                e[i] = h[i]
                H[i, i] = (f(theta + e) - 2 * f0 + f(theta - e)) / h[i] ** 2
            else:
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i], ej[j] = h[i], h[j]
                H[i, j] = H[j, i] = (
                    f(theta + ei + ej) - f(theta + ei - ej) - f(theta - ei + ej) + f(theta - ei - ej)
                ) / (4 * h[i] * h[j])
    if not np.all(np.isfinite(H)):
        return np.zeros((k, k))
    w, V = np.linalg.eigh((H + H.T) / 2)
    w = np.maximum(w, 1.0 / max_var)
    return (V / w) @ V.T


def _simulate(
    model,
    spec: _Spec,
    theta: np.ndarray,
    cov: np.ndarray,
    X_ahead: np.ndarray | None,
    horizon: int,
    n_sims: int,
    rng: np.random.Generator,
    param_uncertainty: bool,
) -> np.ndarray:
    """Counterfactual paths (horizon x n_sims, standardized units) anchored at the pre-period end."""
    n_groups = max(1, min(40, n_sims // 50)) if param_uncertainty else 1
    sizes = np.full(n_groups, n_sims // n_groups)
    sizes[: n_sims % n_groups] += 1
    if param_uncertainty:
        draws = rng.multivariate_normal(theta, cov, size=n_groups, method="eigh")
    else:
        draws = theta[None, :]
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for th, m in zip(draws, sizes, strict=True):
            res = model.filter(_to_params(th, spec))
            sim = res.simulate(horizon, anchor="end", repetitions=int(m), exog=X_ahead, rng=rng)
            paths.append(np.asarray(sim).reshape(horizon, int(m)))
    return np.concatenate(paths, axis=1)


# ------------------------------------------------------------------------------------- estimator


def estimate_impact(
    frame: pl.DataFrame,
    y: str,
    pre_period: tuple[PeriodBound, PeriodBound],
    post_period: tuple[PeriodBound, PeriodBound],
    controls: list[str] | None = None,
    date_col: str = "date",
    alpha: float = 0.05,
    seasonality: int | None | Literal["auto"] = "auto",
    prior_level_sd: float = 0.01,
    n_sims: int = 1000,
    seed: int = 0,
    param_uncertainty: bool = True,
) -> ImpactResult:
    """Estimate the effect of an intervention on ``y`` over ``post_period`` (CausalImpact-style).

    ``frame`` holds ``date_col`` (``pl.Date``/``pl.Datetime``, ISO date strings, or an integer time
    index), the response ``y`` and optional ``controls`` -- series the intervention did not affect.
    ``pre_period``/``post_period`` are inclusive ``(start, end)`` pairs in the date column's type
    (dates or ISO strings; integers for an index). Only rows from the pre-period start to the
    post-period end are used; rows between the two windows (a transition gap) are forecast but not
    counted in the effect.

    ``seasonality``: ``"auto"`` uses day-of-week (7) for daily and month-of-year (12) for monthly
    month-start dates when the pre-period covers at least 2 cycles (and is long enough for the extra
    states), none otherwise; an integer forces that period; ``None`` switches it off.
    ``prior_level_sd`` bounds the sd of the level's random walk in pre-period-standardized units
    (CausalImpact's ``prior.level.sd``). ``n_sims`` counterfactual paths are simulated with the
    generator seeded by ``seed``; ``param_uncertainty`` also draws the variance parameters.

    Raises :class:`cannabis_market.errors.InputError` on bad input (see the messages).
    """
    # --- arguments
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(n_sims, bool) or not isinstance(n_sims, int | np.integer) or n_sims < 100:
        raise InputError(f"n_sims must be an integer of at least 100, got {n_sims!r}")
    if (
        isinstance(prior_level_sd, bool)
        or not isinstance(prior_level_sd, int | float)
        or not math.isfinite(prior_level_sd)
        or prior_level_sd < 0
    ):
        raise InputError(f"prior_level_sd must be a finite number >= 0, got {prior_level_sd!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(f"seed must be an integer, got {seed!r}")
    if not isinstance(frame, pl.DataFrame):
        raise InputError(f"frame must be a polars DataFrame, got {type(frame).__name__}")
    if controls is None:
        controls = []
    elif isinstance(controls, str):
        controls = [controls]
    else:
        controls = list(controls)
    if y in controls:
        raise InputError(f"response '{y}' is also listed as a control column")
    if len(set(controls)) != len(controls):
        raise InputError(f"control columns are listed twice: {controls}")
    missing = [c for c in [date_col, y, *controls] if c not in frame.columns]
    if missing:
        roles = {date_col: "date column", y: "response column"}
        named = ", ".join(f"{roles.get(c, 'control column')} '{c}'" for c in missing)
        raise InputError(f"{named} not present in the data (columns: {', '.join(frame.columns)})")
    for c in [y, *controls]:
        if not frame.schema[c].is_numeric():
            raise InputError(f"column '{c}' must be numeric, it has type {frame.schema[c]}")

    data, date_kind = _prepare_dates(frame.select(date_col, y, *controls), date_col)
    kind_for_bounds: Frequency = "index" if date_kind == "index" else "daily"
    pre = _coerce_period(pre_period, kind_for_bounds, "pre_period")
    post = _coerce_period(post_period, kind_for_bounds, "post_period")
    if post[0] <= pre[1]:
        raise InputError(
            f"post_period must start after the pre-period ends: post starts {post[0]}, pre ends {pre[1]} "
            "(the periods overlap or are in the wrong order)"
        )
    d_min, d_max = data[date_col].min(), data[date_col].max()
    for name, (a, b) in (("pre_period", pre), ("post_period", post)):
        if a < d_min or b > d_max:
            raise InputError(f"{name} {a} to {b} is outside the data, which run from {d_min} to {d_max}")

    window = data.filter(pl.col(date_col).is_between(pre[0], post[1]))
    frequency = _detect_frequency(window[date_col], date_kind, date_col)
    dates = window[date_col]
    is_pre = (dates <= pre[1]).to_numpy()
    is_post = (dates >= post[0]).to_numpy()
    n_pre, n_post = int(is_pre.sum()), int(is_post.sum())
    if n_pre == 0 or n_post == 0:
        which = "pre_period" if n_pre == 0 else "post_period"
        raise InputError(f"{which} contains no rows of the data")

    bad = []
    for c in [y, *controls]:
        col = window[c].cast(pl.Float64)
        n_bad = col.null_count() + int(col.is_nan().sum() or 0) + int(col.is_infinite().sum() or 0)
        if n_bad:
            bad.append(f"'{c}' has {n_bad} missing value(s)")
    if bad:
        raise InputError(
            "missing values in the analysis window: " + "; ".join(bad) + " (fill or drop them first)"
        )

    Y = window[y].cast(pl.Float64).to_numpy()
    Xraw = window.select(controls).cast(pl.Float64).to_numpy() if controls else None
    mu_y = float(Y[is_pre].mean())
    sd_y = float(Y[is_pre].std(ddof=1)) if n_pre > 1 else 0.0
    if not sd_y > 1e-12 * max(1.0, abs(mu_y)):
        raise InputError(f"response '{y}' is constant in the pre-period; there is nothing to model")
    if Xraw is not None:
        mu_x = Xraw[is_pre].mean(axis=0)
        sd_x = Xraw[is_pre].std(axis=0, ddof=1)
        flat = [c for c, s, m in zip(controls, sd_x, mu_x, strict=True) if not s > 1e-12 * max(1.0, abs(m))]
        if flat:
            raise InputError(
                f"control column(s) {', '.join(repr(c) for c in flat)} constant in the pre-period"
            )
        Xs = (Xraw - mu_x) / sd_x
    else:
        Xs = None

    level_bound = float(prior_level_sd) ** 2
    season = _resolve_seasonality(seasonality, frequency, n_pre, len(controls), level_bound > 0)
    problem = _length_problem(n_pre, len(controls), level_bound > 0, season)
    if problem:
        raise InputError(problem)
    spec = _Spec(level_bound, season)

    # --- fit on the pre-period
    Ys = (Y - mu_y) / sd_y
    model = _build_model(Ys[is_pre], Xs[is_pre] if Xs is not None else None, spec)
    theta, cov = _fit(model, spec)
    params = _to_params(theta, spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = model.filter(params)

    # --- simulate the counterfactual after the pre-period (gap + post), jointly
    rng = np.random.default_rng(int(seed))
    horizon = len(Y) - n_pre
    X_ahead = Xs[n_pre:] if Xs is not None else None
    paths_s = _simulate(model, spec, theta, cov, X_ahead, horizon, int(n_sims), rng, param_uncertainty)
    paths = mu_y + sd_y * paths_s  # horizon x n_sims, original units

    series, summary, p_value = _assemble(
        dates, Y, fitted, paths, is_pre, is_post, n_pre, mu_y, sd_y, alpha, int(n_sims)
    )

    names = (
        ["sigma2_irregular"]
        + (["sigma2_level"] if level_bound > 0 else [])
        + (["sigma2_seasonal"] if season else [])
    )
    pinfo = {n: float(v) for n, v in zip(names, params, strict=True)}
    if controls:
        beta = _coefficients(fitted, len(controls))
        for c, b, s in zip(controls, beta, sd_x, strict=True):
            pinfo[f"beta_{c}"] = float(b * sd_y / s)
    return ImpactResult(
        y=y,
        controls=controls,
        series=series,
        alpha=float(alpha),
        p_value=p_value,
        n_sims=int(n_sims),
        seed=int(seed),
        frequency=frequency,
        seasonality=season,
        pre_period=pre,
        post_period=post,
        prior_level_sd=float(prior_level_sd),
        params=pinfo,
        _summary=summary,
    )


def _coefficients(fitted, k: int) -> np.ndarray:
    """Regression coefficients (standardized units) from the last filtered state."""
    names = list(fitted.model.state_names) if hasattr(fitted.model, "state_names") else []
    idx = [i for i, n in enumerate(names) if n.startswith("beta")]
    if len(idx) != k:  # statsmodels places the regression states last
        idx = list(range(fitted.filtered_state.shape[0] - k, fitted.filtered_state.shape[0]))
    return fitted.filtered_state[idx, -1]


def _assemble(
    dates: pl.Series,
    Y: np.ndarray,
    fitted,
    paths: np.ndarray,
    is_pre: np.ndarray,
    is_post: np.ndarray,
    n_pre: int,
    mu_y: float,
    sd_y: float,
    alpha: float,
    n_sims: int,
) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    from scipy.stats import norm

    n = len(Y)
    qlo, qhi = alpha / 2, 1 - alpha / 2
    pred = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)

    # pre-period: one-step-ahead predictions (null during the filter's diffuse start-up)
    f_mean = mu_y + sd_y * np.asarray(fitted.forecasts[0])
    f_sd = sd_y * np.sqrt(np.maximum(np.asarray(fitted.forecasts_error_cov[0, 0]), 0.0))
    z = norm.ppf(qhi)
    burn = int(getattr(fitted, "nobs_diffuse", 0) or 0)
    ok = np.arange(n_pre) >= burn
    pred[:n_pre] = np.where(ok, f_mean, np.nan)
    lo[:n_pre] = np.where(ok, f_mean - z * f_sd, np.nan)
    hi[:n_pre] = np.where(ok, f_mean + z * f_sd, np.nan)

    # after the pre-period: simulated paths
    pred[n_pre:] = paths.mean(axis=1)
    lo[n_pre:] = np.quantile(paths, qlo, axis=1)
    hi[n_pre:] = np.quantile(paths, qhi, axis=1)

    cum = np.full(n, np.nan)
    cum_lo = np.full(n, np.nan)
    cum_hi = np.full(n, np.nan)
    cum[is_pre] = 0.0
    post_rows = np.flatnonzero(is_post)
    sim_post = paths[post_rows - n_pre]  # n_post x n_sims
    eff_paths = Y[post_rows, None] - sim_post
    cum_paths = np.cumsum(eff_paths, axis=0)
    cum[post_rows] = cum_paths.mean(axis=1)
    cum_lo[post_rows] = np.quantile(cum_paths, qlo, axis=1)
    cum_hi[post_rows] = np.quantile(cum_paths, qhi, axis=1)

    period = np.where(is_pre, "pre", np.where(is_post, "post", "gap"))
    series = pl.DataFrame(
        {
            "date": dates,
            "period": period,
            "actual": Y,
            "predicted": pred,
            "predicted_lo": lo,
            "predicted_hi": hi,
            "point_effect": Y - pred,
            "point_effect_lo": Y - hi,
            "point_effect_hi": Y - lo,
            "cum_effect": cum,
            "cum_effect_lo": cum_lo,
            "cum_effect_hi": cum_hi,
        }
    ).with_columns(pl.col(pl.Float64).fill_nan(None))

    # summary over the post-period from per-path sums
    n_post = len(post_rows)
    actual_sum = float(Y[post_rows].sum())
    sim_sums = sim_post.sum(axis=0)
    rows = []
    for name, scale in (("average", 1.0 / n_post), ("cumulative", 1.0)):
        a = actual_sum * scale
        s = sim_sums * scale
        p_mean = float(s.mean())
        p_lo, p_hi = (float(v) for v in np.quantile(s, [qlo, qhi]))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_paths = (a - s) / s
        rel_paths = rel_paths[np.isfinite(rel_paths)]
        r_lo, r_hi = (
            (float(v) for v in np.quantile(rel_paths, [qlo, qhi])) if rel_paths.size else (math.nan,) * 2
        )
        rows.append(
            {
                "row": name,
                "actual": a,
                "predicted": p_mean,
                "predicted_lo": p_lo,
                "predicted_hi": p_hi,
                "abs_effect": a - p_mean,
                "abs_effect_lo": a - p_hi,
                "abs_effect_hi": a - p_lo,
                "rel_effect": (a - p_mean) / p_mean if p_mean != 0 else math.nan,
                "rel_effect_lo": r_lo,
                "rel_effect_hi": r_hi,
            }
        )
    summary = pl.DataFrame(rows, schema={"row": pl.String, **dict.fromkeys(_SUMMARY_COLUMNS, pl.Float64)})

    # one-sided tail area in the direction of the effect, counting the observation itself
    if actual_sum >= sim_sums.mean():
        extreme = int((sim_sums >= actual_sum).sum())
    else:
        extreme = int((sim_sums <= actual_sum).sum())
    p_value = (extreme + 1) / (n_sims + 1)
    return series, summary, float(p_value)


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
