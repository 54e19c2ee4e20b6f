"""Benchmark: the package's LazyFrame aggregations against the same aggregations in idiomatic pandas.

Four aggregations every analysis starts from, on a synthetic store-day x category sales panel:

1. monthly market totals by region and category, with store counts and the top store's share
   (``aggregate.market_totals(by=["region", "category"])``);
2. monthly sales per selling store (``aggregate.sales_per_store``);
3. sales-weighted price per gram by category and month (``aggregate.price_per_gram``);
4. the store x month panel: revenue, grams, price per gram, local competitors averaged over each
   store's open days and the partial-month flag (``panels.store_period_panel``, data/README.md).

Both sides start from the same Parquet files (polars: ``scan_parquet`` + the helpers, the three lazy
ones collected one after the other with the default engine, as the package's analyses do; pandas: ``read_parquet`` + ``groupby``) and each run
is a fresh subprocess, so its wall time covers reading the file through to the four result tables and
its peak RSS is its own. The two sides' tables are then compared cell by cell (equal within 1e-6
relative): a speed-up computed on different work would mean nothing.

The pandas version is written the way an experienced pandas user would: columns read with real
datetimes (``date_as_object=False``), the month key computed once, per-store sums taken before store
attributes are attached (cheaper than merging onto every sales row), ``observed=True`` groupbys.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BenchError, comparison, cpu_seconds, median, peak_rss_mb, rss_mb, run_isolated

FULL_SIZES = (2_000_000, 10_000_000, 30_000_000)
QUICK_SIZES = (200_000,)
TARGET_SIZE = 10_000_000
SPEEDUP_TARGET = 5.0
MEMORY_TARGET = 0.3
RTOL = 1e-6
# fresh-process runs per side and size (alternating which side goes first)
REPEATS = {2_000_000: 3, 10_000_000: 5, 30_000_000: 1}

TABLES = {
    "market_totals": ["period", "region", "category"],
    "sales_per_store": ["period"],
    "price_per_gram": ["period", "category"],
    "store_month_panel": ["store_id", "period"],
}


# ----------------------------------------------------------------------------------------- polars


def polars_side(sales: str, stores: str, out: str | None = None, breakdown: bool = False) -> dict:
    """The package's helpers on ``scan_parquet``; runs inside its own subprocess."""
    import polars as pl

    from cannabis_market.data import aggregate as A

    base = rss_mb()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    lf, st = pl.scan_parquet(sales), pl.scan_parquet(stores)
    # one pass over the raw rows, shared by the three monthly aggregations (as the overview does)
    shared = A.store_period_totals(lf, "month", by=["category"]).collect().lazy()
    lazy = [
        A.market_totals(shared, "month", by=["region", "category"], stores=st),
        A.sales_per_store(shared, st, "month"),
        A.price_per_gram(shared, "month", ("category",)),
    ]
    totals, per_store, ppg = (q.collect() for q in lazy)  # as the package's analyses collect them
    panel = _panel(lf, st)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    peak = peak_rss_mb()
    res: dict[str, Any] = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak, "import_rss_mb": base}
    if out:
        frames = dict(zip(TABLES, [totals, per_store, ppg, panel], strict=True))
        for name, df in frames.items():
            df.write_parquet(Path(out) / f"{name}.parquet")
    if breakdown:  # each helper alone, after the measured run (its memory is not in `peak`)
        steps = {
            "market_totals": lambda: lazy[0].collect(),
            "sales_per_store": lambda: lazy[1].collect(),
            "price_per_gram": lambda: lazy[2].collect(),
            "collect_all (3 lazy helpers)": lambda: pl.collect_all(lazy),
            "store_month_panel": lambda: _panel(lf, st),
            "scan only (sum of revenue)": lambda: lf.select(pl.col("revenue").sum()).collect(),
        }
        res["breakdown"] = {}
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            res["breakdown"][name] = round(time.perf_counter() - t, 3)
    return res


# ----------------------------------------------------------------------------------------- pandas


def _pd_market_totals(df, stores, by: tuple[str, ...] = ()):
    """pandas version of aggregate.market_totals (period = month)."""
    import numpy as np

    own = [b for b in by if b in df.columns]
    attrs = [b for b in by if b not in df.columns]
    per_store = (
        df.groupby(["period", *own, "store_id"], observed=True, sort=False)[["revenue", "grams"]]
        .sum()
        .reset_index()
    )
    if attrs:
        per_store = per_store.merge(stores[["store_id", *attrs]], on="store_id", how="left")
    keys = ["period", *by]
    out = (
        per_store.groupby(keys, observed=True, dropna=False)
        .agg(
            revenue=("revenue", "sum"),
            grams=("grams", "sum"),
            n_stores=("revenue", "size"),
            top=("revenue", "max"),
        )
        .reset_index()
    )
    out["max_share"] = np.where(out["revenue"] > 0, out["top"] / out["revenue"], 1.0)
    return out.drop(columns="top").sort_values(keys, ignore_index=True)


