"""Cross-check of `analysis.inference.fe_ols` against pyfixest (a test-only dependency, in the `dev` and
`test` extras): point estimates and standard errors on several estimators, CRV3, and the exact (LSMR)
fallback on a weakly connected panel."""

from __future__ import annotations

import warnings

import polars as pl
import pyfixest as pf
import pytest
from test_inference import _clustered, _panel, chain_panel

from cannabis_market.analysis.inference import fe_ols

# fixest's small-sample factors as documented in analysis/inference.py
SSC = pf.ssc(k_adj=True, k_fixef="none", G_adj=True, G_df="min")
SSC_NONE = pf.ssc(k_adj=False, k_fixef="none", G_adj=False, G_df="min")


def _pyfixest(df: pl.DataFrame, fml: str, vcov, ssc, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pf.feols(fml, data=df.to_pandas(), vcov=vcov, ssc=ssc, **kw)
    return m.coef(), m.se()


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    return _panel(1).with_columns(z=pl.col("x") ** 2)


@pytest.mark.parametrize(
    ("fml", "x", "fe", "cluster"),
    [
        ("y ~ x | unit + t", ["x"], ["unit", "t"], "unit"),
        ("y ~ x + z | unit + t", ["x", "z"], ["unit", "t"], "t"),
        ("y ~ x | unit", ["x"], ["unit"], None),
    ],
)
def test_crv1_and_hc1_match_pyfixest(panel, fml, x, fe, cluster):
    ours = fe_ols(panel, "y", x, fe=fe, cluster=cluster)
    coef, se = _pyfixest(panel, fml, {"CRV1": cluster} if cluster else "hetero", SSC)
    for name in x:
        assert ours.coef[name] == pytest.approx(coef[name], rel=1e-9, abs=1e-12)
        assert ours.se[name] == pytest.approx(se[name], rel=1e-8)


@pytest.mark.parametrize(("fml", "fe"), [("y ~ x | unit", ["unit"]), ("y ~ x | unit + t", ["unit", "t"])])
def test_crv3_matches_pyfixest_jackknife(fml, fe):
    df = _clustered(1).with_columns(pl.col("unit", "t", "cl").cast(pl.String))
    ours = fe_ols(df, "y", ["x"], fe=fe, cluster="cl", vcov="CRV3")
    coef, se = _pyfixest(df, fml, {"CRV3": "cl"}, SSC_NONE)
    g = ours.n_clusters
    assert ours.coef["x"] == pytest.approx(coef["x"], rel=1e-12)
    # pyfixest without small-sample factors reports sum_g (b_-g - b)^2; CV3 scales it by (G-1)/G
    assert ours.se["x"] == pytest.approx(se["x"] * ((g - 1) / g) ** 0.5, rel=1e-9)


def test_weakly_connected_panel_matches_pyfixest_at_tight_tolerance():
    df = chain_panel()
    ours = fe_ols(df, "y", ["x"], fe=["unit", "t"], cluster="unit")
    assert ours.demean_method == "LSMR"
    coef, se = _pyfixest(
        df, "y ~ x | unit + t", {"CRV1": "unit"}, SSC, fixef_tol=1e-12, fixef_maxiter=500_000
    )
    assert ours.coef["x"] == pytest.approx(coef["x"], rel=1e-9)
    assert ours.se["x"] == pytest.approx(se["x"], rel=1e-7)
