"""Call rules of the labels design, scored on one training per regime (issue 18, point 1).

For each regime of ``bench/ds_quality.py``'s grid the model is trained once (its
:func:`ds_quality.run_regime`, so the same data, seeds and contrasts) and every contrast's junction
table is kept; the candidate rules for ``is_ds_fdr`` are then applied to the same table, so the
rules differ only in how they threshold, never in the training. Per rule and contrast kind: true
junctions called (truth |true ΔPSI| > 0.1) as a ratio to a Welch t-test on observed per-cell PSI
(BH at the same target 0.05), the worst empirical FDR over the regimes, and the calls on the null
contrasts (every call false).

Rules (target 0.05):

* ``bh_bound1.645`` (``fdr_method="bh"``): BH q ≤ target on ΔPSI = 0 and |ΔPSI| − 1.645·se ≥ delta;
* ``bh_bound<z>``: the same with another bound level (z = 0: the bare estimate);
* ``lfdr`` (``fdr_method="lfdr"``): the posterior P(|ΔPSI| ≤ delta) of the fitted scale-mixture
  prior with the t-statistic's Student-t likelihood, calls where the mean lfdr of the called rows
  is ≤ target;
* ``lfdr_normal``: the same with the posterior used before (a normal likelihood with the t's
  variance); ``lfdr_normal_nw100``: its prior refitted with 100 (not 10) pseudo-counts on "no
  change"; ``lfdr_normal_var1.5``: its variance × 1.5; ``lfdr_normal_nobs5``: its calls observed
  by ≥ 5 cells in each group; ``bh|lfdr_normal_nobs<k>``: the ``bh`` calls plus those with ≥ k cells
  (k = 6 was the earlier ``bh_lfdr``);
* ``bh_lfdr``: the ``bh`` calls and the ``lfdr`` calls together (without the reads-only rule);
* ``reads_bound1.645``: the reads-only rule of the default (BH on the reads' score test of
  ΔPSI = 0 and its confident |ΔPSI| ≥ delta); ``default``: ``fdr_method="bh_lfdr"`` as the package
  calls it (the model's and the reads' point-null rules and the lfdr calls);
* ``default_fcr_bound`` (not shipped): the default with both bounds at the level that BH's
  selection leaves, Benjamini–Yekutieli's false coverage rate (a bound on misses among the
  selected, not among the calls);
* ``interval_model_only``: ``fdr_method="interval"`` before stop 30 (BH on the model-assisted
  test's interval-null p-values); ``reads_interval``: BH on the reads' interval-null score test
  (:func:`splicevi.stats.read_test.interval_log_pvalue`); ``interval``: ``fdr_method="interval"``
  now, the union of the two.

Each rule is scored against two truths: |true ΔPSI| > delta (what a call with an effect filter
claims) and ΔPSI ≠ 0 (what a point-null BH controls): the "share of calls with ΔPSI = 0".

``--real`` adds the real cells of ``bench/ds_quality.py`` (PT039 vs PT084, five training seeds):
calls per seed and Jaccard between seeds of ``fdr_method`` ``bh``, ``lfdr``, ``bh_lfdr`` and
``interval`` on the same trainings, and their calls on ten random halves of PT039.
``--generator independent`` uses ``bench/droplet.py``'s generator (never tuned on).

Run: ``python bench/ds_call_rules.py [--quick] [--observed 0.03] [--work DIR] [--real]``; the
trained tables are cached as pickles under ``--work`` (restartable; not committed).
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ds_quality as dq  # noqa: E402
from splicevi.stats.differential import (  # noqa: E402
    call_rows,
    confident_change,
    fit_scale_mixture,
    lfdr_qvalues,
    posterior_tails,
    welch_per_cell,
)

TARGET = 0.05
COLS = [
    "qvalue",
    "pvalue",
    "effect_size",
    "effect_se",
    "lfdr",
    "lfdr_qvalue",
    "df",
    "n_obs_group1",
    "n_obs_group2",
    "reads_effect",
    "reads_se",
    "reads_qvalue",
    "reads_interval_qvalue",
    "interval_qvalue",
    "perm_qvalue",  # only where the comparison was small enough to permute (stats.permutation_test)
]


def trained_tables(n_events, frac, obs, conc, args) -> dict:
    """Train one regime as ``ds_quality`` does and keep every contrast's junction table."""
    store = {"contrasts": [], "nulls": []}
    labels_vs_welch, null_summary = dq.labels_vs_welch, dq.null_summary

    def keep_contrast(table, k_obs, n_obs, c1, c2, true_dpsi, junctions):
        t = table.loc[junctions]
        store["contrasts"].append(
            {
                "table": t[[c for c in COLS if c in t]].copy(),
                "truth": (true_dpsi.abs() > dq.DELTA).loc[junctions].to_numpy(),
                # No change at all (the null of the point tests), beside no change beyond delta.
                "unchanged": (true_dpsi.abs() < 1e-9).loc[junctions].to_numpy(),
                "welch_q": welch_per_cell(k_obs, n_obs, c1, c2).qvalue,
            }
        )
        return labels_vs_welch(table, k_obs, n_obs, c1, c2, true_dpsi, junctions)

    def keep_null(tj, te):
        store["nulls"].append(tj[[c for c in COLS if c in tj]].copy())
        return null_summary(tj, te)

    dq.labels_vs_welch, dq.null_summary = keep_contrast, keep_null
    try:
        res = dq.run_regime(n_events, frac, obs, conc, args)
    finally:
        dq.labels_vs_welch, dq.null_summary = labels_vs_welch, null_summary
    return {
        "contrasts": dict(zip(res["contrasts"], store["contrasts"], strict=True)),
        "nulls": dict(zip(res["nulls"], store["nulls"], strict=True)),
    }


