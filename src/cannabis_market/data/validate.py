"""Enforce the data contract: parse, type-check and cross-check every table, collecting all problems.

Column rules run through pandera's polars backend (lazy, so every failure is collected); rules that span
tables (store references, open dates, frequency) are polars joins. Nothing here writes a file.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from cannabis_market.data.contract import (
    CATEGORIES,
    EVENT_KINDS,
    FREQUENCIES,
    MANIFEST_REQUIRED,
    SOURCES,
    TableSpec,
)
from cannabis_market.errors import Problem

MAX_EXAMPLES = 5


def _examples(values: Iterable[object], n: int = MAX_EXAMPLES) -> list[str]:
    out = []
    for v in values:
        out.append(repr(v) if isinstance(v, str) else str(v))
        if len(out) >= n:
            break
    return out


ROW = "__row__"  # 1-based data row number in the source file, carried through checks


def _row_examples(
    df: pl.DataFrame, mask: pl.Expr, cols: list[str], n: int = MAX_EXAMPLES
) -> tuple[int, list[str]]:
    """Count rows matching `mask` and describe the first few as 'row N (col=value, ...)'."""
    if ROW not in df.columns:
        df = df.with_row_index(ROW, offset=1)
    bad = df.filter(mask)
    ex = []
    for r in bad.head(n).iter_rows(named=True):
        vals = ", ".join(f"{c}={r[c]!s}" for c in cols)
        ex.append(f"row {r[ROW]} ({vals})")
    return bad.height, ex


# ---------------------------------------------------------------- parsing (strings/any -> contract types)


def cast_exprs(schema: pl.Schema, spec: TableSpec) -> tuple[list[pl.Expr], list[tuple[str, str, pl.Expr]]]:
    """Expressions casting each present column to its contract type, and (column, rule, bad-mask) checks.

    Works on eager and lazy frames alike, so a dataset that passed validation before is loaded lazily
    with exactly the same typing.
    """
    exprs, checks = [], []
    for col in spec.columns:
        if col.name not in schema:
            continue
        src = pl.col(col.name)
        dtype = schema[col.name]
        if dtype == pl.String:
            src = pl.when(src.str.strip_chars() == "").then(None).otherwise(src.str.strip_chars())
        if col.dtype == pl.Date:
            if dtype == pl.String:
                parsed = src.str.to_date("%Y-%m-%d", strict=False)
            elif isinstance(dtype, pl.Datetime):
                parsed = src.dt.date()
            else:
                parsed = src.cast(pl.Date, strict=False)
            rule = "not a date in ISO format YYYY-MM-DD"
        elif col.dtype in (pl.Float64, pl.Int64):
            parsed = src.cast(col.dtype, strict=False)
            rule = f"not a number ({'integer' if col.dtype == pl.Int64 else 'decimal'} expected)"
        else:
            parsed = src.cast(pl.String)
            rule = ""
        exprs.append(parsed.alias(col.name))
        if rule:
            checks.append((col.name, rule, src.is_not_null() & parsed.is_null()))
    return exprs, checks


def coerce_table(raw: pl.DataFrame, spec: TableSpec, file: str) -> tuple[pl.DataFrame, list[Problem]]:
    """Cast a table read from disk to the contract's types, reporting unparseable values per column.

    Missing required columns are reported; optional absent columns are left absent. Empty strings count
    as missing values. Returns the typed frame, with a `__row__` column (1-based data row) and without the
    rows that failed to parse (they are reported here, so later rules don't report them twice).
    """
    problems: list[Problem] = []
    missing = [c for c in spec.required_columns if c not in raw.columns]
    for c in missing:
        problems.append(
            Problem(file, c, f"required column is missing (columns found: {', '.join(raw.columns)})")
        )
    exprs, checks = cast_exprs(raw.schema, spec)
    raw = raw.with_row_index(ROW, offset=1)
    typed = raw.with_columns(exprs) if exprs else raw
    any_bad = pl.lit(False)
    if checks:
        flags = raw.select([m.alias(f"_bad_{name}") for name, _, m in checks])
        for name, rule, _ in checks:
            mask = flags[f"_bad_{name}"]
            n = int(mask.sum())
            if n:
                vals = raw.filter(mask)[name].head(MAX_EXAMPLES).to_list()
                rows = [int(i) + 1 for i in mask.arg_true().head(MAX_EXAMPLES).to_list()]
                problems.append(
                    Problem(
                        file, name, rule, n, [f"row {r}: {v!r}" for r, v in zip(rows, vals, strict=False)]
                    )
                )
        any_bad = pl.any_horizontal([m for _, _, m in checks])
    keep = [ROW] + [c.name for c in spec.columns if c.name in typed.columns]
    return typed.filter(~raw.select(any_bad.alias("b"))["b"]).select(keep), problems


# ---------------------------------------------------------------- single-table rules (pandera)


def _schema(spec: TableSpec) -> pa.DataFrameSchema:
    checks: dict[str, list[pa.Check]] = {
        "category": [
            pa.Check.isin(list(CATEGORIES), error=f"category must be one of {', '.join(CATEGORIES)}")
        ],
        "kind": [pa.Check.isin(list(EVENT_KINDS), error=f"kind must be one of {', '.join(EVENT_KINDS)}")],
        "revenue": [pa.Check.ge(0, error="must be >= 0")],
        "grams": [pa.Check.ge(0, error="must be >= 0")],
        "days_of_cover": [pa.Check.ge(0, error="must be >= 0")],
        "population": [pa.Check.gt(0, error="must be > 0")],
        "store_id": [pa.Check.str_length(min_value=1, error="must not be empty")],
        "scope": [
            pa.Check.str_matches(
                r"^(all|region:.+|store:.+)$", error="must be 'all', 'region:<name>' or 'store:<id>'"
            )
        ],
    }
    if spec.name == "series":
        checks.pop("store_id", None)
    cols = {
        c.name: pa.Column(c.dtype, checks=checks.get(c.name, []), nullable=c.nullable, required=c.required)
        for c in spec.columns
    }
    return pa.DataFrameSchema(cols, strict=False, coerce=False, name=spec.name)


_NULL_RULE = "missing value (column must not be empty)"


def check_table(df: pl.DataFrame, spec: TableSpec, file: str) -> list[Problem]:
    """Column rules (nulls, ranges, allowed values) via pandera, plus key uniqueness and emptiness."""
    problems: list[Problem] = []
    if df.height == 0:
        return [Problem(file, None, "table is empty (no data rows)")]
    try:
        _schema(spec).validate(df, lazy=True)
    except SchemaErrors as err:
        fc = err.failure_cases
        for (column, check), grp in fc.group_by(["column", "check"], maintain_order=True):
            if column is None:
                continue
            rule = _NULL_RULE if check == "not_nullable" else str(check)
            idx = grp["index"].drop_nulls().head(MAX_EXAMPLES).to_list()
            rows = [int(df[ROW][int(i)]) if ROW in df.columns else int(i) + 1 for i in idx]
            vals = grp["failure_case"].head(MAX_EXAMPLES).to_list()
            ex = [f"row {r}: {v}" for r, v in zip(rows, vals, strict=False)] if rows else _examples(vals)
            problems.append(Problem(file, column, rule, grp.height, ex))
    key = [k for k in spec.key if k in df.columns]
    if key and len(key) == len(spec.key):
        dup = df.filter(pl.struct(key).is_duplicated())
        if dup.height:
            ex = _examples(
                ", ".join(f"{k}={v}" for k, v in r.items())
                for r in dup.select(key).unique(maintain_order=True).head(5).iter_rows(named=True)
            )
            problems.append(
                Problem(
                    file, ", ".join(key), f"duplicate key ({', '.join(key)} must be unique)", dup.height, ex
                )
            )
    return problems


# ---------------------------------------------------------------- cross-table and date rules


def check_dates(df: pl.DataFrame, file: str, lo: str, hi: str) -> list[Problem]:
    """`hi` must be on or after `lo` where both are present."""
    if lo not in df.columns or hi not in df.columns:
        return []
    n, ex = _row_examples(df, pl.col(hi) < pl.col(lo), [lo, hi])
    return [Problem(file, hi, f"{hi} is before {lo}", n, ex)] if n else []


def check_month_starts(df: pl.DataFrame, file: str, col: str) -> list[Problem]:
    """Monthly datasets date every row at the first day of its month."""
    if col not in df.columns:
        return []
    n, ex = _row_examples(df, pl.col(col).dt.day() != 1, [col])
    return [Problem(file, col, "monthly dataset: dates must be month starts (day 1)", n, ex)] if n else []


def check_daily_not_monthly(df: pl.DataFrame, file: str, col: str = "date") -> list[Problem]:
    """Flag a dataset declared daily whose dates are all month starts over several months."""
    dates = df.get_column(col).drop_nulls().unique()
    if dates.len() >= 3 and bool((dates.dt.day() == 1).all()):
        return [
            Problem(
                file,
                col,
                "manifest says frequency: daily but every date is a month start; set frequency: monthly",
                dates.len(),
                _examples(dates.sort().head(3).to_list()),
            )
        ]
    return []


def check_store_refs(
    sales: pl.DataFrame, stores: pl.DataFrame, file: str, what: str = "sales"
) -> list[Problem]:
    """Every store_id must exist in stores and the row's date must fall within its open dates."""
    problems: list[Problem] = []
    known = stores.select("store_id", "opened_on", "closed_on").unique("store_id")
    unknown = sales.join(known, on="store_id", how="anti")
    if unknown.height:
        ids = unknown["store_id"].unique(maintain_order=True).head(MAX_EXAMPLES).to_list()
        problems.append(
            Problem(file, "store_id", "store_id not found in stores", unknown.height, _examples(ids))
        )
    if "date" in sales.columns:
        keep = [c for c in (ROW, "date", "store_id") if c in sales.columns]
        j = sales.select(keep).join(known, on="store_id", how="inner")
        outside = (pl.col("date") < pl.col("opened_on")) | (
            pl.col("closed_on").is_not_null() & (pl.col("date") > pl.col("closed_on"))
        )
        n, ex = _row_examples(j, outside, ["store_id", "date", "opened_on", "closed_on"])
        if n:
            problems.append(
                Problem(
                    file, "date", f"{what} row outside the store's open dates (opened_on..closed_on)", n, ex
                )
            )
    return problems


def check_manifest(manifest: object, file: str) -> list[Problem]:
    """Required manifest fields and their allowed values."""
    if not isinstance(manifest, dict):
        return [Problem(file, None, "manifest must be a YAML mapping of fields (name, description, ...)")]
    problems = [
        Problem(file, k, "required manifest field is missing or empty")
        for k in MANIFEST_REQUIRED
        if manifest.get(k) in (None, "")
    ]
    if manifest.get("source") not in (None, "") and manifest["source"] not in SOURCES:
        problems.append(
            Problem(file, "source", f"must be one of {', '.join(SOURCES)}", 1, [repr(manifest["source"])])
        )
    if manifest.get("frequency") not in (None, "") and manifest["frequency"] not in FREQUENCIES:
        problems.append(
            Problem(
                file,
                "frequency",
                f"must be one of {', '.join(FREQUENCIES)}",
                1,
                [repr(manifest["frequency"])],
            )
        )
    if manifest.get("source") == "synthetic" and not isinstance(manifest.get("truth"), dict):
        problems.append(Problem(file, "truth", "generated (synthetic) data must carry a truth: mapping"))
    cur = manifest.get("currency")
    if isinstance(cur, str) and cur and not (len(cur) == 3 and cur.isalpha() and cur.isupper()):
        problems.append(
            Problem(file, "currency", "must be a 3-letter ISO currency code such as CAD", 1, [repr(cur)])
        )
    return problems