PANEL_COLUMNS = (
    "store_id",
    "period",
    "revenue",
    "grams",
    "price_per_g",
    "municipality",
    "region",
    "competitors",
    "log1p_competitors",
    "open_days",
    "partial",
)


def _panel(lf, st):
    """The package's store x month panel, with the columns the pandas side builds."""
    from cannabis_market.data.panels import store_period_panel

    return store_period_panel(lf, st, "monthly", opening_dates="exact").select(PANEL_COLUMNS)


def _pd_store_month_panel(df, stores):
    """pandas version of panels.store_period_panel (monthly, exact opening dates)."""
    import numpy as np
    import pandas as pd

    panel = (
        df.groupby(["store_id", "period"], observed=True)
        .agg(revenue=("revenue", "sum"), grams=("grams", "sum"))
        .reset_index()
    )
    panel["price_per_g"] = (panel["revenue"] / panel["grams"]).where(panel["grams"] > 0)
    # every store-day open within the months of the data, then other stores open that day
    first = panel["period"].min().start_time
    last = panel["period"].max().end_time.normalize()
    st = stores[["store_id", "municipality", "opened_on", "closed_on"]].copy()
    st["lo"] = st["opened_on"].clip(lower=first)
    st["hi"] = st["closed_on"].fillna(last).clip(upper=last)
    st = st[st["lo"] <= st["hi"]]
    n = ((st["hi"] - st["lo"]).dt.days + 1).to_numpy()
    days = pd.DataFrame(
        {
            "store_id": np.repeat(st["store_id"].to_numpy(), n),
            "municipality": np.repeat(st["municipality"].to_numpy(), n),
            "day": np.repeat(st["lo"].to_numpy(), n)
            + pd.to_timedelta(np.concatenate([np.arange(k) for k in n]), "D"),
        }
    )
    days["c"] = days.groupby(["municipality", "day"])["store_id"].transform("size") - 1.0
    days["lc"] = np.log1p(days["c"])
    days["period"] = days["day"].dt.to_period("M")
    comp = (
        days.groupby(["store_id", "period"], observed=True)
        .agg(competitors=("c", "mean"), log1p_competitors=("lc", "mean"), open_days=("c", "size"))
        .reset_index()
    )
    attrs = stores[["store_id", "municipality", "region", "opened_on"]]
    panel = panel.merge(attrs, on="store_id", how="inner").merge(comp, on=["store_id", "period"], how="left")
    panel["open_days"] = panel["open_days"].fillna(0).astype("int64")
    panel["partial"] = (panel["open_days"] < panel["period"].dt.days_in_month) | (
        panel["opened_on"].dt.to_period("M") == panel["period"]
    )
    return panel.drop(columns=["opened_on"]).sort_values(["store_id", "period"], ignore_index=True)


def pandas_side(sales: str, stores: str, out: str | None = None, breakdown: bool = False) -> dict:
    """The same four aggregations with pandas ``read_parquet`` + ``groupby``; own subprocess."""
    import numpy as np
    import pandas as pd

    base = rss_mb()
    cpu0 = cpu_seconds()
    marks = [("start", time.perf_counter())]
    as_dates = {"date_as_object": False}  # datetime64 columns instead of Python date objects
    df = pd.read_parquet(sales, to_pandas_kwargs=as_dates)
    st = pd.read_parquet(stores, to_pandas_kwargs=as_dates)
    marks.append(("read_parquet", time.perf_counter()))
    df["period"] = df["date"].dt.to_period("M")
    marks.append(("month key", time.perf_counter()))
    totals = _pd_market_totals(df, st, ("region", "category"))
    marks.append(("market_totals", time.perf_counter()))
    per_store = _pd_market_totals(df, st)
    per_store["revenue_per_store"] = per_store["revenue"] / per_store["n_stores"]
    marks.append(("sales_per_store", time.perf_counter()))
    ppg = _pd_market_totals(df, st, ("category",))
    ppg["price_per_g"] = (ppg["revenue"] / ppg["grams"]).where(ppg["grams"] > 0, np.nan)
    marks.append(("price_per_gram", time.perf_counter()))
    panel = _pd_store_month_panel(df, st)
    marks.append(("store_month_panel", time.perf_counter()))
    seconds, cpu = marks[-1][1] - marks[0][1], cpu_seconds() - cpu0
    peak = peak_rss_mb()
    res: dict[str, Any] = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak, "import_rss_mb": base}
    if breakdown:
        res["breakdown"] = {b[0]: round(b[1] - a[1], 3) for a, b in zip(marks, marks[1:], strict=False)}
    if out:
        frames = dict(zip(TABLES, [totals, per_store, ppg, panel], strict=True))
        for name, frame in frames.items():
            frame = frame.copy()
            frame["period"] = frame["period"].dt.start_time
            frame.to_parquet(Path(out) / f"{name}.parquet", index=False)
    return res


