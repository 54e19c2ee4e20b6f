"""Load a dataset folder (manifest + CSV/Parquet tables) into typed polars LazyFrames, validated.

`load_dataset` reads every table, enforces the contract (see `validate.py`) and collects *all* problems
before raising one `DataValidationError`. Validation of large tables is cached by content fingerprint,
so reloading an unchanged dataset skips the data checks. Monthly and daily datasets share this code.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from cannabis_market.data import validate as V
from cannabis_market.data.contract import TABLE_FORMATS, TABLES
from cannabis_market.data.fingerprint import fingerprint
from cannabis_market.errors import DataValidationError, InputError, Problem

MANIFEST = "manifest.yml"


@dataclass
class Dataset:
    """A loaded dataset: the manifest plus one LazyFrame per table (None when a table is absent)."""

    path: Path
    manifest: dict[str, Any]
    stores: pl.LazyFrame | None = None
    sales: pl.LazyFrame | None = None
    population: pl.LazyFrame | None = None
    events: pl.LazyFrame | None = None
    inventory: pl.LazyFrame | None = None
    series: pl.LazyFrame | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def frequency(self) -> str:
        return str(self.manifest["frequency"])

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def truth(self) -> dict[str, Any]:
        """Ground truth of a generated dataset ({} for real data)."""
        return dict(self.manifest.get("truth") or {})

    @property
    def has_grams(self) -> bool:
        return self.sales is not None and "grams" in self.sales.collect_schema().names()

    def table(self, name: str) -> pl.LazyFrame:
        """The named table, or a clear error saying the dataset lacks it."""
        lf = getattr(self, name, None)
        if lf is None:
            raise InputError(
                f"dataset {self.path}: this analysis needs the '{name}' table, which it does not have"
            )
        return lf

    def subset(self, region: str | None = "all", start: Any = None, end: Any = None) -> Dataset:
        """The same dataset restricted to one region (stores and their rows) and a date window.

        `region` 'all' (or None) keeps every region; `start`/`end` are inclusive ISO dates or dates and
        apply to dated tables (sales, inventory, series, events overlapping the window). The stores table
        keeps every store of the region, whatever its dates, so store counts over time stay right.
        """
        lo, hi = _as_date(start), _as_date(end)
        if lo and hi and hi < lo:
            raise InputError(f"end ({hi}) is before start ({lo})")
        out = Dataset(
            path=self.path,
            manifest=self.manifest,
            files=self.files,
            stores=self.stores,
            sales=self.sales,
            population=self.population,
            events=self.events,
            inventory=self.inventory,
            series=self.series,
        )
        if region not in (None, "", "all"):
            if self.stores is None:
                raise InputError(f"dataset {self.path}: region {region!r} needs a stores table")
            regions = self.stores.select(pl.col("region").unique()).collect()["region"].to_list()
            if region not in regions:
                raise InputError(
                    f"region {region!r} is not in {self.path}; choose 'all' or one of {sorted(regions)}"
                )
            out.stores = self.stores.filter(pl.col("region") == region)
            ids = out.stores.select("store_id")
            if self.sales is not None:
                out.sales = self.sales.join(ids, on="store_id", how="semi")
            if self.inventory is not None:
                out.inventory = self.inventory.join(ids, on="store_id", how="semi")
        for name in ("sales", "inventory", "series"):
            lf = getattr(out, name)
            if lf is not None and lo:
                lf = lf.filter(pl.col("date") >= lo)
            if lf is not None and hi:
                lf = lf.filter(pl.col("date") <= hi)
            setattr(out, name, lf)
        return out

    def series_of(
        self, region: str | None = "all", start: Any = None, end: Any = None
    ) -> tuple[str, pl.DataFrame]:
        """(geography, its rows of the `series` table within start..end) for aggregate datasets.

        `region` names a geography; 'all' means the manifest's `region` (e.g. Ontario, Oregon).
        """
        series = self.table("series").collect()
        geos = sorted(set(series["geo"].to_list()))
        geo = region if region not in (None, "", "all") else str(self.manifest.get("region", ""))
        if geo not in geos:
            shown = "; ".join(geos[:15]) + ("; ..." if len(geos) > 15 else "")
            raise InputError(f"region {region!r}: the series in {self.path} cover {shown}; pick one of them")
        rows = series.filter(pl.col("geo") == geo)
        lo, hi = _as_date(start), _as_date(end)
        if lo:
            rows = rows.filter(pl.col("date") >= lo)
        if hi:
            rows = rows.filter(pl.col("date") <= hi)
        return geo, rows

    def fingerprint(self) -> str:
        """Hash of the dataset's files (names, sizes, modification times) for incremental reports."""
        return fingerprint(self.path)


