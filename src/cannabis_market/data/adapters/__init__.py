"""Importers for real public files and retailer exports into the data contract.

One module per source layout:

- `washington` — Washington State LCB "MJ Sales Activity by License Number" workbook -> stores + monthly sales
- `oregon` — OLCC monthly market data workbook -> series (sales, retail and wholesale prices per gram)
- `colorado` — Colorado MED/CDOR workbooks and the county sales CSV -> series
- `agco` — AGCO cannabis retail store list (Ontario) -> stores snapshot + per-municipality series
- `pos` — any retailer point-of-sale CSV export, described by a YAML mapping file -> stores + sales
- `statcan_fetch` — download Statistics Canada tables from the Web Data Service and convert them

This package module holds what they share: reading an Excel sheet as text with true sheet row numbers,
problem messages that name the *source* file, column, rule and rows, and the atomic writer that refuses
to replace a folder that is not a previous import of the same kind and validates the result with
`load_dataset` before it appears under its final name.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from cannabis_market.errors import DataValidationError, InputError

ROW = "__row__"  # row number in the source file (sheet row for Excel, data row for CSV)
MAX_EXAMPLES = 3
HEADER_SEARCH_ROWS = 30


# ------------------------------------------------------------------------------------------ messages


def problem(
    where: str,
    column: str | None,
    rule: str,
    examples: Iterable[tuple[int, Any]] = (),
    mapped_to: str | None = None,
) -> str:
    """One problem line: `<file>, column '<col>' (mapped to x): <rule>, e.g. row 5: '2022-13-45'`."""
    head = where
    if column is not None:
        head += f", column '{column}'"
        if mapped_to:
            head += f" (mapped to {mapped_to})"
    ex = [f"row {r}: {v!r}" for r, v in list(examples)[:MAX_EXAMPLES]]
    return f"{head}: {rule}" + (f", e.g. {', '.join(ex)}" if ex else "")


def raise_problems(problems: Sequence[str], where: str) -> None:
    """Raise one InputError listing every problem (a single problem is the whole message)."""
    if not problems:
        return
    if len(problems) == 1:
        raise InputError(problems[0])
    lines = [f"{where}: {len(problems)} problems"] + [f"  - {p}" for p in problems]
    raise InputError("\n".join(lines))


def bad_rows(df: pl.DataFrame, mask: pl.Series | pl.Expr, column: str) -> tuple[int, list[tuple[int, Any]]]:
    """How many rows match `mask`, and (row, raw value) of the first few."""
    bad = df.filter(mask)
    return bad.height, [(int(r), v) for r, v in bad.select(ROW, column).head(MAX_EXAMPLES).iter_rows()]


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


# ------------------------------------------------------------------------------------------ parsing


def monthly_problems(
    df: pl.DataFrame,
    label: str,
    date_src: str,
    date_col: str,
    values: dict[str, str],
    example: str,
    what: str,
) -> list[str]:
    """Problems of a monthly sheet: unparseable months, non-numbers, negatives, repeated months.

    `date_src` is the source column, `date_col` its parsed month; `values` maps each parsed value column
    to its source column, so every message names the column as the user's file spells it.
    """
    problems: list[str] = []
    n, ex = bad_rows(df, df[date_col].is_null(), date_src)
    if n:
        problems.append(
            problem(label, date_src, f"{plural(n, 'value')} not a date (a month, e.g. {example})", ex)
        )
    for parsed, src in values.items():
        n, ex = bad_rows(df, df[src].is_not_null() & df[parsed].is_null(), src)
        if n:
            problems.append(problem(label, src, f"{plural(n, 'value')} not a number", ex))
        n, ex = bad_rows(df, df[parsed] < 0, src)
        if n:
            problems.append(problem(label, src, f"{plural(n, 'value')} negative ({what} are >= 0)", ex))
    dup = df.filter(df[date_col].is_not_null() & df[date_col].is_duplicated())
    if dup.height:
        ex = [(int(r), v) for r, v in dup.select(ROW, date_src).head(3).iter_rows()]
        problems.append(
            problem(label, date_src, f"{plural(dup.height, 'row')} repeat a month already listed", ex)
        )
    return problems


def parse_number(col: str, thousands: str = ",", decimal: str = ".") -> pl.Expr:
    """Text -> Float64: strips spaces and '$', drops the thousands separator, reads the decimal mark.

    '(12.50)' accounting negatives become -12.50. Unparseable text becomes null (callers report it).
    """
    s = pl.col(col).cast(pl.String).str.strip_chars().str.replace_all(r"[\s$€£]", "")
    if thousands:
        s = s.str.replace_all(thousands, "", literal=True)
    if decimal and decimal != ".":
        s = s.str.replace_all(decimal, ".", literal=True)
    s = pl.when(s.str.contains(r"^\(.*\)$")).then(pl.lit("-") + s.str.strip_chars("()")).otherwise(s)
    return pl.when(s == "").then(None).otherwise(s).cast(pl.Float64, strict=False)


def parse_month(col: str) -> pl.Expr:
    """'YYYY-MM', 'YYYY-MM-DD' (Excel dates arrive as ISO text) or 'YYYY/MM' -> month start date."""
    s = pl.col(col).cast(pl.String).str.strip_chars().str.replace_all("/", "-")
    return (
        pl.when(s.str.contains(r"^\d{4}-\d{1,2}$"))
        .then((s + "-01").str.to_date("%Y-%m-%d", strict=False))
        .otherwise(s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False))
        .dt.month_start()
    )


def is_blank(col: str) -> pl.Expr:
    return pl.col(col).is_null() | (pl.col(col).cast(pl.String).str.strip_chars() == "")


def _cell_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    text = str(v).strip()
    return text or None


def read_sheet(
    path: str | Path, sheet: str | None, required: Sequence[str], default_sheet: str | None = None
) -> tuple[pl.DataFrame, str, str]:
    """Read one worksheet as text: (frame with a `__row__` sheet-row column, sheet name, label for messages).

    The header row is the first row (within the first 30) holding every `required` column name; note rows
    above it are skipped, as are fully empty rows. Cached formula results are read (never the formula).
    """
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        msg = str(e).splitlines()[0][:150] if str(e) else type(e).__name__
        raise InputError(f"{path}: not a readable Excel .xlsx workbook ({msg})") from None
    try:
        name = sheet or default_sheet or wb.sheetnames[0]
        if name not in wb.sheetnames:
            hint = "pass --sheet NAME" if sheet is None else "check --sheet"
            raise InputError(
                f"{path.name}: sheet '{name}' not found (sheets: {', '.join(wb.sheetnames)}); {hint}"
            )
        ws = wb[name]
        label = f"{path.name}, sheet '{name}'"
        rows: list[tuple[int, list[str | None]]] = []
        header: list[str] | None = None
        best: tuple[int, list[str]] = (-1, [])
        for i, values in enumerate(ws.iter_rows(values_only=True), start=1):
            texts = [_cell_text(v) for v in values]
            if header is None:
                found = [t for t in texts if t]
                hits = sum(1 for c in required if c in found)
                if hits > best[0]:
                    best = (hits, found)
                if hits == len(required):
                    header = [t if t else f"column_{j + 1}" for j, t in enumerate(texts)]
                elif i >= HEADER_SEARCH_ROWS:
                    break
                continue
            if any(t is not None for t in texts):
                rows.append((i, texts))
    finally:
        wb.close()
    if header is None:
        missing = [c for c in required if c not in best[1]]
        raise InputError(
            f"{label}: required column(s) {', '.join(repr(c) for c in missing)} not found in the first "
            f"{HEADER_SEARCH_ROWS} rows (closest header row has: {', '.join(best[1][:12]) or 'nothing'})"
        )
    seen: dict[str, int] = {}
    names = []
    for h in header:
        seen[h] = seen.get(h, 0) + 1
        names.append(h if seen[h] == 1 else f"{h}_{seen[h]}")
    width = len(names)
    data: dict[str, list] = {n: [] for n in names}
    data[ROW] = []
    for i, texts in rows:
        texts = (texts + [None] * width)[:width]
        for n, t in zip(names, texts, strict=True):
            data[n].append(t)
        data[ROW].append(i)
    schema = {n: pl.String for n in names} | {ROW: pl.Int64}
    return pl.DataFrame(data, schema=schema), name, label


# ------------------------------------------------------------------------------------------ writing


def previous_kind(out: Path) -> str | None:
    """The importer kind recorded in an existing dataset's manifest (None when absent/unreadable)."""
    f = out / "manifest.yml"
    if not f.is_file():
        return None
    try:
        m = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return None
    if not isinstance(m, dict):
        return None
    imp = m.get("import")
    kind = imp.get("kind") if isinstance(imp, dict) else None
    if kind is None and m.get("source") == "statcan":
        return "statcan"
    return str(kind) if kind else None


