"""Hostile input to `data validate` and `impact`: every case exits 2 with a message naming the file, the
column or parameter and the rule, in bounded memory, echoing nothing unbounded or from outside the
dataset, and changing nothing on disk (hashes of the dataset and its surroundings before/after)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cannabis_market.cli import main

from conftest import MANIFEST, TABLES, write_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_validate import write_big_dataset  # noqa: E402  (one generator for the test and the benchmark)

SECRET = "TOP-SECRET-OUTSIDE-CELL"
MAX_MESSAGE = 4000  # characters: messages stay short whatever the input


def tree_hash(*roots: Path) -> str:
    """Names, link targets and contents of everything under `roots` (links are not followed)."""
    h = hashlib.sha256()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames + dirnames):
                p = Path(dirpath) / name
                h.update(str(p.relative_to(root)).encode())
                if p.is_symlink():
                    h.update(os.readlink(p).encode())
                elif p.is_file():
                    h.update(p.read_bytes())
    return h.hexdigest()


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the console entry point in-process; (exit status, stderr)."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse refusals
        rc = int(e.code or 0)
    return rc, capsys.readouterr().err


# ------------------------------------------------------------------------- building hostile datasets


def put(d: Path, name: str, content: str | bytes) -> None:
    (d / name).unlink(missing_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (d / name).write_bytes(data)


def csv_of(table: str, *extra: str, header: str | None = None) -> str:
    lines = [header if header is not None else TABLES[table][0], *TABLES[table][1:], *extra]
    return "\n".join(lines) + "\n"


def rows(table: str, *extra: str) -> Callable[[Path], None]:
    return lambda d: put(d, f"{table}.csv", csv_of(table, *extra))


def text(table: str, content: str | bytes) -> Callable[[Path], None]:
    return lambda d: put(d, f"{table}.csv", content)


def manifest(**fields: object) -> Callable[[Path], None]:
    return lambda d: put(d, "manifest.yml", yaml.safe_dump({**MANIFEST, **fields}))


def manifest_text(content: str | bytes) -> Callable[[Path], None]:
    return lambda d: put(d, "manifest.yml", content)


def parquet(table: str, **cols: pl.Expr) -> Callable[[Path], None]:
    """Store `table` as Parquet with some columns replaced (wrong physical types and the like)."""

    def make(d: Path) -> None:
        df = pl.read_csv(d / f"{table}.csv", infer_schema=False)
        (d / f"{table}.csv").unlink()
        df.with_columns(**cols).write_parquet(d / f"{table}.parquet")

    return make


def parquet_bytes(table: str, cut: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        parquet(table)(d)
        f = d / f"{table}.parquet"
        f.write_bytes(cut(f.read_bytes()))

    return make


def link(name: str, target: Callable[[Path], Path]) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        (d / name).unlink(missing_ok=True)
        (d / name).symlink_to(target(d))

    return make


def outside(d: Path) -> Path:
    return d.parent / "outside" / "stores.csv"


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        for s in steps:
            s(d)

    return make


S = "2022-01-05,S1,edibles,{},1"  # a sales row with a chosen revenue
D = "{},S1,edibles,5,1"  # a sales row with a chosen date
day1 = ["date,store_id,category,revenue"] + [f"2022-0{m}-01,S1,edibles,5" for m in (2, 3, 4)]

# (id, setup, file, column or None, rule text)
CASES: list[tuple[str, Callable[[Path], None], str, str | None, str]] = [
    # --- bytes and text
    (
        "latin1",
        text("stores", csv_of("stores", "S4,Qu\u00e9bec,East,2022-01-01,,").encode("latin-1")),
        "stores.csv",
        None,
        "not valid UTF-8",
    ),
    ("utf16_bom", text("sales", csv_of("sales").encode("utf-16")), "sales.csv", None, "UTF-16"),
    ("utf16le_nobom", text("sales", csv_of("sales").encode("utf-16-le")), "sales.csv", None, "NUL byte"),
    ("utf32", text("sales", csv_of("sales").encode("utf-32")), "sales.csv", None, "UTF-32"),
    ("nul_mid", text("sales", csv_of("sales", "2022-01-05,S1,edi\0bles,5,1")), "sales.csv", None, "NUL byte"),
    ("sparse_file", lambda d: os.truncate(d / "sales.csv", 20 << 20), "sales.csv", None, "NUL byte"),
    ("binary_garbage", text("sales", bytes(range(256)) * 64), "sales.csv", None, "NUL byte"),
    (
        "utf8_cut_at_end",
        text("stores", csv_of("stores").encode() + "S9,Qu\u00e9".encode()[:-1]),
        "stores.csv",
        None,
        "not valid UTF-8",
    ),
    (
        "bad_utf8_after_9mb",
        text("sales", csv_of("sales").encode() + b"x" * 100 + b"\n" * (9 << 20) + b"\xff\n"),
        "sales.csv",
        None,
        "not valid UTF-8",
    ),
    ("empty_file", text("population", ""), "population.csv", None, "file is empty"),
    ("whitespace_only", text("population", "  \n\n \r\n"), "population.csv", None, "file is empty"),
    ("blank_first_line", text("sales", "\n" + csv_of("sales")), "sales.csv", None, "first line is blank"),
    ("header_only", text("events", TABLES["events"][0] + "\n"), "events.csv", None, "table is empty"),
    (
        "long_line",
        text("sales", csv_of("sales") + "x" * (2 << 20) + "\n"),
        "sales.csv",
        None,
        "line longer than",
    ),
    ("no_line_breaks_big", text("sales", "a," * (1 << 20)), "sales.csv", None, "line longer than"),
    (
        "huge_quoted_field",
        text("sales", csv_of("sales", '2022-01-05,S1,"' + "y" * (3 << 20) + '",5,1')),
        "sales.csv",
        None,
        "line longer than",
    ),
    ("cr_only", text("sales", csv_of("sales").replace("\n", "\r")), "sales.csv", None, "CR only"),
    (
        "dup_header",
        text("sales", csv_of("sales", header="date,store_id,category,revenue,revenue")),
        "sales.csv",
        None,
        "names a column twice",
    ),
    (
        "dup_header_spaces",
        text("sales", csv_of("sales", header="date, store_id,store_id ,category,revenue")),
        "sales.csv",
        None,
        "names a column twice",
    ),
    (
        "empty_header_name",
        text("sales", csv_of("sales", header="date,store_id,category,revenue,")),
        "sales.csv",
        None,
        "empty column name",
    ),
    (
        "semicolons",
        text("sales", csv_of("sales").replace(",", ";")),
        "sales.csv",
        "date",
        "separated by semicolons",
    ),
    ("tabs", text("sales", csv_of("sales").replace(",", "\t")), "sales.csv", "date", "separated by tabs"),
    ("ragged_row", rows("sales", "2022-01-05,S1,edibles,5,1,extra"), "sales.csv", None, "unreadable"),
    ("unclosed_quote", rows("sales", '2022-01-05,"S1,edibles,5,1'), "sales.csv", None, "unreadable"),
    # --- numbers
    ("revenue_inf", rows("sales", S.format("inf")), "sales.csv", "revenue", "not a finite number"),
    ("revenue_minus_inf", rows("sales", S.format("-inf")), "sales.csv", "revenue", "not a finite number"),
    ("revenue_1e999", rows("sales", S.format("1e999")), "sales.csv", "revenue", "not a finite number"),
    ("revenue_nan", rows("sales", S.format("nan")), "sales.csv", "revenue", "not a finite number"),
    ("revenue_NaN", rows("sales", S.format("NaN")), "sales.csv", "revenue", "not a finite number"),
    ("revenue_true", rows("sales", S.format("True")), "sales.csv", "revenue", "not a number"),
    ("revenue_thousands", rows("sales", S.format('"1,000"')), "sales.csv", "revenue", "not a number"),
    ("revenue_dollar", rows("sales", S.format("$5")), "sales.csv", "revenue", "not a number"),
    ("revenue_hex", rows("sales", S.format("0x10")), "sales.csv", "revenue", "not a number"),
    ("revenue_negative", rows("sales", S.format("-0.01")), "sales.csv", "revenue", ">= 0"),
    ("revenue_empty", rows("sales", S.format("")), "sales.csv", "revenue", "missing value"),
    ("revenue_huge_text", rows("sales", S.format("9" * 5000 + "x")), "sales.csv", "revenue", "not a number"),
    ("grams_negative", rows("sales", "2022-01-05,S1,edibles,5,-1"), "sales.csv", "grams", ">= 0"),
    ("grams_inf", rows("sales", "2022-01-05,S1,edibles,5,inf"), "sales.csv", "grams", "not a finite number"),
    ("population_zero", rows("population", "Ottawa,2023,0"), "population.csv", "population", "> 0"),
    ("population_negative", rows("population", "Ottawa,2023,-5"), "population.csv", "population", "> 0"),
    (
        "population_decimal",
        rows("population", "Ottawa,2023,1.5"),
        "population.csv",
        "population",
        "integer expected",
    ),
    (
        "population_exp",
        rows("population", "Ottawa,2023,3e9"),
        "population.csv",
        "population",
        "integer expected",
    ),
    (
        "population_overflow",
        rows("population", "Ottawa,2023,99999999999999999999999"),
        "population.csv",
        "population",
        "integer expected",
    ),
    ("year_decimal", rows("population", "Ottawa,2023.0,5"), "population.csv", "year", "integer expected"),
    ("cover_negative", rows("inventory", "2022-01-02,S1,-1"), "inventory.csv", "days_of_cover", ">= 0"),
    (
        "cover_nan",
        rows("inventory", "2022-01-02,S1,nan"),
        "inventory.csv",
        "days_of_cover",
        "not a finite number",
    ),
    # --- dates
    ("feb_30", rows("sales", D.format("2023-02-30")), "sales.csv", "date", "not a date"),
    ("month_13", rows("sales", D.format("2023-13-01")), "sales.csv", "date", "not a date"),
    ("slashes", rows("sales", D.format("2022/01/05")), "sales.csv", "date", "not a date"),
    ("day_first", rows("sales", D.format("05/01/2022")), "sales.csv", "date", "not a date"),
    ("compact_date", rows("sales", D.format("20220105")), "sales.csv", "date", "not a date"),
    ("date_with_time", rows("sales", D.format("2022-01-05T10:00")), "sales.csv", "date", "not a date"),
    ("month_name", rows("sales", D.format('"Jan 5, 2022"')), "sales.csv", "date", "not a date"),
    (
        "mixed_formats",
        rows("sales", D.format("2022-01-05"), "06/01/2022,S1,vapes,5,1"),
        "sales.csv",
        "date",
        "not a date",
    ),
    ("date_missing", rows("sales", D.format("")), "sales.csv", "date", "missing value"),
    ("opened_missing", rows("stores", "S4,Ottawa,East,,,"), "stores.csv", "opened_on", "missing value"),
    (
        "closed_before_opened",
        rows("stores", "S4,Ottawa,East,2022-03-01,2022-02-01,"),
        "stores.csv",
        "closed_on",
        "before opened_on",
    ),
    (
        "event_end_before_start",
        rows("events", "E2,closure,2022-01-05,2022-01-01,all,x"),
        "events.csv",
        "end",
        "before start",
    ),
    ("monthly_not_month_start", manifest(frequency="monthly"), "sales.csv", "date", "month starts"),
    (
        "daily_all_month_starts",
        both(text("sales", "\n".join(day1) + "\n"), lambda d: (d / "inventory.csv").unlink()),
        "sales.csv",
        "date",
        "set frequency: monthly",
    ),
    # --- values, keys and references
    (
        "unknown_category",
        rows("sales", "2022-01-05,S1,flower,5,1"),
        "sales.csv",
        "category",
        "must be one of",
    ),
    ("category_case", rows("sales", "2022-01-05,S1,Edibles,5,1"), "sales.csv", "category", "must be one of"),
    (
        "store_id_empty",
        rows("stores", ",Toronto,Toronto,2022-01-01,,"),
        "stores.csv",
        "store_id",
        "missing value",
    ),
    (
        "store_id_spaces",
        rows("stores", "   ,Toronto,Toronto,2022-01-01,,"),
        "stores.csv",
        "store_id",
        "missing value",
    ),
    (
        "unknown_store",
        rows("sales", "2022-01-02,S99,edibles,1,1"),
        "sales.csv",
        "store_id",
        "not found in stores",
    ),
    (
        "unknown_store_inventory",
        rows("inventory", "2022-01-02,S42,3"),
        "inventory.csv",
        "store_id",
        "not found in stores",
    ),
    (
        "sale_after_closing",
        rows("sales", "2022-01-05,S2,edibles,1,1"),
        "sales.csv",
        "date",
        "outside the store's open dates",
    ),
    (
        "sale_before_opening",
        rows("sales", "2022-01-01,S3,vapes,1,1"),
        "sales.csv",
        "date",
        "outside the store's open dates",
    ),
    (
        "duplicate_sales_key",
        rows("sales", TABLES["sales"][1]),
        "sales.csv",
        "date, store_id, category",
        "duplicate key",
    ),
    ("duplicate_store", rows("stores", TABLES["stores"][1]), "stores.csv", "store_id", "duplicate key"),
    (
        "duplicate_population",
        rows("population", "Toronto,2022,5"),
        "population.csv",
        "municipality, year",
        "duplicate key",
    ),
    ("duplicate_event", rows("events", TABLES["events"][1]), "events.csv", "event_id", "duplicate key"),
    (
        "event_kind",
        rows("events", "E2,hack,2022-01-02,2022-01-03,all,x"),
        "events.csv",
        "kind",
        "must be one of",
    ),
    (
        "event_scope",
        rows("events", "E2,outage,2022-01-02,2022-01-03,province,x"),
        "events.csv",
        "scope",
        "region:<name>",
    ),
    (
        "missing_column",
        text("sales", "date,store_id,revenue\n2022-01-01,S1,5\n"),
        "sales.csv",
        "category",
        "required column is missing",
    ),
    # --- structure
    ("no_tables", lambda d: [f.unlink() for f in d.glob("*.csv")], "", None, "needs a sales table"),
    (
        "sales_without_stores",
        lambda d: [(d / f).unlink() for f in ("stores.csv", "inventory.csv")],
        "stores",
        None,
        "need a stores table",
    ),
    ("stored_twice", lambda d: put(d, "stores.parquet", b"PAR1"), "stores", None, "stored twice"),
    (
        "table_is_folder",
        lambda d: [(d / "sales.csv").unlink(), (d / "sales.csv").mkdir()],
        "sales.csv",
        None,
        "not a regular file",
    ),
    # --- links leaving the dataset, and other special files
    ("link_outside", link("stores.csv", outside), "stores.csv", None, "outside the dataset folder"),
    (
        "link_outside_relative",
        link("stores.csv", lambda d: Path("../outside/stores.csv")),
        "stores.csv",
        None,
        "outside the dataset folder",
    ),
    (
        "manifest_link_outside",
        link("manifest.yml", lambda d: d.parent / "outside" / "manifest.yml"),
        "manifest.yml",
        None,
        "outside the dataset folder",
    ),
    (
        "link_dev_zero",
        link("sales.csv", lambda d: Path("/dev/zero")),
        "sales.csv",
        None,
        "outside the dataset folder",
    ),
    ("link_dangling", link("sales.csv", lambda d: d / "nowhere.csv"), "sales.csv", None, "broken"),
    (
        "link_loop",
        both(link("sales.csv", lambda d: d / "loop.csv"), link("loop.csv", lambda d: d / "sales.csv")),
        "sales.csv",
        None,
        "broken",
    ),
    (
        "fifo",
        lambda d: [(d / "sales.csv").unlink(), os.mkfifo(d / "sales.csv")],
        "sales.csv",
        None,
        "not a regular file",
    ),
    # --- Parquet: wrong physical types (checked on the schema, before casting), broken files
    (
        "pq_date_int64",
        parquet("sales", date=pl.lit(20220101000, pl.Int64)),
        "sales.parquet",
        "date",
        "stored as Int64",
    ),
    (
        "pq_date_int32",
        parquet("sales", date=pl.lit(19000, pl.Int32)),
        "sales.parquet",
        "date",
        "stored as Int32",
    ),
    ("pq_date_float", parquet("sales", date=pl.lit(1.5)), "sales.parquet", "date", "stored as Float64"),
    (
        "pq_date_binary",
        parquet("sales", date=pl.lit(b"2022-01-01")),
        "sales.parquet",
        "date",
        "stored as Binary",
    ),
    ("pq_date_bool", parquet("sales", date=pl.lit(True)), "sales.parquet", "date", "stored as Boolean"),
    ("pq_date_list", parquet("sales", date=pl.lit([1, 2])), "sales.parquet", "date", "stored as List"),
    (
        "pq_date_duration",
        parquet("sales", date=pl.duration(days=3)),
        "sales.parquet",
        "date",
        "stored as Duration",
    ),
    (
        "pq_revenue_bool",
        parquet("sales", revenue=pl.lit(True)),
        "sales.parquet",
        "revenue",
        "stored as Boolean",
    ),
    (
        "pq_revenue_list",
        parquet("sales", revenue=pl.lit([1.0, 2.0])),
        "sales.parquet",
        "revenue",
        "stored as List",
    ),
    (
        "pq_revenue_struct",
        parquet("sales", revenue=pl.struct(a=pl.lit(1.0))),
        "sales.parquet",
        "revenue",
        "stored as Struct",
    ),
    (
        "pq_revenue_binary",
        parquet("sales", revenue=pl.lit(b"5")),
        "sales.parquet",
        "revenue",
        "stored as Binary",
    ),
    (
        "pq_revenue_date",
        parquet("sales", revenue=pl.lit(dt.date(2022, 1, 1))),
        "sales.parquet",
        "revenue",
        "stored as Date",
    ),
    (
        "pq_revenue_inf",
        parquet("sales", revenue=pl.lit(math.inf)),
        "sales.parquet",
        "revenue",
        "not a finite number",
    ),
    (
        "pq_revenue_nan",
        parquet("sales", revenue=pl.lit(math.nan)),
        "sales.parquet",
        "revenue",
        "not a finite number",
    ),
    (
        "pq_store_float",
        parquet("sales", store_id=pl.lit(1.0)),
        "sales.parquet",
        "store_id",
        "stored as Float64",
    ),
    (
        "pq_category_bool",
        parquet("sales", category=pl.lit(False)),
        "sales.parquet",
        "category",
        "stored as Boolean",
    ),
    (
        "pq_population_fraction",
        parquet("population", population=pl.lit(2.5)),
        "population.parquet",
        "population",
        "integer expected",
    ),
    (
        "pq_truncated",
        parquet_bytes("sales", lambda b: b[: len(b) // 2]),
        "sales.parquet",
        None,
        "unreadable or truncated Parquet",
    ),
    (
        "pq_zero_bytes",
        parquet_bytes("sales", lambda b: b""),
        "sales.parquet",
        None,
        "unreadable or truncated Parquet",
    ),
    (
        "pq_garbage",
        parquet_bytes("sales", lambda b: b"PAR1" + bytes(1000) + b"PAR1"),
        "sales.parquet",
        None,
        "unreadable or truncated Parquet",
    ),
    (
        "pq_csv_inside",
        parquet_bytes("sales", lambda b: csv_of("sales").encode()),
        "sales.parquet",
        None,
        "unreadable or truncated Parquet",
    ),
    (
        "pq_no_rows",
        lambda d: (
            parquet("events")(d)
            or pl.read_parquet(d / "events.parquet").head(0).write_parquet(d / "events.parquet")
        ),
        "events.parquet",
        None,
        "table is empty",
    ),
    (
        "pq_missing_column",
        lambda d: (
            parquet("sales")(d)
            or pl.read_parquet(d / "sales.parquet").drop("category").write_parquet(d / "sales.parquet")
        ),
        "sales.parquet",
        "category",
        "required column is missing",
    ),
    # --- manifest
    (
        "manifest_missing",
        lambda d: (d / "manifest.yml").unlink(),
        "manifest.yml",
        None,
        "required file is missing",
    ),
    ("manifest_not_yaml", manifest_text("name: [unclosed\n"), "manifest.yml", None, "not valid YAML"),
    ("manifest_list", manifest_text("- a\n- b\n"), "manifest.yml", None, "must be a YAML mapping"),
    ("manifest_scalar", manifest_text("just text\n"), "manifest.yml", None, "must be a YAML mapping"),
    ("manifest_empty", manifest_text(""), "manifest.yml", None, "must be a YAML mapping"),
    (
        "billion_laughs",
        manifest_text(
            "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
            + "".join(
                f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            )
            + "name: *i\n"
        ),
        "manifest.yml",
        None,
        "aliases expand the manifest beyond 100,000 values",
    ),
    (
        "deep_nesting",
        manifest_text("x: " + "[" * 20000 + "]" * 20000 + "\n"),
        "manifest.yml",
        None,
        "nested more than",
    ),
    (
        "manifest_2mb",
        manifest_text(yaml.safe_dump(MANIFEST) + "pad: " + "x" * (2 << 20) + "\n"),
        "manifest.yml",
        None,
        "larger than",
    ),
    (
        "manifest_latin1",
        manifest_text(
            yaml.safe_dump({**MANIFEST, "name": "Qu\u00e9bec"}, allow_unicode=True).encode("latin-1")
        ),
        "manifest.yml",
        None,
        "not valid UTF-8",
    ),
    (
        "manifest_python_tag",
        manifest_text(yaml.safe_dump(MANIFEST) + "x: !!python/object/apply:os.system ['true']\n"),
        "manifest.yml",
        None,
        "not valid YAML",
    ),
    (
        "manifest_duplicate_key",
        manifest_text(yaml.safe_dump(MANIFEST) + "currency: USD\n"),
        "manifest.yml",
        None,
        "duplicate key",
    ),
    ("currency_number", manifest(currency=124), "manifest.yml", "currency", "3-letter ISO"),
    ("currency_lower", manifest(currency="cad"), "manifest.yml", "currency", "3-letter ISO"),
    ("currency_list", manifest(currency=["CAD"]), "manifest.yml", "currency", "3-letter ISO"),
    ("currency_symbol", manifest(currency="CA$"), "manifest.yml", "currency", "3-letter ISO"),
    ("currency_huge", manifest(currency="C" * 100000), "manifest.yml", "currency", "3-letter ISO"),
    ("frequency_weekly", manifest(frequency="weekly"), "manifest.yml", "frequency", "must be one of"),
    ("frequency_number", manifest(frequency=7), "manifest.yml", "frequency", "must be text"),
    ("source_scraped", manifest(source="scraped"), "manifest.yml", "source", "must be one of"),
    ("name_mapping", manifest(name={"a": 1}), "manifest.yml", "name", "must be text"),
    (
        "description_missing",
        manifest(description=None),
        "manifest.yml",
        "description",
        "required manifest field",
    ),
    ("synthetic_without_truth", manifest(source="synthetic"), "manifest.yml", "truth", "truth"),
    ("truth_not_mapping", manifest(truth=[1, 2]), "manifest.yml", "truth", "must be a mapping"),
    (
        "path_traversal_field",
        both(
            manifest(sales="../outside/stores.csv", tables={"sales": "/etc/passwd"}),
            lambda d: [(d / f).unlink() for f in ("sales.csv", "inventory.csv")],
        ),
        "",
        None,
        "needs a sales table",
    ),
]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A valid tiny dataset `d` and, beside it, an `outside` folder holding a secret-bearing table."""
    d = write_dataset(tmp_path / "d")
    out = tmp_path / "outside"
    out.mkdir()
    (out / "stores.csv").write_text(csv_of("stores", f"{SECRET},x,y,not-a-date,,"))
    (out / "manifest.yml").write_text(f"name: {SECRET}\ncurrency: {SECRET}\n")
    return d, tmp_path


