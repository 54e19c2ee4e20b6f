"""The legal price premium over illicit-market prices (StatCan's crowdsourced Canadian figures)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from cannabis_market.analysis.pricing._base import as_date, check_freq, positive, require, to_frame, trunc
from cannabis_market.errors import InputError

STATCAN_SOURCE = "Statistics Canada, The Daily 2020-01-23"
_STATCAN_LEGAL_ILLICIT = (  # quarter start, legal CA$/g, illegal CA$/g (crowdsourced, Canada)
    (dt.date(2018, 10, 1), 9.69, 6.44),
    (dt.date(2019, 4, 1), 10.65, 5.93),
    (dt.date(2019, 7, 1), 10.23, 5.59),
    (dt.date(2019, 10, 1), 10.30, 5.73),
)


def statcan_legal_illicit() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Crowdsourced average Canadian price per gram, legal and illegal, by quarter (period = quarter start).

    Source: Statistics Canada, The Daily 2020-01-23 (StatsCannabis crowdsourcing, Q4 2018 to Q4 2019;
    self-selected sample, Canada-wide). Returns (legal, illicit), each with period, price_per_g.
    """
    period = [r[0] for r in _STATCAN_LEGAL_ILLICIT]
    legal = pl.DataFrame({"period": period, "price_per_g": [r[1] for r in _STATCAN_LEGAL_ILLICIT]})
    illicit = pl.DataFrame({"period": period, "price_per_g": [r[2] for r in _STATCAN_LEGAL_ILLICIT]})
    return legal, illicit


def illicit_gap(legal: pl.DataFrame, illicit: pl.DataFrame, align: str | None = None) -> pl.DataFrame:
    """Legal price per gram against an illicit-market price series, period by period.

    Both frames have period, price_per_g. With `align` ("monthly", "quarterly", "annual") both are first
    averaged within that period (e.g. monthly legal prices against a quarterly illicit series). Returns
    period, legal, illicit, gap (legal - illicit, per gram), premium_pct (legal / illicit - 1) for the
    periods both series cover.
    """
    where = "illicit_gap"
    frames = []
    for name, f in (("legal", legal), ("illicit", illicit)):
        f = to_frame(f, f"{where} ({name})")
        require(f, ["period", "price_per_g"], f"{where} ({name})")
        f = positive(
            as_date(f.select("period", "price_per_g"), "period", where), "price_per_g", f"{where} ({name})"
        )
        if align is not None:
            check_freq(align)
            f = f.group_by(pl.col("period").dt.truncate(trunc(align))).agg(pl.col("price_per_g").mean())
        dup = int(f["period"].is_duplicated().sum())
        if dup:
            raise InputError(
                f"{where} ({name}): {dup} rows share a period; pass one price per period or use align="
            )
        frames.append(f.rename({"price_per_g": name}))
    out = frames[0].join(frames[1], on="period", how="inner").sort("period")
    if out.height == 0:
        raise InputError(
            f"{where}: the legal and illicit series share no period (legal {frames[0]['period'].min()}.."
            f"{frames[0]['period'].max()}, illicit {frames[1]['period'].min()}..{frames[1]['period'].max()}); "
            "try align='quarterly'"
        )
    return out.with_columns(
        gap=pl.col("legal") - pl.col("illicit"), premium_pct=pl.col("legal") / pl.col("illicit") - 1
    )
