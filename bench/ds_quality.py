"""Ranking and calibration of differential splicing across simulated regimes, against pooled ΔPSI.

For every regime of a small grid (n_events × frac_ds_events × observed_fraction ×
dm_concentration; 6 cell types, 2 batches) one short SPLICEVI model is trained and every kind of
contrast is tested:

* ``pair_splice_only`` (the two types that differ only in splicing), ``pair_expr`` (type0 vs type1);
* ``one_vs_rest`` (type0 vs the rest; truth: type0's PSI minus the cell-count-weighted mean PSI of
  the other types present, i.e. the rest as the cells present);
* ``unbalanced_10to1`` (all of type0 vs a tenth as many cells of type1);
* ``small_group`` (25 cells of type4 vs all of type5);
* nulls: ``null_halves`` (two random halves of type0) and ``null_batch`` (type0's batch0 vs batch1).

Per contrast, per junction and per ATSE: AUPRC / AUROC of the table's own order and of the pooled
observed |ΔPSI| (the model-free baseline), and the empirical FDR and power of the calls at
q-value targets 0.05 and 0.1 (truth: |true ΔPSI| > delta; per ATSE: max over its junctions). Nulls
report the fraction of junctions / ATSEs called.

Labels design (issue 18), in the same run: per contrast the calls of the default
(``is_ds_fdr``) beside a Welch t-test on the observed per-cell PSI with Benjamini–Hochberg at the
same target (:func:`splicevi.stats.differential.welch_per_cell`), both scored against the same
truth (|true ΔPSI| > delta), plus the AUPRC of |pooled ΔPSI| and |group-mean PSI difference|;
null contrasts count the false calls of both. ``--real`` adds the real cells of
``../shared/data/scasl_tnbc_smartseq2`` (37 Smart-seq2 cells, patients PT039 and PT084): patient
vs patient calls per training seed beside Welch's, the Jaccard index of every pair of seeds'
call sets, random splits within one patient (false calls of both) and differences planted on
the real cells (power and false calls of both).

Restartable: each regime's result is a JSON under ``--work`` and is reused when present.
The summary goes to ``--out`` (JSON) and a markdown table beside it.

Run: ``python bench/ds_quality.py [--quick | --grid300] [--epochs 20] [--real]``.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.data.layers import layer_or_derived
from splicevi.stats.differential import welch_per_cell
from splicevi.tl.metrics import call_quality, ranking_quality

DELTA = 0.1
TARGETS = (0.05, 0.1)
#: The default ``fdr_method`` of ``differential_splicing`` (its calls are ``is_ds_fdr``).
DEFAULT_METHOD = inspect.signature(SPLICEVI.differential_splicing).parameters["fdr_method"].default
N_TYPES = 6


def regime_name(n_events: int, frac_ds: float, observed: float, conc: float | None) -> str:
    """Short label of a regime (ATSEs, differential fraction, observed fraction, concentration).

    ``conc`` None: the independent generator (``bench/droplet.py``), whose concentration varies by ATSE.
    """
    if conc is None:
        return f"independent_ev{n_events}_ds{frac_ds}_obs{observed}"
    return f"ev{n_events}_ds{frac_ds}_obs{observed}_conc{int(conc)}"


def true_group_psi(sim, cell_types: np.ndarray, cells: np.ndarray) -> pd.Series:
    """True mean PSI of a group of cells: the cell-count-weighted mean of its types' PSI."""
    shares = pd.Series(cell_types[cells]).value_counts(normalize=True)
    return sum(w * sim.junctions[f"true_psi_{t}"] for t, w in shares.items())


def with_calls(table: pd.DataFrame) -> pd.DataFrame:
    """``is_ds_fdr_<target>``: the table's own calls at each target (its default method and rule)."""
    if DEFAULT_METHOD == "lfdr":
        return table.assign(**{f"is_ds_fdr_{t}": (table["lfdr_qvalue"] <= t).to_numpy() for t in TARGETS})
    # bh: q-value at the target and the confident change (abs_dpsi_bound) at least delta.
    bound = table["abs_dpsi_bound"].fillna(0.0).to_numpy() >= DELTA - 1e-12
    return table.assign(**{f"is_ds_fdr_{t}": (table["qvalue"].to_numpy() <= t) & bound for t in TARGETS})


