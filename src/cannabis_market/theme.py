"""One altair theme for every chart the package draws, registered on import of the package."""

from __future__ import annotations

import altair as alt

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


@alt.theme.register(THEME_NAME, enable=True)
def _theme() -> alt.theme.ThemeConfig:
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


def enable() -> None:
    """Make the package theme the active one (it is enabled on import; call again after switching)."""
    alt.theme.enable(THEME_NAME)
