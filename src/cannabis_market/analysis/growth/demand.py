"""Monthly market-sales forecast with a rolling-origin backtest."""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import numpy as np
import polars as pl
from scipy import stats

from cannabis_market.analysis.growth._common import (
    MAX_CHART_ROWS,
    _add_months,
    _blas_single_thread,
    _check_alpha,
    _frame,
    _money,
    _month_index,
    _need,
    _to_month,
)
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_pct
from cannabis_market.theme import BAND, PALETTE


def _pd_series(y: np.ndarray, start: dt.date):
    import pandas as pd  # statsmodels boundary

    return pd.Series(y, index=pd.date_range(start, periods=y.size, freq="MS"))


def _fc_ets(y, h, alpha, m, seasonal, start):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    s = _pd_series(y, start)
    kw = {"error": "add", "trend": "add", "damped_trend": True}
    if seasonal:
        kw |= {"seasonal": "add", "seasonal_periods": m}
    last_err: Exception | None = None
    for init in ("heuristic", "estimated"):
        try:
            res = ETSModel(s, initialization_method=init, **kw).fit(disp=False)
            sf = res.get_prediction(start=y.size, end=y.size + h - 1).summary_frame(alpha=alpha)
            out = sf["mean"].to_numpy(), sf["pi_lower"].to_numpy(), sf["pi_upper"].to_numpy()
            if all(np.isfinite(a).all() for a in out):
                return out
        except Exception as e:  # noqa: BLE001 - try the next initialisation
            last_err = e
    raise RuntimeError(f"ETS fit failed: {last_err}")


def _fc_sarimax(y, h, alpha, m, seasonal, start):
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    s = _pd_series(y, start)
    if seasonal:  # the "airline" model: robust on short monthly retail series
        mod = SARIMAX(s, order=(0, 1, 1), seasonal_order=(0, 1, 1, m))
    else:
        mod = SARIMAX(s, order=(1, 1, 0), trend="t")
    res = mod.fit(disp=False)
    sf = res.get_forecast(h).summary_frame(alpha=alpha)
    return sf["mean"].to_numpy(), sf["mean_ci_lower"].to_numpy(), sf["mean_ci_upper"].to_numpy()


