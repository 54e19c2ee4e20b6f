"""Estimators and result objects. Their `.chart()` methods draw with the package's altair theme
(`cannabis_market.theme`), registered when the first chart is drawn, so importing an estimator does not
import altair."""
