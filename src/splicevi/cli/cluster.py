"""``splicevi cluster``: Leiden clusters on the joint latent; writes the annotated final ``.h5mu``.

With ``--model`` the clusters are found on part of the data only: the junction reads and the gene
counts are split (:func:`splicevi.data.thinning.split_data`: Dirichlet-multinomial and
negative-binomial thinning), the cells are encoded from the fit parts, and the held-out parts are
written with the data (layers of the splicing and expression modalities) so that ``splicevi ds`` and
``splicevi de`` test the clusters on counts the clustering never saw. The UMAP and the kNN graph
stored for display stay those of all counts.
"""

from __future__ import annotations

import argparse
import logging

import anndata as ad
import numpy as np
import pandas as pd

from splicevi._io import atomic_path, write_x_as_layer

from ._common import configure, read_mudata

log = logging.getLogger("splicevi")

#: ``neighbors_key`` of the kNN graph of the joint latent (``uns`` entry, prefix of the ``obsp`` keys).
NEIGHBORS_KEY = "splicevi"
#: ``obsm`` key of the latent of the fit part of the junction reads (clusters found on it).
FIT_LATENT_KEY = "X_splicevi_fit"
#: ``uns`` entry of the provenance record (inputs, filters, versions, stage parameters).
PROVENANCE_KEY = "splicevi_provenance"


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
        "--model",
        default=None,
        help="model directory from `splicevi train`: split the junction reads and gene counts, cluster on the latent "
        "of the fit parts and store the held-out parts for `splicevi ds` / `de` (without it: cluster on all "
        "counts, as the embedding)",
    )
    p.add_argument(
        "--heldout-fraction",
        type=float,
        default=0.5,
        help="share of each cell's junction reads and gene counts held out to test the clusters (with --model)",
    )
    p.add_argument(
        "--split-method",
        choices=["dm", "binomial"],
        default="dm",
        help="how the counts are split (with --model): dm, Dirichlet-multinomial thinning of the "
        "reads and negative-binomial thinning of the gene counts, or binomial, both binomial (not "
        "valid for overdispersed counts)",
    )
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


def add_annotations(mdata, path) -> list[str]:
    """Add the columns of a cell annotation table (first column: cell id) to ``mdata.obs``; return their names."""
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
    added = []
    for col in table.columns:
        if col in mdata.obs.columns:
            log.warning("annotation '%s' already present; keeping the data's values", col)
            continue
        mdata.obs[col] = pd.Categorical(table[col].reindex(mdata.obs_names))
        added.append(col)
    log.info("annotations: %d of %d cells matched, columns %s", len(shared), mdata.n_obs, list(table.columns))
    return added


def pop_provenance(mdata) -> dict:
    """Remove and return the provenance record (inputs, filters, versions) of ``mdata.uns``.

    Every stage writes it under :data:`PROVENANCE_KEY`; files made before that kept it as
    ``uns["splicevi"]``, which the final file uses for the neighbour graph's parameters (scanpy's
    ``neighbors_key`` convention), so such a record is moved.
    """
    info = dict(mdata.uns.pop(PROVENANCE_KEY, {}))
    legacy = mdata.uns.get(NEIGHBORS_KEY)
    if legacy is not None and "connectivities_key" not in legacy:
        info = {**dict(mdata.uns.pop(NEIGHBORS_KEY)), **info}
    return info


def store_embedding(mdata, emb, obs_columns) -> None:
    """Latents, UMAP and kNN graph of ``emb`` into ``mdata`` the way scanpy looks for them.

    - ``obsp["splicevi_connectivities"]``, ``obsp["splicevi_distances"]`` and
      ``uns["splicevi"]`` (their keys and parameters): ``sc.tl.leiden(mdata, neighbors_key="splicevi")``,
      ``sc.tl.umap(mdata, neighbors_key="splicevi")`` work on the MuData;
    - latents and ``X_umap`` in ``obsm`` of the MuData and of every modality, and the
      ``obs_columns`` (clusters, annotations) in every modality's ``obs``, so per-modality tools
      (``sc.tl.rank_genes_groups(mdata["rna"], "leiden")``, ``sc.pl.umap(mdata["rna"])``) find them.
      The graph stays on the MuData only: per modality it would be a second copy of the largest object.
    """
    for key, value in emb.obsm.items():
        mdata.obsm[key] = np.asarray(value)
    mdata.obsp[f"{NEIGHBORS_KEY}_connectivities"] = emb.obsp["connectivities"]
    mdata.obsp[f"{NEIGHBORS_KEY}_distances"] = emb.obsp["distances"]
    params = dict(emb.uns.get("neighbors", {}).get("params", {}))
    mdata.uns[NEIGHBORS_KEY] = {
        "connectivities_key": f"{NEIGHBORS_KEY}_connectivities",
        "distances_key": f"{NEIGHBORS_KEY}_distances",
        "params": params,
    }
    for mod in mdata.mod.values():
        rows = mdata.obs_names.get_indexer(mod.obs_names)
        if (rows < 0).any():
            raise ValueError(
                "a modality has cells that the MuData does not list; rebuild it with `splicevi assemble`"
            )
        for key, value in emb.obsm.items():
            mod.obsm[key] = np.asarray(value)[rows]
        for col in obs_columns:
            mod.obs[col] = mdata.obs[col].iloc[rows].to_numpy()
            if isinstance(mdata.obs[col].dtype, pd.CategoricalDtype):
                mod.obs[col] = pd.Categorical(mod.obs[col], categories=mdata.obs[col].cat.categories)