@pytest.mark.parametrize(("case", "setup", "file", "column", "rule"), CASES, ids=[c[0] for c in CASES])
def test_validate_refuses(world, capsys, case, setup, file, column, rule) -> None:
    d, root = world
    setup(d)
    before = tree_hash(root)
    t0 = time.perf_counter()
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 2, err
    assert time.perf_counter() - t0 < 10, "a refusal must be fast"
    where = f"{file}, column '{column}'" if column else file
    assert where in err and rule in err, err[:2000]
    assert "Traceback" not in err and "unexpected" not in err
    assert len(err) < MAX_MESSAGE, f"message of {len(err)} characters"
    assert SECRET not in err
    assert tree_hash(root) == before, "validation changed files"


def test_missing_column_is_exactly_one_problem(world, capsys) -> None:
    d, _ = world
    put(d, "sales.csv", "date,store_id,revenue\n2022-01-01,S1,5\n")
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 2 and "1 problem" in err and "column_in_dataframe" not in err, err


@pytest.mark.parametrize(
    ("case", "setup"),
    [
        ("bom", text("sales", b"\xef\xbb\xbf" + csv_of("sales").encode())),
        ("crlf", text("sales", csv_of("sales").replace("\n", "\r\n"))),
        ("quoted_newline", rows("stores", 'S4,"Ott\nawa",East,2022-01-01,,')),
        ("spaces_around_cells", rows("sales", " 2022-01-05 , S1 , edibles , 5 , 1 ")),
        ("no_final_newline", text("sales", csv_of("sales").rstrip("\n"))),
        (
            "link_inside",
            both(
                lambda d: (d / "stores.csv").rename(d / "real_stores.csv"),
                link("stores.csv", lambda d: Path("real_stores.csv")),
            ),
        ),
        ("pq_datetime_dates", parquet("sales", date=pl.col("date").str.to_datetime("%Y-%m-%d"))),
        (
            "pq_int_revenue",
            parquet("sales", revenue=pl.col("revenue").cast(pl.Float64).round().cast(pl.Int32)),
        ),
        ("manifest_bom", manifest_text(b"\xef\xbb\xbf" + yaml.safe_dump(MANIFEST).encode())),
        ("manifest_alias", manifest_text(yaml.safe_dump(MANIFEST) + "x: &x Ontario\nregion2: *x\n")),
        ("manifest_shared_list", manifest_text(yaml.safe_dump({**MANIFEST, "a": (v := [1, 2]), "b": v}))),
    ],
)
def test_validate_tolerates(world, capsys, case, setup) -> None:
    d, root = world
    setup(d)
    before = tree_hash(root)
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 0, err
    assert tree_hash(root) == before


