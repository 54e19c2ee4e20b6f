"""Market overview on store-level and series datasets; the outage model on aggregate (StatCan-like) series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import yaml

from cannabis_market.analysis.outage import impact_figures, outage_impact
from cannabis_market.analysis.overview import market_overview
from cannabis_market.data.loader import load_dataset
from cannabis_market.data.statcan import import_statcan
from cannabis_market.errors import InputError

from conftest import real_file


def test_overview_figures_match_direct_sums(tiny):
    ds = load_dataset(tiny)
    assert market_overview(ds).total_sales is None  # two stores make 95% of this tiny market (> 75%)
    ov = market_overview(ds, dominance2=1.0)
    assert ov.total_sales == pytest.approx(325.5)
    assert ov.stores_open_latest == 2  # S2 closed on 2022-01-04
    assert ov.sales_per_store_latest == pytest.approx(325.5 / 3)
    assert "CA$326" in ov.report()
    assert set(ov.figures()) == {"total_sales", "stores_open_latest", "sales_per_store_latest"}
    assert ov.chart().to_dict() and ov.chart_categories().to_dict()


def test_overview_region_and_window(tiny):
    ds = load_dataset(tiny)
    east = market_overview(ds, region="East", min_stores=1, dominance=1.0)
    assert east.total_sales == pytest.approx(15.0) and east.stores_open_latest == 1
    with pytest.raises(InputError, match="region 'Nowhere'"):
        market_overview(ds, region="Nowhere")
    with pytest.raises(InputError, match="before start"):
        market_overview(ds, start="2022-02-01", end="2022-01-01")
    with pytest.raises(InputError, match="no sales"):
        market_overview(ds, start="2023-01-01")


def test_overview_suppresses_one_store_figures(tiny):
    """One store's sales never reach the overview: the region has a single store."""
    east = market_overview(load_dataset(tiny), region="East")
    assert east.total_sales is None and east.sales_per_store_latest is None
    assert east.monthly["suppressed"].all() and east.monthly["revenue"].is_null().all()
    assert "suppressed" in east.report() and "15" not in east.report()
    toronto = market_overview(load_dataset(tiny), region="Toronto")  # 2 stores < 3
    assert toronto.by_region["revenue"].is_null().all()


def _series_dataset(tmp_path, effect: float, seed: int = 0):
    """Monthly sales for a province hit in one month and two untouched ones (known truth)."""
    rng = np.random.default_rng(seed)
    months = pl.date_range(dt.date(2019, 1, 1), dt.date(2022, 10, 1), "1mo", eager=True)
    n = len(months)
    common = 100 + np.cumsum(rng.normal(0.5, 1.0, n))
    a = 1.1 * common + rng.normal(0, 1.0, n)
    b = 0.7 * common + rng.normal(0, 1.0, n)
    y = 1.5 * common + rng.normal(0, 1.0, n)
    hit = months.to_list().index(dt.date(2022, 8, 1))
    truth = effect * y[hit]
    y[hit] += truth
    rows = []
    for geo, v in (("Ontario", y), ("Quebec", a), ("Alberta", b)):
        rows += [
            {"date": d, "geo": geo, "metric": "sales", "value": float(x) * 1e6}
            for d, x in zip(months, v, strict=True)
        ]
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "manifest.yml").write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "description": "test",
                "source": "other",
                "frequency": "monthly",
                "currency": "CAD",
                "region": "Ontario",
            }
        )
    )
    pl.DataFrame(rows).write_csv(folder / "series.csv")
    return folder, truth * 1e6


def test_series_impact_recovers_a_known_monthly_drop(tmp_path):
    folder, truth = _series_dataset(tmp_path, effect=-0.08)
    ds = load_dataset(folder)
    res = outage_impact(ds, "Ontario", ["Quebec", "Alberta"], "2019-01-01", "2022-08-05", seed=1)
    f = impact_figures(res)
    assert f["lost_sales_lo"] < -truth < f["lost_sales_hi"]
    assert f["lost_sales"] == pytest.approx(-truth, rel=0.35)
    assert f["rel_effect_lo"] < f["rel_effect"] < f["rel_effect_hi"] < 0


def test_series_impact_bad_controls(tmp_path):
    folder, _ = _series_dataset(tmp_path, effect=0.0)
    ds = load_dataset(folder)
    with pytest.raises(InputError, match="not in the dataset"):
        outage_impact(ds, "Ontario", ["Narnia"], None, "2022-08-05")
    with pytest.raises(InputError, match="name control geographies"):
        outage_impact(ds, "Ontario", ["control_group"], None, "2022-08-05")
    with pytest.raises(InputError, match="both the outcome and a control"):
        outage_impact(ds, "Ontario", ["Ontario"], None, "2022-08-05")


@pytest.mark.realdata
def test_statcan_ontario_august_2022_is_small_and_uncertain(tmp_path):
    """Real data: at monthly resolution the outage is a small dip whose interval includes zero."""
    f = real_file("statcan_20100056_cannabis_retailers_monthly_by_province.csv")
    out, _ = import_statcan(f, tmp_path / "statcan")
    ds = load_dataset(out)
    res = outage_impact(ds, "Ontario", ["rest_of:Canada"], "2021-01-01", "2022-08-05", seed=2022)
    fig = impact_figures(res)
    assert -0.10 < fig["rel_effect"] < 0  # a dip of a few per cent (raw month-on-month: -2.19%)
    assert fig["rel_effect_lo"] < fig["rel_effect"] < fig["rel_effect_hi"]
    assert fig["rel_effect_lo"] < 0 < fig["rel_effect_hi"]  # honest: cannot rule out no effect
    assert fig["p_value"] > 0.05
    assert "cannot rule out" in res.report()
