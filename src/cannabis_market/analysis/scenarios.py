"""What-if outage simulator: lost retail sales for delivery stops of different lengths, with intervals.

Each store enters the stop with some days of cover and loses, each day, the share of demand it cannot
serve. The depletion path comes from the shared `data.outage_model.served_share`, the same function the
data generator uses, so the simulator fed the generator's own inputs with no noise reproduces the
generator's true loss.

Monte Carlo uncertainty (all optional, all off by default):
- `demand_cv`: day-to-day demand noise around each store's baseline (coefficient of variation,
  mean-one lognormal factor per store-day). It changes what a lost day is worth, not the depletion
  path, which is counted in days of normal demand (the same simplification as the generator).
- `cover_cv`: measurement noise on each store's days of cover (mean-one lognormal factor per store),
  or `redraw_cover=True` to draw fresh covers from the inputs' distribution each run.
- `partial_fill_range`: the partial-restart fill share drawn uniformly from (lo, hi) each run.
All stop lengths share the same draws within a run, so the comparison across lengths is not blurred
by noise (and longer stops never lose less in any run).

Goodwill: the wholesaler's cost of waiving retailers' delivery fees for `waived_fee_days` days and one
rush-order fee per store is reported next to the retailers' lost sales (fee amounts are parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from cannabis_market import theme
from cannabis_market.data.outage_model import served_share
from cannabis_market.errors import InputError
from cannabis_market.format import currency_symbol, fmt_cad, fmt_interval, fmt_num, fmt_pct

if TYPE_CHECKING:
    import altair as alt

DAYS_PER_MONTH = 365.25 / 12
CoverSampler = Callable[[np.random.Generator, int], np.ndarray]


@dataclass
class ScenarioInputs:
    """Stores entering an outage: days of cover and daily demand (currency/day).

    daily_demand: shape (n,) for a flat baseline, or (n, h) for a day-by-day profile starting on the
        first day of the stop. Days beyond h repeat the profile's last week (or its last day if h < 7).
    cover_sampler: optional `f(rng, n) -> covers` used when the simulator redraws covers.
    """

    store_id: np.ndarray
    days_of_cover: np.ndarray
    daily_demand: np.ndarray
    cover_sampler: CoverSampler | None = None

    def __post_init__(self) -> None:
        self.store_id = np.asarray(self.store_id).astype(str)
        self.days_of_cover = np.asarray(self.days_of_cover, dtype=float).reshape(-1)
        dem = np.asarray(self.daily_demand, dtype=float)
        n = self.days_of_cover.size
        if dem.ndim == 0:
            dem = np.full(n, float(dem))
        if n == 0:
            raise InputError("scenario inputs: no stores (days_of_cover is empty)")
        if self.store_id.size != n:
            raise InputError(f"scenario inputs: {self.store_id.size} store ids for {n} days_of_cover values")
        if dem.shape[0] != n or dem.ndim > 2:
            raise InputError(
                f"scenario inputs: daily_demand must be a scalar, shape ({n},) or ({n}, days); got {dem.shape}"
            )
        if not np.isfinite(self.days_of_cover).all() or (self.days_of_cover < 0).any():
            raise InputError("scenario inputs: days_of_cover must be finite and >= 0 (negative days given)")
        if not np.isfinite(dem).all() or (dem < 0).any():
            raise InputError("scenario inputs: daily_demand must be finite and >= 0")
        self.daily_demand = dem

    @property
    def n_stores(self) -> int:
        return int(self.days_of_cover.size)

    @property
    def baseline(self) -> np.ndarray:
        """Each store's average daily demand (the profile's mean)."""
        return self.daily_demand if self.daily_demand.ndim == 1 else self.daily_demand.mean(axis=1)

    def demand_matrix(self, horizon: int) -> np.ndarray:
        """Demand per store and day, shape (n, horizon), extending a short profile week by week."""
        d = self.daily_demand
        if d.ndim == 1:
            return np.repeat(d[:, None], horizon, axis=1)
        h = d.shape[1]
        if h >= horizon:
            return d[:, :horizon]
        period = 7 if h >= 7 else 1
        extra = np.arange(horizon - h)
        idx = np.concatenate([np.arange(h), h - period + extra % period])
        return d[:, idx]

    @classmethod
    def from_frame(
        cls, df: pl.DataFrame, cover_col: str = "days_of_cover", demand_col: str = "daily_demand"
    ) -> ScenarioInputs:
        """From a frame with store_id, days_of_cover and daily_demand (one row per store)."""
        missing = [c for c in ("store_id", cover_col, demand_col) if c not in df.columns]
        if missing:
            raise InputError(f"scenario inputs: column(s) {missing} missing (have {df.columns})")
        if df.height == 0:
            raise InputError("scenario inputs: the store frame is empty")
        if df.select(pl.col(cover_col, demand_col).null_count()).sum_horizontal().item():
            raise InputError(f"scenario inputs: {cover_col}/{demand_col} have missing values")
        return cls(df["store_id"].to_numpy(), df[cover_col].to_numpy(), df[demand_col].to_numpy())

    @classmethod
    def from_distribution(
        cls,
        n_stores: int,
        daily_demand: float | np.ndarray,
        cover_mean: float,
        cover_sd: float,
        seed: int = 0,
    ) -> ScenarioInputs:
        """Stores whose covers come from a gamma distribution with the given mean and sd.

        The draw is fixed (seed); pass `redraw_cover=True` to the simulator to redraw it each run.
        """
        if n_stores <= 0:
            raise InputError(f"n_stores must be > 0, got {n_stores}")
        if cover_mean <= 0 or cover_sd <= 0:
            raise InputError(f"cover_mean and cover_sd must be > 0, got {cover_mean}, {cover_sd}")
        shape, scale = (cover_mean / cover_sd) ** 2, cover_sd**2 / cover_mean

        def sampler(rng: np.random.Generator, n: int) -> np.ndarray:
            return rng.gamma(shape, scale, n)

        cover = sampler(np.random.default_rng(seed), n_stores)
        ids = np.array([f"store_{i:05d}" for i in range(n_stores)])
        return cls(ids, cover, np.broadcast_to(np.asarray(daily_demand, float), (n_stores,)).copy(), sampler)


@dataclass
class ScenarioResult:
    """Simulated lost sales per stop length (with Monte Carlo intervals) and the goodwill cost."""

    summary_frame: pl.DataFrame
    by_store: pl.DataFrame
    goodwill: pl.DataFrame
    partial_days: int
    partial_fill: float
    n_sims: int
    alpha: float
    settings: dict = field(default_factory=dict)

    def summary(self) -> pl.DataFrame:
        """One row per stop length: lost_sales, lo, hi, stores_stocking_out, share_of_monthly_sales,
        goodwill_cost (wholesaler) and total_cost (lost sales + goodwill)."""
        return self.summary_frame

    def display_table(self) -> pl.DataFrame:
        """The summary with readable column headers and money in the dataset's currency, for reports."""
        names = {
            "stop_days": "Full stop (days)",
            "lost_sales": "Sales lost",
            "lo": "Lower bound",
            "hi": "Upper bound",
            "stores_stocking_out": "Stores running out",
            "share_of_monthly_sales": "Share of a month's sales",
            "goodwill_cost": "Goodwill cost",
            "total_cost": "Total cost",
        }
        money = ["lost_sales", "lo", "hi", "goodwill_cost", "total_cost"]
        frame = self.summary_frame.select([c for c in names if c in self.summary_frame.columns])
        frame = frame.with_columns(
            *(pl.col(c).map_elements(fmt_cad, return_dtype=pl.String) for c in money if c in frame.columns),
            *(
                pl.col(c).map_elements(fmt_num, return_dtype=pl.String)
                for c in ["stores_stocking_out"]
                if c in frame.columns
            ),
            *(
                pl.col(c).map_elements(fmt_pct, return_dtype=pl.String)
                for c in ["share_of_monthly_sales"]
                if c in frame.columns
            ),
        )
        return frame.rename({k: v for k, v in names.items() if k in frame.columns})

    def chart(self, title: str | None = None) -> alt.LayerChart:
        """Lost sales against the length of the full stop, with the interval band."""
        alt = theme.altair()  # imported when a chart is drawn, not with the module
        data = self.summary_frame.select("stop_days", "lost_sales", "lo", "hi")
        base = alt.Chart(data).encode(x=alt.X("stop_days:Q", title="Days of full delivery stop"))
        band = base.mark_area(opacity=0.3, color=theme.BAND).encode(
            y=alt.Y("lo:Q", title=f"Retail sales lost ({currency_symbol()})"), y2="hi:Q"
        )
        line = base.mark_line(point=True).encode(
            y="lost_sales:Q",
            tooltip=[
                alt.Tooltip("stop_days:Q", title="Stop (days)"),
                alt.Tooltip("lost_sales:Q", format=",.0f", title="Sales lost"),
                alt.Tooltip("lo:Q", format=",.0f", title="Lower bound"),
                alt.Tooltip("hi:Q", format=",.0f", title="Upper bound"),
            ],
        )
        level = round(100 * (1 - self.alpha))
        return (band + line).properties(
            title=alt.TitleParams(
                title or "What-if: lost retail sales by length of the delivery stop",
                subtitle=f"then {self.partial_days} days at {fmt_pct(self.partial_fill, 0)} fill; "
                f"{level}% simulation intervals ({self.n_sims} runs)",
            )
        )

    def report(self) -> str:
        """Plain-language account of the scenarios (a model, not a forecast)."""
        level = round(100 * (1 - self.alpha))
        parts = [
            f"{r['stop_days']} days: {fmt_cad(r['lost_sales'])} {fmt_interval(r['lo'], r['hi'])}, "
            f"{fmt_num(r['stores_stocking_out'])} stores running out, "
            f"{fmt_pct(r['share_of_monthly_sales'])} of a month's sales"
            for r in self.summary_frame.iter_rows(named=True)
        ]
        gw = self.goodwill
        lines = [
            "Simulated retail sales lost if deliveries stopped completely for the given number of days, then "
            f"restarted for {self.partial_days} days at {fmt_pct(self.partial_fill, 0)} of normal volume "
            f"({level}% intervals over {self.n_sims} simulation runs): " + "; ".join(parts) + ".",
            "Each store sells from the stock it holds until it runs out; the figures depend on the days of "
            "cover and daily demand fed in and on the assumed restart. They are what-if calculations, not "
            "forecasts, and ignore customers buying at another store or later instead.",
        ]
        uncosted = self.settings.get("delivery_fee_per_store_per_day", 0.0) == 0.0
        costs = gw.group_by("item", maintain_order=True).agg(pl.col("cost").max()) if gw.height else gw
        items = "; ".join(
            f"{r['item']}: {fmt_cad(r['cost'])}"
            for r in costs.iter_rows(named=True)
            if not (uncosted and r["cost"] == 0 and "deliver" in str(r["item"]).lower())
        )
        if items:
            lines.append(f"Goodwill measures paid by the wholesaler (largest scenario): {items}.")
        if gw.height and uncosted:
            lines.append("Waived delivery fees are not costed: no delivery fee per store and day was set.")
        return "\n".join(lines)


