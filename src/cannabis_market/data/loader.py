"""Load a dataset folder (manifest + CSV/Parquet tables) into typed polars LazyFrames, validated.

`load_dataset` checks every file (confined to the folder, readable, stored types), streams every table
through the contract's rules (see `validate.py`) and collects *all* problems before raising one
`DataValidationError`. Validation is remembered by content fingerprint, so reloading an unchanged
dataset skips the data checks, and the typed tables are then mapped from the Arrow cache
(`typed_cache.py`). Monthly and daily datasets share this code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from cannabis_market.data import typed_cache as TC
from cannabis_market.data import validate as V
from cannabis_market.data.contract import TABLE_FORMATS, TABLES, TableSpec
from cannabis_market.data.csvio import check_text_file, clean_header, cut, short
from cannabis_market.data.fingerprint import fingerprint
from cannabis_market.errors import DataValidationError, InputError, Problem

MANIFEST = "manifest.yml"
MAX_MANIFEST_BYTES = 1 << 20
MAX_YAML_DEPTH = 50
MAX_YAML_VALUES = 100_000
TABLE_FIELDS = ("stores", "sales", "population", "events", "inventory", "series")
VALIDATOR_VERSION = "2"
"""Part of the validation-cache key: bump it when the rules change, so old records no longer apply."""


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
    content_fingerprint: str | None = None
    row_counts: dict[str, int] = field(default_factory=dict)
    selection: tuple[tuple[str, dt.date | None, dt.date | None], ...] = ()
    """The `subset` calls (region, start, end) that made this dataset from the one `load_dataset` gave."""
    cache_key: str | None = None
    """The typed-cache entry (`data.typed_cache`) this dataset's tables are read from; None for a subset
    or an uncached load. Frames derived from the whole dataset may be kept beside it (`data.derived`)."""
    _tables: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    """The table objects `load_dataset` / `subset` set, to tell when one was replaced since."""

    def _seal(self) -> Dataset:
        self._tables = tuple(getattr(self, n) for n in TABLE_FIELDS)
        return self

    def content_key(self) -> tuple[str, tuple[tuple[str, dt.date | None, dt.date | None], ...]] | None:
        """(content fingerprint, selection): what this dataset's rows are, as a key for in-process memos
        of frames worked out from them (`data.memo`). None when that cannot be vouched for: the dataset
        was not made by `load_dataset` / `subset`, a table was replaced since, or its files changed on
        disk since it was loaded."""
        if self.content_fingerprint is None or self._tables is None:
            return None
        if any(getattr(self, n) is not t for n, t in zip(TABLE_FIELDS, self._tables, strict=True)):
            return None
        if fingerprint(self.path) != self.content_fingerprint:
            return None
        return self.content_fingerprint, self.selection

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
            content_fingerprint=self.content_fingerprint,
        )  # row_counts stay empty: a subset has its own
        sealed = self.content_key() is not None
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
        if sealed:
            out.selection = (*self.selection, ("all" if region in (None, "", "all") else str(region), lo, hi))
            out._seal()
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
        """Content hash of the dataset's files (see `data.fingerprint`), as computed when it was loaded."""
        return self.content_fingerprint or fingerprint(self.path)


def _as_date(x: Any) -> dt.date | None:
    if x in (None, ""):
        return None
    return x if isinstance(x, dt.date) else dt.date.fromisoformat(str(x)[:10])


def find_table(folder: Path, name: str) -> tuple[Path | None, list[Problem]]:
    """The file holding table `name` (CSV or Parquet); two of them is ambiguous. Links count as present
    (so a link leaving the folder is refused rather than silently ignored)."""
    found = [folder / f"{name}{ext}" for ext in TABLE_FORMATS if os.path.lexists(folder / f"{name}{ext}")]
    if len(found) > 1:
        return None, [
            Problem(
                found[0].name,
                None,
                f"table '{name}' is stored twice ({', '.join(f.name for f in found)}); keep one",
            )
        ]
    return (found[0] if found else None), []


