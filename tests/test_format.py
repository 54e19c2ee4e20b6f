"""The one formatter: money in the dataset's currency with k/M/B, p-values, months, labels."""

from __future__ import annotations

import math

import pytest

from cannabis_market import format as fmt


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        (2_513_000_000, "CAD", "CA$2.51B"),
        (118_400, "USD", "US$118k"),
        (6_649_670.64, "CAD", "CA$6.65M"),
        (4.05, "CAD", "CA$4.05"),
        (-5_000, "USD", "-US$5.00k"),
        (999_600, "CAD", "CA$1.00M"),
        (1_500, "EUR", "€1.50k"),
        (12_345, "CHF", "CHF 12.3k"),
    ],
)
def test_money_three_significant_digits_in_the_currency(value: float, currency: str, expected: str) -> None:
    assert fmt.fmt_money(value, currency=currency) == expected


def test_fixed_decimals_move_up_a_unit_instead_of_printing_1000k() -> None:
    assert fmt.fmt_cad(999_960) == "CA$1.0M"
    assert fmt.fmt_cad(949_000) == "CA$949.0k"
    assert fmt.fmt_cad(950) == "CA$950"


def test_active_currency_follows_the_manifest_and_is_restored() -> None:
    assert fmt.fmt_cad(8.0e9) == "CA$8.0B"
    with fmt.use_currency({"currency": "usd"}):
        assert fmt.fmt_cad(8.0e9) == "US$8.0B"
        assert fmt.currency_symbol() == "US$"
    assert fmt.fmt_cad(8.0e9) == "CA$8.0B"


def test_missing_values_and_p_values() -> None:
    assert fmt.fmt_money(None) == "n/a"
    assert fmt.fmt_money(float("nan")) == "n/a"
    assert fmt.fmt_p(0.0004) == "< 0.001"
    assert fmt.fmt_p(0.0312) == "0.03"
    assert fmt.fmt_p(0.004) == "0.004"


def test_round_sig_and_readable_labels_and_dates() -> None:
    assert fmt.round_sig(6_649_670.64, 3) == 6_650_000
    assert math.isclose(fmt.round_sig(0.012345, 2), 0.012)
    assert fmt.label("sales_of_stores_running_short") == "Sales of stores running short"
    assert fmt.label("Dried_flower") == "Dried flower"
    assert fmt.fmt_month("2022-04-01") == "Apr 2022"
    assert fmt.fmt_day("2022-08-05") == "5 Aug 2022"


def test_every_time_axis_tick_names_its_year() -> None:
    """The theme's time format: ticks read 'Apr 2019', '2020', '3 Apr 2019' - never a bare month name."""
    import datetime as dt
    import re

    import altair as alt
    import polars as pl
    import vl_convert as vlc

    from cannabis_market import theme

    theme.enable()
    for days, step in ((2000, 30), (400, 30), (30, 1)):
        dates = [dt.date(2019, 4, 1) + dt.timedelta(days=i) for i in range(0, days, step)]
        frame = pl.DataFrame({"date": dates, "v": list(range(len(dates)))})
        chart = alt.Chart(frame).mark_line().encode(x=alt.X("date:T", title=None), y=alt.Y("v:Q", title=None))
        svg = vlc.vegalite_to_svg(chart.to_json())
        labels = [t for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg) if re.search(r"[A-Za-z]", t)]
        assert labels, days
        assert all(re.search(r"\b(19|20)\d\d\b", t) for t in labels), labels
