"""The one date coercion (dates.py) and the shared result pieces (analysis/results.py)."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from cannabis_market.analysis.inference import fe_ols
from cannabis_market.analysis.results import Estimate, check_alpha
from cannabis_market.dates import date_column, every, frequency, periods_per_year, require_date, to_date
from cannabis_market.errors import InputError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-08-05", dt.date(2022, 8, 5)),
        (" 2022-08-05T10:00:00 ", dt.date(2022, 8, 5)),
        ("2022-08", dt.date(2022, 8, 1)),
        (dt.datetime(2022, 8, 5, 23, 59), dt.date(2022, 8, 5)),
        (dt.date(2022, 8, 5), dt.date(2022, 8, 5)),
        (None, None),
        ("", None),
    ],
)
def test_to_date_accepts_dates_datetimes_and_iso_strings(value, expected):
    assert to_date(value) == expected


@pytest.mark.parametrize("bad", ["05/08/2022", "2022-13-01", 20220805, 3.5])
def test_bad_dates_name_the_parameter(bad):
    with pytest.raises(InputError, match="outage_start must be a date"):
        to_date(bad, "outage_start")


def test_required_date_and_date_columns():
    with pytest.raises(InputError, match="start is required"):
        require_date(None, "start")
    df = pl.DataFrame({"d": ["2022-01-31", None]})
    assert date_column(df, "d", "t")["d"].to_list() == [dt.date(2022, 1, 31), None]
    with pytest.raises(InputError, match="1 value"):
        date_column(pl.DataFrame({"d": ["2022-01-31", "soon"]}), "d", "sales.csv")
    with pytest.raises(InputError, match="must hold dates"):
        date_column(pl.DataFrame({"d": [1, 2]}), "d", "sales.csv")


def test_frequency_names_in_both_spellings():
    assert frequency("month") == frequency("Monthly") == "monthly"
    assert every("quarter") == every("quarterly") == "1q"
    assert periods_per_year("week") == pytest.approx(365.25 / 7)
    with pytest.raises(InputError, match="freq must be one of"):
        frequency("fortnightly")


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, True, "0.05", None, math.nan])
def test_alpha_check(bad):
    with pytest.raises(InputError, match="price_trend: alpha must be in"):
        check_alpha(bad, "price_trend")
    assert check_alpha(0.1) == 0.1


def test_estimate_helpers():
    e = Estimate(-0.1, 0.02, -0.14, -0.06, 0.001)
    assert e.point == e.estimate and e.covers(-0.1) and not e.covers(0.0)
    assert e.as_pct().estimate == pytest.approx(math.expm1(-0.1)) and math.isnan(e.as_pct().se)
    assert e.scaled(12).lo == pytest.approx(-1.68)
    assert e.row(term="x") == {
        "term": "x",
        "estimate": -0.1,
        "std_error": 0.02,
        "lo": -0.14,
        "hi": -0.06,
        "p_value": 0.001,
    }
    df = pl.DataFrame(
        {"g": [1, 1, 2, 2, 3, 3] * 3, "x": list(range(18)), "y": [v * 0.5 + (v % 3) for v in range(18)]}
    )
    fit = fe_ols(
        df.with_columns(pl.col("x").cast(pl.Float64), pl.col("y").cast(pl.Float64)), "y", ["x"], fe=["g"]
    )
    got = Estimate.from_fit(fit, "x")
    assert (got.estimate, (got.lo, got.hi)) == (fit.coef["x"], fit.ci("x"))
