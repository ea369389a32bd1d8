"""Training fingerprint: latents and decoded PSI after a fixed-seed training, to compare two code versions.

A speed change that keeps the model's maths must give the same trained model up to float
reordering. This trains SPLICEVI with fixed seeds on a simulated dataset (one run per set-up:
the lean counts-only set-up and the reference API's four layers; and per splicing likelihood) and
saves the joint and splicing latents and the decoded PSI to an ``.npz``; ``--compare`` reports the
largest differences between two such files and the ARI of each latent against the planted types.

Usage
-----
    python bench/fingerprint.py --out before.npz          # on the old code
    python bench/fingerprint.py --out after.npz           # on the new code
    python bench/fingerprint.py --compare before.npz after.npz
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

CASES = {
    "lean_dm": ({}, "lean"),
    "reference_dm": ({}, "reference"),
    "lean_binomial": ({"splicing_loss_type": "binomial"}, "lean"),
    "lean_beta_binomial": ({"splicing_loss_type": "beta_binomial"}, "lean"),
}


def _train(case: str, epochs: int) -> dict:
    import scvi
    import torch

    from splicevi import SPLICEVI
    from splicevi.data import simulate

    options, setup = CASES[case]
    sim = simulate(
        n_cells=600, n_genes=200, n_events=300, n_types=4, n_batches=2, observed_fraction=0.2, seed=7
    )
    mdata = sim.to_mudata()
    if setup == "lean":
        for name in ("junc_ratio", "cell_by_cluster_matrix", "psi_mask"):
            del mdata.mod["splicing"].layers[name]
        SPLICEVI.setup_mudata(mdata, batch_key="batch")
    else:
        SPLICEVI.setup_mudata(
            mdata,
            rna_layer=None,
            junc_ratio_layer="junc_ratio",
            atse_counts_layer="cell_by_cluster_matrix",
            junc_counts_layer="cell_by_junction_matrix",
            psi_mask_layer="psi_mask",
            batch_key="batch",
            modalities={
                "rna_layer": "rna",
                "junc_ratio_layer": "splicing",
                "atse_counts_layer": "splicing",
                "junc_counts_layer": "splicing",
                "psi_mask_layer": "splicing",
                "batch_key": "splicing",
            },
        )
    scvi.settings.seed = 0
    torch.manual_seed(0)
    model = SPLICEVI(mdata, n_latent=10, **options)
    model.train(
        max_epochs=epochs,
        batch_size=128,
        train_size=1.0,
        early_stopping=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
    )
    labels = np.asarray(mdata.obs["cell_type"])
    return {
        f"{case}/joint": model.get_latent_representation(),
        f"{case}/splicing": model.get_latent_representation(modality="splicing"),
        f"{case}/psi": model.get_normalized_splicing(return_numpy=True, batch_size=128),
        f"{case}/labels": labels,
    }


def _ari(latent, labels) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    k = len(np.unique(labels))
    return float(adjusted_rand_score(labels, KMeans(k, n_init=10, random_state=0).fit_predict(latent)))


def main(argv=None) -> int:
    """Write a fingerprint or compare two."""
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--compare", nargs=2)
    args = parser.parse_args(argv)
    if args.compare:
        a, b = (np.load(p, allow_pickle=True) for p in args.compare)
        for key in sorted(set(a.files) & set(b.files)):
            if key.endswith("/labels"):
                continue
            x, y = a[key], b[key]
            line = f"{key:32s} max |diff| {np.max(np.abs(x - y)):.2e}  max |value| {np.max(np.abs(x)):.2e}"
            if not key.endswith("/psi"):
                labels = a[key.rsplit("/", 1)[0] + "/labels"]
                line += f"  ARI {_ari(x, labels):.3f} -> {_ari(y, labels):.3f}"
            print(line)
        return 0
    import torch

    torch.set_num_threads(1)
    out = {}
    for case in args.cases.split(","):
        out.update(_train(case, args.epochs))
    np.savez(args.out, **out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
