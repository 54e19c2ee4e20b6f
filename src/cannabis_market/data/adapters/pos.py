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

Large exports stream (see `pos_scan`): memory follows the number of store x day x category rows, not
the file size. An export split into several files (a list, a folder of .csv files or a glob pattern)
imports in one go, summed as if it were one file; with `scheduler=` each file is aggregated on a Dask
worker (the workers must see the same paths) and the results combined here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market.data.adapters import (
    MAX_EXAMPLES,
    ROW,
    bad_rows,
    is_blank,
    plural,
    problem,
    raise_problems,
    write_dataset,
)
from cannabis_market.data.adapters.agco import region_for
from cannabis_market.data.adapters.pos_mapping import check_columns, load_mapping, parse_dates, read_small_csv
from cannabis_market.data.adapters.pos_scan import (
    ATTRS,
    POS,
    ROW_BITS,
    Part,
    aggregate_file,
    resolve_files,
    rows_of_keys,
)
from cannabis_market.errors import InputError

__all__ = ["import_pos", "load_mapping", "read_pos"]


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
            exprs.append(parse_dates(c, fmt).alias(f))
        else:
            exprs.append(pl.when(is_blank(c)).then(None).otherwise(pl.col(c).str.strip_chars()).alias(f))
    typed = df.with_columns(exprs)
    for f in ("opened_on", "closed_on"):
        if cols.get(f):
            problems += _date_problems(typed, cols[f], f, fmt, file, f, required=False)
    attrs, p2 = _attrs_from_groups(typed.rename({ROW: POS}), cols, file, int)
    return attrs, problems + p2


def _parts(files: list[Path], m: dict[str, Any], scheduler: str | None) -> list[Part]:
    """Aggregate each file: here one after another, or one Dask task per file on `scheduler`."""
    if not scheduler:
        return [aggregate_file(f, m, i) for i, f in enumerate(files)]
    from distributed import Client

    with Client(scheduler) as client:
        futures = client.map(aggregate_file, [str(f) for f in files], [m] * len(files), range(len(files)))
        return client.gather(futures)


def _ref(files: list[Path]) -> Any:
    """`_pos` -> what a message calls the row: the data row, or 'N of file.csv' for a split export."""
    if len(files) == 1:
        return lambda pos: int(pos) & ((1 << ROW_BITS) - 1)
    return lambda pos: f"{int(pos) & ((1 << ROW_BITS) - 1)} of {files[int(pos) >> ROW_BITS].name}"


def _attrs_from_groups(
    groups: pl.DataFrame, cols: dict[str, str], where: str, ref: Any
) -> tuple[pl.DataFrame, list[str]]:
    """Per-store attributes from rows or groups (`_pos` in file order): one value per store, the first."""
    present = [f for f in ATTRS if f in groups.columns]
    problems = []
    for f in present:
        seen = (
            groups.filter(pl.col(f).is_not_null())
            .group_by("store_id", f)
            .agg(pl.col(POS).min())
            .sort(POS)
            .group_by("store_id", maintain_order=True)
            .agg(pl.col(f).head(2).alias("v"), pl.col(POS).head(2).alias("p"), pl.len().alias("k"))
            .filter(pl.col("k") > 1)
            .sort("store_id")
        )
        if seen.height:
            ex = [
                f"store {r['store_id']!r} has {r['v'][0]!s} and {r['v'][1]!s} (rows {ref(r['p'][0])}, {ref(r['p'][1])})"
                for r in seen.head(MAX_EXAMPLES).iter_rows(named=True)
            ]
            problems.append(
                problem(
                    where,
                    cols[f],
                    f"{plural(seen.height, 'store')} with different values in different rows; "
                    f"one value per store expected, e.g. {'; '.join(ex)}",
                    mapped_to=f,
                )
            )
    attrs = (
        groups.sort(POS)
        .group_by("store_id", maintain_order=True)
        .agg(*[pl.col(f).drop_nulls().first() for f in present], pl.col(POS).min().alias("_first_row"))
    )
    return attrs, problems


