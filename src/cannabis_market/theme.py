"""One altair theme for every chart the package draws, registered when altair is first needed.

altair costs ~1.5 s and ~50 MB per process, so nothing here imports it at module import: chart code
calls `altair()` (the module, with the theme registered and enabled) when it draws. A module that
imports altair itself before importing this one gets the theme registered right away.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

THEME_NAME = "cannabis_market"
PALETTE = ["#1b6e5a", "#d9822b", "#4a6fa5", "#b0413e", "#7d5ba6", "#8c8c8c", "#c4a000"]
BAND = "#9ecfbf"
# Vega time multi-format: the label format for each tick granularity.
TIME_FORMAT = {
    "year": "%Y",
    "quarter": "%b %Y",
    "month": "%b %Y",
    "week": "%-d %b %Y",
    "date": "%-d %b %Y",
    "hours": "%-d %b %Y %H:%M",
    "minutes": "%H:%M",
    "seconds": "%H:%M:%S",
    "milliseconds": "%H:%M:%S",
}
_registered: list[bool] = []


def config() -> dict[str, Any]:
    """Quiet grid, readable fonts, a colour-blind-friendly categorical palette."""
    return {
        "config": {
            "view": {"continuousWidth": 560, "continuousHeight": 260, "stroke": None},
            "font": "Helvetica, Arial, sans-serif",
            "range": {"category": PALETTE},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#e6e6e6", "domainColor": "#888"},
            # Every time axis names the year on every tick ("Apr 2022", "2023", "5 Aug 2022"), never
            # a bare month ("April October April ...").
            "axisTemporal": {"format": TIME_FORMAT, "labelOverlap": True},
            "legend": {"labelFontSize": 11, "titleFontSize": 12},
            "title": {"fontSize": 14, "anchor": "start", "subtitleColor": "#555"},
            "line": {"strokeWidth": 2},
        }
    }


def _register(alt: ModuleType) -> None:
    if not _registered:
        alt.theme.register(THEME_NAME, enable=True)(config)
        _registered.append(True)


def altair() -> ModuleType:
    """The altair module, imported now if need be, with the package theme registered (and enabled the
    first time)."""
    import altair as alt

    _register(alt)
    return alt


def enable() -> None:
    """Make the package theme the active one (call again after switching themes)."""
    altair().theme.enable(THEME_NAME)


if "altair" in sys.modules:  # imported by a module that already uses altair: its charts get the theme
    _register(sys.modules["altair"])
