"""Real-data importers: hand-made fixtures in each source layout, malformed variants, the real files.

Fixtures are written in tmp_path (xlsx via openpyxl); the real files are read from ../shared/data/real
and the tests that need them are skipped when they are absent. The network is never touched: the StatCan
download is exercised with a fake `urllib.request.urlopen`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import openpyxl
import polars as pl
import pytest
import yaml

from cannabis_market.cli import main
from cannabis_market.data.adapters import check_out
from cannabis_market.data.adapters.agco import (
    canonical_municipality,
    import_agco,
    read_agco,
    region_for,
    stores_per_municipality,
)
from cannabis_market.data.adapters.colorado import import_colorado, read_county_sales, read_med_stores
from cannabis_market.data.adapters.oregon import import_oregon, read_oregon
from cannabis_market.data.adapters.pos import import_pos, read_pos
from cannabis_market.data.adapters.statcan_fetch import fetch_statcan, read_statcan_fiscal
from cannabis_market.data.adapters.washington import import_washington, incomplete_months, read_washington
from cannabis_market.data.loader import load_dataset
from cannabis_market.errors import InputError

from conftest import REPO, real_file

D = dt.date


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


def value(series: pl.DataFrame, geo: str, metric: str, date: dt.date) -> float:
    return series.filter((pl.col("geo") == geo) & (pl.col("metric") == metric) & (pl.col("date") == date))[
        "value"
    ].item()


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def months(n: int, start: dt.date | None = None) -> list[dt.date]:
    out, d = [], start or D(2020, 1, 1)
    for _ in range(n):
        out.append(d)
        d = D(d.year + d.month // 12, d.month % 12 + 1, 1)
    return out


# ================================================================================ Washington


WA_HEAD = [
    ["Note: net sales self-reported by licensees.", None, None, None],
    ["Last Update: 1/1/2022"],
    [None],
    ["License Number", "Reporting Period", "Total Sales", "Excise Tax Due"],
]


def wa_rows() -> list[list]:
    """10 licences x 16 months (2020-01..2021-04); licence 7 stops after 2020-06; last month only 4 report."""
    rows = []
    ms = months(16)
    for i, m in enumerate(ms):
        for lic in range(1, 11):
            if lic == 7 and m > D(2020, 6, 1):
                continue
            if i == 15 and lic > 4:
                continue  # late reports: the final month looks incomplete
            cell = f"{lic:06d}" if (lic % 2 or i % 2) else lic  # mixed text / number cells
            rows.append([cell, m.strftime("%Y-%m"), 1000.0 * lic, 370.0 * lic])
    rows.append(["000003", "2020-02", 50.0, 18.5])  # a second report for the same month: summed
    rows.append(["000001", "2020-01", 1000.0, 370.0])  # exact duplicate: dropped
    rows.append(["000009", "2020-03", None, 0])  # missing sales: dropped and counted
    return rows


@pytest.fixture
def wa_xlsx(tmp_path):
    return write_xlsx(tmp_path / "wa.xlsx", {"Retailers": WA_HEAD + wa_rows()})


def test_washington_fixture_converts(wa_xlsx, tmp_path):
    tables, notes = read_washington(wa_xlsx)
    stores, sales = tables["stores"], tables["sales"]
    assert notes["licences"] == 10 and stores["store_id"].str.len_chars().unique().to_list() == [6]
    assert notes["incomplete_months_trimmed"] == ["2021-04-01"] and notes["last_month_kept"] == "2021-03-01"
    assert (
        notes["exact_duplicate_rows_dropped"] == 1 and notes["licence_months_summed_from_several_rows"] == 1
    )
    assert notes["rows_missing_sales_dropped"] == 1
    s7 = stores.filter(pl.col("store_id") == "000007").row(0, named=True)
    assert s7["opened_on"] == D(2020, 1, 1) and s7["closed_on"] == D(2020, 6, 30)
    assert stores.filter(pl.col("store_id") != "000007")["closed_on"].null_count() == 9
    assert set(stores["municipality"]) == {"unknown"} and set(stores["region"]) == {"WA"}
    feb3 = sales.filter((pl.col("store_id") == "000003") & (pl.col("date") == D(2020, 2, 1)))
    assert feb3["revenue"].item() == 3050.0 and set(sales["category"]) == {"other"}
    assert sales["date"].max() == D(2021, 3, 1)
    assert value(tables["series"], "Washington", "stores_reporting", D(2020, 6, 1)) == 10
    out, info = import_washington(wa_xlsx, tmp_path / "wa")
    ds = load_dataset(out)
    assert ds.manifest["currency"] == "USD" and ds.frequency == "monthly" and ds.manifest["source"] == "other"
    assert ds.manifest["import"]["kind"] == "washington" and "2021-04-01" in info


def test_washington_keep_incomplete_and_detection_rule(wa_xlsx):
    tables, notes = read_washington(wa_xlsx, keep_incomplete=True)
    assert tables["sales"]["date"].max() == D(2021, 4, 1) and notes["incomplete_months_flagged"] == [
        "2021-04-01"
    ]
    # licences missing from the kept final month only (late) stay open
    assert tables["stores"]["closed_on"].null_count() == 9
    counts = pl.DataFrame({"date": months(12), "n": [100] * 10 + [90, 100]})
    assert incomplete_months(counts) == []  # a dip followed by a normal month is not a reporting lag
    counts = pl.DataFrame({"date": months(12), "n": [100] * 9 + [100, 96, 80]})
    assert incomplete_months(counts) == ["2020-11-01", "2020-12-01"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda rows: rows[:3] + [["License Number", "Reporting Period", "Sales"]] + rows[4:],
            "'Total Sales' not found",
        ),
        (
            lambda rows: rows + [["000001", "2020-13", 5.0, 1.0]],
            "column 'Reporting Period': 1 value not a month",
        ),
        (
            lambda rows: rows + [["000001", "2020-05", "lots", 1.0]],
            "column 'Total Sales': 1 value not a number",
        ),
        (lambda rows: rows + [[None, "2020-05", 5.0, 1.0]], "without a licence number"),
    ],
)
def test_washington_malformed(tmp_path, edit, message):
    f = write_xlsx(tmp_path / "bad.xlsx", {"Retailers": edit(WA_HEAD + wa_rows())})
    with pytest.raises(InputError, match=message) as e:
        read_washington(f)
    assert "bad.xlsx" in str(e.value)
    if "not a month" in message:
        assert f"row {len(WA_HEAD) + len(wa_rows()) + 1}: '2020-13'" in str(e.value)  # the sheet's row number


def test_washington_wrong_sheet_and_not_a_workbook(tmp_path, wa_xlsx):
    with pytest.raises(InputError, match="sheet 'Retailers' not found .*sheets: Other"):
        read_washington(write_xlsx(tmp_path / "x.xlsx", {"Other": [["a"]]}))
    with pytest.raises(InputError, match="sheet 'Nope' not found"):
        read_washington(wa_xlsx, sheet="Nope")
    (tmp_path / "fake.xlsx").write_text("not a zip")
    with pytest.raises(InputError, match="not a readable Excel"):
        read_washington(tmp_path / "fake.xlsx")


def test_washington_real_file(tmp_path):
    f = real_file("washington_lcb_retail_sales_by_license_monthly_2017-2021.xlsx")
    out, _ = import_washington(f, tmp_path / "wa")
    ds = load_dataset(out)
    n = ds.manifest["import"]
    # 1,047 distinct (type, value) cells in SOURCES.md; one licence is often a number in some months and
    # zero-padded text in others, and '-1' supplementary reports fold into their base: 544 licences.
    assert (
        n["licences"] == 544 and n["first_month"] == "2017-11-01" and n["last_month_in_file"] == "2021-10-01"
    )
    assert n["incomplete_months_trimmed"] == ["2021-10-01"]
    per_month = ds.sales.group_by("date").agg(pl.len()).collect()["len"]
    assert per_month.min() >= 390 and per_month.max() <= 455
    assert (
        ds.sales.select(pl.len()).collect().item() == 20_335
    )  # 12 supplementary reports summed into their base


# ================================================================================ Oregon


OR_HEADER = [
    "date",
    "total_sales",
    "flower_sales",
    "concentrate_sales",
    "retail_flower_price",
    "retail_concentrate_price",
    "wholesale_flower_price",
    "wholesale_concentrate_price",
]


def or_rows() -> list[list]:
    return [
        OR_HEADER,
        [dt.datetime(2016, 10, 1), 2542720.76, None, 622976, 10.5, 40.17, 1784, None],
        [dt.datetime(2016, 11, 1), 4495401.2, None, 805569, 9.6, 40, 1791, None],
        [dt.datetime(2016, 12, 1), 7358744.91, 5219163, 1314744, 9.0, 42, 1600, 9072],
    ]


@pytest.fixture
def or_xlsx(tmp_path):
    return write_xlsx(
        tmp_path / "or.xlsx", {"data": or_rows(), "info": [["Data source", "https://example.org"]]}
    )


def test_oregon_fixture_converts(or_xlsx, tmp_path):
    series, notes = read_oregon(or_xlsx)
    assert value(series, "Oregon", "price_per_g", D(2016, 10, 1)) == 10.5
    assert value(series, "Oregon", "wholesale_flower_price_per_g", D(2016, 10, 1)) == pytest.approx(
        1784 / 453.592
    )
    assert value(series, "Oregon", "wholesale_concentrate_price_per_g", D(2016, 12, 1)) == pytest.approx(
        20.0, abs=1e-3
    )
    assert series.filter(pl.col("metric") == "flower_sales").height == 1  # empty cells are missing, not zero
    assert notes["empty_cells_skipped"] == {"flower_sales": 2, "wholesale_concentrate_price_per_g": 2}
    ds = load_dataset(import_oregon(or_xlsx, tmp_path / "or")[0])
    assert ds.manifest["currency"] == "USD" and ds.series.collect().height == series.height


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda rows: [[c if c != "retail_flower_price" else "price" for c in rows[0]]] + rows[1:],
            "'retail_flower_price' not found",
        ),
        (
            lambda rows: rows + [["soon", 1.0, 1, 1, 1.0, 1.0, 1, 1]],
            r"column 'date': 1 value not a date.*row 5: 'soon'",
        ),
        (
            lambda rows: rows + [[dt.datetime(2017, 1, 1), 1.0, 1, 1, "n/a", 1.0, 1, 1]],
            "column 'retail_flower_price': 1 value not a number",
        ),
        (lambda rows: rows + [[dt.datetime(2016, 12, 1), 1.0, 1, 1, 5.0, 1.0, 1, 1]], "repeat a month"),
        (lambda rows: rows + [[dt.datetime(2017, 1, 1), -1.0, 1, 1, 5.0, 1.0, 1, 1]], "negative"),
    ],
)
def test_oregon_malformed(tmp_path, edit, message):
    f = write_xlsx(tmp_path / "bad.xlsx", {"data": edit(or_rows())})
    with pytest.raises(InputError, match=message):
        read_oregon(f)


def test_oregon_wrong_sheet(or_xlsx):
    with pytest.raises(
        InputError, match="sheet 'info'.*'date', 'total_sales', 'retail_flower_price' not found"
    ):
        read_oregon(or_xlsx, sheet="info")


def test_oregon_real_file(tmp_path):
    f = real_file("oregon_olcc_monthly_sales_prices_2016-2021.xlsx")
    series = load_dataset(import_oregon(f, tmp_path / "or")[0]).series.collect()
    assert value(series, "Oregon", "price_per_g", D(2016, 10, 1)) == 10.50
    assert value(series, "Oregon", "price_per_g", D(2021, 3, 1)) == 5.56
    assert value(series, "Oregon", "price_per_g", D(2019, 4, 1)) == 4.17
    wholesale = series.filter(pl.col("metric") == "wholesale_flower_price_per_g")["value"]
    assert wholesale.min() * 453.592 == pytest.approx(649, abs=1) and wholesale.len() == 54


# ================================================================================ Colorado


CO_COUNTY = [
    "\ufeffMonth,Year,County,Med_Sales,Rec_Sales,Med_Blank_Code,Rec_Blank_Code,ID",
    '1,2020,Denver,"1,234,567","9,876,543",,,12020Denver',
    '1,2020,Park,,"388,731",NR,,12020Park',
    "1,2020,Rio Blanco,,,NL,NL,12020Rio Blanco",
    '1,2020,Sum of NR Counties,"28,219,107","111,660,730",,,12020Sum of NR Counties',
    '2,2020,Denver,"1,000,000","9,000,000",,,22020Denver',
    '4,2020,Denver,"1,000,000","9,100,000",,,42020Denver',
]


def co_files(tmp_path) -> dict[str, Path]:
    rev = write_xlsx(
        tmp_path / "rev.xlsx",
        {
            "CO Monthly Data": [
                ["date", "total_revenue", "retail_revenue", "medical_revenue", "total_plants"],
                [dt.datetime(2014, 1, 1), 46563933, 14022213, 32541720, "=F2+G2"],
                [dt.datetime(2014, 2, 1), 45987045, 14248473, 31738572, None],
            ],
            "Data Sources": [["name", "source"]],
        },
    )
    stores = write_xlsx(
        tmp_path / "med.xlsx",
        {
            "Analysis": [
                [
                    "Observation",
                    "Date",
                    "Retail-Marijuana-Stores",
                    "Retail-Store-Entries",
                    "Retail-Store-Exits",
                    "Medical-Marijuana-Centers",
                    "Total-Retail-Marijuana-Revenue",
                ],
                [1, dt.datetime(2014, 1, 1), 147, None, None, 494, 14368620.69],
                [2, dt.datetime(2014, 2, 1), 160, 14, 1, 497, 15112172.41],
                [None, None, None, None, None, None, None],
            ]
        },
    )
    county = tmp_path / "county.csv"
    county.write_text("\n".join(CO_COUNTY) + "\n", encoding="utf-8")
    return {"monthly_revenue": rev, "stores": stores, "county": county}


def test_colorado_fixture_converts(tmp_path):
    files = co_files(tmp_path)
    out, info = import_colorado(tmp_path / "co", **files)
    ds = load_dataset(out)
    s = ds.series.collect()
    assert value(s, "Colorado", "sales", D(2014, 1, 1)) == 46563933
    assert value(s, "Colorado", "stores", D(2014, 2, 1)) == 160
    assert value(s, "Denver County, CO", "retail_sales", D(2020, 1, 1)) == 9_876_543
    assert value(s, "Park County, CO", "retail_sales", D(2020, 1, 1)) == 388_731
    assert s.filter(pl.col("geo") == "Park County, CO", pl.col("metric") == "medical_sales").height == 0  # NR
    assert s.filter(pl.col("geo") == "Rio Blanco County, CO").height == 0  # NL both
    assert not s.filter(pl.col("geo").str.contains("Sum of NR")).height
    n = ds.manifest["import"]["county"]
    assert n["blank_codes"]["retail_sales"] == {"NR": 0, "NL": 1, "empty_without_code": 0}
    assert n["sum_of_nr_counties_rows_dropped"] == 1 and n["months_absent"] == ["2020-03-01"]
    assert ds.manifest["import"]["stores"]["empty_cells_skipped"] == {"store_entries": 1, "store_exits": 1}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: [ls[0].replace("Rec_Sales", "Rec")] + ls[1:], "'Rec_Sales' missing"),
        (lambda ls: ls + ['13,2020,Adams,"1","2",,,x'], "column 'Month': 1 value not a month number"),
        (
            lambda ls: ls + ['5,2020,Adams,"1","lots",,,x'],
            r"column 'Rec_Sales': 1 value not a number.*row 7: 'lots'",
        ),
        (
            lambda ls: ls + ['5,2020,Adams,"1",,,XX,x'],
            "column 'Rec_Blank_Code': 1 value not a known blank code",
        ),
        (lambda ls: ls + ['1,2020,Denver,"1","2",,,x'], "repeat a county-month"),
    ],
)
def test_colorado_county_malformed(tmp_path, edit, message):
    f = tmp_path / "county.csv"
    f.write_text("\n".join(edit(list(CO_COUNTY))) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_county_sales(f)


def test_colorado_bad_workbooks_and_no_input(tmp_path):
    with pytest.raises(InputError, match="at least one of"):
        import_colorado(tmp_path / "co")
    f = write_xlsx(tmp_path / "med.xlsx", {"Analysis": [["Date", "Retail-Marijuana-Stores"], ["Jan", 1]]})
    with pytest.raises(
        InputError, match=r"sheet 'Analysis', column 'Date': 1 value not a date.*row 2: 'Jan'"
    ):
        read_med_stores(f)
    with pytest.raises(InputError, match="sheet 'Analysis' not found"):
        read_med_stores(write_xlsx(tmp_path / "x.xlsx", {"Sheet1": [["Date"]]}))
    assert not (tmp_path / "co").exists()


def test_colorado_real_files(tmp_path):
    files = {
        "monthly_revenue": real_file("colorado_monthly_revenue_2014-2021.xlsx"),
        "stores": real_file("colorado_med_monthly_stores_revenue_2014-2016.xlsx"),
        "county": real_file("colorado_county_monthly_sales_2014-2020.csv"),
    }
    ds = load_dataset(import_colorado(tmp_path / "co", **files)[0])
    s = ds.series.collect()
    assert (
        value(s, "Colorado", "stores", D(2014, 1, 1)) == 147
        and value(s, "Colorado", "stores", D(2016, 12, 1)) == 454
    )
    assert value(s, "Colorado", "retail_sales", D(2020, 1, 1)) == 111_660_730
    assert value(s, "Denver County, CO", "retail_sales", D(2014, 1, 1)) == 8_482_593
    n = ds.manifest["import"]["county"]
    assert n["counties"] == 64 and n["months_absent"] == ["2018-12-01", "2019-01-01"]
    assert n["blank_codes"]["retail_sales"]["NR"] == 687 and n["blank_codes"]["retail_sales"]["NL"] == 2432


# ================================================================================ AGCO


AGCO_HEADER = (
    '"License Number","Municipality or First Nation","Store Name",Address,"Store Application Status",Website'
)
AGCO_ROWS = [
    'CRSA0001,TORONTO,"Leaf One","1 KING ST","Authorized to Open",https://example.org',
    'CRSA0002,SCARBOROUGH,"Leaf Two","2 MAIN ST","Authorized to Open",',
    'CRSA0002,SCARBOROUGH,"Leaf Two","2 MAIN ST","Authorized to Open",',  # exact duplicate
    'CRSA0003,NEPEAN,"Leaf Three","3 BANK ST","Authorized to Open",',
    'CRSA0004,TINY TOWN,"Leaf Four","4 LAKE RD","Authorized to Open",',
    'CRSA0005,OTTAWA,"Gone","5 BANK ST","Cancelled",',
    'CRSA0006,HAMILTON,"Soon","6 JAMES ST","In Progress",',
    ',WATERLOO,"Pending","7 KING ST","Public Notice Period: Ended 2025/10/30",',
]


@pytest.fixture
def agco_csv(tmp_path):
    f = tmp_path / "agco.csv"
    f.write_text("\n".join([AGCO_HEADER, *AGCO_ROWS]) + "\n", encoding="utf-8")
    return f


def test_agco_fixture_without_dates(agco_csv, tmp_path):
    out, info, warnings = import_agco(agco_csv, tmp_path / "agco")
    ds = load_dataset(out)
    m = ds.manifest
    assert m["dates"] == "unknown" and m["snapshot"] == "2025-10-30" and "lower bound" in m["snapshot_rule"]
    assert warnings and "no dates" in warnings[0] and "placeholder" in warnings[0]
    stores = ds.stores.collect()
    assert sorted(stores["store_id"]) == ["CRSA0001", "CRSA0002", "CRSA0003", "CRSA0004"]  # authorized only
    assert set(stores["opened_on"]) == {D(2025, 10, 30)} and stores["closed_on"].null_count() == 4
    by = dict(
        zip(stores["store_id"], zip(stores["municipality"], stores["region"], strict=True), strict=True)
    )
    assert by["CRSA0002"] == ("Toronto", "Toronto") and by["CRSA0003"] == ("Ottawa", "East")
    assert by["CRSA0004"] == ("Tiny Town", "unassigned")
    s = ds.series.collect()
    assert value(s, "Toronto", "stores_authorized", D(2025, 10, 1)) == 2
    assert value(s, "Ontario", "cancelled_share", D(2025, 10, 1)) == pytest.approx(1 / 5)
    assert value(s, "Ontario", "applications_public_notice", D(2025, 10, 1)) == 1
    assert m["import"]["exact_duplicate_rows_dropped"] == 1 and m["import"]["rows_without_licence"] == 1
    lic = pl.read_csv(out / "agco_licences.csv")
    assert lic.height == 7 and set(lic["status"]) == {
        "authorized",
        "cancelled",
        "in_progress",
        "public_notice",
    }


def test_agco_with_dates_file_and_snapshot(agco_csv, tmp_path):
    dates = tmp_path / "dates.csv"
    dates.write_text(
        "licence,opened_on,closed_on\nCRSA0001,2019-04-01,\nCRSA0005,2019-06-01,2021-02-28\nCRSA9999,2020-01-01,\n"
    )
    out, _, warnings = import_agco(agco_csv, tmp_path / "agco", snapshot="2025-11-05", dates=dates)
    stores = load_dataset(out).stores.collect().sort("store_id")
    assert stores.filter(pl.col("store_id") == "CRSA0001")["opened_on"].item() == D(2019, 4, 1)
    assert stores.filter(pl.col("store_id") == "CRSA0005")["closed_on"].item() == D(2021, 2, 28)
    assert stores.filter(pl.col("store_id") == "CRSA0002")["opened_on"].item() == D(
        2025, 11, 5
    )  # placeholder
    assert any("not in the AGCO list" in w for w in warnings) and any("placeholder" in w for w in warnings)
    assert yaml.safe_load((out / "manifest.yml").read_text())["dates"].startswith("from --dates")


def test_agco_malformed(tmp_path, agco_csv):
    f = tmp_path / "bad.csv"
    f.write_text(AGCO_HEADER.replace('"Store Application Status"', "Status") + "\n" + AGCO_ROWS[0] + "\n")
    with pytest.raises(InputError, match="'Store Application Status' missing"):
        read_agco(f)
    f.write_text("\n".join([AGCO_HEADER, AGCO_ROWS[0], AGCO_ROWS[0].replace("TORONTO", "OTTAWA")]) + "\n")
    with pytest.raises(InputError, match="share a licence number with different details"):
        read_agco(f)
    dates = tmp_path / "dates.csv"
    dates.write_text("licence,opened_on\nCRSA0001,01/04/2019\n")
    with pytest.raises(
        InputError, match=r"dates.csv, column 'opened_on': 1 value not a date YYYY-MM-DD, e.g. row 1"
    ):
        import_agco(agco_csv, tmp_path / "o", dates=dates)
    with pytest.raises(InputError, match="--snapshot"):
        import_agco(agco_csv, tmp_path / "o", snapshot="Nov 2025")
    assert not (tmp_path / "o").exists()


def test_agco_municipality_helpers():
    assert (
        canonical_municipality("NORTH YORK") == "Toronto"
        and canonical_municipality("sudbury") == "Greater Sudbury"
    )
    assert canonical_municipality("NIAGARA-ON-THE-LAKE") == "Niagara-on-the-Lake"
    assert region_for("Hamilton") == "Central" and region_for("Nowhere") == "unassigned"
    lic = pl.DataFrame(
        {
            "licence": ["a", "b", "c", "d"],
            "municipality": ["Toronto", "Toronto", "Ottawa", "Ottawa"],
            "region": ["Toronto", "Toronto", "East", "East"],
            "status": ["authorized", "authorized", "authorized", "cancelled"],
        }
    )
    pop = pl.DataFrame(
        {
            "municipality": ["Toronto", "Toronto", "Ottawa"],
            "year": [2016, 2021, 2021],
            "population": [2_700_000, 2_800_000, 1_000_000],
        }
    )
    spm = stores_per_municipality(lic, pop)
    assert spm["municipality"].to_list() == ["Toronto", "Ottawa"] and spm["stores"].to_list() == [2, 1]
    assert spm["stores_per_100k"][0] == pytest.approx(2 / 28)


def test_agco_real_file(tmp_path):
    f = real_file("agco_ontario_cannabis_store_list_2025-11.csv")
    licences, notes = read_agco(f)
    assert notes["rows_by_status"]["authorized"] == 1806 and notes["rows_by_status"]["cancelled"] == 611
    assert notes["rows_by_status"]["in_progress"] == 25
    assert notes["licences_by_status"]["authorized"] == 1789  # 17 authorized rows are exact duplicates
    spm = stores_per_municipality(licences)
    assert spm.row(0, named=True) == {"municipality": "Toronto", "region": "Toronto", "stores": 353}
    out, info, warnings = import_agco(f, tmp_path / "agco", snapshot="2025-11-01")
    ds = load_dataset(out)
    assert ds.stores.select(pl.len()).collect().item() == 1789 and "1,806 authorized rows" in info
    assert value(ds.series.collect(), "Ontario", "cancelled_share", D(2025, 11, 1)) == pytest.approx(
        611 / 2400, abs=1e-4
    )


# ================================================================================ POS


EXAMPLES = REPO / "data" / "examples"


def test_pos_example_files_import(tmp_path, capsys):
    rc, out, _ = run(
        [
            "data",
            "import-pos",
            str(EXAMPLES / "pos_export.example.csv"),
            "--mapping",
            str(EXAMPLES / "pos_mapping.example.yml"),
            "--out",
            str(tmp_path / "pos"),
        ],
        capsys,
    )
    assert rc == 0 and "wrote" in out
    ds = load_dataset(tmp_path / "pos")
    assert ds.manifest["source"] == "pos" and "FAKE" in ds.manifest["description"]
    sales = ds.sales.collect()
    flower = sales.filter(
        (pl.col("store_id") == "ST-001")
        & (pl.col("date") == D(2022, 1, 3))
        & (pl.col("category") == "dried_flower")
    )
    assert flower["revenue"].item() == pytest.approx(950.0) and flower["grams"].item() == pytest.approx(33.25)
    assert sales.filter(pl.col("category") == "other").height == 1  # 'Accessory' -> default_category
    assert ds.stores.collect().filter(pl.col("store_id") == "ST-002")["region"].item() == "East"


def pos_setup(
    tmp_path, mapping: dict, lines: list[str], stores: list[str] | None = None
) -> tuple[Path, Path]:
    csv = tmp_path / "pos_export.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if stores is not None:
        (tmp_path / "stores.csv").write_text("\n".join(stores) + "\n", encoding="utf-8")
    mp = tmp_path / "mapping.yml"
    mp.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    return csv, mp


POS_MAP = {
    "currency": "CAD",
    "date_format": "%d/%m/%Y",
    "columns": {
        "date": "Sale Date",
        "store": "Store",
        "category": "Type",
        "revenue": "Amount",
        "grams": "Grams",
        "municipality": "City",
    },
    "categories": {"Flower": "dried_flower", "Vape": "vapes"},
}
POS_LINES = [
    "Sale Date,Store,City,Type,Amount,Grams",
    "01/02/2022,S1,Toronto,Flower,100.00,3.5",
    "01/02/2022,S1,Toronto,flower,50.00,1.75",
    "01/02/2022,S2,London,Vape,40.00,1",
    "02/02/2022,S1,Toronto,Vape,30.00,0.5",
]


def test_pos_fixture_sums_duplicate_keys(tmp_path):
    csv, mp = pos_setup(tmp_path, POS_MAP, POS_LINES)
    tables, notes = read_pos(csv, mp)
    s = tables["sales"]
    assert s.height == 3 and notes["keys_summed_from_several_rows"] == 1
    assert s.filter(pl.col("category") == "dried_flower")["revenue"].item() == 150.0
    st = tables["stores"].sort("store_id")
    assert st["opened_on"].to_list() == [D(2022, 2, 1)] * 2 and st["region"].to_list() == ["Toronto", "West"]
    assert "first sale date" in notes["opened_on_rule"]


def test_pos_monthly_timestamps_tax_and_stores_file(tmp_path):
    mapping = {
        "currency": "CAD",
        "date_format": "%Y-%m-%d %H:%M",
        "frequency": "monthly",
        "default_category": "other",
        "columns": {"date": "When", "store": "Shop", "revenue": "Gross"},
        "tax": {"included": True, "rate": 0.13},
        "stores": {
            "file": "stores.csv",
            "columns": {"store": "Shop", "municipality": "Town", "opened_on": "Opened"},
        },
    }
    lines = ["When,Shop,Gross", "2022-03-20 10:15,A,113", "2022-03-21 18:00,A,226", "2022-04-02 09:00,A,113"]
    csv, mp = pos_setup(tmp_path, mapping, lines, stores=["Shop,Town,Opened", "A,Kingston,2022-03-15"])
    out, _ = import_pos(csv, mp, tmp_path / "ds")
    ds = load_dataset(out)
    assert ds.frequency == "monthly"
    s = ds.sales.collect().sort("date")
    assert s["date"].to_list() == [D(2022, 3, 1), D(2022, 4, 1)] and s["revenue"].to_list() == pytest.approx(
        [300.0, 100.0]
    )
    st = ds.stores.collect().row(0, named=True)
    assert st["opened_on"] == D(2022, 3, 1) and st["region"] == "East"  # month start, so March is inside


@pytest.mark.parametrize(
    ("mapping_edit", "lines_edit", "message"),
    [
        (
            None,
            lambda ls: ls + ["2022-13-45,S1,Toronto,Flower,1,1"],
            "pos_export.csv, column 'Sale Date' (mapped to date): 1 value doesn't match format %d/%m/%Y, e.g. row 5: '2022-13-45'",
        ),
        (
            None,
            lambda ls: ls + ["03/02/2022,S1,Toronto,Flower,1O.00,1"],
            "pos_export.csv, column 'Amount' (mapped to revenue): 1 value not a number",
        ),
        (
            None,
            lambda ls: ls + ["03/02/2022,S1,Toronto,Seeds,1,1", "04/02/2022,S2,London,Seeds,1,1"],
            "column 'Type' (mapped to category): 1 value not in the mapping's categories and no default_category is set: 'Seeds' (2 rows, first row 5)",
        ),
        (None, lambda ls: ls + ["03/02/2022,S1,Toronto,Flower,-500,1"], "negative after summing rows"),
        (
            None,
            lambda ls: ls + ["03/02/2022,S1,Ottawa,Flower,1,1"],
            "column 'City' (mapped to municipality): 1 store with different values",
        ),
        (lambda m: m | {"colums": m["columns"]}, None, "unknown key 'colums' (did you mean 'columns'?)"),
        (
            lambda m: {k: v for k, v in m.items() if k != "date_format"},
            None,
            "required key 'date_format' is missing",
        ),
        (
            lambda m: m | {"columns": m["columns"] | {"revenue": "Net"}},
            None,
            "columns.revenue: column 'Net' is not in pos_export.csv",
        ),
        (
            lambda m: m | {"categories": {"Flower": "flower"}},
            None,
            "'Flower' maps to 'flower', which is not a contract category",
        ),
        (lambda m: m | {"tax": {"included": True}}, None, "tax.rate"),
        (lambda m: m | {"currency": "dollars"}, None, "3-letter ISO code"),
    ],
)
def test_pos_errors_point_at_source(tmp_path, mapping_edit, lines_edit, message):
    mapping = mapping_edit(dict(POS_MAP)) if mapping_edit else POS_MAP
    lines = lines_edit(list(POS_LINES)) if lines_edit else POS_LINES
    csv, mp = pos_setup(tmp_path, mapping, lines)
    with pytest.raises(InputError) as e:
        import_pos(csv, mp, tmp_path / "out")
    assert message in str(e.value)
    assert not (tmp_path / "out").exists()


def test_pos_stores_file_errors(tmp_path):
    mapping = POS_MAP | {
        "columns": {k: v for k, v in POS_MAP["columns"].items() if k != "municipality"},
        "stores": {"file": "stores.csv", "columns": {"store": "Store", "opened_on": "Opened"}},
    }
    csv, mp = pos_setup(tmp_path, mapping, POS_LINES, stores=["Store,Opened", "S1,2022-02-02"])
    with pytest.raises(InputError, match="name stores that are not in stores.csv, e.g. row 3: 'S2'"):
        read_pos(csv, mp)
    csv, mp = pos_setup(
        tmp_path, mapping, POS_LINES, stores=["Store,Opened", "S1,2022-02-02", "S2,2022-01-01"]
    )
    with pytest.raises(
        InputError, match=r"column 'Sale Date' \(mapped to date\): 2 rows dated outside .* e.g. row 1"
    ):
        read_pos(csv, mp)
    bad = mapping | {"columns": POS_MAP["columns"]}
    csv, mp = pos_setup(tmp_path, bad, POS_LINES, stores=["Store,Opened", "S1,2022-01-01"])
    with pytest.raises(InputError, match="move it under stores.columns"):
        read_pos(csv, mp)


# ================================================================================ StatCan download


SC_HEADER = (
    "REF_DATE,GEO,DGUID,North American Industry Classification System (NAICS),Sales,Adjustments,UOM,"
    "SCALAR_FACTOR,SCALAR_ID,VECTOR,COORDINATE,VALUE,STATUS,SYMBOL,TERMINATED,DECIMALS"
)


def sc_row(date, geo, naics, value, status=""):
    return f'{date},{geo},X,"{naics}",Total retail sales,Unadjusted,Dollars,thousands,3,v1,1.1,{value},{status},,,0'


SC_LINES = [
    SC_HEADER,
    sc_row("2022-07", "Ontario", "Cannabis retailers [459993]", "157315"),
    sc_row("2022-08", "Ontario", "Cannabis retailers [459993]", "153877", "A"),
    sc_row("2022-08", "Yukon", "Cannabis retailers [459993]", "", "x"),
    sc_row("2022-08", "Ontario", "Retail trade [44-45]", "9000000"),
    sc_row("2022-08", "Ontario", "Beer, wine and liquor retailers [4453]", "500000"),
]
FISCAL_LINES = [
    '"REF_DATE","GEO","DGUID","Value","Type of cannabis","UOM","UOM_ID","SCALAR_FACTOR","SCALAR_ID","VECTOR",'
    '"COORDINATE","VALUE","STATUS","SYMBOL","TERMINATED","DECIMALS"',
    '"2021/2022","Ontario","x","Value of sales","Total cannabis products","Dollars","81","thousands","3","v1","1","1504017","","","","0"',
    '"2021/2022","Ontario","x","Value of sales","Dried cannabis","Dollars","81","thousands","3","v2","1","1045964","","","","0"',
    '"2021/2022","Ontario","x","Value of sales per capita","Total cannabis products","Dollars","81","units","0","v3","1","126","","","","0"',
    '"2022/2023","Nunavut","x","Value of sales","Cannabis beverages","Dollars","81","thousands","3","v4","1","","x","","","0"',
]


def zip_bytes(pid: str, lines: list[str], when=(2025, 10, 23, 8, 30, 0)) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo(f"{pid}.csv", date_time=when), "\ufeff" + "\n".join(lines) + "\n")
        z.writestr(f"{pid}_MetaData.csv", '"Cube Title","Product Id"\n"Test","' + pid + '"\n')
    return buf.getvalue()


class FakeResponse(io.BytesIO):
    headers = {"Last-Modified": "Thu, 23 Oct 2025 12:30:00 GMT"}


@pytest.fixture
def fake_statcan(monkeypatch):
    """Serve the WDS JSON answer and the zip from memory; record every URL asked for."""
    seen: list[str] = []

    def urlopen(req, timeout=None):
        url = req.full_url if hasattr(req, "full_url") else str(req)
        seen.append(url)
        if "/wds/rest/getFullTableDownloadCSV/" in url:
            pid = url.rstrip("/").split("/")[-2]
            return FakeResponse(
                json.dumps({"status": "SUCCESS", "object": f"https://example.test/{pid}-eng.zip"}).encode()
            )
        pid = url.rsplit("/", 1)[-1].split("-")[0]
        return FakeResponse(zip_bytes(pid, FISCAL_LINES if pid == "10100164" else SC_LINES))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return seen


def test_fetch_statcan_cannabis_rows(fake_statcan, tmp_path):
    out, info = fetch_statcan(tmp_path / "sc", "20100056")
    ds = load_dataset(out)
    s = ds.series.collect()
    assert value(s, "Ontario", "sales", D(2022, 8, 1)) == 153_877_000 and s.height == 2  # Yukon suppressed
    imp = ds.manifest["import"]
    assert imp["vintage"] == "2025-10-23" and imp["suppressed_dropped"] == 1 and imp["kind"] == "statcan"
    assert "revise" in ds.manifest["description"] and "vintage 2025-10-23" in info
    assert fake_statcan[0].endswith("/getFullTableDownloadCSV/20100056/en")


def test_fetch_statcan_retail_total_and_fiscal(fake_statcan, tmp_path):
    s = load_dataset(fetch_statcan(tmp_path / "rt", "retail-total")[0]).series.collect()
    assert s["metric"].to_list() == ["retail_sales"] and s["value"].item() == 9_000_000_000
    ds = load_dataset(fetch_statcan(tmp_path / "fy", "10100164")[0])
    s = ds.series.collect()
    assert ds.manifest["period"] == "fiscal_year" and set(s["date"]) == {D(2021, 4, 1)}
    assert value(s, "Ontario", "sales_total", D(2021, 4, 1)) == 1_504_017_000
    assert value(s, "Ontario", "sales_per_capita_total", D(2021, 4, 1)) == 126
    assert ds.manifest["import"]["suppressed_dropped"] == 1


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("Name or service not known"),
        TimeoutError("timed out"),
        "bad-json",
        "error-status",
    ],
)
def test_fetch_statcan_offline_writes_nothing(monkeypatch, tmp_path, capsys, failure):
    def urlopen(req, timeout=None):
        if failure == "bad-json":
            return FakeResponse(b"<html>maintenance</html>")
        if failure == "error-status":
            return FakeResponse(b'{"status": "FAILED", "object": "Table not found"}')
        raise failure

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    rc, _, err = run(["data", "fetch-statcan", "--out", str(tmp_path / "sc"), "--timeout", "1"], capsys)
    assert rc == 2 and "error: could not reach Statistics Canada (" in err
    assert "tv.action?pid=2010005601" in err and "cannabis-market data import-statcan FILE --out DIR" in err
    assert not (tmp_path / "sc").exists() and list(tmp_path.iterdir()) == []


def test_fetch_statcan_hand_downloaded_zip(tmp_path):
    z = tmp_path / "20100056-eng.zip"
    z.write_bytes(zip_bytes("20100056", SC_LINES))
    s = load_dataset(fetch_statcan(tmp_path / "sc", file=z)[0]).series.collect()
    assert s["metric"].unique().to_list() == ["sales"] and s.height == 2


def test_statcan_fiscal_malformed(tmp_path):
    f = tmp_path / "fy.csv"
    f.write_text("\n".join([FISCAL_LINES[0], FISCAL_LINES[1].replace("2021/2022", "2021-2022")]) + "\n")
    with pytest.raises(
        InputError, match=r"column 'REF_DATE': 1 value\(s\) are not fiscal years like 2021/2022, e.g. row 1"
    ):
        read_statcan_fiscal(f)
    f.write_text("\n".join([FISCAL_LINES[0], FISCAL_LINES[1].replace('"1504017"', '"many"')]) + "\n")
    with pytest.raises(InputError, match="column 'VALUE': 1 value"):
        read_statcan_fiscal(f)
    f.write_text(FISCAL_LINES[0].replace('"Type of cannabis"', '"Type"') + "\n")
    with pytest.raises(InputError, match="Type of cannabis missing"):
        read_statcan_fiscal(f)


def test_statcan_real_files(tmp_path):
    f = real_file("statcan_10100164_cannabis_sales_by_type_fiscal.csv")
    s = load_dataset(fetch_statcan(tmp_path / "fy", "10100164", file=f)[0]).series.collect()
    assert [value(s, "Ontario", "sales_total", D(y, 4, 1)) for y in (2021, 2022, 2023)] == [
        1_504_017_000,
        1_846_970_000,
        2_096_876_000,
    ]
    assert value(s, "Ontario", "sales_per_capita_total", D(2023, 4, 1)) == 166
    f = real_file("statcan_20100056_cannabis_retailers_monthly_by_province.csv")
    s = load_dataset(fetch_statcan(tmp_path / "m", "20100056", file=f)[0]).series.collect()
    assert value(s, "Ontario", "sales", D(2022, 8, 1)) == 153_877_000


# ================================================================================ CLI and writing rules


ACTIONS = [
    "import-washington",
    "import-oregon",
    "import-colorado",
    "import-agco",
    "import-pos",
    "fetch-statcan",
]


@pytest.mark.parametrize("action", ACTIONS)
def test_cli_help(action, capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", action, "--help"])
    assert e.value.code == 0 and "--out" in capsys.readouterr().out


def test_cli_refuses_foreign_folder_and_replaces_same_kind(or_xlsx, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    rc, _, err = run(["data", "import-oregon", str(or_xlsx), "--out", str(foreign)], capsys)
    assert rc == 2 and "not a previous oregon import" in err and (foreign / "notes.txt").exists()
    out = tmp_path / "or"
    assert run(["data", "import-oregon", str(or_xlsx), "--out", str(out)], capsys)[0] == 0
    assert (
        run(["data", "import-oregon", str(or_xlsx), "--out", str(out)], capsys)[0] == 0
    )  # same kind: replaced
    rc, _, err = run(["data", "import-agco", str(or_xlsx), "--out", str(out)], capsys)
    assert rc == 2 and "error:" in err
    with pytest.raises(InputError, match="not a previous agco import"):
        check_out(out, "agco")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "or", "or.xlsx"]  # no temp folders left


def test_cli_bad_input_exit_2(tmp_path, capsys):
    rc, _, err = run(
        ["data", "import-washington", str(tmp_path / "none.xlsx"), "--out", str(tmp_path / "o")], capsys
    )
    assert rc == 2 and "file not found" in err
    rc, _, err = run(["data", "import-colorado", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "at least one of" in err
    assert not (tmp_path / "o").exists()
