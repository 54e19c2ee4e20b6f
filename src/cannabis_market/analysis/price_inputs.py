"""Former home of the pricing notebook's inputs; kept so existing imports work. See
`cannabis_market.analysis.pricing.inputs`."""

from cannabis_market.analysis.pricing.inputs import PriceInputs, price_inputs, with_price_per_gram

__all__ = ["PriceInputs", "price_inputs", "with_price_per_gram"]