def _as_inputs(inputs: ScenarioInputs | pl.DataFrame) -> ScenarioInputs:
    if isinstance(inputs, ScenarioInputs):
        return inputs
    if isinstance(inputs, pl.LazyFrame):
        inputs = inputs.collect()
    if isinstance(inputs, pl.DataFrame):
        return ScenarioInputs.from_frame(inputs)
    raise InputError(f"inputs must be ScenarioInputs or a polars frame, got {type(inputs).__name__}")


def _lognormal_factor(rng: np.random.Generator, cv: float, size) -> np.ndarray:
    """Mean-one lognormal multipliers with coefficient of variation `cv`."""
    s = np.sqrt(np.log1p(cv**2))
    return np.exp(s * rng.standard_normal(size) - 0.5 * s**2)


def simulate_outage_scenarios(
    inputs: ScenarioInputs | pl.DataFrame,
    stop_days_list: Sequence[int] = (3, 7, 14, 21),
    partial_days: int = 8,
    partial_fill: float = 0.5,
    n_sims: int = 1000,
    seed: int = 0,
    *,
    demand_cv: float = 0.0,
    cover_cv: float = 0.0,
    redraw_cover: bool = False,
    partial_fill_range: tuple[float, float] | None = None,
    alpha: float = 0.05,
    delivery_fee_per_store_per_day: float = 0.0,
    waived_fee_days: int = 57,
    rush_fee_per_store: float = 500.0,
    goodwill_stores: str = "all",
    chunk: int = 50,
) -> ScenarioResult:
    """Simulate lost sales by store and in total for each full-stop length in `stop_days_list`.

    Each run draws the uncertain inputs (see the module notes), applies `served_share` for each stop
    length followed by `partial_days` at `partial_fill`, and sums (1 - served share) x demand. The
    point estimate is the mean over runs; the interval is the (alpha/2, 1 - alpha/2) run quantiles.
    With no noise every run is identical and the interval collapses to the point.

    Goodwill (wholesaler's cost): `delivery_fee_per_store_per_day` x `waived_fee_days` plus one
    `rush_fee_per_store`, for every store (`goodwill_stores='all'`) or only those that ran out
    (`'stocked_out'`). The default 57 days is 2022-08-05 through 2022-09-30.
    """
    inp = _as_inputs(inputs)
    stops = [int(s) for s in stop_days_list]
    if not stops:
        raise InputError("stop_days_list is empty")
    if any(s < 0 for s in stops):
        raise InputError(f"stop_days_list: stop lengths must be >= 0 days, got {stops}")
    if partial_days < 0:
        raise InputError(f"partial_days must be >= 0, got {partial_days}")
    if not 0.0 <= partial_fill <= 1.0:
        raise InputError(f"partial_fill must be within [0, 1], got {partial_fill}")
    if partial_fill_range is not None:
        lo_f, hi_f = map(float, partial_fill_range)
        if not (0.0 <= lo_f <= hi_f <= 1.0):
            raise InputError(f"partial_fill_range must satisfy 0 <= lo <= hi <= 1, got {partial_fill_range}")
    if n_sims < 1:
        raise InputError(f"n_sims must be >= 1, got {n_sims}")
    if demand_cv < 0 or cover_cv < 0:
        raise InputError(f"demand_cv and cover_cv must be >= 0, got {demand_cv}, {cover_cv}")
    if redraw_cover and inp.cover_sampler is None:
        raise InputError(
            "redraw_cover=True needs inputs with a cover distribution (ScenarioInputs.from_distribution)"
        )
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be within (0, 1), got {alpha}")
    if min(delivery_fee_per_store_per_day, waived_fee_days, rush_fee_per_store) < 0:
        raise InputError("goodwill fees and waived_fee_days must be >= 0")
    if goodwill_stores not in ("all", "stocked_out"):
        raise InputError(f"goodwill_stores must be 'all' or 'stocked_out', got {goodwill_stores!r}")

    noisy = demand_cv > 0 or cover_cv > 0 or redraw_cover or partial_fill_range is not None
    sims = n_sims if noisy else 1  # every run would be identical
    n, horizon = inp.n_stores, max(stops) + partial_days
    demand = inp.demand_matrix(max(horizon, 1))
    rng = np.random.default_rng(seed)
    S = len(stops)
    lost_runs = np.zeros((S, sims))
    out_runs = np.zeros((S, sims))
    store_sum = np.zeros((S, n))
    store_sq = np.zeros((S, n))
    store_out = np.zeros((S, n))
    fills_used = []

    for start in range(0, sims, chunk):
        m = min(chunk, sims - start)
        if redraw_cover:
            cover = np.stack([inp.cover_sampler(rng, n) for _ in range(m)])
        else:
            cover = np.broadcast_to(inp.days_of_cover, (m, n)).copy()
        if cover_cv > 0:
            cover = cover * _lognormal_factor(rng, cover_cv, (m, n))
        dem = demand[None, :, :horizon] * (
            _lognormal_factor(rng, demand_cv, (m, n, horizon)) if demand_cv > 0 else 1.0
        )
        fills = rng.uniform(lo_f, hi_f, m) if partial_fill_range is not None else np.full(m, partial_fill)
        fills_used.append(fills)
        for si, s in enumerate(stops):
            h = s + partial_days
            if h == 0:
                continue
            fill = partial_fill if partial_fill_range is None else fills[:, None]  # one per run
            short = 1.0 - served_share(cover, s, partial_days, fill, horizon=h)
            lost = (short * dem[:, :, :h]).sum(axis=2)  # (m, n)
            lost_runs[si, start : start + m] = lost.sum(axis=1)
            ran_out = short.max(axis=2) > 1e-12
            out_runs[si, start : start + m] = ran_out.sum(axis=1)
            store_sum[si] += lost.sum(axis=0)
            store_sq[si] += (lost**2).sum(axis=0)
            store_out[si] += ran_out.sum(axis=0)

    qlo, qhi = alpha / 2, 1 - alpha / 2
    monthly = float(inp.baseline.sum() * DAYS_PER_MONTH)
    fee_days_cost = delivery_fee_per_store_per_day * waived_fee_days
    rows, gw_rows, store_frames = [], [], []
    for si, s in enumerate(stops):
        lr = lost_runs[si]
        n_out = float(out_runs[si].mean())
        gw_n = float(n) if goodwill_stores == "all" else n_out
        gw_fee, gw_rush = fee_days_cost * gw_n, rush_fee_per_store * gw_n
        mean = float(lr.mean())
        rows.append(
            {
                "stop_days": s,
                "lost_sales": mean,
                "lo": float(np.quantile(lr, qlo)),
                "hi": float(np.quantile(lr, qhi)),
                "stores_stocking_out": n_out,
                "stores_stocking_out_lo": float(np.quantile(out_runs[si], qlo)),
                "stores_stocking_out_hi": float(np.quantile(out_runs[si], qhi)),
                "share_of_monthly_sales": mean / monthly if monthly > 0 else float("nan"),
                "goodwill_cost": gw_fee + gw_rush,
                "total_cost": mean + gw_fee + gw_rush,
            }
        )
        gw_rows += [
            {
                "stop_days": s,
                "item": "delivery fees waived",
                "per_store": fee_days_cost,
                "stores": gw_n,
                "cost": gw_fee,
            },
            {
                "stop_days": s,
                "item": "rush-order fee waived",
                "per_store": rush_fee_per_store,
                "stores": gw_n,
                "cost": gw_rush,
            },
        ]
        mu = store_sum[si] / sims
        sd = np.sqrt(np.clip(store_sq[si] / sims - mu**2, 0, None))
        store_frames.append(
            pl.DataFrame(
                {
                    "store_id": inp.store_id,
                    "stop_days": np.full(n, s, dtype=np.int64),
                    "lost_sales": mu,
                    "lost_sales_sd": sd,
                    "p_stock_out": store_out[si] / sims,
                }
            )
        )
    fills_all = np.concatenate(fills_used)
    settings = {
        "demand_cv": demand_cv,
        "cover_cv": cover_cv,
        "redraw_cover": redraw_cover,
        "partial_fill_range": partial_fill_range,
        "partial_fill_mean": float(fills_all.mean()),
        "delivery_fee_per_store_per_day": delivery_fee_per_store_per_day,
        "waived_fee_days": waived_fee_days,
        "rush_fee_per_store": rush_fee_per_store,
        "goodwill_stores": goodwill_stores,
        "n_stores": n,
        "monthly_sales": monthly,
        "seed": seed,
        "runs": sims,
    }
    return ScenarioResult(
        summary_frame=pl.DataFrame(rows),
        by_store=pl.concat(store_frames),
        goodwill=pl.DataFrame(gw_rows),
        partial_days=partial_days,
        partial_fill=partial_fill,
        n_sims=sims,
        alpha=alpha,
        settings=settings,
    )