def confined(folder: Path, f: Path) -> list[Problem]:
    """A file of the dataset must be a regular file inside the folder; a symbolic link leaving it is
    refused without reading it (nothing from outside the dataset ever reaches a message)."""
    try:
        target = f.resolve(strict=True)
        inside = target.is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return [Problem(f.name, None, "is a broken or looping symbolic link")]
    if not inside:
        return [
            Problem(
                f.name,
                None,
                "is a symbolic link to a file outside the dataset folder (not followed); copy the file "
                "into the folder",
            )
        ]
    if not target.is_file():
        return [Problem(f.name, None, "is not a regular file (a folder, device or pipe)")]
    return []


class _ManifestLoader(yaml.SafeLoader):
    """Safe YAML with bounds: aliases may not expand the document beyond MAX_YAML_VALUES values (no
    billion-laughs bomb), no duplicate keys, no nesting deeper than MAX_YAML_DEPTH.

    `yaml.safe_dump` itself writes anchors and aliases for repeated values, so aliases are allowed;
    what is counted is the size of the document with every alias expanded."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.depth = 0
        self.expanded = 0
        self.sizes: dict[int, int] = {}

    def _fail(self, why: str) -> None:
        raise yaml.composer.ComposerError(None, None, why, self.peek_event().start_mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            target = self.anchors.get(self.peek_event().anchor)
            self.expanded += self.sizes.get(id(target), 1)
            if self.expanded > MAX_YAML_VALUES:
                self._fail(f"aliases expand the manifest beyond {MAX_YAML_VALUES:,} values (a YAML bomb?)")
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                self._fail(f"nested more than {MAX_YAML_DEPTH} levels deep")
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        self.sizes[id(node)] = 1 + sum(self.sizes.get(id(c), 1) for c in children)
        self.expanded += 1
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[object] = set()
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {short(k.value, 40)}", k.start_mark
                    )
                seen.add(k.value)
        return super().construct_mapping(node, deep=deep)


def read_manifest(folder: Path) -> tuple[dict[str, Any], list[Problem]]:
    """Parse manifest.yml safely (size cap, no aliases); problems for a missing or malformed manifest."""
    f = folder / MANIFEST
    if not os.path.lexists(f):
        return {}, [Problem(MANIFEST, None, f"required file is missing in {cut(str(folder), 200)}")]
    problems = confined(folder, f)
    if problems:
        return {}, problems
    with f.open("rb") as fh:
        data = fh.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        return {}, [
            Problem(MANIFEST, None, f"larger than {MAX_MANIFEST_BYTES:,} bytes; a manifest is a few fields")
        ]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return {}, [
            Problem(MANIFEST, None, f"not valid UTF-8 text at byte {e.start} (re-save the file as UTF-8)")
        ]
    try:
        manifest = yaml.load(text, Loader=_ManifestLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        return {}, [Problem(MANIFEST, None, f"not valid YAML: {cut(str(what), 120)}{at}")]
    except RecursionError:
        return {}, [Problem(MANIFEST, None, f"not valid YAML: nested more than {MAX_YAML_DEPTH} levels deep")]
    problems = V.check_manifest(manifest, MANIFEST)
    return (manifest if isinstance(manifest, dict) else {}), problems


def _scan(path: Path) -> pl.LazyFrame:
    """Lazy scan of a table file (CSV cells as text)."""
    if path.suffix == ".csv":
        return pl.scan_csv(
            path, infer_schema=False, encoding="utf8", glob=False, with_column_names=clean_header
        )
    return pl.scan_parquet(path, glob=False)


def scan_typed(path: Path, name: str) -> pl.LazyFrame:
    """Lazily scan a table file already known to be valid, cast to the contract types."""
    spec = TABLES[name]
    lf = _scan(path)
    schema = lf.collect_schema()
    return lf.select(V.cast_exprs(schema, spec))


_UNREADABLE = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)


def _unreadable(path: Path, e: BaseException) -> Problem:
    kind = "CSV" if path.suffix == ".csv" else "Parquet"
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return Problem(path.name, None, f"unreadable or truncated {kind} file ({cut(msg, 150)})")


def check_table_file(
    folder: Path, f: Path, spec: TableSpec, frequency: object = None, scan_rows: bool = True
) -> tuple[pl.LazyFrame | None, list[Problem], int]:
    """Every single-table rule of one file (and the declared `frequency`), streaming. Returns the typed
    rows that parse (with their row numbers, for cross-table rules; None when the file cannot be read
    or `scan_rows` is False: then only the file, its columns and their stored types are checked), the
    problems and the number of data rows."""
    problems = confined(folder, f)
    if problems:
        return None, problems, 0
    if f.suffix == ".csv":
        text = check_text_file(f)
        if text.problem:
            return None, [Problem(f.name, None, text.problem)], 0
    try:
        raw = _scan(f)
        schema = raw.collect_schema()
        cols = schema.names()
        missing = [c for c in spec.required_columns if c not in schema]
        found = ", ".join(cut(c, 30) for c in cols[:12]) + (", ..." if len(cols) > 12 else "")
        hint = _separator_hint(cols)
        problems += [
            Problem(f.name, c, f"required column is missing (columns found: {found}){hint}") for c in missing
        ]
        problems += V.check_stored_types(schema, spec, f.name)
        bad_type = {p.column for p in problems}
        usable = pl.Schema(
            {c.name: schema[c.name] for c in spec.columns if c.name in schema and c.name not in bad_type}
        )
        if not usable or not scan_rows:
            return None, problems, 0
        stage = V.staged(raw.select(usable.names()).with_row_index(V.ROW, offset=1), usable, spec)
        freq_checks, freq_counts = V.frequency_checks(usable, spec, frequency)
        checks = V.column_checks(usable, spec) + freq_checks
        probs, counts = V.check_columns(stage, checks, f.name, freq_counts)
        problems += probs
        n_rows = counts["n"]
        if not n_rows:
            return None, problems + [Problem(f.name, None, "table is empty (no data rows)")], 0
        typed = V.typed_rows(stage, usable, spec)
        problems += V.daily_problem(typed, counts, f.name)
        problems += V.check_key(typed, spec, f.name)
        for lo, hi in (("opened_on", "closed_on"), ("start", "end")):
            problems += V.check_dates(typed, f.name, lo, hi)
        if bad_type:  # cross-table rules need every required column readable
            typed = None
    except _UNREADABLE as e:
        return None, problems + [_unreadable(f, e)], 0
    return typed, problems, n_rows


def _separator_hint(cols: list[str]) -> str:
    if len(cols) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in cols[0]:
                return f"; the header looks separated by {label}, the contract uses commas"
    return ""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cannabis_market" / "validated"


def _cache_key(fp: str) -> str:
    return hashlib.sha256(f"{VALIDATOR_VERSION}\0{fp}".encode()).hexdigest()


def load_dataset(path: str | Path, validate: bool = True, typed_cache: bool = True) -> Dataset:
    """Load and validate the dataset at `path`; raise DataValidationError listing every problem.

    Tables are checked by streaming scans (bounded memory whatever their size) and returned as lazy
    scans cast to the contract types. With `validate=False` only the manifest, the files, their
    columns and stored types are checked (no row is read). A dataset whose exact content (its
    fingerprint) passed validation before loads without re-checks. With `typed_cache` (default) the
    validated tables are read through the typed Arrow cache (`data.typed_cache`): written on the first
    load of this content, memory-mapped by later loads.
    """
    folder = Path(path)
    if not folder.exists():
        raise InputError(
            f"dataset folder {folder} does not exist (generate one with: cannabis-market data generate --out {folder})"
        )
    if not folder.is_dir():
        raise InputError(f"{folder} is a file; a dataset is a folder holding manifest.yml and tables")
    fp = fingerprint(folder)
    if validate:
        quick = _load_cached(folder, fp, typed_cache)
        if quick is not None:
            return quick
    manifest, problems = read_manifest(folder)
    typed: dict[str, pl.LazyFrame] = {}
    counts: dict[str, int] = {}
    files: dict[str, Path] = {}
    present: set[str] = set()
    for name, spec in TABLES.items():
        f, probs = find_table(folder, name)
        problems += probs
        if probs or f is not None:
            present.add(name)
        if f is None:
            continue
        files[name] = f
        lf, probs, counts[name] = check_table_file(folder, f, spec, manifest.get("frequency"), validate)
        problems += probs
        if lf is not None:
            typed[name] = lf
    if "sales" not in present and "series" not in present:
        problems.append(
            Problem(
                cut(str(folder), 200), None, "a dataset needs a sales table (with stores) or a series table"
            )
        )
    for name in ("sales", "inventory"):
        if name in present and "stores" not in present:
            problems.append(
                Problem("stores", None, f"{name} need a stores table (stores.csv or stores.parquet)")
            )
    if validate:
        try:
            problems += _check_data(typed, files)
        except _UNREADABLE as e:  # a file changed or broke between passes
            problems.append(Problem(str(folder), None, f"a table could not be read ({cut(str(e), 150)})"))
    if problems:
        raise DataValidationError(problems, cut(str(folder), 200))
    if validate and fingerprint(folder) == fp:
        try:
            cache = _cache_dir() / _cache_key(fp)
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"path": str(folder.resolve()), "rows": counts}))
        except OSError:
            pass  # a read-only home only costs re-validation next time
    return _dataset(folder, manifest, files, fp, counts, use_cache=validate and typed_cache)


def _dataset(
    folder: Path,
    manifest: dict[str, Any],
    files: dict[str, Path],
    fp: str,
    rows: dict[str, int],
    use_cache: bool = True,
) -> Dataset:
    """The Dataset of validated files: typed tables memory-mapped from the typed cache (written on the
    first load of this content), else lazy scans of the files cast to the contract types."""
    key = _cache_key(fp)
    lazy = TC.scan_cached(key, list(files)) if use_cache else None
    cached = lazy is not None
    if lazy is None:
        lazy = {name: scan_typed(f, name) for name, f in files.items()}
        if use_cache and TC.store(key, lazy):
            if fingerprint(folder) == fp:  # the files did not change while they were copied
                again = TC.scan_cached(key, list(files))
                lazy, cached = again or lazy, again is not None
            else:
                TC.discard(key)
    return Dataset(
        path=folder,
        manifest=manifest,
        files=files,
        content_fingerprint=fp,
        row_counts=rows,
        cache_key=key if cached else None,
        **lazy,
    )._seal()


def _load_cached(folder: Path, fp: str, use_cache: bool) -> Dataset | None:
    """Load lazily, without re-reading the data, when this exact content passed validation before."""
    try:
        record = json.loads((_cache_dir() / _cache_key(fp)).read_text())
        rows = {str(k): int(v) for k, v in dict(record.get("rows") or {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    manifest, problems = read_manifest(folder)
    if problems:
        return None
    files: dict[str, Path] = {}
    for name in TABLES:
        f, probs = find_table(folder, name)
        if probs or (f is not None and confined(folder, f)):
            return None
        if f is not None:
            files[name] = f
    try:
        return _dataset(folder, manifest, files, fp, rows, use_cache)
    except _UNREADABLE:
        return None


def _check_data(typed: dict[str, pl.LazyFrame], files: dict[str, Path]) -> list[Problem]:
    """Rules spanning tables: store references and open dates."""
    problems: list[Problem] = []
    fname = {k: v.name for k, v in files.items()}
    stores = typed.get("stores")
    for name in ("sales", "inventory"):
        if name in typed and stores is not None:
            rows = typed[name].filter(pl.col("store_id").is_not_null())
            problems += V.check_store_refs(rows, stores, fname[name], name)
    return problems
