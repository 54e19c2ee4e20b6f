"""The manifest and its `truth:` block: every parameter the simulation used, for recovery tests."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np

from cannabis_market.data.contract import CATEGORIES
from cannabis_market.data.generate.calibration import (
    BREAKEVEN_REFERENCE,
    CATEGORY_PRICE_RATIO,
    CATEGORY_SHARE_END,
    CATEGORY_SHARE_END_DATE,
    CATEGORY_SHARE_START,
    CHAINS,
    CLOSURE_FROM,
    CLOSURE_NORMAL_FROM,
    CLOSURE_ORDER,
    CURBSIDE_FROM,
    DATASET_NAME,
    DAY_OF_WEEK,
    DEMAND_ANCHORS,
    DEMAND_GROWTH_AFTER,
    GENERATOR_VERSION,
    INVENTORY_WINDOW_DAYS,
    OUTAGE_NORMAL_FROM,
    OUTAGE_PARTIAL_DAYS,
    OUTAGE_PARTIAL_FROM,
    OUTAGE_START,
    OUTAGE_STOP_DAYS,
    POPULATION_GROWTH,
    PRICE_REFERENCE,
    SEASONALITY,
    STORE_TARGETS,
    WEEKDAY_NAMES,
    _Params,
)
from cannabis_market.data.generate.simulate import _Sim

# ------------------------------------------------------------------------------------------ manifest


def _r2(x: float) -> float:
    return float(round(float(x), 2))


def _truth(sim: _Sim, p: _Params, ids: list[str], start: date, end: date) -> dict[str, Any]:
    b, eps, delta = p.cannibalization_elasticity, p.price_elasticity, p.price_density_effect
    gamma = b - (1 + eps) * delta
    shape = (p.cover_mean / p.cover_sd) ** 2
    day = lambda i: sim.first + timedelta(days=int(i))  # noqa: E731

    def lost_block(by_store: dict[int, float], by_day: dict[int, float]) -> dict[str, Any]:
        per_store = {ids[i]: _r2(v) for i, v in sorted(by_store.items()) if _r2(v) > 0}
        return {
            "lost_sales_total": _r2(sum(per_store.values())),
            "lost_sales_by_store": per_store,
            "lost_sales_by_day": {day(i): _r2(v) for i, v in sorted(by_day.items())},
            "stores_affected": len(per_store),
        }

    out_span = end >= OUTAGE_START and start <= OUTAGE_NORMAL_FROM - timedelta(days=1)
    clo_span = end >= CLOSURE_FROM and start <= CLOSURE_NORMAL_FROM - timedelta(days=1)
    n_eve = int(sim.outage_stores.size) if sim.outage_stores is not None else 0
    ever = int(np.sum(sim.opened <= sim.span[1]))
    return {
        "model": (
            "daily, store i, category k: log price = log(base_k) + log(1 + price_compression_annual) * years "
            "+ price_density_effect * log(1 + c_it) + a_i + z_it; log grams = period_k(t) + store_i "
            "+ price_elasticity * log price + quantity_competition_elasticity * log(1 + c_it) + noise; "
            "revenue = price * grams; c_it = other stores open in the same municipality that day. "
            "See data/README.md."
        ),
        "cannibalization_elasticity": b,
        "cannibalization_definition": (
            "b in log(store revenue) = store FE + period FE + b * log(1 + c_it) + noise, c_it = number of "
            "other stores open in the same municipality that day (includes the price channel)"
        ),
        "quantity_competition_elasticity": float(round(gamma, 6)),
        "quantity_competition_definition": (
            "gamma in log(grams) = store FE + period FE + price_elasticity * log(price) + gamma * log(1 + c_it) "
            "+ noise; gamma = b - (1 + price_elasticity) * price_density_effect"
        ),
        "price_elasticity": eps,
        "price_elasticity_definition": (
            "elasticity of grams w.r.t. own price, identified by the exogenous store price shocks z_it "
            "(independent of demand); control for log(1 + c_it), which moves price and grams"
        ),
        "price_compression_annual": p.price_compression_annual,
        "price_compression_log_rate": float(round(math.log1p(p.price_compression_annual), 6)),
        "price_compression_definition": (
            "fraction change per year of the base price per gram: base(t) = base(2019-04-01) * "
            "(1 + price_compression_annual) ** years_since_2019-04-01; log-rate = log(1 + price_compression_annual)"
        ),
        "price_density_effect": delta,
        "price_density_definition": (
            "d log(price per gram) / d log(1 + c_it), c_it = other stores open in the same municipality that day; "
            "same for all categories"
        ),
        "base_price_per_gram": {
            c: float(round(p.flower_price_base * CATEGORY_PRICE_RATIO[c], 4)) for c in CATEGORIES
        },
        "base_price_date": PRICE_REFERENCE,
        "store_price_level_sd": p.store_price_level_sd,
        "price_shock": {
            "sd": p.price_shock_sd,
            "ar1": p.price_shock_ar1,
            "step": "daily, per store, exogenous",
        },
        "demand": {
            "definition": (
                "counterfactual total store sales per day = monthly level / (365.25 / 12) * seasonality[month] * "
                "day_of_week[weekday] * scale; level is log-linear between the anchors (CAD per month, "
                "de-seasonalised); stores share it in proportion to exp(store effect + (1 + price_elasticity) * "
                "(a_i + z_it) + cannibalization_elasticity * log(1 + c_it))"
            ),
            "anchors_cad_per_month": {d: float(v) for d, v in DEMAND_ANCHORS},
            "growth_after_last_anchor": DEMAND_GROWTH_AFTER,
            "scale": float(round(sim.scale, 6)),
        },
        "seasonality": {m: float(v) for m, v in zip(range(1, 13), SEASONALITY, strict=True)},
        "day_of_week": {w: float(v) for w, v in zip(WEEKDAY_NAMES, DAY_OF_WEEK, strict=True)},
        "category_share_start": {c: CATEGORY_SHARE_START[c] for c in CATEGORIES},
        "category_share_end": {c: CATEGORY_SHARE_END[c] for c in CATEGORIES},
        "category_share_end_date": CATEGORY_SHARE_END_DATE,
        "category_price_ratio": {c: CATEGORY_PRICE_RATIO[c] for c in CATEGORIES},
        "store_heterogeneity_sd": p.store_effect_sd,
        "population_elasticity": p.population_elasticity,
        "reference_population": p.reference_population,
        "municipality_attractiveness_sd": p.municipality_attractiveness_sd,
        "population_growth_annual": dict(POPULATION_GROWTH),
        "chains": {
            "probability": p.chain_probability,
            "names": list(CHAINS),
            "size_weights": "Zipf: 1 / rank",
            "effect": "none beyond the store fixed effect",
        },
        "noise": {
            "store_day_sd": p.store_day_noise_sd,
            "category_sd": p.category_noise_sd,
            "common_daily_shock_sd": p.common_shock_sd,
            "common_daily_shock_ar1": p.common_shock_ar1,
        },
        "openings": {
            "target_open_stores": {d: int(v) for d, v, _ in STORE_TARGETS},
            "scale": float(round(sim.scale, 6)),
            "rule": (
                "each day open stores = round(scale * target), target linear between the dated points; "
                "closures are replaced evenly over the following month; no openings during the 2022 outage"
            ),
        },
        "closure_rule": {
            "breakeven_monthly_revenue": p.breakeven_monthly_revenue,
            "breakeven_reference_date": BREAKEVEN_REFERENCE,
            "breakeven_growth_annual": p.breakeven_growth_annual,
            "trailing_months": p.closure_trailing_months,
            "monthly_probability": p.closure_probability,
            "rule": (
                "at each month end, a store open for at least trailing_months full months whose average monthly "
                "revenue over the last trailing_months months is below breakeven(t) = breakeven_monthly_revenue * "
                "(1 + breakeven_growth_annual) ** years since the reference date closes with probability "
                "monthly_probability; closed_on = that month's last day (last day open)"
            ),
        },
        "breakeven_monthly_revenue": p.breakeven_monthly_revenue,
        "stores_ever_opened": ever,
        "closures_by_year": {int(y): int(v) for y, v in sorted(sim.closures_by_year.items())},
        "openings_by_year": {int(y): int(v) for y, v in sorted(sim.openings_by_year.items())},
        "outage_2022": {
            "in_span": bool(out_span),
            "start": OUTAGE_START,
            "partial_from": OUTAGE_PARTIAL_FROM,
            "normal_from": OUTAGE_NORMAL_FROM,
            "stop_days": OUTAGE_STOP_DAYS,
            "partial_days": OUTAGE_PARTIAL_DAYS,
            "partial_fill": p.outage_partial_fill,
            "mechanism": "cannabis_market.data.outage_model.served_share(days_of_cover on the eve, stop_days, partial_days, partial_fill)",
            "days_of_cover": {
                "distribution": "gamma",
                "mean": p.cover_mean,
                "sd": p.cover_sd,
                "shape": float(round(shape, 6)),
                "scale": float(round(p.cover_sd**2 / p.cover_mean, 6)),
                "rounded_to": 0.01,
                "measured_on": OUTAGE_START - timedelta(days=1),
            },
            "stores_open_on_eve": n_eve,
            **lost_block(sim.outage_lost_store, sim.outage_lost_day),
            "lost_sales_note": (
                "CAD, tax excluded, all categories, days inside the dataset span; lost = counterfactual revenue x "
                "(1 - served share); stores with zero loss are omitted from lost_sales_by_store"
            ),
        },
        "closure_2020": {
            "in_span": bool(clo_span),
            "order": CLOSURE_ORDER,
            "closed_from": CLOSURE_FROM,
            "curbside_from": CURBSIDE_FROM,
            "normal_from": CLOSURE_NORMAL_FROM,
            "curbside_share": p.curbside_share,
            "closed_share": 0.0,
            **lost_block(sim.closure_lost_store, sim.closure_lost_day),
        },
        "inventory": {
            "window_days": INVENTORY_WINDOW_DAYS,
            "fluctuation_sd": p.cover_fluctuation_sd,
            "fluctuation_ar1": p.cover_fluctuation_ar1,
            "recovery_days": p.cover_recovery_days,
            "definition": "days_of_cover = stock at the close of the day, in days of the store's normal demand",
        },
    }


def _manifest(
    sim: _Sim, p: _Params, ids: list[str], seed: int, stores: int, start: date, end: date, frequency: str
) -> dict[str, Any]:
    return {
        "name": DATASET_NAME,
        "description": (
            "SYNTHETIC data: a simulated Ontario-like legal cannabis retail market (not real sales). Generated by "
            "cannabis_market.data.generate with known ground truth under `truth:`; calibrated to public facts "
            "(see data/README.md). Revenue is CAD, tax excluded; grams are dried-flower gram-equivalents."
        ),
        "source": "synthetic",
        "frequency": frequency,
        "currency": "CAD",
        "region": "Ontario",
        "generator": {
            "version": GENERATOR_VERSION,
            "seed": seed,
            "stores": stores,
            "start": start,
            "end": end,
        },
        "truth": _truth(sim, p, ids, start, end),
    }