def score_contrast(sim, table_j, table_e, true_dpsi: pd.Series) -> dict:
    """Ranking and calls of one contrast against the true ΔPSI of the groups' mean PSI."""
    table_j, table_e = with_calls(table_j), with_calls(table_e)
    out = {}
    truth_j = (true_dpsi.abs() > DELTA).loc[table_j.index].to_numpy()
    ev_dpsi = true_dpsi.abs().groupby(sim.junctions["event_id"]).max()
    truth_e = (ev_dpsi > DELTA).loc[table_e["event_id"]].to_numpy()
    for level, table, truth, pooled in (
        ("junction", table_j, truth_j, table_j["emp_effect"].abs()),
        ("event", table_e, truth_e, table_e["emp_max_abs_dpsi"]),
    ):
        own_order = -np.arange(len(table), dtype=np.float64)  # the table is sorted best first
        res = {
            "n_true": int(truth.sum()),
            "table_order": ranking_quality(truth, own_order),
            "pvalue_order": ranking_quality(truth, -table["log10_pvalue"].to_numpy()),
            "lfdr_order": ranking_quality(truth, -table["log10_lfdr"].to_numpy()),
            "pooled_abs_dpsi": ranking_quality(truth, pooled),
        }
        for target in TARGETS:
            res[f"calls_q{target}"] = call_quality(truth, table["is_ds_fdr_" + str(target)].to_numpy())
            res[f"calls_bh_q{target}"] = call_quality(truth, table["qvalue"].to_numpy() <= target)
            res[f"calls_lfdr_q{target}"] = call_quality(truth, table["lfdr_qvalue"].to_numpy() <= target)
        pv = table["proba_ds"].to_numpy()
        res["proba_ds_exact_0_or_1_fraction"] = float(np.mean((pv == 0) | (pv == 1)))
        res["bayes_factor_distinct_fraction"] = float(
            np.unique(np.round(table["bayes_factor"].dropna().to_numpy(), 6)).size / max(len(table), 1)
        )
        out[level] = res
    return out


def null_summary(table_j, table_e) -> dict:
    """Calls made on a null regime (no differential ATSE): every call is a false positive."""
    table_j, table_e = with_calls(table_j), with_calls(table_e)
    out = {
        "n_junctions": int(len(table_j)),
        "min_pvalue": float(table_j["pvalue"].min()),
        "min_lfdr": float(table_j["lfdr"].min()),
    }
    for level, table in (("junction", table_j), ("event", table_e)):
        for t in TARGETS:
            out[f"{level}_called_fraction_q{t}"] = float(table[f"is_ds_fdr_{t}"].mean())
            out[f"{level}_called_fraction_bh_q{t}"] = float((table["qvalue"] <= t).mean())
            out[f"{level}_called_fraction_lfdr_q{t}"] = float((table["lfdr_qvalue"] <= t).mean())
    return out


def simulate_regime(n_events, frac_ds, observed, conc, args):
    """The simulated data of one regime (6 types, 2 batches; ``args``: n_cells, n_genes, seed).

    ``conc`` None: ``bench/droplet.py``'s independent generator (per-ATSE concentration
    log-uniform 10-200, heavy-tailed depth), which the project never tuned on.
    """
    if conc is None:
        from droplet import generate

        return generate(
            n_cells=args.n_cells,
            n_genes=args.n_genes,
            n_events=n_events,
            frac_ds=frac_ds,
            observed_fraction=observed,
            seed=args.seed,
        )
    return simulate(
        n_cells=args.n_cells,
        n_genes=args.n_genes,
        n_events=n_events,
        n_types=N_TYPES,
        n_batches=2,
        frac_ds_events=frac_ds,
        observed_fraction=observed,
        dm_concentration=conc,
        seed=args.seed,
    )


