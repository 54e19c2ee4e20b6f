"""Streaming read of POS export files: one lazy scan per file, grouped while it streams.

A transaction export is far larger than its contract table (20M lines -> ~1.5M store x day x category
rows), so each file is scanned lazily (`pl.scan_csv`, every column text) and grouped on the streaming
engine by its *raw* key columns (date text, store, category, store attributes) while only the amounts
are converted per row. Keys are then parsed once per distinct value instead of once per line, and the
groups re-summed by the parsed keys. Memory follows the number of groups, not the file size.

Problems are counted from the groups; the example rows a message shows (first rows in file order) are
found by a second, filtered scan that only runs when there is something to report. `aggregate_file`
is a plain function of (path, mapping) so a Dask worker can run it for one file of a split export.
"""

from __future__ import annotations

import codecs
import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market.data.adapters import (
    MAX_EXAMPLES,
    ROW,
    is_blank,
    plural,
    problem,
    raise_problems,
)
from cannabis_market.data.adapters.pos_mapping import ENCODINGS, check_columns, has_time, parse_dates
from cannabis_market.errors import InputError

ATTRS = ("municipality", "region", "opened_on", "closed_on", "chain")
POS = "_pos"  # file index << ROW_BITS | source row: one sortable number for "where in the export"
ROW_BITS = 40
_CHUNK = 1 << 24


@dataclass
class Part:
    """One file aggregated: groups by parsed keys (+ `_n` rows, `_pos` first row) and its problems."""

    file: str
    rows: int
    default_rows: int
    groups: pl.DataFrame | None
    problems: list[str]


