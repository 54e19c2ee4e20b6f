"""Estimators and result objects; importing this package registers the altair theme for their charts."""

from cannabis_market import theme as _theme  # noqa: F401  (charts built here use the package theme)
