"""Quality benchmark of SpliceVI on the project's simulator with planted truth.

For a Smart-seq2-like (≈15 % of (cell, ATSE) pairs observed) and a droplet-like (≈3 %) dataset it
reports, as JSON:

* ARI / NMI of Leiden clusters on the joint, expression and splicing latents of SPLICEVI and on
  scvi-tools' SCVI (expression only) — the best ARI over a resolution grid and the scores at the
  resolution whose number of clusters is closest to the true number of types (same rule for every
  method); plus the ARI restricted to the two splice-only types (types n-2 and n-1);
* differential splicing: AUROC / AUPRC of the planted junctions and events for the splice-only
  pair and for type0 vs rest, for the model's ``proba_ds`` and ``|effect_size|`` and for the pooled
  observed ΔPSI baseline; the empirical FDR and power of the ``is_ds_fdr`` calls at fdr_target 0.05;
  calls on a null contrast (two random halves of type0);
* imputation of hidden ATSEs (10 % of each cell's observed ATSEs, hidden before training) by the
  decoded PSI against the group-mean (true cell type) and global-mean baselines.

One SPLICEVI model per dataset is trained on the masked data and used for everything, so the
clustering and DS figures come from a model that saw 90 % of the observed ATSEs.

Run: ``python bench/quality.py [--quick] [--out bench/results/quality.json]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.data.layers import event_codes, junction_to_event_matrix
from splicevi.tl.imputation import hide_events_mudata, imputation_scores
from splicevi.tl.metrics import call_quality, leiden_agreement, ranking_quality

DELTA = 0.1
FDR = 0.05


def true_dpsi(sim, group1: str, group2: str | None, cell_types: np.ndarray) -> pd.Series:
    """True ΔPSI of the groups' mean PSI (group2 None: the rest, weighted by its cell counts)."""
    psi1 = sim.junctions[f"true_psi_{group1}"]
    if group2 is not None:
        return psi1 - sim.junctions[f"true_psi_{group2}"]
    rest = pd.Series(cell_types[cell_types != group1]).value_counts(normalize=True)
    return psi1 - sum(w * sim.junctions[f"true_psi_{t}"] for t, w in rest.items())


def ds_quality(model, sim, mdata, group1: str, group2: str | None) -> dict:
    """Ranking and calls of differential splicing against the planted truth, per junction and event."""
    cell_types = mdata.obs["cell_type"].astype(str).to_numpy()
    t0 = time.time()
    junc = model.differential_splicing(groupby="cell_type", group1=group1, group2=group2, delta=DELTA, fdr_target=FDR)
    events = model.differential_splicing(
        groupby="cell_type", group1=group1, group2=group2, delta=DELTA, fdr_target=FDR, level="event"
    )
    seconds = time.time() - t0
    dpsi = true_dpsi(sim, group1, group2, cell_types)
    truth = (dpsi.abs() > DELTA).loc[junc.index].to_numpy()
    planted = (dpsi.abs() > 1e-6).loc[junc.index].to_numpy()
    ev_dpsi = dpsi.abs().groupby(sim.junctions["event_id"]).max()
    ev_truth = (ev_dpsi > DELTA).loc[events["event_id"]].to_numpy()
    ev_planted = (ev_dpsi > 1e-6).loc[events["event_id"]].to_numpy()
    proba_score = junc["proba_ds"].to_numpy() + 1e-3 * junc["effect_size"].abs().to_numpy()
    ev_score = events["proba_ds"].to_numpy() + 1e-3 * events["max_abs_dpsi"].to_numpy()
    return {
        "contrast": f"{group1} vs {group2 or 'rest'}",
        "seconds_junction_and_event": round(seconds, 1),
        "junction": {
            "truth": f"|true ΔPSI| > {DELTA}",
            "model_proba_ds": ranking_quality(truth, proba_score),
            "model_abs_effect": ranking_quality(truth, junc["effect_size"].abs()),
            "pooled_dpsi_baseline": ranking_quality(truth, junc["emp_effect"].abs()),
            "calls_vs_truth": call_quality(truth, junc["is_ds_fdr"]),
            "calls_vs_any_planted_change": call_quality(planted, junc["is_ds_fdr"]),
            "effect_error_called": float(
                np.abs(junc["effect_size"] - dpsi.loc[junc.index])[junc["is_ds_fdr"]].mean()
            ) if junc["is_ds_fdr"].any() else None,
            "effect_error_all_model": float(np.abs(junc["effect_size"] - dpsi.loc[junc.index]).mean()),
            "effect_error_all_pooled": float(np.nanmean(np.abs(junc["emp_effect"] - dpsi.loc[junc.index]))),
        },
        "event": {
            "truth": f"max |true ΔPSI| of the ATSE > {DELTA}",
            "model_proba_ds": ranking_quality(ev_truth, ev_score),
            "pooled_dpsi_baseline": ranking_quality(ev_truth, events["emp_max_abs_dpsi"]),
            "calls_vs_truth": call_quality(ev_truth, events["is_ds_fdr"]),
            "calls_vs_any_planted_change": call_quality(ev_planted, events["is_ds_fdr"]),
        },
    }