def _as_date(x: Any) -> dt.date | None:
    if x in (None, ""):
        return None
    return x if isinstance(x, dt.date) else dt.date.fromisoformat(str(x)[:10])


def find_table(folder: Path, name: str) -> tuple[Path | None, list[Problem]]:
    """The file holding table `name` (CSV or Parquet); two of them is ambiguous."""
    found = [folder / f"{name}{ext}" for ext in TABLE_FORMATS if (folder / f"{name}{ext}").is_file()]
    if len(found) > 1:
        return None, [
            Problem(
                found[0].name,
                None,
                f"table '{name}' is stored twice ({', '.join(f.name for f in found)}); keep one",
            )
        ]
    return (found[0] if found else None), []


def read_manifest(folder: Path) -> tuple[dict[str, Any], list[Problem]]:
    """Parse manifest.yml; problems for a missing, unreadable or malformed manifest."""
    f = folder / MANIFEST
    if not f.is_file():
        return {}, [Problem(MANIFEST, None, f"required file is missing in {folder}")]
    try:
        manifest = yaml.safe_load(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return {}, [Problem(MANIFEST, None, "not valid UTF-8 text (re-save the file as UTF-8)")]
    except yaml.YAMLError as e:
        return {}, [Problem(MANIFEST, None, f"not valid YAML: {str(e).splitlines()[0]}")]
    problems = V.check_manifest(manifest, MANIFEST)
    return (manifest if isinstance(manifest, dict) else {}), problems


def read_raw(path: Path) -> tuple[pl.DataFrame | None, list[Problem]]:
    """Read one table file as-is (CSV cells as strings); problems for unreadable files."""
    try:
        if path.suffix == ".csv":
            raw_bytes = path.read_bytes()
            try:
                raw_bytes.decode("utf-8")
            except UnicodeDecodeError as e:
                return None, [
                    Problem(
                        path.name, None, f"not valid UTF-8 text at byte {e.start} (re-save the file as UTF-8)"
                    )
                ]
            if not raw_bytes.strip():
                return None, [Problem(path.name, None, "file is empty (no header row)")]
            df = pl.read_csv(path, infer_schema=False, encoding="utf8")
        else:
            df = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as e:
        kind = "CSV" if path.suffix == ".csv" else "Parquet"
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return None, [Problem(path.name, None, f"unreadable or truncated {kind} file ({msg})")]
    return df, []


def scan_typed(path: Path, name: str) -> pl.LazyFrame:
    """Lazily scan a table file already known to be valid, cast to the contract types."""
    spec = TABLES[name]
    if path.suffix == ".csv":
        lf = pl.scan_csv(path, infer_schema=False, encoding="utf8")
    else:
        lf = pl.scan_parquet(path)
    schema = lf.collect_schema()
    exprs, _ = V.cast_exprs(schema, spec)
    return lf.with_columns(exprs).select([c.name for c in spec.columns if c.name in schema])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cannabis_market" / "validated"


def load_dataset(path: str | Path, validate: bool = True) -> Dataset:
    """Load and validate the dataset at `path`; raise DataValidationError listing every problem.

    With `validate=False` only the manifest and types are checked (for trusted, already validated data).
    Data checks of an unchanged dataset are remembered (by fingerprint) and skipped on the next load.
    """
    folder = Path(path)
    fp = fingerprint(folder)
    if folder.is_dir() and validate:
        quick = _load_cached(folder, fp)
        if quick is not None:
            return quick
    if not folder.exists():
        raise InputError(
            f"dataset folder {folder} does not exist (generate one with: cannabis-market data generate --out {folder})"
        )
    if not folder.is_dir():
        raise InputError(f"{folder} is a file; a dataset is a folder holding manifest.yml and tables")
    manifest, problems = read_manifest(folder)
    tables: dict[str, pl.DataFrame] = {}
    files: dict[str, Path] = {}
    present: set[str] = set()
    for name, spec in TABLES.items():
        f, probs = find_table(folder, name)
        problems += probs
        if probs:
            present.add(name)
        if f is None:
            continue
        present.add(name)
        files[name] = f
        raw, probs = read_raw(f)
        problems += probs
        if raw is None:
            continue
        typed, probs = V.coerce_table(raw, spec, f.name)
        problems += probs
        tables[name] = typed
    if "sales" not in present and "series" not in present:
        problems.append(
            Problem(str(folder), None, "a dataset needs a sales table (with stores) or a series table")
        )
    if "sales" in present and "stores" not in present:
        problems.append(Problem("stores", None, "sales need a stores table (stores.csv or stores.parquet)"))
    if "inventory" in present and "stores" not in present:
        problems.append(
            Problem("stores", None, "inventory needs a stores table (stores.csv or stores.parquet)")
        )

    cache = _cache_dir() / fp
    if validate:
        problems += _check_data(tables, files, manifest)
    if problems:
        raise DataValidationError(problems, str(folder))
    if validate:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"path": str(folder.resolve())}))
        except OSError:
            pass  # a read-only home only costs re-validation next time
    lazy = {k: v.drop(V.ROW).lazy() for k, v in tables.items()}
    return Dataset(path=folder, manifest=manifest, files=files, **lazy)


