"""Deterministic synthetic Ontario-like dataset with known ground truth.

`generate_dataset` simulates the private cannabis retail market of Ontario day by day from the first
store openings (2019-04-01): a store count that follows the public milestones, market demand that
follows the public sales totals, local cannibalization, prices that compress over time and with local
competition, endogenous closures of stores below break-even, the April 2020 COVID closure and the
August 2022 wholesale outage. Every parameter the simulation used is written to `manifest.yml` under
`truth:` so estimators can be checked against it. `data/README.md` documents the equations and the
public facts they are calibrated to.

Same arguments give byte-identical files. The output folder appears atomically (written to a temporary
sibling, then renamed), so a failed run leaves nothing half-written.
"""

from cannabis_market.data.generate.calibration import GENERATOR_VERSION, PARAMS
from cannabis_market.data.generate.write import generate_dataset

__all__ = ["GENERATOR_VERSION", "PARAMS", "generate_dataset"]
