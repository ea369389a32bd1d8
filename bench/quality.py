"""Quality of the latents across a grid of simulated regimes, beside simple baselines, and on real cells.

For every regime of the grid (number of ATSEs × fraction of differential ATSEs × observed fraction ×
Dirichlet-multinomial concentration; 6 cell types of which the last two differ only in splicing, 2
batches) it trains, with one set of defaults for all regimes:

* a splicing-only SPLICEVI (its latent is what the splicing branch learns by itself);
* a joint SPLICEVI on genes + junctions, with 10 % of each cell's observed ATSEs hidden before
  training (joint, expression and splicing latents; imputation of the hidden ATSEs);
* scvi-tools' SCVI on the genes;

and scores each latent, and two model-free baselines (truncated SVD of PSI centred per junction
over the observed entries; PCA of log-normalised expression), by the same rule: k-means with the
true number of types (ARI against the cell types), and k-means with 2 clusters on the cells of the
splice-only pair (ARI within the pair). Imputation is scored against the global-mean and the
(oracle) group-mean PSI.

It also runs the real SCASL Smart-seq2 cells of patient PT089 (Normal vs Tumor, junctions only) from
``../shared/data`` when that folder is present: splicing-only SPLICEVI over 5 seeds beside the SVD
baseline (k-means with 2 clusters).

Writes ``<out>.json`` and ``<out>.md`` (one table). Each regime's result is also cached in
``<out>.partial.jsonl`` so an interrupted run resumes where it stopped. ``--where`` restricts the
grid (e.g. ``--where observed_fraction=0.15 --where n_events=2500``).

``--droplet`` runs the droplet-coverage section instead (``<out>_droplet.json`` and a section of
``<out>.md`` between ``<!-- droplet -->`` markers, kept when the grid rewrites the file): 3,000
cells, 2,500 ATSEs, 10 % differential, 6 types of which two differ only in splicing, at 3 % and 1 %
of (cell, ATSE) pairs observed, from :mod:`splicevi.data.simulate` and from the independent
generator of ``bench/droplet.py``. Per regime: the joint SPLICEVI (defaults, and any
``--variant`` of model keywords) with the within-pair ARI of its joint and splicing latents, beside
the references on the pair's cells computed in the same run (two-component multinomial mixture on
the 200 / 400 most variable ATSEs, SVD of centred PSI on all / the top 400 ATSEs, oracle
likelihood ratio with the true PSIs), and how well the highly-variable-ATSE statistic ranks the
planted differential ATSEs. Then the 10x droplet sample of ``../shared/data`` (no labels): what
:func:`splicevi.pp.highly_variable_atses` selects.

Run: ``python bench/quality.py [--quick] [--out bench/results/quality]``;
``python bench/quality.py --droplet [--variant '{"splicing_encoder_atses": "all"}']``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.metrics import adjusted_rand_score

REPO = Path(__file__).resolve().parents[1]
SCASL = REPO.parent / "shared" / "data" / "scasl_tnbc_smartseq2"
TENX = REPO.parent / "shared" / "data" / "splikit_10x_mouse"
DROPLET_MARK = "<!-- droplet -->"

GRID = {
    "n_events": (300, 2500),
    "frac_ds_events": (0.1, 0.3),
    "observed_fraction": (0.03, 0.15),
    "dm_concentration": (20.0, 100.0),
}
QUICK = [
    {"n_events": 2500, "frac_ds_events": 0.1, "observed_fraction": 0.15, "dm_concentration": 20.0},
    {"n_events": 300, "frac_ds_events": 0.3, "observed_fraction": 0.03, "dm_concentration": 100.0},
]
N_TYPES = 6
N_COMPONENTS = 20  # SVD / PCA baselines


def kmeans_ari(latent: np.ndarray, labels: np.ndarray, n_clusters: int, seed: int = 0) -> float:
    """ARI of k-means (``n_clusters``, 10 restarts) on ``latent`` against ``labels``."""
    clusters = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(
        np.asarray(latent, dtype=np.float64)
    )
    return float(adjusted_rand_score(labels, clusters))


def scores(latent: np.ndarray, labels: np.ndarray, pair: np.ndarray) -> dict:
    """ARI on all types and within the splice-only pair (same rule for every latent)."""
    return {
        "ari": round(kmeans_ari(latent, labels, np.unique(labels).size), 3),
        "ari_pair": round(kmeans_ari(latent[pair], labels[pair], 2), 3),
    }


def svd_baseline(junction_counts, codes, seed: int = 0) -> np.ndarray:
    """Truncated SVD of PSI centred per junction over its observed entries."""
    from splicevi.data.layers import centred_psi

    centred = centred_psi(junction_counts, codes)
    n_comp = min(N_COMPONENTS, min(centred.shape) - 1)
    return TruncatedSVD(n_comp, random_state=seed).fit_transform(centred)


def expression_pca(counts, seed: int = 0) -> np.ndarray:
    """PCA of log1p(counts per 10^4)."""
    x = sp.csr_matrix(counts, dtype=np.float64)
    lib = np.asarray(x.sum(axis=1)).ravel()
    x = sp.diags(1e4 / np.maximum(lib, 1.0)) @ x
    x.data = np.log1p(x.data)
    return PCA(N_COMPONENTS, random_state=seed).fit_transform(x.toarray())


def train_splicevi(mdata, args, seed: int, **model_kwargs):
    """SPLICEVI with the API defaults (or ``model_kwargs``), trained for the bench's fixed epochs.

    ``args.model_kwargs`` (``--model-kwargs``) replaces the API defaults for every model of the
    run, so a candidate default is measured on the grid as the defaults are; ``model_kwargs``
    (a droplet ``--variant``) override it.
    """
    from splicevi import SPLICEVI

    SPLICEVI.setup_mudata(mdata, batch_key="batch" if "batch" in mdata.obs else None)
    torch.manual_seed(seed)
    candidate = json.loads(getattr(args, "model_kwargs", None) or "{}")
    model = SPLICEVI(mdata, **{**candidate, **model_kwargs})
    t0 = time.time()
    model.train(max_epochs=args.epochs, early_stopping=False, enable_progress_bar=False)
    return model, time.time() - t0


def run_regime(regime: dict, args) -> dict:
    """Simulate one regime; train and score every method."""
    import scvi

    from splicevi.data import simulate
    from splicevi.data.layers import event_codes
    from splicevi.tl.imputation import hide_events_mudata, imputation_scores

    t_start = time.time()
    sim = simulate(
        n_cells=args.n_cells, n_genes=args.n_genes, n_types=N_TYPES, n_batches=2, seed=args.seed, **regime
    )
    labels = sim.obs["cell_type"].astype(str).to_numpy()
    types = list(sim.obs["cell_type"].cat.categories)
    pair = np.isin(labels, types[-2:])
    codes, _ = event_codes(sim.junctions["event_id"])
    out: dict = {"regime": regime, "latents": {}, "seconds": {}}
    lat = out["latents"]
    lat["svd_centred_psi"] = scores(svd_baseline(sim.junction_counts, codes, args.seed), labels, pair)
    lat["expression_pca"] = scores(expression_pca(sim.gene_counts, args.seed), labels, pair)

    # Splicing-only model: what the splicing branch learns on its own.
    spl_only, secs = train_splicevi(sim.to_mudata(with_expression=False), args, args.seed)
    out["seconds"]["splicevi_splicing_only"] = round(secs, 1)
    lat["splicevi_splicing_only"] = scores(spl_only.get_latent_representation(), labels, pair)

    # Joint model on data with 10 % of the observed ATSEs hidden (for imputation).
    masked, hidden = hide_events_mudata(sim.to_mudata(), fraction=0.1, seed=args.seed)
    joint, secs = train_splicevi(masked, args, args.seed)
    out["seconds"]["splicevi_joint"] = round(secs, 1)
    for modality in ("joint", "expression", "splicing"):
        z = joint.get_latent_representation(modality=modality)
        lat[f"splicevi_{modality}"] = scores(z, labels, pair)
    decoded = joint.get_normalized_splicing(return_numpy=True)
    imputation = imputation_scores(
        decoded, hidden, masked["splicing"].layers["cell_by_junction_matrix"], codes, labels
    )
    out["imputation"] = {name: round(v["spearman"], 3) for name, v in imputation.items()}

    rna = masked["rna"].copy()
    scvi.model.SCVI.setup_anndata(rna, batch_key="batch")
    torch.manual_seed(args.seed)
    ref = scvi.model.SCVI(rna)
    t0 = time.time()
    ref.train(max_epochs=args.epochs, early_stopping=False, enable_progress_bar=False)
    out["seconds"]["scvi"] = round(time.time() - t0, 1)
    lat["scvi_expression"] = scores(ref.get_latent_representation(), labels, pair)
    out["seconds"]["total"] = round(time.time() - t_start, 1)
    out["checks"] = regime_checks(lat)
    return out


def regime_checks(lat: dict) -> dict:
    """The bars of the splicing-latent issue for one regime."""
    best_single = max(lat["splicevi_expression"]["ari"], lat["splicevi_splicing"]["ari"])
    return {
        "splicing_only_vs_svd": round(
            lat["splicevi_splicing_only"]["ari"] - lat["svd_centred_psi"]["ari"], 3
        ),
        "splicing_only_pair_vs_svd_pair": round(
            lat["splicevi_splicing_only"]["ari_pair"] - lat["svd_centred_psi"]["ari_pair"], 3
        ),
        "joint_vs_best_single": round(lat["splicevi_joint"]["ari"] - best_single, 3),
        "joint_vs_scvi": round(lat["splicevi_joint"]["ari"] - lat["scvi_expression"]["ari"], 3),
    }


def build_scasl_mudata(workdir: Path) -> Path:
    """The SCASL ``.junc`` cells as a splicing-only ``.h5mu`` (ingest → atse → assemble CLI)."""
    cli = [sys.executable, "-m", "splicevi.cli.main"]
    junctions, events, out = workdir / "junctions.h5ad", workdir / "events.tsv", workdir / "scasl.h5mu"
    steps = [
        [
            "ingest",
            "--junctions",
            str(SCASL / "junc"),
            "--junction-format",
            "junc",
            "--out-junctions",
            str(junctions),
            "--no-progress",
        ],
        ["atse", "--junctions", str(junctions), "--out", str(events)],
        ["assemble", "--junctions", str(junctions), "--events", str(events), "--out", str(out)],
    ]
    for step in steps:
        subprocess.run(cli + step, check=True, capture_output=True, text=True)
    return out


def run_real(args) -> dict | None:
    """PT089 Normal vs Tumor (splicing only): SPLICEVI over 5 seeds beside the SVD baseline."""
    import mudata as md
    import pandas as pd

    from splicevi.data.layers import event_codes

    if not SCASL.exists():
        return None
    labels = pd.read_csv(SCASL / "labels_junc.csv").set_index("Run")
    with tempfile.TemporaryDirectory() as tmp:
        mdata = md.read_h5mu(build_scasl_mudata(Path(tmp)))
    keep = [c for c in mdata.obs_names if c in labels.index and labels.loc[c, "patient"] == "PT089"]
    mdata = mdata[keep].copy()
    truth = labels.loc[keep, "type"].to_numpy()
    spl = mdata["splicing"]
    codes, _ = event_codes(spl.var["event_id"])
    result = {
        "cells": len(keep),
        "junctions": int(spl.n_vars),
        "labels": dict(zip(*np.unique(truth, return_counts=True), strict=True)),
        "svd_centred_psi_ari": round(
            kmeans_ari(svd_baseline(spl.layers["cell_by_junction_matrix"], codes), truth, 2), 3
        ),
    }
    aris = []
    for seed in range(5):
        model, _ = train_splicevi(mdata.copy(), args, seed)
        aris.append(round(kmeans_ari(model.get_latent_representation(), truth, 2, seed=seed), 3))
    result.update(
        splicevi_ari_per_seed=aris,
        splicevi_ari_mean=round(float(np.mean(aris)), 3),
        splicevi_ari_sd=round(float(np.std(aris)), 3),
    )
    return result


DROPLET_REGIMES = [
    {"generator": "simulate", "observed_fraction": 0.03},
    {"generator": "independent", "observed_fraction": 0.03},
    {"generator": "simulate", "observed_fraction": 0.01},
    {"generator": "independent", "observed_fraction": 0.01},
]


def droplet_data(regime: dict, seed: int):
    """3,000 cells, 2,500 ATSEs, 10 % differential, 6 types (last two differ only in splicing)."""
    from splicevi.data import simulate

    if regime["generator"] == "simulate":
        return simulate(
            n_cells=3000,
            n_genes=1000,
            n_events=2500,
            n_types=N_TYPES,
            n_batches=2,
            frac_ds_events=0.1,
            observed_fraction=regime["observed_fraction"],
            dm_concentration=20.0,
            seed=seed,
        )
    from droplet import generate

    return generate(
        n_cells=3000,
        n_genes=1000,
        n_events=2500,
        frac_ds=0.1,
        observed_fraction=regime["observed_fraction"],
        n_types=N_TYPES,
        seed=seed,
    )


def run_droplet_regime(regime: dict, args, variants: list[dict], previous: dict | None = None) -> dict:
    """References and SPLICEVI (defaults and variants) on one droplet regime, within the pair.

    ``previous``: the models of an earlier run of this regime (same data and seed); the models it
    has are kept, not trained again (``--keep-models``).
    """
    from sklearn.metrics import roc_auc_score

    from droplet import pair_references
    from splicevi.data.layers import event_codes, junction_to_event_matrix
    from splicevi.data.variable_atses import atse_variation

    t_start = time.time()
    sim = droplet_data(regime, args.seed)
    labels = sim.obs["cell_type"].astype(str).to_numpy()
    types = list(sim.obs["cell_type"].cat.categories)
    pair = np.isin(labels, types[-2:])
    truth = (labels[pair] == types[-1]).astype(int)
    codes, names = event_codes(sim.junctions["event_id"])
    k = sp.csr_matrix(sim.junction_counts)
    per_event = k @ junction_to_event_matrix(codes)
    out: dict = {
        "regime": regime,
        "cells": int(k.shape[0]),
        "pair_cells": int(pair.sum()),
        "observed_fraction": round(per_event.nnz / (k.shape[0] * len(names)), 4),
        "mean_reads_observed": round(float(per_event.sum() / max(per_event.nnz, 1)), 2),
    }
    # How well the statistic ranks the planted differential ATSEs (all cells, no labels used).
    table = atse_variation(k, codes)
    is_ds = sim.events.loc[names, "is_ds"].to_numpy(dtype=bool)
    z = np.nan_to_num(table["hva_z"].to_numpy(), nan=-1e9, posinf=1e9, neginf=-1e9)
    order = np.argsort(-z, kind="stable")
    out["hva"] = {
        "auc_ds": round(float(roc_auc_score(is_ds, z)), 3),
        "precision_top400": round(float(is_ds[order[:400]].mean()), 3),
        "ds_atses": int(is_ds.sum()),
        "with_statistic": int(table["hva_z"].notna().sum()),
    }
    out["references"] = pair_references(
        k[pair], codes, truth, sim.type_psi[-1], sim.type_psi[-2], seed=args.seed
    )
    out["models"] = dict(previous or {})
    for variant in [{}] + variants:
        name = json.dumps(variant, sort_keys=True) if variant else "defaults"
        if name in out["models"]:
            continue
        model, secs = train_splicevi(sim.to_mudata(), args, args.seed, **variant)
        res = {"seconds": round(secs, 1)}
        for modality in ("joint", "splicing"):
            latent = model.get_latent_representation(modality=modality)
            res[modality] = scores(latent, labels, pair)
        out["models"][name] = res
    out["seconds"] = round(time.time() - t_start, 1)
    return out


def run_tenx(n_top: int = 400) -> dict | None:
    """The 10x droplet sample: what the highly-variable-ATSE statistic selects (no labels)."""
    import mudata as md

    from splicevi.data.layers import event_codes, junction_to_event_matrix
    from splicevi.pp import highly_variable_atses

    if not TENX.exists():
        return None
    cli = [sys.executable, "-m", "splicevi.cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        junctions, events, h5mu = Path(tmp) / "j.h5ad", Path(tmp) / "events.tsv", Path(tmp) / "d.h5mu"
        for step in (
            [
                "ingest",
                "--junctions",
                str(TENX / "Solo.out"),
                "--out-junctions",
                str(junctions),
                "--no-progress",
            ],
            # The sample has 1 ATSE under the default junction filters: keep every junction.
            [
                "atse",
                "--junctions",
                str(junctions),
                "--out",
                str(events),
                "--min-reads",
                "1",
                "--min-cells",
                "1",
                "--min-site-usage",
                "0",
                "--motif",
                "any",
            ],
            ["assemble", "--junctions", str(junctions), "--events", str(events), "--out", str(h5mu)],
        ):
            subprocess.run(cli + step, check=True, capture_output=True, text=True)
        mdata = md.read_h5mu(h5mu)
    spl = mdata["splicing"]
    table = highly_variable_atses(mdata, n_top=n_top, inplace=False)
    codes, _ = event_codes(spl.var["event_id"])
    per_event = sp.csr_matrix(spl.layers["cell_by_junction_matrix"]) @ junction_to_event_matrix(codes)
    cells_obs = np.asarray((per_event > 0).sum(axis=0)).ravel()
    reads = np.asarray(per_event.sum(axis=0)).ravel()
    sel = table["highly_variable"].to_numpy()
    has = table["hva_z"].notna().to_numpy()

    def coverage(mask):
        if not mask.any():
            return None
        return {
            "atses": int(mask.sum()),
            "median_cells_observed": float(np.median(cells_obs[mask])),
            "median_reads_per_observing_cell": round(
                float(np.median(reads[mask] / np.maximum(cells_obs[mask], 1))), 2
            ),
            "median_rho": round(float(np.nanmedian(table["hva_rho"].to_numpy()[mask])), 3)
            if np.isfinite(table["hva_rho"].to_numpy()[mask]).any()
            else None,
        }

    return {
        "cells": int(spl.n_obs),
        "junctions": int(spl.n_vars),
        "atses": int(len(table)),
        "observed_fraction": round(per_event.nnz / (per_event.shape[0] * per_event.shape[1]), 4),
        "all": coverage(np.ones(len(table), dtype=bool)),
        "with_statistic": coverage(has),
        "selected": coverage(sel),
        "selected_z_min": round(float(table["hva_z"][sel].min()), 2) if sel.any() else None,
        "z_above_3": int((table["hva_z"] >= 3).sum()),
    }


def droplet_markdown(res: dict) -> str:
    """The droplet section of ``quality.md``."""
    lines = [
        DROPLET_MARK,
        "## Droplet coverage: the splice-only pair at 3 % and 1 % observed",
        "",
        f"Command: `{res['command']}`; {res['epochs']} epochs, torch 1 thread, seed {res['seed']}, on a shared "
        "2-core CPU machine. 3,000 cells, 2,500 ATSEs, 10 % differential, 6 types (the last two share "
        "expression and differ only in splicing), 2 batches. `simulate` is `splicevi.data.simulate` (DM "
        "concentration 20); `independent` is `bench/droplet.py:generate` (per-ATSE concentration log-uniform "
        "10-200, heavy-tailed depth, geometric reads), which the project never tuned on. Within-pair ARI "
        "(k-means k=2 on the pair's cells); references on the pair's cells in the same run. HVA: AUC / "
        "precision of the top 400 ATSEs of `hva_z` against the planted differential ATSEs (all cells).",
        "",
        "| data | observed | reads/obs. | HVA AUC / prec@400 | mixture top200 / top400 | SVD all / top400 | oracle LR |"
        " model | joint pair | splicing pair | joint all types |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["regimes"]:
        ref, hva = r["references"], r["hva"]
        head = [
            r["regime"]["generator"],
            f"{r['observed_fraction']:.3f}",
            f"{r['mean_reads_observed']:.1f}",
            f"{hva['auc_ds']:.2f} / {hva['precision_top400']:.2f}",
            f"{ref['mixture_top200']:.2f} / {ref['mixture_top400']:.2f}",
            f"{ref['svd_all']:.2f} / {ref['svd_top400']:.2f}",
            f"{ref['oracle_llr']:.2f}",
        ]
        for name, m in r["models"].items():
            lines.append(
                "| "
                + " | ".join(
                    head
                    + [
                        name.replace("|", "/"),
                        f"{m['joint']['ari_pair']:.2f}",
                        f"{m['splicing']['ari_pair']:.2f}",
                        f"{m['joint']['ari']:.2f}",
                    ]
                )
                + " |"
            )
            head = [""] * len(head)
    tenx = res.get("tenx")
    if tenx:
        sel, allc = tenx["selected"], tenx["all"]
        lines += [
            "",
            f"Real 10x sample (`splikit_10x_mouse`, no labels; `splicevi atse` with every junction filter off, "
            f"since the default filters leave 1 ATSE): {tenx['cells']} cells, {tenx['junctions']} junctions, "
            f"{tenx['atses']} ATSEs, {tenx['observed_fraction']:.1%} of (cell, ATSE) pairs observed. "
            f"{tenx['with_statistic']['atses'] if tenx['with_statistic'] else 0} ATSEs have ≥ 10 cells with two reads "
            f"(a statistic); `highly_variable_atses(n_top=400)` selects {sel['atses'] if sel else 0} "
            f"(z ≥ {tenx['selected_z_min']}; {tenx['z_above_3']} ATSEs have z ≥ 3). Median cells observing an ATSE: "
            f"all {allc['median_cells_observed']:.0f}, selected {sel['median_cells_observed'] if sel else 'n/a'}; median "
            f"reads per observing cell: all {allc['median_reads_per_observing_cell']}, selected "
            f"{sel['median_reads_per_observing_cell'] if sel else 'n/a'}; median ρ̂: all {allc['median_rho']}, selected "
            f"{sel['median_rho'] if sel else 'n/a'}.",
        ]
    lines.append(DROPLET_MARK)
    return "\n".join(lines) + "\n"


def write_section(md_path: Path, section: str) -> None:
    """Replace (or append) the droplet section of ``md_path``, atomically."""
    text = md_path.read_text() if md_path.exists() else ""
    if DROPLET_MARK in text:
        before, _, rest = text.partition(DROPLET_MARK)
        _, _, after = rest.partition(DROPLET_MARK)
        text = before.rstrip("\n") + "\n\n" + section + after.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = md_path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(md_path)


def droplet_main(args) -> None:
    """Run the droplet regimes (resumable per regime) and the 10x sample; write the section."""
    variants = [json.loads(v) for v in args.variant]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / (out.name + "_droplet.partial.jsonl")
    done = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            rec = json.loads(line)
            done[json.dumps(rec["regime"], sort_keys=True)] = rec
    kept = {}
    previous_json = out.parent / (out.name + "_droplet.json")
    if args.keep_models and previous_json.exists():
        for rec in json.loads(previous_json.read_text())["regimes"]:
            kept[json.dumps(rec["regime"], sort_keys=True)] = rec["models"]
    regimes = []
    for regime in DROPLET_REGIMES:
        if args.droplet_observed and regime["observed_fraction"] not in args.droplet_observed:
            continue
        if args.droplet_generator and regime["generator"] not in args.droplet_generator:
            continue
        key = json.dumps(regime, sort_keys=True)
        if key not in done:
            done[key] = run_droplet_regime(regime, args, variants, previous=kept.get(key))
            with partial.open("a") as fh:
                fh.write(json.dumps(done[key], default=float) + "\n")
        regimes.append(done[key])
        print(json.dumps(done[key], default=float), flush=True)
    tenx, tenx_cache = None, out.parent / (out.name + "_droplet.tenx.json")
    if not args.no_real:
        # Cached beside the regimes' cache, so parallel runs of the regimes can reuse it.
        if tenx_cache.exists():
            tenx = json.loads(tenx_cache.read_text())
        else:
            tenx = run_tenx()
            tenx_cache.write_text(json.dumps(tenx, default=float) + "\n")
    results = {
        "command": "python " + " ".join(sys.argv),
        "epochs": args.epochs,
        "seed": args.seed,
        "regimes": regimes,
        "tenx": tenx,
    }
    tmp = out.parent / (out.name + "_droplet.json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=float) + "\n")
    tmp.replace(out.parent / (out.name + "_droplet.json"))
    write_section(out.with_suffix(".md"), droplet_markdown(results))
    if not (args.droplet_observed or args.droplet_generator):
        # A filtered run keeps the cache so that runs of the other regimes (in parallel) and a
        # final unfiltered run, which writes the section of every regime, reuse it.
        partial.unlink(missing_ok=True)
        tenx_cache.unlink(missing_ok=True)
    print(droplet_markdown(results))


LATENT_COLUMNS = [
    ("svd_centred_psi", "SVD(PSI)"),
    ("splicevi_splicing_only", "spl-only"),
    ("expression_pca", "PCA(expr)"),
    ("scvi_expression", "SCVI"),
    ("splicevi_expression", "joint:expr"),
    ("splicevi_splicing", "joint:spl"),
    ("splicevi_joint", "joint"),
]


def markdown(results: dict) -> str:
    """One table: a row per regime, ARI (all types / splice-only pair) per latent, imputation."""
    head = ["ATSEs", "DS frac", "observed", "DM conc"] + [name for _, name in LATENT_COLUMNS]
    head += ["imput. model / global / group"]
    lines = [
        f"Command: `{results['command']}`; {results['epochs']} epochs, {results['n_cells']} cells, "
        f"{N_TYPES} types (last two differ only in splicing), 2 batches. ARI of k-means (true k) on all "
        "cells / ARI of k-means (k=2) within the splice-only pair. Imputation: Spearman of hidden ATSEs' PSI.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in results["regimes"]:
        g = r["regime"]
        row = [
            str(g["n_events"]),
            str(g["frac_ds_events"]),
            str(g["observed_fraction"]),
            str(g["dm_concentration"]),
        ]
        row += [
            f"{r['latents'][key]['ari']:.2f} / {r['latents'][key]['ari_pair']:.2f}"
            for key, _ in LATENT_COLUMNS
        ]
        imp = r["imputation"]
        row.append(f"{imp['model']:.3f} / {imp['global_mean']:.3f} / {imp['group_mean']:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    summary = results["summary"]
    lines += ["", "Bars (worst regime): " + ", ".join(f"{k} {v}" for k, v in summary.items())]
    real = results.get("real_scasl_pt089")
    if real:
        lines += [
            "",
            f"Real SCASL PT089 ({real['cells']} cells, {real['junctions']} junctions, Normal vs Tumor, splicing only): "
            f"SPLICEVI ARI {real['splicevi_ari_mean']} ± {real['splicevi_ari_sd']} over 5 seeds "
            f"({real['splicevi_ari_per_seed']}), SVD baseline {real['svd_centred_psi_ari']}.",
        ]
    return "\n".join(lines) + "\n"


def summarize(regimes: list[dict]) -> dict:
    """Worst value of each bar over the regimes."""
    keys = regimes[0]["checks"].keys()
    return {k: min(r["checks"][k] for r in regimes) for k in keys}


def main() -> None:
    """Run the regime grid (resumable) and the real cells, and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/results/quality", help="output prefix (.json, .md)")
    parser.add_argument("--n-cells", type=int, default=1000)
    parser.add_argument("--n-genes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="two regimes of the grid only")
    parser.add_argument(
        "--model-kwargs",
        default=None,
        metavar="JSON",
        help="SPLICEVI keywords used in place of the API defaults by every model of the run "
        '(a candidate default), e.g. \'{"pool_mode": "sum"}\'',
    )
    parser.add_argument(
        "--no-real", action="store_true", help="skip the real cells (SCASL; 10x with --droplet)"
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only the grid regimes with this value (repeatable)",
    )
    parser.add_argument(
        "--shared-data",
        default=str(REPO.parent / "shared" / "data"),
        help="folder of the real data (default: ../shared/data beside the repository)",
    )
    parser.add_argument("--droplet", action="store_true", help="run the droplet-coverage section instead")
    parser.add_argument(
        "--droplet-observed",
        type=float,
        action="append",
        default=[],
        help="droplet regimes with this observed fraction only (repeatable)",
    )
    parser.add_argument(
        "--droplet-generator",
        action="append",
        default=[],
        choices=["simulate", "independent"],
        help="droplet regimes of this generator only (repeatable)",
    )
    parser.add_argument(
        "--keep-models",
        action="store_true",
        help="droplet: keep the models of <out>_droplet.json (same data and seed) and train only "
        "the variants it lacks",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="JSON of SPLICEVI keywords trained beside the defaults (droplet section)",
    )
    args = parser.parse_args()
    global SCASL, TENX
    SCASL = Path(args.shared_data) / "scasl_tnbc_smartseq2"
    TENX = Path(args.shared_data) / "splikit_10x_mouse"
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # One thread: on small CPU machines several torch threads are many times slower.
    torch.set_num_threads(1)
    import scvi

    if args.droplet:
        droplet_main(args)
        return
    grid = (
        QUICK if args.quick else [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]
    )
    for condition in args.where:
        key, _, value = condition.partition("=")
        if key not in GRID:
            parser.error(f"--where {condition}: {key!r} is not a grid key ({', '.join(GRID)})")
        grid = [g for g in grid if float(g[key]) == float(value)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.jsonl")
    done = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            rec = json.loads(line)
            done[json.dumps(rec["regime"], sort_keys=True)] = rec
    regimes = []
    for i, regime in enumerate(grid):
        key = json.dumps(regime, sort_keys=True)
        if key not in done:
            done[key] = run_regime(regime, args)
            with partial.open("a") as fh:
                fh.write(json.dumps(done[key], default=float) + "\n")
        regimes.append(done[key])
        print(f"[{i + 1}/{len(grid)}] {regime} {json.dumps(done[key]['latents'])}", flush=True)
    results = {
        "command": "python " + " ".join(sys.argv),
        "epochs": args.epochs,
        "n_cells": args.n_cells,
        "machine": {"platform": platform.platform(), "torch_threads": 1, "device": "cpu"},
        "versions": {"scvi-tools": scvi.__version__, "torch": torch.__version__},
        "regimes": regimes,
        "summary": summarize(regimes),
    }
    if not args.no_real:
        results["real_scasl_pt089"] = run_real(args)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=float) + "\n")
    tmp.replace(out.with_suffix(".json"))
    # Keep the droplet section (written by --droplet) when the grid rewrites the file.
    md_path = out.with_suffix(".md")
    text = markdown(results)
    old_text = md_path.read_text() if md_path.exists() else ""
    if DROPLET_MARK in old_text:
        section = DROPLET_MARK + old_text.split(DROPLET_MARK)[1] + DROPLET_MARK + "\n"
        text = text.rstrip("\n") + "\n\n" + section
    md_path.write_text(text)
    partial.unlink(missing_ok=True)
    print(markdown(results))


if __name__ == "__main__":
    main()