def contrast_cells(types: np.ndarray, batch: np.ndarray, seed: int) -> tuple[dict, dict]:
    """The cells of every contrast and of the two null splits (name → (cells1, cells2)), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    of = {t: np.nonzero(types == t)[0] for t in np.unique(types)}
    t_a, t_b = f"type{N_TYPES - 2}", f"type{N_TYPES - 1}"
    unb = rng.choice(of["type1"], max(3, of["type0"].size // 10), replace=False)
    small = rng.choice(of[t_a], min(25, of[t_a].size), replace=False)
    members = {
        "pair_splice_only": (of[t_a], of[t_b]),
        "pair_expr": (of["type0"], of["type1"]),
        "one_vs_rest": (of["type0"], np.nonzero(types != "type0")[0]),
        "unbalanced_10to1": (of["type0"], unb),
        "small_group": (small, of[t_b]),
    }
    halves = rng.permutation(of["type0"])
    h = halves.size // 2
    own = of["type0"]
    b0, b1 = np.unique(batch)[:2]
    nulls = {
        "null_halves": (halves[:h], halves[h:]),
        "null_batch": (own[batch[own] == b0], own[batch[own] == b1]),
    }
    return members, nulls


def run_regime(n_events, frac_ds, observed, conc, args) -> dict:
    """Simulate one regime, train, run DS and the baselines, and score each ranking."""
    t0 = time.time()
    sim = simulate_regime(n_events, frac_ds, observed, conc, args)
    mdata = sim.to_mudata()
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
    t_train = time.time() - t0
    types = mdata.obs["cell_type"].astype(str).to_numpy()
    batch = mdata.obs["batch"].astype(str).to_numpy()
    members, nulls = contrast_cells(types, batch, args.seed)
    t_a, t_b = f"type{N_TYPES - 2}", f"type{N_TYPES - 1}"
    # The same groups as the model sees them: type labels where the groups are types, cells elsewhere.
    contrasts = {
        "pair_splice_only": dict(groupby="cell_type", group1=t_a, group2=t_b),
        "pair_expr": dict(groupby="cell_type", group1="type0", group2="type1"),
        "one_vs_rest": dict(groupby="cell_type", group1="type0"),
        "unbalanced_10to1": dict(idx1=members["unbalanced_10to1"][0], idx2=members["unbalanced_10to1"][1]),
        "small_group": dict(idx1=members["small_group"][0], idx2=members["small_group"][1]),
    }
    result = {"contrasts": {}, "nulls": {}}
    spl_mod = mdata["splicing"]
    k_obs = layer_or_derived(spl_mod, "cell_by_junction_matrix")
    n_obs = layer_or_derived(spl_mod, "cell_by_cluster_matrix")
    ds_seconds = []
    if args.quick:  # the tiny regime's unbalanced group has fewer cells than the default min_cells
        contrasts = {name: {**kw, "min_cells": 3} for name, kw in contrasts.items()}
    for name, kw in contrasts.items():
        t1 = time.time()
        tj = model.differential_splicing(delta=DELTA, silent=True, **kw)
        ds_seconds.append(time.time() - t1)
        te = model.differential_splicing(delta=DELTA, level="event", silent=True, **kw)
        c1, c2 = members[name]
        dpsi = true_group_psi(sim, types, c1) - true_group_psi(sim, types, c2)
        result["contrasts"][name] = {
            "n_cells": [int(c1.size), int(c2.size)],
            **score_contrast(sim, tj, te, dpsi),
            "labels": labels_vs_welch(tj, k_obs, n_obs, c1, c2, dpsi, spl_mod.var_names),
        }
    for name, (i1, i2) in nulls.items():
        tj = model.differential_splicing(idx1=i1, idx2=i2, delta=DELTA, silent=True)
        te = model.differential_splicing(idx1=i1, idx2=i2, delta=DELTA, level="event", silent=True)
        result["nulls"][name] = null_summary(tj, te)
        w = welch_per_cell(k_obs, n_obs, i1, i2)
        result["nulls"][name].update(
            default_false_calls=int(tj["is_ds_fdr"].sum()),
            welch_false_calls=int((w.qvalue <= 0.05).sum()),
            design=str(tj.attrs.get("splicevi_ds", {}).get("design")),
        )
    spl = mdata["splicing"]
    result.update(
        regime=regime_name(n_events, frac_ds, observed, conc),
        params={
            "n_events": n_events,
            "frac_ds_events": frac_ds,
            "observed_fraction": observed,
            "dm_concentration": conc,
            "n_cells": args.n_cells,
            "n_types": N_TYPES,
            "n_batches": 2,
            "seed": args.seed,
            "n_junctions": int(spl.n_vars),
        },
        observed_entry_fraction=float(spl.layers["psi_mask"].nnz / (spl.n_obs * spl.n_vars)),
        train_seconds=round(t_train, 1),
        ds_seconds_per_junction_table=round(float(np.mean(ds_seconds)), 2),
        seconds=round(time.time() - t0, 1),
    )
    return result


def labels_vs_welch(table, k_obs, n_obs, cells1, cells2, true_dpsi: pd.Series, junctions) -> dict:
    """The default's calls beside Welch's (BH, same target) against the same truth, and the peers' rankings."""
    table = table.loc[junctions]
    truth = (true_dpsi.abs() > DELTA).loc[junctions].to_numpy()
    w = welch_per_cell(k_obs, n_obs, cells1, cells2)
    out = {
        "n_true": int(truth.sum()),
        "design": str(table.attrs.get("splicevi_ds", {}).get("design", table["design"].iloc[0])),
        "test": str(table["test"].iloc[0]),
    }
    for t in TARGETS:
        # The table's own calls at its target (0.05); the same rule re-applied at the other.
        own = call_quality(
            truth, table["is_ds_fdr"].to_numpy(dtype=bool) if t == 0.05 else _default_calls(table, t)
        )
        welch = call_quality(truth, w.qvalue <= t)
        own["true_calls"] = own["n_calls"] - own["n_false"]
        welch["true_calls"] = welch["n_calls"] - welch["n_false"]
        out[f"default_q{t}"], out[f"welch_q{t}"] = own, welch
        out[f"ratio_true_calls_q{t}"] = (
            own["true_calls"] / welch["true_calls"] if welch["true_calls"] else float("nan")
        )
    out["auprc_default_order"] = ranking_quality(truth, -table["log10_pvalue"].to_numpy()).get("auprc")
    out["auprc_welch"] = ranking_quality(truth, -np.log(np.maximum(w.pvalue, 1e-300))).get("auprc")
    out["auprc_pooled_dpsi"] = ranking_quality(truth, table["emp_effect"].abs().to_numpy()).get("auprc")
    out["auprc_group_mean_dpsi"] = ranking_quality(truth, np.abs(w.effect)).get("auprc")
    return out


