"""POS import at scale: the streamed aggregation against a hand computation, split exports, Dask, memory."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest
import yaml

from cannabis_market.data.adapters.pos import import_pos, read_pos
from cannabis_market.data.loader import load_dataset
from cannabis_market.errors import InputError

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "data" / "examples" / "pos_mapping.example.yml"
_spec = importlib.util.spec_from_file_location("pos_synth", REPO / "benchmarks" / "pos_synth.py")
pos_synth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pos_synth)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A small export in the example layout: 6 stores, 3 months, 30,000 lines (refunds, mixed case)."""
    return pos_synth.write_pos_export(
        tmp_path_factory.mktemp("pos") / "export.csv", 30_000, stores=6, days=90, blocks=4
    )


def _hand_totals(path: Path) -> dict[tuple[dt.date, str, str], tuple[float, float | None, int]]:
    """(date, store, category) -> (revenue without tax, grams, lines), read with the csv module."""
    m = yaml.safe_load(MAPPING.read_text())
    cats = {k.lower(): v for k, v in m["categories"].items()}
    out: dict = defaultdict(lambda: [0.0, None, 0])
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            day = dt.datetime.strptime(row["Sale Date"], "%d/%m/%Y").date()
            cat = cats.get(row["Product Type"].strip().lower(), "other")
            acc = out[(day, row["Store #"], cat)]
            acc[0] += float(row["Net Sales"].replace(".", "").replace(",", ".")) / 1.13
            if row["Grams Sold"]:
                acc[1] = (acc[1] or 0.0) + float(row["Grams Sold"].replace(",", "."))
            acc[2] += 1
    return {k: tuple(v) for k, v in out.items()}


def test_streamed_totals_match_a_hand_computation(export):
    tables, notes = read_pos(export, MAPPING)
    want = _hand_totals(export)
    sales = tables["sales"]
    assert sales.height == len(want) and notes["rows_read"] == 30_000
    assert notes["keys_summed_from_several_rows"] == sum(1 for v in want.values() if v[2] > 1)
    for r in sales.iter_rows(named=True):
        rev, grams, _ = want[(r["date"], r["store_id"], r["category"])]
        assert r["revenue"] == pytest.approx(rev, rel=1e-9, abs=1e-6)
        assert (r["grams"] is None) == (grams is None)
        if grams is not None:
            assert r["grams"] == pytest.approx(grams, rel=1e-9, abs=1e-6)
    assert notes["default_category_rows"] == sum(v[2] for k, v in want.items() if k[2] == "other")
    stores = tables["stores"]
    assert stores.height == 6 and set(stores["municipality"]) <= set(pos_synth.CITIES)
    first = {s: min(k[0] for k in want if k[1] == s) for s in stores["store_id"]}
    assert dict(zip(stores["store_id"], stores["opened_on"], strict=True)) == first


def test_split_export_imports_as_one(export, tmp_path):
    split = tmp_path / "split"
    files = pos_synth.split_by_month(export, split)
    assert len(files) == 3
    one, notes1 = read_pos(export, MAPPING)
    for source in (str(split / "pos_*.csv"), split, [str(f) for f in reversed(files)]):
        many, notes = read_pos(source, MAPPING)
        assert many["sales"].equals(one["sales"]) and many["stores"].equals(one["stores"])
        assert notes["rows_read"] == notes1["rows_read"] and len(notes["files"]) == 3
    out, info = import_pos(split, MAPPING, tmp_path / "ds")
    assert load_dataset(out).sales.select(pl.len()).collect().item() == one["sales"].height
    assert "30,000 source rows" in info


def test_split_export_errors_name_the_file(export, tmp_path):
    split = tmp_path / "split"
    files = pos_synth.split_by_month(export, split)
    text = files[1].read_text().splitlines()
    parts = text[4].split(";")
    parts[5] = "12,3x"
    text[4] = ";".join(parts)
    files[1].write_text("\n".join(text) + "\n")
    with pytest.raises(InputError) as e:
        read_pos(split, MAPPING)
    assert f"{files[1].name}, column 'Net Sales' (mapped to revenue): 1 value not a number" in str(e.value)
    assert "row 4: '12,3x'" in str(e.value)
    with pytest.raises(InputError, match="no file matches"):
        read_pos(str(split / "nothing_*.csv"), MAPPING)