def clustering(latents: dict[str, np.ndarray], cell_types: np.ndarray, pair: tuple[str, str]) -> dict:
    """Leiden agreement per latent, and the ARI within the splice-only pair of types."""
    out = {}
    in_pair = np.isin(cell_types, pair)
    for name, latent in latents.items():
        scores = leiden_agreement(latent, cell_types)
        # Clustering of the pair's cells alone (same resolution grid): can the latent split them?
        pair_scores = leiden_agreement(latent[in_pair], cell_types[in_pair], resolutions=(0.1, 0.2, 0.4, 0.6, 1.0))
        out[name] = {
            "best_of_grid": scores["best_of_grid"],
            "matched_n_clusters": scores["matched_n_clusters"],
            "splice_only_pair": {
                "best_of_grid": pair_scores["best_of_grid"],
                "matched_n_clusters": pair_scores["matched_n_clusters"],
            },
        }
    return out


def run_dataset(name: str, observed_fraction: float, args) -> dict:
    """Simulate, mask, train SPLICEVI and SCVI, and score everything for one sparsity level."""
    t_start = time.time()
    sim = simulate(
        n_cells=args.n_cells,
        n_genes=args.n_genes,
        n_events=args.n_events,
        n_types=4,
        observed_fraction=observed_fraction,
        seed=args.seed,
    )
    mdata = sim.to_mudata()
    spl = mdata["splicing"]
    observed = float((spl.layers["cell_by_cluster_matrix"] > 0).sum() / spl.shape[1] / spl.shape[0])
    masked, hidden = hide_events_mudata(mdata, fraction=0.1, seed=args.seed)
    cell_types = masked.obs["cell_type"].astype(str).to_numpy()
    types = list(sim.obs["cell_type"].cat.categories)
    pair = (types[-2], types[-1])

    SPLICEVI.setup_mudata(masked, batch_key="batch")
    torch.manual_seed(args.seed)
    model = SPLICEVI(masked, n_latent=10, modality_penalty=args.modality_penalty)
    t0 = time.time()
    model.train(
        max_epochs=args.epochs, lr=args.lr, batch_size=128, early_stopping=False, enable_progress_bar=False,
        n_epochs_kl_warmup=max(1, args.epochs // 3),
    )
    t_train = time.time() - t0

    rna = masked["rna"].copy()
    scvi.model.SCVI.setup_anndata(rna)
    ref = scvi.model.SCVI(rna, n_latent=10)
    t0 = time.time()
    ref.train(max_epochs=args.scvi_epochs, early_stopping=False, enable_progress_bar=False, batch_size=128)
    t_scvi = time.time() - t0

    latents = {
        "splicevi_joint": model.get_latent_representation(modality="joint"),
        "splicevi_expression": model.get_latent_representation(modality="expression"),
        "splicevi_splicing": model.get_latent_representation(modality="splicing"),
        "scvi_expression_only": ref.get_latent_representation(),
    }
    clusters = clustering(latents, cell_types, pair)

    ds = {
        "splice_only_pair": ds_quality(model, sim, masked, pair[0], pair[1]),
        "type_vs_rest": ds_quality(model, sim, masked, types[0], None),
    }
    cells = np.nonzero(cell_types == types[0])[0]
    rng = np.random.default_rng(args.seed)
    rng.shuffle(cells)
    half = cells.size // 2
    null_j = model.differential_splicing(idx1=cells[:half], idx2=cells[half:], delta=DELTA, fdr_target=FDR)
    null_e = model.differential_splicing(idx1=cells[:half], idx2=cells[half:], delta=DELTA, fdr_target=FDR, level="event")
    ds["null_contrast_random_halves_of_type0"] = {
        "junction_calls": int(null_j["is_ds_fdr"].sum()),
        "event_calls": int(null_e["is_ds_fdr"].sum()),
        "n_junctions": int(null_j.shape[0]),
        "max_proba_ds": float(null_j["proba_ds"].max()),
        "max_abs_effect": float(null_j["effect_size"].abs().max()),
        "max_abs_pooled_dpsi": float(null_j["emp_effect"].abs().max()),
    }

    codes, _ = event_codes(masked["splicing"].var["event_id"])
    decoded = model.get_normalized_splicing(return_numpy=True)
    imputation = imputation_scores(
        decoded, hidden, masked["splicing"].layers["cell_by_junction_matrix"], codes, cell_types
    )
    imputation["note"] = "group_mean uses the true cell type (an oracle grouping); all computed on the masked data"

    return {
        "dataset": name,
        "simulation": {
            "n_cells": args.n_cells, "n_genes": args.n_genes, "n_events": args.n_events, "n_types": 4,
            "n_junctions": int(spl.shape[1]), "target_observed_fraction": observed_fraction,
            "observed_entry_fraction": round(observed, 4),
            "observed_event_fraction": round(
                float(((spl.layers["cell_by_cluster_matrix"] > 0) @ junction_to_event_matrix(codes) > 0).mean()), 4
            ),
            "splice_only_pair": list(pair), "seed": args.seed,
        },
        "training": {
            "splicevi_epochs": args.epochs, "splicevi_lr": args.lr, "splicevi_seconds": round(t_train, 1),
            "scvi_epochs": args.scvi_epochs, "scvi_seconds": round(t_scvi, 1),
        },
        "clustering": clusters,
        "differential_splicing": ds,
        "imputation_hidden_10pct_atses": imputation,
        "seconds_total": round(time.time() - t_start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/results/quality.json")
    parser.add_argument("--n-cells", type=int, default=1000)
    parser.add_argument("--n-genes", type=int, default=300)
    parser.add_argument("--n-events", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument(
        "--modality-penalty", default="Jeffreys", choices=["Jeffreys", "MMD", "None"],
        help="SPLICEVI modality_penalty (the API default is Jeffreys)",
    )
    parser.add_argument("--scvi-epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = parser.parse_args()
    if args.quick:
        args.n_cells, args.n_genes, args.n_events, args.epochs, args.scvi_epochs = 200, 60, 50, 3, 3
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("scvi").setLevel(logging.ERROR)
    # One thread: on small CPU machines several torch threads are many times slower.
    torch.set_num_threads(1)
    results = {
        "command": "python " + " ".join(sys.argv),
        "splicevi_modality_penalty": args.modality_penalty,
        "splicevi_epochs": args.epochs,
        "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(), "device": "cpu"},
        "versions": {"scvi-tools": scvi.__version__, "torch": torch.__version__},
        "delta": DELTA,
        "fdr_target": FDR,
        "datasets": [run_dataset(n, f, args) for n, f in (("smartseq2_like", 0.15), ("droplet_like", 0.03))],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