def _default_calls(table: pd.DataFrame, target: float) -> np.ndarray:
    """The default's calls at another target: its rule re-applied (see :func:`with_calls`)."""
    return with_calls(table)[f"is_ds_fdr_{target}"].to_numpy()


def labels_lines(summary: dict) -> list[str]:
    """The labels-design section: the default beside Welch per regime and contrast, nulls, real cells."""
    lines = [
        "## Labels design: the default beside a Welch t-test (issue 18)",
        "",
        f"Command: `{summary['command']}`. Target FDR 0.05 for both; truth |true ΔPSI| > {DELTA}; "
        "Welch: t-test on observed per-cell PSI k / n (cells observing the ATSE), Benjamini–Hochberg. "
        "`true` = true junctions called (ratio = default / Welch), FDR = empirical FDR of the calls.",
        "",
        *labels_headline(summary),
        "| regime | contrast | true junctions | default true (FDR) | Welch true (FDR) | ratio | AUPRC default "
        "/ Welch / pooled ΔPSI / group-mean ΔPSI |",
        "|---|---|---|---|---|---|---|",
    ]
    for reg in summary["regimes"]:
        for cname, c in reg["contrasts"].items():
            lab = c.get("labels")
            if lab is None:
                continue
            d, w = lab["default_q0.05"], lab["welch_q0.05"]

            def fmt(x):
                return "nan" if x is None or not np.isfinite(x) else f"{x:.3f}"

            lines.append(
                f"| {reg['regime']} | {cname} | {lab['n_true']} | {d['true_calls']} ({d['empirical_fdr']:.3f}) "
                f"| {w['true_calls']} ({w['empirical_fdr']:.3f}) | {fmt(lab['ratio_true_calls_q0.05'])} "
                f"| {fmt(lab['auprc_default_order'])} / {fmt(lab['auprc_welch'])} / {fmt(lab['auprc_pooled_dpsi'])} "
                f"/ {fmt(lab['auprc_group_mean_dpsi'])} |"
            )
    lines += [
        "",
        "Null contrasts (every call false): calls of the default / of Welch at 0.05.",
        "",
        "| regime | null | default | Welch |",
        "|---|---|---|---|",
    ]
    for reg in summary["regimes"]:
        for nname, n in reg["nulls"].items():
            if "default_false_calls" in n:
                lines.append(
                    f"| {reg['regime']} | {nname} | {n['default_false_calls']} | {n['welch_false_calls']} |"
                )
    real = summary.get("real")
    if real:
        lines += [
            "",
            "### Real cells: scasl_tnbc_smartseq2 (37 Smart-seq2 cells, PT039 vs PT084)",
            "",
            f"{real['n_cells']} cells × {real['n_junctions']} junctions ({real['preprocessing']}); training as "
            f"`.test/config_real.yaml`. Design chosen by `auto` with `sample_key='patient'`: **{real['auto_design']}** "
            f"({real['auto_reason']}).",
            "",
            "| seed | default calls | Welch calls | shared with Welch |",
            "|---|---|---|---|",
        ]
        for s in real["seeds"]:
            lines.append(f"| {s['seed']} | {s['calls']} | {real['welch_calls']} | {s['shared_with_welch']} |")
        lines += [
            "",
            f"Jaccard index of the call sets of every pair of seeds: min {real['jaccard_min']:.3f}, "
            f"median {real['jaccard_median']:.3f}.",
            "",
            "Null splits within one patient (every call false; "
            f"{REAL_NULL_REPEATS} random splits each, `min_cells=3`):",
            "",
            "| patient | split | splits with any call: default / Welch | false calls in all: default / Welch |",
            "|---|---|---|---|",
        ]
        for r in real["null_splits"]:
            d, w = r["default_calls"], r["welch_calls"]
            lines.append(
                f"| {r['patient']} | {r['sizes']} | {sum(x > 0 for x in d)} / {sum(x > 0 for x in w)} "
                f"| {sum(d)} / {sum(w)} |"
            )
        lines += [
            "",
            f"Planted on the real cells (all {real['n_cells']} cells split at random; in {PLANTED_SHARE:.0%} of "
            "the ATSEs the junctions' counts reversed in group 2; a model trained per repeat; truth "
            "|true ΔPSI| > 0.1):",
            "",
            "| repeat | true junctions | default true / false | Welch true / false |",
            "|---|---|---|---|",
        ]
        for r in real["planted"]:
            lines.append(
                f"| {r['repeat']} | {r['n_true']} | {r['default_true']} / {r['default_false']} "
                f"| {r['welch_true']} / {r['welch_false']} |"
            )
    return lines


