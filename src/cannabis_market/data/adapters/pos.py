"""Generic retailer point-of-sale (POS) CSV export -> contract `stores` + `sales`, driven by a YAML mapping.

The mapping file says which source columns hold what and how to read them (see
`data/examples/pos_mapping.example.yml` for a commented example):

```yaml
currency: CAD                 # required, ISO code
date_format: "%d/%m/%Y"       # required, strftime format of the date column (time directives allowed)
columns:                      # required: date, store, revenue, and category (unless default_category)
  date: Sale Date
  store: Store
  category: Product Type
  revenue: Net Sales
  grams: Grams                # optional; also municipality, region, opened_on, closed_on, chain
categories: {Flower: dried_flower, Pre-Rolls: pre_rolls}   # source value -> contract category
default_category: other       # optional: unmapped values get it; without it they are an error
tax: {included: true, rate: 0.13}   # optional: divide revenue by 1 + rate to strip sales tax
decimal: "."                  # optional number format (default "." and no thousands separator)
thousands: ","
delimiter: ","                # optional CSV reading options (default "," and utf-8)
encoding: utf-8
frequency: daily              # optional: daily (default) or monthly (dates moved to the month start)
stores:                       # optional separate stores CSV (path relative to the mapping file)
  file: stores.csv
  columns: {store: Store, municipality: City, region: Region, opened_on: Opened, closed_on: Closed, chain: Banner}
  date_format: "%Y-%m-%d"
name: my-shop                 # optional manifest fields: name, description, region
```

Rules: category values match case-insensitively after trimming. Rows sharing (date, store, category) are
**summed** (transaction-level exports become daily totals; refunds net out); a negative total is an error.
Without a stores file, each store's municipality/region/chain come from the mapped columns (they must not
vary within a store; region falls back to the package's Ontario municipality->region map), opened_on from
its column or else the store's first sale date, closed_on from its column or else empty. In monthly
datasets opened_on is moved to its month start so the store's first month is inside its open dates.
Every error names the SOURCE file, its column (and the field it is mapped to) and data rows (the header
is row 0), never the converted table.
"""

from __future__ import annotations

import difflib
import io
import re
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from cannabis_market.data.adapters import (
    MAX_EXAMPLES,
    ROW,
    bad_rows,
    is_blank,
    parse_number,
    plural,
    problem,
    raise_problems,
    write_dataset,
)
from cannabis_market.data.adapters.agco import region_for
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


def _read_csv(path: Path, delimiter: str, encoding: str, what: str) -> pl.DataFrame:
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


def _check_columns(df: pl.DataFrame, cols: dict[str, str], file: str, mapping: str, where: str) -> list[str]:
    return [
        f"{mapping}, {where}.{field}: column '{col}' is not in {file} (columns: {', '.join(c for c in df.columns if c != ROW)})"
        for field, col in cols.items()
        if col and str(col).strip() not in df.columns
    ]


def _parse_dates(df: pl.DataFrame, col: str, fmt: str) -> pl.Expr:
    s = pl.col(col).str.strip_chars()
    if _TIME.search(fmt):
        return s.str.to_datetime(fmt, strict=False).dt.date()
    return s.str.to_date(fmt, strict=False)


def _date_problems(
    df: pl.DataFrame, col: str, parsed: str, fmt: str, file: str, field: str, required: bool
) -> list[str]:
    out = []
    n, ex = bad_rows(df, ~is_blank(col) & pl.col(parsed).is_null(), col)
    if n:
        out.append(
            problem(
                file,
                col,
                f"{plural(n, 'value')} {'does' if n == 1 else 'do'}n't match format {fmt}",
                ex,
                mapped_to=field,
            )
        )
    if required:
        n, ex = bad_rows(df, is_blank(col), col)
        if n:
            out.append(problem(file, col, f"{plural(n, 'row')} have no value", ex, mapped_to=field))
    return out


