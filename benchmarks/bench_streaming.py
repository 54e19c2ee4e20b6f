"""Benchmark: aggregating a sales table far larger than the working memory it is given, streamed.

A 100M-row store-day x category sales table (written once to Parquet in row groups by ``_synth``,
generated a block of stores at a time so generation itself stays small) is aggregated through the
package's helpers with polars' streaming engine (``collect(engine="streaming")``; the engine
affinity is set to streaming as well, for the one helper that collects internally). The run happens
in a fresh subprocess; its peak RSS is set against the size the table would have in memory (Arrow
bytes per row, measured on a generated block, times rows).
"""

from __future__ import annotations

import time
from typing import Any

from _common import comparison, peak_rss_mb, rss_mb, run_isolated

FULL_ROWS = 100_000_000
QUICK_ROWS = 2_000_000
BUDGET_MB = 24 * 1024  # the limit: within 24 GiB


def streaming_side(sales: str, stores: str) -> dict:
    """Run the helpers on the streaming engine; own subprocess. Returns timings, peak RSS, checks."""
    import polars as pl

    from cannabis_market.data import aggregate as A
    from cannabis_market.data.panels import store_period_panel

    base = rss_mb()
    lf, st = pl.scan_parquet(sales), pl.scan_parquet(stores)
    steps: dict[str, Any] = {
        "market_totals by month x region x category": lambda: A.market_totals(
            lf, "month", by=["region", "category"], stores=st
        ).collect(engine="streaming"),
        "sales_per_store by month": lambda: A.sales_per_store(lf, st, "month").collect(engine="streaming"),
        "price_per_gram by month x category": lambda: A.price_per_gram(lf, "month", ("category",)).collect(
            engine="streaming"
        ),
        "store_month_panel": lambda: store_period_panel(lf, st),
        "row count and revenue (check)": lambda: lf.select(pl.len(), pl.col("revenue").sum()).collect(
            engine="streaming"
        ),
    }
    seconds, out_rows, frames = {}, {}, {}
    t_all = time.perf_counter()
    with pl.Config(engine_affinity="streaming"):
        for name, step in steps.items():
            t = time.perf_counter()
            frames[name] = step()
            seconds[name] = round(time.perf_counter() - t, 3)
            out_rows[name] = frames[name].height
    total = time.perf_counter() - t_all
    peak = peak_rss_mb()
    check = frames["row count and revenue (check)"]
    revenue = float(check["revenue"][0])
    sums = {name: float(frames[name]["revenue"].sum()) for name in list(steps)[:4]}
    agree = all(abs(v - revenue) <= 1e-9 * abs(revenue) for v in sums.values())
    return {
        "seconds": round(total, 2),
        "step_seconds": seconds,
        "out_rows": out_rows,
        "peak_rss_mb": peak,
        "import_rss_mb": base,
        "rows_scanned": int(check["len"][0]),
        "revenue_total": revenue,
        "totals_agree": agree,
    }


def run(quick: bool = False) -> dict:
    from _synth import ensure_panel, panel_paths

    target = QUICK_ROWS if quick else FULL_ROWS
    t0 = time.perf_counter()
    meta = ensure_panel(target)
    prepare = time.perf_counter() - t0
    sales, stores = (str(p) for p in panel_paths(meta))
    res = run_isolated("bench_streaming:streaming_side", {"sales": sales, "stores": stores})
    rows = meta["rows"]
    if res["rows_scanned"] != rows or not res["totals_agree"]:
        from _common import BenchError

        raise BenchError(
            f"streaming: scanned {res['rows_scanned']} rows of {rows}, or the helpers' revenue totals "
            f"disagree with the table's ({res['totals_agree']=})"
        )
    arrow_mb = rows * meta["arrow_bytes_per_row"] / 2**20
    peak = res["peak_rss_mb"]
    ratio = peak / arrow_mb
    full = not quick
    comparisons = [
        comparison(
            f"peak RSS / in-memory size of the table, {rows / 1e6:.0f}M rows",
            peak,
            round(arrow_mb, 1),
            round(ratio, 3),
            "< 1" if full else "(info: quick size)",
            ratio < 1 if full else None,
            unit="MB",
            baseline_label="Arrow size",
        ),
        comparison(
            f"peak RSS vs the 24 GiB budget, {rows / 1e6:.0f}M rows",
            peak,
            BUDGET_MB,
            round(peak / BUDGET_MB, 3),
            "<= 1",
            peak <= BUDGET_MB,
            unit="MB",
            baseline_label="budget",
        ),
    ]
    step_rows = [
        [name, f"{secs:.2f}", f"{res['out_rows'][name]:,}"] for name, secs in res["step_seconds"].items()
    ]
    return {
        "figures": {
            "rows": f"{rows:,}",
            "stores x days x categories": f"{meta['stores']:,} x {meta['days']} x {meta['categories']}",
            "Parquet file size (MB, zstd)": round(meta["sales_file_bytes"] / 2**20, 1),
            "Arrow bytes per row (measured)": meta["arrow_bytes_per_row"],
            "in-memory size if materialized (MB)": round(arrow_mb, 1),
            "wall time, all helpers (s)": res["seconds"],
            "peak RSS (MB)": peak,
            "RSS after imports (MB)": res["import_rss_mb"],
            "peak RSS / in-memory size": round(ratio, 3),
            "data generation (s, once; the Parquet file is reused afterwards)": meta["generate_seconds"],
            "reused an existing Parquet file": prepare < 0.5 * meta["generate_seconds"],
        },
        "comparisons": comparisons,
        "tables": [
            {
                "title": "Steps (each a full pass over the file, streamed)",
                "columns": ["helper", "seconds", "result rows"],
                "rows": step_rows,
            }
        ],
        "notes": [
            "Revenue totals of every helper's result were checked against a streamed sum of the table.",
            "The package's store_month_panel collects internally; it ran with the streaming engine "
            "affinity set (polars 2's default engine is streaming as well).",
        ],
    }
