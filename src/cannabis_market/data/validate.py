"""Enforce the data contract on lazily scanned tables, collecting every problem, in bounded memory.

Each rule is a polars expression giving a bad-row mask. All masks of one table are summed in *one*
streaming pass over the file; only the rules that fail get a second, early-stopping pass for a few
example rows. Keys are checked on a 64-bit hash of the key (streaming group-by), confirmed on the actual
key values; rules that span tables (store references, open dates, frequency) are streaming joins. So a
table larger than memory is checked chunk by chunk. Echoed values are cut short (`csvio.short`), and
nothing here writes a file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from cannabis_market.data.contract import (
    CATEGORIES,
    EVENT_KINDS,
    FREQUENCIES,
    MANIFEST_REQUIRED,
    SOURCES,
    ColumnSpec,
    TableSpec,
)
from cannabis_market.data.csvio import cut, short
from cannabis_market.errors import Problem

MAX_EXAMPLES = 5
ROW = "__row__"  # 1-based data row number in the source file, carried through checks
_NULL_RULE = "missing value (column must not be empty)"


def collect(lf: pl.LazyFrame) -> pl.DataFrame:
    """Run a query on the streaming engine (memory bounded by chunk size, not table size)."""
    return lf.collect(engine="streaming")


# ---------------------------------------------------------------- stored types (checked before casting)

_EXPECTED = {
    pl.Date: "a date (Parquet date or timestamp, or ISO text YYYY-MM-DD)",
    pl.Float64: "a number (integer or floating point, or text)",
    pl.Int64: "an integer (or text)",
    pl.String: "text (or an integer identifier)",
}


def _accepts(target: object, stored: pl.DataType) -> bool:
    """Can a column stored as `stored` be read as the contract type `target` without guessing?"""
    if stored == pl.Null or isinstance(stored, pl.String | pl.Categorical | pl.Enum):
        return True
    if target == pl.Date:
        return isinstance(stored, pl.Date | pl.Datetime)
    if target == pl.Float64:
        return stored.is_numeric()
    if target == pl.Int64:
        return stored.is_integer() or stored.is_float()
    return stored.is_integer()  # identifiers stored as integers read as text


def check_stored_types(schema: pl.Schema, spec: TableSpec, file: str) -> list[Problem]:
    """A problem per column whose physical type cannot hold the contract type (e.g. a date stored as
    Int64 or Binary, revenue as Boolean or List); checked on the schema, before any value is cast."""
    return [
        Problem(file, c.name, f"stored as {cut(str(schema[c.name]), 40)}, but must be {_EXPECTED[c.dtype]}")
        for c in spec.columns
        if c.name in schema and not _accepts(c.dtype, schema[c.name])
    ]


# ---------------------------------------------------------------- parsing (stored -> contract types)


def _clean(name: str, stored: pl.DataType) -> pl.Expr:
    """The stored column with text trimmed and empty text as missing."""
    src = pl.col(name)
    if isinstance(stored, pl.Categorical | pl.Enum):
        src, stored = src.cast(pl.String), pl.String
    if stored == pl.String:
        text = src.str.strip_chars()
        return pl.when(text == "").then(None).otherwise(text)
    return src


def parse_expr(col: ColumnSpec, stored: pl.DataType, src: pl.Expr | None = None) -> pl.Expr:
    """Expression turning the stored column into its contract type (null where it does not parse).

    `src` is the cleaned stored column (`_clean`), when already computed."""
    src = _clean(col.name, stored) if src is None else src
    text = stored == pl.String or isinstance(stored, pl.Categorical | pl.Enum)
    if col.dtype == pl.Date:
        if text:
            return src.str.to_date("%Y-%m-%d", strict=False)
        return src.dt.date() if isinstance(stored, pl.Datetime) else src.cast(pl.Date, strict=False)
    if col.dtype == pl.Int64 and stored.is_float():
        return pl.when(src == src.round()).then(src).cast(pl.Int64, strict=False)
    if col.dtype in (pl.Float64, pl.Int64):
        return src.cast(col.dtype, strict=False)
    return src.cast(pl.String)


def cast_exprs(schema: pl.Schema, spec: TableSpec) -> list[pl.Expr]:
    """Contract-typed expressions for every present column (the same typing whether cached or not)."""
    return [parse_expr(c, schema[c.name]).alias(c.name) for c in spec.columns if c.name in schema]


def _s(name: str) -> str:
    return f"__s_{name}"  # the stored value, cleaned


def _v(name: str) -> str:
    return f"__v_{name}"  # the parsed value


def staged(lf: pl.LazyFrame, schema: pl.Schema, spec: TableSpec) -> pl.LazyFrame:
    """`lf` plus, per present column, its cleaned stored value and its parsed value, each computed once
    (so the many rule masks of `column_checks` do not re-parse)."""
    cols = [c for c in spec.columns if c.name in schema]
    lf = lf.with_columns([_clean(c.name, schema[c.name]).alias(_s(c.name)) for c in cols])
    stored = {
        c.name: pl.String if isinstance(schema[c.name], pl.Categorical | pl.Enum) else schema[c.name]
        for c in cols
    }
    return lf.with_columns(
        [parse_expr(c, stored[c.name], pl.col(_s(c.name))).alias(_v(c.name)) for c in cols]
    )


def typed_rows(stage: pl.LazyFrame, schema: pl.Schema, spec: TableSpec) -> pl.LazyFrame:
    """Rows of a `staged` frame whose values all parse, as contract types, with their row numbers."""
    cols = [c.name for c in spec.columns if c.name in schema]
    return stage.filter(parsed_ok(schema, spec)).select(ROW, *[pl.col(_v(c)).alias(c) for c in cols])


@dataclass(frozen=True)
class Check:
    """One rule on one column: `mask` is True on rows that break it; `show` are columns to echo."""

    column: str
    rule: str
    mask: pl.Expr
    show: tuple[str, ...]
    parse: bool = False  # a value that does not parse (such rows are left out of cross-table rules)


def _value_rules(spec: TableSpec) -> dict[str, list[tuple[str, Callable[[pl.Expr], pl.Expr]]]]:
    """Rules on parsed values: mapping column -> [(rule text, bad(value) expression)]."""
    ge0 = [("must be >= 0", lambda v: v < 0)]
    rules: dict[str, list[tuple[str, Callable[[pl.Expr], pl.Expr]]]] = {
        "category": [
            (f"category must be one of {', '.join(CATEGORIES)}", lambda v: ~v.is_in(list(CATEGORIES)))
        ],
        "kind": [(f"kind must be one of {', '.join(EVENT_KINDS)}", lambda v: ~v.is_in(list(EVENT_KINDS)))],
        "revenue": ge0,
        "grams": ge0,
        "days_of_cover": ge0,
        "population": [("must be > 0", lambda v: v <= 0)],
        "scope": [
            (
                "must be 'all', 'region:<name>' or 'store:<id>'",
                lambda v: ~v.str.contains(r"^(all|region:.+|store:.+)$"),
            )
        ],
    }
    return rules


def column_checks(schema: pl.Schema, spec: TableSpec) -> list[Check]:
    """Every per-row rule of the table's present columns: parses, is finite, not missing, in range.

    Masks read the columns of `staged`, so all run in one pass over the file; a value that fails to
    parse is reported once (not again as missing or out of range).
    """
    checks: list[Check] = []
    rules = _value_rules(spec)
    for col in spec.columns:
        if col.name not in schema:
            continue
        src, val = pl.col(_s(col.name)), pl.col(_v(col.name))
        bad_parse = src.is_not_null() & val.is_null()
        if col.dtype == pl.Date:
            checks.append(
                Check(col.name, "not a date in ISO format YYYY-MM-DD", bad_parse, (col.name,), True)
            )
        elif col.dtype in (pl.Float64, pl.Int64):
            kind = "integer" if col.dtype == pl.Int64 else "decimal"
            checks.append(Check(col.name, f"not a number ({kind} expected)", bad_parse, (col.name,), True))
        if col.dtype == pl.Float64:
            checks.append(
                Check(
                    col.name,
                    "not a finite number (inf and nan are not amounts)",
                    ~val.is_finite(),
                    (col.name,),
                )
            )
        if not col.nullable:
            checks.append(Check(col.name, _NULL_RULE, src.is_null(), (col.name,)))
        for rule, bad in rules.get(col.name, []):
            checks.append(Check(col.name, rule, bad(val), (col.name,)))
    return checks


def parsed_ok(schema: pl.Schema, spec: TableSpec) -> pl.Expr:
    """True on rows whose every present value parses (cross-table rules only look at these)."""
    masks = [c.mask for c in column_checks(schema, spec) if c.parse]
    return ~pl.any_horizontal(masks).fill_null(False) if masks else pl.lit(True)


def _echo(value: object, n: int) -> str:
    return "(empty)" if value is None else short(value, n)


def _example(row: dict, show: tuple[str, ...]) -> str:
    if len(show) == 1:
        return f"row {row[ROW]}: {_echo(row[show[0]], 60)}"
    return f"row {row[ROW]} ({', '.join(f'{c}={_echo(row[c], 30)}' for c in show)})"


def check_columns(
    lf: pl.LazyFrame, checks: list[Check], file: str, extra: dict[str, pl.Expr] | None = None
) -> tuple[list[Problem], dict[str, int]]:
    """Count rows, every check's bad rows and the `extra` aggregates in one streaming pass; fetch a few
    example rows (a second, early-stopping pass) only for the checks that fail. Returns the problems
    and the counts ("n" is the row count, then one entry per `extra` name)."""
    aggs = [c.mask.fill_null(False).sum().alias(f"c{i}") for i, c in enumerate(checks)]
    aggs += [e.alias(k) for k, e in (extra or {}).items()]
    counts = collect(lf.select(pl.len().alias("n"), *aggs)).row(0, named=True)
    problems = []
    for i, c in enumerate(checks):
        n = int(counts[f"c{i}"] or 0)
        if n:
            rows = collect(lf.filter(c.mask.fill_null(False)).select(ROW, *c.show).head(MAX_EXAMPLES))
            ex = [_example(r, c.show) for r in rows.iter_rows(named=True)]
            problems.append(Problem(file, c.column, c.rule, n, ex))
    return problems, {k: int(counts[k] or 0) for k in ("n", *(extra or {}))}


def run_checks(lf: pl.LazyFrame, checks: list[Check], file: str) -> list[Problem]:
    """`check_columns` without the counts."""
    return check_columns(lf, checks, file)[0]


_MONTHLY_RULE = "monthly dataset: dates must be month starts (day 1)"
_DAILY_RULE = "manifest says frequency: daily but every date is a month start; set frequency: monthly"


def frequency_checks(
    schema: pl.Schema, spec: TableSpec, frequency: object
) -> tuple[list[Check], dict[str, pl.Expr]]:
    """The declared frequency as rules on a `staged` frame, run in the same pass as `column_checks`:
    monthly rows must be dated at month starts; for a daily table, aggregates telling whether every
    date is a month start (then `daily_problem` flags it)."""
    if "date" not in schema or spec.name not in ("sales", "inventory", "series"):
        return [], {}
    day = pl.col(_v("date")).dt.day()
    if frequency == "monthly":
        return [Check("date", _MONTHLY_RULE, day != 1, ("date",))], {}
    if frequency == "daily" and spec.name in ("sales", "series"):
        return [], {"dates": pl.col(_v("date")).drop_nulls().n_unique(), "not_month_start": (day != 1).sum()}
    return [], {}


def daily_problem(typed: pl.LazyFrame, counts: dict[str, int], file: str) -> list[Problem]:
    """Flag a table declared daily whose dates (three or more) are all month starts."""
    if counts.get("dates", 0) < 3 or counts.get("not_month_start", 1):
        return []
    first = collect(typed.select(pl.col("date").drop_nulls().unique().sort().head(3)))["date"]
    return [Problem(file, "date", _DAILY_RULE, counts["dates"], [str(d) for d in first.to_list()])]


CONFIRM_LIMIT = 10_000
"""Duplicate-hash groups confirmed on the real key values; beyond that the count comes from the hashes."""


def _duplicate_hashes(typed: pl.LazyFrame, h: pl.Expr) -> tuple[np.ndarray, int]:
    """Hash values occurring more than once, and the number of rows carrying them.

    Only the 8-byte hashes are held (sorted in place with numpy): a hash table of every key, as a
    group-by builds, costs several times more per row."""
    col = collect(typed.select(h))
    a = col.to_series().to_numpy(writable=True)
    del col
    a.sort()
    same = a[1:] == a[:-1]
    in_group = np.zeros(a.size, dtype=bool)
    in_group[1:] |= same
    in_group[:-1] |= same
    return np.unique(a[1:][same]), int(in_group.sum())


def check_key(typed: pl.LazyFrame, spec: TableSpec, file: str) -> list[Problem]:
    """Key uniqueness in bounded memory: sort a 64-bit hash of the key, then confirm the repeated hashes
    on the real key values (so a hash collision never produces a false report)."""
    key = list(spec.key)
    if not key or not set(key) <= set(typed.collect_schema().names()):
        return []
    h = pl.struct(key).hash(seed=7).alias("__h")
    cand, n_rows = _duplicate_hashes(typed, h)
    if not cand.size:
        return []
    confirm = pl.DataFrame({"__h": cand[:CONFIRM_LIMIT]}, schema={"__h": pl.UInt64})
    dup = collect(
        typed.with_columns(h)
        .join(confirm.lazy(), on="__h", how="semi")
        .group_by(key)
        .agg(pl.len().alias("n"), pl.col(ROW).min().alias("first"))
        .filter(pl.col("n") > 1)
        .sort("first")
    )
    if not dup.height:
        return []
    if cand.size <= CONFIRM_LIMIT:
        n_rows = int(dup["n"].sum())
    ex = [
        ", ".join(f"{k}={short(r[k], 30)}" for k in key) for r in dup.head(MAX_EXAMPLES).iter_rows(named=True)
    ]
    rule = f"duplicate key ({', '.join(key)} must be unique)"
    return [Problem(file, ", ".join(key), rule, n_rows, ex)]


# ---------------------------------------------------------------- cross-table and date rules


def check_dates(typed: pl.LazyFrame, file: str, lo: str, hi: str) -> list[Problem]:
    """`hi` must be on or after `lo` where both are present."""
    if not {lo, hi} <= set(typed.collect_schema().names()):
        return []
    return run_checks(typed, [Check(hi, f"{hi} is before {lo}", pl.col(hi) < pl.col(lo), (lo, hi))], file)


def check_store_refs(
    rows: pl.LazyFrame, stores: pl.LazyFrame, file: str, what: str = "sales"
) -> list[Problem]:
    """Every store_id must exist in stores and the row's date must fall within its open dates."""
    known = (
        stores.select("store_id", "opened_on", "closed_on")
        .unique("store_id")
        .with_columns(pl.lit(True).alias("__known"))
    )
    j = rows.select(ROW, "date", "store_id").join(known, on="store_id", how="left")
    unknown = pl.col("__known").is_null()
    outside = (
        ~unknown
        & pl.col("date").is_not_null()
        & (
            (pl.col("date") < pl.col("opened_on"))
            | (pl.col("closed_on").is_not_null() & (pl.col("date") > pl.col("closed_on")))
        )
    )
    counts = collect(j.select(unknown.sum().alias("u"), outside.sum().alias("o")))
    problems = []
    n_unknown, n_outside = int(counts["u"].item()), int(counts["o"].item())
    if n_unknown:
        ids = collect(j.filter(unknown).select("store_id").unique(maintain_order=True).head(MAX_EXAMPLES))
        problems.append(
            Problem(
                file,
                "store_id",
                "store_id not found in stores",
                n_unknown,
                [short(i) for i in ids["store_id"]],
            )
        )
    if n_outside:
        show = ("store_id", "date", "opened_on", "closed_on")
        rows_ex = collect(j.filter(outside).select(ROW, *show).sort(ROW).head(MAX_EXAMPLES))
        problems.append(
            Problem(
                file,
                "date",
                f"{what} row outside the store's open dates (opened_on..closed_on)",
                n_outside,
                [_example(r, show) for r in rows_ex.iter_rows(named=True)],
            )
        )
    return problems


