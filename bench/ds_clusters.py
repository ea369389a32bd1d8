"""Differential splicing of clusters found on the same reads: false calls on null data, and power.

Three splicing-only datasets (no gene counts), each trained once (all reads):

* ``null_indep``: an independent generator written here (not ``splicevi.data.simulate``): ATSEs of
  2–4 junctions, the concentration of the Dirichlet-multinomial drawn per ATSE (log-uniform 2–200),
  coverage from a cell depth × ATSE expression model; **no splicing difference anywhere**.
* ``null_sim``: ``splicevi.data.simulate`` with ``frac_ds_events=0`` (types differ in nothing that
  is kept: splicing only, no DS events).
* ``power``: ``simulate`` with 4 types differing only in splicing (30% DS events).

Per Leiden resolution, every cluster is tested against the rest by:

* ``(a) default``: today's ``differential_splicing`` (model-assisted, interval null) on clusters
  of the all-reads latent, same reads;
* ``(b) heldout``: reads split (Dirichlet-multinomial thinning, half held out), clusters of the
  latent of the fit part (model trained on all reads), :func:`heldout_ds` on the held-out part
  (default cell-level estimator with the reads-only rule; "without the reads-only rule": the
  default before stop 30; ``model-assisted``: with the PSI decoded from the fit-part latent);
  ``(b) binomial split``: binomial thinning;
  ``(b) trained on fit``: a model trained on the fit part only (null data: leakage check);
* ``(c) Welch same reads``: Welch t-test (point null, BH) on per-cell PSI, same-read clusters;
* ``(d) Welch held-out``: Welch on the held-out part's per-cell PSI, fit-part clusters.

Null data: contrasts with any call and the number of calls (all false). Power data: per method, the
true DS junctions called (|true ΔPSI| > delta between the cluster's and the rest's true mean PSI)
over all contrasts, and the calls whose true |ΔPSI| is below 0.02 (false). Also the detection score
(:func:`groups_look_like_clusters`) of same-read clusters, fit-part clusters, true types and random
labels.

Run: ``nice python bench/ds_clusters.py [--quick]`` (one thread; writes bench/results/ds_clusters.md).
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

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
import torch
from scipy import stats

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.data.layers import ATSE_COUNTS, JUNCTION_COUNTS, event_codes, splicing_layers
from splicevi.data.thinning import HELDOUT_LAYER, heldout_parts, split_reads
from splicevi.model._ds_clusters import fit_part_latent, groups_look_like_clusters, heldout_ds
from splicevi.stats.differential import bh_qvalues
from splicevi.tl.embedding import leiden

DELTA = 0.1
FDR = 0.05


# ---------------------------------------------------------------------------- data
def null_independent(n_cells: int, n_events: int, observed: float, mean_reads: float, seed: int) -> md.MuData:
    """Splicing-only null data from a generator independent of ``splicevi.data.simulate``."""
    rng = np.random.default_rng(seed + 1000)
    sizes = rng.choice([2, 3, 4], p=[0.6, 0.3, 0.1], size=n_events)
    conc = np.exp(rng.uniform(np.log(2.0), np.log(200.0), size=n_events))
    depth = rng.lognormal(0.0, 0.6, size=n_cells)
    expr = rng.lognormal(0.0, 1.0, size=n_events)
    base = np.outer(depth, expr)
    lo, hi = 1e-6, 1e3
    for _ in range(60):  # scale so that the observed fraction is the target
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if (1 - np.exp(-mid * base)).mean() < observed else (lo, mid)
    seen = rng.random(base.shape) < 1 - np.exp(-lo * base)
    rows, cols, vals, var_rows = [], [], [], []
    j0 = 0
    for e in range(n_events):
        psi = rng.dirichlet(np.full(sizes[e], 0.8))
        psi = np.clip(psi, 0.02, None)
        psi /= psi.sum()
        cells = np.nonzero(seen[:, e])[0]
        n = 1 + rng.negative_binomial(2.0, 2.0 / (2.0 + mean_reads - 1.0), size=cells.size)
        usage = rng.dirichlet(conc[e] * psi, size=cells.size)
        k = np.array([rng.multinomial(nc, u) for nc, u in zip(n, usage, strict=True)]).reshape(
            cells.size, sizes[e]
        )
        for j in range(sizes[e]):
            nz = k[:, j] > 0
            rows.append(cells[nz])
            cols.append(np.full(nz.sum(), j0 + j))
            vals.append(k[nz, j])
            start = 10_000 * e + 100
            var_rows.append(
                {
                    "junction_id": f"chr1:{start}-{start + 200 + 50 * j}:+",
                    "event_id": f"E{e}",
                    "gene_name": f"G{e}",
                }
            )
        j0 += sizes[e]
    k = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_cells, j0),
    )
    var = pd.DataFrame(var_rows).set_index("junction_id")
    obs = pd.DataFrame({"batch": "b0"}, index=pd.Index([f"cell{i}" for i in range(n_cells)], name="cell_id"))
    codes, _ = event_codes(var["event_id"])
    layers = splicing_layers(k, codes)
    mdata = md.MuData(
        {
            "splicing": ad.AnnData(
                X=layers[JUNCTION_COUNTS].copy(),
                obs=obs,
                var=var,
                layers={JUNCTION_COUNTS: layers[JUNCTION_COUNTS]},
            )
        }
    )
    mdata.obs["batch"] = "b0"
    return mdata


def from_simulate(args, frac_ds: float, n_types: int):
    """Splicing-only data from ``splicevi.data.simulate`` (one batch)."""
    sim = simulate(
        n_cells=args.n_cells,
        n_genes=50,
        n_events=args.n_events,
        n_types=n_types,
        frac_ds_events=frac_ds,
        observed_fraction=args.observed,
        seed=args.seed,
    )
    mdata = sim.to_mudata(with_expression=False)
    mdata.obs["batch"] = "b0"
    return sim, mdata


def train(mdata, args, layer: str = JUNCTION_COUNTS):
    """Train a short SPLICEVI on the registered junction layer ``layer``."""
    SPLICEVI.setup_mudata(mdata, junc_counts_layer=layer, batch_key="batch")
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


def clusters_of(latent: np.ndarray, resolution: float, seed: int) -> np.ndarray:
    """Leiden clusters of a latent (kNN graph of 15 neighbours, as the workflow)."""
    emb = ad.AnnData(np.zeros((latent.shape[0], 1), dtype=np.float32))
    emb.obsm["X"] = latent
    sc.pp.neighbors(emb, n_neighbors=15, use_rep="X", random_state=seed)
    return np.asarray(leiden(emb.obsp["connectivities"], resolution, seed)).astype(str)


# ---------------------------------------------------------------------------- tests
def welch_calls(k: sp.csr_matrix, codes: np.ndarray, cells1: np.ndarray, cells2: np.ndarray) -> np.ndarray:
    """Junctions called by a Welch t-test (ΔPSI = 0, BH at FDR) on per-cell observed PSI k / n."""
    layers = splicing_layers(k, codes)
    n = layers[ATSE_COUNTS]
    psi = layers[JUNCTION_COUNTS].copy()
    psi.data = psi.data / n.data

    def moments(cells):
        m = np.asarray((n[cells] > 0).sum(axis=0)).ravel().astype(float)
        s1 = np.asarray(psi[cells].sum(axis=0)).ravel()
        s2 = np.asarray(psi[cells].multiply(psi[cells]).sum(axis=0)).ravel()
        mean = s1 / np.maximum(m, 1)
        var = np.maximum(s2 - m * mean**2, 0) / np.maximum(m - 1, 1)
        return m, mean, var

    m1, mu1, v1 = moments(cells1)
    m2, mu2, v2 = moments(cells2)
    se2 = v1 / np.maximum(m1, 1) + v2 / np.maximum(m2, 1)
    ok = (m1 >= 2) & (m2 >= 2) & (se2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mu1 - mu2) / np.sqrt(se2)
        df = se2**2 / ((v1 / m1) ** 2 / (m1 - 1) + (v2 / m2) ** 2 / (m2 - 1))
    log_p = np.where(
        ok, np.log(2) + stats.t.logsf(np.abs(np.where(ok, t, 0)), np.where(ok & (df > 0), df, 1)), 0.0
    )
    return bh_qvalues(log_p) <= FDR


def contrast_calls(run_test, labels: np.ndarray) -> list[np.ndarray]:
    """Called junctions (boolean) of every cluster against the rest."""
    out = []
    for g in np.unique(labels):
        c1, c2 = np.nonzero(labels == g)[0], np.nonzero(labels != g)[0]
        if c1.size < 10 or c2.size < 10:
            continue
        out.append(run_test(c1, c2))
    return out


def default_calls(model, mdata, labels, design="auto"):
    """Calls of one ``differential_splicing`` call over every cluster against the rest, per contrast.

    ``auto`` on an unrecorded grouping is the same-read (labels) test; ``clusters`` is the held-out
    test through the entry point, whose contrasts share one Benjamini–Hochberg family.
    """
    mdata.obs["_bench_groups"] = pd.Categorical(labels)
    table = model.differential_splicing(
        mdata, groupby="_bench_groups", delta=DELTA, fdr_target=FDR, silent=True, design=design
    )
    names = mdata["splicing"].var_names
    out = []
    for g in np.unique(labels):
        if (labels == g).sum() < 10 or (labels != g).sum() < 10:
            continue
        t = table[table["group1"] == g] if "group1" in table else table
        # A contrast the entry point skipped (too few cells with reads) has no rows: no calls, not
        # NaN (which a boolean cast would read as a call on every junction).
        out.append(t["is_ds_fdr"].reindex(names).fillna(False).to_numpy(dtype=bool))
    return out


def heldout_calls(model, mdata, labels, estimator="cells", fdr_method="interval"):
    """Calls of :func:`heldout_ds` per cluster against the rest (``fdr_method``: its call rule)."""
    names = mdata["splicing"].var_names

    def run(c1, c2):
        t = heldout_ds(
            model, mdata, c1, c2, delta=DELTA, fdr_target=FDR, estimator=estimator, fdr_method=fdr_method
        )
        return t["is_ds_fdr"].reindex(names).to_numpy(dtype=bool)

    return contrast_calls(run, labels)


def without_reads_rule(run):
    """``run()`` with the held-out test's reads-only rule off (the held-out test before stop 30)."""
    from splicevi.model import _ds_clusters

    before = _ds_clusters.READS_RULE
    _ds_clusters.READS_RULE = False
    try:
        return run()
    finally:
        _ds_clusters.READS_RULE = before