def labels_headline(summary: dict) -> list[str]:
    """Per contrast kind and observed fraction: range of the true-call ratio to Welch, worst FDRs."""
    rows = {}
    for reg in summary["regimes"]:
        obs = reg["params"]["observed_fraction"]
        for cname, c in reg["contrasts"].items():
            lab = c.get("labels")
            if lab is not None:
                rows.setdefault((cname, obs), []).append(lab)
    if not rows:
        return []
    lines = [
        "| contrast | observed | regimes | ratio of true calls default / Welch (min – max) | worst FDR default "
        "| worst FDR Welch |",
        "|---|---|---|---|---|---|",
    ]
    for (cname, obs), labs in rows.items():
        ratios = [x["ratio_true_calls_q0.05"] for x in labs if np.isfinite(x["ratio_true_calls_q0.05"])]
        rng_txt = f"{min(ratios):.2f} – {max(ratios):.2f}" if ratios else "n/a (Welch finds none)"
        lines.append(
            f"| {cname} | {obs:g} | {len(labs)} | {rng_txt} "
            f"| {max(x['default_q0.05']['empirical_fdr'] for x in labs):.3f} "
            f"| {max(x['welch_q0.05']['empirical_fdr'] for x in labs):.3f} |"
        )
    return [*lines, ""]


def real_patients(shared_data: str):
    """The Smart-seq2 SJ.out.tab cells through ingest, atse and assemble, with ``obs["patient"]``.

    ``None`` when ``shared_data`` has no ``scasl_tnbc_smartseq2`` folder.
    """
    import mudata as md

    root = Path(shared_data) / "scasl_tnbc_smartseq2"
    if not root.is_dir():
        return None
    exe = Path(sys.executable).parent / "splicevi"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for cmd in (
            [
                "ingest",
                "--junctions",
                str(root / "sj_out_tab"),
                "--junction-format",
                "sj_out_tab",
                "--out-junctions",
                str(tmp / "j.h5ad"),
            ],
            [
                "atse",
                "--junctions",
                str(tmp / "j.h5ad"),
                "--min-reads",
                "20",
                "--min-cells",
                "10",
                "--out",
                str(tmp / "events.tsv"),
            ],
            [
                "assemble",
                "--junctions",
                str(tmp / "j.h5ad"),
                "--events",
                str(tmp / "events.tsv"),
                "--out",
                str(tmp / "data.h5mu"),
            ],
        ):
            subprocess.run([str(exe), *cmd], check=True, capture_output=True)
        mdata = md.read_h5mu(tmp / "data.h5mu")
    labels = pd.read_csv(root / "labels_sj_out_tab.csv").set_index("Run")
    mdata.obs["patient"] = labels["patient"].reindex(mdata.obs_names).to_numpy()
    return mdata


#: Null splits of one patient's cells (size of the smaller group): every call is false. The smaller
#: groups leave junctions with two to five observing cells, as the patient contrast does.
REAL_NULL_SPLITS = (("PT039", 5), ("PT039", 7), ("PT039", 11), ("PT084", 7))
REAL_NULL_REPEATS = 20
#: Planted on the real cells: share of ATSEs whose junction counts are reversed in group 2.
PLANTED_SHARE = 0.3
PLANTED_REPEATS = 5


def train_real(mdata, seed: int):
    """The real cells' model as ``.test/config_real.yaml`` trains it."""
    import scvi

    scvi.settings.seed = seed
    model = SPLICEVI(mdata, n_latent=8)
    model.train(
        max_epochs=10,
        batch_size=64,
        lr=0.005,
        early_stopping=False,
        train_size=0.8,
        n_epochs_kl_warmup=2,
        enable_progress_bar=False,
    )
    return model