# ---------------------------------------------------------------- manifest

_TEXT_FIELDS = ("name", "description", "source", "frequency", "currency", "region")


def check_manifest(manifest: object, file: str) -> list[Problem]:
    """Required manifest fields, their types (text, or a mapping for truth) and allowed values."""
    if not isinstance(manifest, dict):
        return [Problem(file, None, "manifest must be a YAML mapping of fields (name, description, ...)")]
    problems = [
        Problem(file, k, "required manifest field is missing or empty")
        for k in MANIFEST_REQUIRED
        if manifest.get(k) in (None, "")
    ]
    for k in _TEXT_FIELDS:
        v = manifest.get(k)
        if v not in (None, "") and not isinstance(v, str) and k != "currency":
            problems.append(Problem(file, k, f"must be text, not {type(v).__name__}", 1, [short(v)]))
    allowed = {"source": SOURCES, "frequency": FREQUENCIES}
    for k, values in allowed.items():
        v = manifest.get(k)
        if isinstance(v, str) and v and v not in values:
            problems.append(Problem(file, k, f"must be one of {', '.join(values)}", 1, [short(v)]))
    if manifest.get("source") == "synthetic" and not isinstance(manifest.get("truth"), dict):
        problems.append(Problem(file, "truth", "generated (synthetic) data must carry a truth: mapping"))
    elif manifest.get("truth") is not None and not isinstance(manifest.get("truth"), dict):
        problems.append(Problem(file, "truth", "must be a mapping of ground-truth parameters"))
    cur = manifest.get("currency")
    if cur not in (None, "") and not (
        isinstance(cur, str) and len(cur) == 3 and cur.isascii() and cur.isalpha() and cur.isupper()
    ):
        problems.append(
            Problem(file, "currency", "must be a 3-letter ISO currency code such as CAD", 1, [short(cur)])
        )
    return problems
