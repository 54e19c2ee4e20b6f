"""One formatter for text, tables and axes: money in the dataset's currency, shares, counts, p-values, dates.

Reports are read by people who never see the data, so every figure is written the same way wherever it
appears: money with the currency of the dataset and k/M/B (CA$2.5B, US$118k), shares and rates as %,
counts as whole numbers, p-values as "< 0.001", months as "Apr 2022". The currency is taken from the
dataset's manifest: analyses call `use_currency(manifest)` (a context variable, so one kernel or thread
formats one dataset at a time without passing the code through every function).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import math
from collections.abc import Iterator, Mapping
from typing import Any

# Currency symbols that make the country plain (CA$ vs US$); any other ISO code is written "EUR 1.2M".
SYMBOLS = {"CAD": "CA$", "USD": "US$", "AUD": "A$", "NZD": "NZ$", "GBP": "£", "EUR": "€"}
_CURRENCY: contextvars.ContextVar[str] = contextvars.ContextVar("cannabis_market_currency", default="CAD")


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def currency_code(source: str | Mapping[str, Any] | None = None) -> str:
    """The ISO currency code of `source` (a code, a manifest mapping, or None for the active one)."""
    if source is None:
        return _CURRENCY.get()
    if isinstance(source, Mapping):
        code = source.get("currency")
        return str(code).upper() if isinstance(code, str) and code.strip() else _CURRENCY.get()
    return str(source).upper()


def currency_symbol(code: str | Mapping[str, Any] | None = None) -> str:
    """'CA$' for CAD, 'US$' for USD, 'EUR ' style prefix for codes without a plain symbol."""
    iso = currency_code(code)
    return SYMBOLS.get(iso, f"{iso} ")


def set_currency(source: str | Mapping[str, Any] | None) -> contextvars.Token:
    """Make `source`'s currency the one money is written in (returns a token for `reset_currency`)."""
    return _CURRENCY.set(currency_code(source) if source is not None else "CAD")


def reset_currency(token: contextvars.Token) -> None:
    """Undo a `set_currency`."""
    _CURRENCY.reset(token)


@contextlib.contextmanager
def use_currency(source: str | Mapping[str, Any] | None) -> Iterator[str]:
    """Format money in `source`'s currency inside the block."""
    token = set_currency(source)
    try:
        yield _CURRENCY.get()
    finally:
        _CURRENCY.reset(token)


def round_sig(x: float, sig: int = 3) -> float:
    """Round to `sig` significant digits: the one rounding rule for published figures (the publish step
    and the money formatter both use it)."""
    if _missing(x) or x == 0 or math.isinf(x):
        return x
    return float(f"{float(x):.{sig}g}")


def fmt_money(
    x: float | None, digits: int | None = None, currency: str | Mapping[str, Any] | None = None, sig: int = 3
) -> str:
    """Money compactly in the active (or given) currency: 2_513_000_000 -> 'CA$2.51B', 118_400 -> 'US$118k'.

    By default three significant digits; `digits` fixes the decimals after the k/M/B instead.
    """
    if _missing(x):
        return "n/a"
    symbol = currency_symbol(currency)
    sign = "-" if x < 0 else ""
    a = abs(float(x))
    if math.isinf(a):
        return f"{sign}{symbol}∞"
    if digits is None:
        a = round_sig(a, sig)
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        v = a / div
        d = digits if digits is not None else max(0, sig - 1 - int(math.floor(math.log10(v)))) if v > 0 else 0
        if round(v, d) >= 1:  # 999,960 with one decimal is "1.0M", never "1,000.0k"
            return f"{sign}{symbol}{v:,.{d}f}{suf}"
    small = 2 if 0 < a < 10 else 0
    d = small if digits is None else (min(digits, 2) if a < 100 else 0)
    return f"{sign}{symbol}{a:,.{d}f}"


def fmt_cad(x: float | None, digits: int = 1, symbol: str | None = None) -> str:
    """Money with a fixed number of decimals after k/M/B ('CA$1.2M'); the currency is the active one.

    Kept for existing callers; `symbol` overrides the currency symbol.
    """
    if symbol is None:
        return fmt_money(x, digits=digits)
    if _missing(x):
        return "n/a"
    return fmt_money(x, digits=digits).replace(currency_symbol(), symbol, 1)


def fmt_pct(x: float | None, digits: int = 1, signed: bool = False) -> str:
    """Format a fraction as a percentage: 0.0219 -> '2.2%'; signed adds '+' for positives."""
    if _missing(x):
        return "n/a"
    return f"{100 * float(x):{'+' if signed else ''},.{digits}f}%"


def fmt_num(x: float | None, digits: int = 0) -> str:
    """Format a plain number with thousands separators (counts: digits=0)."""
    if _missing(x):
        return "n/a"
    return f"{float(x):,.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value as readers expect it: '< 0.001', '0.03', '0.41'."""
    if _missing(p):
        return "n/a"
    p = float(p)
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def _as_date(d: dt.date | dt.datetime | str) -> dt.date:
    if isinstance(d, str):
        return dt.date.fromisoformat(d[:10])
    return d.date() if isinstance(d, dt.datetime) else d


def fmt_date(d: dt.date | dt.datetime | str | None, monthly: bool = False) -> str:
    """ISO-like date for text: '2022-08-05', or 'Aug 2022' when monthly."""
    if d is None:
        return "n/a"
    d = _as_date(d)
    return d.strftime("%b %Y") if monthly else d.strftime("%Y-%m-%d")


def fmt_day(d: dt.date | dt.datetime | str | None) -> str:
    """A day for prose: '5 Aug 2022'."""
    if d is None:
        return "n/a"
    d = _as_date(d)
    return f"{d.day} {d.strftime('%b %Y')}"


def fmt_month(d: dt.date | dt.datetime | str | None) -> str:
    """A month for text and tables: 'Apr 2022'."""
    return fmt_date(d, monthly=True)


def fmt_interval(lo: float, hi: float, fmt=fmt_cad, **kw) -> str:
    """'[lo, hi]' with the same formatter as the point estimate."""
    return f"[{fmt(lo, **kw)}, {fmt(hi, **kw)}]"


def label(name: str) -> str:
    """A readable label from a column or category name: 'sales_of_stores_running_short' -> 'Sales of stores running short'."""
    text = str(name).replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else text
