"""Turn one simulation into the contract's tables: stores, sales, population, inventory, events."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from cannabis_market.data.generate.calibration import (
    CATS,
    CHAINS,
    CLOSURE_FROM,
    CLOSURE_NORMAL_FROM,
    CURBSIDE_FROM,
    OUTAGE_NORMAL_FROM,
    OUTAGE_PARTIAL_FROM,
    OUTAGE_START,
    POPULATION_GROWTH,
    _Params,
)
from cannabis_market.data.generate.inventory import _event_windows, _inventory
from cannabis_market.data.generate.simulate import _Sim

# ------------------------------------------------------------------------------------------ tables

_EPOCH = date(1970, 1, 1)


def _date_series(name: str, day_idx: np.ndarray, first: date) -> pl.Series:
    return pl.Series(name, day_idx.astype(np.int32) + np.int32((first - _EPOCH).days), dtype=pl.Int32).cast(
        pl.Date
    )


def _store_ids(n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"ON{i + 1:0{width}d}" for i in range(n)]


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _stores_frame(sim: _Sim, ids: list[str], monthly: bool) -> tuple[pl.DataFrame, np.ndarray]:
    keep = np.nonzero((sim.opened <= sim.span[1]) & (sim.closed >= sim.span[0]))[0]
    opened = [sim.first + timedelta(days=int(sim.opened[i])) for i in keep]
    if monthly:
        opened = [_month_start(d) for d in opened]
    closed = [
        sim.first + timedelta(days=int(sim.closed[i])) if sim.closed[i] <= sim.span[1] else None for i in keep
    ]
    df = pl.DataFrame(
        {
            "store_id": [ids[i] for i in keep],
            "municipality": [sim.muni_names[sim.store_muni[i]] for i in keep],
            "region": [sim.muni_regions[sim.store_muni[i]] for i in keep],
            "opened_on": opened,
            "closed_on": closed,
            "chain": [CHAINS[sim.store_chain[i]] if sim.store_chain[i] >= 0 else None for i in keep],
        },
        schema={
            "store_id": pl.String,
            "municipality": pl.String,
            "region": pl.String,
            "opened_on": pl.Date,
            "closed_on": pl.Date,
            "chain": pl.String,
        },
    )
    return df, keep


def _population_frame(sim: _Sim, start: date, end: date) -> pl.DataFrame:
    rows = []
    order = sorted(range(len(sim.muni_names)), key=lambda i: sim.muni_names[i])
    for i in order:
        g = POPULATION_GROWTH[sim.muni_regions[i]]
        for y in range(start.year, end.year + 1):
            rows.append((sim.muni_names[i], y, int(round(sim.muni_pops[i] * (1 + g) ** (y - 2021)))))
    return pl.DataFrame(
        rows, schema={"municipality": pl.String, "year": pl.Int64, "population": pl.Int64}, orient="row"
    )


def _sales_frame(sim: _Sim, ids: list[str], monthly: bool) -> pl.DataFrame:
    K = len(CATS)
    n_rows = sim.rows_day.size
    df = pl.DataFrame(
        [
            _date_series("date", np.repeat(sim.rows_day, K), sim.first),
            pl.Series("store_id", ids).gather(pl.Series(np.repeat(sim.rows_store, K))),
            pl.Series("category", list(CATS)).gather(
                pl.Series(np.tile(np.arange(K, dtype=np.int32), n_rows))
            ),
            pl.Series("revenue", sim.rows_rev.ravel()),
            pl.Series("grams", sim.rows_grams.ravel()),
        ]
    )
    if monthly:
        df = (
            df.group_by(pl.col("date").dt.truncate("1mo"), "store_id", "category")
            .agg(pl.col("revenue").sum(), pl.col("grams").sum())
            .sort("date", "store_id", "category")
        )
    return df.with_columns(pl.col("revenue").round(2), pl.col("grams").round(3))


def _inventory_frame(sim: _Sim, ids: list[str], p: _Params, seed: int, monthly: bool) -> pl.DataFrame:
    d, s, c = _inventory(sim, p, seed)
    df = pl.DataFrame(
        [
            _date_series("date", d, sim.first),
            pl.Series("store_id", ids).gather(pl.Series(s))
            if s.size
            else pl.Series("store_id", [], dtype=pl.String),
            pl.Series("days_of_cover", c, dtype=pl.Float64),
        ]
    )
    if monthly:  # opening-stock snapshot on the first day of each month
        df = df.filter(pl.col("date").dt.day() == 1)
    return df


def _events_frame(sim: _Sim, p: _Params) -> pl.DataFrame:
    rows = []
    for name, _si, _ei, _, _ in _event_windows(sim):
        if name == "closure_2020":
            rows.append(
                (
                    "closure_2020",
                    "closure",
                    CLOSURE_FROM,
                    CLOSURE_NORMAL_FROM - timedelta(days=1),
                    "all",
                    f"SYNTHETIC: COVID-19 order; stores closed {CLOSURE_FROM} and {CLOSURE_FROM + timedelta(days=1)}, "
                    f"curbside pick-up and delivery only from {CURBSIDE_FROM} (sales at {p.curbside_share:.0%} of "
                    f"normal) until {CLOSURE_NORMAL_FROM - timedelta(days=1)}",
                )
            )
        else:
            rows.append(
                (
                    "outage_2022",
                    "outage",
                    OUTAGE_START,
                    OUTAGE_NORMAL_FROM - timedelta(days=1),
                    "all",
                    f"SYNTHETIC: wholesale delivery outage; no deliveries {OUTAGE_START} to "
                    f"{OUTAGE_PARTIAL_FROM - timedelta(days=1)}, partial deliveries from {OUTAGE_PARTIAL_FROM}, "
                    f"normal from {OUTAGE_NORMAL_FROM}; stores sell from stock (days_of_cover)",
                )
            )
    schema = {
        "event_id": pl.String,
        "kind": pl.String,
        "start": pl.Date,
        "end": pl.Date,
        "scope": pl.String,
        "description": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")