def refit_lfdr_qvalues(
    t, null_weight: float = 10.0, var_factor: float = 1.0, likelihood: str = "t"
) -> np.ndarray:
    """Bayesian q-values of P(|ΔPSI| ≤ delta) with the prior refitted from the table's columns.

    ``likelihood="t"`` is the package's posterior (Student-t likelihood with the table's ``df``,
    as ``difference_test``); ``"normal"`` is the one used before issue 18's follow-up: a normal
    likelihood with the t's variance ``se² · df / (df − 2)``.
    """
    e, se, df = (t[c].to_numpy(dtype=np.float64) for c in ("effect_size", "effect_se", "df"))
    ok = np.isfinite(se) & (se > 0) & np.isfinite(df) & (df > 0) & np.isfinite(e)
    dfo = np.where(ok, df, 1.0)
    heavy = np.where(dfo > 2.5, dfo / np.maximum(dfo - 2.0, 0.5), 5.0) if likelihood == "normal" else 1.0
    var = np.where(ok, var_factor * np.where(ok, se, 1.0) ** 2 * heavy, np.inf)
    d = np.where(ok, e, 0.0)
    df_lik = None if likelihood == "normal" else dfo
    prior = fit_scale_mixture(
        d[ok], var[ok], null_weight=null_weight, df=None if df_lik is None else df_lik[ok]
    )
    _, log_in = posterior_tails(d, var, prior, dq.DELTA, df=df_lik)
    return lfdr_qvalues(np.exp(log_in))


def _bound(effect, se, z):
    """``|effect| − z·se`` (``-inf`` where missing)."""
    with np.errstate(invalid="ignore"):
        b = np.abs(np.asarray(effect, dtype=np.float64)) - z * np.asarray(se, dtype=np.float64)
    return np.where(np.isfinite(b), b, -np.inf)