def null_row(calls: list[np.ndarray]) -> dict:
    """Contrasts with any call and the number of calls."""
    per = [int(c.sum()) for c in calls]
    return {"contrasts": len(per), "with_calls": sum(p > 0 for p in per), "calls": sum(per)}


# ---------------------------------------------------------------------------- runs
def run_dataset(name: str, mdata, args, sim=None) -> dict:
    """Train, split, cluster at every resolution and test with every method."""
    t0 = time.time()
    model = train(mdata, args)
    spl = mdata["splicing"]
    codes, _ = event_codes(spl.var["event_id"])
    k_all = sp.csr_matrix(spl.layers[JUNCTION_COUNTS])
    latent_all = model.get_latent_representation()
    split_reads(mdata, method="binomial", seed=args.seed)
    latent_binom = fit_part_latent(model, mdata)
    held_binom = spl.layers[HELDOUT_LAYER].copy()
    split_reads(mdata, method="dm", seed=args.seed)
    latent_fit = fit_part_latent(model, mdata)
    _, held, _ = heldout_parts(spl)
    fit_model = None
    if sim is None and args.leakage:
        # Leakage check: a model that never saw the held-out reads.
        fit_data = mdata.copy()
        fit_data["splicing"].layers["fit_counts"] = (k_all - held).tocsr()
        fit_model = train(fit_data, args, layer="fit_counts")
    rows, det = [], []
    rng = np.random.default_rng(args.seed)
    for res in args.resolutions:
        same = clusters_of(latent_all, res, args.seed)
        fitc = clusters_of(latent_fit, res, args.seed)
        binc = clusters_of(latent_binom, res, args.seed)
        methods = {
            "(a) default, same reads": default_calls(model, mdata, same),
            "(b) heldout, cell-level (DM split; default), one BH over the contrasts": default_calls(
                model, mdata, fitc, design="clusters"
            ),
            "(b) heldout, cell-level (DM split), one BH, without the reads-only rule (before stop 30)": (
                without_reads_rule(lambda f=fitc: default_calls(model, mdata, f, design="clusters"))
            ),
            "(b) heldout, cell-level (DM split), BH per contrast": heldout_calls(model, mdata, fitc),
            "(b) heldout, model-assisted (DM split)": heldout_calls(model, mdata, fitc, "model"),
            "(b) heldout, cell-level, bh_lfdr calls (DM split)": heldout_calls(
                model, mdata, fitc, fdr_method="bh_lfdr"
            ),
            "(c) Welch, same reads": contrast_calls(lambda a, b: welch_calls(k_all, codes, a, b), same),
            "(d) Welch, held-out part": contrast_calls(lambda a, b: welch_calls(held, codes, a, b), fitc),
            # Welch's own false-call rate without any selection: the same group sizes, random cells.
            "(d0) Welch, held-out part, random groups": contrast_calls(
                lambda a, b: welch_calls(held, codes, a, b), rng.permutation(fitc)
            ),
        }
        spl.layers[HELDOUT_LAYER] = held_binom
        spl.uns["splicevi_split"]["method"] = "binomial"
        methods["(b) heldout (binomial split)"] = heldout_calls(model, mdata, binc)
        spl.layers[HELDOUT_LAYER] = held
        spl.uns["splicevi_split"]["method"] = "dm"
        if fit_model is not None:
            lat = fit_model.get_latent_representation()
            fmc = clusters_of(lat, res, args.seed)
            methods["(b) heldout, model trained on fit part"] = heldout_calls_fitmodel(
                fit_model, fit_data, held, fmc
            )
        for method, calls in methods.items():
            row = {"dataset": name, "resolution": res, "method": method, **null_row(calls)}
            if sim is not None and not method.startswith("(d0)"):
                labels = {"(b) heldout (binomial split)": binc}.get(
                    method, same if "same" in method else fitc
                )
                row.update(power_row(sim, mdata, labels, calls))
            rows.append(row)
        n_small = pd.Series(same).value_counts()
        g = n_small.index[0]
        for what, lab in (("same-read cluster", same), ("fit-part cluster", fitc)):
            c1 = np.nonzero(
                lab == g if what.startswith("same") else lab == pd.Series(fitc).value_counts().index[0]
            )[0]
            c2 = np.setdiff1d(np.arange(mdata.n_obs), c1)
            flag, score = groups_look_like_clusters(model, mdata, c1, c2)
            det.append(
                {
                    "dataset": name,
                    "resolution": res,
                    "groups": what,
                    "score": round(score, 3),
                    "flagged": flag,
                }
            )
    perm = rng.permutation(mdata.n_obs)
    flag, score = groups_look_like_clusters(model, mdata, perm[: mdata.n_obs // 4], perm[mdata.n_obs // 4 :])
    det.append(
        {
            "dataset": name,
            "resolution": None,
            "groups": "random quarter",
            "score": round(score, 3),
            "flagged": flag,
        }
    )
    if sim is not None:
        types = mdata.obs["cell_type"].astype(str).to_numpy()
        for t in np.unique(types)[-2:]:
            c1, c2 = np.nonzero(types == t)[0], np.nonzero(types != t)[0]
            flag, score = groups_look_like_clusters(model, mdata, c1, c2)
            det.append(
                {
                    "dataset": name,
                    "resolution": None,
                    "groups": f"true type {t}",
                    "score": round(score, 3),
                    "flagged": flag,
                }
            )
    logging.info("%s done in %.0f s", name, time.time() - t0)
    return {"rows": rows, "detection": det, "seconds": time.time() - t0}


def heldout_calls_fitmodel(fit_model, fit_data, held, labels):
    """heldout_ds with a model trained on the fit part: its registered counts are the fit part."""
    spl = fit_data["splicing"]
    spl.layers[HELDOUT_LAYER] = held
    spl.uns["splicevi_split"] = {"fraction": 0.5, "method": "dm", "seed": 0, "layer": "fit_counts"}
    # heldout_parts subtracts the held-out reads from the registered layer: store fit + held there.
    full = (sp.csr_matrix(spl.layers["fit_counts"]) + held).tocsr()
    saved = spl.layers["fit_counts"]
    spl.layers["fit_counts"] = full
    try:
        return heldout_calls(fit_model, fit_data, labels)
    finally:
        spl.layers["fit_counts"] = saved


def power_row(sim, mdata, labels, calls) -> dict:
    """True DS junctions called and calls without a real change, over all contrasts."""
    types = mdata.obs["cell_type"].astype(str).to_numpy()
    type_names = [f"type{t}" for t in range(sim.type_psi.shape[0])]
    tpos = pd.Index(type_names).get_indexer(types)
    cell_psi_mean = lambda cells: sim.type_psi[tpos[cells]].mean(axis=0)  # noqa: E731
    found, false, true_total = 0, 0, 0
    groups = [g for g in np.unique(labels) if (labels == g).sum() >= 10 and (labels != g).sum() >= 10]
    for g, called in zip(groups, calls, strict=True):
        c1, c2 = np.nonzero(labels == g)[0], np.nonzero(labels != g)[0]
        d = np.abs(cell_psi_mean(c1) - cell_psi_mean(c2))
        true = d > DELTA
        true_total += int(true.sum())
        found += int((called & true).sum())
        false += int((called & (d < 0.02)).sum())
    return {"true_junctions": true_total, "true_called": found, "false_called": false}


def markdown(result: dict, args, seconds: float) -> str:
    """The markdown report."""
    rows = pd.DataFrame([r for d in result.values() for r in d["rows"]])
    det = pd.DataFrame([r for d in result.values() for r in d["detection"]])
    lines = [
        "# Differential splicing of clusters found on the same reads (`bench/ds_clusters.py`)",
        "",
        f"Command: `{' '.join(['python', 'bench/ds_clusters.py', *sys.argv[1:]])}`; {platform.processor() or platform.machine()}, "
        f"torch threads 1, {seconds:.0f} s. Cells {args.n_cells}, ATSEs {args.n_events}, observed fraction "
        f"{args.observed}, {args.epochs} epochs, delta {DELTA}, target FDR {FDR}. Every cluster vs the rest.",
        "",
        "## Null data (no splicing difference): contrasts with any call / contrasts, total calls (all false)",
        "",
    ]
    nulls = rows[rows["dataset"].str.startswith("null")]
    for ds in nulls["dataset"].unique():
        sub = nulls[nulls["dataset"] == ds]
        piv = sub.assign(
            cell=sub["with_calls"].astype(str)
            + "/"
            + sub["contrasts"].astype(str)
            + " ("
            + sub["calls"].astype(str)
            + ")"
        )
        table = piv.pivot(index="method", columns="resolution", values="cell")
        lines += [f"### {ds}", "", table.to_markdown(), ""]
    pw = rows[~rows["dataset"].str.startswith("null")]
    if len(pw):
        pw = pw.assign(
            cell=pw["true_called"].astype(str)
            + "/"
            + pw["true_junctions"].astype(str)
            + " (false "
            + pw["false_called"].astype(str)
            + ")"
        )
        lines += [
            "## Power (splice-only types): true DS junctions called / true, over all cluster-vs-rest contrasts",
            "",
            pw.pivot(index="method", columns="resolution", values="cell").to_markdown(),
            "",
        ]
    lines += [
        "## Detection (`groups_look_like_clusters`: balanced kNN accuracy on the latent)",
        "",
        det.to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the three datasets and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, two resolutions")
    parser.add_argument("--n-cells", type=int, default=1500)
    parser.add_argument("--n-events", type=int, default=300)
    parser.add_argument("--observed", type=float, default=0.15)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--resolutions", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-leakage", dest="leakage", action="store_false", help="skip the model trained on the fit part"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ds_clusters.md"))
    args = parser.parse_args()
    if args.quick:
        args.n_cells, args.n_events, args.epochs, args.resolutions = 600, 120, 20, [0.5, 1.0]
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("lightning", "lightning.pytorch", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    t0 = time.time()
    result = {}
    result["null_indep"] = run_dataset(
        "null_indep", null_independent(args.n_cells, args.n_events, args.observed, 12.0, args.seed), args
    )
    _, mdata = from_simulate(args, 0.0, 3)
    result["null_sim"] = run_dataset("null_sim", mdata, args)
    sim, mdata = from_simulate(args, 0.3, 4)
    result["power"] = run_dataset("power", mdata, args, sim=sim)
    text = markdown(result, args, time.time() - t0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(result, default=str, indent=1))
    print(text)


if __name__ == "__main__":
    main()