# ------------------------------------------------------------------------------------- equality


def compare_tables(ours, theirs, keys: list[str], rtol: float = RTOL) -> dict:
    """Assert two result tables hold the same rows and values (numbers within `rtol` relative).

    Returns the number of cells compared and the largest relative difference; raises BenchError
    naming the table column and an example row otherwise.
    """
    import polars as pl

    def norm(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(pl.col("period").cast(pl.Date))

    a, b = norm(ours), norm(theirs)
    if set(a.columns) != set(b.columns):
        raise BenchError(f"columns differ: ours {sorted(a.columns)}, pandas {sorted(b.columns)}")
    if a.height != b.height:
        raise BenchError(f"row counts differ: ours {a.height}, pandas {b.height}")
    joined = a.join(b, on=keys, how="full", suffix="_pd", coalesce=True, nulls_equal=True)
    if joined.height != a.height:
        raise BenchError(f"key sets differ ({joined.height} keys in the union of {a.height} rows)")
    cells, worst = 0, 0.0
    for col in a.columns:
        if col in keys:
            continue
        x, y = pl.col(col), pl.col(col + "_pd")
        if a.schema[col].is_numeric():
            rel = (x.cast(pl.Float64) - y.cast(pl.Float64)).abs() / pl.max_horizontal(
                x.cast(pl.Float64).abs(), y.cast(pl.Float64).abs(), pl.lit(1e-300)
            )
            bad = (x.is_null() != y.is_null()) | (rel > rtol)
            col_worst = joined.select(rel.max()).item()
            worst = max(worst, col_worst or 0.0)
        else:
            bad = (x.is_null() != y.is_null()) | (x.cast(pl.String) != y.cast(pl.String))
        hits = joined.filter(bad.fill_null(False))
        if hits.height:
            example = hits.select(*keys, col, col + "_pd").row(0, named=True)
            raise BenchError(f"column '{col}' differs in {hits.height} rows, e.g. {example}")
        cells += joined.height
    return {"rows": a.height, "cells": cells, "max_rel_diff": worst}


def check_equal(ours_dir: Path, pandas_dir: Path) -> dict:
    """Compare the four result tables of both sides; raise BenchError on any difference."""
    import polars as pl

    report = {}
    for name, keys in TABLES.items():
        try:
            report[name] = compare_tables(
                pl.read_parquet(ours_dir / f"{name}.parquet"),
                pl.read_parquet(pandas_dir / f"{name}.parquet"),
                keys,
            )
        except BenchError as e:
            raise BenchError(f"dataprep: ours and pandas disagree on {name}: {e}") from None
    return report


# -------------------------------------------------------------------------------------- harness


def _one_size(target_rows: int, repeats: int, scratch: Path) -> dict:
    from _synth import ensure_panel, panel_paths

    meta = ensure_panel(target_rows)
    sales, stores = (str(p) for p in panel_paths(meta))
    runs: dict[str, list[dict]] = {"polars": [], "pandas": []}
    out = {side: scratch / f"{target_rows}_{side}" for side in runs}
    for d in out.values():
        d.mkdir(parents=True, exist_ok=True)
    for rep in range(repeats):
        order = ("polars", "pandas") if rep % 2 == 0 else ("pandas", "polars")
        for side in order:
            kwargs = {"sales": sales, "stores": stores, "out": str(out[side]) if rep == 0 else None}
            kwargs["breakdown"] = rep == 0
            runs[side].append(run_isolated(f"bench_dataprep:{side}_side", kwargs))
    equal = check_equal(out["polars"], out["pandas"])
    secs = {s: [r["seconds"] for r in rs] for s, rs in runs.items()}
    cpus = {s: [r["cpu_seconds"] for r in rs] for s, rs in runs.items()}
    peaks = {s: max(r["peak_rss_mb"] for r in rs) for s, rs in runs.items()}
    return {
        "target_rows": target_rows,
        "rows": meta["rows"],
        "stores": meta["stores"],
        "parquet_mb": round(meta["sales_file_bytes"] / 2**20, 1),
        "repeats": repeats,
        "seconds": {s: [round(v, 3) for v in vs] for s, vs in secs.items()},
        "median_seconds": {s: round(median(vs), 3) for s, vs in secs.items()},
        "median_cpu_seconds": {s: round(median(vs), 3) for s, vs in cpus.items()},
        "peak_rss_mb": peaks,
        "import_rss_mb": {s: rs[0]["import_rss_mb"] for s, rs in runs.items()},
        "breakdown": {s: rs[0].get("breakdown", {}) for s, rs in runs.items()},
        "equality": equal,
    }


def run(quick: bool = False) -> dict:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    scratch = Path(tempfile.mkdtemp(prefix="cm-dataprep-"))
    try:
        results = [_one_size(n, 1 if quick else REPEATS.get(n, 1), scratch) for n in sizes]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    comparisons, rows, notes = [], [], []
    for r in results:
        t_pl, t_pd = r["median_seconds"]["polars"], r["median_seconds"]["pandas"]
        m_pl, m_pd = r["peak_rss_mb"]["polars"], r["peak_rss_mb"]["pandas"]
        speedup, mem = t_pd / t_pl, m_pl / m_pd
        at_target = r["target_rows"] == TARGET_SIZE
        label = f"{r['rows'] / 1e6:.1f}M rows"
        c_pl, c_pd = r["median_cpu_seconds"]["polars"], r["median_cpu_seconds"]["pandas"]
        comparisons += [
            comparison(
                f"speed-up vs pandas, {label} (pandas s / ours s)",
                round(t_pl, 3),
                round(t_pd, 3),
                round(speedup, 2),
                f">= {SPEEDUP_TARGET:g}x" if at_target else "(info)",
                speedup >= SPEEDUP_TARGET if at_target else None,
                unit="s",
                baseline_label="pandas",
            ),
            comparison(
                f"CPU time vs pandas, {label} (pandas CPU s / ours CPU s)",
                round(c_pl, 3),
                round(c_pd, 3),
                round(c_pd / c_pl, 2),
                "(info)",
                None,
                unit="s",
                baseline_label="pandas",
            ),
            comparison(
                f"peak memory vs pandas, {label} (ours MB / pandas MB)",
                m_pl,
                m_pd,
                round(mem, 3),
                f"<= {MEMORY_TARGET:g}" if at_target else "(info)",
                mem <= MEMORY_TARGET if at_target else None,
                unit="MB",
                baseline_label="pandas",
            ),
        ]
        eq = r["equality"]
        rows.append(
            [
                f"{r['rows']:,}",
                f"{r['stores']:,}",
                r["parquet_mb"],
                " / ".join(f"{v:.2f}" for v in r["seconds"]["polars"]),
                " / ".join(f"{v:.2f}" for v in r["seconds"]["pandas"]),
                f"{speedup:.2f}",
                f"{c_pl:.2f} / {c_pd:.2f}",
                f"{m_pl:,.0f}",
                f"{m_pd:,.0f}",
                f"{mem:.3f}",
                f"{sum(t['cells'] for t in eq.values()):,} cells, max rel diff "
                f"{max(t['max_rel_diff'] for t in eq.values()):.1e}",
            ]
        )
    first = results[0]
    cells = [sum(t["cells"] for t in r["equality"].values()) for r in results]
    notes.append(
        f"Equality check: all four result tables (market_totals, sales_per_store, price_per_gram, "
        f"store_month_panel) matched pandas within {RTOL:g} relative at every size "
        f"({', '.join(f'{n:,}' for n in cells)} cells compared)."
    )
    notes.append(
        "Memory is each process's peak RSS (VmHWM), imports included: "
        f"after imports ours sits at {first['import_rss_mb']['polars']:.0f} MB "
        f"(polars + the cannabis_market data layer, which no longer imports altair), "
        f"pandas at {first['import_rss_mb']['pandas']:.0f} MB."
    )
    notes.append(
        "Times are medians of fresh-process runs, alternating which side runs first. polars runs on "
        "every core it is given; pandas' groupbys use one (its Parquet read uses pyarrow's threads). "
        "CPU seconds (user + system, all threads) are shown because they move less than wall time "
        "when other jobs compete for the cores."
    )
    breakdown_rows = []
    for r in results:
        for side in ("polars", "pandas"):
            for step, secs in r["breakdown"][side].items():
                breakdown_rows.append([f"{r['rows']:,}", side, step, f"{secs:.3f}"])
    return {
        "figures": {
            "sizes (rows)": ", ".join(f"{r['rows']:,}" for r in results),
            "equality checked (tables x sizes)": sum(len(r["equality"]) for r in results),
        },
        "comparisons": comparisons,
        "tables": [
            {
                "title": "Raw figures (times of each fresh-process run; peak RSS is the max over runs)",
                "columns": [
                    "rows",
                    "stores",
                    "Parquet MB",
                    "ours s",
                    "pandas s",
                    "speed-up",
                    "CPU s, ours / pandas (median)",
                    "ours peak MB",
                    "pandas peak MB",
                    "memory ratio",
                    "equality",
                ],
                "rows": rows,
            },
            {
                "title": "Where the time goes (first run; ours: each helper timed alone after the measured run)",
                "columns": ["rows", "side", "step", "seconds"],
                "rows": breakdown_rows,
            },
        ],
        "notes": notes,
        "raw": results,
    }
