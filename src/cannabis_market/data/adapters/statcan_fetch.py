"""Download Statistics Canada tables from the Web Data Service (WDS) and convert them to `series`.

Tables (`--table`):

- `20100056` — 20-10-0056-01 monthly retail trade sales, rows of NAICS "Cannabis retailers" (the industry
  name contains "Cannabis"), converted with `statcan.read_statcan` (metric `sales`, dollars).
- `retail-total` — the same table's NAICS "Retail trade [44-45]" rows (metric `retail_sales`), a control for
  the general retail cycle.
- `10100164` — 10-10-0164-01 sales of cannabis by type, fiscal years ("2021/2022", April to March). The
  contract knows only daily and monthly rows, so each fiscal year is dated at its start (April 1 of the
  first year) and the manifest says `period: fiscal_year`: one row per year, not a monthly value. Metrics
  `sales_<type>` (dollars) and `sales_per_capita_<type>` (dollars per person); types total, dried,
  inhaled_extracts, ingested_extracts, edibles, beverages, topicals_seeds_other.

How: GET `https://www150.statcan.gc.ca/t1/wds/rest/getFullTableDownloadCSV/<pid>/en` returns JSON whose
`object` is the full-table zip URL; the zip holds `<pid>.csv` (+ metadata). Only `urllib.request` is used.
Offline (or any failure to reach StatCan) -> InputError saying how to do it by hand; nothing is written.
`file=` takes a zip or CSV downloaded by hand instead of the network (same filtering and conversion).

Revisions: StatCan revises earlier months; current values of early months differ from first releases by
up to about 10%. The manifest records the vintage (the date of the CSV inside the zip, when known) and the
retrieval date; never mix vintages in one analysis. Suppressed cells (STATUS x, F, ..) are dropped and
counted, never turned into zeros.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cannabis_market.data.adapters import check_out, series_frame, write_dataset
from cannabis_market.data.csvio import read_csv_text
from cannabis_market.data.statcan import SCALARS, SUPPRESSED, read_statcan
from cannabis_market.errors import InputError

WDS_URL = "https://www150.statcan.gc.ca/t1/wds/rest/getFullTableDownloadCSV/{pid}/en"
TABLE_PAGE = "https://www150.statcan.gc.ca/t1/tbl1/en/tv.action?pid={pid}01"
REVISION_NOTE = (
    "StatCan revises earlier periods: current values of early months differ from first releases by up to "
    "about 10% (e.g. Ontario 2021-06 cannabis retail sales: 120.1M first released, 107.8M in the 2025 vintage)."
)


@dataclass(frozen=True)
class StatcanTable:
    key: str
    pid: str
    title: str
    naics: str | None  # substring the NAICS column must contain (20-10-0056 only)
    metric: str
    fiscal: bool = False


TABLES: dict[str, StatcanTable] = {
    "20100056": StatcanTable(
        "20100056",
        "20100056",
        "20-10-0056-01 Monthly retail trade sales, cannabis retailers",
        "Cannabis",
        "sales",
    ),
    "retail-total": StatcanTable(
        "retail-total",
        "20100056",
        "20-10-0056-01 Monthly retail trade sales, total retail trade",
        "Retail trade [44-45]",
        "retail_sales",
    ),
    "10100164": StatcanTable(
        "10100164",
        "10100164",
        "10-10-0164-01 Sales of cannabis by type (fiscal years)",
        None,
        "sales",
        fiscal=True,
    ),
}

TYPE_SLUGS = {
    "Total cannabis products": "total",
    "Dried cannabis": "dried",
    "Inhaled cannabis extracts": "inhaled_extracts",
    "Ingested cannabis extracts": "ingested_extracts",
    "Solid cannabis edibles": "edibles",
    "Cannabis beverages": "beverages",
    "Topicals, seeds, and other cannabis products": "topicals_seeds_other",
}
MEASURES = {"Value of sales": "sales", "Value of sales per capita": "sales_per_capita"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# ------------------------------------------------------------------------------------------ fiscal table


def read_statcan_fiscal(csv: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Table 10-10-0164-01 (fiscal years, by cannabis type) -> series dated April 1 of each fiscal year."""
    path = Path(csv)
    raw = read_csv_text(path)
    need = ("REF_DATE", "GEO", "SCALAR_FACTOR", "VALUE", "Type of cannabis")
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise InputError(
            f"{path.name}: column(s) {', '.join(missing)} missing; this does not look like table 10-10-0164-01 "
            f"(columns found: {', '.join(raw.columns[:12])})"
        )
    if raw.height == 0:
        raise InputError(f"{path.name}: no data rows")
    raw = raw.with_row_index("__row__", offset=1)
    ref = pl.col("REF_DATE").str.strip_chars()
    y1 = ref.str.extract(r"^(\d{4})/(\d{4})$", 1).cast(pl.Int32, strict=False)
    y2 = ref.str.extract(r"^(\d{4})/(\d{4})$", 2).cast(pl.Int32, strict=False)
    measure = pl.col("Value").str.strip_chars() if "Value" in raw.columns else pl.lit("Value of sales")
    df = raw.with_columns(
        pl.when(y2 == y1 + 1).then(pl.date(y1, 4, 1)).otherwise(None).alias("date"),
        pl.col("SCALAR_FACTOR").str.strip_chars().str.to_lowercase().alias("_scalar"),
        pl.col("VALUE").str.strip_chars().cast(pl.Float64, strict=False).alias("_value"),
        (pl.col("STATUS").fill_null("").str.strip_chars() if "STATUS" in raw.columns else pl.lit("")).alias(
            "_status"
        ),
        measure.alias("_measure"),
        pl.col("Type of cannabis").str.strip_chars().alias("_type"),
    )
    bad = df.filter(pl.col("date").is_null())
    if bad.height:
        ex = ", ".join(f"row {r}: {v!r}" for r, v in bad.select("__row__", "REF_DATE").head(3).iter_rows())
        raise InputError(
            f"{path.name}, column 'REF_DATE': {bad.height} value(s) are not fiscal years like 2021/2022, e.g. {ex}"
        )
    unknown = sorted(set(df["_scalar"].unique().to_list()) - set(SCALARS))
    if unknown:
        raise InputError(
            f"{path.name}, column 'SCALAR_FACTOR': unknown scalar factor(s) {unknown}; known: {', '.join(SCALARS)}"
        )
    suppressed = pl.col("_value").is_null() | pl.col("_status").is_in(list(SUPPRESSED))
    not_num = df.filter(
        pl.col("_value").is_null()
        & (pl.col("VALUE").fill_null("").str.strip_chars() != "")
        & ~pl.col("_status").is_in(list(SUPPRESSED))
    )
    if not_num.height:
        ex = ", ".join(f"row {r}: {v!r}" for r, v in not_num.select("__row__", "VALUE").head(3).iter_rows())
        raise InputError(f"{path.name}, column 'VALUE': {not_num.height} value(s) are not numbers, e.g. {ex}")
    n_supp = int(df.select(suppressed.sum()).item())
    supp_ex = [
        f"{r['REF_DATE']} {r['GEO']} {r['_type']}"
        for r in df.filter(suppressed).head(3).iter_rows(named=True)
    ]
    keep = df.filter(~suppressed)
    slug_type = {t: TYPE_SLUGS.get(t, _slug(t)) for t in keep["_type"].unique().to_list()}
    slug_measure = {m: MEASURES.get(m, _slug(m)) for m in keep["_measure"].unique().to_list()}
    factor = pl.col("_scalar").replace_strict(SCALARS, return_dtype=pl.Float64)
    series = keep.select(
        "date",
        pl.col("GEO").str.strip_chars().alias("geo"),
        (
            pl.col("_measure").replace_strict(slug_measure, return_dtype=pl.String)
            + "_"
            + pl.col("_type").replace_strict(slug_type, return_dtype=pl.String)
        ).alias("metric"),
        (pl.col("_value") * factor).alias("value"),
    )
    dup = series.filter(pl.struct("date", "geo", "metric").is_duplicated())
    if dup.height:
        raise InputError(
            f"{path.name}: {dup.height} rows share the same fiscal year, GEO, measure and type (another dimension "
            "in the file?); filter the download to one series per type first"
        )
    series = series_frame(series)
    notes = {
        "rows": series.height,
        "suppressed_dropped": n_supp,
        "suppressed_examples": supp_ex,
        "fiscal_years": sorted(df["REF_DATE"].str.strip_chars().unique().to_list()),
        "geos": int(series["geo"].n_unique()),
        "metrics": sorted(series["metric"].unique().to_list()),
        "first": str(series["date"].min()),
        "last": str(series["date"].max()),
    }
    return series, notes


