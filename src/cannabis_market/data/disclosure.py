"""The disclosure rule, in the lowest layer so analyses and reports apply the same one.

A cell (one row of an aggregated table) is suppressed when fewer than `min_stores` stores built it or one
store makes more than `dominance` of its value: its value columns become null and `suppressed` is true,
so readers see that something was withheld. `reports.safe` adds the per-run policy on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from cannabis_market.errors import InputError

FLAG_COLUMN = "suppressed"
N_STORES_COLUMN = "n_stores"
MAX_SHARE_COLUMN = "max_share"


def suppress_cells(
    df: pl.DataFrame,
    value_cols: str | Sequence[str],
    min_stores: int = 3,
    dominance: float = 0.5,
    n_stores_col: str = N_STORES_COLUMN,
    max_share_col: str | None = MAX_SHARE_COLUMN,
    keep_share: bool = False,
) -> pl.DataFrame:
    """Null `value_cols` in rows from too few stores or dominated by one store, and flag them.

    Rows with an unknown store count or share are suppressed (conservative). The share column is dropped
    unless `keep_share`: next to the value it would reveal the largest store's sales.
    """
    values = [value_cols] if isinstance(value_cols, str) else list(value_cols)
    need = [*values, n_stores_col, *([max_share_col] if max_share_col else [])]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(
            f"suppress: column(s) {', '.join(missing)} not in the frame ({', '.join(df.columns)})"
        )
    rule = pl.col(n_stores_col).is_null() | (pl.col(n_stores_col) < min_stores)
    if max_share_col:
        rule = rule | pl.col(max_share_col).is_null() | (pl.col(max_share_col) > dominance)
    out = df.with_columns(rule.fill_null(True).alias(FLAG_COLUMN)).with_columns(
        [pl.when(pl.col(FLAG_COLUMN)).then(None).otherwise(pl.col(c)).alias(c) for c in values]
    )
    if max_share_col and not keep_share:
        out = out.drop(max_share_col)
    return out