def test_same_size_same_mtime_edit_is_validated_again(world, capsys) -> None:
    d, _ = world
    assert cli(["data", "validate", str(d)], capsys)[0] == 0
    f = d / "sales.csv"
    st = f.stat()
    data = f.read_bytes()
    f.write_bytes(data.replace(b"100.5", b"-00.5"))  # same length, now negative
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 2 and "sales.csv, column 'revenue'" in err and ">= 0" in err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=600), table=st.sampled_from(["sales", "stores", "events"]))
def test_random_bytes_never_crash(tmp_path_factory, blob, table) -> None:
    d = write_dataset(tmp_path_factory.mktemp("fuzz") / "d")
    (d / f"{table}.csv").write_bytes(TABLES[table][0].encode() + b"\n" + blob)
    try:
        rc = main(["data", "validate", str(d)])
    except SystemExit as e:  # pragma: no cover - would be a failure below
        rc = e.code
    assert rc in (0, 2)


# ------------------------------------------------------------------------------------- impact CLI


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    f = tmp_path / "series.csv"
    f.write_text("t,y,x\n" + "".join(f"{i},{10 + i % 7},{5 + i % 3}\n" for i in range(1, 61)))
    return f


IMPACT_BASE = ["--date-col", "t", "--y", "y", "--pre", "1:40", "--post", "41:60"]
IMPACT_CASES = [
    ("sims_billion", ["--sims", "1000000000"], "--sims", "between 100 and 100,000"),
    ("sims_zero", ["--sims", "0"], "--sims", "between 100"),
    ("sims_negative", ["--sims", "-5"], "--sims", "between 100"),
    ("sims_99", ["--sims", "99"], "--sims", "between 100"),
    ("sims_just_over", ["--sims", "100001"], "--sims", "100,000"),
    ("sims_text", ["--sims", "many"], "--sims", "invalid int"),
    ("alpha_zero", ["--alpha", "0"], "--alpha", "(0, 0.5]"),
    ("alpha_one", ["--alpha", "1"], "--alpha", "(0, 0.5]"),
    ("alpha_nan", ["--alpha", "nan"], "--alpha", "(0, 0.5]"),
    ("alpha_inf", ["--alpha", "inf"], "--alpha", "(0, 0.5]"),
    ("alpha_negative", ["--alpha", "-0.1"], "--alpha", "(0, 0.5]"),
    ("alpha_large", ["--alpha", "0.9"], "--alpha", "(0, 0.5]"),
    ("seed_negative", ["--seed", "-1"], "--seed", "between 0 and 2**32"),
    ("seed_huge", ["--seed", str(2**40)], "--seed", "between 0 and 2**32"),
    ("season_huge", ["--seasonality", "1000000"], "--seasonality", "between 2 and 366"),
    ("season_negative", ["--seasonality", "-3"], "--seasonality", "between 2 and 366"),
    ("season_text", ["--seasonality", "weekly"], "--seasonality", "auto, none or an integer"),
    ("pre_huge_index", ["--pre", "1:99999999999999999999"], "--pre", "out of range"),
    ("post_huge_index", ["--post", "41:-99999999999999999999"], "--post", "out of range"),
    ("pre_not_a_range", ["--pre", "1-40"], "--pre", "START:END"),
    ("post_three_parts", ["--post", "41:50:60"], "--post", "START:END"),
    ("pre_huge_text", ["--pre", "x" * 100000], "--pre", "START:END"),
    (
        "too_many_controls",
        ["--controls", ",".join(f"c{i}" for i in range(60))],
        "--controls",
        "more than the 50",
    ),
]