def rules(t) -> dict[str, np.ndarray]:
    """Every candidate rule's calls on one junction table."""
    q = t["qvalue"].to_numpy()
    e = np.abs(np.nan_to_num(t["effect_size"].to_numpy()))
    se = np.nan_to_num(t["effect_se"].to_numpy(), nan=np.inf)
    # Recomputed from effect, se and df, so that tables cached before the posterior's change are
    # scored with the package's current posterior.
    lfdr_q = refit_lfdr_qvalues(t)
    lfdr = lfdr_q <= TARGET
    normal = refit_lfdr_qvalues(t, likelihood="normal") <= TARGET
    nmin = np.minimum(t["n_obs_group1"].to_numpy(), t["n_obs_group2"].to_numpy())
    out = {}
    with np.errstate(invalid="ignore"):
        for z in (1.645, 1.28, 0.0):
            out[f"bh_bound{z}"] = (q <= TARGET) & (e - z * se >= dq.DELTA - 1e-12)
    out["lfdr"] = lfdr
    out["lfdr_normal"] = normal
    out["lfdr_normal_nw100"] = refit_lfdr_qvalues(t, null_weight=100.0, likelihood="normal") <= TARGET
    out["lfdr_normal_var1.5"] = refit_lfdr_qvalues(t, var_factor=1.5, likelihood="normal") <= TARGET
    out["lfdr_normal_nobs5"] = normal & (nmin >= 5)
    for k in (4, 6):
        out[f"bh|lfdr_normal_nobs{k}"] = out["bh_bound1.645"] | (normal & (nmin >= k))
    out["bh_lfdr"] = call_rows(
        q,
        t["effect_size"].to_numpy(),
        TARGET,
        dq.DELTA,
        None,
        lfdr_q,
        "bh_lfdr",
        se=t["effect_se"].to_numpy(),
    )
    if "reads_qvalue" in t:
        rq = t["reads_qvalue"].to_numpy()
        re, rse = t["reads_effect"].to_numpy(), t["reads_se"].to_numpy()
        reads_fixed = (rq <= TARGET) & (confident_change(re, rse) >= dq.DELTA - 1e-12)
        out["reads_bound1.645"] = reads_fixed
        # The default (fdr_method="bh_lfdr"): the model's rules above with the reads-only rule
        # (tests/stats/test_read_test.py checks that the package's call_rows combines them so) and,
        # in comparisons small enough to permute, the permutation test of Welch's t with the same
        # effect filter; "default_before_perm" is the default of stop 30 (no permutation test).
        out["default_before_perm"] = out["bh_lfdr"] | reads_fixed
        out["default"] = out["default_before_perm"]
        if "perm_qvalue" in t:
            perm = (t["perm_qvalue"].to_numpy() <= TARGET) & (confident_change(re, rse) >= dq.DELTA - 1e-12)
            out["default"] = out["default"] | perm
        # Not shipped: the bounds' level adjusted for the BH selection (Benjamini-Yekutieli's false
        # coverage rate), which bounds the miss rate among the selected, not among the calls.
        level = max(int((rq <= TARGET).sum()), 1) * TARGET / max(int(np.isfinite(rq).sum()), 1)
        reads_fcr = (rq <= TARGET) & (_bound(re, rse, stats.norm.isf(level)) >= dq.DELTA - 1e-12)
        level_m = max(int((q <= TARGET).sum()), 1) * TARGET / max(int(np.isfinite(q).sum()), 1)
        df = np.where(np.isfinite(t["df"].to_numpy()), np.maximum(t["df"].to_numpy(), 1.0), 1.0)
        model_fcr = (q <= TARGET) & (
            _bound(t["effect_size"].to_numpy(), se, stats.t.isf(level_m, df)) >= dq.DELTA - 1e-12
        )
        out["default_fcr_bound"] = model_fcr | reads_fcr | lfdr
    if "reads_interval_qvalue" in t:
        # fdr_method="interval": before, the model-assisted test's interval null alone; now with the
        # reads-only interval-null score test (stats.read_test.interval_log_pvalue).
        out["interval_model_only"] = t["interval_qvalue"].to_numpy() <= TARGET
        out["reads_interval"] = t["reads_interval_qvalue"].to_numpy() <= TARGET
        out["interval"] = call_rows(
            q,
            t["effect_size"].to_numpy(),
            TARGET,
            dq.DELTA,
            t["interval_qvalue"].to_numpy(),
            fdr_method="interval",
            reads_interval_qvalue=t["reads_interval_qvalue"].to_numpy(),
        )
    return out


