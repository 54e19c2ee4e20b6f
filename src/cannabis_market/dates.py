"""The one place dates and period frequencies are coerced.

Every layer takes user dates as `datetime.date`, `datetime.datetime` or ISO strings ("2022-08-05";
"2022-08" means the 1st of the month) and date columns as `pl.Date`, `pl.Datetime` or ISO strings. Bad
values are an `InputError` naming the parameter (or column) and the rule. Frequency names come in two
spellings in the project ("month" in the data layer, "monthly" in the analyses); both are accepted here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from cannabis_market.errors import InputError

# canonical name -> (polars truncate/offset step, periods per year); aliases map onto these
_FREQS: dict[str, tuple[str, float]] = {
    "daily": ("1d", 365.25),
    "weekly": ("1w", 365.25 / 7),
    "monthly": ("1mo", 12.0),
    "quarterly": ("1q", 4.0),
    "annual": ("1y", 1.0),
}
_ALIASES = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly", "year": "annual"}
_ALIASES.update({"yearly": "annual", **{k: k for k in _FREQS}})


def frequency(freq: str, name: str = "freq") -> str:
    """Canonical frequency name ("daily", "weekly", "monthly", "quarterly", "annual") of `freq`.

    Accepts the short forms too ("day", "week", "month", "quarter", "year")."""
    canon = _ALIASES.get(str(freq).strip().lower()) if isinstance(freq, str) else None
    if canon is None:
        raise InputError(
            f"{name} must be one of {', '.join(_FREQS)} (or {', '.join(_ALIASES)}), got {freq!r}"
        )
    return canon


def every(freq: str) -> str:
    """polars duration string of one period of `freq` ("1mo" for monthly), for truncate/offset_by."""
    return _FREQS[frequency(freq)][0]


def periods_per_year(freq: str) -> float:
    """Number of periods of `freq` in a year (12 monthly, 365.25 daily)."""
    return _FREQS[frequency(freq)][1]


def to_date(value: Any, name: str = "date") -> dt.date | None:
    """`value` as a `datetime.date` (None and "" stay None).

    Accepts a date, a datetime (its date), or an ISO string "YYYY-MM-DD" (time part ignored) or "YYYY-MM"
    (the 1st of that month). Anything else is an InputError naming `name`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        s = value.strip()
        try:
            return dt.date.fromisoformat(f"{s}-01" if len(s) == 7 else s[:10])
        except ValueError:
            pass
    raise InputError(f"{name} must be a date (YYYY-MM-DD), got {value!r}")


def require_date(value: Any, name: str = "date") -> dt.date:
    """As `to_date`, but a missing value is an InputError too."""
    d = to_date(value, name)
    if d is None:
        raise InputError(f"{name} is required (a date, YYYY-MM-DD)")
    return d


def date_column(df: pl.DataFrame, col: str, where: str) -> pl.DataFrame:
    """`df` with column `col` as `pl.Date` (from Date, Datetime or ISO strings); InputError otherwise."""
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
