"""Shared cases of the model tests and a ready ``splicevi cluster`` output (used by several test files)."""

from __future__ import annotations

from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd

from splicevi.cli.main import main
from splicevi.data import simulate
from splicevi.tl.embedding import LATENT_KEYS, neighbors_umap

#: One model per entry: each non-default option of SPLICEVI at least once (tests/model/test_model.py
#: trains them; test_model_options.py checks that each changes the module or the loss).
OPTIONS = [
    {},
    {"modality_weights": "universal"},
    {"modality_weights": "cell"},
    {"modality_weights": "concatenate"},
    {"modality_weights": "per_dimension_weighted_average"},
    {"modality_penalty": "MMD"},
    {"modality_penalty": "None"},
    {"gene_likelihood": "nb"},
    {"gene_likelihood": "poisson"},
    {"dispersion": "gene-batch"},
    {"dispersion": "gene-label"},
    {"dispersion": "gene-cell", "expression_architecture": "vanilla"},
    {"splicing_encoder_architecture": "vanilla"},
    {"splicing_decoder_architecture": "vanilla", "expression_architecture": "vanilla"},
    {"latent_distribution": "ln"},
    {"deeply_inject_covariates": True, "encode_covariates": True, "splicing_decoder_architecture": "vanilla"},
    {"splicing_loss_type": "binomial"},
    {"splicing_loss_type": "beta_binomial"},
    {"splicing_loss_type": "beta_binomial", "splicing_concentration": 20.0},
    {"dm_concentration": "scalar"},
    {"pool_mode": "sum", "max_nobs": 50},
    {"initialize_embeddings_from_pca": False, "code_dim": 8, "encoder_hidden_dim": 32},
    {"modality_weights": "precision"},
    {"fully_paired": True},
    {"use_batch_norm": "both", "use_layer_norm": "none", "n_layers_encoder": 1, "n_layers_decoder": 1},
    {"n_hidden": 32, "n_latent": 5, "dropout_rate": 0.0},
    {"splicing_encoder_atses": "highly_variable", "splicing_encoder_weighting": "reads"},
]


def write_ds_tables(mdata, folder: Path) -> None:
    """``ds_junctions.tsv`` / ``ds_events.tsv`` as `splicevi ds` writes them, from the planted ΔPSI.

    Two contrasts (type1 and type2 against type0); the probability grows with the true |ΔPSI|.
    """
    from splicevi.cli.ds import annotate_ds_tables
    from splicevi.tl.ranking import events_from_junctions, rank_table

    var = mdata["splicing"].var
    rows = []
    for g in ("type1", "type2"):
        eff = (var[f"true_psi_{g}"] - var["true_psi_type0"]).to_numpy()
        proba = np.clip(np.abs(eff) * 4, 0, 1)
        rows.append(
            pd.DataFrame(
                {
                    "contrast": f"{g}_vs_type0",
                    "groupby": "cell_type",
                    "group1": g,
                    "group2": "type0",
                    "junction_id": var.index.astype(str),
                    "event_id": var["event_id"].to_numpy(),
                    "proba_ds": proba,
                    "effect_size": eff,
                    "is_ds_fdr": proba > 0.8,
                }
            )
        )
    junctions = rank_table(pd.concat(rows, ignore_index=True), "proba_ds", "effect_size")
    events = rank_table(events_from_junctions(junctions), "proba_ds", "effect_size")
    j, e = annotate_ds_tables(mdata, junctions, events)
    folder.mkdir(parents=True, exist_ok=True)
    j.to_csv(folder / "ds_junctions.tsv", sep="\t", index=False)
    e.to_csv(folder / "ds_events.tsv", sep="\t", index=False)


def make_results(folder: Path, seed: int = 4) -> Path:
    """``splicevi cluster`` output (``folder/results/splicevi.h5mu``) from a simulation and a latent.

    The latent is the simulation's cell-type signal plus noise (no model: fast), embedded with the
    same helper as ``splicevi embed``.
    """
    sim = simulate(n_cells=150, n_genes=60, n_events=30, n_types=3, seed=seed)
    mdata = sim.to_mudata()
    data = folder / "data.h5mu"
    mdata.write(data)
    rng = np.random.default_rng(seed)
    types = mdata.obs["cell_type"].astype("category").cat.codes.to_numpy()
    joint = np.eye(3)[types] * 6 + rng.normal(size=(mdata.n_obs, 3))
    extra = {LATENT_KEYS["splicing"]: joint[:, :2], LATENT_KEYS["expression"]: joint[:, 1:]}
    emb = neighbors_umap(joint, mdata.obs_names, n_neighbors=10, seed=0, extra_latents=extra)
    emb.uns["splicevi_embed"] = {"n_neighbors": 10}
    emb.write_h5ad(folder / "embedding.h5ad")
    annotations = folder / "annotations.tsv"
    pd.DataFrame(
        {"cell_id": mdata.obs_names, "sample": np.where(np.arange(mdata.n_obs) % 2, "s1", "s2")}
    ).to_csv(annotations, sep="\t", index=False)
    out = folder / "results" / "splicevi.h5mu"
    out.parent.mkdir(parents=True, exist_ok=True)
    rc = main(
        [
            "cluster",
            "--mdata",
            str(data),
            "--embedding",
            str(folder / "embedding.h5ad"),
            "--resolution",
            "0.3",
            "--annotations",
            str(annotations),
            "--out",
            str(out),
            "--out-cells",
            str(folder / "cells.tsv"),
        ]
    )
    assert rc == 0
    write_ds_tables(md.read_h5mu(out), out.parent / "ds")
    return out
