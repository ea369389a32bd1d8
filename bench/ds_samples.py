"""Differential splicing and expression of groups that are unions of samples (conditions over donors).

Simulated cohorts (``simulate(n_samples=...)``): cells spread over donors whose PSI varies from donor
to donor (a Dirichlet draw per donor, cell type and ATSE with concentration ``conc`` around the
type's PSI) and whose expression varies too (gene-wise log-fold change of sd 0.3); the first half of
the donors are ``control``, the rest ``treated``. One short SPLICEVI model per cohort (batch key:
the sample) gives the cell-level test; the rest is model-free. Tests, each at target FDR 0.05 with
|ΔPSI| ≥ 0.1:

* ``samples_dm_ql``: this package's sample-level test (pseudobulk DM GLM LRT, quasi-likelihood
  calibrated; :func:`splicevi.model._ds_samples.sample_level_ds`);
* ``samples_dm_chi2``: the same DM LRT referred to χ² (LeafCutter / scQuint style);
* ``pseudobulk_welch``: Welch t-test of per-sample PSI per junction (BH over junctions);
* ``cell_level``: the model's cell-level test (``differential_splicing`` with cells as units);
* ``pooled_dpsi``: |pooled ΔPSI| ≥ 0.1 (no test; what a user reading the pooled table sees).

(a) nulls (no condition effect): false calls per 4,000 junctions; (b) planted condition effect
(3 vs 3): empirical FDR and power per junction and per ATSE; (c) DE of the null condition
contrast: genes called by the sample-level DE (PyDESeq2 over pseudobulks) and by the cell-level DE;
(d) the real Smart-seq2 cells (two patients): patient vs patient with the patient as the sample
must be refused.

Run: ``nice python bench/ds_samples.py [--quick]`` (writes bench/results/ds_samples.{json,md}).
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.model._ds_samples import check_samples, sample_level_ds
from splicevi.stats.differential import bh_qvalues

DELTA = 0.1
FDR = 0.05
HERE = Path(__file__).resolve().parent
#: The real cells (../shared/data beside the repository; a worktree's is two levels up).
SHARED = next(
    (
        p / "shared" / "data" / "scasl_tnbc_smartseq2"
        for p in HERE.parents
        if (p / "shared" / "data" / "scasl_tnbc_smartseq2").exists()
    ),
    HERE.parents[1] / "shared",
)


def train(sim, epochs: int, seed: int):
    """A short model on the cohort (batch key: the sample)."""
    mdata = sim.to_mudata()
    SPLICEVI.setup_mudata(mdata, batch_key="sample")
    torch.manual_seed(seed)
    model = SPLICEVI(mdata, n_latent=10)
    model.train(
        max_epochs=epochs,
        batch_size=256,
        early_stopping=False,
        enable_progress_bar=False,
        n_epochs_kl_warmup=max(1, epochs // 3),
    )
    return mdata, model


def cell_level(model, mdata, c1, c2, level):
    """The model's cell-level test (``design='labels'`` where the entry point has designs)."""
    kw = {"design": "labels"} if "design" in inspect.signature(model.differential_splicing).parameters else {}
    return model.differential_splicing(
        idx1=c1, idx2=c2, delta=DELTA, fdr_target=FDR, level=level, silent=True, **kw
    )


def welch_calls(table):
    """Pseudobulk Welch t-test calls: BH over junctions of ``welch_pvalue``, |ΔPSI| ≥ delta."""
    q = bh_qvalues(np.log(np.maximum(table["welch_pvalue"].to_numpy(), 1e-300)))
    return (q <= FDR) & (table["effect_size"].abs().to_numpy() >= DELTA)


def chi2_calls(model, mdata, c1, c2, samples, index):
    """The DM LRT referred to χ² (no quasi-likelihood layer), LeafCutter-style: ATSE q-value and |ΔPSI|."""
    t = sample_level_ds(model, mdata, c1, c2, samples, delta=DELTA, fdr_target=FDR, quasi=False).loc[index]
    return ((t["qvalue"] <= FDR) & (t["effect_size"].abs() >= DELTA)).to_numpy()


def score(calls: np.ndarray, truth: np.ndarray) -> dict:
    """Calls, true calls, empirical FDR and power."""
    calls = np.asarray(calls, dtype=bool)
    tp = int((calls & truth).sum())
    n = int(calls.sum())
    return {
        "calls": n,
        "true_calls": tp,
        "fdr": round((n - tp) / n, 3) if n else 0.0,
        "power": round(tp / max(int(truth.sum()), 1), 3),
    }