def _fc_snaive(y, h, alpha, m, seasonal, start):
    z = stats.norm.ppf(1 - alpha / 2)
    if y.size <= m:
        return _fc_naive(y, h, alpha, m, seasonal, start)
    steps = np.arange(h)
    mean = y[y.size - m + (steps % m)]
    sd = float(np.std(y[m:] - y[:-m], ddof=1)) if y.size > m + 1 else 0.0
    half = z * sd * np.sqrt(steps // m + 1)
    return mean, mean - half, mean + half


def _fc_naive(y, h, alpha, m, seasonal, start):
    z = stats.norm.ppf(1 - alpha / 2)
    mean = np.full(h, y[-1])
    sd = float(np.std(np.diff(y), ddof=1)) if y.size > 2 else 0.0
    half = z * sd * np.sqrt(np.arange(1, h + 1))
    return mean, mean - half, mean + half


_FORECASTERS = {"ets": _fc_ets, "sarimax": _fc_sarimax, "snaive": _fc_snaive, "naive": _fc_naive}


@dataclass
class DemandForecast:
    """Monthly market-sales forecast of the backtest-chosen model, with all candidates' backtests.

    Models run on log sales; `forecast` is the back-transformed median and lo/hi the prediction
    interval. Backtest errors: `mape` (fraction, 0.05 = 5%) and `mase` (error / in-sample seasonal-naive
    error) per horizon, averaged over rolling origins.
    """

    chosen_model: str
    history: pl.DataFrame
    forecasts: pl.DataFrame
    backtest: pl.DataFrame
    alpha: float
    horizon: int
    seasonal: bool
    n_origins: int
    models: tuple[str, ...]
    currency: str = "CAD"

    def summary(self) -> pl.DataFrame:
        """Chosen model's forecast: period, forecast, lo, hi."""
        return self.forecasts.filter(pl.col("model") == self.chosen_model).select(
            "period", "forecast", "lo", "hi"
        )

    def backtest_error(self, model: str | None = None) -> dict[str, float]:
        """Mean MAPE and MASE over horizons for `model` (default: the chosen one)."""
        b = self.backtest.filter(pl.col("model") == (model or self.chosen_model))
        return {"mape": float(b["mape"].mean()), "mase": float(b["mase"].mean())}

    def benchmark_better(self) -> str | None:
        """Name of a naive benchmark with lower backtest MASE than the chosen model, if any."""
        mine = self.backtest_error()["mase"]
        best = None
        for b in ("snaive", "naive"):
            if b in self.models:
                continue
            v = self.backtest_error(b)["mase"]
            if math.isfinite(v) and v < mine and (best is None or v < best[1]):
                best = (b, v)
        return best[0] if best else None

    def chart(self) -> alt.LayerChart:
        """Sales history, the chosen model's forecast and its prediction interval."""
        hist = self.history.tail(MAX_CHART_ROWS - self.horizon)
        fc = self.summary()
        band = alt.Chart(fc).mark_area(color=BAND, opacity=0.5).encode(x="period:T", y="lo:Q", y2="hi:Q")
        h = (
            alt.Chart(hist)
            .mark_line(color=PALETTE[2])
            .encode(x=alt.X("period:T", title=None), y=alt.Y("sales:Q", title="monthly sales"))
        )
        f = alt.Chart(fc).mark_line(strokeDash=[5, 3], color=PALETTE[0]).encode(x="period:T", y="forecast:Q")
        lvl = int(round(100 * (1 - self.alpha)))
        err = self.backtest_error()
        return alt.layer(band, h, f).properties(
            title=alt.Title(
                "Market sales and forecast",
                subtitle=f"{self.chosen_model}; {lvl}% prediction interval; backtest MAPE {fmt_pct(err['mape'])}",
            )
        )

    def chart_backtest(self) -> alt.Chart:
        """Backtest MASE by forecast horizon, one line per model (below 1 beats seasonal naive in-sample)."""
        return (
            alt.Chart(self.backtest)
            .mark_line(point=True)
            .encode(
                x=alt.X("horizon:Q", title="months ahead"),
                y=alt.Y("mase:Q", title="MASE"),
                color=alt.Color("model:N", title=None),
            )
            .properties(title=f"Rolling-origin backtest ({self.n_origins} origins)")
        )

    def report(self) -> str:
        err = self.backtest_error()
        lvl = int(round(100 * (1 - self.alpha)))
        fc = self.summary()
        total = float(fc["forecast"].sum())
        lines = [
            f"Model chosen by rolling-origin backtest ({self.n_origins} origins, 1-{self.horizon} months ahead): "
            f"{self.chosen_model} (mean MAPE {fmt_pct(err['mape'])}, mean MASE {err['mase']:.2f}).",
            f"Forecast sales over the next {self.horizon} months: {_money(total, self.currency)}; monthly {lvl}% "
            f"prediction intervals range from {_money(float(fc['lo'].min()), self.currency)} to "
            f"{_money(float(fc['hi'].max()), self.currency)}.",
        ]
        bench = self.benchmark_better()
        if bench:
            b = self.backtest_error(bench)
            lines.append(
                f"Caution: the {bench} benchmark did better in the backtest (mean MAPE {fmt_pct(b['mape'])}); "
                "the recent past is not well described by the fitted models."
            )
        if not self.seasonal:
            lines.append("The history is too short for seasonal models; forecasts carry no seasonality.")
        return "\n".join(lines)


def forecast_demand(
    monthly_sales: pl.DataFrame | pl.LazyFrame,
    horizon: int = 12,
    alpha: float = 0.05,
    backtest_origins: int = 12,
    models: Sequence[str] = ("ets", "sarimax"),
    seasonal_periods: int = 12,
    currency: str = "CAD",
) -> DemandForecast:
    """Forecast monthly market sales `[period, sales]` with prediction intervals.

    Candidates (`models`, any of ets/sarimax/snaive/naive) are fitted on log sales. Each is backtested
    from `backtest_origins` rolling origins (the last origin leaves exactly `horizon` months to test);
    the candidate with the lowest mean MASE is chosen. Seasonal-naive and naive always appear in the
    backtest table as benchmarks. Seasonal models need >= 2 seasonal cycles + 4 months in every
    training window; otherwise all models run without seasonality.
    """
    df = _frame(monthly_sales, "monthly_sales")
    _need(df, ["period", "sales"], "monthly_sales")
    bad = [m for m in models if m not in _FORECASTERS]
    if not models or bad:
        raise InputError(
            f"models: unknown demand model(s) {bad or list(models)}; choose from {list(_FORECASTERS)}"
        )
    if not isinstance(horizon, int) or horizon < 1:
        raise InputError(f"horizon must be a whole number of months >= 1, got {horizon!r}")
    if not isinstance(backtest_origins, int) or backtest_origins < 1:
        raise InputError(f"backtest_origins must be an integer >= 1, got {backtest_origins!r}")
    _check_alpha(alpha)
    m = int(seasonal_periods)
    df = _to_month(df, "period", "monthly_sales").drop_nulls(["period"]).sort("period")
    if df.height == 0:
        raise InputError("monthly_sales: the frame is empty")
    if df["period"].n_unique() != df.height:
        raise InputError(
            "monthly_sales: more than one row per month in 'period'; aggregate first (market_sales())"
        )
    idx = _month_index(df["period"])
    gaps = np.nonzero(np.diff(idx) != 1)[0]
    if gaps.size:
        raise InputError(
            f"monthly_sales: months are missing after {df['period'][int(gaps[0])]}; the series must be gap-free"
        )
    Y = df["sales"].cast(pl.Float64).to_numpy()
    if not np.isfinite(Y).all() or (Y <= 0).any():
        raise InputError("monthly_sales: column 'sales' must be positive and finite in every month")
    n, H = Y.size, horizon
    y = np.log(Y)
    start = df["period"][0]
    min_seasonal = 2 * m + 4
    seasonal = n - H - 2 >= min_seasonal  # room for >= 3 seasonal backtest origins
    min_train = min_seasonal if seasonal else 8
    B = min(backtest_origins, n - H - min_train + 1)
    if B < 1:
        raise InputError(
            f"monthly_sales: {n} months are too few for a {H}-month backtest; need at least {min_train + H} "
            "(lower `horizon` or supply a longer series)"
        )
    # import statsmodels before silencing warnings: its modules install "always" filters on import
    import statsmodels.tsa.exponential_smoothing.ets  # noqa: F401
    import statsmodels.tsa.statespace.sarimax  # noqa: F401

    cands = list(dict.fromkeys([*models, "snaive", "naive"]))
    errs: dict[str, list[list[tuple[float, float]]]] = {c: [[] for _ in range(H)] for c in cands}
    with _blas_single_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for o in range(n - H - B + 1, n - H + 1):
            train, actual = y[:o], Y[o : o + H]
            lag = m if o > m else 1
            scale = float(
                np.mean(
                    np.abs(
                        np.diff(np.exp(train), n=1)
                        if lag == 1
                        else np.exp(train[lag:]) - np.exp(train[:-lag])
                    )
                )
            )
            scale = scale if scale > 0 else float(np.mean(np.exp(train))) * 1e-6
            for c in cands:
                try:
                    mean, _, _ = _FORECASTERS[c](train, H, alpha, m, seasonal, start)
                except Exception:  # noqa: BLE001 - a failed fit counts as missing, not as a crash
                    continue
                pred = np.exp(mean)
                for h in range(H):
                    e = abs(actual[h] - pred[h])
                    errs[c][h].append((e / actual[h], e / scale))
        rows = []
        for c in cands:
            for h in range(H):
                a = np.asarray(errs[c][h]) if errs[c][h] else np.full((0, 2), np.nan)
                rows.append(
                    {
                        "model": c,
                        "horizon": h + 1,
                        "mape": float(a[:, 0].mean()) if a.size else float("nan"),
                        "mase": float(a[:, 1].mean()) if a.size else float("nan"),
                        "n_origins": int(a.shape[0]),
                    }
                )
        backtest = pl.DataFrame(rows)
        score = (
            backtest.filter(pl.col("model").is_in(list(models)))
            .group_by("model")
            .agg(mase=pl.col("mase").mean(), ok=pl.col("n_origins").min())
        )
        score = score.filter((pl.col("ok") > 0) & pl.col("mase").is_finite())
        if score.height == 0:
            raise InputError("monthly_sales: every candidate model failed in the backtest; check the series")
        order = {c: i for i, c in enumerate(models)}
        chosen = min(score.iter_rows(named=True), key=lambda r: (r["mase"], order[r["model"]]))["model"]
        future = pl.Series([_add_months(df["period"][-1], k) for k in range(1, H + 1)], dtype=pl.Date)
        fcs = []
        for c in models:
            try:
                mean, lo, hi = _FORECASTERS[c](y, H, alpha, m, seasonal, start)
            except Exception as e:  # noqa: BLE001
                if c == chosen:
                    raise InputError(
                        f"monthly_sales: the chosen model {c} failed on the full series: {e}"
                    ) from e
                continue
            fcs.append(
                pl.DataFrame(
                    {
                        "model": [c] * H,
                        "period": future,
                        "forecast": np.exp(mean),
                        "lo": np.exp(lo),
                        "hi": np.exp(hi),
                    }
                )
            )
    return DemandForecast(
        chosen_model=chosen,
        history=df.select("period", pl.col("sales").cast(pl.Float64)),
        forecasts=pl.concat(fcs),
        backtest=backtest,
        alpha=alpha,
        horizon=H,
        seasonal=seasonal,
        n_origins=B,
        models=tuple(models),
        currency=currency,
    )
