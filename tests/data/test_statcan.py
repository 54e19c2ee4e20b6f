"""StatCan reader: a hand-made fixture in the download layout, malformed variants, and the real file."""

from __future__ import annotations

import polars as pl
import pytest

from cannabis_market.cli import main
from cannabis_market.data.loader import load_dataset
from cannabis_market.data.statcan import import_statcan, read_statcan
from cannabis_market.errors import InputError

from conftest import real_file

HEADER = (
    "REF_DATE,GEO,DGUID,North American Industry Classification System (NAICS),Sales,Adjustments,UOM,"
    "SCALAR_FACTOR,VECTOR,VALUE,STATUS,SYMBOL"
)


def row(date, geo, value, adj="Unadjusted", status="", scalar="thousands"):
    g = f'"{geo}"' if "," in geo else geo
    return f"{date},{g},X,Cannabis retailers [459993],Total retail sales,{adj},Dollars,{scalar},v1,{value},{status},"


def fixture_lines():
    return [
        HEADER,
        row("2018-10", "Ontario", "11454"),
        row("2018-10", "Toronto, Ontario", "11454"),  # the quirk: Toronto = Ontario
        row("2018-10", "Yukon", "", status="x"),  # suppressed
        row("2018-10", "Canada", "42084"),
        row("2018-10", "Canada", "42084", adj="Seasonally adjusted"),
        row("2019-04", "Ontario", "19677"),
        row("2019-04", "Toronto, Ontario", "9000"),  # real Toronto value after the quirk window
        row("2022-08", "Ontario", "153877", status="A"),
    ]


@pytest.fixture
def statcan_csv(tmp_path):
    f = tmp_path / "statcan.csv"
    f.write_text("\n".join(fixture_lines()) + "\n")
    return f


def test_fixture_converts_with_scalar_suppression_and_quirk(statcan_csv):
    series, notes = read_statcan(statcan_csv)
    assert notes["suppressed_dropped"] == 1 and notes["toronto_quirk_rows_dropped"] == 1
    on = series.filter((pl.col("geo") == "Ontario") & (pl.col("date") == pl.date(2022, 8, 1)))
    assert on["value"].item() == 153_877_000.0
    assert series.filter(pl.col("geo") == "Toronto, Ontario").height == 1  # 2019-04 kept
    assert "Yukon" not in series["geo"].to_list()
    assert set(series["metric"]) == {"sales"}


def test_both_adjustments_get_distinct_metrics(statcan_csv):
    series, _ = read_statcan(statcan_csv, adjustment="both")
    assert set(series.filter(pl.col("geo") == "Canada")["metric"]) == {"sales", "sales_sa"}


def test_import_writes_a_valid_series_dataset(statcan_csv, tmp_path):
    out, info = import_statcan(statcan_csv, tmp_path / "ds")
    ds = load_dataset(out)
    assert ds.manifest["source"] == "statcan" and ds.frequency == "monthly"
    assert ds.series.collect().height == 5 and "1 suppressed" in info


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda ls: [ls[0].replace("VALUE", "VAL")] + ls[1:], "VALUE missing"),
        (lambda ls: ls[:1] + [row("2022/2023", "Ontario", "1")], "not monthly dates"),
        (lambda ls: ls[:1] + [row("2022-01", "Ontario", "1", scalar="dozens")], "unknown scalar factor"),
        (lambda ls: ls[:1] + [row("2022-01", "Ontario", "lots")], "not numbers"),
        (
            lambda ls: ls[:1] + [row("2022-01", "Ontario", "1"), row("2022-01", "Ontario", "2")],
            "filter the download",
        ),
        (lambda ls: ls[:1], "no data rows"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path, mutate, message):
    f = tmp_path / "bad.csv"
    f.write_text("\n".join(mutate(fixture_lines())) + "\n")
    with pytest.raises(InputError, match=message):
        read_statcan(f)


def test_cli_import_bad_file_exit_2_writes_nothing(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    f.write_text("a,b\n1,2\n")
    assert main(["data", "import-statcan", str(f), "--out", str(tmp_path / "out")]) == 2
    assert "REF_DATE" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_cli_refuses_to_overwrite_foreign_folder(statcan_csv, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["data", "import-statcan", str(statcan_csv), "--out", str(tmp_path / "busy")]) == 2
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


@pytest.mark.realdata
def test_real_statcan_file():
    f = real_file("statcan_20100056_cannabis_retailers_monthly_by_province.csv")
    series, notes = read_statcan(f)
    on = series.filter(pl.col("geo") == "Ontario").sort("date")
    jul = on.filter(pl.col("date") == pl.date(2022, 7, 1))["value"].item()
    aug = on.filter(pl.col("date") == pl.date(2022, 8, 1))["value"].item()
    assert jul == 157_315_000 and aug == 153_877_000
    assert aug / jul - 1 == pytest.approx(-0.0219, abs=5e-4)
    assert on.height == 83 and str(on["date"].min()) == "2018-10-01" and str(on["date"].max()) == "2025-08-01"
    assert notes["suppressed_dropped"] > 0 and notes["toronto_quirk_rows_dropped"] == 6