@pytest.mark.parametrize(("case", "extra", "param", "rule"), IMPACT_CASES, ids=[c[0] for c in IMPACT_CASES])
def test_impact_refuses_numbers(series_csv, capsys, case, extra, param, rule) -> None:
    before = tree_hash(series_csv.parent)
    t0 = time.perf_counter()
    rc, err = cli(["impact", str(series_csv), *IMPACT_BASE, *extra], capsys)
    assert rc == 2 and param in err and rule in err, err[:2000]
    assert time.perf_counter() - t0 < 10 and len(err) < MAX_MESSAGE
    assert tree_hash(series_csv.parent) == before


IMPACT_FILES = [
    ("missing", None, "file not found"),
    ("empty", b"", "file is empty"),
    ("header_only", b"t,y\n", "no data rows"),
    ("nul", b"t,y\n1,2\0\n", "NUL byte"),
    ("utf16", "t,y\n1,2\n".encode("utf-16"), "UTF-16"),
    ("latin1", "t,y,caf\u00e9\n1,2,3\n".encode("latin-1"), "not valid UTF-8"),
    ("long_line", b"t,y\n" + b"9" * (2 << 20) + b"\n", "line longer than"),
    ("dup_header", b"t,y,y\n1,2,3\n", "names a column twice"),
    ("too_many_rows", b"t,y\n" + b"".join(b"%d,1\n" % i for i in range(100_001)), "more than the 100,000"),
    ("sparse", None, "NUL byte"),
]


