"""The public-data snapshot in data/public: intact, documented, and importing to the published figures."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import shutil
import subprocess

import polars as pl
import pytest

from cannabis_market.data.adapters.statcan_fetch import TABLES, _filter_naics
from cannabis_market.data.statcan import read_statcan

from conftest import REPO, real_data_dir

PUBLIC = REPO / "data" / "public"
STATCAN = "statcan_20100056_cannabis_retailers_monthly_by_province.csv"


def _listed() -> dict[str, str]:
    """file name -> sha256 from the checksum table of PROVENANCE.md."""
    text = (PUBLIC / "PROVENANCE.md").read_text()
    return dict(re.findall(r"^\| `([^`]+)` \| [\d,]+ \| `([0-9a-f]{64})` \|$", text, flags=re.M))


def test_every_file_is_listed_with_its_checksum():
    listed = _listed()
    on_disk = {p.name for p in PUBLIC.iterdir() if p.name != "PROVENANCE.md"}
    assert on_disk == set(listed), "data/public and the PROVENANCE.md checksum table disagree"
    for name, digest in listed.items():
        assert hashlib.sha256((PUBLIC / name).read_bytes()).hexdigest() == digest, name
    assert sum((PUBLIC / n).stat().st_size for n in listed) < 2.5e6


def test_tests_read_real_files_from_the_snapshot_by_default(monkeypatch):
    monkeypatch.delenv("CM_REAL_DATA", raising=False)
    assert real_data_dir() == PUBLIC


def test_statcan_snapshot_is_exactly_the_rows_the_fetch_filter_keeps(tmp_path):
    kept = pl.read_csv(_filter_naics(PUBLIC / STATCAN, TABLES["20100056"], tmp_path), infer_schema=False)
    full = pl.read_csv(PUBLIC / STATCAN, infer_schema=False)
    assert kept.height == full.height == 1974
    assert kept.equals(full)


def test_statcan_snapshot_imports_to_the_published_ontario_figures():
    series, notes = read_statcan(PUBLIC / STATCAN)
    on = series.filter(pl.col("geo") == "Ontario", pl.col("metric") == "sales")
    got = dict(zip(on["date"], on["value"], strict=True))
    # published values, CAD thousands (StatCan 20-10-0056-01, Oct 2025 vintage)
    assert got[dt.date(2022, 7, 1)] == 157_315_000
    assert got[dt.date(2022, 8, 1)] == 153_877_000
    assert on["date"].min() == dt.date(2018, 10, 1) and on["date"].max() == dt.date(2025, 8, 1)
    assert notes["suppressed_dropped"] > 0


def test_snapshot_matches_the_full_shared_files_where_present(tmp_path):
    shared = REPO.parent / "shared" / "data" / "real"
    if not (shared / STATCAN).is_file():
        pytest.skip(f"{shared} is absent; the checksums above pin the snapshot instead")
    for name in _listed():
        assert (PUBLIC / name).read_bytes() == (shared / name).read_bytes(), name
    a = read_statcan(PUBLIC / STATCAN, adjustment="both")[0]
    b = read_statcan(shared / STATCAN, adjustment="both")[0]
    assert a.sort("date", "geo", "metric").equals(b.sort("date", "geo", "metric"))


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_real_data_imports_the_snapshot(tmp_path):
    """`make real-data` reads data/public by default (dry run: the commands make would execute)."""
    out = subprocess.run(
        ["make", "-n", "-C", str(REPO), f"REAL_OUT={tmp_path}", "PYTHON=python3", "real-data"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    imports = [line for line in out.splitlines() if "cannabis-market data import-" in line]
    assert len(imports) == 3
    for line in imports:
        src = line.split()[3]
        assert src.startswith("data/public/") and (REPO / src).is_file(), line
