"""``splicevi cluster``: Leiden clusters on the joint latent; writes the annotated final ``.h5mu``."""

from __future__ import annotations

import argparse
import logging

import anndata as ad
import numpy as np

from splicevi._io import atomic_path

from .train import configure, read_mudata

log = logging.getLogger("splicevi")


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi cluster``."""
    p = subparsers.add_parser(
        "cluster",
        help=help_text,
        description="Leiden clustering of the kNN graph of the joint latent; adds latents, UMAP and clusters "
        "to the MuData and writes a per-cell table for plots.",
    )
    p.add_argument("--mdata", required=True, help="the .h5mu the model was trained on")
    p.add_argument("--embedding", required=True, help=".h5ad from `splicevi embed`")
    p.add_argument("--resolution", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--key", default="leiden", help="name of the cluster annotation")
    p.add_argument(
        "--annotations",
        default=None,
        help="TSV/CSV of cell annotations (first column: cell id) added to the cells, e.g. cell types for contrasts",
    )
    p.add_argument(
        "--contrasts",
        default="[]",
        help="JSON list of the contrasts `splicevi ds` / `de` will test: their groups are checked here "
        "(after clustering), so a missing or too small group stops the run before any differential job",
    )
    p.add_argument("--out", required=True, help="output .h5mu (latents in obsm, clusters in obs)")
    p.add_argument("--out-cells", required=True, help="output TSV, one row per cell (annotations, QC, UMAP)")
    p.set_defaults(func=run)
    return p


def add_annotations(mdata, path) -> None:
    """Add the columns of a cell annotation table (first column: cell id) to ``mdata.obs``."""
    import pandas as pd

    from splicevi._io import require_file

    path = require_file(path, "cell annotation table")
    sep = "," if str(path).endswith(".csv") else "\t"
    table = pd.read_csv(path, sep=sep, index_col=0, dtype=str)
    table.index = table.index.astype(str)
    shared = mdata.obs_names.intersection(table.index)
    if len(shared) == 0:
        raise ValueError(
            f"no cell of {path} is in the data (e.g. table: {list(table.index[:3])}, data: {list(mdata.obs_names[:3])})"
        )
    for col in table.columns:
        if col in mdata.obs.columns:
            log.warning("annotation '%s' already present; keeping the data's values", col)
            continue
        mdata.obs[col] = pd.Categorical(table[col].reindex(mdata.obs_names))
    log.info("annotations: %d of %d cells matched, columns %s", len(shared), mdata.n_obs, list(table.columns))


def run(args: argparse.Namespace) -> int:
    """Cluster and write."""
    configure(seed=None)
    from splicevi.tl.clustering import UMAP_KEY, cell_table, leiden, resolve_contrasts

    from .ds import parse_contrasts

    contrasts = parse_contrasts(args.contrasts)

    mdata = read_mudata(args.mdata)
    emb = ad.read_h5ad(args.embedding)
    if not np.array_equal(emb.obs_names.to_numpy(), mdata.obs_names.to_numpy()):
        raise ValueError(f"cells of {args.embedding} do not match those of {args.mdata}; rerun `splicevi embed`")
    if "connectivities" not in emb.obsp:
        raise ValueError(f"{args.embedding} has no kNN graph (obsp['connectivities'])")
    clusters = leiden(emb.obsp["connectivities"], args.resolution, args.seed)
    mdata.obs[args.key] = clusters
    if args.annotations:
        add_annotations(mdata, args.annotations)
    for key, value in emb.obsm.items():
        mdata.obsm[key] = np.asarray(value)
    mdata.obsp["splicevi_connectivities"] = emb.obsp["connectivities"]
    mdata.obsp["splicevi_distances"] = emb.obsp["distances"]
    info = dict(mdata.uns.get("splicevi", {}))
    info["cluster"] = {"method": "leiden", "key": args.key, "resolution": args.resolution, "seed": args.seed}
    info["embed"] = dict(emb.uns.get("splicevi_embed", {}))
    mdata.uns["splicevi"] = info
    if UMAP_KEY not in mdata.obsm:
        raise ValueError(f"{args.embedding} has no UMAP (obsm['{UMAP_KEY}'])")
    if contrasts:
        resolve_contrasts(mdata, contrasts, default_groupby=args.key)  # raises naming the group and the fix
    cells = cell_table(mdata, cluster_key=args.key)
    with atomic_path(args.out) as tmp:
        mdata.write(tmp)
    with atomic_path(args.out_cells) as tmp:
        cells.to_csv(tmp, sep="\t")
    sizes = clusters.value_counts().sort_index()
    log.info("%d clusters: %s", sizes.size, ", ".join(f"{k}:{v}" for k, v in sizes.items()))
    return 0