def run_cohort(name, n_samples, conc, frac, args) -> dict:
    """Simulate, train, run every test on treated vs control."""
    t0 = time.time()
    sim = simulate(
        n_cells=args.n_cells,
        n_genes=args.n_genes,
        n_events=args.n_events,
        n_types=3,
        observed_fraction=args.observed,
        n_samples=n_samples,
        sample_concentration=conc,
        frac_condition_events=frac,
        seed=args.seed,
    )
    mdata, model = train(sim, args.epochs, args.seed)
    t_train = time.time() - t0
    cond = mdata.obs["condition"].astype(str).to_numpy()
    samples = mdata.obs["sample"].astype(str).to_numpy().astype(object)
    c1, c2 = np.nonzero(cond == "treated")[0], np.nonzero(cond == "control")[0]
    t1 = time.time()
    tj = sample_level_ds(model, mdata, c1, c2, samples, delta=DELTA, fdr_target=FDR)
    t_ds = time.time() - t1
    te = sample_level_ds(model, mdata, c1, c2, samples, delta=DELTA, fdr_target=FDR, level="event")
    chi = chi2_calls(model, mdata, c1, c2, samples, tj.index)
    tchi_e = sample_level_ds(
        model, mdata, c1, c2, samples, delta=DELTA, fdr_target=FDR, level="event", quasi=False
    )
    cj = cell_level(model, mdata, c1, c2, "junction").loc[tj.index]
    ce = cell_level(model, mdata, c1, c2, "event").set_index("event_id").loc[te.index]
    dpsi = sim.junctions["true_dpsi_condition"].loc[tj.index].abs().to_numpy()
    truth_j = dpsi > DELTA
    ev_truth = sim.events["max_abs_dpsi_condition"].loc[te.index].to_numpy() > DELTA
    calls = {
        "samples_dm_ql": tj["is_ds_fdr"].to_numpy(),
        "samples_dm_chi2": chi,
        "pseudobulk_welch": welch_calls(tj),
        "cell_level": cj["is_ds_fdr"].to_numpy(),
        "pooled_dpsi": tj["emp_effect"].abs().fillna(0).to_numpy() >= DELTA,
    }
    n_j = len(tj)
    out = {
        "name": name,
        "n_samples": n_samples,
        "concentration": conc,
        "frac_condition_events": frac,
        "n_cells": int(mdata.n_obs),
        "n_junctions": n_j,
        "n_atse": int(len(te)),
        "n_tested_atse": int((te["lr_df"] > 0).sum()),
        "train_seconds": round(t_train, 1),
        "samples_ds_seconds": round(t_ds, 2),
        "median_dm_concentration": float(np.median(te["dm_concentration"][te["lr_df"] > 0])),
        "median_ql_dispersion": float(np.median(te["ql_dispersion"][te["lr_df"] > 0])),
        # calibration of the ATSE p-values (meaningful on the nulls): fractions below 0.05 / 0.01
        "atse_p_below": {
            str(a): round(float(np.mean(te["pvalue"][te["lr_df"] > 0] < a)), 4) for a in (0.05, 0.01)
        },
        "atse_p_below_chi2": {
            str(a): round(float(np.mean(tchi_e["pvalue"][tchi_e["lr_df"] > 0] < a)), 4) for a in (0.05, 0.01)
        },
        "junction": {k: score(v, truth_j) for k, v in calls.items()},
        "event": {
            "samples_dm_ql": score(te["is_ds_fdr"].to_numpy(), ev_truth),
            "cell_level": score(ce["is_ds_fdr"].to_numpy(), ev_truth),
        },
    }
    for k in out["junction"]:
        out["junction"][k]["false_per_4000"] = round(
            (out["junction"][k]["calls"] - out["junction"][k]["true_calls"]) * 4000 / n_j, 1
        )
    if args.de:
        out["de"] = run_de(model, mdata)
    return out


def run_de(model, mdata) -> dict:
    """DE of treated vs control (no expression effect planted): sample-level vs cell-level calls."""
    res = {}
    t = time.time()
    samp = model.differential_expression(
        groupby="condition",
        group1="treated",
        group2="control",
        sample_key="sample",
        design="samples",
        silent=True,
    )
    res["samples_deseq2"] = {
        "calls": int(samp["is_de_fdr"].sum()),
        "n_genes": int(len(samp)),
        "seconds": round(time.time() - t, 1),
    }
    lab = model.differential_expression(
        groupby="condition", group1="treated", group2="control", design="labels", silent=True
    )
    col = next(c for c in lab.columns if str(c).startswith("is_de_fdr"))
    res["cell_level_scvi"] = {"calls": int(lab[col].sum()), "n_genes": int(len(lab))}
    for v in res.values():
        v["per_100_genes"] = round(100 * v["calls"] / v["n_genes"], 1)
    return res


