"""The labels design's reads-only rule on its own (``stats/read_test.py``), beside Welch, no model.

The same simulated regimes, seeds and contrasts as ``bench/ds_quality.py`` (16 regimes: ATSEs ×
differential fraction × observed fraction × Dirichlet concentration), but no training: the
quasi-binomial score test on the observed reads, BH at 0.05 with the default's effect filter
(|ΔPSI| − 1.645·se ≥ 0.1), scored against the truth |true ΔPSI| > 0.1 beside a Welch t-test on per-cell
PSI (BH, same target). False calls are split into those with true ΔPSI = 0 and those below the
filter's boundary. ``--real`` adds the Smart-seq2 patients (PT039 vs PT084) and 10 random halves of
each patient.

Run: ``python bench/ds_reads_only.py [--real --shared-data ../shared/data]`` (about a minute).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ds_quality import (  # noqa: E402
    DELTA,
    contrast_cells,
    real_patients,
    regime_name,
    simulate_regime,
    true_group_psi,
)
from splicevi.data.layers import layer_or_derived  # noqa: E402
from splicevi.stats import read_test as rt  # noqa: E402
from splicevi.stats.differential import bh_qvalues, confident_change, welch_per_cell  # noqa: E402

TARGET = 0.05


def reads_only_calls(k, n, labels: np.ndarray, cells1: np.ndarray, cells2: np.ndarray):
    """Calls of the reads-only rule for two groups, each stratified by ``labels`` (as the model does)."""
    cells = np.concatenate([cells1, cells2])
    tags = np.array([f"1|{x}" for x in labels[cells1]] + [f"2|{x}" for x in labels[cells2]])
    names, stratum = np.unique(tags, return_inverse=True)
    n_sel = sp.csr_matrix(n)[cells].tocoo()
    k_at = np.asarray(sp.csr_matrix(k)[cells][n_sel.row, n_sel.col]).ravel()
    sums = rt.ReadSums(len(names), n.shape[1])
    sums.add(stratum, n_sel.row, n_sel.col, k_at, n_sel.data)
    rho, overall = sums.overdispersion()
    sums.add_weighted(stratum, n_sel.row, n_sel.col, k_at, n_sel.data, rho)
    counts = np.bincount(stratum, minlength=len(names)).astype(np.float64)
    s1 = np.array([i for i, x in enumerate(names) if x.startswith("1|")])
    s2 = np.array([i for i, x in enumerate(names) if x.startswith("2|")])
    res = rt.read_test(sums, rho, s1, counts[s1], s2, counts[s2])
    bound = confident_change(res.effect, res.se)
    return (bh_qvalues(res.log_pvalue) <= TARGET) & (bound >= DELTA - 1e-12), overall


def run_grid(args) -> list[dict]:
    """Every regime × contrast: the reads-only calls and Welch's against the truth."""
    rows = []
    # The independent generator has a per-ATSE concentration (log-uniform 10-200) instead of one.
    concs = (20, 100) if args.generator == "simulate" else (None,)
    for n_events, frac, observed, conc in itertools.product((300, 2500), (0.1, 0.3), (0.03, 0.15), concs):
        sim = simulate_regime(n_events, frac, observed, conc, args)
        name = regime_name(n_events, frac, observed, conc)
        mdata = sim.to_mudata()
        spl = mdata["splicing"]
        k = layer_or_derived(spl, "cell_by_junction_matrix")
        n = layer_or_derived(spl, "cell_by_cluster_matrix")
        types = mdata.obs["cell_type"].astype(str).to_numpy()
        batch = mdata.obs["batch"].astype(str).to_numpy()
        members, nulls = contrast_cells(types, batch, args.seed)
        for contrast, (c1, c2) in {**members, **nulls}.items():
            if contrast.startswith("null"):
                dpsi = np.zeros(spl.n_vars)
            else:
                dpsi = (
                    (true_group_psi(sim, types, c1) - true_group_psi(sim, types, c2))
                    .loc[spl.var_names]
                    .to_numpy()
                )
            truth = np.abs(dpsi) > DELTA
            calls, overall = reads_only_calls(k, n, types, c1, c2)
            welch = welch_per_cell(k, n, c1, c2).qvalue <= TARGET
            row = {
                "regime": name,
                "observed": observed,
                "contrast": contrast,
                "n_true": int(truth.sum()),
                "reads_true": int((calls & truth).sum()),
                "reads_false": int((calls & ~truth).sum()),
                "reads_false_null": int((calls & (dpsi == 0)).sum()),
                "welch_true": int((welch & truth).sum()),
                "welch_false": int((welch & ~truth).sum()),
                "rho_overall": round(overall, 4),
            }
            rows.append(row)
            print(row, flush=True)
    return rows


