"""The disclosure rules, in the lowest layer so analyses and reports apply the same ones.

*Primary suppression.* A cell (one row of an aggregated table, one period of a series, one model output)
is suppressed when fewer than `min_stores` stores built it, when one store makes more than `dominance`
of its value, or when the two largest stores make more than `dominance2` of it (cells of 3+ stores: with
`min_stores` <= 2 the user has accepted two-store cells). Its value columns
become null and `suppressed` is true, so readers see that something was withheld.

*Secondary (complementary) suppression.* When the cells of a table add up to a total that is shown (a
margin, a headline total next to a breakdown, a window total next to a monthly series), a lone suppressed
cell equals the total minus the shown cells. `secondary_flags` therefore widens the suppressed set, smallest
cells first, until what a reader can compute -- the sum of the suppressed cells -- is itself a safe cell:
built from at least `min_stores` stores and not dominated. `reports.publish` adds the per-run policy.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from cannabis_market.errors import InputError

FLAG_COLUMN = "suppressed"
N_STORES_COLUMN = "n_stores"
MAX_SHARE_COLUMN = "max_share"
TOP2_COLUMN = "top2_share"


def cell_stats(
    rows: pl.LazyFrame | pl.DataFrame,
    keys: Sequence[str],
    value: str = "revenue",
    store_col: str = "store_id",
) -> pl.DataFrame:
    """Per group of `keys`: the summed `value`, `n_stores`, `max_share` and `top2_share` (the largest
    and the two largest stores' shares of the group's value, on store totals within the group).

    A group whose total is not positive while some store has a non-zero value cannot be assessed: its
    shares are 1 (so it is suppressed)."""
    return cell_stats_query(rows, keys, value, store_col).collect()


def cell_stats_query(
    rows: pl.LazyFrame | pl.DataFrame,
    keys: Sequence[str],
    value: str = "revenue",
    store_col: str = "store_id",
) -> pl.LazyFrame:
    """`cell_stats` as a LazyFrame, to collect with sibling queries (`pl.collect_all`)."""
    lf = rows.lazy() if isinstance(rows, pl.DataFrame) else rows
    keys = list(keys)
    per_store = lf.group_by([*keys, store_col]).agg(pl.col(value).sum().alias("__v"))
    aggs = [
        pl.col("__v").sum().alias(value),
        pl.col(store_col).n_unique().alias(N_STORES_COLUMN),
        pl.col("__v").abs().top_k(1).sum().alias("__t1"),
        pl.col("__v").abs().top_k(2).sum().alias("__t2"),
    ]
    out = per_store.group_by(keys).agg(aggs) if keys else per_store.select(aggs)

    def share(top: str) -> pl.Expr:
        return (
            pl.when(pl.col(value) > 0)
            .then(pl.min_horizontal(pl.col(top) / pl.col(value), pl.lit(1.0)))
            .when(pl.col(top) == 0)
            .then(0.0)
            .otherwise(1.0)
        )

    out = out.with_columns(share("__t1").alias(MAX_SHARE_COLUMN), share("__t2").alias(TOP2_COLUMN))
    out = out.select([*keys, value, N_STORES_COLUMN, MAX_SHARE_COLUMN, TOP2_COLUMN])
    return out.sort(keys, nulls_last=True) if keys else out


def cell_is_safe(
    n_stores: int | None,
    top_share: float | None,
    top2_share: float | None = None,
    min_stores: int = 3,
    dominance: float = 0.5,
    dominance2: float | None = 0.75,
) -> bool:
    """The primary rule for one cell: enough stores, and no dominance (unknown counts/shares fail)."""
    if n_stores is None or n_stores < min_stores or top_share is None or top_share > dominance:
        return False
    two_dominate = dominance2 is not None and top2_share is not None and top2_share > dominance2
    return not (two_dominate and n_stores > 2)


def secondary_flags(
    values: Sequence[float | None],
    n_stores: Sequence[int | None],
    top_shares: Sequence[float | None],
    flags: Sequence[bool],
    top2_shares: Sequence[float | None] | None = None,
    *,
    disjoint: bool = True,
    min_stores: int = 3,
    dominance: float = 0.5,
    dominance2: float | None = 0.75,
) -> list[bool]:
    """Widen primary `flags` of cells that add up to a shown total until the suppressed remainder is safe.

    The remainder (total minus shown cells) is the sum of the suppressed cells; it must pass the primary
    rule as one cell. With `disjoint` cells (each store in one cell, e.g. regions) its store count is the
    sum of the cells' and its largest stores are the largest among the cells'; otherwise (a store may sit
    in several cells: categories, months) the bounds are conservative: the largest cell count, and the
    cells' top stores added up. Cells are added smallest value first; cells with no value count as 0.
    """
    n = len(values)
    flags = [bool(f) for f in flags]
    if not any(flags) or all(flags):
        return flags
    t2s = list(top2_shares) if top2_shares is not None else [None] * n
    v = [abs(float(x)) if x is not None else 0.0 for x in values]
    t1 = [(s if s is not None else 1.0) * v[i] for i, s in enumerate(top_shares)]
    t2 = [(s if s is not None else 1.0) * v[i] for i, s in enumerate(t2s)]
    if top2_shares is None:
        t2 = [min(v[i], 2 * t1[i]) for i in range(n)]
    cnt = [int(c) if c is not None else 0 for c in n_stores]

    def safe(chosen: list[int]) -> bool:
        if len(chosen) < 2:
            return False  # one suppressed cell is exactly the remainder
        total = sum(v[i] for i in chosen)
        if disjoint:
            n_union = sum(cnt[i] for i in chosen)
            tops = sorted([t1[i] for i in chosen] + [t2[i] - t1[i] for i in chosen], reverse=True)
            top1, top2 = tops[0], sum(tops[:2])
        else:
            n_union = max(cnt[i] for i in chosen)
            top1 = min(sum(t1[i] for i in chosen), total)
            top2 = min(sum(t2[i] for i in chosen), total)
        if total <= 0:
            return n_union >= min_stores and top1 == 0
        return cell_is_safe(
            n_union,
            top1 / total,
            top2 / total if dominance2 is not None else None,
            min_stores,
            dominance,
            dominance2,
        )

    chosen = [i for i in range(n) if flags[i]]
    while not safe(chosen):
        rest = sorted((i for i in range(n) if not flags[i]), key=lambda i: (v[i], i))
        if not rest:
            break
        flags[rest[0]] = True
        chosen.append(rest[0])
    return flags


def suppress_cells(
    df: pl.DataFrame,
    value_cols: str | Sequence[str],
    min_stores: int = 3,
    dominance: float = 0.5,
    n_stores_col: str = N_STORES_COLUMN,
    max_share_col: str | None = MAX_SHARE_COLUMN,
    keep_share: bool = False,
    *,
    dominance2: float | None = 0.75,
    margin: bool = False,
    groups: Sequence[str] = (),
    disjoint: bool = True,
    weight: str | None = None,
) -> pl.DataFrame:
    """Null `value_cols` in rows from too few stores or dominated by one or two stores, and flag them.

    Rows with an unknown store count or share are suppressed (conservative); a `top2_share` column, when
    present, applies the two-largest rule (`dominance2`). With `margin=True` the rows (within each
    `groups` combination) add up to a total shown elsewhere, and secondary suppression is applied on
    `weight` (default: the first value column; see `secondary_flags`). The share columns are dropped unless
    `keep_share`: next to the value they would reveal the largest stores' sales.
    """
    values = [value_cols] if isinstance(value_cols, str) else list(value_cols)
    need = [*values, n_stores_col, *([max_share_col] if max_share_col else []), *groups]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(
            f"suppress: column(s) {', '.join(missing)} not in the frame ({', '.join(df.columns)})"
        )
    has_top2 = TOP2_COLUMN in df.columns and max_share_col is not None
    rule = pl.col(n_stores_col).is_null() | (pl.col(n_stores_col) < min_stores)
    if max_share_col:
        rule = rule | pl.col(max_share_col).is_null() | (pl.col(max_share_col) > dominance)
    if has_top2 and dominance2 is not None:
        rule = rule | ((pl.col(TOP2_COLUMN) > dominance2) & (pl.col(n_stores_col) > 2))
    out = df.with_columns(rule.fill_null(True).alias(FLAG_COLUMN))
    if margin and max_share_col:
        out = _with_secondary(
            out,
            weight or values[0],
            n_stores_col,
            max_share_col,
            has_top2,
            groups,
            disjoint,
            min_stores,
            dominance,
            dominance2,
        )
    out = out.with_columns(
        [pl.when(pl.col(FLAG_COLUMN)).then(None).otherwise(pl.col(c)).alias(c) for c in values]
    )
    if max_share_col and not keep_share:
        out = out.drop(max_share_col, *([TOP2_COLUMN] if has_top2 else []))
    return out


def _with_secondary(
    df: pl.DataFrame,
    weight: str,
    n_col: str,
    share_col: str,
    has_top2: bool,
    groups: Sequence[str],
    disjoint: bool,
    min_stores: int,
    dominance: float,
    dominance2: float | None,
) -> pl.DataFrame:
    idx = df.with_row_index("__row")
    flags = df[FLAG_COLUMN].to_list()
    parts = idx.partition_by(list(groups), maintain_order=True) if groups else [idx]
    for part in parts:
        new = secondary_flags(
            part[weight].to_list(),
            part[n_col].to_list(),
            part[share_col].to_list(),
            part[FLAG_COLUMN].to_list(),
            part[TOP2_COLUMN].to_list() if has_top2 else None,
            disjoint=disjoint,
            min_stores=min_stores,
            dominance=dominance,
            dominance2=dominance2,
        )
        for row, flag in zip(part["__row"].to_list(), new, strict=True):
            flags[row] = flag
    return df.with_columns(pl.Series(FLAG_COLUMN, flags, dtype=pl.Boolean))
