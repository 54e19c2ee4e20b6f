"""Frames derived from a whole dataset, worked out once per content and shared across processes.

A build's kernels, and every run of a grid, are separate processes: an in-process memo (`data.memo`)
cannot share a derived frame between them. A dataset loaded through the typed cache (`Dataset.cache_key`)
keeps such frames beside its typed tables, in the same entry (so they go when it is pruned and never
outlive the content they came from): the first process computes and writes one, the others map it.
A subset, or a dataset whose content cannot be vouched for (`Dataset.content_key` is None), computes
every time. Names carry a version: bump it when a derivation changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from cannabis_market.data import aggregate as A
from cannabis_market.data import typed_cache as TC
from cannabis_market.data.memo import FrameMemo

_DERIVED = FrameMemo("derived", entries=4)
STORE_MONTHS = "store_month_category-v1"


def derived_frame(ds: Any, name: str, compute: Callable[[], pl.DataFrame]) -> pl.DataFrame:
    """The frame `name` of the whole dataset `ds`: from this process's memo, else the typed cache's copy,
    else `compute()` (then kept in both). Treat the result as immutable (see `data.memo`)."""
    content = ds.content_key() if hasattr(ds, "content_key") else None
    key = getattr(ds, "cache_key", None)
    if content is None or content[1] or key is None:  # a subset or unvouched content: no sharing
        return compute()

    def load() -> pl.DataFrame:
        frame = TC.read_derived(key, name)
        if frame is None:
            frame = compute()
            TC.write_derived(key, name, frame)
        return frame

    return _DERIVED.get((content, name), load)


def store_month_totals(ds: Any) -> pl.DataFrame:
    """Revenue (and grams) per month, category and store over the whole dataset's sales: the one pass over
    the raw rows that the overview's tables share (`aggregate.collect_store_period_totals`)."""
    return derived_frame(
        ds,
        STORE_MONTHS,
        lambda: A.collect_store_period_totals(ds.table("sales"), "month", by=["category"]),
    )