def real_null_splits(model, patient, k_obs, n_obs, rng) -> list[dict]:
    """False calls of the default and of Welch on random splits within one patient.

    ``min_cells=3`` lets the small splits through the default's guard of 10 cells per group: the
    point is how each test treats junctions seen in a handful of cells, which every contrast has.
    """
    rows = []
    for name, small in REAL_NULL_SPLITS:
        own = np.nonzero(patient == name)[0]
        default, welch = [], []
        for _ in range(REAL_NULL_REPEATS):
            perm = rng.permutation(own)
            a, b = perm[small:], perm[:small]
            t = model.differential_splicing(idx1=a, idx2=b, silent=True, min_cells=3)
            default.append(int(t["is_ds_fdr"].sum()))
            welch.append(int((welch_per_cell(k_obs, n_obs, a, b).qvalue <= 0.05).sum()))
        rows.append(
            {
                "patient": name,
                "sizes": f"{own.size - small} vs {small}",
                "default_calls": default,
                "welch_calls": welch,
            }
        )
        print(f"real null {name} {own.size - small} vs {small}: default {default} Welch {welch}", flush=True)
    return rows


def _mean_cell_psi(k_obs, n_obs) -> np.ndarray:
    """Mean per-cell PSI over the cells observing each junction's ATSE (NaN: none)."""
    import scipy.sparse as sp

    n = sp.csr_matrix(n_obs)
    k = sp.csr_matrix(k_obs)
    obs = (n > 0).astype(np.float64)
    y = k.multiply(n.power(-1.0).tocsr())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(y.sum(0)).ravel() / np.asarray(obs.sum(0)).ravel()