def check_out(out: str | Path, kind: str) -> Path:
    """Refuse a file, or a non-empty folder that is not a previous import of the same kind."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file; give a folder for the dataset (nothing was written)")
    if out.is_dir() and any(out.iterdir()) and previous_kind(out) != kind:
        raise InputError(
            f"--out {out}: folder is not empty and is not a previous {kind} import; "
            "choose a new or empty folder (nothing was written)"
        )
    return out


def write_dataset(
    out: str | Path,
    kind: str,
    manifest: dict[str, Any],
    tables: dict[str, pl.DataFrame],
    extra: dict[str, pl.DataFrame] | None = None,
) -> Path:
    """Write manifest + tables (CSV) to a temporary folder, validate it with `load_dataset`, then rename.

    `extra` files (e.g. a status list) are written beside the contract tables; the loader ignores them.
    A previous import of the same kind at `out` is replaced; anything else is refused (see `check_out`).
    """
    from cannabis_market.data.loader import load_dataset

    out = check_out(out, kind)
    manifest = {"name": manifest.get("name") or out.name, **manifest}
    manifest.setdefault("import", {})
    manifest["import"] = {"kind": kind, **manifest["import"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a dataset folder gets the user's usual permissions
    old: Path | None = None
    try:
        (tmp / "manifest.yml").write_text(
            yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        for name, df in {**tables, **(extra or {})}.items():
            df.write_csv(tmp / f"{name}.csv")
        try:
            load_dataset(tmp)
        except DataValidationError as e:
            raise InputError(
                f"the converted {kind} data break the data contract (a bug in the importer or an input it "
                f"does not handle; nothing was written):\n{e}"
            ) from None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            old.rmdir()
            out.rename(old)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return out


def series_frame(rows: pl.DataFrame) -> pl.DataFrame:
    """Select and type the contract's series columns, sorted."""
    return rows.select(
        pl.col("date").cast(pl.Date),
        pl.col("geo").cast(pl.String),
        pl.col("metric").cast(pl.String),
        pl.col("value").cast(pl.Float64),
    ).sort("geo", "metric", "date")


def melt_metrics(
    df: pl.DataFrame, geo: str, metrics: dict[str, pl.Expr]
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Wide monthly frame (with `date`) -> long series rows for `metrics`; nulls dropped and counted."""
    wide = df.select("date", *[e.alias(m) for m, e in metrics.items()])
    missing = {m: int(wide[m].null_count()) for m in metrics}
    long = (
        wide.unpivot(index="date", on=list(metrics), variable_name="metric", value_name="value")
        .drop_nulls("value")
        .with_columns(pl.lit(geo).alias("geo"))
    )
    return series_frame(long), {m: n for m, n in missing.items() if n}