def _store_attrs(
    df: pl.DataFrame, cols: dict[str, str], file: str, fmt: str, fields: tuple[str, ...]
) -> tuple[pl.DataFrame, list[str]]:
    """Per-store attributes from `df` (rows x store): consistent within a store, dates parsed."""
    problems: list[str] = []
    sid = cols["store"]
    exprs = [pl.col(sid).str.strip_chars().alias("store_id")]
    for f in fields:
        c = cols.get(f)
        if not c:
            continue
        if f in ("opened_on", "closed_on"):
            exprs.append(_parse_dates(df, c, fmt).alias(f))
        else:
            exprs.append(pl.when(is_blank(c)).then(None).otherwise(pl.col(c).str.strip_chars()).alias(f))
    typed = df.with_columns(exprs)
    for f in ("opened_on", "closed_on"):
        if cols.get(f):
            problems += _date_problems(typed, cols[f], f, fmt, file, f, required=False)
    present = [f for f in fields if cols.get(f)]
    for f in present:
        var = (
            typed.filter(pl.col("store_id").is_not_null())
            .group_by("store_id")
            .agg(
                pl.col(f).drop_nulls().n_unique().alias("k"),
                pl.col(f).drop_nulls().unique().head(2).alias("v"),
                pl.col(ROW).filter(pl.col(f).is_not_null()).head(2).alias("rows"),
            )
            .filter(pl.col("k") > 1)
            .sort("store_id")
        )
        if var.height:
            ex = [
                f"store {r['store_id']!r} has {r['v'][0]!s} and {r['v'][1]!s} (rows {r['rows'][0]}, {r['rows'][1]})"
                for r in var.head(MAX_EXAMPLES).iter_rows(named=True)
            ]
            problems.append(
                problem(
                    file,
                    cols[f],
                    f"{plural(var.height, 'store')} with different values in different rows; "
                    f"one value per store expected, e.g. {'; '.join(ex)}",
                    mapped_to=f,
                )
            )
    attrs = typed.group_by("store_id", maintain_order=True).agg(
        *[pl.col(f).drop_nulls().first() for f in present], pl.col(ROW).first().alias("_first_row")
    )
    return attrs, problems


