"""Input checks for the impact model: argument validation, date coercion, the analysis window.

Everything a user can get wrong is caught here and reported as :class:`InputError` naming the column or
parameter and the rule, before any model is fitted. :func:`prepare` returns the standardized arrays the
model families fit.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl

from cannabis_market.errors import InputError

Frequency = Literal["daily", "weekly", "monthly", "index"]
PeriodBound = dt.date | dt.datetime | str | int
MAX_POINTS = 200_000  # longer windows are refused with a suggestion to aggregate


class Prepared(NamedTuple):
    """The analysis window as arrays: response/controls standardized on the pre-period."""

    dates: pl.Series
    Y: np.ndarray  # response, original units
    Ys: np.ndarray  # response, standardized
    Xs: np.ndarray | None  # controls, standardized (n x k)
    sd_x: np.ndarray | None
    mu_y: float
    sd_y: float
    is_pre: np.ndarray
    is_post: np.ndarray
    n_pre: int
    frequency: Frequency
    pre: tuple[Any, Any]
    post: tuple[Any, Any]


def check_arguments(alpha: Any, n_sims: Any, prior_level_sd: Any, seed: Any) -> None:
    """InputError for an out-of-range alpha, n_sims, prior_level_sd or seed."""
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


def check_controls(frame: Any, y: str, controls: Any, date_col: str) -> list[str]:
    """The control list, checked against the frame (present, numeric, not the response, no repeats)."""
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
    return controls


def prepare(
    frame: pl.DataFrame, y: str, controls: list[str], date_col: str, pre_period: Any, post_period: Any
) -> Prepared:
    """Coerce dates and windows, check the window is regular and complete, standardize on the pre-period."""
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
    if window.height > MAX_POINTS:
        raise InputError(
            f"the analysis window from {pre[0]} to {post[1]} has {window.height:,} rows, more than the "
            f"{MAX_POINTS:,} the impact model handles; aggregate the series (e.g. hourly to daily, or daily "
            "to weekly) or shorten pre_period -- a pre-period of a few hundred points is plenty"
        )
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
    mu_y = float(Y[is_pre].mean())
    sd_y = float(Y[is_pre].std(ddof=1)) if n_pre > 1 else 0.0
    if not sd_y > 1e-12 * max(1.0, abs(mu_y)):
        raise InputError(f"response '{y}' is constant in the pre-period; there is nothing to model")
    Xs = sd_x = None
    if controls:
        Xraw = window.select(controls).cast(pl.Float64).to_numpy()
        mu_x = Xraw[is_pre].mean(axis=0)
        sd_x = Xraw[is_pre].std(axis=0, ddof=1)
        flat = [c for c, s, m in zip(controls, sd_x, mu_x, strict=True) if not s > 1e-12 * max(1.0, abs(m))]
        if flat:
            raise InputError(
                f"control column(s) {', '.join(repr(c) for c in flat)} constant in the pre-period"
            )
        Xs = (Xraw - mu_x) / sd_x
    Ys = (Y - mu_y) / sd_y
    return Prepared(dates, Y, Ys, Xs, sd_x, mu_y, sd_y, is_pre, is_post, n_pre, frequency, pre, post)


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


def resolve_seasonality(
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
        if length_problem(n_pre, n_controls, level, period) is not None:
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


def length_problem(n_pre: int, n_controls: int, level: bool, season: int | None) -> str | None:
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
