"""What-if outage simulator: exact replay of the shared outage model, monotonicity, noise, bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cannabis_market.analysis.scenarios import ScenarioInputs, simulate_outage_scenarios
from cannabis_market.data.outage_model import lost_share, served_share
from cannabis_market.errors import InputError


@pytest.fixture(scope="module")
def inputs() -> ScenarioInputs:
    rng = np.random.default_rng(11)
    n = 400
    return ScenarioInputs(
        store_id=[f"S{i}" for i in range(n)],
        days_of_cover=np.round(rng.gamma(6.25, 1.2, n), 2),
        daily_demand=rng.lognormal(np.log(3000), 0.4, n),
    )


def test_zero_noise_is_the_outage_model_exactly(inputs):
    res = simulate_outage_scenarios(inputs, [3, 7, 14, 21], partial_days=8, partial_fill=0.5, n_sims=50)
    s = res.summary()
    assert s["stop_days"].to_list() == [3, 7, 14, 21]
    for row in s.iter_rows(named=True):
        expected = (lost_share(inputs.days_of_cover, row["stop_days"], 8, 0.5) * inputs.daily_demand).sum()
        assert row["lost_sales"] == pytest.approx(expected, rel=1e-12)
        assert row["lo"] == pytest.approx(row["lost_sales"]) and row["hi"] == pytest.approx(row["lost_sales"])
        n_out = (lost_share(inputs.days_of_cover, row["stop_days"], 8, 0.5) > 0).sum()
        assert row["stores_stocking_out"] == n_out
    by_store = res.by_store.filter(pl.col("stop_days") == 7)
    assert by_store.height == inputs.n_stores
    assert by_store["lost_sales"].sum() == pytest.approx(s["lost_sales"][1])


def test_day_profile_demand_matches_direct_computation():
    rng = np.random.default_rng(2)
    cover = rng.uniform(0, 12, 50)
    demand = rng.uniform(1000, 5000, (50, 10))  # 10-day profile, repeated by week beyond
    inp = ScenarioInputs(np.arange(50), cover, demand)
    res = simulate_outage_scenarios(inp, [5], partial_days=8, partial_fill=0.72, n_sims=1)
    full = inp.demand_matrix(13)
    np.testing.assert_allclose(full[:, 10:], demand[:, 3:6])
    expected = ((1 - served_share(cover, 5, 8, 0.72)[:, :13]) * full).sum()
    assert res.summary()["lost_sales"][0] == pytest.approx(expected, rel=1e-12)


def test_longer_stops_lose_more(inputs):
    res = simulate_outage_scenarios(
        inputs, [0, 3, 7, 14, 21], n_sims=200, demand_cv=0.2, cover_cv=0.2, partial_fill_range=(0.3, 0.7)
    )
    s = res.summary()
    lost = s["lost_sales"].to_numpy()
    assert (np.diff(lost) > 0).all()
    assert (np.diff(s["stores_stocking_out"].to_numpy()) >= 0).all()
    assert (np.diff(s["hi"].to_numpy()) > 0).all()
    assert (s["share_of_monthly_sales"] > 0).all()
    per_store = res.by_store.pivot(on="stop_days", index="store_id", values="lost_sales")
    assert (per_store["21"] >= per_store["14"] - 1e-9).all()


def test_intervals_widen_with_noise(inputs):
    widths = []
    for cv in (0.0, 0.1, 0.3):
        s = simulate_outage_scenarios(inputs, [7], n_sims=300, demand_cv=cv, cover_cv=cv, seed=1).summary()
        widths.append(s["hi"][0] - s["lo"][0])
        assert s["lo"][0] <= s["lost_sales"][0] <= s["hi"][0]
    assert widths[0] == 0 and widths[0] < widths[1] < widths[2]
    base = simulate_outage_scenarios(inputs, [7], n_sims=300, seed=1).summary()
    fill = simulate_outage_scenarios(inputs, [7], n_sims=300, seed=1, partial_fill_range=(0.2, 0.8)).summary()
    assert fill["hi"][0] - fill["lo"][0] > base["hi"][0] - base["lo"][0]


def test_redraw_cover_from_distribution():
    inp = ScenarioInputs.from_distribution(300, 3000.0, cover_mean=7.5, cover_sd=3.0, seed=4)
    fixed = simulate_outage_scenarios(inp, [7], n_sims=200).summary()
    redraw = simulate_outage_scenarios(inp, [7], n_sims=200, redraw_cover=True).summary()
    assert redraw["hi"][0] > redraw["lo"][0]
    assert redraw["lost_sales"][0] == pytest.approx(fixed["lost_sales"][0], rel=0.2)


def test_goodwill_costs(inputs):
    res = simulate_outage_scenarios(
        inputs, [3, 14], delivery_fee_per_store_per_day=10.0, waived_fee_days=57, rush_fee_per_store=500
    )
    s = res.summary()
    n = inputs.n_stores
    assert s["goodwill_cost"].to_list() == pytest.approx([n * (570 + 500)] * 2)
    assert s["total_cost"].to_list() == pytest.approx((s["lost_sales"] + s["goodwill_cost"]).to_list())
    only_out = simulate_outage_scenarios(inputs, [3, 14], goodwill_stores="stocked_out").summary()
    assert only_out["goodwill_cost"].to_list() == pytest.approx((500 * s["stores_stocking_out"]).to_list())
    text = res.report()
    assert "rush-order fee waived" in text and "what-if" in text
    assert "not costed" in simulate_outage_scenarios(inputs, [3]).report()


def test_frame_input_and_chart(inputs):
    df = pl.DataFrame(
        {
            "store_id": inputs.store_id,
            "days_of_cover": inputs.days_of_cover,
            "daily_demand": inputs.daily_demand,
        }
    )
    res = simulate_outage_scenarios(df, [3, 7], n_sims=20, demand_cv=0.1)
    spec = res.chart().to_dict()
    assert len(spec["layer"]) == 2
    assert res.summary().height == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stop_days_list": [3, -1]}, "stop lengths must be >= 0"),
        ({"partial_fill": 1.2}, "partial_fill must be within"),
        ({"partial_fill": -0.1}, "partial_fill must be within"),
        ({"partial_fill_range": (0.5, 1.5)}, "partial_fill_range"),
        ({"partial_days": -2}, "partial_days"),
        ({"n_sims": 0}, "n_sims"),
        ({"demand_cv": -0.1}, "demand_cv"),
        ({"redraw_cover": True}, "distribution"),
        ({"stop_days_list": []}, "empty"),
    ],
)
def test_bad_parameters(inputs, kwargs, match):
    with pytest.raises(InputError, match=match):
        simulate_outage_scenarios(inputs, **kwargs)


def test_bad_inputs():
    with pytest.raises(InputError, match="negative days"):
        ScenarioInputs(["a", "b"], [3.0, -1.0], [100.0, 100.0])
    with pytest.raises(InputError, match="no stores"):
        ScenarioInputs([], [], [])
    with pytest.raises(InputError, match="empty"):
        simulate_outage_scenarios(
            pl.DataFrame(
                schema={"store_id": pl.String, "days_of_cover": pl.Float64, "daily_demand": pl.Float64}
            )
        )
    with pytest.raises(InputError, match="daily_demand"):
        ScenarioInputs(["a"], [3.0], [-5.0])
    with pytest.raises(InputError, match="missing"):
        simulate_outage_scenarios(pl.DataFrame({"store_id": ["a"], "days_of_cover": [1.0]}))


# ------------------------------------------------------------------------------ generated dataset


@pytest.fixture(scope="module")
def generated(outage_dataset):
    return outage_dataset


def test_replays_the_generators_true_loss(generated):
    from cannabis_market.analysis.outage import scenario_inputs

    truth = generated.manifest["truth"]["outage_2022"]
    fill, stop, partial = float(truth["partial_fill"]), int(truth["stop_days"]), int(truth["partial_days"])
    total = float(truth["lost_sales_total"])
    # actual covers from inventory, counterfactual demand reconstructed from the sales, true fill, no noise
    inp = scenario_inputs(generated, demand="reconstructed", partial_fill=fill, horizon=stop + partial)
    res = simulate_outage_scenarios(inp, [stop], partial_days=partial, partial_fill=fill)
    assert res.summary()["lost_sales"][0] == pytest.approx(total, rel=0.025)
    by_store = res.by_store.filter(pl.col("lost_sales") > 0)
    assert set(truth["lost_sales_by_store"]) <= set(by_store["store_id"].to_list())
    # model-free normal demand (same-weekday averages before the outage) is close, not exact
    base = scenario_inputs(generated, demand="baseline", horizon=stop + partial)
    approx = simulate_outage_scenarios(base, [stop], partial_days=partial, partial_fill=fill).summary()
    assert approx["lost_sales"][0] == pytest.approx(total, rel=0.15)


def test_served_share_takes_one_partial_fill_per_run_exactly_as_run_by_run():
    rng = np.random.default_rng(4)
    cover = rng.uniform(0, 12, (5, 30))
    fills = rng.uniform(0.2, 0.9, 5)
    together = served_share(cover, 4, 8, fills[:, None], horizon=14)
    one_by_one = np.stack([served_share(cover[j], 4, 8, float(fills[j]), horizon=14) for j in range(5)])
    assert np.array_equal(together, one_by_one)
    with pytest.raises(ValueError, match="partial_fill"):
        served_share(cover, 4, 8, np.array([[0.5], [1.5], [0.5], [0.5], [0.5]]))