# ------------------------------------------------------------------------------------------ download


def _offline(table: StatcanTable, reason: str) -> InputError:
    page = TABLE_PAGE.format(pid=table.pid)
    if table.fiscal:
        how = f"run `cannabis-market data fetch-statcan --table {table.key} --file FILE --out DIR`"
    else:
        how = (
            "run `cannabis-market data import-statcan FILE --out DIR` (FILE filtered to one industry), or "
            f"`cannabis-market data fetch-statcan --table {table.key} --file ZIP_OR_CSV --out DIR` for the "
            "full-table download"
        )
    return InputError(
        f"could not reach Statistics Canada ({reason}); download the table CSV by hand from {page} and {how}. "
        "Nothing was written."
    )


def _open(url: str, timeout: float) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": "cannabis-market (python urllib)"})
    return urllib.request.urlopen(req, timeout=timeout)


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def download_table(
    table: StatcanTable, dest: Path, timeout: float = 60.0, progress: Callable[[str], None] | None = None
) -> tuple[Path, dict[str, Any]]:
    """Ask the WDS for the full-table zip URL and download it to `dest`; (zip path, fetch notes)."""
    api = WDS_URL.format(pid=table.pid)
    try:
        if progress:
            progress(f"asking Statistics Canada for table {table.pid} ...")
        with _open(api, timeout) as r:
            body = r.read()
        try:
            answer = json.loads(body.decode("utf-8"))
        except ValueError:
            raise ValueError(f"unexpected answer from {api}: not JSON ({body[:60]!r})") from None
        if not isinstance(answer, dict) or answer.get("status") != "SUCCESS" or not answer.get("object"):
            raise ValueError(f"unexpected answer from {api}: {str(answer)[:200]}")
        zip_url = str(answer["object"])
        if progress:
            progress(f"downloading {zip_url} ...")
        target = dest / f"{table.pid}-eng.zip"
        with _open(zip_url, timeout) as r, target.open("wb") as f:
            shutil.copyfileobj(r, f)
            last_modified = r.headers.get("Last-Modified") if getattr(r, "headers", None) else None
    except (urllib.error.URLError, OSError, ValueError) as e:  # OSError covers timeouts and resets
        raise _offline(table, _reason(e)) from None
    notes = {
        "api": api,
        "url": zip_url,
        "retrieved_on": dt.date.today().isoformat(),
        "last_modified": last_modified,
    }
    return target, notes


