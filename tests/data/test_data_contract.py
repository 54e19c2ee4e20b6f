"""Every rule of the data contract has a malformed-input test; valid data loads with contract types."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cannabis_market.cli import main
from cannabis_market.data.loader import load_dataset
from cannabis_market.errors import DataValidationError, InputError

from conftest import MANIFEST, TABLES, write_dataset


def problems_of(folder: Path) -> list:
    with pytest.raises(DataValidationError) as ei:
        load_dataset(folder)
    return ei.value.problems


def one(folder: Path, file: str, column: str | None, rule_part: str):
    """Assert a problem naming this file, column and rule exists; return it."""
    probs = problems_of(folder)
    hits = [p for p in probs if p.file == file and p.column == column and rule_part in p.rule]
    assert hits, f"no problem ({file}, {column}, ~{rule_part!r}) in {[str(p) for p in probs]}"
    return hits[0]


def test_valid_tiny_dataset_loads_with_contract_types(tiny):
    ds = load_dataset(tiny)
    assert ds.frequency == "daily"
    assert ds.sales.collect_schema() == pl.Schema(
        {
            "date": pl.Date,
            "store_id": pl.String,
            "category": pl.String,
            "revenue": pl.Float64,
            "grams": pl.Float64,
        }
    )
    stores = ds.stores.collect()
    assert stores.schema["closed_on"] == pl.Date
    assert stores.filter(pl.col("store_id") == "S1")["closed_on"].item() is None
    assert ds.population.collect_schema()["population"] == pl.Int64
    assert ds.sales.collect()["revenue"].sum() == pytest.approx(325.5)


def test_parquet_tables_load_like_csv(tiny, tmp_path):
    ds = load_dataset(tiny)
    pq = tmp_path / "pq"
    write_dataset(pq, sales=None)
    ds.sales.collect().write_parquet(pq / "sales.parquet")
    assert load_dataset(pq).sales.collect().equals(ds.sales.collect())


def test_grams_column_is_optional(tmp_path):
    lines = [r.rsplit(",", 1)[0] for r in TABLES["sales"]]
    ds = load_dataset(write_dataset(tmp_path / "d", sales=lines))
    assert not ds.has_grams


def test_series_only_dataset_is_valid(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "manifest.yml").write_text(
        yaml.safe_dump({**MANIFEST, "frequency": "monthly", "source": "statcan"})
    )
    (folder / "series.csv").write_text(
        "date,geo,metric,value\n2022-07-01,Ontario,sales,157315000\n2022-08-01,Ontario,sales,153877000\n"
    )
    ds = load_dataset(folder)
    assert ds.sales is None and ds.series.collect().height == 2


# ---------------------------------------------------------------- manifest rules


def test_missing_manifest(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / "manifest.yml").unlink()
    one(folder, "manifest.yml", None, "required file is missing")


def test_manifest_not_yaml(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / "manifest.yml").write_text("name: [unclosed\n")
    one(folder, "manifest.yml", None, "not valid YAML")


@pytest.mark.parametrize("field", ["name", "description", "source", "frequency", "currency"])
def test_manifest_required_fields(tmp_path, field):
    m = {k: v for k, v in MANIFEST.items() if k != field}
    one(write_dataset(tmp_path / "d", manifest=m), "manifest.yml", field, "required manifest field")


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("source", "scraped", "must be one of"),
        ("frequency", "weekly", "must be one of"),
        ("currency", "dollars", "ISO"),
    ],
)
def test_manifest_allowed_values(tmp_path, field, value, rule):
    one(write_dataset(tmp_path / "d", manifest={**MANIFEST, field: value}), "manifest.yml", field, rule)


def test_synthetic_needs_truth(tmp_path):
    one(
        write_dataset(tmp_path / "d", manifest={**MANIFEST, "source": "synthetic"}),
        "manifest.yml",
        "truth",
        "truth",
    )


# ---------------------------------------------------------------- files and structure


def test_missing_required_column(tmp_path):
    lines = ["date,store_id,revenue"] + [
        ",".join(r.split(",")[i] for i in (0, 1, 3)) for r in TABLES["sales"][1:]
    ]
    p = one(write_dataset(tmp_path / "d", sales=lines), "sales.csv", "category", "required column is missing")
    assert "columns found: date, store_id, revenue" in p.rule


def test_empty_table(tmp_path):
    one(write_dataset(tmp_path / "d", events=[TABLES["events"][0]]), "events.csv", None, "table is empty")


def test_empty_file(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / "population.csv").write_text("")
    one(folder, "population.csv", None, "file is empty")


def test_wrong_encoding(tmp_path):
    folder = write_dataset(tmp_path / "d")
    (folder / "stores.csv").write_bytes(
        "\n".join(TABLES["stores"] + ["S4,Qu\u00e9bec,East,2022-01-01,,"]).encode("latin-1")
    )
    one(folder, "stores.csv", None, "not valid UTF-8")


def test_truncated_parquet(tiny):
    df = load_dataset(tiny).sales.collect()
    (tiny / "sales.csv").unlink()
    df.write_parquet(tiny / "sales.parquet")
    data = (tiny / "sales.parquet").read_bytes()
    (tiny / "sales.parquet").write_bytes(data[: len(data) // 2])
    one(tiny, "sales.parquet", None, "unreadable or truncated Parquet")


def test_table_stored_twice(tiny):
    load_dataset(tiny).stores.collect().write_parquet(tiny / "stores.parquet")
    one(tiny, "stores.parquet", None, "stored twice")


def test_sales_without_stores(tmp_path):
    one(write_dataset(tmp_path / "d", stores=None, inventory=None), "stores", None, "need a stores table")


def test_no_sales_and_no_series(tmp_path):
    folder = write_dataset(tmp_path / "d", sales=None, inventory=None)
    assert any("needs a sales table" in p.rule for p in problems_of(folder))


# ---------------------------------------------------------------- types and values


def test_unparseable_date(tmp_path):
    lines = TABLES["sales"] + ["2022/01/05,S1,edibles,5,1"]
    p = one(write_dataset(tmp_path / "d", sales=lines), "sales.csv", "date", "not a date")
    assert p.n_rows == 1 and "2022/01/05" in p.examples[0] and "row 7" in p.examples[0]


def test_non_numeric_revenue(tmp_path):
    lines = TABLES["sales"] + ["2022-01-05,S1,edibles,twelve,1"]
    one(write_dataset(tmp_path / "d", sales=lines), "sales.csv", "revenue", "not a number")


def test_non_integer_population(tmp_path):
    lines = TABLES["population"] + ["Ottawa,2023,1.5e6x"]
    one(write_dataset(tmp_path / "d", population=lines), "population.csv", "population", "not a number")


def test_unknown_category(tmp_path):
    lines = TABLES["sales"] + ["2022-01-05,S1,flower,5,1"]
    p = one(write_dataset(tmp_path / "d", sales=lines), "sales.csv", "category", "must be one of")
    assert "flower" in p.examples[0]


@pytest.mark.parametrize(("col", "i"), [("revenue", 3), ("grams", 4)])
def test_negative_amounts(tmp_path, col, i):
    row = ["2022-01-05", "S1", "edibles", "5", "1"]
    row[i] = "-2"
    one(write_dataset(tmp_path / "d", sales=TABLES["sales"] + [",".join(row)]), "sales.csv", col, ">= 0")


def test_missing_required_value(tmp_path):
    lines = TABLES["stores"] + [",Toronto,Toronto,2022-01-01,,"]
    one(write_dataset(tmp_path / "d", stores=lines), "stores.csv", "store_id", "missing value")


def test_population_must_be_positive(tmp_path):
    lines = TABLES["population"] + ["Ottawa,2023,0"]
    one(write_dataset(tmp_path / "d", population=lines), "population.csv", "population", "> 0")


def test_negative_days_of_cover(tmp_path):
    lines = TABLES["inventory"] + ["2022-01-02,S1,-1"]
    one(write_dataset(tmp_path / "d", inventory=lines), "inventory.csv", "days_of_cover", ">= 0")


def test_event_kind_and_scope(tmp_path):
    lines = TABLES["events"] + ["E2,hack,2022-01-02,2022-01-03,province,x"]
    folder = write_dataset(tmp_path / "d", events=lines)
    one(folder, "events.csv", "kind", "must be one of")
    one(folder, "events.csv", "scope", "region:<name>")


# ---------------------------------------------------------------- keys, references, date order, frequency


def test_duplicate_sales_key(tmp_path):
    p = one(
        write_dataset(tmp_path / "d", sales=TABLES["sales"] + [TABLES["sales"][1]]),
        "sales.csv",
        "date, store_id, category",
        "duplicate key",
    )
    assert p.n_rows == 2


def test_duplicate_store_id(tmp_path):
    one(
        write_dataset(tmp_path / "d", stores=TABLES["stores"] + [TABLES["stores"][1]]),
        "stores.csv",
        "store_id",
        "duplicate key",
    )


def test_unknown_store_in_sales(tmp_path):
    p = one(
        write_dataset(tmp_path / "d", sales=TABLES["sales"] + ["2022-01-02,S99,edibles,1,1"]),
        "sales.csv",
        "store_id",
        "not found in stores",
    )
    assert "'S99'" in p.examples


def test_unknown_store_in_inventory(tmp_path):
    one(
        write_dataset(tmp_path / "d", inventory=TABLES["inventory"] + ["2022-01-02,S42,3"]),
        "inventory.csv",
        "store_id",
        "not found in stores",
    )


def test_sales_outside_open_dates(tmp_path):
    # S2 closed on 2022-01-04 (last day open); S3 opened 2022-01-02
    lines = TABLES["sales"] + ["2022-01-05,S2,edibles,1,1", "2022-01-01,S3,vapes,1,1"]
    p = one(write_dataset(tmp_path / "d", sales=lines), "sales.csv", "date", "outside the store's open dates")
    assert p.n_rows == 2


def test_closed_before_opened(tmp_path):
    lines = TABLES["stores"] + ["S4,Ottawa,East,2022-03-01,2022-02-01,"]
    one(write_dataset(tmp_path / "d", stores=lines), "stores.csv", "closed_on", "before opened_on")


def test_event_end_before_start(tmp_path):
    lines = TABLES["events"] + ["E2,closure,2022-01-05,2022-01-01,all,x"]
    one(write_dataset(tmp_path / "d", events=lines), "events.csv", "end", "before start")


def test_monthly_dates_must_be_month_starts(tmp_path):
    one(
        write_dataset(tmp_path / "d", manifest={**MANIFEST, "frequency": "monthly"}),
        "sales.csv",
        "date",
        "month starts",
    )


def test_daily_manifest_with_monthly_dates(tmp_path):
    lines = ["date,store_id,category,revenue"] + [f"2022-0{m}-01,S1,edibles,5" for m in (2, 3, 4)]
    one(
        write_dataset(tmp_path / "d", sales=lines, inventory=None),
        "sales.csv",
        "date",
        "set frequency: monthly",
    )


def test_all_problems_collected_not_just_first(tmp_path):
    lines = TABLES["sales"] + [
        "2022-01-05,S1,flower,-5,1",
        "2022-01-02,S99,edibles,1,1",
        "bad,S1,edibles,1,1",
    ]
    probs = problems_of(write_dataset(tmp_path / "d", sales=lines, manifest={**MANIFEST, "currency": "cad"}))
    assert {p.column for p in probs} >= {"category", "revenue", "store_id", "date", "currency"}


# ---------------------------------------------------------------- CLI: exit status 2, message, nothing written


def _snapshot(folder: Path) -> dict:
    return {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.iterdir())}


def test_cli_validate_bad_dataset_exit_2_and_nothing_written(tmp_path, capsys):
    folder = write_dataset(tmp_path / "d", sales=TABLES["sales"] + ["2022-01-05,S1,flower,-5,1"])
    before = _snapshot(folder)
    assert main(["data", "validate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "sales.csv, column 'category'" in err and "Traceback" not in err
    assert _snapshot(folder) == before


def test_cli_validate_good_dataset(tiny, capsys):
    assert main(["data", "validate", str(tiny)]) == 0
    assert "valid" in capsys.readouterr().out


def test_console_script_no_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cannabis_market.cli", "data", "validate", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------- property: malformed tables never crash

cell = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=',"\n\r'), max_size=12),
    st.sampled_from(["", "2022-01-01", "2022-02-30", "-1", "1e308", "nan", "S1", "dried_flower", "NULL"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=st.sampled_from(["stores", "sales", "population", "events", "inventory"]),
    rows=st.lists(st.lists(cell, min_size=0, max_size=7), min_size=0, max_size=6),
    drop_header=st.booleans(),
)
def test_random_malformed_tables_only_raise_validation_errors(tmp_path_factory, table, rows, drop_header):
    folder = tmp_path_factory.mktemp("h")
    header = [] if drop_header else [TABLES[table][0]]
    write_dataset(folder, **{table: header + [",".join(r) for r in rows]})
    try:
        load_dataset(folder)
    except DataValidationError as e:
        assert e.problems and all(p.file and p.rule for p in e.problems)


def test_cached_load_is_lazy_and_identical(tiny):
    first = load_dataset(tiny)
    again = load_dataset(tiny)  # served from the validation cache, scanned lazily
    for name in ("stores", "sales", "population", "events", "inventory"):
        assert getattr(again, name).collect().equals(getattr(first, name).collect()), name


def test_changed_file_is_validated_again(tiny):
    load_dataset(tiny)
    with (tiny / "sales.csv").open("a") as f:
        f.write("2022-01-09,S1,edibles,-4,1\n")
    one(tiny, "sales.csv", "revenue", ">= 0")


def test_subset_by_region_and_window(tiny):
    ds = load_dataset(tiny)
    east = ds.subset("East", "2022-01-02", "2022-01-03")
    assert east.stores.collect()["store_id"].to_list() == ["S3"]
    assert east.sales.collect()["revenue"].sum() == 15.0
    assert ds.subset().sales.collect().height == ds.sales.collect().height
    with pytest.raises(InputError, match="region 'Mars'"):
        ds.subset("Mars")
    with pytest.raises(InputError, match="before start"):
        ds.subset("all", "2022-02-01", "2022-01-01")


def test_series_of_picks_a_geography_and_window(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "manifest.yml").write_text(
        yaml.safe_dump({**MANIFEST, "frequency": "monthly", "region": "Ontario"})
    )
    (folder / "series.csv").write_text(
        "date,geo,metric,value\n2022-07-01,Ontario,sales,1\n2022-08-01,Ontario,sales,2\n2022-08-01,Quebec,sales,3\n"
    )
    ds = load_dataset(folder)
    geo, rows = ds.series_of("all", start="2022-08-01")
    assert geo == "Ontario" and rows["value"].to_list() == [2.0]
    assert ds.series_of("Quebec")[1]["value"].to_list() == [3.0]
    with pytest.raises(InputError, match="Ontario; Quebec"):
        ds.series_of("Mars")


# ---------------------------------------------------------------- typed cache: the dataset read once per build


def _typed_entries() -> list[Path]:
    from cannabis_market.data.typed_cache import cache_root

    root = cache_root()
    return sorted(p for p in root.iterdir() if (p / ".complete").is_file()) if root.is_dir() else []


def test_typed_cache_serves_identical_tables_from_arrow(tiny):
    plain = load_dataset(tiny, typed_cache=False)
    first = load_dataset(tiny)  # writes the typed cache
    again = load_dataset(tiny)  # maps it
    assert ".arrow" in again.sales.explain() and ".csv" not in again.sales.explain()
    for name in ("stores", "sales", "population", "events", "inventory"):
        want = getattr(plain, name).collect()
        assert getattr(first, name).collect().equals(want), name
        assert getattr(again, name).collect().equals(want), name
        assert getattr(again, name).collect_schema() == want.schema


def test_typed_cache_follows_content_not_stale_rows(tiny):
    load_dataset(tiny)
    with (tiny / "sales.csv").open("a") as f:
        f.write("2022-01-04,S1,edibles,1000,1\n")
    assert load_dataset(tiny).sales.collect()["revenue"].sum() == pytest.approx(1325.5)


def test_typed_cache_can_be_turned_off_and_is_pruned(tmp_path, monkeypatch):
    from cannabis_market.data import typed_cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CM_TYPED_CACHE", "0")
    load_dataset(write_dataset(tmp_path / "off"))
    assert _typed_entries() == []
    monkeypatch.delenv("CM_TYPED_CACHE")
    monkeypatch.setattr(typed_cache, "KEEP", 2)
    loaded = []
    for i in range(4):  # four different contents, all in use (a build over four datasets)
        lines = TABLES["population"] + [f"Kingston,{2000 + i},5"]
        loaded.append(load_dataset(write_dataset(tmp_path / f"d{i}", population=lines)))
    assert len(_typed_entries()) == 4  # nothing in use is evicted ...
    assert all(ds.sales.collect().height > 0 for ds in loaded)  # ... so every dataset still reads
    for entry in _typed_entries():  # an hour later, idle entries beyond KEEP go
        old = (entry / ".complete").stat().st_mtime - 2 * typed_cache.IDLE_S
        os.utime(entry / ".complete", (old, old))
    load_dataset(write_dataset(tmp_path / "d4", population=TABLES["population"] + ["Kingston,2010,5"]))
    assert len(_typed_entries()) == 2
