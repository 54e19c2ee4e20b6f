"""The steps of the price-compression report (notebook 03): price trend, elasticity, local competition,
constant-quality compression, margin squeeze, legal vs illicit prices. Each takes the `PriceInputs` of
the selection (`pricing.price_inputs`, protected by the notebook) and the report's parameters."""

from __future__ import annotations

from typing import Any

from cannabis_market.analysis import pricing
from cannabis_market.analysis.results import check_alpha
from cannabis_market.analysis.steps.base import Step, Table, positive, run, skip

NO_PANEL = "This dataset has no sales by store, so {what} cannot be estimated and this section is left out."


def _trend_views(result: pricing.PriceTrendResult) -> list[Any]:
    return [result.chart(), Table(result.summary(), "Annual rate of change (negative = prices falling)")]


def price_trend(inputs: pricing.PriceInputs, *, alpha: float = 0.05, seed: int = 0) -> Step:
    """The annual rate at which the price per gram changes (Newey-West interval, one break scanned).
    Its figures include the latest price."""
    check_alpha(alpha, "price_trend")
    label = f"{inputs.category.replace('_', ' ')} price per gram"
    return run(
        "price_trend",
        lambda: pricing.price_trend(
            inputs.prices, alpha=alpha, seed=seed, label=label, currency=inputs.currency
        ),
        reason=(
            f"The price trend is left out: this selection has fewer than {pricing.MIN_TREND_PERIODS} periods "
            "with a published price, too few to estimate a rate of change."
        ),
        views=_trend_views,
        figures=lambda trend: inputs.figures() | trend.figures(),
    )


def _elasticity_views(result: pricing.ElasticityResult) -> list[Any]:
    return [Table(result.summary(), "Elasticity: fixed effects vs naive regressions"), result.chart()]


def price_elasticity(inputs: pricing.PriceInputs, *, alpha: float = 0.05) -> Step:
    """How grams sold respond to price, from within-store price changes (store and month fixed effects)."""
    check_alpha(alpha, "price_elasticity")
    if inputs.panel is None:
        return skip("price_elasticity", NO_PANEL.format(what="how demand responds to price"))
    return run(
        "price_elasticity",
        lambda: pricing.price_elasticity(inputs.panel, alpha=alpha),
        reason=(
            "The price elasticity is not estimated for this selection: store prices do not vary enough over "
            "time, net of what moved every store, to measure how demand responds."
        ),
        views=_elasticity_views,
    )


def _competition_views(result: pricing.CompetitionResult) -> list[Any]:
    return [Table(result.summary(), "Price effect of local competition (store and month fixed effects)")]


def competition(inputs: pricing.PriceInputs, *, alpha: float = 0.05) -> Step:
    """How store prices move with the number of local competitors (store and month fixed effects)."""
    check_alpha(alpha, "competition")
    if inputs.panel is None:
        return skip("competition", NO_PANEL.format(what="the price effect of local competition"))
    return run(
        "competition",
        lambda: pricing.competition_price_effect(inputs.panel, alpha=alpha, population=inputs.population),
        reason=(
            "The effect of local competition on prices is not estimated for this selection: the number of "
            "local competitors does not change within stores apart from market-wide moves."
        ),
        views=_competition_views,
    )


INDEX_INTRO = "Holding stores and local competition fixed (a constant-quality price index): "


def compression(inputs: pricing.PriceInputs, *, alpha: float = 0.05, seed: int = 0) -> Step:
    """Annual compression of a constant-quality price index (same stores, local competition held fixed).
    Records no figures: its rate is a cross-check of the price trend's."""
    check_alpha(alpha, "compression")
    if inputs.panel is None:
        return skip("compression", NO_PANEL.format(what="a constant-quality price index"))
    return run(
        "compression",
        lambda: pricing.compression_trend(inputs.panel, alpha=alpha, seed=seed),
        reason=(
            "The constant-quality price index is left out: too few months have prices from the same stores "
            "to follow it over time."
        ),
        figures=lambda result: {},
        report=lambda result: INDEX_INTRO + result.report(),
    )


def margin(
    inputs: pricing.PriceInputs,
    *,
    wholesale_per_g: float = pricing.DEFAULT_WHOLESALE_PER_G,
    wholesale_annual_change: float = 0.0,
    alpha: float = 0.05,
) -> Step:
    """Retail margin over the wholesale price per gram and how fast it is squeezed. Uses the data's own
    wholesale prices, else (Canadian data) an assumed path from `wholesale_per_g`; otherwise skipped."""
    check_alpha(alpha, "margin")
    positive(wholesale_per_g, "wholesale_per_g")
    wholesale, note = inputs.wholesale_prices(anchor=wholesale_per_g, annual_change=wholesale_annual_change)
    if wholesale is None:
        return skip("margin", note)
    return run(
        "margin",
        lambda: pricing.margin_squeeze(inputs.prices, wholesale, alpha=alpha, currency=inputs.currency),
        reason=(
            "The margin squeeze is left out: retail and wholesale prices overlap in too few periods to "
            "estimate how the margin changes."
        ),
        views=lambda result: [result.chart()],
        notes=(note,) if note else (),
    )


def illicit(ds: Any) -> Step:
    """Legal vs illicit price per gram (Statistics Canada's Canadian figures): the table and chart for
    Canadian data, otherwise just the sentence saying why the comparison is left out."""
    context = pricing.illicit_context(ds.manifest)
    caption = f"Canada, crowdsourced legal vs illegal price per gram ({context.source})"
    return Step(
        name="illicit",
        result=context,
        views=lambda c: [Table(c.summary(), caption), c.chart()] if c.applies else [],
    )