def resolve_files(inputs: str | Path | list[str | Path]) -> tuple[list[Path], str]:
    """Export files from paths, folders (their *.csv) and glob patterns; (sorted files, label)."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    files: list[Path] = []
    for item in items:
        text = str(item)
        if Path(text).is_dir():
            found = sorted(p for p in Path(text).iterdir() if p.suffix.lower() == ".csv" and p.is_file())
            if not found:
                raise InputError(f"{text}: folder holds no .csv files")
        elif any(ch in text for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
            if not found:
                raise InputError(f"{text}: no file matches this pattern")
        else:
            found = [Path(text)]
            if not found[0].is_file():
                raise InputError(f"CSV {text}: file not found")
        files += [f for f in found if f not in files]
    label = files[0].name if len(files) == 1 else f"{', '.join(map(str, items))} ({len(files)} files)"
    return files, label


@contextmanager
def utf8_source(path: Path, encoding: str) -> Iterator[Path]:
    """The file itself when UTF-8, else a UTF-8 copy transcoded in chunks (removed afterwards)."""
    if encoding in ("utf-8", "utf-8-sig"):
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix="cm-pos-", suffix=".csv")
    try:
        dec = codecs.getincrementaldecoder(encoding)()
        with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(dec.decode(chunk).encode("utf-8"))
            dst.write(dec.decode(b"", final=True).encode("utf-8"))
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read_error(path: Path, encoding: str, err: Exception) -> InputError:
    """The user-facing reason a scan failed: bad bytes for the encoding, or not a readable CSV."""
    dec = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            try:
                dec.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                return InputError(
                    f"{path.name}: not valid {encoding} text at byte {offset + e.start}; set encoding: "
                    f"(one of {', '.join(ENCODINGS)}) in the mapping file"
                )
            if not chunk:
                break
            offset += len(chunk)
    return InputError(f"{path.name}: not a readable CSV ({str(err).strip().splitlines()[0][:150]})")


def scan(path: Path, src: Path, delimiter: str) -> pl.LazyFrame:
    """Lazy text scan of `src` (the UTF-8 form of `path`) with a 1-based source-row column."""
    with open(src, "rb") as fh:
        head = fh.read(4096)
    if not head.decode("utf-8", "ignore").lstrip("\ufeff").strip():
        raise InputError(f"{path.name}: file is empty (no header row)")
    lf = pl.scan_csv(src, separator=delimiter, infer_schema=False, row_index_name=ROW, row_index_offset=1)
    names = lf.collect_schema().names()
    return lf.rename({c: c.lstrip("\ufeff").strip() for c in names if c != ROW}).with_columns(
        pl.col(ROW).cast(pl.Int64)
    )


def mapped_columns(m: dict[str, Any]) -> dict[str, str]:
    """Field -> source column name, for the fields the mapping sets."""
    return {k: str(v).strip() for k, v in m["columns"].items() if v not in (None, "")}


def category_key(col: str) -> pl.Expr:
    """How a source category value is matched against the mapping: trimmed, lower case."""
    return pl.col(col).fill_null("").str.strip_chars().str.to_lowercase()


def key_exprs(m: dict[str, Any], cols: dict[str, str], date_format: str | None = None) -> list[pl.Expr]:
    """Parsed keys (date, store_id, category, store attributes) from source-valued columns."""
    sfmt = m.get("store_date_format") or m["date_format"]
    date = parse_dates(cols["date"], date_format or m["date_format"])
    if m.get("frequency", "daily") == "monthly":
        date = date.dt.month_start()
    out = [date.alias("date"), pl.col(cols["store"]).str.strip_chars().alias("store_id")]
    if "category" in cols:
        default = m.get("default_category") or None
        cat = category_key(cols["category"]).replace_strict(
            m["_categories"], default=default, return_dtype=pl.String
        )
        out.append(cat.alias("category"))
    else:
        out.append(pl.lit(m.get("default_category")).alias("category"))
    for f in ATTRS:
        if f in cols and not m.get("stores"):
            c = cols[f]
            val = parse_dates(c, sfmt) if f.endswith("_on") else pl.col(c).str.strip_chars()
            out.append(pl.when(is_blank(c)).then(None).otherwise(val).alias(f))
    return out


def number(col: str, thousands: str, decimal: str) -> pl.Expr:
    """Text -> Float64 like `adapters.parse_number`, without regular expressions (it runs once per line).

    Spaces (also no-break and thin), currency signs and the thousands separator are dropped, the decimal
    mark becomes '.', '(12.50)' is -12.50; anything else that does not read as a number is null.
    """
    drop = [" ", "\t", "\u00a0", "\u202f", "\u2009", "$", "€", "£", *([thousands] if thousands else [])]
    into = [""] * len(drop)
    if decimal and decimal != ".":
        drop, into = [*drop, decimal], [*into, "."]
    s = pl.col(col).str.replace_many(drop, into)
    opens, closes = s.str.starts_with("("), s.str.ends_with(")")
    sign = pl.when(opens & closes).then(-1.0).when(opens | closes).then(None).otherwise(1.0)
    return s.str.strip_prefix("(").str.strip_suffix(")").cast(pl.Float64, strict=False) * sign


def quick_number(col: str, thousands: str, decimal: str) -> pl.Expr:
    """The plain case of `number` ('1.234,56': separators only), null for anything else; about 3x faster.

    Where it gives a number `number` gives the same one (it only drops what `number` drops too).
    """
    s = pl.col(col)
    if thousands:
        s = s.str.replace_all(thousands, "", literal=True)
    if decimal and decimal != ".":
        s = s.str.replace(decimal, ".", literal=True)
    return s.cast(pl.Float64, strict=False)


def amounts(m: dict[str, Any], cols: dict[str, str], quick: bool = False) -> dict[str, pl.Expr]:
    """Per-row converted amounts (revenue tax stripped) keyed by field; `quick`: plain numbers only."""
    dec, thou = m.get("decimal") or ".", m.get("thousands") or ""
    tax = m.get("tax") or {}
    rate = float(tax.get("rate", 0.0)) if tax.get("included") else 0.0
    conv = quick_number if quick else number
    rev = conv(cols["revenue"], thou, dec)
    out = {"revenue": rev / (1.0 + rate) if rate else rev}
    if "grams" in cols:
        out["grams"] = conv(cols["grams"], thou, dec)
    return out


def first_rows(lf: pl.LazyFrame, mask: pl.Expr, column: str | pl.Expr) -> list[tuple[int, Any]]:
    """(row, value) of the first rows matching `mask`: a filtered scan, run only to illustrate a problem."""
    value = pl.col(column) if isinstance(column, str) else column
    got = lf.filter(mask).select(ROW, value.alias("_v")).head(MAX_EXAMPLES).collect(engine="streaming")
    return [(int(r), v) for r, v in got.iter_rows()]


def aggregate_file(path: str | Path, m: dict[str, Any], index: int = 0) -> Part:
    """Scan one export file and sum its lines by (date, store, category, store attributes).

    Row-level problems (dates, store ids, numbers, categories) come back in `Part.problems`, named by
    this file's columns and rows; `groups` is None when there are any.
    """
    path = Path(path)
    file, mname = path.name, m["_path"].name
    cols = mapped_columns(m)
    encoding = m.get("encoding", "utf-8")
    with utf8_source(path, encoding) as src:
        try:
            lf = scan(path, src, m.get("delimiter") or ",")
            part = _aggregate(lf, m, cols, file, mname, index)
        except pl.exceptions.PolarsError as e:
            raise _read_error(path, encoding, e) from None
    return part


def _sums(m: dict[str, Any], cols: dict[str, str], quick: bool) -> list[pl.Expr]:
    """Per-group sums of the converted amounts, rows, first row, and how many cells did not convert."""
    amt = amounts(m, cols, quick)
    aggs = [
        pl.len().alias("_n"),
        pl.col(ROW).min().alias("_row"),
        amt["revenue"].sum().alias("revenue"),
        (pl.len() - amt["revenue"].count()).alias("_lost_revenue"),  # blank or not a number
    ]
    if "grams" in amt:  # blank grams are allowed (unknown quantity)
        aggs += [
            amt["grams"].sum().alias("grams"),
            amt["grams"].count().alias("_grams_n"),
            (pl.col(cols["grams"]).count() - amt["grams"].count()).alias("_lost_grams"),
        ]
    return aggs


def _lost(raw: pl.DataFrame) -> int:
    return sum(int(raw[c].sum()) for c in ("_lost_revenue", "_lost_grams") if c in raw.columns)


def _aggregate(
    lf: pl.LazyFrame, m: dict[str, Any], cols: dict[str, str], file: str, mname: str, index: int
) -> Part:
    raise_problems(check_columns(lf.collect_schema().names(), cols, file, mname, "columns"), mname)
    fmt = m["date_format"]
    # raw keys: every distinct source value once; a timestamped date is parsed per row instead
    raw_keys = list(
        dict.fromkeys(cols[f] for f in ("date", "store", "category", *ATTRS) if f in cols and f != "grams")
    )
    per_row = has_time(fmt)
    if per_row:
        raw_keys.remove(cols["date"])
        raw_keys.insert(0, "_date")
    src = lf
    if per_row:  # keep the text for messages; group on the day
        src = lf.with_columns(
            pl.when(is_blank(cols["date"]))
            .then(pl.lit(""))
            .otherwise(parse_dates(cols["date"], fmt).cast(pl.String).fill_null("\x00bad"))
            .alias("_date")
        )
    # plain numbers first; any cell that does not convert that way -> the full conversion, once more
    raw = src.group_by(raw_keys).agg(_sums(m, cols, quick=True)).collect(engine="streaming")
    if _lost(raw):
        raw = src.group_by(raw_keys).agg(_sums(m, cols, quick=False)).collect(engine="streaming")
    rows = int(raw["_n"].sum())
    if rows == 0:
        return Part(file, 0, 0, None, [f"{file}: no data rows below the header"])
    if per_row:  # '' blank, '\x00bad' unparseable, else an ISO date
        raw = raw.with_columns(
            pl.when(pl.col("_date") == "\x00bad")
            .then(pl.lit("?"))
            .otherwise(pl.col("_date"))
            .alias(cols["date"])
        )
    keyed = raw.with_columns(key_exprs(m, cols, "%Y-%m-%d" if per_row else None))
    problems = _row_problems(lf, keyed, m, cols, file, mname, per_row)
    default_rows = rows
    if "category" in cols:
        default_rows = int(
            keyed.filter(~category_key(cols["category"]).is_in(list(m["_categories"])))["_n"].sum()
        )
    if problems:
        return Part(file, rows, default_rows, None, problems)
    attrs = [f for f in ATTRS if f in keyed.columns]
    sums = [pl.col("revenue").sum(), pl.col("_n").sum(), pl.col(POS).min()]
    if "grams" in cols:
        sums += [pl.col("grams").sum(), pl.col("_grams_n").sum()]
    groups = (
        keyed.with_columns((pl.lit(index << ROW_BITS, pl.Int64) + pl.col("_row")).alias(POS))
        .group_by("date", "store_id", "category", *attrs)
        .agg(sums)
    )
    return Part(file, rows, default_rows, groups, [])


def _row_problems(
    lf: pl.LazyFrame,
    keyed: pl.DataFrame,
    m: dict[str, Any],
    cols: dict[str, str],
    file: str,
    mname: str,
    per_row: bool,
) -> list[str]:
    """Problems of single rows, in the order the messages always came: date, store, numbers, category."""
    fmt = m["date_format"]
    dc, sc = cols["date"], cols["store"]
    problems: list[str] = []

    def count(mask: pl.Expr) -> int:
        return int(keyed.filter(mask)["_n"].sum())

    bad_date = (pl.col(dc) == "?") if per_row else (~is_blank(dc) & pl.col("date").is_null())
    n = count(bad_date)
    if n:
        ex = first_rows(lf, ~is_blank(dc) & parse_dates(dc, fmt).is_null(), dc)
        verb = "does" if n == 1 else "do"
        problems.append(problem(file, dc, f"{plural(n, 'value')} {verb}n't match format {fmt}", ex, "date"))
    n = count(is_blank(dc))
    if n:
        ex = first_rows(lf, is_blank(dc), dc)
        problems.append(problem(file, dc, f"{plural(n, 'row')} have no value", ex, mapped_to="date"))
    for f in ("opened_on", "closed_on"):
        if f in keyed.columns:
            sfmt = m.get("store_date_format") or fmt
            n = count(~is_blank(cols[f]) & pl.col(f).is_null())
            if n:
                ex = first_rows(lf, ~is_blank(cols[f]) & parse_dates(cols[f], sfmt).is_null(), cols[f])
                verb = "does" if n == 1 else "do"
                problems.append(
                    problem(file, cols[f], f"{plural(n, 'value')} {verb}n't match format {sfmt}", ex, f)
                )
    n = count(is_blank(sc))
    if n:
        ex = first_rows(lf, is_blank(sc), sc)
        problems.append(problem(file, sc, f"{plural(n, 'row')} have no store id", ex, mapped_to="store"))
    if _lost(keyed):  # which cells, exactly: a scan that only runs when some did not convert
        amt = amounts(m, cols)
        dec, thou = m.get("decimal") or ".", m.get("thousands") or ""
        masks = {f: ~is_blank(cols[f]) & amt[f].is_null() for f in amt}
        masks["blank"] = is_blank(cols["revenue"])
        counts = (
            lf.select(v.sum().alias(k) for k, v in masks.items())
            .collect(engine="streaming")
            .row(0, named=True)
        )
        for field in amt:
            if counts[field]:
                c = cols[field]
                ex = first_rows(lf, masks[field], c)
                hint = f"decimal '{dec}'" + (f", thousands '{thou}'" if thou else ", no thousands separator")
                problems.append(
                    problem(file, c, f"{plural(counts[field], 'value')} not a number ({hint})", ex, field)
                )
        if counts["blank"]:
            c = cols["revenue"]
            ex = first_rows(lf, masks["blank"], c)
            problems.append(
                problem(file, c, f"{plural(counts['blank'], 'row')} have no amount", ex, "revenue")
            )
    if "category" in cols:
        c = cols["category"]
        by = (
            keyed.filter(pl.col("category").is_null())
            .group_by(c)
            .agg(pl.col("_n").sum().alias("n"), pl.col("_row").min().alias("first"))
            .sort("first")
        )
        if by.height:
            ex = ", ".join(f"{v!r} ({plural(k, 'row')}, first row {r})" for v, k, r in by.head(5).iter_rows())
            problems.append(
                problem(
                    file,
                    c,
                    f"{plural(by.height, 'value')} not in the mapping's categories and no "
                    f"default_category is set: {ex}; add them under categories: in {mname} or set default_category",
                    mapped_to="category",
                )
            )
    return problems


def rows_of_keys(path: Path, m: dict[str, Any], keys: pl.DataFrame) -> pl.DataFrame:
    """Source rows (first few per key) of the given (date, store_id, category) keys: error messages only."""
    cols = mapped_columns(m)
    with utf8_source(path, m.get("encoding", "utf-8")) as src:
        lf = scan(path, src, m.get("delimiter") or ",")
        exprs = [e for e in key_exprs(m, cols) if e.meta.output_name() in ("date", "store_id", "category")]
        return (
            lf.select(ROW, *exprs)
            .join(keys.lazy(), on=["date", "store_id", "category"], how="semi")
            .group_by("date", "store_id", "category")
            .agg(pl.col(ROW).sort().head(MAX_EXAMPLES).alias("_rows"))
            .collect(engine="streaming")
        )
