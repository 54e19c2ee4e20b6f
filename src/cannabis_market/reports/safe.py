"""Safe to share: suppress figures that could reveal one store's confidential sales.

A cell (one row of an aggregated table) is *suppressed* when it is built from fewer than ``min_stores``
stores, when one store makes up more than ``dominance`` of its value, or the two largest stores more than
``dominance2``. Suppressed cells stay in the
table -- their value columns become null and the boolean column ``suppressed`` is true, and tables show
the word "suppressed" -- so a reader sees that something was withheld rather than a silently missing row.

Reports never show store-level rows: ``assert_no_store_rows`` refuses any frame with a ``store_id`` column.
The notebook display helpers call ``assert_safe`` before every table and chart, which also refuses a
``max_share`` column and rows with ``n_stores`` below the threshold that were never passed through
``suppress`` (no ``suppressed`` column).

Defaults (3 stores, 0.5 and 0.75 shares) come from the policy, which a report can change per run through
``set_policy`` (``nb.setup(min_stores=..., dominance=..., dominance2=...)`` does that from notebook
parameters) or the environment variables ``CM_MIN_STORES`` / ``CM_DOMINANCE`` / ``CM_DOMINANCE2``.

Secondary suppression: ``aggregate_safely(..., margin=True)`` / ``suppress(..., margin=True)`` when the
rows add up to a total shown elsewhere (see ``data.disclosure.secondary_flags``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from cannabis_market.data.disclosure import (
    FLAG_COLUMN,
    MAX_SHARE_COLUMN,
    N_STORES_COLUMN,
    TOP2_COLUMN,
    suppress_cells,
)
from cannabis_market.errors import InputError

STORE_COLUMN = "store_id"


class DisclosureError(InputError):
    """A frame about to reach a report would disclose store-level data."""


@dataclass(frozen=True)
class Policy:
    """Suppression thresholds: at least ``min_stores`` stores, no store above ``dominance`` of the value,
    the two largest stores not above ``dominance2``."""

    min_stores: int = 3
    dominance: float = 0.5
    dominance2: float = 0.75

    def __post_init__(self) -> None:
        if not isinstance(self.min_stores, int) or isinstance(self.min_stores, bool) or self.min_stores < 1:
            raise InputError(f"min_stores must be a whole number >= 1, got {self.min_stores!r}")
        if not (0 < float(self.dominance) <= 1):
            raise InputError(f"dominance must be a share in (0, 1], got {self.dominance!r}")
        if not (float(self.dominance) <= float(self.dominance2) <= 1):
            raise InputError(f"dominance2 must be a share in [dominance, 1], got {self.dominance2!r}")


def _policy_from_env() -> Policy:
    try:
        return Policy(
            int(os.environ.get("CM_MIN_STORES", "3")),
            float(os.environ.get("CM_DOMINANCE", "0.5")),
            float(os.environ.get("CM_DOMINANCE2", "0.75")),
        )
    except ValueError as exc:
        raise InputError(f"CM_MIN_STORES / CM_DOMINANCE / CM_DOMINANCE2: {exc}") from None


_policy: Policy | None = None


def policy() -> Policy:
    """The thresholds in force (set_policy, else CM_MIN_STORES / CM_DOMINANCE, else 3 and 0.5)."""
    return _policy if _policy is not None else _policy_from_env()


def set_policy(
    min_stores: int | None = None, dominance: float | None = None, dominance2: float | None = None
) -> Policy:
    """Change the thresholds for this process (None keeps the current value); returns the new policy."""
    global _policy
    _policy = _resolve(min_stores, dominance, dominance2)
    return _policy


def _resolve(min_stores: int | None, dominance: float | None, dominance2: float | None = None) -> Policy:
    cur = policy()
    dom = cur.dominance if dominance is None else float(dominance)
    return Policy(
        cur.min_stores if min_stores is None else int(min_stores),
        dom,
        max(cur.dominance2, dom) if dominance2 is None else float(dominance2),
    )


def _columns(frame: Any) -> list[str]:
    if isinstance(frame, pl.LazyFrame):
        return list(frame.collect_schema().names())
    cols = getattr(frame, "columns", None)
    if cols is not None:
        return [str(c) for c in cols]
    if isinstance(frame, Sequence) and frame and isinstance(frame[0], dict):
        return [str(k) for k in frame[0]]
    return []


def has_store_rows(frame: Any) -> bool:
    """True when ``frame`` (polars/pandas frame or list of records) has a ``store_id`` column."""
    return any(c.lower() == STORE_COLUMN for c in _columns(frame))


def assert_no_store_rows(frame: Any, what: str = "table") -> None:
    """Raise DisclosureError when ``frame`` has a ``store_id`` column (store-level rows never reach a report)."""
    if has_store_rows(frame):
        raise DisclosureError(
            f"this {what} has a '{STORE_COLUMN}' column: reports never show store-level rows. "
            "Aggregate first, e.g. cannabis_market.reports.safe.aggregate_safely(sales, by=[...])."
        )


def assert_safe(frame: Any, what: str = "table", min_stores: int | None = None) -> None:
    """Refuse a frame that is not safe to show (DisclosureError); used before every table and chart.

    Refused: a ``store_id`` column (store-level rows); a ``max_share`` column (next to the value it gives the
    largest store's sales); rows with ``n_stores`` below the threshold when there is no ``suppressed``
    column (the frame was never passed through ``suppress``/``aggregate_safely``).
    """
    assert_no_store_rows(frame, what)
    cols = _columns(frame)
    share = next((c for c in (MAX_SHARE_COLUMN, TOP2_COLUMN) if c in cols), None)
    if share:
        raise DisclosureError(
            f"this {what} has a '{share}' column, which next to the value reveals the largest "
            f"store's sales; pass the frame through suppress(df, value_cols) first (it drops the column)"
        )
    if N_STORES_COLUMN in cols and FLAG_COLUMN not in cols:
        limit = _resolve(min_stores, None).min_stores
        counts = _column_values(frame, N_STORES_COLUMN)
        low = sum(1 for n in counts if n is None or n < limit)
        if low:
            raise DisclosureError(
                f"this {what} has {low} row(s) built from fewer than {limit} stores and no "
                f"'{FLAG_COLUMN}' column; pass it through suppress(df, value_cols) or aggregate_safely() first"
            )


def _column_values(frame: Any, col: str) -> list[Any]:
    if isinstance(frame, pl.LazyFrame):
        return frame.select(col).collect()[col].to_list()
    if isinstance(frame, pl.DataFrame):
        return frame[col].to_list()
    if isinstance(frame, Sequence):
        return [r.get(col) for r in frame if isinstance(r, dict)]
    return list(frame[col])


def suppress(
    df: pl.DataFrame,
    value_cols: str | Sequence[str],
    n_stores_col: str = N_STORES_COLUMN,
    max_share_col: str | None = MAX_SHARE_COLUMN,
    min_stores: int | None = None,
    dominance: float | None = None,
    *,
    keep_share: bool = False,
    margin: bool = False,
    groups: Sequence[str] = (),
    disjoint: bool = True,
) -> pl.DataFrame:
    """Null the values of rows built from too few stores or dominated by one store, and flag them.

    ``n_stores_col`` holds how many stores contributed to each row, ``max_share_col`` the largest single
    store's share of the value (None when unknown: only the store-count rule applies). Adds/overwrites the
    boolean column ``suppressed``. The share column is dropped unless ``keep_share`` -- next to the value it
    would reveal the largest store's sales. ``margin``/``groups``/``disjoint``: secondary suppression for
    rows that add up to a shown total (``data.disclosure.suppress_cells``).
    """
    pol = _resolve(min_stores, dominance)
    return suppress_cells(
        df,
        value_cols,
        pol.min_stores,
        pol.dominance,
        n_stores_col,
        max_share_col,
        keep_share,
        dominance2=pol.dominance2,
        margin=margin,
        groups=groups,
        disjoint=disjoint,
    )


def aggregate_safely(
    sales: pl.LazyFrame | pl.DataFrame,
    by: str | Sequence[str],
    value: str | Sequence[str] = "revenue",
    min_stores: int | None = None,
    dominance: float | None = None,
    *,
    store_col: str = STORE_COLUMN,
    margin: bool = False,
    groups: Sequence[str] = (),
) -> pl.DataFrame:
    """Sum ``value`` over groups ``by`` from store-level rows, then suppress unsafe cells.

    Returns one row per group with the summed value column(s), ``n_stores`` (distinct contributing stores)
    and ``suppressed``. The largest store's share is computed per value column (on store totals within the
    group); a row is suppressed if any value column is dominated. Groups whose total is not positive while
    some store has a non-zero value cannot be assessed and are suppressed (conservative). ``margin=True``
    when the rows (within each ``groups`` combination, e.g. each period) add up to a total shown
    elsewhere: secondary suppression on the first value column (cells are store-disjoint only when
    ``by`` is a store attribute such as region; otherwise conservative bounds are used).
    """
    keys = [by] if isinstance(by, str) else list(by)
    values = [value] if isinstance(value, str) else list(value)
    lf = sales.lazy() if isinstance(sales, pl.DataFrame) else sales
    names = lf.collect_schema().names()
    missing = [c for c in [*keys, *values, store_col] if c not in names]
    if missing:
        raise InputError(
            f"aggregate_safely(): column(s) {', '.join(missing)} not in the data ({', '.join(names)})"
        )
    if store_col in keys:
        raise DisclosureError("aggregate_safely(): grouping by the store column would give store-level rows")
    per_store = lf.group_by([*keys, store_col]).agg([pl.col(v).sum() for v in values])
    share_cols = []
    aggs: list[pl.Expr] = [pl.col(store_col).n_unique().alias(N_STORES_COLUMN)]
    for v in values:
        total, top = f"__total_{v}", f"__top_{v}"
        aggs += [
            pl.col(v).sum().alias(total),
            pl.col(v).abs().max().alias(top),
            pl.col(v).abs().top_k(2).sum().alias(f"__top2_{v}"),
        ]
    grouped = per_store.group_by(keys).agg(aggs)
    exprs = []
    top2_cols = []
    for v in values:
        total = f"__total_{v}"
        for top, share, into in (
            (f"__top_{v}", f"__share_{v}", share_cols),
            (f"__top2_{v}", f"__s2_{v}", top2_cols),
        ):
            exprs.append(
                pl.when(pl.col(total) > 0)
                .then(pl.min_horizontal(pl.col(top) / pl.col(total), pl.lit(1.0)))
                .when(pl.col(top) == 0)
                .then(0.0)
                .otherwise(1.0)
                .alias(share)
            )
            into.append(share)
    grouped = grouped.with_columns(exprs).with_columns(
        pl.max_horizontal(share_cols).alias(MAX_SHARE_COLUMN),
        pl.max_horizontal(top2_cols).alias(TOP2_COLUMN),
        *[pl.col(f"__total_{v}").alias(v) for v in values],
    )
    out = (
        grouped.select([*keys, *values, N_STORES_COLUMN, MAX_SHARE_COLUMN, TOP2_COLUMN])
        .sort(keys, nulls_last=True)
        .collect()
    )
    disjoint = all(k in ("region", "municipality", "chain") for k in keys if k not in groups)
    return suppress(
        out,
        values,
        N_STORES_COLUMN,
        MAX_SHARE_COLUMN,
        min_stores,
        dominance,
        margin=margin,
        groups=groups,
        disjoint=disjoint,
    )
