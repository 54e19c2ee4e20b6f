"""The POS mapping file: its keys, the structural checks of `load_mapping`, and the shared readers.

See `cannabis_market.data.adapters.pos` for what a mapping says and the import rules.
"""

from __future__ import annotations

import difflib
import io
import re
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from cannabis_market.data.adapters import ROW, raise_problems
from cannabis_market.data.contract import CATEGORIES, FREQUENCIES
from cannabis_market.errors import InputError

TOP_KEYS = (
    "name",
    "description",
    "currency",
    "region",
    "frequency",
    "date_format",
    "store_date_format",
    "delimiter",
    "encoding",
    "decimal",
    "thousands",
    "columns",
    "categories",
    "default_category",
    "tax",
    "stores",
)
REQUIRED_TOP = ("currency", "date_format", "columns")
COLUMN_KEYS = (
    "date",
    "store",
    "category",
    "revenue",
    "grams",
    "municipality",
    "region",
    "opened_on",
    "closed_on",
    "chain",
)
REQUIRED_COLUMNS = ("date", "store", "revenue")
STORE_FILE_KEYS = ("file", "columns", "date_format", "delimiter", "encoding")
STORE_COLUMN_KEYS = ("store", "municipality", "region", "opened_on", "closed_on", "chain")
TAX_KEYS = ("included", "rate")
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
_TIME = re.compile(r"%[HIMSpTRzfc]")


def _unknown(keys: list[str], allowed: tuple[str, ...], where: str) -> list[str]:
    out = []
    for k in keys:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
            out.append(f"{where}: unknown key '{k}'{hint}")
    return out