def read_pos(csv: str | Path, mapping: str | Path) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """Parse a POS export with its mapping into contract tables {stores, sales} and import notes."""
    m = load_mapping(mapping)
    mname = m["_path"].name
    csv = Path(csv)
    file = csv.name
    df = _read_csv(csv, m.get("delimiter") or ",", m.get("encoding", "utf-8"), "CSV")
    cols: dict[str, str] = {k: str(v).strip() for k, v in m["columns"].items() if v not in (None, "")}
    raise_problems(_check_columns(df, cols, file, mname, "columns"), mname)

    fmt = m["date_format"]
    dec, thou = m.get("decimal") or ".", m.get("thousands") or ""
    problems: list[str] = []
    parsed = df.with_columns(
        _parse_dates(df, cols["date"], fmt).alias("date"),
        pl.col(cols["store"]).str.strip_chars().alias("store_id"),
        parse_number(cols["revenue"], thou, dec).alias("revenue"),
        (parse_number(cols["grams"], thou, dec) if "grams" in cols else pl.lit(None, pl.Float64)).alias(
            "grams"
        ),
    )
    problems += _date_problems(parsed, cols["date"], "date", fmt, file, "date", required=True)
    n, ex = bad_rows(parsed, is_blank(cols["store"]), cols["store"])
    if n:
        problems.append(
            problem(file, cols["store"], f"{plural(n, 'row')} have no store id", ex, mapped_to="store")
        )
    for field in ("revenue", "grams"):
        if field not in cols:
            continue
        c = cols[field]
        n, ex = bad_rows(parsed, ~is_blank(c) & pl.col(field).is_null(), c)
        if n:
            fmt_hint = f"decimal '{dec}'" + (f", thousands '{thou}'" if thou else ", no thousands separator")
            problems.append(
                problem(file, c, f"{plural(n, 'value')} not a number ({fmt_hint})", ex, mapped_to=field)
            )
    n, ex = bad_rows(parsed, is_blank(cols["revenue"]), cols["revenue"])
    if n:
        problems.append(
            problem(file, cols["revenue"], f"{plural(n, 'row')} have no amount", ex, mapped_to="revenue")
        )

    # categories
    cat_map: dict[str, str] = m["_categories"]
    default = m.get("default_category") or None
    if "category" in cols:
        key = pl.col(cols["category"]).fill_null("").str.strip_chars().str.to_lowercase()
        parsed = parsed.with_columns(
            key.replace_strict(cat_map, default=default, return_dtype=pl.String).alias("category")
        )
        unmapped = parsed.filter(pl.col("category").is_null())
        if unmapped.height:
            by = (
                unmapped.group_by(cols["category"])
                .agg(pl.len().alias("n"), pl.col(ROW).min().alias("first"))
                .sort("first")
            )
            ex = ", ".join(f"{v!r} ({plural(k, 'row')}, first row {r})" for v, k, r in by.head(5).iter_rows())
            problems.append(
                problem(
                    file,
                    cols["category"],
                    f"{plural(by.height, 'value')} not in the mapping's categories and no "
                    f"default_category is set: {ex}; add them under categories: in {mname} or set default_category",
                    mapped_to="category",
                )
            )
    else:
        parsed = parsed.with_columns(pl.lit(default).alias("category"))
    raise_problems(problems, file)

    tax = m.get("tax") or {}
    rate = float(tax.get("rate", 0.0)) if tax.get("included") else 0.0
    if rate:
        parsed = parsed.with_columns(pl.col("revenue") / (1.0 + rate))
    frequency = m.get("frequency", "daily")
    if frequency == "monthly":
        parsed = parsed.with_columns(pl.col("date").dt.month_start())
    has_grams = "grams" in cols
    sales = (
        parsed.group_by("date", "store_id", "category")
        .agg(
            pl.col("revenue").sum(),
            pl.when(pl.col("grams").is_null().all())
            .then(None)
            .otherwise(pl.col("grams").sum())
            .alias("grams"),
            pl.len().alias("_n"),
            pl.col(ROW).head(MAX_EXAMPLES).alias("_rows"),
        )
        .sort("date", "store_id", "category")
    )
    for field, col in (("revenue", cols["revenue"]), ("grams", cols.get("grams"))):
        if col is None:
            continue
        neg = sales.filter(pl.col(field) < -1e-9)
        if neg.height:
            ex = "; ".join(
                f"{r['date']} store {r['store_id']!r} {r['category']} = {r[field]:.2f} (rows {', '.join(map(str, r['_rows']))})"
                for r in neg.head(MAX_EXAMPLES).iter_rows(named=True)
            )
            raise InputError(
                problem(
                    file,
                    col,
                    f"{plural(neg.height, 'day/store/category total')} negative after summing rows "
                    f"(refunds larger than sales?), e.g. {ex}",
                    mapped_to=field,
                )
            )
    # tiny negatives are float noise of netted refunds; round away binary-fraction noise of tax division
    sales = sales.with_columns(
        pl.col("revenue").clip(lower_bound=0.0).round(6), pl.col("grams").clip(lower_bound=0.0).round(6)
    )
    n_merged = int((sales["_n"] > 1).sum())
    first_sale = parsed.group_by("store_id").agg(
        pl.col("date").min().alias("_first_sale"), pl.col("date").max().alias("_last_sale")
    )

    # stores
    fields = ("municipality", "region", "opened_on", "closed_on", "chain")
    stores_cfg = m.get("stores")
    if stores_cfg:
        sfile = Path(stores_cfg["file"])
        if not sfile.is_absolute():
            sfile = m["_path"].parent / sfile
        sdf = _read_csv(
            sfile,
            stores_cfg.get("delimiter") or m.get("delimiter") or ",",
            stores_cfg.get("encoding", m.get("encoding", "utf-8")),
            "stores file",
        )
        scols = {k: str(v).strip() for k, v in stores_cfg["columns"].items() if v not in (None, "")}
        raise_problems(_check_columns(sdf, scols, sfile.name, mname, "stores.columns"), mname)
        sfmt = stores_cfg.get("date_format") or m.get("store_date_format") or "%Y-%m-%d"
        n, ex = bad_rows(sdf, is_blank(scols["store"]), scols["store"])
        sprob = (
            [problem(sfile.name, scols["store"], f"{plural(n, 'row')} have no store id", ex, "store")]
            if n
            else []
        )
        dup = sdf.filter(pl.col(scols["store"]).str.strip_chars().is_duplicated())
        if dup.height:
            ex = [(int(r), v) for r, v in dup.select(ROW, scols["store"]).head(MAX_EXAMPLES).iter_rows()]
            sprob.append(
                problem(
                    sfile.name, scols["store"], f"{plural(dup.height, 'row')} repeat a store id", ex, "store"
                )
            )
        attrs, p2 = _store_attrs(sdf.filter(~is_blank(scols["store"])), scols, sfile.name, sfmt, fields)
        raise_problems(sprob + p2, sfile.name)
        where_attrs, attr_cols = sfile.name, scols
        unknown = parsed.join(attrs.select("store_id"), on="store_id", how="anti")
        if unknown.height:
            ex = [(int(r), v) for r, v in unknown.select(ROW, "store_id").head(MAX_EXAMPLES).iter_rows()]
            raise InputError(
                problem(
                    file,
                    cols["store"],
                    f"{plural(unknown.height, 'row')} name stores that are not in {sfile.name}",
                    ex,
                    mapped_to="store",
                )
            )
    else:
        attrs, p2 = _store_attrs(
            parsed.filter(pl.col("store_id").is_not_null()),
            cols,
            file,
            m.get("store_date_format") or fmt,
            fields,
        )
        raise_problems(p2, file)
        where_attrs, attr_cols = file, cols
    for f in fields:
        if f not in attrs.columns:
            attrs = attrs.with_columns(pl.lit(None, pl.Date if f.endswith("_on") else pl.String).alias(f))
    stores = attrs.join(first_sale, on="store_id", how="left").with_columns(
        pl.col("municipality").fill_null("unknown"),
        pl.coalesce("opened_on", "_first_sale").alias("opened_on"),
    )
    regions = {mu: region_for(mu) for mu in stores["municipality"].unique().to_list()}
    stores = stores.with_columns(
        pl.when(pl.col("region").is_not_null())
        .then(pl.col("region"))
        .when(pl.col("municipality") == "unknown")
        .then(pl.lit("unknown"))
        .otherwise(pl.col("municipality").replace_strict(regions, return_dtype=pl.String))
        .alias("region")
    )
    if frequency == "monthly":
        stores = stores.with_columns(pl.col("opened_on").dt.month_start())
    no_open = stores.filter(pl.col("opened_on").is_null())
    if no_open.height:
        raise InputError(
            f"{where_attrs}: {plural(no_open.height, 'store')} without an opening date and without sales to infer it "
            f"from, e.g. {', '.join(no_open['store_id'].head(3).to_list())}; fill the opened_on column"
        )
    bad_close = stores.filter(pl.col("closed_on") < pl.col("opened_on"))
    if bad_close.height:
        c = attr_cols.get("closed_on", "closed_on")
        ex = [
            (int(r), f"{s}: closed {cl} before opened {op}")
            for s, r, cl, op in bad_close.select("store_id", "_first_row", "closed_on", "opened_on")
            .head(MAX_EXAMPLES)
            .iter_rows()
        ]
        raise InputError(
            problem(
                where_attrs, c, f"{plural(bad_close.height, 'store')} close before they open", ex, "closed_on"
            )
        )
    # sales outside the stores' open dates -> point at source rows
    chk = parsed.select(ROW, "date", "store_id").join(
        stores.select("store_id", "opened_on", "closed_on"), on="store_id"
    )
    outside = chk.filter(
        (pl.col("date") < pl.col("opened_on"))
        | (pl.col("closed_on").is_not_null() & (pl.col("date") > pl.col("closed_on")))
    )
    if outside.height:
        ex = [
            (
                int(r["__row__"]),
                f"store {r['store_id']} on {r['date']} (open {r['opened_on']}..{r['closed_on'] or ''})",
            )
            for r in outside.head(MAX_EXAMPLES).iter_rows(named=True)
        ]
        raise InputError(
            problem(
                file,
                cols["date"],
                f"{plural(outside.height, 'row')} dated outside the store's open dates "
                f"(opened_on..closed_on from {where_attrs})",
                ex,
                mapped_to="date",
            )
        )
    stores_tbl = stores.select(
        "store_id",
        "municipality",
        "region",
        pl.col("opened_on").cast(pl.Date),
        pl.col("closed_on").cast(pl.Date),
        pl.col("chain").cast(pl.String),
    ).sort("store_id")
    sales_tbl = sales.select("date", "store_id", "category", "revenue", *(["grams"] if has_grams else []))
    cat_counts = parsed.group_by("category").agg(pl.len()).sort("category")
    notes = {
        "file": file,
        "mapping": mname,
        "rows_read": df.height,
        "sales_rows": sales_tbl.height,
        "keys_summed_from_several_rows": n_merged,
        "aggregation": "rows sharing (date, store, category) are summed",
        "stores": stores_tbl.height,
        "stores_from": where_attrs if stores_cfg else "the export's columns",
        "opened_on_rule": "from the opened_on column"
        if "opened_on" in attr_cols
        else "first sale date in the export (the store may have opened earlier)",
        "tax_stripped_rate": rate or None,
        "frequency": frequency,
        "rows_by_category": {str(k): int(v) for k, v in cat_counts.iter_rows()},
        "default_category_rows": int(
            parsed.filter(
                pl.col(cols["category"])
                .fill_null("")
                .str.strip_chars()
                .str.to_lowercase()
                .is_in(list(cat_map))
                .not_()
            ).height
        )
        if "category" in cols
        else df.height,
        "first": str(sales_tbl["date"].min()),
        "last": str(sales_tbl["date"].max()),
    }
    return {"stores": stores_tbl, "sales": sales_tbl}, notes


