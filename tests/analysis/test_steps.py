"""analysis.steps: each notebook step gives the estimator's own figures, a skipped step says why in one
plain sentence, bad parameters and bugs are not turned into skips, and notebooks 02 and 03 (built on the
steps) run end to end on generated, store-level real and aggregate real data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cannabis_market.analysis import growth, pricing, steps
from cannabis_market.cli import main as cli_main
from cannabis_market.data.generate import generate_dataset
from cannabis_market.data.loader import load_dataset
from cannabis_market.errors import InputError

from conftest import REPO, real_file

ALPHA, SEED, HORIZON = 0.1, 5, 6
TECHNICAL = ("Error", "['", "_lc", "period_effects", "Traceback", "fe_ols", "__", "None")


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    folder = generate_dataset(
        tmp_path_factory.mktemp("steps") / "ds", seed=11, stores=40, start="2020-01-01", frequency="monthly"
    )
    return load_dataset(folder)


@pytest.fixture(scope="module")
def inputs(ds):
    return pricing.price_inputs(ds, category="dried_flower")


@pytest.fixture(scope="module")
def statcan(tmp_path_factory):
    """The StatCan retail-sales import (aggregate series only, no stores), Ontario selected."""
    src = real_file("statcan_20100056_cannabis_retailers_monthly_by_province.csv")
    out = tmp_path_factory.mktemp("statcan") / "statcan"
    assert cli_main(["data", "import-statcan", str(src), "--out", str(out)]) == 0
    return steps.select(load_dataset(out), "Ontario", "2019-01-01", "2024-12-31")


def assert_plain(reason: str | None) -> None:
    """One sentence for a reader: capitalised, ends with a full stop, no code or error text."""
    assert reason and reason[0].isupper() and reason.endswith("."), reason
    assert ". " not in reason.rstrip("."), f"more than one sentence: {reason}"
    assert not any(t in reason for t in TECHNICAL), reason


def test_growth_steps_give_the_estimators_own_figures(ds):
    sel = steps.select(ds, "all", "2020-01-01", None)
    g = steps.growth.store_growth(sel, start="2020-01-01", horizon=HORIZON, alpha=ALPHA, seed=SEED)
    fit = growth.fit_store_growth(
        growth.store_counts(sel.stores, start="2020-01-01"), horizon=HORIZON, alpha=ALPHA, seed=SEED
    )
    assert g.applies and g.result.best_model == fit.best_model
    assert g.figures() == pytest.approx(
        {
            "carrying_capacity": fit.best.K,
            "carrying_capacity_lo": fit.best.interval["K"][0],
            "carrying_capacity_hi": fit.best.interval["K"][1],
        }
    )
    assert g.report() == fit.report()

    d = steps.growth.demand_forecast(sel, horizon=HORIZON, alpha=ALPHA)
    direct = growth.forecast_demand(growth.market_sales(sel), horizon=HORIZON, alpha=ALPHA, currency="CAD")
    assert d.report() == direct.report()
    assert d.tables()[0].diagnostic  # model fits repeat to rounding, not to the last bit
    assert_frame_equal(d.tables()[0].frame, direct.backtest, rel_tol=1e-3)

    s = steps.growth.saturation(sel, breakeven_monthly_revenue=60_000.0, trailing_months=4, forecast=d)
    sat = growth.saturation(
        sel,
        breakeven_monthly_revenue=60_000.0,
        trailing_months=4,
        forecast=direct,
        min_cell=3,
        currency="CAD",
    )
    assert s.figures() == {"stores_at_risk": sat.stores_at_risk}
    assert s.tables()[0].frame.equals(sat.summary())
    assert len(s.charts()) == 1 + (sat.capacity is not None) + (sat.density is not None)

    c = steps.growth.cannibalization(sel, alpha=ALPHA)
    can = growth.cannibalization(sel, alpha=ALPHA)
    assert c.figures() == pytest.approx(
        {
            "cannibalization_elasticity": can.elasticity,
            "cannibalization_elasticity_lo": can.lo,
            "cannibalization_elasticity_hi": can.hi,
        }
    )


def test_pricing_steps_give_the_estimators_own_figures(ds, inputs):
    t = steps.pricing.price_trend(inputs, alpha=ALPHA, seed=SEED)
    trend = pricing.price_trend(inputs.prices, alpha=ALPHA, seed=SEED, currency="CAD")
    assert t.figures() == pytest.approx(inputs.figures() | trend.figures())
    assert t.result.currency == "CAD" and "dried flower price per gram" in t.report()

    e = steps.pricing.price_elasticity(inputs, alpha=ALPHA)
    assert e.figures() == pytest.approx(pricing.price_elasticity(inputs.panel, alpha=ALPHA).figures())

    c = steps.pricing.competition(inputs, alpha=ALPHA)
    direct = pricing.competition_price_effect(inputs.panel, alpha=ALPHA, population=inputs.population)
    assert c.figures() == pytest.approx(direct.figures())

    k = steps.pricing.compression(inputs, alpha=ALPHA, seed=SEED)
    index = pricing.compression_trend(inputs.panel, alpha=ALPHA, seed=SEED)
    assert k.figures() == {}  # its rate would clash with the trend's price_change_annual
    assert k.report() == steps.pricing.INDEX_INTRO + index.report()

    m = steps.pricing.margin(inputs, wholesale_per_g=4.5, wholesale_annual_change=-0.05, alpha=ALPHA)
    path = pricing.wholesale_path(inputs.prices["period"], anchor=4.5, annual_change=-0.05)
    assert m.figures() == pytest.approx(pricing.margin_squeeze(inputs.prices, path, alpha=ALPHA).figures())
    assert m.report().startswith("Wholesale prices are not in the data; the margin assumes CA$4.50")

    i = steps.pricing.illicit(ds)
    assert i.applies and i.figures() == pricing.illicit_context(ds.manifest).figures()
    assert [type(v).__name__ for v in i.shown()][0] == "Table" and len(i.charts()) == 1


def test_non_canadian_data_without_wholesale_prices_skips_the_margin_and_says_why(ds, inputs):
    usd = dataclasses.replace(inputs, currency="USD")
    m = steps.pricing.margin(usd, wholesale_per_g=4.05, alpha=ALPHA)
    assert not m.applies and m.figures() == {} and m.shown() == []
    assert_plain(m.skipped)
    assert "USD" in m.report()
    us = dataclasses.replace(ds, manifest={**ds.manifest, "currency": "USD", "region": "Oregon"})
    i = steps.pricing.illicit(us)
    assert i.shown() == [] and i.figures() == {} and "Oregon" in i.report()


def test_a_series_only_dataset_skips_the_store_level_steps_with_a_reason(statcan):
    assert statcan.sales is None and statcan.stores is None
    assert statcan.series.select(pl.col("geo").n_unique()).collect().item() == 1  # Ontario alone
    store_level = [
        steps.growth.store_growth(statcan, horizon=HORIZON),
        steps.growth.saturation(statcan, breakeven_monthly_revenue=1e5),
        steps.growth.cannibalization(statcan),
    ]
    for step in store_level:
        assert not step.applies and step.figures() == {} and step.shown() == []
        assert_plain(step.skipped)
        assert step.report() == step.skipped
    demand = steps.growth.demand_forecast(statcan, horizon=HORIZON)
    assert demand.applies and len(demand.charts()) == 1  # market totals are enough for demand


def test_no_variation_in_local_competition_and_a_short_window_give_plain_reasons(ds, inputs):
    one_town = dataclasses.replace(ds, stores=ds.stores.with_columns(municipality=pl.lit("Everywhere")))
    c = steps.growth.cannibalization(one_town)
    assert not c.applies and c.detail  # the estimator's own message is kept for developers
    assert_plain(c.skipped)

    short = steps.select(ds, "all", "2024-09-01", "2024-12-31")
    skipped = [
        steps.growth.store_growth(short, start="2024-09-01", end="2024-12-31"),
        steps.growth.demand_forecast(short),
        steps.pricing.price_trend(pricing.price_inputs(ds, start="2024-09-01", end="2024-12-31")),
    ]
    for step in skipped:
        assert not step.applies, step.name
        assert_plain(step.skipped)
    no_panel = dataclasses.replace(inputs, panel=None)
    for fn in (steps.pricing.price_elasticity, steps.pricing.competition, steps.pricing.compression):
        assert_plain(fn(no_panel).skipped)


def test_bad_parameters_and_bugs_are_not_turned_into_skips(ds, inputs, monkeypatch):
    with pytest.raises(InputError, match="alpha"):
        steps.growth.cannibalization(ds, alpha=2)
    with pytest.raises(InputError, match="forecast_months"):
        steps.growth.demand_forecast(ds, horizon=0)
    with pytest.raises(InputError, match="wholesale_per_g"):
        steps.pricing.margin(inputs, wholesale_per_g=-1.0)

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(growth, "cannibalization", broken)
    with pytest.raises(KeyError):
        steps.growth.cannibalization(ds)


def test_apply_swaps_the_result_only_when_the_step_applies(inputs):
    trend = steps.pricing.price_trend(inputs)
    seen = []
    protected = trend.apply(lambda r: seen.append(r) or dataclasses.replace(r, label="protected"))
    assert (
        seen == [trend.result] and protected.result.label == "protected" and trend.result.label != "protected"
    )
    skipped = steps.pricing.price_elasticity(dataclasses.replace(inputs, panel=None))
    assert skipped.apply(lambda r: pytest.fail("applied to a skipped step")) is skipped


def test_show_step_records_figures_then_shows_text_tables_and_charts_in_order(inputs, tmp_path, monkeypatch):
    from cannabis_market.reports import nb
    from cannabis_market.reports.results import RESULTS_ENV

    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    nb.setup()
    shown = []
    monkeypatch.setattr(nb, "text", lambda s: shown.append(("text", s)))
    monkeypatch.setattr(nb, "table", lambda f, caption=None: shown.append(("table", caption)))
    monkeypatch.setattr(nb, "chart", lambda c: shown.append(("chart", type(c).__name__)))
    step = steps.pricing.price_elasticity(inputs)
    nb.show_step(step)
    assert [k for k, _ in shown] == ["text", "table", "chart"]
    assert shown[0][1] == step.report() and shown[1][1] == step.tables()[0].caption
    figures = json.loads((tmp_path / "results.json").read_text())["figures"]
    assert set(figures) == set(step.figures())
    shown.clear()
    nb.show_step(steps.pricing.competition(dataclasses.replace(inputs, panel=None)))
    assert shown == [("text", steps.pricing.NO_PANEL.format(what="the price effect of local competition"))]


def _report_figures(out: Path) -> dict[str, dict]:
    found = {}
    for f in out.glob("*/*/results.json"):
        data = json.loads(f.read_text())
        assert data["status"] == "ok", (f, data.get("error"))
        found[f.parent.parent.name] = data["figures"]
    return found


@pytest.mark.slow
def test_notebooks_02_and_03_run_on_generated_data(tmp_path):
    data = generate_dataset(tmp_path / "ds", seed=7, stores=60)
    out = tmp_path / "out"
    nbs = ["02_store_growth_vs_demand", "03_price_compression"]
    assert cli_main(["report", *nbs, "-p", f"dataset={data}", "--out", str(out), "--jobs", "2"]) == 0
    figures = _report_figures(out)
    assert {"carrying_capacity", "stores_at_risk", "cannibalization_elasticity"} <= set(figures[nbs[0]])
    assert {"price_change_annual", "price_elasticity", "competition_effect", "margin_pct_end"} <= set(
        figures[nbs[1]]
    )
    html = (next((out / nbs[0]).glob("*/report.html"))).read_text()
    assert "store_id" not in html and "Traceback" not in html


@pytest.mark.slow
@pytest.mark.realdata
def test_notebooks_02_and_03_run_on_the_washington_and_oregon_imports(tmp_path):
    data = tmp_path / "real"
    for action, name, file in [
        ("import-washington", "washington", "washington_lcb_retail_sales_by_license_monthly_2017-2021.xlsx"),
        ("import-oregon", "oregon", "oregon_olcc_monthly_sales_prices_2016-2021.xlsx"),
    ]:
        assert cli_main(["data", action, str(real_file(file)), "--out", str(data / name)]) == 0
    cfg = tmp_path / "reports.yml"
    cfg.write_text(
        (REPO / "reports.yml")
        .read_text()
        .replace("data/real/", f"{data}/")
        .replace("notebooks/", f"{REPO}/notebooks/")
    )
    out = tmp_path / "out"
    jobs = ["washington_saturation", "oregon_prices"]
    assert cli_main(["report", *jobs, "--config", str(cfg), "--out", str(out), "--jobs", "2"]) == 0
    figures = _report_figures(out)
    assert {"carrying_capacity", "stores_at_risk"} <= set(figures["washington_saturation"])
    assert {"price_change_annual", "margin_pct_end"} <= set(figures["oregon_prices"])
    assert "price_elasticity" not in figures["oregon_prices"]  # no store sales: skipped, not failed
    page = (out / "oregon_prices" / "default" / "report.html").read_text()
    assert "no sales by store" in page and "Traceback" not in page