def read_small_csv(path: Path, delimiter: str, encoding: str, what: str) -> pl.DataFrame:
    """Read a small CSV (a stores file) eagerly as text, with a source-row column; errors name the file."""
    if not path.is_file():
        raise InputError(f"{what} {path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path.name}: not valid {encoding} text at byte {e.start}; set encoding: (one of {', '.join(ENCODINGS)}) "
            "in the mapping file"
        ) from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise InputError(f"{path.name}: file is empty (no header row)")
    try:
        df = pl.read_csv(io.BytesIO(text.encode("utf-8")), separator=delimiter, infer_schema=False)
    except pl.exceptions.PolarsError as e:
        raise InputError(
            f"{path.name}: not a readable CSV ({str(e).strip().splitlines()[0][:150]})"
        ) from None
    df = df.rename({c: c.strip() for c in df.columns})
    if df.height == 0:
        raise InputError(f"{path.name}: no data rows below the header")
    return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def load_mapping(mapping: str | Path) -> dict[str, Any]:
    """Read and check the mapping file's structure (keys, types, allowed values); not the CSV columns."""
    path = Path(mapping)
    if not path.is_file():
        raise InputError(f"--mapping {path}: file not found")
    try:
        m = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path.name}: not valid UTF-8 text (re-save the mapping as UTF-8)") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path.name}: not valid YAML ({str(e).splitlines()[0]})") from None
    name = path.name
    if not isinstance(m, dict):
        raise InputError(
            f"{name}: the mapping must be a YAML mapping with currency, date_format, columns, ..."
        )
    problems = _unknown(list(m), TOP_KEYS, name)
    problems += [f"{name}: required key '{k}' is missing" for k in REQUIRED_TOP if m.get(k) in (None, "", {})]
    cols = m.get("columns")
    if cols is not None and not isinstance(cols, dict):
        problems.append(f"{name}, columns: must map fields (date, store, ...) to CSV column names")
        cols = {}
    cols = cols or {}
    problems += _unknown(list(cols), COLUMN_KEYS, f"{name}, columns")
    need = list(REQUIRED_COLUMNS) + ([] if m.get("default_category") else ["category"])
    if m.get("columns"):
        problems += [
            f"{name}, columns: required field '{k}' is missing (which CSV column holds it?)"
            for k in need
            if not cols.get(k)
        ]
    for k, v in cols.items():
        if v is not None and not isinstance(v, str | int):
            problems.append(f"{name}, columns.{k}: must be a CSV column name, got {v!r}")
    cur = m.get("currency")
    if cur not in (None, "") and not (
        isinstance(cur, str) and len(cur) == 3 and cur.isalpha() and cur.isupper()
    ):
        problems.append(f"{name}, currency: must be a 3-letter ISO code such as CAD, got {cur!r}")
    fmt = m.get("date_format")
    if fmt not in (None, "") and (not isinstance(fmt, str) or "%" not in fmt):
        problems.append(f"{name}, date_format: must be a strftime format such as '%Y-%m-%d', got {fmt!r}")
    if m.get("frequency", "daily") not in FREQUENCIES:
        problems.append(
            f"{name}, frequency: must be one of {', '.join(FREQUENCIES)}, got {m.get('frequency')!r}"
        )
    for k in ("decimal", "thousands", "delimiter"):
        v = m.get(k)
        if v is not None and not (isinstance(v, str) and len(v) <= 1):
            problems.append(f"{name}, {k}: must be a single character (or empty), got {v!r}")
    if (m.get("decimal") or ".") == (m.get("thousands") or None):
        problems.append(f"{name}: decimal and thousands separators must differ")
    if m.get("encoding", "utf-8") not in ENCODINGS:
        problems.append(f"{name}, encoding: must be one of {', '.join(ENCODINGS)}, got {m.get('encoding')!r}")
    cats = m.get("categories") or {}
    if not isinstance(cats, dict):
        problems.append(f"{name}, categories: must map source values to contract categories")
        cats = {}
    for src, dst in cats.items():
        if dst not in CATEGORIES:
            problems.append(
                f"{name}, categories: '{src}' maps to {dst!r}, which is not a contract category "
                f"({', '.join(CATEGORIES)})"
            )
    lowered: dict[str, str] = {}
    for src, dst in cats.items():
        key = str(src).strip().lower()
        if key in lowered and lowered[key] != dst:
            problems.append(
                f"{name}, categories: '{src}' is listed twice (case-insensitively) with different targets"
            )
        lowered[key] = dst
    dflt = m.get("default_category")
    if dflt not in (None, "") and dflt not in CATEGORIES:
        problems.append(
            f"{name}, default_category: {dflt!r} is not a contract category ({', '.join(CATEGORIES)})"
        )
    tax = m.get("tax")
    if tax is not None:
        if not isinstance(tax, dict):
            problems.append(f"{name}, tax: must be a mapping like {{included: true, rate: 0.13}}")
        else:
            problems += _unknown(list(tax), TAX_KEYS, f"{name}, tax")
            if not isinstance(tax.get("included", False), bool):
                problems.append(f"{name}, tax.included: must be true or false")
            rate = tax.get("rate")
            if tax.get("included") and (
                not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate < 1
            ):
                problems.append(
                    f"{name}, tax.rate: with included: true give the rate as a fraction in [0, 1), e.g. 0.13"
                )
    st = m.get("stores")
    if st is not None:
        if not isinstance(st, dict):
            problems.append(f"{name}, stores: must be a mapping with file: and columns:")
        else:
            problems += _unknown(list(st), STORE_FILE_KEYS, f"{name}, stores")
            if not st.get("file"):
                problems.append(f"{name}, stores: required key 'file' is missing")
            sc = st.get("columns")
            if not isinstance(sc, dict) or not sc.get("store"):
                problems.append(f"{name}, stores.columns: required field 'store' is missing")
            else:
                problems += _unknown(list(sc), STORE_COLUMN_KEYS, f"{name}, stores.columns")
            for k in ("municipality", "region", "opened_on", "closed_on", "chain"):
                if cols.get(k):
                    problems.append(
                        f"{name}, columns.{k}: store attributes come from the stores file when stores: is given; "
                        "move it under stores.columns"
                    )
    raise_problems(problems, name)
    m = dict(m)
    m["_categories"] = lowered
    m["_path"] = path
    return m


def check_columns(names: list[str], cols: dict[str, str], file: str, mapping: str, where: str) -> list[str]:
    """Problems for mapped columns missing from a file's header `names`."""
    return [
        f"{mapping}, {where}.{field}: column '{col}' is not in {file} (columns: {', '.join(c for c in names if c != ROW)})"
        for field, col in cols.items()
        if col and str(col).strip() not in names
    ]


def parse_dates(col: str, fmt: str) -> pl.Expr:
    """Text column -> Date with a strftime format (time directives allowed: the time is dropped)."""
    s = pl.col(col).str.strip_chars()
    if has_time(fmt):
        return s.str.to_datetime(fmt, strict=False).dt.date()
    return s.str.to_date(fmt, strict=False)


def has_time(fmt: str) -> bool:
    """Whether a strftime format carries a time of day (then every row has its own timestamp)."""
    return bool(_TIME.search(fmt))
