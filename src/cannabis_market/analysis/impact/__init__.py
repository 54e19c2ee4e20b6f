"""Intervention analysis in the manner of Google's CausalImpact (``estimate_impact``).

Given a response series ``y`` (for example daily revenue of the stores hit by an outage), optional
control series that the intervention did not touch, a pre-period and a post-period,
:func:`estimate_impact` fits a model on the pre-period only, simulates what ``y`` would have looked
like in the post-period without the intervention (the counterfactual), and reports the difference with
intervals. Modules:

* ``inputs``     argument, date and window checks (every bad input is an ``InputError``);
* ``regression`` spike-and-slab regression on the controls, AR(1) or local-level errors (numpy, exact);
* ``model``      the maximum-likelihood structural time-series model (statsmodels);
* ``estimate``   ``estimate_impact``: picks the model on a pre-period holdout, simulates, assembles;
* ``result``     ``ImpactResult`` (summary, report, placebo), ``Estimate``;
* ``placebo``    the in-time placebo check;  ``charts`` the altair chart (imported on demand).
"""

from __future__ import annotations

from cannabis_market.analysis.impact.estimate import estimate_impact
from cannabis_market.analysis.impact.placebo import PlaceboResult, in_time_placebo
from cannabis_market.analysis.impact.result import Estimate, ImpactResult

__all__ = ["Estimate", "ImpactResult", "PlaceboResult", "estimate_impact", "in_time_placebo"]
