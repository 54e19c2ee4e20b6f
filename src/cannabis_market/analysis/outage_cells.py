"""Disclosure cells of the outage analysis: who builds each figure the outage report publishes.

The impact model charts two daily series (stores that ran short, stores that kept stock) and reports their
gap; the event study reports a loss per group (cover band, region). Each is a cell: `impact_contributors`
and `group_contributors` give their store counts and largest shares so the report can withhold figures
built from too few stores or dominated by one or two (`safe_group_table` does it for the group table,
with secondary suppression against the total loss shown beside it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import polars as pl

from cannabis_market.analysis.event_study import EventStudyResult
from cannabis_market.analysis.impact import ImpactResult
from cannabis_market.analysis.outage import (
    PARTIAL_DAYS,
    PARTIAL_FILL,
    STOP_DAYS,
    _as_date,
    _resolve,
    outage_treatment,
    store_days,
)
from cannabis_market.data.disclosure import (
    MAX_SHARE_COLUMN,
    N_STORES_COLUMN,
    TOP2_COLUMN,
    cell_stats,
    suppress_cells,
)
from cannabis_market.errors import InputError


def _worst(stats: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Per `keys`, the least safe cell of a series: fewest stores, largest top shares."""
    aggs = [
        pl.col(N_STORES_COLUMN).min(),
        pl.col(MAX_SHARE_COLUMN).max(),
        pl.col(TOP2_COLUMN).max(),
    ]
    if keys:
        return stats.group_by(list(keys)).agg(aggs).sort(list(keys))
    return stats.select(aggs)


def impact_contributors(
    ds: Any,
    region: str | None = "all",
    start: dt.date | str | None = None,
    outage_start: dt.date | str | None = None,
    post_end: dt.date | str | None = None,
    *,
    stop_days: int = STOP_DAYS,
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
) -> pl.DataFrame:
    """Who builds the impact model's series: per group (`treated` true/false; monthly data: one row),
    the fewest stores and the largest single and two-store shares over the days (months) of the window.

    Every period of the charted series is a cell, so the model's figures may only be published when
    both series pass the disclosure rule on every period (a one-store control group would chart that
    store's daily sales)."""
    o_start, o_end = _resolve(ds, outage_start)
    lo = _as_date(start, "start") or o_start - dt.timedelta(days=84)
    hi = _as_date(post_end, "post_end") or o_end
    sales = store_days(ds, lo, hi).lazy()  # per store and day: the same cells, read once per process
    stores = getattr(ds, "stores", None)
    if region not in (None, "", "all"):
        if stores is None:
            raise InputError("a regional outage estimate needs the stores table")
        ids = stores.lazy().filter(pl.col("region") == region).select("store_id")
        sales = sales.join(ids, on="store_id", how="semi")
    if ds.frequency == "monthly":
        return _worst(cell_stats(sales, ["date"]), [])
    tr = outage_treatment(ds, o_start, stop_days, partial_days, partial_fill)
    sales = sales.join(tr.lazy().select("store_id", "treated"), on="store_id", how="inner")
    return _worst(cell_stats(sales, ["date", "treated"]), ["treated"])


def group_contributors(
    ds: Any,
    outage_start: dt.date | str | None = None,
    by: str = "cover_bin",
    window: tuple[int, int] = (-28, 27),
    *,
    stop_days: int = STOP_DAYS,
    partial_days: int = PARTIAL_DAYS,
    partial_fill: float = PARTIAL_FILL,
) -> pl.DataFrame:
    """Per event-study group (`group`, as in `by_group`): the treated stores' count and largest shares of
    their sales over the event window -- the contributors of that group's loss estimate."""
    start, _ = _resolve(ds, outage_start)
    tr = outage_treatment(ds, start, stop_days, partial_days, partial_fill).filter(pl.col("treated"))
    if by not in tr.columns:
        stores = getattr(ds, "stores", None)
        if stores is None or by not in stores.lazy().collect_schema().names():
            raise InputError(f"by={by!r}: no such store attribute")
        tr = tr.drop(by, strict=False).join(stores.lazy().select("store_id", by).collect(), on="store_id")
    lo, hi = start + dt.timedelta(days=window[0]), start + dt.timedelta(days=window[1])
    sales = (
        store_days(ds, lo, hi)
        .lazy()
        .join(tr.lazy().select("store_id", pl.col(by).cast(pl.String).alias("group")), on="store_id")
    )
    return cell_stats(sales, ["group"]).drop("revenue")


