"""The `Step` a notebook step returns, and the selection every step starts from.

A step is one section of a report: it runs its estimator on the selection and returns either the result
with what the notebook shows (report text, tables with captions, charts, in display order) and records
(`figures()`), or one plain sentence saying why the section does not apply to this dataset. An `InputError`
raised by the estimator (the data cannot support it: too short, no variation, no store-level sales) becomes
that sentence; the technical message is kept in `detail` for developers, never shown. Any other exception
is a bug and propagates.

Disclosure control lives in `reports`, so a step's result is published by the notebook:
`step.apply(protect)` swaps in the protected result before `nb.show_step(step)` shows it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from cannabis_market.errors import InputError


@dataclass(frozen=True)
class Table:
    """A table a step shows, with its caption; `diagnostic` marks model checks (backtests, AIC) as opposed
    to findings, so a report can fold them away."""

    frame: pl.DataFrame
    caption: str
    diagnostic: bool = False


Views = Callable[[Any], Sequence[Any]]


def _no_views(result: Any) -> list[Any]:
    return []


def _own_figures(result: Any) -> dict[str, Any]:
    figures = getattr(result, "figures", None)
    return dict(figures()) if callable(figures) else {}


def _own_report(result: Any) -> str:
    report = getattr(result, "report", None)
    return str(report()) if callable(report) else ""


@dataclass(frozen=True)
class Step:
    """One report section: a result and how to show it, or the reason it is skipped.

    `views(result)` lists what to show after the report text, in order: `Table`s and charts (altair
    objects). It is called when the step is shown, so a result swapped in by `apply` is the one drawn.
    `notes` are sentences shown before the result's own report (e.g. an assumption the step made).
    """

    name: str
    result: Any = None
    skipped: str | None = None
    notes: tuple[str, ...] = ()
    views: Views = _no_views
    figures_of: Callable[[Any], dict[str, Any]] = _own_figures
    report_of: Callable[[Any], str] = _own_report
    detail: str = ""  # the estimator's own message when skipped (for developers; never shown)

    @property
    def applies(self) -> bool:
        """False when the step was skipped (then `skipped` says why)."""
        return self.skipped is None

    def figures(self) -> dict[str, Any]:
        """Headline figures the notebook records (none when skipped)."""
        return self.figures_of(self.result) if self.applies else {}

    def report(self) -> str:
        """Plain-language text of the section: the notes and the result's report, or the skipped reason."""
        if not self.applies:
            return str(self.skipped)
        return "\n".join(s for s in (*self.notes, self.report_of(self.result)) if s)

    def shown(self) -> list[Any]:
        """Tables and charts to show, in order (none when skipped)."""
        return list(self.views(self.result)) if self.applies else []

    def tables(self) -> list[Table]:
        return [v for v in self.shown() if isinstance(v, Table)]

    def charts(self) -> list[Any]:
        return [v for v in self.shown() if not isinstance(v, Table)]

    def apply(self, fn: Callable[[Any], Any]) -> Step:
        """The same step with `fn(result)` as its result (e.g. a disclosure-protected copy); unchanged when
        skipped."""
        return dataclasses.replace(self, result=fn(self.result)) if self.applies else self


def skip(name: str, reason: str, detail: str = "") -> Step:
    """A step that does not apply, with the one sentence saying why."""
    return Step(name=name, skipped=reason, detail=detail)


def run(
    name: str,
    compute: Callable[[], Any],
    *,
    reason: str,
    views: Views = _no_views,
    figures: Callable[[Any], dict[str, Any]] = _own_figures,
    report: Callable[[Any], str] = _own_report,
    notes: Sequence[str] = (),
) -> Step:
    """Run `compute()`; an InputError (the data cannot support the estimator) gives a skipped step whose
    reason is `reason`, a plain sentence written for the reader. Other exceptions propagate."""
    try:
        result = compute()
    except InputError as problem:
        return skip(name, reason, detail=str(problem))
    return Step(
        name=name, result=result, views=views, figures_of=figures, report_of=report, notes=tuple(notes)
    )


def has_store_sales(ds: Any) -> bool:
    """True when the dataset has store-level sales (a stores table and a sales table)."""
    return getattr(ds, "stores", None) is not None and getattr(ds, "sales", None) is not None


def select(ds: Any, region: str | None = "all", start: Any = None, end: Any = None) -> Any:
    """The dataset restricted to the report's selection: `Dataset.subset` for store-level data; for
    aggregate (series-only) data, the window of the one geography `region` names ('all': the manifest's
    region), so market totals and store counts come from that geography alone."""
    if ds.sales is not None or ds.series is None:
        return ds.subset(region, start, end)
    _, rows = ds.series_of(region, start, end)
    return dataclasses.replace(ds.subset("all", start, end), series=rows.lazy())


def whole_number(value: Any, name: str, least: int) -> int:
    """`value` as an int >= `least`; InputError naming the parameter otherwise (a bad parameter is the
    caller's error, not a reason to skip a step)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InputError(f"parameter {name} must be a whole number >= {least}, got {value!r}")
    return value


def positive(value: Any, name: str) -> float:
    """`value` as a float > 0; InputError naming the parameter otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InputError(f"parameter {name} must be a finite number > 0, got {value!r}")
    return float(value)