def planted_real(mdata, k_obs, n_obs, rng) -> list[dict]:
    """Differences planted on the real cells: power and false calls of the default and Welch.

    All cells are split at random into two groups; in a random ``PLANTED_SHARE`` of the ATSEs the
    order of the junctions' counts is reversed in group 2 (two junctions swap), so the reads keep
    the real cells' depth and overdispersion. True ΔPSI of a junction: its mean per-cell PSI minus
    that of the junction whose counts it received (0 outside the chosen ATSEs); true if above delta.
    A model is trained on each planted data set.
    """
    import scipy.sparse as sp

    spl = mdata["splicing"]
    events = spl.var["event_id"].astype(str).to_numpy()
    mu = _mean_cell_psi(k_obs, n_obs)
    out = []
    for rep in range(PLANTED_REPEATS):
        order = np.arange(spl.n_vars)
        uniq = np.unique(events)
        chosen = rng.choice(uniq, size=int(round(PLANTED_SHARE * uniq.size)), replace=False)
        for e in chosen:
            cols = np.nonzero(events == e)[0]
            order[cols] = cols[::-1]
        true_dpsi = np.nan_to_num(mu - mu[order])
        perm = rng.permutation(mdata.n_obs)
        g1, g2 = np.sort(perm[: mdata.n_obs // 2]), np.sort(perm[mdata.n_obs // 2 :])
        k = sp.csr_matrix(k_obs).tolil()
        k[g2] = sp.csr_matrix(k_obs)[g2][:, order]
        k = sp.csr_matrix(k)
        planted = mdata.copy()
        planted["splicing"].layers["cell_by_junction_matrix"] = k
        if sp.issparse(planted["splicing"].X) or isinstance(planted["splicing"].X, np.ndarray):
            planted["splicing"].X = k.copy()
        planted.obs["planted_group"] = np.where(np.isin(np.arange(mdata.n_obs), g2), "g2", "g1")
        SPLICEVI.setup_mudata(planted)
        model = train_real(planted, rep)
        table = model.differential_splicing(groupby="planted_group", group1="g1", group2="g2", silent=True)
        calls = table["is_ds_fdr"].reindex(spl.var_names).fillna(False).to_numpy(dtype=bool)
        truth = np.abs(true_dpsi) > DELTA
        welch = welch_per_cell(k, n_obs, g1, g2).qvalue <= 0.05
        row = {
            "repeat": rep,
            "n_true": int(truth.sum()),
            "default_true": int((calls & truth).sum()),
            "default_false": int((calls & ~truth).sum()),
            "welch_true": int((welch & truth).sum()),
            "welch_false": int((welch & ~truth).sum()),
        }
        out.append(row)
        print(f"planted on real cells: {row}", flush=True)
    return out


def real_cells(args) -> dict | None:
    """Patient vs patient on the real Smart-seq2 cells, five seeds, beside Welch; nulls and planted."""
    import itertools

    mdata = real_patients(args.shared_data)
    if mdata is None:
        print(f"real cells skipped: {Path(args.shared_data) / 'scasl_tnbc_smartseq2'} is absent", flush=True)
        return None
    spl = mdata["splicing"]
    k_obs = layer_or_derived(spl, "cell_by_junction_matrix")
    n_obs = layer_or_derived(spl, "cell_by_cluster_matrix")
    patient = mdata.obs["patient"].to_numpy()
    c1, c2 = np.nonzero(patient == "PT039")[0], np.nonzero(patient == "PT084")[0]
    welch = welch_per_cell(k_obs, n_obs, c1, c2)
    welch_set = set(spl.var_names[welch.qvalue <= 0.05])
    SPLICEVI.setup_mudata(mdata)
    seeds, sets, first = [], [], None
    for seed in range(args.real_seeds):
        model = train_real(mdata, seed)
        table = model.differential_splicing(
            groupby="patient", group1="PT039", group2="PT084", sample_key="patient", silent=True
        )
        calls = set(table.index[table["is_ds_fdr"].to_numpy(dtype=bool)])
        sets.append(calls)
        seeds.append({"seed": seed, "calls": len(calls), "shared_with_welch": len(calls & welch_set)})
        if first is None:
            first = (model, table.attrs["splicevi_ds"])
        print(f"real cells seed {seed}: {len(calls)} calls (Welch {len(welch_set)})", flush=True)
    jac = [len(a & b) / max(len(a | b), 1) for a, b in itertools.combinations(sets, 2)]
    model, attrs = first
    rng = np.random.default_rng(0)
    return {
        "n_cells": int(mdata.n_obs),
        "n_junctions": int(spl.n_vars),
        "preprocessing": "splicevi ingest; atse --min-reads 20 --min-cells 10; assemble",
        "auto_design": attrs["design"],
        "auto_reason": attrs["reason"],
        "welch_calls": len(welch_set),
        "seeds": seeds,
        "jaccard_min": float(min(jac)) if jac else float("nan"),
        "jaccard_median": float(np.median(jac)) if jac else float("nan"),
        "null_splits": real_null_splits(model, patient, k_obs, n_obs, rng),
        "planted": planted_real(mdata, k_obs, n_obs, rng),
    }


def summary_lines(summary: dict) -> list[str]:
    """Per contrast kind and level: how often the table beats pooled |ΔPSI|, worst FDR, nulls."""
    lines = [
        "## Summary over the regimes",
        "",
        "| contrast | level | AUPRC table ≥ pooled | mean AUPRC table / pooled | worst FDR of `is_ds_fdr` @0.05 "
        "| @0.1 | mean power @0.05 | worst lfdr-call FDR @0.05 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    regimes = summary["regimes"]
    if not regimes:
        return lines
    for cname in regimes[0]["contrasts"]:
        for level in ("junction", "event"):
            rows = [r["contrasts"][cname][level] for r in regimes]
            own = np.array([x["table_order"].get("auprc", np.nan) for x in rows])
            pooled = np.array([x["pooled_abs_dpsi"].get("auprc", np.nan) for x in rows])
            wins = int(np.sum(own >= pooled))
            lines.append(
                f"| {cname} | {level} | {wins} / {len(rows)} | {np.nanmean(own):.3f} / {np.nanmean(pooled):.3f} "
                f"| {max(x['calls_q0.05']['empirical_fdr'] for x in rows):.3f} "
                f"| {max(x['calls_q0.1']['empirical_fdr'] for x in rows):.3f} "
                f"| {np.nanmean([x['calls_q0.05']['power'] for x in rows]):.3f} "
                f"| {max(x['calls_lfdr_q0.05']['empirical_fdr'] for x in rows):.3f} |"
            )
    worst_null = max(
        max(n[f"{lv}_called_fraction_q{t}"] for lv in ("junction", "event") for t in TARGETS)
        for r in regimes
        for n in r["nulls"].values()
    )
    lines += ["", f"Null contrasts (random halves, batch split): largest fraction called {worst_null:.4f}."]
    return lines


def markdown(summary: dict) -> str:
    """One row per (regime, contrast, level): AUPRC of the orders and FDR / power of the calls."""

    def f(x, key="auprc"):
        v = x.get(key, float("nan"))
        return f"{v:.3f}"

    def calls(r, key):
        return f"{r[key]['empirical_fdr']:.3f} / {r[key]['power']:.3f}"

    lines = [
        "# Differential splicing quality (bench/ds_quality.py)",
        "",
        *labels_lines(summary),
        "",
        *summary_lines(summary),
        "",
        "## Per regime",
        "",
        f"Command: `{summary['command']}`; {summary['epochs']} epochs; delta {DELTA}; default fdr_method "
        f"`{summary['fdr_method']}`.",
        "Truth: |true ΔPSI of the groups' mean PSI| > delta (per ATSE: max over its junctions); one-vs-rest: the rest "
        "as the cells present. AUPRC of the table's own order, of the p-value and local-FDR orders, and of the pooled "
        "observed |ΔPSI| (model-free baseline). Calls: empirical FDR / power of `is_ds_fdr` (the table's calls) at "
        "targets 0.05 and 0.1, and of Benjamini–Hochberg on the p-values at 0.05.",
        "",
        "| regime | contrast | level | AUPRC table | AUPRC p | AUPRC lfdr | AUPRC pooled | calls@0.05 FDR / power "
        "| calls@0.1 FDR / power | BH@0.05 FDR / power |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for reg in summary["regimes"]:
        for cname, c in reg["contrasts"].items():
            for level in ("junction", "event"):
                r = c[level]
                lines.append(
                    f"| {reg['regime']} | {cname} | {level} | {f(r['table_order'])} | {f(r['pvalue_order'])} "
                    f"| {f(r['lfdr_order'])} | {f(r['pooled_abs_dpsi'])} | {calls(r, 'calls_q0.05')} "
                    f"| {calls(r, 'calls_q0.1')} | {calls(r, 'calls_bh_q0.05')} |"
                )
    lines += [
        "",
        "Null contrasts: fraction of junctions / ATSEs called by `is_ds_fdr`.",
        "",
        "| regime | null | junctions @0.05 | @0.1 | ATSEs @0.05 | @0.1 |",
        "|---|---|---|---|---|---|",
    ]
    for reg in summary["regimes"]:
        for nname, n in reg["nulls"].items():
            lines.append(
                f"| {reg['regime']} | {nname} | {n['junction_called_fraction_q0.05']:.4f} "
                f"| {n['junction_called_fraction_q0.1']:.4f} | {n['event_called_fraction_q0.05']:.4f} "
                f"| {n['event_called_fraction_q0.1']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the grid (resumable) and write the JSON and Markdown results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench/results/ds_quality.json")
    parser.add_argument(
        "--work", default="bench/results/ds_quality_regimes", help="per-regime JSON (restart)"
    )
    parser.add_argument("--n-cells", type=int, default=1000)
    parser.add_argument("--n-genes", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run only regimes whose name contains this")
    parser.add_argument("--quick", action="store_true", help="one tiny regime, to check the script runs")
    parser.add_argument(
        "--grid300", action="store_true", help="only the regimes with 300 ATSEs (half the grid)"
    )
    parser.add_argument("--real", action="store_true", help="add the real cells (../shared/data)")
    parser.add_argument(
        "--generator",
        choices=("simulate", "independent"),
        default="simulate",
        help="splicevi.data.simulate (the grid) or bench/droplet.py:generate (data the project never tuned on)",
    )
    parser.add_argument("--real-seeds", type=int, default=5)
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="summarise the regimes already under --work without running the others",
    )
    parser.add_argument(
        "--shared-data",
        default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
        help="folder with scasl_tnbc_smartseq2 (default: ../shared/data beside the repository)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("scvi").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    concs = (20.0, 100.0) if args.generator == "simulate" else (None,)
    grid = list(itertools.product((300, 2500), (0.1, 0.3), (0.03, 0.15), concs))
    if args.quick:
        args.n_cells, args.n_genes, args.epochs = 400, 80, 3
        grid = [(200, 0.3, 0.15, 20.0)]
        args.work = args.work + "_quick"
        args.out = args.out.replace(".json", "_quick.json")
    if args.grid300:
        grid = [g for g in grid if g[0] == 300]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    regimes = []
    for n_events, frac, obs, conc in grid:
        name = regime_name(n_events, frac, obs, conc)
        if args.only and args.only not in name:
            continue
        path = work / f"{name}.json"
        if path.exists():
            regimes.append(json.loads(path.read_text()))
            continue
        if args.cached_only:
            continue
        res = run_regime(n_events, frac, obs, conc, args)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1, default=float) + "\n")
        os.replace(tmp, path)
        print(f"{name}: {res['seconds']} s", flush=True)
        regimes.append(res)
    summary = {
        "command": "python " + " ".join(sys.argv),
        "fdr_method": DEFAULT_METHOD,
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "delta": DELTA,
        "epochs": args.epochs,
        "regimes": regimes,
        "real": real_cells(args) if args.real else None,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