def _load_cached(folder: Path, fp: str) -> Dataset | None:
    """Load lazily, without re-reading the data, when this exact content passed validation before."""
    if not (_cache_dir() / fp).exists():
        return None
    manifest, problems = read_manifest(folder)
    if problems:
        return None
    files: dict[str, Path] = {}
    for name in TABLES:
        f, probs = find_table(folder, name)
        if probs:
            return None
        if f is not None:
            files[name] = f
    try:
        lazy = {name: scan_typed(f, name) for name, f in files.items()}
    except (pl.exceptions.PolarsError, OSError):
        return None
    return Dataset(path=folder, manifest=manifest, files=files, **lazy)


def _check_data(
    tables: dict[str, pl.DataFrame], files: dict[str, Path], manifest: dict[str, Any]
) -> list[Problem]:
    problems: list[Problem] = []
    for name, df in tables.items():
        problems += V.check_table(df, TABLES[name], files[name].name)
    fname = {k: v.name for k, v in files.items()}
    if "stores" in tables:
        problems += V.check_dates(tables["stores"], fname["stores"], "opened_on", "closed_on")
    if "events" in tables:
        problems += V.check_dates(tables["events"], fname["events"], "start", "end")
    store_cols = {"store_id", "opened_on", "closed_on"}
    for name in ("sales", "inventory"):
        if (
            name in tables
            and "stores" in tables
            and tables[name].height
            and "store_id" in tables[name].columns
            and store_cols <= set(tables["stores"].columns)
        ):
            problems += V.check_store_refs(
                tables[name].drop_nulls(["store_id"]), tables["stores"], fname[name], name
            )
    freq = manifest.get("frequency")
    for name in ("sales", "inventory", "series"):
        if name in tables and tables[name].height and "date" in tables[name].columns:
            if freq == "monthly":
                problems += V.check_month_starts(tables[name].drop_nulls("date"), fname[name], "date")
            elif freq == "daily" and name in ("sales", "series"):
                problems += V.check_daily_not_monthly(tables[name], fname[name])
    return problems
