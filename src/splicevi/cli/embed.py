"""``splicevi embed``: latent representations of a trained model, kNN graph and UMAP."""

from __future__ import annotations

import argparse
import logging

from splicevi._io import atomic_path

from ._common import configure, load_model, read_mudata

log = logging.getLogger("splicevi")


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi embed``."""
    p = subparsers.add_parser(
        "embed",
        help=help_text,
        description="Joint (and per-modality) latent representations, kNN graph and UMAP of the joint latent.",
    )
    p.add_argument("--mdata", required=True, help="the .h5mu the model was trained on")
    p.add_argument("--model", required=True, help="model directory from `splicevi train`")
    p.add_argument(
        "--n-neighbors", type=int, default=15, help="neighbours of the kNN graph (UMAP and Leiden)"
    )
    p.add_argument("--min-dist", type=float, default=0.3, help="UMAP min_dist")
    p.add_argument("--seed", type=int, default=0, help="random seed of UMAP")
    p.add_argument("--batch-size", type=int, default=None, help="cells per minibatch of inference")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's choice)")
    p.add_argument("--out", required=True, help="output .h5ad (obsm: latents and X_umap; obsp: kNN graph)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Compute and write the embedding."""
    configure(args.threads, args.seed)
    from splicevi.tl.embedding import LATENT_KEYS, neighbors_umap

    mdata = read_mudata(args.mdata)
    model = load_model(args.model, mdata)
    joint = model.get_latent_representation(modality="joint", batch_size=args.batch_size)
    extra = {}
    modalities = ["splicing"] + (["expression"] if "rna" in mdata.mod else [])
    for modality in modalities:
        try:
            extra[LATENT_KEYS[modality]] = model.get_latent_representation(
                modality=modality, batch_size=args.batch_size
            )
        except (ValueError, NotImplementedError, KeyError) as err:  # e.g. fully paired models
            log.warning("no %s latent: %s", modality, err)
    emb = neighbors_umap(joint, mdata.obs_names, args.n_neighbors, args.min_dist, args.seed, extra)
    emb.uns["splicevi_embed"] = {
        "n_neighbors": args.n_neighbors,
        "min_dist": args.min_dist,
        "seed": args.seed,
    }
    with atomic_path(args.out) as tmp:
        emb.write_h5ad(tmp)
    log.info(
        "embedding: %d cells, joint latent %d dims, latents %s", emb.n_obs, joint.shape[1], list(emb.obsm)
    )
    return 0
