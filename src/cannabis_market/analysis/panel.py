"""Former home of the panel regression; kept so `cannabis_market.analysis.panel` imports keep working.
Everything lives in `cannabis_market.analysis.inference`."""

from cannabis_market.analysis.inference import FEResult, demean, fe_ols

__all__ = ["FEResult", "demean", "fe_ols"]