def import_pos(csv: str | Path, mapping: str | Path, out: str | Path) -> tuple[Path, str]:
    """Write a stores + sales dataset from a POS export and its mapping; validated and atomic."""
    tables, notes = read_pos(csv, mapping)
    m = load_mapping(mapping)
    desc = m.get("description") or (
        f"Retailer point-of-sale export {notes['file']} converted with {notes['mapping']}: revenue in "
        f"{m['currency']}"
        + (f", sales tax ({notes['tax_stripped_rate']:.2%}) stripped" if notes["tax_stripped_rate"] else "")
        + f"; rows sharing (date, store, category) summed; store opening dates {notes['opened_on_rule']}."
    )
    manifest: dict[str, Any] = {
        "name": m.get("name") or Path(out).name,
        "description": desc,
        "source": "pos",
        "frequency": notes["frequency"],
        "currency": m["currency"],
    }
    if m.get("region"):
        manifest["region"] = m["region"]
    manifest["import"] = notes
    path = write_dataset(out, "pos", manifest, tables)
    info = (
        f"{notes['rows_read']:,} source rows -> {notes['sales_rows']:,} sales rows "
        f"({notes['keys_summed_from_several_rows']:,} summed from several rows), {notes['stores']} stores, "
        f"{notes['first']}..{notes['last']}"
    )
    return path, info
