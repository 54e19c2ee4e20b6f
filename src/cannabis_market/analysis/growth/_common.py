"""Helpers shared by the growth modules: input checks, month arithmetic, money text, BLAS threads."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

from cannabis_market.errors import InputError
from cannabis_market.format import fmt_cad

MAX_CHART_ROWS = 5_000


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


def _as_date(x: dt.date | str, name: str) -> dt.date:
    if isinstance(x, dt.datetime):
        return x.date()
    if isinstance(x, dt.date):
        return x
    try:
        return dt.date.fromisoformat(str(x) if len(str(x)) > 7 else f"{x}-01")
    except ValueError as e:
        raise InputError(f"{name}: expected a date like '2019-04-01', got {x!r}") from e
