"""Differential expression of clusters found on the same data: false calls on null data, and power.

Two datasets with genes and junctions, each trained once on all counts (junctions: the independent
null generator of ``bench/ds_clusters.py``, no splicing difference):

* ``null``: one expression profile for every cell (negative-binomial counts, θ per gene drawn
  log-uniform 0.3–30, cell depth log-normal): **no expression difference anywhere**;
* ``power``: 4 types; 15% of the genes have a type-specific log-fold change (sd 1.5, natural log).

Per Leiden resolution every cluster is tested against the rest by:

* ``(a) old default``: ``differential_expression(design="labels")`` (what ``auto`` chose for a
  clustering before the clusters design: scvi-tools' change mode) on clusters of the all-counts
  latent, same counts;
* ``(b) held-out (new default)``: counts split by :func:`splicevi.data.split_data` (NB thinning of
  the genes, half held out), clusters of the fit parts' latent, the default
  ``differential_expression`` (design ``clusters``: cell-level NB score test on the held-out counts);
* ``(b) held-out, binomial split``: the same with binomial thinning of the genes;
* ``(c) NB score test, same counts``: the test of (b) on all counts with same-count clusters (the
  selection alone, with the test held fixed);
* ``(d) Wilcoxon, same counts``: scanpy's ``rank_genes_groups`` (Wilcoxon on log1p counts per 10k,
  BH), what a user runs on the clusters;
* ``(d0) NB score test, random groups``: the test of (b) on random cells of the clusters' sizes (the
  test's own level, no selection).

Calls: BH q ≤ 0.05 and |log2 FC| ≥ 0.25 (the workflow's DE delta). Null: contrasts with any call
and calls. Power: true DE genes (|true log2 FC| ≥ 0.5 between the cluster's and the rest's mean
expression) called, and calls on genes with |true log2 FC| < 0.1 (false).

Run: ``nice python bench/de_clusters.py`` (one thread; appends to bench/results/ds_clusters.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ds_clusters import clusters_of, null_independent  # noqa: E402
from splicevi import SPLICEVI  # noqa: E402
from splicevi.data import split_data  # noqa: E402
from splicevi.data.thinning import HELDOUT_GENE_LAYER  # noqa: E402
from splicevi.model._ds_clusters import fit_part_latent  # noqa: E402
from splicevi.stats.differential import bh_qvalues  # noqa: E402
from splicevi.stats.heldout_de import heldout_de_test  # noqa: E402

DELTA = 0.25
FDR = 0.05
MARK = "<!-- de_clusters{} -->"


def with_genes(n_cells: int, n_genes: int, n_events: int, n_types: int, seed: int, library: float = 2000.0):
    """Junctions of the independent null plus NB gene counts; returns the MuData and true ρ (cells × genes)."""
    mdata = null_independent(n_cells, n_events, 0.15, 12.0, seed)
    rng = np.random.default_rng(seed + 7)
    theta = np.exp(rng.uniform(np.log(0.3), np.log(30.0), n_genes))
    base = rng.normal(0.0, 1.3, n_genes)
    types = rng.integers(0, n_types, n_cells)
    lfc = np.where(rng.random((n_types, n_genes)) < 0.15, rng.normal(0.0, 1.5, (n_types, n_genes)), 0.0)
    if n_types == 1:
        lfc[:] = 0.0
    rho = np.exp(base[None, :] + lfc[types])
    rho /= rho.sum(axis=1, keepdims=True)
    depth = rng.lognormal(np.log(library), 0.4, n_cells)
    mean = rho * depth[:, None]
    x = rng.poisson(rng.gamma(theta, mean / theta)).astype(np.float32)
    genes = pd.DataFrame(
        {"gene_name": [f"G{g}" for g in range(n_genes)]},
        index=pd.Index([f"ENSG{g:05d}" for g in range(n_genes)], name="gene_id"),
    )
    rna = ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame(index=mdata.obs_names), var=genes)
    out = md.MuData({"rna": rna, "splicing": mdata["splicing"]})
    out.obs["batch"] = "b0"
    out.obs["cell_type"] = pd.Categorical([f"type{t}" for t in types])
    return out, rho


def train(mdata, args):
    """A short SPLICEVI on genes and junctions."""
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(args.seed)
    model = SPLICEVI(mdata, n_latent=10)
    model.train(
        max_epochs=args.epochs,
        batch_size=256,
        early_stopping=False,
        enable_progress_bar=False,
        n_epochs_kl_warmup=max(1, args.epochs // 3),
    )
    return model


def groups(labels):
    """(cluster, its cells, the rest) of every cluster with at least 10 cells on each side."""
    for g in np.unique(labels):
        c1, c2 = np.nonzero(labels == g)[0], np.nonzero(labels != g)[0]
        if c1.size >= 10 and c2.size >= 10:
            yield g, c1, c2


def model_calls(model, mdata, labels, design):
    """``differential_expression`` per cluster against the rest: called genes (boolean) per contrast."""
    mdata.obs["_bench"] = pd.Categorical(labels)
    # A recorded clustering (as sc.tl.leiden writes), so auto picks the clusters design.
    mdata.uns["_bench"] = {"params": {"resolution": 1.0}}
    genes = mdata["rna"].var_names
    # One call over every cluster against the rest, as users run it (the held-out contrasts then
    # share one Benjamini–Hochberg family).
    table = model.differential_expression(
        mdata, groupby="_bench", delta=DELTA, fdr_target=FDR, silent=True, design=design
    )
    col = "is_de_fdr" if "is_de_fdr" in table else f"is_de_fdr_{FDR}"
    out = []
    for g, _, _ in groups(labels):
        t = table[table["group1"].astype(str) == str(g)] if "group1" in table else table
        out.append(t[col].reindex(genes).fillna(False).to_numpy(dtype=bool))
    return out


def score_calls(counts, labels, rng=None):
    """The NB score test on ``counts`` per cluster against the rest (random cells of the same sizes with ``rng``)."""
    genes = pd.RangeIndex(counts.shape[1])
    out = []
    for _, c1, c2 in groups(labels):
        if rng is not None:
            perm = rng.permutation(len(labels))
            c1, c2 = perm[: c1.size], perm[c1.size :]
        out.append(
            heldout_de_test(counts, c1, c2, genes, fdr_target=FDR, delta=DELTA)["is_de_fdr"].to_numpy()
        )
    return out


def wilcoxon_calls(counts, labels):
    """scanpy's Wilcoxon on log1p counts per 10k, BH, |log2 FC| ≥ delta."""
    a = ad.AnnData(sp.csr_matrix(counts, dtype=np.float32))
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    out = []
    for _, c1, _ in groups(labels):
        key = np.where(np.isin(np.arange(a.n_obs), c1), "g1", "rest")
        a.obs["k"] = pd.Categorical(key)
        sc.tl.rank_genes_groups(a, "k", groups=["g1"], reference="rest", method="wilcoxon")
        res = sc.get.rank_genes_groups_df(a, "g1").set_index("names").reindex(a.var_names)
        q = bh_qvalues(np.log(np.maximum(res["pvals"].to_numpy(), 1e-300)))
        out.append((q <= FDR) & (res["logfoldchanges"].abs().to_numpy() >= DELTA))
    return out