def extract_csv(path: Path, pid: str, dest: Path) -> tuple[Path, str | None]:
    """The data CSV of a full-table zip (not the metadata file), or `path` itself if it is a CSV.

    Returns (csv path, vintage) where vintage is the date of the CSV inside the zip, if any.
    """
    if not zipfile.is_zipfile(path):
        return path, None
    try:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.infolist() if m.filename.lower().endswith(".csv")]
            data = [m for m in members if "metadata" not in m.filename.lower()]
            pick = next((m for m in data if Path(m.filename).stem == pid), data[0] if data else None)
            if pick is None:
                raise InputError(
                    f"{path.name}: the zip holds no data CSV (files: {', '.join(z.namelist()[:5])})"
                )
            out = dest / Path(pick.filename).name
            with z.open(pick) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            vintage = dt.date(*pick.date_time[:3]).isoformat()
    except zipfile.BadZipFile as e:
        raise InputError(f"{path.name}: damaged zip file ({e}); download it again") from None
    return out, vintage


def _filter_naics(csv: Path, table: StatcanTable, dest: Path) -> Path:
    """Keep the rows of one industry (and Sales = total retail sales) of a 20-10-0056 download."""
    head = pl.read_csv(csv, infer_schema=False, n_rows=0, encoding="utf8-lossy")
    cols = {c.lstrip("\ufeff").strip(): c for c in head.columns}
    naics = next((raw for clean, raw in cols.items() if "NAICS" in clean), None)
    if naics is None:
        raise InputError(
            f"{csv.name}: no NAICS column; this does not look like table 20-10-0056-01 "
            f"(columns found: {', '.join(list(cols)[:12])})"
        )
    lf = pl.scan_csv(csv, infer_schema=False, encoding="utf8-lossy").filter(
        pl.col(naics).str.contains(table.naics or "", literal=True)
    )
    if "Sales" in cols:
        lf = lf.filter(pl.col(cols["Sales"]).str.strip_chars() == "Total retail sales")
    df = lf.collect()
    if df.height == 0:
        raise InputError(f"{csv.name}: no rows whose NAICS contains {table.naics!r} (total retail sales)")
    out = dest / f"{table.pid}-{_slug(table.naics or 'rows')}.csv"
    df.write_csv(out)
    return out


