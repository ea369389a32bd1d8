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

Restartable: each regime's result is a JSON under ``--work`` and is reused when present.
The summary goes to ``--out`` (JSON) and a markdown table beside it.

Run: ``python bench/ds_quality.py [--quick] [--epochs 20]``.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import logging
import os
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
from splicevi.tl.metrics import call_quality, ranking_quality

DELTA = 0.1
TARGETS = (0.05, 0.1)
#: The default ``fdr_method`` of ``differential_splicing`` (its calls are ``is_ds_fdr``).
DEFAULT_METHOD = inspect.signature(SPLICEVI.differential_splicing).parameters["fdr_method"].default
N_TYPES = 6


def regime_name(n_events: int, frac_ds: float, observed: float, conc: float) -> str:
    """Short label of a regime (ATSEs, differential fraction, observed fraction, concentration)."""
    return f"ev{n_events}_ds{frac_ds}_obs{observed}_conc{int(conc)}"


def true_group_psi(sim, cell_types: np.ndarray, cells: np.ndarray) -> pd.Series:
    """True mean PSI of a group of cells: the cell-count-weighted mean of its types' PSI."""
    shares = pd.Series(cell_types[cells]).value_counts(normalize=True)
    return sum(w * sim.junctions[f"true_psi_{t}"] for t, w in shares.items())


def with_calls(table: pd.DataFrame) -> pd.DataFrame:
    """``is_ds_fdr_<target>``: the table's own calls at each target (its default method)."""
    q = table["lfdr_qvalue"] if DEFAULT_METHOD == "lfdr" else table["qvalue"]
    return table.assign(**{f"is_ds_fdr_{t}": (q <= t).to_numpy() for t in TARGETS})


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
    out = {"n_junctions": int(len(table_j)), "min_pvalue": float(table_j["pvalue"].min()),
           "min_lfdr": float(table_j["lfdr"].min())}
    for level, table in (("junction", table_j), ("event", table_e)):
        for t in TARGETS:
            out[f"{level}_called_fraction_q{t}"] = float(table[f"is_ds_fdr_{t}"].mean())
            out[f"{level}_called_fraction_bh_q{t}"] = float((table["qvalue"] <= t).mean())
            out[f"{level}_called_fraction_lfdr_q{t}"] = float((table["lfdr_qvalue"] <= t).mean())
    return out


def run_regime(n_events, frac_ds, observed, conc, args) -> dict:
    """Simulate one regime, train, run DS and the baselines, and score each ranking."""
    t0 = time.time()
    sim = simulate(
        n_cells=args.n_cells, n_genes=args.n_genes, n_events=n_events, n_types=N_TYPES, n_batches=2,
        frac_ds_events=frac_ds, observed_fraction=observed, dm_concentration=conc, seed=args.seed,
    )
    mdata = sim.to_mudata()
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(args.seed)
    model = SPLICEVI(mdata, n_latent=10)
    model.train(
        max_epochs=args.epochs, batch_size=256, early_stopping=False, enable_progress_bar=False,
        n_epochs_kl_warmup=max(1, args.epochs // 3),
    )
    t_train = time.time() - t0
    types = mdata.obs["cell_type"].astype(str).to_numpy()
    batch = mdata.obs["batch"].astype(str).to_numpy()
    rng = np.random.default_rng(args.seed)
    of = {t: np.nonzero(types == t)[0] for t in np.unique(types)}
    t_a, t_b = f"type{N_TYPES - 2}", f"type{N_TYPES - 1}"
    unb = rng.choice(of["type1"], max(3, of["type0"].size // 10), replace=False)
    small = rng.choice(of[t_a], min(25, of[t_a].size), replace=False)
    contrasts = {
        "pair_splice_only": dict(groupby="cell_type", group1=t_a, group2=t_b),
        "pair_expr": dict(groupby="cell_type", group1="type0", group2="type1"),
        "one_vs_rest": dict(groupby="cell_type", group1="type0"),
        "unbalanced_10to1": dict(idx1=of["type0"], idx2=unb),
        "small_group": dict(idx1=small, idx2=of[t_b]),
    }
    members = {
        "pair_splice_only": (of[t_a], of[t_b]),
        "pair_expr": (of["type0"], of["type1"]),
        "one_vs_rest": (of["type0"], np.nonzero(types != "type0")[0]),
        "unbalanced_10to1": (of["type0"], unb),
        "small_group": (small, of[t_b]),
    }
    result = {"contrasts": {}, "nulls": {}}
    ds_seconds = []
    for name, kw in contrasts.items():
        t1 = time.time()
        tj = model.differential_splicing(delta=DELTA, **kw)
        ds_seconds.append(time.time() - t1)
        te = model.differential_splicing(delta=DELTA, level="event", **kw)
        c1, c2 = members[name]
        dpsi = true_group_psi(sim, types, c1) - true_group_psi(sim, types, c2)
        result["contrasts"][name] = {
            "n_cells": [int(c1.size), int(c2.size)], **score_contrast(sim, tj, te, dpsi)
        }
    halves = rng.permutation(of["type0"])
    h = halves.size // 2
    for name, (i1, i2) in {
        "null_halves": (halves[:h], halves[h:]),
        "null_batch": (of["type0"][batch[of["type0"]] == "batch0"], of["type0"][batch[of["type0"]] == "batch1"]),
    }.items():
        tj = model.differential_splicing(idx1=i1, idx2=i2, delta=DELTA)
        te = model.differential_splicing(idx1=i1, idx2=i2, delta=DELTA, level="event")
        result["nulls"][name] = null_summary(tj, te)
    spl = mdata["splicing"]
    result.update(
        regime=regime_name(n_events, frac_ds, observed, conc),
        params={"n_events": n_events, "frac_ds_events": frac_ds, "observed_fraction": observed,
                "dm_concentration": conc, "n_cells": args.n_cells, "n_types": N_TYPES, "n_batches": 2,
                "seed": args.seed, "n_junctions": int(spl.n_vars)},
        observed_entry_fraction=float(spl.layers["psi_mask"].nnz / (spl.n_obs * spl.n_vars)),
        train_seconds=round(t_train, 1),
        ds_seconds_per_junction_table=round(float(np.mean(ds_seconds)), 2),
        seconds=round(time.time() - t0, 1),
    )
    return result


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
        for r in regimes for n in r["nulls"].values()
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
    lines += ["", "Null contrasts: fraction of junctions / ATSEs called by `is_ds_fdr`.", "",
              "| regime | null | junctions @0.05 | @0.1 | ATSEs @0.05 | @0.1 |", "|---|---|---|---|---|---|"]
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
    parser.add_argument("--work", default="bench/results/ds_quality_regimes", help="per-regime JSON (restart)")
    parser.add_argument("--n-cells", type=int, default=1000)
    parser.add_argument("--n-genes", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run only regimes whose name contains this")
    parser.add_argument("--quick", action="store_true", help="one tiny regime, to check the script runs")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("scvi").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    grid = list(itertools.product((300, 2500), (0.1, 0.3), (0.03, 0.15), (20.0, 100.0)))
    if args.quick:
        args.n_cells, args.n_genes, args.epochs = 400, 80, 3
        grid = [(200, 0.3, 0.15, 20.0)]
        args.work = args.work + "_quick"
        args.out = args.out.replace(".json", "_quick.json")
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
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