def summarise(calls, labels, rho):
    """Null and power numbers of one method's calls."""
    per = [int(c.sum()) for c in calls]
    row = {"contrasts": len(per), "with_calls": sum(p > 0 for p in per), "calls": sum(per)}
    if rho is not None:
        true_called = true_total = false = 0
        for (_, c1, c2), called in zip(groups(labels), calls, strict=True):
            tl = np.log2(rho[c1].mean(0) / rho[c2].mean(0))
            true = np.abs(tl) >= 0.5
            true_total += int(true.sum())
            true_called += int((called & true).sum())
            false += int((called & (np.abs(tl) < 0.1)).sum())
        row.update(true=true_total, true_called=true_called, false_called=false)
    return row


def run(name, mdata, rho, args, power):
    """Train, split, cluster per resolution, test with every method."""
    t0 = time.time()
    model = train(mdata, args)
    x_all = sp.csr_matrix(mdata["rna"].X)
    latent_all = model.get_latent_representation()
    split_data(mdata, method="binomial", seed=args.seed)
    latent_binom = fit_part_latent(model, mdata)
    held_binom = mdata["rna"].layers[HELDOUT_GENE_LAYER].copy()
    split_data(mdata, method="dm", seed=args.seed)
    latent_fit = fit_part_latent(model, mdata)
    held = mdata["rna"].layers[HELDOUT_GENE_LAYER]
    rng = np.random.default_rng(args.seed)
    rows = []
    for res in args.resolutions:
        same = clusters_of(latent_all, res, args.seed)
        fitc = clusters_of(latent_fit, res, args.seed)
        binc = clusters_of(latent_binom, res, args.seed)
        methods = {
            "(a) old default (labels: scvi change mode), same counts": (
                model_calls(model, mdata, same, "labels"),
                same,
            ),
            "(b) held-out, NB split (new default)": (model_calls(model, mdata, fitc, "auto"), fitc),
            "(b) held-out, binomial split": (score_calls(held_binom, binc), binc),
            "(c) NB score test, same counts": (score_calls(x_all, same), same),
            "(d) Wilcoxon, same counts": (wilcoxon_calls(x_all, same), same),
            "(d0) NB score test, held-out, random groups": (score_calls(held, fitc, rng), fitc),
        }
        for method, (calls, labels) in methods.items():
            truth = rho if power and not method.startswith("(d0)") else None
            rows.append(
                {"dataset": name, "resolution": res, "method": method, **summarise(calls, labels, truth)}
            )
    logging.info("%s done in %.0f s", name, time.time() - t0)
    return rows