def real_refusal() -> dict:
    """Patient vs patient on the real Smart-seq2 cells, patient as the sample: must be refused."""
    labels_path = SHARED / "labels_sj_out_tab.csv"
    if not labels_path.exists():
        return {"skipped": f"{labels_path} not found"}
    labels = pd.read_csv(labels_path)
    patient = labels["patient"].astype(str).to_numpy().astype(object)
    c1 = np.nonzero(patient == "PT039")[0]
    c2 = np.nonzero(patient == "PT084")[0]
    try:
        check_samples(patient, c1, c2, min_samples=2)
        return {"refused": False}
    except ValueError as err:
        plates = labels["Sample"].str.split("_").str[1]
        return {
            "refused": True,
            "message": str(err),
            "n_cells": [int(c1.size), int(c2.size)],
            "plates_per_patient": labels.assign(plate=plates).groupby("patient")["plate"].nunique().to_dict(),
        }


def speed(n_cells: int = 20_000, n_junctions: int = 30_000, n_samples: int = 8, seed: int = 0) -> dict:
    """Seconds of the model-free part of one sample-level contrast at the issue's scale.

    A random cells × junctions read matrix (2% of entries observed, 1–10 reads) in ATSEs of the
    simulator's sizes, cells spread over ``n_samples`` samples (half per group): pseudobulk, the
    per-ATSE DM test and the per-junction confirmation tests. Reading the counts through the model
    (one pass over the cells) comes on top and is shared with every design.
    """
    import scipy.sparse as sp

    from splicevi.stats import pseudobulk as pb

    rng = np.random.default_rng(seed)
    sizes = rng.choice([2, 2, 2, 3, 3, 4], size=n_junctions // 2)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_junctions)]
    codes = np.repeat(np.arange(sizes.size), sizes)
    nnz = int(0.02 * n_cells * codes.size)
    k = sp.csr_matrix(
        (
            rng.integers(1, 11, size=nnz).astype(np.float32),
            (rng.integers(0, n_cells, size=nnz), rng.integers(0, codes.size, size=nnz)),
        ),
        shape=(n_cells, codes.size),
    )
    samples = np.array([f"s{i}" for i in rng.integers(0, n_samples, size=n_cells)], dtype=object)
    t0 = time.time()
    counts, names = pb.pseudobulk(k, samples)
    t1 = time.time()
    group = np.arange(names.size) < names.size // 2
    res = pb.dm_glm_test(counts, codes, group)
    t2 = time.time()
    pb.junction_tests(counts, codes, group, atse_result=res)
    t3 = time.time()
    return {
        "n_cells": n_cells,
        "n_junctions": int(codes.size),
        "n_atse": int(sizes.size),
        "n_samples": n_samples,
        "pseudobulk_s": round(t1 - t0, 1),
        "atse_test_s": round(t2 - t1, 1),
        "junction_tests_s": round(t3 - t2, 1),
        "total_s": round(t3 - t0, 1),
        "tested_atse": int(res.testable.sum()),
    }


def markdown(summary: dict) -> str:
    """The results as markdown tables."""
    lines = [
        "# Sample-level differential splicing (conditions over donors)",
        "",
        f"Command: `{summary['command']}`  ",
        f"Machine: {summary['machine']}; total {summary['seconds']} s.",
        "",
        f"Cohorts: {summary['args']['n_cells']} cells, {summary['args']['n_events']} ATSEs, 3 cell types, "
        f"observed fraction {summary['args']['observed']}, {summary['args']['epochs']} epochs; calls at "
        f"target FDR {FDR} with |ΔPSI| ≥ {DELTA}. Donor variation: Dirichlet concentration of each donor's "
        "PSI around the type's (lower = stronger).",
        "",
        "## (a) Null condition contrast: false calls per 4,000 junctions",
        "",
        "| cohort | donors | conc. | junctions | samples DM (QL) | samples DM (χ²) | pseudobulk Welch | "
        "cell-level | pooled ΔPSI ≥ 0.1 | ATSE p < 0.05 / < 0.01, QL | same, χ² |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tests = ["samples_dm_ql", "samples_dm_chi2", "pseudobulk_welch", "cell_level", "pooled_dpsi"]
    for r in summary["cohorts"]:
        if r["frac_condition_events"] == 0:
            j = r["junction"]
            half = r["n_samples"] // 2
            lines.append(
                f"| {r['name']} | {r['n_samples'] - half} vs {half} | {r['concentration']:g} | "
                f"{r['n_junctions']} | "
                + " | ".join(f"{j[t]['false_per_4000']:g}" for t in tests)
                + f" | {r['atse_p_below']['0.05']} / {r['atse_p_below']['0.01']} | "
                f"{r['atse_p_below_chi2']['0.05']} / {r['atse_p_below_chi2']['0.01']} |"
            )
    lines += [
        "",
        "## (b) Planted condition effect: calls, empirical FDR, power (junctions; ATSEs below)",
        "",
        "| cohort | test | calls | true calls | emp. FDR | power |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["cohorts"]:
        if r["frac_condition_events"] > 0:
            for t in tests:
                s = r["junction"][t]
                lines.append(
                    f"| {r['name']} | {t} | {s['calls']} | {s['true_calls']} | {s['fdr']} | {s['power']} |"
                )
            for t, s in r["event"].items():
                lines.append(
                    f"| {r['name']} (ATSEs) | {t} | {s['calls']} | {s['true_calls']} | {s['fdr']} | "
                    f"{s['power']} |"
                )
    lines += [
        "",
        "## (c) DE, null condition contrast across channels (genes called)",
        "",
        "| cohort | sample-level (PyDESeq2) | cell-level (scvi-tools change mode) |",
        "|---|---|---|",
    ]
    for r in summary["cohorts"]:
        if "de" in r:
            d = r["de"]
            lines.append(
                f"| {r['name']} | {d['samples_deseq2']['calls']} of {d['samples_deseq2']['n_genes']} "
                f"({d['samples_deseq2']['per_100_genes']} per 100) | {d['cell_level_scvi']['calls']} of "
                f"{d['cell_level_scvi']['n_genes']} ({d['cell_level_scvi']['per_100_genes']} per 100) |"
            )
    lines += ["", "## (d) Real cells: two Smart-seq2 patients, patient as the sample", ""]
    real = summary["real"]
    if real.get("refused"):
        lines += [
            f"Refused ({real['n_cells'][0]} vs {real['n_cells'][1]} cells; plates per patient "
            f"{real['plates_per_patient']}):",
            "",
            f"> {real['message']}",
        ]
    else:
        lines.append(f"{real}")
    if summary.get("speed"):
        sp_ = summary["speed"]
        lines += [
            "",
            f"Model-free part at scale ({sp_['n_cells']:,} cells × {sp_['n_junctions']:,} junctions, "
            f"{sp_['n_atse']:,} ATSEs, {sp_['n_samples']} samples, 1 thread): pseudobulk {sp_['pseudobulk_s']} s, "
            f"ATSE DM tests {sp_['atse_test_s']} s, junction confirmation tests {sp_['junction_tests_s']} s "
            f"(total {sp_['total_s']} s).",
        ]
    lines += [
        "",
        "## Timing",
        "",
        "| cohort | train s | sample-level DS s (junction table) | tested ATSEs | "
        "median DM conc. | median QL dispersion |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["cohorts"]:
        lines.append(
            f"| {r['name']} | {r['train_seconds']} | {r['samples_ds_seconds']} | {r['n_tested_atse']} | "
            f"{r['median_dm_concentration']:.1f} | {r['median_ql_dispersion']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the cohorts and write the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller cohorts, fewer epochs")
    p.add_argument("--n-cells", type=int, default=2000)
    p.add_argument("--n-genes", type=int, default=400)
    p.add_argument("--n-events", type=int, default=1400)
    p.add_argument("--observed", type=float, default=0.15)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-de", dest="de", action="store_false")
    p.add_argument(
        "--speed-only",
        action="store_true",
        help="only the timing at 20,000 cells x 30,000 junctions (merged into an existing --out JSON)",
    )
    p.add_argument("--out", default=str(HERE / "results" / "ds_samples.json"))
    args = p.parse_args()
    if args.quick:
        args.n_cells, args.n_events, args.epochs = 800, 500, 5
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    out = Path(args.out)
    if args.speed_only:
        summary = json.loads(out.read_text())
        summary["speed"] = speed()
        out.write_text(json.dumps(summary, indent=1, default=str))
        out.with_suffix(".md").write_text(markdown(summary))
        print(json.dumps(summary["speed"]))
        return
    t0 = time.time()
    cohorts = [
        ("null_2v2_conc10", 4, 10.0, 0.0),
        ("null_2v2_conc50", 4, 50.0, 0.0),
        ("null_3v3_conc10", 6, 10.0, 0.0),
        ("planted_3v3_conc10", 6, 10.0, 0.2),
        ("planted_3v3_conc50", 6, 50.0, 0.2),
    ]
    results = []
    speed_result = speed()
    print(json.dumps(speed_result), flush=True)
    for name, n, conc, frac in cohorts:
        r = run_cohort(name, n, conc, frac, args)
        print(json.dumps({k: r[k] for k in ("name", "junction")}), flush=True)
        results.append(r)
    summary = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
        "args": vars(args),
        "cohorts": results,
        "real": real_refusal(),
        "speed": speed_result,
        "seconds": round(time.time() - t0, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
