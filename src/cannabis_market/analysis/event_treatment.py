"""Which stores an outage hit: the treated/control split of the event study, from days of cover.

A store is treated when the shared outage model (`data.outage_model`) says its stock runs out during the
stop or the partial restart; `treatment_frame` checks a user-given split instead.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from cannabis_market.data.outage_model import lost_share
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date

COVER_BINS: tuple[float, ...] = (2.0, 4.0, 6.0)
_STORE, _DATE = "store_id", "date"


def no_stockout_threshold(stop_days: int, partial_days: int, partial_fill: float) -> float:
    """Days of cover a store needs to serve every day of the stop and the partial restart.

    During the stop a store draws one day of cover per day; during the partial restart it draws
    ``1 - partial_fill`` per day. Below ``stop_days + partial_days * (1 - partial_fill)`` it runs out.
    """
    _check_outage_params(stop_days, partial_days, partial_fill)
    return stop_days + partial_days * (1.0 - partial_fill)


def _check_outage_params(stop_days: float, partial_days: float, partial_fill: float) -> None:
    if stop_days < 0:
        raise InputError(f"stop_days must be >= 0, got {stop_days}")
    if partial_days < 0:
        raise InputError(f"partial_days must be >= 0, got {partial_days}")
    if not 0.0 <= partial_fill <= 1.0:
        raise InputError(f"partial_fill must be within [0, 1], got {partial_fill}")


def _cover_bin_labels(edges: list[float]) -> list[str]:
    labels = []
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        labels.append(f"<{hi:g} days" if lo == 0 else f"{lo:g}-{hi:g} days")
    return labels


def treatment_from_inventory(
    inventory: pl.LazyFrame | pl.DataFrame,
    event_start: dt.date,
    stop_days: int = 5,
    partial_days: int = 8,
    partial_fill: float = 0.5,
    cover_bins: tuple[float, ...] = COVER_BINS,
) -> pl.DataFrame:
    """Treated/control split from each store's days of cover just before the event.

    Uses each store's latest inventory row dated before `event_start`. A store is treated when its
    cover is below the no-stock-out threshold (`no_stockout_threshold`), i.e. the shared outage model
    says it runs out at some point; the rest are controls. Returns store_id, days_of_cover, treated
    (bool), expected_lost_days (demand-days the outage model says it loses) and cover_bin (a label;
    controls get 'control (>=T days)').
    """
    thr = no_stockout_threshold(stop_days, partial_days, partial_fill)
    lf = inventory.lazy()
    cols = lf.collect_schema().names()
    missing = [c for c in (_DATE, _STORE, "days_of_cover") if c not in cols]
    if missing:
        raise InputError(f"inventory: column(s) {missing} missing (have {cols})")
    inv = (
        lf.select(
            pl.col(_DATE).cast(pl.Date),
            pl.col(_STORE).cast(pl.String),
            pl.col("days_of_cover").cast(pl.Float64),
        )
        .filter(pl.col(_DATE) < event_start)
        .sort(_DATE)
        .group_by(_STORE)
        .agg(pl.col(_DATE).last().alias("cover_date"), pl.col("days_of_cover").drop_nulls().last())
        .drop_nulls("days_of_cover")
        .sort(_STORE)
        .collect()
    )
    if inv.height == 0:
        raise InputError(
            f"inventory: no days_of_cover rows dated before the event start {fmt_date(event_start)}; "
            "the treatment split needs each store's cover just before the event"
        )
    if (inv["days_of_cover"] < 0).any():
        raise InputError("inventory: days_of_cover must be >= 0")
    cover = inv["days_of_cover"].to_numpy()
    lost_days = lost_share(cover, stop_days, partial_days, partial_fill)
    edges = [0.0, *[b for b in sorted(cover_bins) if 0 < b < thr], thr]
    labels = _cover_bin_labels(edges)
    idx = np.clip(np.searchsorted(np.asarray(edges), cover, side="right") - 1, 0, len(labels) - 1)
    treated = cover < thr
    bin_label = np.where(treated, np.asarray(labels, dtype=object)[idx], f"control (>={thr:g} days)")
    return inv.select(_STORE, "days_of_cover").with_columns(
        treated=pl.Series(treated),
        expected_lost_days=pl.Series(lost_days),
        cover_bin=pl.Series(bin_label.astype(str), dtype=pl.String),
    )


def treatment_frame(
    treated: pl.DataFrame | pl.LazyFrame | None,
    inventory: pl.DataFrame | pl.LazyFrame | None,
    event_start: dt.date,
    stop_days: int,
    partial_days: int,
    partial_fill: float,
    cover_bins: tuple[float, ...],
) -> pl.DataFrame:
    if treated is None:
        if inventory is None:
            raise InputError(
                "event study: pass `treated` (store_id, treated) or `inventory` (date, store_id, "
                "days_of_cover) to define which stores were hit"
            )
        tr = treatment_from_inventory(
            inventory, event_start, stop_days, partial_days, partial_fill, cover_bins
        )
    else:
        tr = treated.lazy().collect() if isinstance(treated, pl.LazyFrame) else treated
    if _STORE not in tr.columns or "treated" not in tr.columns:
        raise InputError(f"treated: needs columns store_id and treated (have {tr.columns})")
    if tr["treated"].null_count():
        raise InputError("treated: the treated column has missing values")
    if not (tr["treated"].dtype == pl.Boolean or tr["treated"].dtype.is_numeric()):
        raise InputError(f"treated: the treated column must be boolean or numeric, got {tr['treated'].dtype}")
    tr = tr.with_columns(pl.col(_STORE).cast(pl.String), treat=pl.col("treated").cast(pl.Float64))
    if tr[_STORE].is_duplicated().any():
        raise InputError("treated: store_id must be unique")
    if (tr["treat"] < 0).any():
        raise InputError("treated: intensities must be >= 0 (0 marks a control store)")
    return tr
