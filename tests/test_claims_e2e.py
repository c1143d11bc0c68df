"""The real Snakefile on a tiny study with every sub-grid of the default study: every claim of
the brief gets a verdict other than "not tested", each figure is drawn from its sub-grid, and
the tables carry each sub-grid's rows."""

from __future__ import annotations

import pandas as pd
import pytest
from study import CLAIMS, snakemake, write_config

from vanishing.analysis.tables import read_tables
from vanishing.report import catalog
from vanishing.report.evidence import NOT_TESTED
from vanishing.report.figures import build_figures
from vanishing.report.findings import evaluate, summary_row
from vanishing.report.registry import CLAIMS as REGISTRY

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("claims")
    write_config(workdir, CLAIMS)
    snakemake(workdir)
    return workdir / "results"


def test_every_claim_is_judged(study):
    claims = evaluate(study / "tables")
    assert [c.number for c in claims] == [s.number for s in REGISTRY]
    untested = {c.number: c.reason for c in claims if c.verdict == NOT_TESTED}
    assert untested == {}
    findings = (study / "FINDINGS.md").read_text()
    for c in claims:
        assert summary_row(c) in findings
    grids = {c.number: c.grids for c in claims}
    assert grids[1] == "profile" and grids[10] == "deep" and "adam" in grids[2]
    assert "matched_init" in grids[4]


def test_each_sub_grid_has_its_rows(study):
    runs = pd.read_csv(study / "tables" / "runs.csv")
    members = runs["grids"].str.split().explode()
    assert set(members) == set(CLAIMS["grids"])
    assert (runs.loc[runs["grids"] == "profile", "epochs"] == 0).all()
    assert len(runs[runs["grids"] == "profile"]) == 3 * 5 * 2 * 5  # one lr, five seeds
    slopes = pd.read_csv(study / "tables" / "decay_fits.csv")
    sig = slopes[(slopes["grid"] == "profile") & (slopes["activation"] == "sigmoid")
                 & (slopes["norm"] == "none")].squeeze()  # fmt: skip
    # depth 128 underflows float32 in every seed (10^-77): censored, left out of the fit
    assert sig["n_depths"] == 4 and sig["n_censored"] == 5
    assert sig["exp_slope"] < -0.3  # about 0.6 decades per layer
    under = pd.read_csv(study / "tables" / "underflow.csv")
    deep_sig = under[(under["grid"] == "profile") & (under["activation"] == "sigmoid")
                     & (under["depth"] == 128) & (under["norm"] == "none")].squeeze()  # fmt: skip
    assert deep_sig["n_below_floor"] == deep_sig["n_seeds"] == 5  # 10^-77 < 2^-24


def test_every_figure_is_drawn_from_its_sub_grid(study):
    figs = build_figures(read_tables(study / "tables", catalog.TABLES))
    # figures drawn only from their own sub-grids (``together``) are skipped without them
    absent = {
        f.name for f in catalog.FIGURES if f.together and not set(f.grids) & set(CLAIMS["grids"])
    }
    assert [n for n, f in figs.items() if f.get_label() == "placeholder"] == sorted(absent)
    for spec in catalog.FIGURES:
        if spec.name in absent:
            assert "no sub-grid" in figs[spec.name].axes[0].texts[0].get_text()
            continue
        title = figs[spec.name].get_suptitle()
        assert f"sub-grid {spec.grids[0]}" in title, spec.name


def test_the_recurrent_nets_have_their_time_tables(study):
    """Claims through time (issue 18): every recurrent run has a step-0 row in time_runs, the
    trained ones a final row too, and every Elman net a J-test row across its four T."""
    runs = pd.read_csv(study / "tables" / "runs.csv")
    rec = runs[runs["arch"].isin(["rnn", "gru"])]
    assert len(rec) == 2 * 2 * 4 * 5 + 2 * 3  # step-0 profiles (5 seeds), trained (3 seeds)
    time_runs = pd.read_csv(study / "tables" / "time_runs.csv")
    prof = time_runs[time_runs["grid"] == "recurrent_profile"]
    assert len(prof) == 2 * 2 * 4 * 5 and set(prof["stage"]) == {"init"}
    trained = time_runs[time_runs["grid"] == "recurrent"]
    assert sorted(trained["stage"].value_counts().to_dict().items()) == [("final", 6), ("init", 6)]
    assert prof["predicted_slope"].notna().all() and prof["time_slope"].notna().all()
    fits = pd.read_csv(study / "tables" / "time_fits.csv")
    fits = fits[fits["grid"] == "recurrent_profile"]
    assert len(fits) == 2 * 2 and (fits["n_obs"] + fits["n_censored"] == 4 * 5).all()
