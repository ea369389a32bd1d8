"""Highly variable ATSEs: the statistic ranks planted variable ATSEs first; pp writes var columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from splicevi.data.variable_atses import atse_variation, select_variable_atses, variation_ranks


def _planted(
    seed: int = 0, n_cells: int = 1500, n_events: int = 200, n_variable: int = 20, observed: float = 0.05
):
    """Droplet-like counts: 2-junction ATSEs, 1-4 reads per observed pair.

    Every ATSE is Dirichlet-multinomial (concentration 20: the overdispersion all ATSEs share); the
    first ``n_variable`` ATSEs also differ between two halves of the cells (PSI 0.2 vs 0.8). Null
    ATSEs are better covered on average than the variable ones, so coverage alone ranks wrongly.
    """
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n_cells)
    base = rng.uniform(0.2, 0.8, n_events)
    psi = np.tile(base, (n_cells, 1))
    psi[:, :n_variable] = np.where(group[:, None] == 0, 0.2, 0.8)
    rate = np.where(np.arange(n_events) < n_variable, 1.0, 1.5)
    mask = rng.random((n_cells, n_events)) < observed * rate / rate.mean()
    n = np.where(mask, 1 + rng.poisson(1.0, (n_cells, n_events)), 0)
    p = rng.beta(psi * 20.0, (1 - psi) * 20.0)
    k1 = rng.binomial(n, p)
    counts = np.zeros((n_cells, 2 * n_events))
    counts[:, 0::2] = k1
    counts[:, 1::2] = n - k1
    codes = np.repeat(np.arange(n_events), 2)
    return sp.csr_matrix(counts), codes, n_variable


def test_statistic_ranks_planted_variable_atses_first():
    k, codes, n_variable = _planted()
    table = atse_variation(k, codes)
    top = np.argsort(-np.nan_to_num(table["hva_z"].to_numpy(), nan=-np.inf))[:n_variable]
    assert np.mean(top < n_variable) >= 0.7, sorted(top)
    # The overdispersion every ATSE shares is estimated (ρ = 1/21 for a concentration of 20).
    null_rho = table["hva_rho"].to_numpy()[n_variable:]
    assert abs(np.nanmedian(null_rho) - 1 / 21) < 0.03


def test_selection_and_ranks():
    k, codes, n_variable = _planted(seed=1)
    table = atse_variation(k, codes)
    assert select_variable_atses(table, n_top=7).sum() == 7
    by_z = select_variable_atses(table, n_top=None, min_z=3.0)
    assert by_z.any() and (table["hva_z"][by_z] >= 3.0).all()
    assert (table["hva_z"][~by_z].fillna(0) < 3.0).all()
    assert select_variable_atses(table, n_top=2, min_z=3.0).sum() == min(2, by_z.sum())
    ranks = variation_ranks(table)
    assert ranks[np.nanargmax(table["hva_z"].to_numpy())] == 1
    with pytest.raises(ValueError, match="n_top"):
        select_variable_atses(table, n_top=0)


def test_atses_without_enough_pairs_of_reads_are_never_selected():
    # One read per observed pair: nothing to estimate variation from.
    rng = np.random.default_rng(2)
    k1 = (rng.random((300, 10)) < 0.1).astype(float)
    k2 = ((rng.random((300, 10)) < 0.1) & (k1 == 0)).astype(float)
    counts = np.zeros((300, 20))
    counts[:, 0::2], counts[:, 1::2] = k1, k2
    table = atse_variation(sp.csr_matrix(counts), np.repeat(np.arange(10), 2))
    assert table["hva_z"].isna().all()
    assert not select_variable_atses(table, n_top=5).any()


def _splicing_adata():
    import anndata as ad

    k, codes, _ = _planted(seed=3, n_cells=600, n_events=60, n_variable=6, observed=0.2)
    var = pd.DataFrame({"event_id": [f"E{c:03d}" for c in codes]}, index=[f"j{i}" for i in range(k.shape[1])])
    obs = pd.DataFrame(index=[f"c{i}" for i in range(k.shape[0])])
    return ad.AnnData(X=k.copy(), obs=obs, var=var, layers={"cell_by_junction_matrix": k})


@pytest.mark.parametrize("container", ["anndata", "mudata"])
def test_pp_writes_var_columns(container):
    import mudata as md

    from splicevi.pp import highly_variable_atses

    adata = _splicing_adata()
    data = adata if container == "anndata" else md.MuData({"splicing": adata})
    assert highly_variable_atses(data, n_top=6) is None
    var = (data if container == "anndata" else data["splicing"]).var
    for column in ("highly_variable", "hva_rho", "hva_z", "hva_rank", "hva_cells_multi", "hva_mean_reads"):
        assert column in var
    # Whole ATSEs are marked: 6 ATSEs × 2 junctions.
    assert var["highly_variable"].sum() == 12
    assert var.groupby("event_id")["highly_variable"].nunique().max() == 1
    assert var.loc[var["highly_variable"], "event_id"].isin([f"E{c:03d}" for c in range(6)]).mean() >= 0.8
    table = highly_variable_atses(data, n_top=6, inplace=False)
    assert table.index.name == "event_id" and table["highly_variable"].sum() == 6


def test_pp_errors_name_the_missing_field():
    from splicevi.pp import highly_variable_atses

    adata = _splicing_adata()
    with pytest.raises(KeyError, match="cell_by_junction_matrix"):
        highly_variable_atses(adata, layer="cell_by_junction_matrix_x")
    del adata.var["event_id"]
    with pytest.raises(KeyError, match="event_id"):
        highly_variable_atses(adata)
    with pytest.raises(TypeError, match="MuData or AnnData"):
        highly_variable_atses(np.zeros((2, 2)))


def test_exact_excess_and_no_excess():
    """Reads of a cell all on one junction, cells differing: z = +inf; no excess: never selected.

    ATSEs no more variable than the typical one stay out even under a large ``n_top``.
    """
    rng = np.random.default_rng(4)
    n_cells, n_null = 400, 6
    counts = np.zeros((n_cells, 2 * (n_null + 1)))
    on_first = rng.random(n_cells) < 0.5
    counts[:, 0] = np.where(on_first, 3, 0)
    counts[:, 1] = np.where(on_first, 0, 3)
    for e in range(1, n_null + 1):
        n = rng.integers(2, 5, n_cells)
        k1 = rng.binomial(n, 0.4)
        counts[:, 2 * e], counts[:, 2 * e + 1] = k1, n - k1
    table = atse_variation(sp.csr_matrix(counts), np.repeat(np.arange(n_null + 1), 2))
    assert table["hva_rho"][0] == pytest.approx(1.0) and np.isposinf(table["hva_z"][0])
    selected = select_variable_atses(table, n_top=100)
    assert selected[0]
    assert (table["hva_z"][selected] > 0).all() and selected.sum() < n_null + 1
    assert variation_ranks(table)[0] == 1


def test_assemble_flag_writes_the_selection(tmp_path, capsys):
    """``splicevi assemble --highly-variable-atses N`` marks N ATSEs in the written file."""
    import mudata as md

    from splicevi.cli.main import main

    sim = tmp_path / "sim"
    steps = [
        [
            "simulate",
            "--out",
            str(sim),
            "--format",
            "starsolo",
            "--n-cells",
            "200",
            "--n-genes",
            "30",
            "--n-events",
            "40",
            "--observed-fraction",
            "0.5",
            "--seed",
            "2",
            "--no-progress",
        ],
        ["ingest", "--junctions", str(sim), "--out-junctions", str(tmp_path / "j.h5ad"), "--no-progress"],
        [
            "atse",
            "--junctions",
            str(tmp_path / "j.h5ad"),
            "--min-reads",
            "1",
            "--min-cells",
            "1",
            "--min-site-usage",
            "0",
            "--out",
            str(tmp_path / "events.tsv"),
        ],
        [
            "assemble",
            "--junctions",
            str(tmp_path / "j.h5ad"),
            "--events",
            str(tmp_path / "events.tsv"),
            "--highly-variable-atses",
            "5",
            "--out",
            str(tmp_path / "data.h5mu"),
        ],
    ]
    for argv in steps:
        assert main(argv) == 0, capsys.readouterr().err
    var = md.read_h5mu(tmp_path / "data.h5mu")["splicing"].var
    assert var.loc[var["highly_variable"].astype(bool), "event_id"].nunique() == 5
    assert {"hva_rho", "hva_z", "hva_rank"} <= set(var.columns)
    bad = steps[-1][:-2] + ["--out", str(tmp_path / "bad.h5mu")]
    bad[bad.index("5")] = "0"
    assert main(bad) == 2
    assert "--highly-variable-atses" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5mu").exists()
