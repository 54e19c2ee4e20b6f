"""Benchmark: validating a 1 GB `sales.csv` in bounded memory, refusing a 1 GB sparse one, the caches.

Three folders are validated with `cannabis-market data validate`, each in a fresh subprocess (its peak
RSS is its own): a valid dataset whose `sales.csv` is about 1 GB (300 stores x 6 categories a day,
~27M rows), the same dataset with `sales.csv` replaced by a 1 GB sparse file (all NUL bytes, as made
by `truncate -s 1G`), and the valid one again (its content fingerprint now recorded as validated).
Targets: peak RSS under 1.5 GB for the 1 GB table (the whole table as text would not fit), the sparse
file refused quickly, and the cached re-validation a small fraction of the first (it still hashes every
byte, so an edit that keeps size and mtime is caught).

The typed cache (issue #16, "read the dataset once per build") is measured on a generated dataset
(600 stores, sales stored as Parquet and as CSV; quick mode: 20 stores, Parquet only): load + a
monthly market query from the source files against the same from the memory-mapped Arrow copy,
results checked equal.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

from _common import comparison, run_isolated
from _synth import DATA_DIR

FULL_MB, QUICK_MB = 1024, 8
BUDGET_MB = 1536
STORES, CATEGORIES = 300, ("dried_flower", "pre_rolls", "vapes", "edibles", "beverages", "extracts")
MANIFEST = (
    "name: bench\ndescription: generated for bench_validate\nsource: other\nfrequency: daily\ncurrency: CAD\n"
)


def write_big_dataset(folder: Path, mb: int, last_row: str | None = None) -> Path:
    """A valid daily dataset (manifest, stores, sales) whose sales.csv is about `mb` MB, written in
    30-day blocks so generation stays small; `last_row` appends one (e.g. hostile) row at the end."""
    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.yml").write_text(MANIFEST)
    stores = ["store_id,municipality,region,opened_on,closed_on,chain"]
    stores += [f"S{i},M{i % 40},R{i % 5},2000-01-01,," for i in range(STORES)]
    (folder / "stores.csv").write_text("\n".join(stores) + "\n")
    ids = pl.DataFrame({"store_id": [f"S{i}" for i in range(STORES)]})
    cats = pl.DataFrame({"category": list(CATEGORIES)})
    with (folder / "sales.csv").open("w") as f:
        f.write("date,store_id,category,revenue,grams\n")
        start, size = dt.date(2000, 1, 1), 0
        while size < mb << 20:
            end = start + dt.timedelta(days=29)
            block = pl.DataFrame({"date": pl.date_range(start, end, eager=True)}).join(ids, how="cross")
            block = block.join(cats, how="cross").with_columns(
                revenue=(pl.int_range(pl.len()) % 997 + 0.25), grams=(pl.int_range(pl.len()) % 89 + 0.5)
            )
            size += f.write(block.write_csv(include_header=False))
            start = end + dt.timedelta(days=1)
        if last_row:
            f.write(last_row + "\n")
    return folder


def validate_side(folder: str, cache: str) -> dict:
    """`data validate FOLDER` in this (fresh) process, with its own validation cache folder."""
    os.environ["XDG_CACHE_HOME"] = cache
    import contextlib
    import io

    from cannabis_market.cli import main

    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["data", "validate", folder])
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 2), "stderr": err.getvalue()[-500:]}


def _side(folder: Path, cache: Path) -> tuple[dict, float]:
    res = run_isolated("bench_validate:validate_side", {"folder": str(folder), "cache": str(cache)})
    return res, float(res["_proc"]["tree_peak_rss_mb"])


def load_side(folder: str, cache: str, typed: bool) -> dict:
    """Load a validated dataset and run one market query, with or without the typed Arrow cache."""
    os.environ["XDG_CACHE_HOME"] = cache
    os.environ["CM_TYPED_CACHE"] = "1" if typed else "0"
    import polars as pl

    from cannabis_market.data.loader import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(folder)
    totals = (
        ds.sales.join(ds.stores.select("store_id", "region"), on="store_id")
        .group_by(pl.col("date").dt.truncate("1mo"), "region", "category")
        .agg(pl.col("revenue").sum(), pl.len())
        .sort("date", "region", "category")
        .collect()
    )
    return {
        "seconds": round(time.perf_counter() - t0, 3),
        "revenue": float(totals["revenue"].sum()),
        "rows": int(totals["len"].sum()),
    }


def typed_cache_rows(root: Path, stores: int, quick: bool) -> tuple[list[dict], dict]:
    """Load + query time of a generated dataset (sales as Parquet, then as CSV), source files vs the
    typed Arrow cache, each side in a fresh process once the caches are warm."""
    import polars as pl

    from cannabis_market.data.generate import generate_dataset

    pq = root / f"generated-{stores}"
    if not (pq / ".complete").exists():
        shutil.rmtree(pq, ignore_errors=True)
        generate_dataset(pq, stores=stores)
        (pq / ".complete").touch()
    csv = root / f"generated-{stores}-csv"
    if not quick and not (csv / ".complete").exists():
        shutil.rmtree(csv, ignore_errors=True)
        shutil.copytree(pq, csv, ignore=shutil.ignore_patterns("sales.parquet"))
        pl.read_parquet(pq / "sales.parquet").write_csv(csv / "sales.csv")
        (csv / ".complete").touch()
    rows, figures = [], {}
    for label, folder in (("Parquet", pq),) if quick else (("Parquet", pq), ("CSV", csv)):
        cache = root / f"xdg-load-{label}"
        shutil.rmtree(cache, ignore_errors=True)
        args = {"folder": str(folder), "cache": str(cache)}
        run_isolated("bench_validate:load_side", {**args, "typed": True})  # validates, writes the cache
        plain = run_isolated("bench_validate:load_side", {**args, "typed": False})
        typed = run_isolated("bench_validate:load_side", {**args, "typed": True})
        if (
            abs(plain["revenue"] - typed["revenue"]) > 1e-9 * abs(plain["revenue"])
            or plain["rows"] != typed["rows"]
        ):
            raise RuntimeError(f"typed cache changed the result: {plain} vs {typed}")
        ratio = round(typed["seconds"] / max(plain["seconds"], 1e-9), 3)
        rows.append(
            comparison(
                f"load + monthly market query, sales as {label} ({plain['rows']:,} rows): typed cache vs source",
                typed["seconds"],
                plain["seconds"],
                ratio,
                "info",
                None,
                "s",
                "source files",
            )
        )
        figures[f"load + query from {label} source (s)"] = plain["seconds"]
        figures[f"load + query from the typed cache, {label} source (s)"] = typed["seconds"]
    return rows, figures


def _budget(what: str, peak: float, quick: bool) -> dict:
    """A peak-memory row against the 1.5 GB budget (judged at full size only)."""
    ratio = round(peak / BUDGET_MB, 3)
    return comparison(
        f"{what} (MB / {BUDGET_MB:,} MB budget)",
        peak,
        BUDGET_MB,
        ratio,
        "<= 1",
        None if quick else ratio <= 1,
        "MB",
        "budget",
    )


def run(quick: bool = False) -> dict:
    mb = QUICK_MB if quick else FULL_MB
    root = DATA_DIR / f"validate-{mb}mb"
    valid, sparse, cache = root / "valid", root / "sparse", root / "xdg-cache"
    if not (valid / ".complete").exists():
        shutil.rmtree(valid, ignore_errors=True)
        write_big_dataset(valid, mb)
        (valid / ".complete").touch()
    shutil.rmtree(sparse, ignore_errors=True)
    sparse.mkdir(parents=True)
    for name in ("manifest.yml", "stores.csv"):
        shutil.copy(valid / name, sparse / name)
    with (sparse / "sales.csv").open("wb") as f:
        f.truncate(mb << 20)
    shutil.rmtree(cache, ignore_errors=True)

    cold, cold_peak = _side(valid, cache)
    warm, warm_peak = _side(valid, cache)
    refused, sparse_peak = _side(sparse, cache)
    shutil.rmtree(sparse, ignore_errors=True)
    if cold["rc"] != 0 or warm["rc"] != 0 or refused["rc"] != 2 or "NUL byte" not in refused["stderr"]:
        raise RuntimeError(f"unexpected outcome: {cold}, {warm}, {refused}")
    size_mb = (valid / "sales.csv").stat().st_size / 2**20
    cache_rows, cache_figures = typed_cache_rows(DATA_DIR, 20 if quick else 600, quick)
    ratio = round(warm["seconds"] / max(cold["seconds"], 1e-9), 3)
    return {
        "title": "Data validation: a 1 GB sales.csv streamed, a sparse file refused, unchanged data cached",
        "figures": {
            "sales.csv size (MB)": round(size_mb),
            "first validation (s)": cold["seconds"],
            "first validation peak RSS (MB)": cold_peak,
            "cached re-validation (s)": warm["seconds"],
            "cached re-validation peak RSS (MB)": warm_peak,
            "sparse file refusal (s)": refused["seconds"],
            "sparse file refusal peak RSS (MB)": sparse_peak,
            **cache_figures,
        },
        "comparisons": [
            _budget(f"peak memory validating a {size_mb:,.0f} MB sales.csv", cold_peak, quick),
            _budget(f"peak memory refusing a {mb:,} MB sparse sales.csv", sparse_peak, quick),
            comparison(
                "re-validating unchanged data (content hash + cache hit) vs first validation",
                warm["seconds"],
                cold["seconds"],
                ratio,
                "<= 0.1",
                ratio <= 0.1 if not quick else None,
                "s",
                "first validation",
            ),
            *cache_rows,
        ],
        "notes": [
            "Peak RSS is the validating subprocess's (wait4 rusage), interpreter and imports included.",
            "Before this validator (eager read of every table as text, then pandera; not re-run here): the "
            "1 GB sparse file aborted in Rust at 4.3 GB under a 6 GB address-space cap (issue #12 item 11); "
            "measured once by hand on 2026-12-02 on this 1 GB valid sales.csv under a 12 GB cap, it aborted "
            "in Rust ('memory allocation failed', signal 6) at 6.1 GB peak RSS after 173 s.",
        ],
    }
