"""One function per report-notebook step, so a notebook cell is `step = steps.growth.saturation(ds, ...)`
then `nb.show_step(step)`.

- `base`: the `Step` every function returns (figures to record, report text, tables and charts to show,
  or the plain sentence saying why the step is skipped), `Table`, and `select` (the report's selection
  of a store-level or aggregate dataset).
- `growth`: notebook 02 (store growth curves, demand forecast, saturation, cannibalization).
- `pricing`: notebook 03 (price trend, elasticity, competition, compression, margin, illicit prices).

Steps do not apply disclosure control (that is `reports`): the notebook protects a step's result with
`step.apply(...)` where the result needs it, and `nb.show_step` publishes it.
"""

from cannabis_market.analysis.steps import growth, pricing
from cannabis_market.analysis.steps.base import Step, Table, select

__all__ = ["Step", "Table", "growth", "pricing", "select"]