def safe_group_table(
    study: EventStudyResult,
    contributors: pl.DataFrame,
    min_stores: int = 3,
    dominance: float = 0.5,
    dominance2: float = 0.75,
) -> pl.DataFrame | None:
    """An event study's `by_group` as it may be shared: a group's loss figures are suppressed when its
    treated stores are too few or dominated, and further groups are hidden (smallest loss first) so the
    hidden ones cannot be recovered from the total loss shown beside the table."""
    if study.by_group is None:
        return None
    money = [
        "lost_sales",
        *[c for c in study.by_group.columns if c.startswith(("lost_", "loss")) and c != "lost_sales"],
    ]
    table = study.by_group.join(contributors, on="group", how="left")
    out = suppress_cells(
        table, money, min_stores, dominance, dominance2=dominance2, margin=True, disjoint=True
    )
    return out.drop(N_STORES_COLUMN)


def event_study_contributors(
    ds: Any, outage_start: dt.date | str | None = None, window: tuple[int, int] = (-28, 27)
) -> pl.DataFrame:
    """Contributors of the market-wide event study (treated and control stores, each day of the window
    a cell), as `impact_contributors` gives them for the impact model."""
    start, _ = _resolve(ds, outage_start)
    lo, hi = start + dt.timedelta(days=window[0]), start + dt.timedelta(days=window[1])
    return impact_contributors(ds, "all", lo, start, hi)


_GROUP_HEADERS = {
    "group": "Group",
    "lost_sales": "Sales lost",
    "lost_sales_lo": "Lower bound",
    "lost_sales_hi": "Upper bound",
    "lost_share": "Share of expected sales",
    "n_treated": "Stores running short",
    "n_control": "Comparison stores",
    "treated_stores": "Stores running short",
}


def readable_group_table(table: pl.DataFrame | None, group_title: str = "Group") -> pl.DataFrame | None:
    """`safe_group_table`'s frame for a report: readable headers, money in the dataset's currency, shares
    as %; the suppression flag column is kept (the table renderer hides it and marks the cells)."""
    from cannabis_market.format import fmt_cad, fmt_pct, label

    if table is None:
        return None
    formats = []
    for c in table.columns:
        if c.startswith(("lost_", "loss")) and "share" not in c:
            formats.append(pl.col(c).map_elements(fmt_cad, return_dtype=pl.String))
        elif "share" in c:
            formats.append(pl.col(c).map_elements(fmt_pct, return_dtype=pl.String))
    out = table.with_columns(formats) if formats else table
    names = {c: _GROUP_HEADERS.get(c, label(c)) for c in out.columns if c != "suppressed"}
    names["group"] = group_title
    return out.rename({k: v for k, v in names.items() if k in out.columns})


def impact_table(result: ImpactResult) -> pl.DataFrame:
    """The impact summary as a reader's table (fits a page): observed, expected without the event, the
    effect and the relative effect, each interval in one cell, money in the dataset's currency."""
    from cannabis_market.format import fmt_cad, fmt_pct

    unit = {"daily": "day", "weekly": "week", "monthly": "month"}.get(str(result.frequency), "period")
    rows = []
    for r in result.summary().iter_rows(named=True):
        rows.append(
            {
                "Measure": f"Average per {unit}" if r["row"] == "average" else "Total over the post-period",
                "Observed": fmt_cad(r["actual"]),
                "Expected without the event": f"{fmt_cad(r['predicted'])} "
                f"[{fmt_cad(r['predicted_lo'])}, {fmt_cad(r['predicted_hi'])}]",
                "Effect": f"{fmt_cad(r['abs_effect'])} [{fmt_cad(r['abs_effect_lo'])}, {fmt_cad(r['abs_effect_hi'])}]",
                "Relative effect": f"{fmt_pct(r['rel_effect'], signed=True)} "
                f"[{fmt_pct(r['rel_effect_lo'], signed=True)}, {fmt_pct(r['rel_effect_hi'], signed=True)}]",
            }
        )
    return pl.DataFrame(rows)