def fit_part_graph(mdata, args, emb):
    """Split the junction reads and gene counts, encode the fit parts and return their kNN graph and the split record.

    The graph uses the embedding's number of neighbours; the fit-part latent is kept in
    ``obsm["X_splicevi_fit"]`` (the displayed UMAP and graph stay those of all reads).
    """
    import scanpy as sc

    from splicevi.data.thinning import split_data
    from splicevi.model._ds_clusters import fit_part_latent

    from ._common import load_model

    if not 0 < args.heldout_fraction < 1:
        raise ValueError(f"--heldout-fraction must be in (0, 1), got {args.heldout_fraction}")
    model = load_model(args.model, mdata)
    held = split_data(mdata, fraction=args.heldout_fraction, method=args.split_method, seed=args.seed)
    latent = fit_part_latent(model, mdata)
    params = dict(emb.uns.get("neighbors", {}).get("params", {}))
    fit = ad.AnnData(np.zeros((mdata.n_obs, 0), dtype=np.float32), obs=pd.DataFrame(index=mdata.obs_names))
    fit.obsm[FIT_LATENT_KEY] = latent
    sc.pp.neighbors(
        fit, n_neighbors=int(params.get("n_neighbors", 15)), use_rep=FIT_LATENT_KEY, random_state=args.seed
    )
    emb.obsm[FIT_LATENT_KEY] = latent
    parts = "junction reads and gene counts" if "rna" in held else "junction reads"
    log.info(
        "clusters found on the fit part of the %s (%s split, %.0f%% held out for `splicevi ds` / `de`)",
        parts,
        args.split_method,
        100 * args.heldout_fraction,
    )
    record = {
        "fraction": args.heldout_fraction,
        "method": args.split_method,
        "seed": args.seed,
        "parts": parts,
    }
    return fit.obsp["connectivities"], record


def run(args: argparse.Namespace) -> int:
    """Cluster and write."""
    configure(seed=None)
    from splicevi.stats.contrasts import resolve_contrasts, store_group_labels
    from splicevi.tl.embedding import UMAP_KEY, leiden
    from splicevi.tl.qc import cell_table

    from .ds import parse_contrasts

    contrasts = parse_contrasts(args.contrasts)

    mdata = read_mudata(args.mdata)
    emb = ad.read_h5ad(args.embedding)
    if not np.array_equal(emb.obs_names.to_numpy(), mdata.obs_names.to_numpy()):
        raise ValueError(
            f"cells of {args.embedding} do not match those of {args.mdata}; rerun `splicevi embed`"
        )
    if "connectivities" not in emb.obsp:
        raise ValueError(f"{args.embedding} has no kNN graph (obsp['connectivities'])")
    if UMAP_KEY not in emb.obsm:
        raise ValueError(f"{args.embedding} has no UMAP (obsm['{UMAP_KEY}']); rerun `splicevi embed`")
    split = None
    if args.model:
        graph, split = fit_part_graph(mdata, args, emb)
    else:
        graph = emb.obsp["connectivities"]
    clusters = leiden(graph, args.resolution, args.seed)
    mdata.obs[args.key] = clusters
    added = add_annotations(mdata, args.annotations) if args.annotations else []
    provenance = pop_provenance(mdata)
    provenance["cluster"] = {
        "method": "leiden",
        "key": args.key,
        "resolution": args.resolution,
        "seed": args.seed,
        # "fit part": clusters of the latent of the fit reads; the held-out reads are in the splicing
        # modality's layer for `splicevi ds`.
        "reads": "fit part" if split else "all",
        **({"split": split} if split else {}),
    }
    provenance["embed"] = dict(emb.uns.get("splicevi_embed", {}))
    mdata.uns[PROVENANCE_KEY] = provenance
    store_embedding(mdata, emb, obs_columns=[args.key, *added])
    if contrasts:
        # Raises naming the group and the fix; the groupings are written with the clusters.
        for groupby in dict.fromkeys(
            c.groupby for c in resolve_contrasts(mdata, contrasts, default_groupby=args.key)
        ):
            store_group_labels(mdata, groupby)
    cells = cell_table(mdata, cluster_key=args.key)
    from splicevi.data.layers import JUNCTION_COUNTS

    with atomic_path(args.out) as tmp:
        write_x_as_layer(mdata, tmp, JUNCTION_COUNTS, modality="splicing")  # X stored once (a link)
    with atomic_path(args.out_cells) as tmp:
        cells.to_csv(tmp, sep="\t")
    sizes = clusters.value_counts().sort_index()
    log.info("%d clusters: %s", sizes.size, ", ".join(f"{k}:{v}" for k, v in sizes.items()))
    return 0
