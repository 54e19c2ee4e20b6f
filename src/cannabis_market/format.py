"""Number and date formatting for narrative text and tables (CAD, percent, dates)."""

from __future__ import annotations

import datetime as dt
import math


def fmt_cad(x: float | None, digits: int = 1, symbol: str = "CA$") -> str:
    """Format a dollar amount compactly: 1234567 -> 'CA$1.2M'; None/NaN -> 'n/a'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    sign = "-" if x < 0 else ""
    a = abs(float(x))
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}{symbol}{a / div:,.{digits}f}{suf}"
    return f"{sign}{symbol}{a:,.{min(digits, 2) if a < 100 else 0}f}"


def fmt_pct(x: float | None, digits: int = 1, signed: bool = False) -> str:
    """Format a fraction as a percentage: 0.0219 -> '2.2%'; signed adds '+' for positives."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    s = f"{100 * float(x):{'+' if signed else ''},.{digits}f}%"
    return s


def fmt_num(x: float | None, digits: int = 0) -> str:
    """Format a plain number with thousands separators."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):,.{digits}f}"


def fmt_date(d: dt.date | dt.datetime | str | None, monthly: bool = False) -> str:
    """ISO-like date for text: '2022-08-05', or 'Aug 2022' when monthly."""
    if d is None:
        return "n/a"
    if isinstance(d, str):
        d = dt.date.fromisoformat(d[:10])
    return d.strftime("%b %Y") if monthly else d.strftime("%Y-%m-%d")


def fmt_interval(lo: float, hi: float, fmt=fmt_cad, **kw) -> str:
    """'[lo, hi]' with the same formatter as the point estimate."""
    return f"[{fmt(lo, **kw)}, {fmt(hi, **kw)}]"
