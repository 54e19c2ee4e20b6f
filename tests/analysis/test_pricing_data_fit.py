"""Pricing text and labels follow the dataset (issue #13): currency from the manifest, the illicit-market
comparison only for Canadian data (one plain sentence otherwise), no hard-coded market name."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest

from cannabis_market.analysis import pricing as P
from cannabis_market.errors import InputError

OREGON = {"name": "oregon", "currency": "USD", "region": "Oregon", "frequency": "monthly"}


def _prices(n: int = 30) -> pl.DataFrame:
    periods = pl.date_range(dt.date(2019, 1, 1), dt.date(2021, 12, 1), "1mo", eager=True)[:n]
    return pl.DataFrame({"period": periods, "price_per_g": [10 * math.exp(-0.005 * i) for i in range(n)]})


def _inputs(currency: str, wholesale: pl.DataFrame | None = None) -> P.PriceInputs:
    p = _prices()
    return P.PriceInputs(
        prices=p,
        panel=None,
        by_category=None,
        wholesale=wholesale,
        population=None,
        currency=currency,
        category="dried_flower",
        latest_price=float(p["price_per_g"][-1]),
    )


def test_illicit_comparison_is_left_out_for_non_canadian_data_in_one_sentence():
    ctx = P.illicit_context(OREGON)
    assert not ctx.applies and ctx.gap is None and ctx.figures() == {}
    assert ctx.report().count(". ") == 0 and ctx.report().endswith(".")
    assert "Statistics Canada" in ctx.report() and "Oregon" in ctx.report() and "USD" in ctx.report()
    assert ctx.summary().height == 0
    with pytest.raises(InputError, match="does not apply"):
        ctx.chart()


def test_illicit_comparison_for_canadian_data_uses_statcan_figures():
    ctx = P.illicit_context({"currency": "CAD", "region": "Ontario"})
    assert ctx.applies and ctx.gap.height == 4
    assert ctx.figures()["illicit_premium_pct_latest"] == pytest.approx(10.30 / 5.73 - 1)
    assert "CA$10.30" in ctx.report() and "CA$5.73" in ctx.report()
    assert ctx.chart().to_dict()


def test_margin_step_uses_an_assumed_wholesale_price_only_for_canadian_data():
    path, note = _inputs("CAD").wholesale_prices(anchor=4.05)
    assert path is not None and path["wholesale_per_g"].n_unique() == 1 and "CA$4.05" in note
    none, why = _inputs("USD").wholesale_prices()
    assert none is None and "left out" in why and "USD" in why
    own = _prices().select("period", wholesale_per_g=pl.col("price_per_g") / 3)
    path, note = _inputs("USD", own).wholesale_prices()
    assert path is own and note == ""
    assert _inputs("USD").symbol == "US$" and _inputs("CAD").symbol == "CA$"


def test_currency_labels_come_from_the_manifest_code():
    res = P.price_trend(_prices(), breaks=False, currency="USD")
    y = str(res.chart().to_dict())
    assert "US$" in y and "CA$" not in y
    m = P.margin_squeeze(_prices(), 4.05, currency="USD")
    assert "CA$4.05" not in m.report() and "USD" in m.report()
    assert "US$" in str(m.chart().to_dict())
    assert "CA$4.05/g" in P.margin_squeeze(_prices()).report()


def test_no_market_name_is_hard_coded_in_pricing_code():
    pkg = Path(P.__file__).parent
    hits = [f.name for f in pkg.glob("*.py") if "Ontario" in f.read_text()]
    assert hits == []
