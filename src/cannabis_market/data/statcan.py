"""Read a Statistics Canada table download (CSV) into the contract's `series` form.

Handles the table layout (REF_DATE, GEO, DGUID, ..., SCALAR_FACTOR, VALUE, STATUS, SYMBOL), the scalar
factor (values are stored in dollars after import), suppressed cells (STATUS x/F/.. or empty VALUE:
dropped and counted, never turned into zeros), unadjusted vs seasonally adjusted rows, and the
Toronto = Ontario quirk of 2018-10..2019-03 (only OCS online sales existed and StatCan booked them to the
Toronto CMA; those Toronto rows are dropped because they are not Toronto store sales).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import polars as pl
import yaml

from cannabis_market.data.csvio import read_csv_text
from cannabis_market.errors import InputError

REQUIRED = ("REF_DATE", "GEO", "SCALAR_FACTOR", "VALUE")
SCALARS = {
    "units": 1.0,
    "tens": 10.0,
    "hundreds": 100.0,
    "thousands": 1e3,
    "tens of thousands": 1e4,
    "hundreds of thousands": 1e5,
    "millions": 1e6,
    "billions": 1e9,
}
SUPPRESSED = {"x", "F", "..", "...", "E.."}
ADJ = {"unadjusted": "Unadjusted", "seasonally_adjusted": "Seasonally adjusted"}
TORONTO_QUIRK = (dt.date(2018, 10, 1), dt.date(2019, 3, 1))


def read_statcan(
    csv: str | Path, adjustment: str = "unadjusted", metric: str = "sales"
) -> tuple[pl.DataFrame, dict]:
    """Parse a StatCan CSV into (series frame [date, geo, metric, value], import notes).

    Seasonally adjusted rows get the metric name `<metric>_sa` so both can live in one series table.
    """
    path = Path(csv)
    raw = read_csv_text(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path}: column(s) {', '.join(missing)} missing; this does not look like a Statistics Canada table "
            f"download (columns found: {', '.join(raw.columns[:12])})"
        )
    if raw.height == 0:
        raise InputError(f"{path}: no data rows")
    if adjustment not in (*ADJ, "both"):
        raise InputError(
            f"adjustment must be one of unadjusted, seasonally_adjusted, both (got {adjustment!r})"
        )
    if "Adjustments" in raw.columns:
        keep = list(ADJ.values()) if adjustment == "both" else [ADJ[adjustment]]
        raw = raw.filter(pl.col("Adjustments").is_in(keep))
        suffix = (
            pl.when(pl.col("Adjustments") == ADJ["seasonally_adjusted"])
            .then(pl.lit("_sa"))
            .otherwise(pl.lit(""))
        )
    else:
        suffix = pl.lit("")
    if raw.height == 0:
        raise InputError(f"{path}: no rows with Adjustments = {adjustment.replace('_', ' ')}")

    dates = pl.col("REF_DATE").str.strip_chars()
    parsed = (
        pl.when(dates.str.contains(r"^\d{4}-\d{2}$"))
        .then((dates + "-01").str.to_date("%Y-%m-%d", strict=False))
        .otherwise(dates.str.to_date("%Y-%m-%d", strict=False))
    )
    df = raw.with_columns(
        parsed.alias("date"),
        pl.col("SCALAR_FACTOR").str.strip_chars().str.to_lowercase().alias("_scalar"),
        pl.col("VALUE").str.strip_chars().cast(pl.Float64, strict=False).alias("_value"),
        (pl.col("STATUS").fill_null("").str.strip_chars() if "STATUS" in raw.columns else pl.lit("")).alias(
            "_status"
        ),
        (pl.lit(metric) + suffix).alias("metric"),
    )
    bad_dates = df.filter(pl.col("date").is_null())
    if bad_dates.height:
        ex = bad_dates["REF_DATE"].unique(maintain_order=True).head(3).to_list()
        raise InputError(
            f"{path}, column 'REF_DATE': {bad_dates.height} value(s) are not monthly dates (YYYY-MM), e.g. {ex}; "
            "fiscal-year or annual tables are not a monthly series"
        )
    unknown = sorted(set(df["_scalar"].unique().to_list()) - set(SCALARS))
    if unknown:
        raise InputError(
            f"{path}, column 'SCALAR_FACTOR': unknown scalar factor(s) {unknown}; known: {', '.join(SCALARS)}"
        )
    bad_value = df.filter(
        pl.col("_value").is_null()
        & pl.col("VALUE").is_not_null()
        & (pl.col("VALUE").str.strip_chars() != "")
        & ~pl.col("_status").is_in(list(SUPPRESSED))
    )
    if bad_value.height:
        ex = bad_value["VALUE"].head(3).to_list()
        raise InputError(f"{path}, column 'VALUE': {bad_value.height} value(s) are not numbers, e.g. {ex}")
    suppressed = df.filter(pl.col("_value").is_null() | pl.col("_status").is_in(list(SUPPRESSED)))
    df = df.filter(pl.col("_value").is_not_null() & ~pl.col("_status").is_in(list(SUPPRESSED)))

    factor = pl.col("_scalar").replace_strict(SCALARS, return_dtype=pl.Float64)
    series = df.select(
        "date", pl.col("GEO").alias("geo"), "metric", (pl.col("_value") * factor).alias("value")
    )

    # Toronto = Ontario quirk: drop Toronto CMA rows in 2018-10..2019-03 that merely repeat Ontario.
    on = series.filter(pl.col("geo") == "Ontario").select("date", "metric", pl.col("value").alias("_on"))
    tor = pl.col("geo").str.starts_with("Toronto")
    in_quirk = pl.col("date").is_between(*TORONTO_QUIRK)
    flagged = series.join(on, on=["date", "metric"], how="left").with_columns(
        (tor & in_quirk & ((pl.col("value") - pl.col("_on")).abs() <= 0.01 * pl.col("_on").abs())).alias("_q")
    )
    quirk_rows = int(flagged["_q"].fill_null(False).sum())
    series = flagged.filter(~pl.col("_q").fill_null(False)).drop("_on", "_q")

    dup = series.filter(pl.struct("date", "geo", "metric").is_duplicated())
    if dup.height:
        cols = [c for c in raw.columns if "NAICS" in c or c in ("Sales", "Type of cannabis", "Value")]
        raise InputError(
            f"{path}: {dup.height} rows share the same date, GEO and adjustment (several series in one file, "
            f"e.g. different {', '.join(cols) or 'categories'}); filter the download to one series first"
        )
    notes = {
        "rows": series.height,
        "suppressed_dropped": suppressed.height,
        "suppressed_examples": [
            f"{r['REF_DATE']} {r['GEO']}" for r in suppressed.head(3).iter_rows(named=True)
        ],
        "toronto_quirk_rows_dropped": quirk_rows,
        "first": str(series["date"].min()),
        "last": str(series["date"].max()),
        "geos": series["geo"].n_unique(),
    }
    return series.sort("geo", "metric", "date"), notes


def import_statcan(
    csv: str | Path, out: str | Path, adjustment: str = "unadjusted", metric: str = "sales"
) -> tuple[Path, str]:
    """Write a series-only dataset (manifest.yml + series.csv) from a StatCan CSV; atomic.

    Refuses to overwrite a non-empty folder that is not a previous StatCan import.
    """
    series, notes = read_statcan(csv, adjustment, metric)
    out = Path(out)
    if out.exists():
        prev = out / "manifest.yml"
        is_prev = prev.is_file() and (yaml.safe_load(prev.read_text()) or {}).get("source") == "statcan"
        if not out.is_dir() or (any(out.iterdir()) and not is_prev):
            raise InputError(
                f"--out {out}: exists and is not a previous StatCan import; choose an empty folder"
            )
    manifest = {
        "name": out.name,
        "description": f"Statistics Canada table imported from {Path(csv).name}: monthly retail sales in dollars "
        f"(scalar factor applied). Suppressed cells dropped: {notes['suppressed_dropped']}. Toronto rows equal to "
        f"Ontario in 2018-10..2019-03 dropped: {notes['toronto_quirk_rows_dropped']}.",
        "source": "statcan",
        "frequency": "monthly",
        "currency": "CAD",
        "region": "Canada",
        "import": {"file": Path(csv).name, "adjustment": adjustment, **notes},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "manifest.yml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
        series.write_csv(tmp / "series.csv")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    info = (
        f"{notes['rows']} rows, {notes['geos']} geographies, {notes['first']}..{notes['last']}; "
        f"{notes['suppressed_dropped']} suppressed cells dropped; "
        f"{notes['toronto_quirk_rows_dropped']} Toronto=Ontario rows dropped"
    )
    return out, info
