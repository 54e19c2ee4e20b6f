"""`cannabis-market data ...`: validate, generate and import datasets."""

from __future__ import annotations

import argparse
import time

import polars as pl

from cannabis_market.cli import importers


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `data` command group."""
    fmt = argparse.RawDescriptionHelpFormatter
    data = sub.add_parser(
        "data",
        help="validate, generate and import datasets",
        description="Validate, generate and import datasets (see data/README.md for the contract).",
        formatter_class=fmt,
    )
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    v = dsub.add_parser(
        "validate",
        help="check a dataset folder against the data contract",
        description="Check a dataset folder (manifest.yml + CSV/Parquet tables) against the data contract "
        "in data/README.md. Prints every broken rule with file, column, rule, row count and examples.",
        epilog="exit status: 0 valid, 2 invalid (nothing is written either way)",
        formatter_class=fmt,
    )
    v.add_argument("path", help="dataset folder")
    v.set_defaults(func=_validate)

    g = dsub.add_parser(
        "generate",
        help="write the synthetic Ontario-like dataset with known ground truth",
        description="Write a deterministic SYNTHETIC Ontario-like dataset (same arguments give byte-identical "
        "files), calibrated to dated public figures; every ground-truth parameter is in manifest.yml `truth:`.",
        formatter_class=fmt,
    )
    g.add_argument(
        "--out", required=True, help="output folder (created; an existing generated dataset is replaced)"
    )
    g.add_argument("--seed", type=int, default=2022, help="random seed (default 2022)")
    g.add_argument(
        "--stores",
        type=int,
        default=None,
        help="peak number of open stores (default 1,758, about Ontario in 2023); smaller values scale the market down",
    )
    g.add_argument("--start", default="2019-04-01", help="first date, ISO (default 2019-04-01)")
    g.add_argument("--end", default="2024-12-31", help="last date, ISO (default 2024-12-31)")
    g.add_argument(
        "--frequency", choices=["daily", "monthly"], default="daily", help="row frequency (default daily)"
    )
    g.set_defaults(func=_generate)

    s = dsub.add_parser(
        "import-statcan",
        help="convert a Statistics Canada table download (CSV) into a series dataset",
        description="Convert a Statistics Canada table CSV (REF_DATE, GEO, ..., VALUE, STATUS, SYMBOL) such as "
        "20-10-0056-01 into the contract's `series` form (date, geo, metric, value; values in dollars). "
        "Suppressed cells are dropped and counted; the scalar factor is applied.",
        formatter_class=fmt,
    )
    s.add_argument("csv", help="StatCan CSV file (the full-table download or a row filter of it)")
    s.add_argument("--out", required=True, help="output dataset folder")
    s.add_argument(
        "--adjustment",
        choices=["unadjusted", "seasonally_adjusted", "both"],
        default="unadjusted",
        help="which adjustment rows to keep (default unadjusted)",
    )
    s.set_defaults(
        func=importers.import_handler(
            "statcan:import_statcan", lambda f, a: f(a.csv, a.out, adjustment=a.adjustment)
        )
    )

    importers.register(dsub)  # real-data importers (WA, OR, CO, AGCO, POS, StatCan download)


def _validate(args: argparse.Namespace) -> int:
    from cannabis_market.data.loader import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(args.path, typed_cache=False)  # only checks: later loads fill the typed cache
    parts = []
    for name in ("stores", "sales", "population", "events", "inventory", "series"):
        lf = getattr(ds, name)
        if lf is not None:
            n = ds.row_counts.get(name)
            n = lf.select(pl.len()).collect().item() if n is None else n
            parts.append(f"{name} {n:,}")
    print(f"{args.path}: valid ({ds.frequency}, {', '.join(parts)} rows) in {time.perf_counter() - t0:.1f} s")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from cannabis_market.data.generate import generate_dataset

    t0 = time.perf_counter()
    out = generate_dataset(
        args.out,
        seed=args.seed,
        stores=args.stores,
        start=args.start,
        end=args.end,
        frequency=args.frequency,
        progress=importers.progress,
    )
    print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0