@pytest.mark.parametrize(("case", "content", "rule"), IMPACT_FILES, ids=[c[0] for c in IMPACT_FILES])
def test_impact_refuses_files(tmp_path, capsys, case, content, rule) -> None:
    f = tmp_path / "in.csv"
    if content is not None:
        f.write_bytes(content)
    elif case == "sparse":
        f.touch()
        os.truncate(f, 30 << 20)
    before = tree_hash(tmp_path)
    rc, err = cli(["impact", str(f), *IMPACT_BASE], capsys)
    assert rc == 2 and str(f) in err and rule in err, err[:2000]
    assert len(err) < MAX_MESSAGE and tree_hash(tmp_path) == before


def test_impact_sims_times_rows_is_bounded(tmp_path, capsys) -> None:
    f = tmp_path / "long.csv"
    f.write_text("t,y\n" + "".join(f"{i},{i % 5}\n" for i in range(1, 1001)))
    rc, err = cli(
        [
            "impact",
            str(f),
            "--date-col",
            "t",
            "--y",
            "y",
            "--pre",
            "1:500",
            "--post",
            "501:1000",
            "--sims",
            "100000",
        ],
        capsys,
    )
    assert rc == 2 and "--sims" in err and "use at most --sims 50,000" in err


# ------------------------------------------------------------------------ large files: bounded memory

