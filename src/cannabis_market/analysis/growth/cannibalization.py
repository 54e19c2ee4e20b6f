"""Store x month panel with competitor counts, and the cannibalization elasticity estimated on it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import polars as pl

from cannabis_market.analysis.growth._common import (
    _check_alpha,
    _frame,
    _is_dataset,
    _need,
    _to_month,
)
from cannabis_market.analysis.inference import FEResult, fe_ols
from cannabis_market.data.panels import dataset_panel
from cannabis_market.errors import InputError
from cannabis_market.format import fmt_num, fmt_pct
from cannabis_market.theme import BAND, PALETTE


def store_month_panel(ds: Any) -> pl.DataFrame:
    """The one store x month panel (`data.panels.store_period_panel`) of a loaded dataset.

    `competitors` is the average number of OTHER stores of the same municipality open on the days the
    store itself was open that month (a neighbour opening mid-month counts for the days it traded; with
    monthly data, where only the opening month is known, it counts half in that month); `partial` marks
    months the store traded only in part. See data/README.md, "Store panel".

    Worked out once per process for a loaded dataset (`data.panels.dataset_panel`), so the saturation
    and cannibalization steps share it: the frame is shared, do not modify it in place.
    """
    return dataset_panel(ds, "monthly")


def add_competitors(panel: pl.DataFrame | pl.LazyFrame, within: str | None = "municipality") -> pl.DataFrame:
    """Add `competitors`: other stores reporting revenue in the same period (and `within` group).

    `within=None` counts the whole market (every other reporting store), which is what is available
    when a panel has no geography (e.g. Washington's licence-level report).
    """
    df = _frame(panel, "panel")
    keys = ["period"] + ([within] if within else [])
    _need(df, ["store_id", "revenue", *keys], "panel")
    present = pl.col("revenue").fill_null(0) > 0
    n = df.filter(present).group_by(keys).agg(_n=pl.col("store_id").n_unique())
    return (
        df.join(n, on=keys, how="left")
        .with_columns(
            competitors=(pl.col("_n").fill_null(0) - present.cast(pl.Int64))
            .clip(lower_bound=0)
            .cast(pl.Float64)
        )
        .drop("_n")
    )


def _flag_partial(panel: pl.DataFrame) -> pl.DataFrame:
    """Add boolean `partial`: the store may have traded only part of that month.

    With opened_on: the month of opening is always partial (monthly datasets round opening dates to the
    1st, so an exact check is not possible), and the month of closing unless closed_on is its last day.
    Otherwise an existing `partial` column is kept; failing that, each store's first and last reporting
    month is partial, except at the edges of the data, where nothing says the store was new or closing.
    """
    if "partial" in panel.columns and "open_days" in panel.columns:  # the one panel's own rule
        return panel.with_columns(pl.col("partial").fill_null(False).cast(pl.Boolean))
    if "opened_on" in panel.columns:
        closed = pl.col("closed_on") if "closed_on" in panel.columns else pl.lit(None, pl.Date)
        eom = pl.col("period").dt.month_end()
        part = (pl.col("opened_on").dt.truncate("1mo") == pl.col("period")) | (
            closed.is_not_null() & (closed < eom) & (closed >= pl.col("period"))
        )
        return panel.with_columns(partial=part.fill_null(False))
    if "partial" in panel.columns:
        return panel.with_columns(pl.col("partial").fill_null(False).cast(pl.Boolean))
    p0, p1 = panel["period"].min(), panel["period"].max()
    first = pl.col("period").min().over("store_id")
    last = pl.col("period").max().over("store_id")
    part = ((pl.col("period") == first) & (first > p0)) | ((pl.col("period") == last) & (last < p1))
    return panel.with_columns(partial=part)


def _prepare_panel(data: Any, name: str) -> pl.DataFrame:
    if _is_dataset(data):
        return store_month_panel(data)
    df = _frame(data, name)
    _need(df, ["period", "store_id", "revenue"], name)
    if df.height == 0:
        raise InputError(f"{name}: the frame is empty")
    return _to_month(df, "period", name)


def _share_taken(b: float, c: float) -> float:
    """Fraction of an incumbent's sales lost when competitors go from c to c + 1 (positive = loss)."""
    return 1.0 - ((2.0 + c) / (1.0 + c)) ** b


@dataclass
class CannibalizationResult:
    """Elasticity of store sales to local competitors and the share of sales a new neighbour takes.

    `elasticity` is b in log(sales) = store + period effects + b * log(1 + competitors). `share_taken`
    is 1 - ((2 + c) / (1 + c))^b at the median competitor count c: the fraction of an incumbent's sales
    a new neighbour takes (negative would mean sales rise with competition).
    """

    elasticity: float
    lo: float
    hi: float
    se: float
    p_value: float
    alpha: float
    median_competitors: float
    share_taken: float
    share_taken_lo: float
    share_taken_hi: float
    nobs: int
    n_stores: int
    n_periods: int
    n_excluded_partial: int
    n_excluded_ramp: int
    period_effects: bool
    fit: FEResult = field(repr=False)
    by_distance: pl.DataFrame | None = None
    max_competitors: float = 0.0
    notes: list[str] = field(default_factory=list)

    def share_taken_at(self, c: float) -> tuple[float, float, float]:
        """(share, lo, hi) of an incumbent's sales taken when competitors go from c to c + 1."""
        return _share_taken(self.elasticity, c), _share_taken(self.hi, c), _share_taken(self.lo, c)

    def summary(self) -> pl.DataFrame:
        """Elasticity, share taken at the median competitor count and per distance band (if any)."""
        rows = [
            {"quantity": "elasticity", "estimate": self.elasticity, "lo": self.lo, "hi": self.hi},
            {
                "quantity": f"share_taken_at_c={self.median_competitors:g}",
                "estimate": self.share_taken,
                "lo": self.share_taken_lo,
                "hi": self.share_taken_hi,
            },
        ]
        if self.by_distance is not None:
            rows += [
                {
                    "quantity": f"elasticity_{r['band']}",
                    "estimate": r["estimate"],
                    "lo": r["lo"],
                    "hi": r["hi"],
                }
                for r in self.by_distance.iter_rows(named=True)
            ]
        return pl.DataFrame(rows)

    def curve(self, max_c: int | None = None) -> pl.DataFrame:
        """Share of sales taken by one more neighbour for c = 0..max_c current competitors."""
        top = int(max_c if max_c is not None else max(5, min(30, math.ceil(self.max_competitors))))
        rows = [
            dict(zip(("competitors", "share_taken", "lo", "hi"), (c, *self.share_taken_at(c)), strict=True))
            for c in range(top + 1)
        ]
        return pl.DataFrame(rows)

    def chart(self) -> alt.LayerChart:
        """Share of an incumbent's sales a new neighbour takes, by how many competitors it already has."""
        d = self.curve()
        band = (
            alt.Chart(d)
            .mark_area(color=BAND, opacity=0.5)
            .encode(
                x=alt.X("competitors:Q", title="competitors already nearby"),
                y=alt.Y("lo:Q", title="share of sales taken by one more", axis=alt.Axis(format="%")),
                y2="hi:Q",
            )
        )
        line = (
            alt.Chart(d).mark_line(point=True, color=PALETTE[0]).encode(x="competitors:Q", y="share_taken:Q")
        )
        lvl = int(round(100 * (1 - self.alpha)))
        return alt.layer(band, line).properties(
            title=alt.Title(
                "Cannibalization: sales a new neighbour takes",
                subtitle=f"elasticity {self.elasticity:.3f} [{self.lo:.3f}, {self.hi:.3f}], {lvl}% interval, store-clustered",
            )
        )

    def report(self) -> str:
        lvl = int(round(100 * (1 - self.alpha)))
        fe = (
            "store and month fixed effects"
            if self.period_effects
            else "store fixed effects only (no month effects)"
        )
        lines = [
            f"Elasticity of store sales to log(1 + competitors): {self.elasticity:.3f} ({lvl}% interval {self.lo:.3f} to {self.hi:.3f}), "
            f"from {fmt_num(self.nobs)} store-months of {fmt_num(self.n_stores)} stores with {fe}.",
            (
                f"At the median of {self.median_competitors:.0f} competitors, one more takes about "
                f"{fmt_pct(self.share_taken, 2)} of an incumbent's sales (interval {fmt_pct(self.share_taken_lo, 2)} "
                f"to {fmt_pct(self.share_taken_hi, 2)})."
                if self.share_taken >= 0
                else f"At the median of {self.median_competitors:.0f} competitors, one more goes with "
                f"{fmt_pct(-self.share_taken, 2)} HIGHER incumbent sales (interval {fmt_pct(-self.share_taken_hi, 2)} "
                f"to {fmt_pct(-self.share_taken_lo, 2)}): no cannibalization is visible."
            ),
            f"Opening and closing months ({fmt_num(self.n_excluded_partial)} store-months) were left out because they are partial.",
        ]
        return "\n".join(lines + self.notes)


def _haversine_km(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    dlat = la[:, None] - la[None, :]
    dlon = lo[:, None] - lo[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(la[:, None]) * np.cos(la[None, :]) * np.sin(dlon / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _distance_bands(
    present: pl.DataFrame,
    coords: pl.DataFrame,
    d: pl.DataFrame,
    bands: Sequence[float],
    fe: list[str],
    alpha: float,
) -> pl.DataFrame | None:
    """Elasticities to log(1 + competitors) counted in distance bands (any municipality)."""
    coords = coords.drop_nulls().unique("store_id").sort("store_id")
    if coords.height < 3:
        return None
    ids = coords["store_id"].to_list()
    pos = {s: i for i, s in enumerate(ids)}
    periods = present["period"].unique().sort().to_list()
    tpos = {p: i for i, p in enumerate(periods)}
    P = np.zeros((len(periods), len(ids)), dtype=np.float32)
    for p, s in present.select("period", "store_id").iter_rows():
        if s in pos:
            P[tpos[p], pos[s]] = 1.0
    D = _haversine_km(coords["lat"].to_numpy(), coords["lon"].to_numpy())
    np.fill_diagonal(D, np.inf)
    edges = [0.0, *sorted(bands)]
    names = [f"{edges[i]:g}-{edges[i + 1]:g}km" for i in range(len(edges) - 1)]
    d = d.filter(pl.col("store_id").is_in(ids))
    ti = np.array([tpos[p] for p in d["period"].to_list()])
    si = np.array([pos[s] for s in d["store_id"].to_list()])
    cols = {}
    for i in range(len(names)):
        A = ((edges[i] < D) & (edges[i + 1] >= D)).astype(np.float32)
        counts = P @ A  # (T x N): stores present in band around each store
        cols[f"_b{i}"] = np.log1p(counts[ti, si].astype(float))
    dd = d.with_columns([pl.Series(k, v) for k, v in cols.items()])
    usable = [k for k in cols if dd[k].std() > 0]
    if not usable:
        return None
    try:
        r = fe_ols(dd, "_ly", usable, fe=fe, cluster="store_id", alpha=alpha)
    except InputError:
        return None
    rows = []
    for k in usable:
        lo, hi = r.ci(k)
        rows.append({"band": names[int(k[2:])], "estimate": r.coef[k], "lo": lo, "hi": hi})
    return pl.DataFrame(rows)


def cannibalization(
    panel: Any,
    alpha: float = 0.05,
    *,
    exclude_partial: bool = True,
    period_effects: bool = True,
    ramp_months: int = 0,
    controls: Sequence[str] = (),
    stores: pl.DataFrame | pl.LazyFrame | None = None,
    distance_bands_km: Sequence[float] = (1.0, 3.0, 10.0),
) -> CannibalizationResult:
    """Elasticity of store-month revenue to log(1 + competitors), store + period fixed effects.

    `panel`: `[period, store_id, revenue, competitors]` (+ opened_on/closed_on to find partial months
    exactly, + lat/lon for distance bands), or a loaded dataset. Months a store traded only in part
    (its opening and closing months) are dropped when `exclude_partial` - their low revenue says nothing
    about competition. `ramp_months` also drops a store's first months after opening while sales build
    up. `period_effects=False` keeps store effects only: needed when competitors is a market-wide count
    (it would be absorbed by month effects), at the cost of confounding with anything else that moved
    the whole market in the same months. Errors are clustered by store.
    """
    _check_alpha(alpha)
    df = _prepare_panel(panel, "panel")
    _need(df, ["competitors", *controls], "panel")
    if not isinstance(ramp_months, int) or ramp_months < 0:
        raise InputError(f"ramp_months must be a whole number >= 0, got {ramp_months!r}")
    if stores is not None:
        st = _frame(stores, "stores")
        add = [c for c in ("opened_on", "closed_on", "lat", "lon") if c in st.columns and c not in df.columns]
        if add:
            df = df.join(st.select("store_id", *add), on="store_id", how="left")
    df = df.filter(pl.col("revenue").is_not_null() & (pl.col("revenue") > 0))
    if df.height == 0:
        raise InputError("panel: no store-month rows with revenue > 0")
    comp = df["competitors"].cast(pl.Float64)
    if comp.null_count() or not np.isfinite(comp.to_numpy()).all() or (comp < 0).any():
        raise InputError("panel: column 'competitors' must be a non-negative number in every row")
    present = df.select("period", "store_id")
    df = _flag_partial(df)
    n_part = int(df["partial"].sum()) if exclude_partial else 0
    if exclude_partial:
        df = df.filter(~pl.col("partial"))
    n_ramp = 0
    if ramp_months:
        opened = (
            pl.col("opened_on").dt.truncate("1mo")
            if "opened_on" in df.columns
            else pl.col("period").min().over("store_id")
        )
        age = (pl.col("period").dt.year() * 12 + pl.col("period").dt.month()) - (
            opened.dt.year() * 12 + opened.dt.month()
        )
        p0 = df["period"].min()
        young = (age < ramp_months) & (opened > p0) if "opened_on" not in df.columns else age < ramp_months
        n_before = df.height
        df = df.filter(~young.fill_null(False))
        n_ramp = n_before - df.height
    varying = df.group_by("store_id").agg(pl.col("competitors").n_unique() > 1)["competitors"].sum()
    if df.height == 0 or not varying:
        raise InputError(
            "the number of nearby competitors ('competitors') never changes for any store once opening and "
            "closing months are left out, so there is nothing to measure a new neighbour's effect from."
        )
    d = df.with_columns(_ly=pl.col("revenue").log(), _lc=pl.col("competitors").cast(pl.Float64).log1p())
    fe = ["store_id", "period"] if period_effects else ["store_id"]
    try:
        r = fe_ols(d, "_ly", ["_lc", *controls], fe=fe, cluster="store_id", alpha=alpha)
    except InputError as e:  # the reader gets a plain reason; the technical one stays in __cause__
        why = (
            "once month effects are removed, the number of nearby competitors ('competitors') no longer varies "
            "(it moves with the whole market, e.g. when it counts every store), so a new neighbour's effect cannot "
            "be told apart from market-wide changes."
            if period_effects
            else "the number of nearby competitors ('competitors') does not vary enough within stores to "
            "estimate a new neighbour's effect."
        )
        raise InputError(why) from e
    b = r.coef["_lc"]
    lo, hi = r.ci("_lc")
    used = d["competitors"].cast(pl.Float64)
    c_med = float(used.median())
    notes = []
    if not period_effects:
        notes.append(
            "Without month effects, anything that moved the whole market alongside the store count (demand growth, "
            "price falls, a pandemic) loads onto the elasticity; read it as an association, not a causal effect."
        )
    by_dist = None
    if "lat" in d.columns and "lon" in d.columns:
        by_dist = _distance_bands(
            present, d.select("store_id", "lat", "lon"), d, distance_bands_km, fe, alpha
        )
    return CannibalizationResult(
        elasticity=b,
        lo=lo,
        hi=hi,
        se=r.se["_lc"],
        p_value=r.pvalue("_lc"),
        alpha=alpha,
        median_competitors=c_med,
        share_taken=_share_taken(b, c_med),
        share_taken_lo=_share_taken(hi, c_med),
        share_taken_hi=_share_taken(lo, c_med),
        nobs=r.nobs,
        n_stores=int(d["store_id"].n_unique()),
        n_periods=int(d["period"].n_unique()),
        n_excluded_partial=n_part,
        n_excluded_ramp=n_ramp,
        period_effects=period_effects,
        fit=r,
        by_distance=by_dist,
        max_competitors=float(used.quantile(0.95) or 0.0),
        notes=notes,
    )
