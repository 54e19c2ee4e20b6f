"""The legal price premium over illicit-market prices (StatCan's crowdsourced Canadian figures)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from cannabis_market.analysis.pricing._base import as_date, check_freq, positive, require, to_frame, trunc
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_date, fmt_pct

if TYPE_CHECKING:
    import altair as alt

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


@dataclass
class IllicitContext:
    """The legal-vs-illicit comparison for a dataset, or the one plain sentence saying why it is left out.

    The only illicit-market prices available are Statistics Canada's Canadian figures in CA$, so the
    comparison applies only to Canadian data (a dataset whose manifest currency is CAD)."""

    applies: bool
    note: str
    gap: pl.DataFrame | None = None
    source: str = STATCAN_SOURCE

    def figures(self) -> dict[str, float]:
        if self.gap is None:
            return {}
        return {"illicit_premium_pct_latest": float(self.gap["premium_pct"][-1])}

    def summary(self) -> pl.DataFrame:
        """The period-by-period gap (empty when the comparison does not apply)."""
        if self.gap is None:
            return pl.DataFrame(schema={"period": pl.Date, "legal": pl.Float64, "illicit": pl.Float64})
        return self.gap

    def report(self) -> str:
        return self.note

    def chart(self) -> alt.LayerChart:
        from cannabis_market.analysis.pricing.charts import illicit_gap_chart

        if self.gap is None:
            raise InputError(f"illicit_context: no chart, the comparison does not apply ({self.note})")
        return illicit_gap_chart(self.gap, source=self.source)


def illicit_context(manifest: Mapping[str, Any] | None) -> IllicitContext:
    """Legal vs illicit price per gram from StatCan's Canadian figures when the dataset is Canadian (its
    manifest currency is CAD); otherwise the reason it is left out, in one sentence."""
    m = dict(manifest or {})
    currency = str(m.get("currency", "")).upper()
    where = m.get("region") or m.get("name") or "this dataset"
    if currency != "CAD":
        return IllicitContext(
            applies=False,
            note=(
                "The comparison with illicit-market prices is left out: the only illicit price figures available "
                f"are Statistics Canada's Canadian ones, in Canadian dollars, which say nothing about {where}"
                f"{f' (prices in {currency})' if currency else ''}."
            ),
        )
    legal, illicit = statcan_legal_illicit()
    gap = illicit_gap(legal, illicit)
    first, last = gap.row(0, named=True), gap.row(-1, named=True)
    note = (
        f"For context, Statistics Canada's crowdsourced prices (Canada-wide, self-selected sample) put legal "
        f"cannabis at CA${first['legal']:.2f} a gram against CA${first['illicit']:.2f} illicit in "
        f"{fmt_date(first['period'], True)} and CA${last['legal']:.2f} against CA${last['illicit']:.2f} in "
        f"{fmt_date(last['period'], True)}, a legal premium of {fmt_pct(last['premium_pct'])}; no later "
        "figures were published."
    )
    return IllicitContext(applies=True, note=note, gap=gap)
