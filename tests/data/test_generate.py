"""The synthetic dataset generator: determinism, the data contract, ground truth, events, arguments."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from cannabis_market.data.contract import CATEGORIES, TABLES
from cannabis_market.data.generate import GENERATOR_VERSION, generate_dataset
from cannabis_market.data.outage_model import lost_share
from cannabis_market.errors import InputError

SMALL = {"stores": 60, "start": "2022-06-01", "end": "2022-09-30"}


def _hashes(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def _manifest(folder: Path) -> dict:
    return yaml.safe_load((folder / "manifest.yml").read_text(encoding="utf-8"))


def _stores(folder: Path) -> pl.DataFrame:
    return pl.read_csv(folder / "stores.csv", schema_overrides={"opened_on": pl.Date, "closed_on": pl.Date})


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Daily, 60 stores, 18 months: covers the 2022 outage and some endogenous closures."""
    return generate_dataset(
        tmp_path_factory.mktemp("gen") / "panel", stores=60, start="2022-01-01", end="2023-06-30"
    )


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Daily, 400 stores around the 2022 outage."""
    return generate_dataset(
        tmp_path_factory.mktemp("gen") / "outage", stores=400, start="2022-07-01", end="2022-09-20"
    )


# ---------------------------------------------------------------- determinism


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", seed=7, **SMALL)
    b = generate_dataset(tmp_path / "b", seed=7, **SMALL)
    ha, hb = _hashes(a), _hashes(b)
    assert set(ha) >= {
        "manifest.yml",
        "stores.csv",
        "population.csv",
        "sales.parquet",
        "events.csv",
        "inventory.parquet",
    }
    assert ha == hb


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", seed=1, **SMALL)
    b = generate_dataset(tmp_path / "b", seed=2, **SMALL)
    assert _hashes(a)["sales.parquet"] != _hashes(b)["sales.parquet"]
    ra = pl.read_parquet(a / "sales.parquet")["revenue"].sum()
    rb = pl.read_parquet(b / "sales.parquet")["revenue"].sum()
    assert ra != rb


def test_regenerating_replaces_a_previous_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    generate_dataset(out, seed=1, **SMALL)
    generate_dataset(out, seed=2, **SMALL)
    assert _manifest(out)["generator"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


# ---------------------------------------------------------------- the data contract


def test_tables_follow_the_contract(panel: Path) -> None:
    sales = pl.read_parquet(panel / "sales.parquet")
    assert sales.schema == pl.Schema(TABLES["sales"].dtypes)
    inv = pl.read_parquet(panel / "inventory.parquet")
    assert inv.schema == pl.Schema(TABLES["inventory"].dtypes)
    stores = _stores(panel)
    assert stores.columns == [c.name for c in TABLES["stores"].columns]
    assert stores.schema["store_id"] == pl.String and stores.schema["opened_on"] == pl.Date
    pop = pl.read_csv(panel / "population.csv")
    assert pop.columns == ["municipality", "year", "population"]
    assert pop.schema["year"] == pl.Int64 and pop.schema["population"] == pl.Int64
    assert (pop["population"] > 0).all()
    assert sorted(pop["year"].unique().to_list()) == [2022, 2023]
    assert set(stores["municipality"]) <= set(pop["municipality"])
    events = pl.read_csv(panel / "events.csv", try_parse_dates=True)
    assert events.columns == [c.name for c in TABLES["events"].columns]

    # categories, keys, order, values
    assert set(sales["category"].unique()) == set(CATEGORIES)
    assert sales.select(pl.struct("date", "store_id", "category").is_unique().all()).item()
    assert sales.equals(sales.sort("date", "store_id", "category"))
    assert sales.select((pl.col("revenue") >= 0).all() & (pl.col("grams") >= 0).all()).item()
    assert sales["date"].min() == date(2022, 1, 1) and sales["date"].max() == date(2023, 6, 30)
    assert stores["store_id"].is_unique().all()
    assert set(sales["store_id"]) <= set(stores["store_id"])
    assert inv.select(pl.struct("date", "store_id").is_unique().all()).item()

    # sales only while a store is open; closed_on (last day open) not before opened_on
    j = sales.join(stores, on="store_id")
    outside = j.filter((pl.col("date") < pl.col("opened_on")) | (pl.col("date") > pl.col("closed_on")))
    assert outside.height == 0
    closed = stores.filter(pl.col("closed_on").is_not_null())
    assert closed.height > 0, "expected some endogenous closures in 18 months"
    assert (closed["closed_on"] >= closed["opened_on"]).all()
    # every open store has all 7 categories on every open day
    per_day = sales.group_by("date", "store_id").len()
    assert (per_day["len"] == len(CATEGORIES)).all()
    open_days = stores.with_columns(
        last=pl.coalesce("closed_on", pl.lit(date(2023, 6, 30))),
        first=pl.max_horizontal("opened_on", pl.lit(date(2022, 1, 1))),
    ).select(((pl.col("last") - pl.col("first")).dt.total_days() + 1).sum())
    assert per_day.height == open_days.item()


def test_dataset_loads_and_validates(panel: Path) -> None:
    from cannabis_market.data.loader import load_dataset

    ds = load_dataset(panel)
    assert ds.frequency == "daily"
    assert ds.truth["cannibalization_elasticity"] < 0


def test_manifest_and_truth_keys(panel: Path) -> None:
    m = _manifest(panel)
    assert list(m)[:7] == ["name", "description", "source", "frequency", "currency", "region", "generator"]
    assert "SYNTHETIC" in m["description"]
    assert (m["source"], m["frequency"], m["currency"], m["region"]) == (
        "synthetic",
        "daily",
        "CAD",
        "Ontario",
    )
    assert m["generator"] == {
        "version": GENERATOR_VERSION,
        "seed": 2022,
        "stores": 60,
        "start": date(2022, 1, 1),
        "end": date(2023, 6, 30),
    }
    t = m["truth"]
    for key in (
        "cannibalization_elasticity",
        "quantity_competition_elasticity",
        "price_elasticity",
        "price_compression_annual",
        "price_compression_log_rate",
        "price_density_effect",
        "base_price_per_gram",
        "breakeven_monthly_revenue",
        "closure_rule",
        "demand",
        "seasonality",
        "day_of_week",
        "store_heterogeneity_sd",
        "noise",
        "outage_2022",
        "closure_2020",
    ):
        assert key in t, key
    assert -0.3 <= t["cannibalization_elasticity"] <= -0.15
    b, eps, d = t["cannibalization_elasticity"], t["price_elasticity"], t["price_density_effect"]
    assert t["quantity_competition_elasticity"] == pytest.approx(b - (1 + eps) * d)
    assert len(t["seasonality"]) == 12 and np.mean(list(t["seasonality"].values())) == pytest.approx(1.0)
    assert len(t["day_of_week"]) == 7 and np.mean(list(t["day_of_week"].values())) == pytest.approx(1.0)
    assert {"trailing_months", "monthly_probability", "breakeven_monthly_revenue"} <= set(t["closure_rule"])
    assert {"store_day_sd", "category_sd", "common_daily_shock_sd"} <= set(t["noise"])
    o = t["outage_2022"]
    assert (o["start"], o["partial_from"], o["normal_from"]) == (
        date(2022, 8, 5),
        date(2022, 8, 10),
        date(2022, 8, 18),
    )
    assert (o["stop_days"], o["partial_days"]) == (5, 8)
    for key in (
        "partial_fill",
        "days_of_cover",
        "lost_sales_total",
        "lost_sales_by_store",
        "lost_sales_by_day",
        "stores_affected",
    ):
        assert key in o, key
    assert isinstance(o["lost_sales_total"], float)
    c = t["closure_2020"]
    assert (c["closed_from"], c["curbside_from"]) == (date(2020, 4, 5), date(2020, 4, 7))
    assert 0 < c["curbside_share"] < 1 and "normal_from" in c and "lost_sales_total" in c


# ---------------------------------------------------------------- frequency


def test_monthly_dates_are_month_starts_and_match_daily_totals(tmp_path: Path) -> None:
    mo = generate_dataset(tmp_path / "m", frequency="monthly", **SMALL)
    da = generate_dataset(tmp_path / "d", frequency="daily", **SMALL)
    ms = pl.read_parquet(mo / "sales.parquet")
    assert (ms["date"].dt.day() == 1).all()
    assert sorted(ms["date"].unique().to_list()) == [date(2022, m, 1) for m in range(6, 10)]
    assert ms.select(pl.struct("date", "store_id", "category").is_unique().all()).item()
    ds = pl.read_parquet(da / "sales.parquet")
    daily = ds.group_by(pl.col("date").dt.truncate("1mo"), "store_id", "category").agg(
        pl.col("revenue").sum()
    )
    both = ms.join(daily, on=["date", "store_id", "category"], suffix="_d")
    assert both.height == ms.height == daily.height
    assert np.allclose(both["revenue"], both["revenue_d"], atol=0.01 * 31)
    inv = pl.read_parquet(mo / "inventory.parquet")
    assert (inv["date"].dt.day() == 1).all()
    stores = _stores(mo)
    assert (stores["opened_on"].dt.day() == 1).all()  # monthly datasets report openings by month
    assert _manifest(mo)["frequency"] == "monthly"


def test_monthly_span_is_snapped_to_whole_months(tmp_path: Path) -> None:
    mo = generate_dataset(
        tmp_path / "m", stores=60, start="2022-06-15", end="2022-07-10", frequency="monthly"
    )
    g = _manifest(mo)["generator"]
    assert (g["start"], g["end"]) == (date(2022, 6, 1), date(2022, 7, 31))


# ---------------------------------------------------------------- events


def test_outage_truth_is_consistent(outage: Path) -> None:
    o = _manifest(outage)["truth"]["outage_2022"]
    by_store, by_day = o["lost_sales_by_store"], o["lost_sales_by_day"]
    assert o["in_span"] and o["lost_sales_total"] > 0
    assert o["lost_sales_total"] == pytest.approx(sum(by_store.values()), abs=0.05)
    assert o["lost_sales_total"] == pytest.approx(sum(by_day.values()), abs=1.0)
    assert o["stores_affected"] == len(by_store)
    assert set(by_day) <= {date(2022, 8, d) for d in range(5, 18)}

    # the cover on the eve is exactly what the mechanism used: zero loss iff lost_share == 0
    inv = pl.read_parquet(outage / "inventory.parquet")
    eve = inv.filter(pl.col("date") == date(2022, 8, 4))
    assert eve.height == o["stores_open_on_eve"]
    cover = eve["days_of_cover"].to_numpy()
    share = lost_share(cover, o["stop_days"], o["partial_days"], o["partial_fill"])
    has_loss = np.array([s in by_store for s in eve["store_id"]])
    assert np.array_equal(has_loss, share > 1e-12)

    # during the stop, cover depletes by one day of demand per day (until empty)
    d2 = inv.filter(pl.col("date") == date(2022, 8, 6)).join(eve, on="store_id", suffix="_eve")
    expect = np.maximum(d2["days_of_cover_eve"].to_numpy() - 2, 0)
    assert np.allclose(d2["days_of_cover"].to_numpy(), expect, atol=0.011)


def test_outage_hurts_low_cover_stores_more(outage: Path) -> None:
    sales = (
        pl.read_parquet(outage / "sales.parquet").group_by("date", "store_id").agg(pl.col("revenue").sum())
    )
    eve = pl.read_parquet(outage / "inventory.parquet").filter(pl.col("date") == date(2022, 8, 4))
    before = sales.filter(pl.col("date").is_between(date(2022, 7, 8), date(2022, 7, 28)))
    during = sales.filter(pl.col("date").is_between(date(2022, 8, 5), date(2022, 8, 17)))
    ratio = (
        during.group_by("store_id")
        .agg(pl.col("revenue").mean().alias("during"))
        .join(before.group_by("store_id").agg(pl.col("revenue").mean().alias("before")), on="store_id")
        .join(eve, on="store_id")
        .with_columns(r=pl.col("during") / pl.col("before"))
    )
    low = ratio.filter(pl.col("days_of_cover") < 4)["r"].median()
    high = ratio.filter(pl.col("days_of_cover") > 9)["r"].median()
    assert low < 0.85 * high


def test_closure_2020_has_zero_then_reduced_sales(tmp_path: Path) -> None:
    ds = generate_dataset(tmp_path / "c", stores=600, start="2020-03-01", end="2020-06-30")
    day = pl.read_parquet(ds / "sales.parquet").group_by("date").agg(pl.col("revenue").sum())
    rev = dict(day.iter_rows())
    assert rev[date(2020, 4, 5)] == 0 and rev[date(2020, 4, 6)] == 0
    curb = np.mean([rev[date(2020, 4, d)] for d in range(7, 28)])
    normal = np.mean([rev[date(2020, 3, d)] for d in range(8, 29)])
    assert 0.3 * normal < curb < 0.9 * normal
    c = _manifest(ds)["truth"]["closure_2020"]
    assert c["lost_sales_total"] > 0 and c["stores_affected"] > 0
    ev = pl.read_csv(ds / "events.csv")
    assert ev["event_id"].to_list() == ["closure_2020"] and ev["kind"].to_list() == ["closure"]


# ---------------------------------------------------------------- arguments and atomic writes


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": "2022-05-01", "end": "2022-05-01"}, "after start"),
        ({"start": "2022-05-01", "end": "2022-04-01"}, "after start"),
        ({"stores": 5}, "stores"),
        ({"stores": 2.5}, "stores"),
        ({"frequency": "weekly"}, "frequency"),
        ({"start": "2018-10-17"}, "2019-04-01"),
        ({"end": "2031-01-01"}, "end"),
        ({"start": "01/05/2022"}, "ISO"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_input_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {**SMALL, **kwargs}
    with pytest.raises(InputError, match=match):
        generate_dataset(tmp_path / "x", **args)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_foreign_folder_or_file(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        generate_dataset(foreign, **SMALL)
    assert (foreign / "notes.txt").read_text() == "keep me"
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(InputError, match="file"):
        generate_dataset(f, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"]


def test_failed_run_leaves_nothing_behind(tmp_path: Path) -> None:
    def boom(msg: str) -> None:
        if msg.startswith("sales"):
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError, match="simulated"):
        generate_dataset(tmp_path / "ds", progress=boom, **SMALL)
    assert list(tmp_path.iterdir()) == []

    # a failure while regenerating keeps the previous dataset intact
    good = generate_dataset(tmp_path / "ds", seed=3, **SMALL)
    before = _hashes(good)
    with pytest.raises(RuntimeError):
        generate_dataset(good, seed=4, progress=boom, **SMALL)
    assert _hashes(good) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_progress_lines(tmp_path: Path) -> None:
    lines: list[str] = []
    generate_dataset(tmp_path / "ds", progress=lines.append, **SMALL)
    assert any(line.startswith("stores:") for line in lines)
    assert any(line.startswith("sales:") for line in lines)
    assert lines[-1] == "tables written"
    assert not any(line.startswith("wrote ") for line in lines)  # the caller reports where it wrote


def test_cli_says_wrote_once(tmp_path: Path, capsys) -> None:
    from cannabis_market.cli import main

    out = tmp_path / "ds"
    args = ["data", "generate", "--out", str(out), "--stores", "60", "--start", SMALL["start"]]
    assert main([*args, "--end", SMALL["end"]]) == 0
    cap = capsys.readouterr()
    said = (cap.out + cap.err).splitlines()
    assert [line for line in said if line.startswith("wrote ")] == [line for line in cap.out.splitlines()]
    assert len([line for line in said if "wrote" in line]) == 1 and str(out) in cap.out


# Files of one small run, pinned. The generator is deterministic and these were identical before and after
# generate.py was split into the generate/ package. Change them only on purpose, with GENERATOR_VERSION.
# (The parquet files are left out: their bytes also depend on the parquet writer's version.)
GOLDEN = {
    "events.csv": "397104b33553300c6b20de4a8b76f1bf855b2871ab2e5a97eb64eb3122e5e21d",
    "manifest.yml": "c2d57112d615ddac040b2941417a88f5ee38beadb62192186751aaa380300ef5",
    "population.csv": "6dc63c7f91c0d9f775ebc568b4b38ec509a8d5451ca31a63d3c8212ca08d8a3f",
    "stores.csv": "ebbb48f282da57a11b7b90a51b7f8a6950ad8fdd475f035e7a00747252f324ee",
}


def test_pinned_output_of_generator_version(tmp_path: Path) -> None:
    assert GENERATOR_VERSION == "1.0.0", "the generator changed: regenerate GOLDEN for the new version"
    got = _hashes(generate_dataset(tmp_path / "ds", seed=11, **SMALL))
    assert {name: got[name] for name in GOLDEN} == GOLDEN