def fetch_statcan(
    out: str | Path,
    table: str = "20100056",
    timeout: float = 60.0,
    file: str | Path | None = None,
    adjustment: str = "unadjusted",
    progress: Callable[[str], None] | None = None,
) -> tuple[Path, str]:
    """Download (or read `file`), filter and convert one StatCan table into a series dataset; atomic."""
    if table not in TABLES:
        raise InputError(f"--table {table!r}: must be one of {', '.join(TABLES)}")
    spec = TABLES[table]
    out = check_out(out, "statcan")
    if timeout <= 0:
        raise InputError(f"--timeout {timeout}: must be > 0 seconds")
    work = Path(tempfile.mkdtemp(prefix=".statcan-fetch."))
    try:
        if file is not None:
            src = Path(file)
            if not src.is_file():
                raise InputError(f"--file {src}: file not found")
            fetch = {"file": src.name}
        else:
            src, fetch = download_table(spec, work, timeout, progress)
        csv, vintage = extract_csv(src, spec.pid, work)
        if spec.fiscal:
            series, notes = read_statcan_fiscal(csv)
        else:
            series, notes = read_statcan(_filter_naics(csv, spec, work), adjustment, spec.metric)
            series = series_frame(series)
        fetch["vintage"] = vintage
        manifest = {
            "name": out.name,
            "description": (
                f"Statistics Canada table {spec.title}"
                + (f", vintage {vintage}" if vintage else "")
                + (
                    f", retrieved {fetch['retrieved_on']}"
                    if "retrieved_on" in fetch
                    else f", from {src.name}"
                )
                + ". Values in dollars (scalar factor applied"
                + ("; per-capita metrics in dollars per person). " if spec.fiscal else "). ")
                + (
                    "Fiscal years (April to March) are dated at their start, April 1: one row per fiscal year, "
                    "not a monthly value. "
                    if spec.fiscal
                    else ""
                )
                + f"Suppressed cells dropped: {notes['suppressed_dropped']}. {REVISION_NOTE}"
            ),
            "source": "statcan",
            "frequency": "monthly",
            "currency": "CAD",
            "region": "Canada",
            **({"period": "fiscal_year"} if spec.fiscal else {}),
            "import": {"table": spec.key, "pid": spec.pid, **fetch, **notes},
        }
        if not spec.fiscal:
            manifest["import"]["adjustment"] = adjustment
        path = write_dataset(out, "statcan", manifest, {"series": series})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = (
        f"table {spec.key}: {notes['rows']} rows, {notes['geos']} geographies, {notes['first']}..{notes['last']}, "
        f"{notes['suppressed_dropped']} suppressed cells dropped"
        + (f"; vintage {vintage}" if vintage else "")
    )
    return path, info