def score(regimes: dict[str, dict]) -> str:
    """Markdown: per observed fraction, rule and contrast kind, ratio to Welch, worst FDR, null calls.

    Two error rates per rule: against the truth |ΔPSI| > delta (a call is false when the true change
    is at most delta) and against "ΔPSI ≠ 0" (false only when nothing changes at all).
    """
    rows = {}
    for name, s in regimes.items():
        obs = name.split("_obs")[1].split("_")[0]
        for kind, c in s["contrasts"].items():
            truth, welch = c["truth"], c["welch_q"] <= TARGET
            unchanged = c.get("unchanged", np.zeros_like(truth))
            w_true = int((welch & truth).sum())
            for rule, calls in rules(c["table"]).items():
                n, tp = int(calls.sum()), int((calls & truth).sum())
                rows.setdefault((obs, rule, kind), []).append(
                    (tp, n - tp, w_true, int((calls & unchanged).sum()))
                )
        for kind, t in s["nulls"].items():
            for rule, calls in rules(t).items():
                rows.setdefault((obs, rule, kind), []).append((0, int(calls.sum()), 0, int(calls.sum())))
    lines = [
        "| observed | rule | contrast | regimes | ratio of true calls to Welch (min – max) | "
        "worst empirical FDR (truth \\|ΔPSI\\| > delta) | worst share of calls with ΔPSI = 0 | "
        "true / false calls per regime |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (obs, rule, kind), v in sorted(rows.items()):
        ratios = [tp / w for tp, _, w, _ in v if w]
        fdr = max((f / (tp + f) if tp + f else 0.0) for tp, f, _, _ in v)
        fdr0 = max((z / (tp + f) if tp + f else 0.0) for tp, f, _, z in v)
        rng = f"{min(ratios):.2f} – {max(ratios):.2f}" if ratios else "–"
        if kind.startswith("null"):
            rng, fdr_s, fdr0_s = "–", f"{sum(f for _, f, _, _ in v)} calls in all", "–"
        else:
            fdr_s, fdr0_s = f"{fdr:.3f}", f"{fdr0:.3f}"
        lines.append(
            f"| {obs} | {rule} | {kind} | {len(v)} | {rng} | {fdr_s} | {fdr0_s} | "
            + " ".join(f"{tp}/{f}" for tp, f, _, _ in v)
            + " |"
        )
    return "\n".join(lines) + "\n"


def real_cells(shared_data: str) -> str:
    """Patient vs patient (5 seeds) and random halves of PT039 under each ``fdr_method``."""
    import itertools

    from splicevi import SPLICEVI
    from splicevi.data.layers import layer_or_derived

    mdata = dq.real_patients(shared_data)
    if mdata is None:
        return f"real cells skipped: {Path(shared_data) / 'scasl_tnbc_smartseq2'} is absent\n"
    spl = mdata["splicing"]
    k_obs, n_obs = (
        layer_or_derived(spl, "cell_by_junction_matrix"),
        layer_or_derived(spl, "cell_by_cluster_matrix"),
    )
    patient = mdata.obs["patient"].to_numpy()
    c1, c2 = np.nonzero(patient == "PT039")[0], np.nonzero(patient == "PT084")[0]
    welch = set(spl.var_names[welch_per_cell(k_obs, n_obs, c1, c2).qvalue <= TARGET])
    SPLICEVI.setup_mudata(mdata)
    methods = ("bh", "lfdr", "bh_lfdr", "interval")
    sets = {m: [] for m in methods}
    halves = {m: [] for m in methods}
    rng = np.random.default_rng(0)
    for seed in range(5):
        model = dq.train_real(mdata, seed)
        for m in methods:
            t = model.differential_splicing(
                groupby="patient",
                group1="PT039",
                group2="PT084",
                sample_key="patient",
                silent=True,
                fdr_method=m,
            )
            sets[m].append(set(t.index[t["is_ds_fdr"].to_numpy(dtype=bool)]))
        if seed == 0:  # as ds_quality: the halves on the first seed's model
            for _ in range(10):
                perm = rng.permutation(c1)
                h = perm.size // 2
                for m in methods:
                    t = model.differential_splicing(idx1=perm[:h], idx2=perm[h:], silent=True, fdr_method=m)
                    halves[m].append(int(t["is_ds_fdr"].sum()))
    lines = [
        f"Real cells PT039 vs PT084 (Welch: {len(welch)} calls)",
        "",
        "| fdr_method | calls per seed | shared with Welch | Jaccard min / median | random halves: calls per split |",
        "|---|---|---|---|---|",
    ]
    for m in methods:
        jac = [len(a & b) / max(len(a | b), 1) for a, b in itertools.combinations(sets[m], 2)]
        lines.append(
            f"| {m} | {[len(x) for x in sets[m]]} | {[len(x & welch) for x in sets[m]]} | "
            f"{min(jac):.2f} / {np.median(jac):.2f} | {halves[m]} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Train the regimes (cached), score every rule, print and write the markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="bench/results/ds_call_rules_work")
    parser.add_argument("--observed", default="0.03", help="comma-separated observed fractions of the grid")
    parser.add_argument("--out", default="bench/results/ds_call_rules.md")
    parser.add_argument("--quick", action="store_true", help="one tiny regime, to check the script runs")
    parser.add_argument("--real", action="store_true", help="add the real cells (../shared/data)")
    parser.add_argument(
        "--generator",
        choices=["simulate", "independent"],
        default="simulate",
        help="independent: bench/droplet.py's generator (per-ATSE concentration), never tuned on",
    )
    parser.add_argument(
        "--shared-data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("scvi").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    args.n_cells, args.n_genes, args.epochs, args.seed = 1000, 300, 20, 0
    observed = [float(x) for x in args.observed.split(",")]
    concs = (20.0, 100.0) if args.generator == "simulate" else (None,)
    grid = [(e, f, o, c) for e in (300, 2500) for f in (0.1, 0.3) for o in observed for c in concs]
    if args.quick:
        args.n_cells, args.n_genes, args.epochs = 400, 80, 3
        grid = [(200, 0.3, 0.15, 20.0)]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    regimes = {}
    for n_events, frac, obs, conc in grid:
        name = dq.regime_name(n_events, frac, obs, conc)
        path = work / f"{'quick_' if args.quick else ''}{name}.pkl"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(trained_tables(n_events, frac, obs, conc, args), fh)
            tmp.replace(path)
            print(f"{name}: trained", flush=True)
        with open(path, "rb") as fh:
            regimes[name] = pickle.load(fh)
    text = f"Command: `python {' '.join(sys.argv)}`\n\n" + score(regimes)
    if args.real:
        text += "\n" + real_cells(args.shared_data)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