def run_real(args) -> dict | None:
    """The real patients and random halves of each (``None`` without the shared data)."""
    mdata = real_patients(args.shared_data)
    if mdata is None:
        return None
    spl = mdata["splicing"]
    k = layer_or_derived(spl, "cell_by_junction_matrix")
    n = layer_or_derived(spl, "cell_by_cluster_matrix")
    patient = mdata.obs["patient"].astype(str).to_numpy()
    c1, c2 = np.nonzero(patient == "PT039")[0], np.nonzero(patient == "PT084")[0]
    calls, overall = reads_only_calls(k, n, patient, c1, c2)
    welch = welch_per_cell(k, n, c1, c2).qvalue <= TARGET
    rng = np.random.default_rng(0)
    same = np.zeros(patient.size, dtype=object)
    same[:] = "one"
    halves = {}
    for name, own in (("PT039", c1), ("PT084", c2)):
        counts = []
        for _ in range(10):
            perm = rng.permutation(own)
            h = perm.size // 2
            counts.append(int(reads_only_calls(k, n, same, perm[:h], perm[h:])[0].sum()))
        halves[name] = counts
    return {
        "reads_calls": int(calls.sum()),
        "welch_calls": int(welch.sum()),
        "shared": int((calls & welch).sum()),
        "rho_overall": round(overall, 4),
        "halves_false_calls": halves,
    }


def markdown(rows: list[dict], real: dict | None, command: str) -> str:
    """The markdown report of a run."""
    lines = [
        "# The reads-only rule alone, beside Welch (`bench/ds_reads_only.py`)",
        "",
        f"Command: `{command}`. No model: the quasi-binomial score test of `stats/read_test.py`, BH at "
        f"{TARGET} with |ΔPSI| − 1.645·se ≥ {DELTA}; truth |true ΔPSI| > {DELTA}. `false (null)`: false calls "
        "whose true ΔPSI is exactly 0 (the rest sit below the filter's boundary).",
        "",
        "| regime | contrast | true junctions | reads-only true / false (null) | Welch true / false | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["reads_true"] / r["welch_true"] if r["welch_true"] else float("nan")
        lines.append(
            f"| {r['regime']} | {r['contrast']} | {r['n_true']} | {r['reads_true']} / {r['reads_false']} "
            f"({r['reads_false_null']}) | {r['welch_true']} / {r['welch_false']} | {ratio:.2f} |"
        )
    if real is not None:
        lines += [
            "",
            f"Real Smart-seq2 patients PT039 vs PT084: reads-only {real['reads_calls']} calls, Welch "
            f"{real['welch_calls']} (shared {real['shared']}; over-all ρ {real['rho_overall']}). Random halves "
            f"(every call false): {real['halves_false_calls']}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the grid (and the real cells), write the JSON and the markdown beside it."""
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/ds_reads_only.json")
    parser.add_argument("--n-cells", type=int, default=1000)
    parser.add_argument("--n-genes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real", action="store_true")
    parser.add_argument(
        "--generator",
        choices=("simulate", "independent"),
        default="simulate",
        help="splicevi.data.simulate (the grid of ds_quality.py) or bench/droplet.py:generate",
    )
    parser.add_argument(
        "--shared-data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    args = parser.parse_args()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    rows = run_grid(args)
    real = run_real(args) if args.real else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"command": command, "rows": rows, "real": real}, indent=1))
    tmp.replace(out)
    md = out.with_suffix(".md")
    md.with_suffix(".md.tmp").write_text(markdown(rows, real, command))
    md.with_suffix(".md.tmp").replace(md)
    print(f"wrote {out} and {md}")


if __name__ == "__main__":
    main()