def test_dask_workers_aggregate_each_file(export, tmp_path):
    distributed = pytest.importorskip("distributed")
    split = tmp_path / "split"
    pos_synth.split_by_month(export, split)
    local, _ = read_pos(split, MAPPING)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        remote, notes = read_pos(split, MAPPING, scheduler=cluster.scheduler_address)
    assert remote["sales"].equals(local["sales"]) and remote["stores"].equals(local["stores"])
    assert notes["rows_read"] == 30_000


def test_timestamped_dates_and_plain_numbers_with_currency(tmp_path):
    """A per-row timestamp is grouped by day; '$1 234.50' and '(5.00)' take the full conversion."""
    lines = [
        "When,Shop,Gross,Kind",
        "2022-03-20 10:15,A,$1 234.50,Flower",
        "2022-03-20 18:00,A,(5.00),flower",
        "2022-03-21 09:00,A,100,Flower",
    ]
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    mapping = {
        "currency": "CAD",
        "date_format": "%Y-%m-%d %H:%M",
        "columns": {"date": "When", "store": "Shop", "revenue": "Gross", "category": "Kind"},
        "categories": {"Flower": "dried_flower"},
    }
    (tmp_path / "m.yml").write_text(yaml.safe_dump(mapping))
    tables, _ = read_pos(tmp_path / "e.csv", tmp_path / "m.yml")
    assert tables["sales"]["revenue"].to_list() == [1229.5, 100.0]
    (tmp_path / "e.csv").write_text("\n".join([*lines, "2022-13-01 09:00,A,1,Flower"]) + "\n")
    with pytest.raises(InputError, match=r"1 value doesn't match format %Y-%m-%d %H:%M, e.g. row 4"):
        read_pos(tmp_path / "e.csv", tmp_path / "m.yml")


def test_memory_stays_flat_on_a_100mb_export(tmp_path):
    """~100 MB (1.7M lines) imports in a child process whose peak RSS stays far below the file's size
    in memory (the eager reader peaked near 9x the file size)."""
    export = pos_synth.write_pos_export(tmp_path / "big.csv", 1_700_000, stores=40, days=365)
    size_mb = export.stat().st_size / 2**20
    assert size_mb > 90
    code = textwrap.dedent(
        f"""
        import resource, sys
        from cannabis_market.data.adapters.pos import import_pos
        import_pos({str(export)!r}, {str(MAPPING)!r}, {str(tmp_path / "ds")!r})
        # VmHWM of this process's own memory: ru_maxrss would start from the pytest parent's peak
        # (Linux keeps the high-water mark across fork + exec), whatever the import itself used
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
        kb = float(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(kb / 1024)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = float(proc.stdout.split()[-1])
    assert peak < 2.5 * size_mb + 150, f"peak {peak:.0f} MB for a {size_mb:.0f} MB export"


def test_other_encodings_are_transcoded_and_bad_bytes_located(tmp_path):
    lines = "Sale Date;Store #;City;Banner;Product Type;Net Sales;Grams Sold\n01/01/2022;S1;Montréal;B;Flower;11,30;1\n"
    (tmp_path / "e.csv").write_bytes(lines.encode("latin-1"))
    mapping = yaml.safe_load(MAPPING.read_text()) | {"encoding": "latin-1"}
    (tmp_path / "m.yml").write_text(yaml.safe_dump(mapping))
    tables, _ = read_pos(tmp_path / "e.csv", tmp_path / "m.yml")
    assert tables["stores"]["municipality"].to_list() == ["Montréal"]
    assert tables["sales"]["revenue"].to_list() == [10.0]
    at = lines.encode("latin-1").index("é".encode("latin-1"))
    with pytest.raises(InputError, match=rf"e.csv: not valid utf-8 text at byte {at}; set encoding"):
        read_pos(tmp_path / "e.csv", MAPPING)