def read_pos(
    csv: str | Path | list[str | Path], mapping: str | Path, scheduler: str | None = None
) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """Parse a POS export (one file, several, a folder or a glob) with its mapping into {stores, sales} + notes."""
    m = load_mapping(mapping)
    mname = m["_path"].name
    files, file = resolve_files(csv)
    ref = _ref(files)
    cols: dict[str, str] = {k: str(v).strip() for k, v in m["columns"].items() if v not in (None, "")}
    parts = _parts(files, m, scheduler)
    problems = [p for part in parts for p in part.problems]
    raise_problems(problems, file if len(parts) == 1 else f"{file}: {len(problems)} problems in")
    groups = pl.concat([p.groups for p in parts if p.groups is not None], how="vertical_relaxed")
    frequency = m.get("frequency", "daily")
    has_grams = "grams" in cols
    sums = [pl.col("revenue").sum(), pl.col("_n").sum(), pl.col(POS).min()]
    if has_grams:
        sums.append(
            pl.when(pl.col("_grams_n").sum() == 0).then(None).otherwise(pl.col("grams").sum()).alias("grams")
        )
    sales = groups.group_by("date", "store_id", "category").agg(sums).sort("date", "store_id", "category")
    for field, col in (("revenue", cols["revenue"]), ("grams", cols.get("grams"))):
        if col is None:
            continue
        neg = sales.filter(pl.col(field) < -1e-9)
        if neg.height:
            shown = neg.sort(POS).head(MAX_EXAMPLES)
            first = files[int(shown[POS][0]) >> ROW_BITS]
            rows = rows_of_keys(first, m, shown.select("date", "store_id", "category"))
            shown = shown.join(rows, on=["date", "store_id", "category"], how="left")
            ex = "; ".join(
                f"{r['date']} store {r['store_id']!r} {r['category']} = {r[field]:.2f} (rows {', '.join(map(str, r['_rows'] or []))})"
                for r in shown.iter_rows(named=True)
            )
            raise InputError(
                problem(
                    first.name,
                    col,
                    f"{plural(neg.height, 'day/store/category total')} negative after summing rows "
                    f"(refunds larger than sales?), e.g. {ex}",
                    mapped_to=field,
                )
            )
    # tiny negatives are float noise of netted refunds; round away binary-fraction noise of tax division
    sales = sales.with_columns(pl.col("revenue").clip(lower_bound=0.0).round(6))
    if has_grams:
        sales = sales.with_columns(pl.col("grams").clip(lower_bound=0.0).round(6))
    n_merged = int((sales["_n"] > 1).sum())
    first_sale = sales.group_by("store_id").agg(pl.col("date").min().alias("_first_sale"))

    # stores
    fields = ATTRS
    stores_cfg = m.get("stores")
    if stores_cfg:
        sfile = Path(stores_cfg["file"])
        if not sfile.is_absolute():
            sfile = m["_path"].parent / sfile
        sdf = read_small_csv(
            sfile,
            stores_cfg.get("delimiter") or m.get("delimiter") or ",",
            stores_cfg.get("encoding", m.get("encoding", "utf-8")),
            "stores file",
        )
        scols = {k: str(v).strip() for k, v in stores_cfg["columns"].items() if v not in (None, "")}
        raise_problems(check_columns(sdf.columns, scols, sfile.name, mname, "stores.columns"), mname)
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
        unknown = groups.join(attrs.select("store_id"), on="store_id", how="anti").sort(POS)
        if unknown.height:
            ex = [(ref(p), v) for p, v in unknown.select(POS, "store_id").head(MAX_EXAMPLES).iter_rows()]
            raise InputError(
                problem(
                    file,
                    cols["store"],
                    f"{plural(int(unknown['_n'].sum()), 'row')} name stores that are not in {sfile.name}",
                    ex,
                    mapped_to="store",
                )
            )
    else:
        attrs, p2 = _attrs_from_groups(groups, cols, file, ref)
        raise_problems(p2, file)
        where_attrs, attr_cols = file, cols
    attr_ref = ref if not stores_cfg else int
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
    bad_close = stores.filter(pl.col("closed_on") < pl.col("opened_on")).sort("_first_row")
    if bad_close.height:
        c = attr_cols.get("closed_on", "closed_on")
        ex = [
            (attr_ref(r), f"{s}: closed {cl} before opened {op}")
            for s, r, cl, op in bad_close.select("store_id", "_first_row", "closed_on", "opened_on")
            .head(MAX_EXAMPLES)
            .iter_rows()
        ]
        raise InputError(
            problem(
                where_attrs, c, f"{plural(bad_close.height, 'store')} close before they open", ex, "closed_on"
            )
        )
    # sales outside the stores' open dates -> point at source rows (the first row of each day/store/category)
    outside = (
        groups.select(POS, "_n", "date", "store_id")
        .join(stores.select("store_id", "opened_on", "closed_on"), on="store_id")
        .filter(
            (pl.col("date") < pl.col("opened_on"))
            | (pl.col("closed_on").is_not_null() & (pl.col("date") > pl.col("closed_on")))
        )
        .sort(POS)
    )
    if outside.height:
        ex = [
            (
                ref(r[POS]),
                f"store {r['store_id']} on {r['date']} (open {r['opened_on']}..{r['closed_on'] or ''})",
            )
            for r in outside.head(MAX_EXAMPLES).iter_rows(named=True)
        ]
        raise InputError(
            problem(
                file,
                cols["date"],
                f"{plural(int(outside['_n'].sum()), 'row')} dated outside the store's open dates "
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
    cat_counts = sales.group_by("category").agg(pl.col("_n").sum()).sort("category")
    tax = m.get("tax") or {}
    rate = float(tax.get("rate", 0.0)) if tax.get("included") else 0.0
    notes = {
        "file": file,
        "mapping": mname,
        "rows_read": sum(p.rows for p in parts),
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
        "default_category_rows": sum(p.default_rows for p in parts),
        "first": str(sales_tbl["date"].min()),
        "last": str(sales_tbl["date"].max()),
    }
    if len(files) > 1:
        notes["files"] = [f.name for f in files]
    return {"stores": stores_tbl, "sales": sales_tbl}, notes


def import_pos(
    csv: str | Path | list[str | Path], mapping: str | Path, out: str | Path, scheduler: str | None = None
) -> tuple[Path, str]:
    """Write a stores + sales dataset from a POS export (one or several files) and its mapping; atomic."""
    tables, notes = read_pos(csv, mapping, scheduler=scheduler)
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