PEAK_SCRIPT = textwrap.dedent(
    """
    import resource, subprocess, sys
    p = subprocess.run([sys.executable, "-m", "cannabis_market.cli", "data", "validate", sys.argv[1]],
                       capture_output=True, text=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(p.returncode, round(peak_mb), sep="\\n")
    sys.stderr.write(p.stderr)
    """
)


def peak_validate(folder: Path) -> tuple[int, float, str]:
    """(exit status, peak RSS in MB, stderr) of `cannabis-market data validate` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(folder)], capture_output=True, text=True, env=env
    )
    rc, peak = p.stdout.split()
    return int(rc), float(peak), p.stderr


CAP_MB = 650  # the old eager validator peaked at ~960 MB on a 120 MB CSV (~800 MB at 100 MB); we stay ~330


def test_large_csv_is_checked_in_bounded_memory(tmp_path) -> None:
    d = tmp_path / "big"
    write_big_dataset(d, 100, last_row="2001-01-01,S5,edibles,inf,1")
    before = tree_hash(d)
    rc, peak, err = peak_validate(d)
    assert rc == 2 and "sales.csv, column 'revenue'" in err and "not a finite number" in err, err
    assert peak < CAP_MB, f"peak RSS {peak:.0f} MB"
    assert tree_hash(d) == before


def test_large_sparse_file_is_refused_in_bounded_memory(tmp_path) -> None:
    d = write_dataset(tmp_path / "sparse")
    with (d / "sales.csv").open("r+b") as f:
        f.truncate(250 << 20)
    rc, peak, err = peak_validate(d)
    assert rc == 2 and "sales.csv" in err and "NUL byte" in err
    assert peak < 300, f"peak RSS {peak:.0f} MB"


def test_a_bad_amount_does_not_hide_a_duplicate_key(world, capsys) -> None:
    d, _ = world
    put(d, "sales.csv", csv_of("sales", TABLES["sales"][1].replace("100.5", "inf")))
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 2 and "2 problems" in err and "not a finite number" in err and "duplicate key" in err, err


def test_many_duplicate_keys_are_counted_from_hashes(world, capsys, monkeypatch) -> None:
    from cannabis_market.data import validate

    monkeypatch.setattr(validate, "CONFIRM_LIMIT", 1)  # beyond it, counts come from the sorted hashes
    d, _ = world
    put(d, "sales.csv", csv_of("sales", *TABLES["sales"][1:4]))
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 2 and "duplicate key" in err and "(6 rows)" in err, err


def test_odd_folder_names_are_paths_not_patterns(tmp_path, capsys) -> None:
    d = write_dataset(tmp_path / "d[1]*?{a,b}")
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 0, err


def test_ten_thousand_columns_are_listed_briefly(world, capsys) -> None:
    d, _ = world
    put(d, "sales.csv", ",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" * 10_000) + "\n")
    rc, err = cli(["data", "validate", str(d)], capsys)
    assert rc == 2 and "sales.csv, column 'date': required column is missing" in err
    assert "c11, ..." in err and len(err) < MAX_MESSAGE


def test_categorical_parquet_columns_read_as_text(tmp_path) -> None:
    # in a fresh process: a Categorical made here would change the global category codes that other
    # tests' code may (wrongly) rely on, e.g. analysis.panel's cluster codes
    d = write_dataset(tmp_path / "cat")
    parquet("sales", category=pl.col("category").cast(pl.Categorical))(d)
    rc, _, err = peak_validate(d)
    assert rc == 0, err