def markdown(rows, args, seconds):
    """The section appended to bench/results/ds_clusters.md."""
    df = pd.DataFrame(rows)
    title = "## Differential expression of the clusters (`bench/de_clusters.py`)" + (
        f", {args.tag}" if args.tag else ""
    )
    lines = [
        MARK.format(f": {args.tag}" if args.tag else ""),
        "",
        title,
        "",
        f"Command: `{' '.join(['python', 'bench/de_clusters.py', *sys.argv[1:]])}`; torch threads 1, "
        f"{seconds:.0f} s. Cells {args.n_cells}, genes {args.n_genes} (mean {args.library:g} counts a cell), "
        f"ATSEs {args.n_events}, {args.epochs} "
        f"epochs; calls: BH q ≤ {FDR} and |log2 FC| ≥ {DELTA}. Every cluster vs the rest.",
        "",
        "### Null (one expression profile): contrasts with any call / contrasts (calls, all false)",
        "",
    ]
    nul = df[df["dataset"] == "null"]
    nul = nul.assign(
        cell=nul["with_calls"].astype(str)
        + "/"
        + nul["contrasts"].astype(str)
        + " ("
        + nul["calls"].astype(str)
        + ")"
    )
    lines += [nul.pivot(index="method", columns="resolution", values="cell").to_markdown(), ""]
    pw = df[(df["dataset"] == "power") & ~df["method"].str.startswith("(d0)")]
    if len(pw):
        pw = pw.assign(
            cell=pw["true_called"].astype(int).astype(str)
            + "/"
            + pw["true"].astype(int).astype(str)
            + " (false "
            + pw["false_called"].astype(int).astype(str)
            + ")"
        )
        lines += [
            "### Power (4 types, 15% DE genes): true DE genes called / true (calls on genes with "
            "|true log2 FC| < 0.1)",
            "",
            pw.pivot(index="method", columns="resolution", values="cell").to_markdown(),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    """Run both datasets and append the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-cells", type=int, default=800)
    parser.add_argument("--n-genes", type=int, default=300)
    parser.add_argument("--n-events", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--resolutions", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--library", type=float, default=2000.0, help="mean gene counts per cell")
    parser.add_argument("--null-only", action="store_true", help="skip the power dataset")
    parser.add_argument(
        "--tag", default="", help="label of this run's section (several runs append side by side)"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ds_clusters.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("lightning", "lightning.pytorch", "scvi", "splicevi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    t0 = time.time()
    rows = []
    mdata, _ = with_genes(args.n_cells, args.n_genes, args.n_events, 1, args.seed, args.library)
    rows += run("null", mdata, None, args, power=False)
    if not args.null_only:
        mdata, rho = with_genes(args.n_cells, args.n_genes, args.n_events, 4, args.seed + 1, args.library)
        rows += run("power", mdata, rho, args, power=True)
    text = markdown(rows, args, time.time() - t0)
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    mark = MARK.format(f": {args.tag}" if args.tag else "")
    if mark in old:  # replace this run's section, keep what follows it (another run's)
        head, tail = old.split(mark, 1)
        rest = tail.split("<!-- de_clusters", 1)
        tail = "<!-- de_clusters" + rest[1] if len(rest) > 1 else ""
        old = head.rstrip() + "\n\n" + (tail.rstrip() + "\n\n" if tail else "")
    else:
        old = old.rstrip() + "\n\n"
    out.write_text(old + text)
    name = "de_clusters" + ("_" + re.sub(r"[^A-Za-z0-9]+", "_", args.tag) if args.tag else "") + ".json"
    out.with_name(name).write_text(json.dumps(rows, default=str, indent=1))
    print(text)


if __name__ == "__main__":
    main()
