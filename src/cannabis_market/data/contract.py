"""The data contract in code: tables, columns, types and the rules each column must meet.

`data/README.md` is the user-facing description; `validate.py` enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

CATEGORIES: tuple[str, ...] = (
    "dried_flower",
    "pre_rolls",
    "vapes",
    "edibles",
    "beverages",
    "extracts",
    "other",
)
EVENT_KINDS: tuple[str, ...] = ("outage", "closure", "policy", "other")
SOURCES: tuple[str, ...] = ("synthetic", "pos", "statcan", "other")
FREQUENCIES: tuple[str, ...] = ("daily", "monthly")
TABLE_FORMATS: tuple[str, ...] = (".parquet", ".csv")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table: its type after loading, and whether it may be empty/absent."""

    name: str
    dtype: type[pl.DataType] | pl.DataType
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One table of a dataset: its columns and its unique key."""

    name: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    required: bool = False

    @property
    def dtypes(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


S, F, D, N = pl.String, pl.Float64, pl.Date, pl.Int64

TABLES: dict[str, TableSpec] = {
    "stores": TableSpec(
        "stores",
        (
            ColumnSpec("store_id", S),
            ColumnSpec("municipality", S),
            ColumnSpec("region", S),
            ColumnSpec("opened_on", D),
            ColumnSpec("closed_on", D, nullable=True),
            ColumnSpec("chain", S, nullable=True),
        ),
        key=("store_id",),
    ),
    "sales": TableSpec(
        "sales",
        (
            ColumnSpec("date", D),
            ColumnSpec("store_id", S),
            ColumnSpec("category", S),
            ColumnSpec("revenue", F),
            ColumnSpec("grams", F, required=False, nullable=True),
        ),
        key=("date", "store_id", "category"),
    ),
    "population": TableSpec(
        "population",
        (ColumnSpec("municipality", S), ColumnSpec("year", N), ColumnSpec("population", N)),
        key=("municipality", "year"),
    ),
    "events": TableSpec(
        "events",
        (
            ColumnSpec("event_id", S),
            ColumnSpec("kind", S),
            ColumnSpec("start", D),
            ColumnSpec("end", D),
            ColumnSpec("scope", S),
            ColumnSpec("description", S, nullable=True),
        ),
        key=("event_id",),
    ),
    "inventory": TableSpec(
        "inventory",
        (ColumnSpec("date", D), ColumnSpec("store_id", S), ColumnSpec("days_of_cover", F)),
        key=("date", "store_id"),
    ),
    "series": TableSpec(
        "series",
        (ColumnSpec("date", D), ColumnSpec("geo", S), ColumnSpec("metric", S), ColumnSpec("value", F)),
        key=("date", "geo", "metric"),
    ),
}

MANIFEST_REQUIRED: tuple[str, ...] = ("name", "description", "source", "frequency", "currency")
