"""Simulator of single-cell gene counts and junction counts with planted truth.

The simulated cells belong to cell types. Types differ in expression programs and in splicing;
the last two types share one expression program and differ *only* in splicing, so a model that
ignores splicing cannot separate them. Differential-splicing (DS) events have a known ΔPSI between
types. Junction counts are overdispersed (Dirichlet-multinomial given the event's total), and
coverage is sparse and follows the expression of the event's gene and the cell's depth, so the
fraction of observed (cell, ATSE) pairs is set by ``observed_fraction`` (≈0.15 Smart-seq2-like,
≈0.03 droplet-like).

Every junction has real genomic coordinates, laid out so that the ATSE grouping of
:mod:`splicevi.data.atse` (connected components of shared splice sites) recovers the planted events
exactly: events are either alternative acceptors/donors sharing one site, or exon-skipping triplets
(a chain A–B–C of sites).

Samples (donors) and conditions are optional (``n_samples > 0``). Each cell then belongs to a sample
(obs ``sample``), and each sample to a condition (obs ``condition``: the first half of the samples
``control``, the rest ``treated``). A sample's PSI differs from its cell type's: per sample, cell type
and ATSE, the sample's junction usage is a Dirichlet draw with concentration
``sample_concentration`` around the type's PSI (lower = more donor-to-donor variation), and its
expression gets a gene-wise log-fold change of sd ``sample_lfc``. A fraction
``frac_condition_events`` of the ATSEs move in the treated samples (in every cell type); the truth is
in ``junctions["true_dpsi_condition"]`` (treated − control, cell types weighted by their cell counts)
and ``events["is_condition_ds"]``. These draws use their own random stream, so without samples the
output is the same as before the option existed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import EVENT_ID_COLUMN
from .layers import event_codes, splicing_layers


@dataclass
class SimulatedData:
    """Output of :func:`simulate`.

    Attributes
    ----------
    gene_counts
        Cells × genes raw counts (CSR, float32).
    junction_counts
        Cells × junctions read counts ``k`` (CSR, float32).
    obs
        Per cell: ``cell_id`` index, ``cell_type``, ``batch``, ``library_depth`` (and ``sample``,
        ``condition`` with samples).
    genes
        Per gene: ``gene_id`` index, ``gene_name``.
    junctions
        Per junction: ``junction_id`` index, ``chrom``, ``start``, ``end`` (1-based intron), ``strand``,
        ``motif``, ``annotated``, ``event_id``, ``gene_id``, ``gene_name``, ``is_ds`` and
        ``true_psi_<type>`` per type (with samples: ``true_dpsi_condition``, ``is_condition_ds``).
    events
        Per event: ``event_id`` index, ``gene_id``, ``is_ds``, ``ds_types`` (types whose PSI differs
        from the base), ``max_abs_dpsi`` between any two types.
    type_psi
        Types × junctions true PSI.
    sample_psi
        With samples: samples × types × junctions PSI of each sample (donor draws, condition
        effect included); else ``None``.
    params
        The arguments the simulation was made with.
    """

    gene_counts: sp.csr_matrix
    junction_counts: sp.csr_matrix
    obs: pd.DataFrame
    genes: pd.DataFrame
    junctions: pd.DataFrame
    events: pd.DataFrame
    type_psi: np.ndarray
    params: dict = field(default_factory=dict)
    sample_psi: np.ndarray | None = None

    def true_dpsi(self, type1: str, type2: str) -> pd.Series:
        """True ΔPSI (type1 − type2) per junction."""
        return self.junctions[f"true_psi_{type1}"] - self.junctions[f"true_psi_{type2}"]

    def to_mudata(self, with_expression: bool = True) -> md.MuData:
        """MuData in the project's data contract (``rna`` and ``splicing`` modalities)."""
        return to_mudata(self, with_expression=with_expression)


def simulate(
    n_cells: int = 600,
    n_genes: int = 300,
    n_events: int = 200,
    n_types: int = 4,
    n_batches: int = 1,
    frac_ds_events: float = 0.3,
    min_dpsi: float = 0.25,
    observed_fraction: float = 0.15,
    mean_event_reads: float = 12.0,
    dm_concentration: float = 20.0,
    expression_lfc: float = 1.5,
    frac_de_genes: float = 0.2,
    batch_lfc: float = 0.3,
    mean_library: float = 5000.0,
    seed: int = 0,
    n_samples: int = 0,
    sample_concentration: float = 10.0,
    sample_lfc: float = 0.3,
    frac_condition_events: float = 0.0,
    condition_min_dpsi: float | None = None,
) -> SimulatedData:
    """Simulate gene and junction counts with planted cell types and DS events.

    Parameters
    ----------
    n_cells, n_genes, n_events
        Sizes. Each event lies in one gene; ``n_events`` may exceed ``n_genes`` (several events a gene).
    n_types
        Number of cell types (≥ 2). Types ``n_types-2`` and ``n_types-1`` share one expression program
        and differ only in splicing (when ``n_types ≥ 3``).
    n_batches
        Number of batches; each adds a gene-wise log-fold change of sd ``batch_lfc`` to expression.
    frac_ds_events
        Fraction of events whose PSI differs between types.
    min_dpsi
        Minimum |ΔPSI| of the junction moved in a DS event between the types that differ.
    observed_fraction
        Target fraction of (cell, event) pairs with at least one read.
    mean_event_reads
        Mean total reads of an observed event (zero-truncated negative binomial).
    dm_concentration
        Dirichlet-multinomial concentration of the junction counts (lower = more overdispersed).
    expression_lfc
        Standard deviation of type-specific log-fold changes on the DE genes.
    frac_de_genes
        Fraction of genes with type-specific expression.
    batch_lfc
        Standard deviation of batch log-fold changes.
    mean_library
        Mean total gene counts per cell.
    seed
        Random seed.
    n_samples
        Samples (donors) the cells are spread over (0: none, no ``sample``/``condition`` columns).
        The first ``ceil(n_samples / 2)`` are ``control``, the rest ``treated``.
    sample_concentration
        Dirichlet concentration of a sample's PSI around its cell type's PSI, per ATSE (lower =
        more sample-to-sample variation).
    sample_lfc
        Standard deviation of the per-sample, per-gene expression log-fold change.
    frac_condition_events
        Fraction of ATSEs whose PSI moves in the treated samples (a planted condition effect).
    condition_min_dpsi
        Minimum ΔPSI moved by the condition effect (default ``min_dpsi``).

    Returns
    -------
    SimulatedData
    """
    if n_types < 2:
        raise ValueError("n_types must be at least 2")
    if not 0 < observed_fraction <= 1:
        raise ValueError("observed_fraction must be in (0, 1]")
    if n_samples < 0 or (0 < n_samples < 2):
        raise ValueError("n_samples must be 0 (no samples) or at least 2")
    if n_samples and sample_concentration <= 0:
        raise ValueError("sample_concentration must be positive")
    if not 0 <= frac_condition_events <= 1:
        raise ValueError("frac_condition_events must be in [0, 1]")
    params = dict(locals())
    rng = np.random.default_rng(seed)
    types = [f"type{t}" for t in range(n_types)]
    cell_type = rng.integers(0, n_types, size=n_cells)
    batch = rng.integers(0, n_batches, size=n_cells)
    # Samples draw from their own stream: the default output does not change with these options.
    rng_s = np.random.default_rng([seed, 18])
    sample = rng_s.integers(0, n_samples, size=n_cells) if n_samples else None

    # --- expression -------------------------------------------------------------------------
    base_log_mu = rng.normal(0.0, 1.2, size=n_genes)
    n_programs = n_types - 1 if n_types >= 3 else n_types
    program_of_type = np.minimum(np.arange(n_types), n_programs - 1)
    de = rng.random((n_programs, n_genes)) < frac_de_genes
    lfc = np.where(de, rng.normal(0.0, expression_lfc, size=(n_programs, n_genes)), 0.0)
    batch_effect = (
        rng.normal(0.0, batch_lfc, size=(n_batches, n_genes)) if n_batches > 1 else np.zeros((1, n_genes))
    )
    log_mu = base_log_mu[None, :] + lfc[program_of_type[cell_type]] + batch_effect[batch]
    if n_samples:
        log_mu = log_mu + rng_s.normal(0.0, sample_lfc, size=(n_samples, n_genes))[sample]
    rho = np.exp(log_mu)
    rho /= rho.sum(axis=1, keepdims=True)
    library = rng.lognormal(np.log(mean_library), 0.35, size=n_cells)
    mean = rho * library[:, None]
    theta = 5.0
    gene_counts = rng.poisson(rng.gamma(theta, mean / theta)).astype(np.float32)

    # --- splicing structure -----------------------------------------------------------------
    event_gene = np.sort(rng.integers(0, n_genes, size=n_events))
    n_junc = rng.choice([2, 2, 2, 3, 3, 4], size=n_events)
    kind = rng.choice(["alt_acceptor", "alt_donor", "skip"], size=n_events, p=[0.35, 0.25, 0.4])
    n_junc[kind == "skip"] = 3
    rows = []
    chrom_of_gene = np.array([f"chr{1 + g % 5}" for g in range(n_genes)])
    strand_of_gene = np.where(rng.random(n_genes) < 0.5, "+", "-")
    pos = {c: 10_000 for c in np.unique(chrom_of_gene)}
    for e in range(n_events):
        g = event_gene[e]
        chrom = chrom_of_gene[g]
        s = pos[chrom] + int(rng.integers(200, 2000))
        m = int(n_junc[e])
        if kind[e] == "alt_acceptor":
            ends = s + 300 + np.sort(rng.choice(np.arange(1, 60), size=m, replace=False)) * 37
            coords = [(s, int(x)) for x in ends]
        elif kind[e] == "alt_donor":
            end = s + 4000
            starts = s + np.sort(rng.choice(np.arange(1, 60), size=m, replace=False)) * 37
            coords = [(int(x), end) for x in starts]
        else:  # exon skipping: A-B, C-D, A-D with B < C (chain of sites)
            b = s + 500 + int(rng.integers(0, 500))
            c = b + 100 + int(rng.integers(0, 200))
            d = c + 500 + int(rng.integers(0, 500))
            coords = [(s, b), (c, d), (s, d)]
        pos[chrom] = max(x[1] for x in coords) + 1000
        for j, (a, b_) in enumerate(coords):
            rows.append((chrom, a, b_, strand_of_gene[g], e, g, j))
    junctions = pd.DataFrame(rows, columns=["chrom", "start", "end", "strand", "event", "gene", "rank"])
    n_junctions = len(junctions)
    junctions["motif"] = np.where(junctions["strand"] == "+", 1, 2)
    junctions["annotated"] = (rng.random(n_junctions) < 0.8).astype(int)
    gene_ids = np.array([f"SIMG{g:05d}" for g in range(n_genes)])
    gene_names = np.array([f"Gene{g}" for g in range(n_genes)])
    junctions[EVENT_ID_COLUMN] = [f"E{e:05d}" for e in junctions["event"]]
    junctions["gene_id"] = gene_ids[junctions["gene"].to_numpy()]
    junctions["gene_name"] = gene_names[junctions["gene"].to_numpy()]
    junctions.index = pd.Index(
        [
            f"{c}:{a}-{b}:{s}"
            for c, a, b, s in junctions[["chrom", "start", "end", "strand"]].itertuples(index=False)
        ],
        name="junction_id",
    )

    # --- PSI per type -----------------------------------------------------------------------
    j_event = junctions["event"].to_numpy()
    j_rank = junctions["rank"].to_numpy()
    starts = np.searchsorted(j_event, np.arange(n_events))
    type_psi = np.zeros((n_types, n_junctions))
    is_ds = rng.random(n_events) < frac_ds_events
    ds_types_of_event = []
    # Types n-2 and n-1 differ only in splicing: half of the DS events move the last type alone.
    for e in range(n_events):
        sl = slice(starts[e], starts[e] + n_junc[e])
        base = rng.dirichlet(np.full(n_junc[e], 2.0))
        psi = np.tile(base, (n_types, 1))
        moved: list[int] = []
        if is_ds[e]:
            n_moved = int(rng.integers(1, max(2, n_types // 2) + 1))
            if n_types >= 3 and rng.random() < 0.5:
                moved = [n_types - 1]
            else:
                moved = sorted(rng.choice(n_types, size=n_moved, replace=False).tolist())
            for t in moved:
                psi[t] = _shift_psi(base, min_dpsi, rng)
        type_psi[:, sl] = psi
        ds_types_of_event.append(",".join(types[t] for t in moved))
    for t, name in enumerate(types):
        junctions[f"true_psi_{name}"] = type_psi[t]
    junctions["is_ds"] = is_ds[j_event] & (np.ptp(type_psi, axis=0) > 1e-9)
    sample_psi = None
    if n_samples:
        sample_psi, cond_dpsi, is_cond = _sample_psi(
            type_psi,
            starts,
            n_junc,
            cell_type,
            n_samples,
            sample_concentration,
            frac_condition_events,
            min_dpsi if condition_min_dpsi is None else condition_min_dpsi,
            rng_s,
        )
        junctions["true_dpsi_condition"] = cond_dpsi
        junctions["is_condition_ds"] = is_cond[j_event] & (np.abs(cond_dpsi) > 1e-9)
    events = pd.DataFrame(
        {
            "gene_id": gene_ids[event_gene],
            "kind": kind,
            "n_junctions": n_junc,
            "is_ds": is_ds,
            "ds_types": ds_types_of_event,
            "max_abs_dpsi": np.array(
                [
                    np.ptp(type_psi[:, starts[e] : starts[e] + n_junc[e]], axis=0).max()
                    for e in range(n_events)
                ]
            ),
        },
        index=pd.Index([f"E{e:05d}" for e in range(n_events)], name=EVENT_ID_COLUMN),
    )
    if n_samples:
        events["is_condition_ds"] = is_cond
        events["max_abs_dpsi_condition"] = np.maximum.reduceat(np.abs(cond_dpsi), starts)

    # --- coverage and junction counts -------------------------------------------------------
    expr = mean[:, event_gene]  # cells × events expected gene counts
    depth = rng.lognormal(0.0, 0.5, size=n_cells)[:, None]
    weight = np.sqrt(expr) * depth
    scale = _calibrate(weight, observed_fraction)
    p_obs = 1.0 - np.exp(-scale * weight)
    observed = rng.random(p_obs.shape) < p_obs
    cells_idx, events_idx = np.nonzero(observed)
    # Total reads of an observed event: 1 + NB with mean following expression.
    w = weight[cells_idx, events_idx]
    mu_n = np.maximum(mean_event_reads * w / w.mean() - 1.0, 0.05)
    totals = 1 + rng.poisson(rng.gamma(2.0, mu_n / 2.0))
    # Dirichlet-multinomial junction counts within each observed (cell, event).
    k_rows, k_cols, k_vals = [], [], []
    for m in np.unique(n_junc):
        sel = n_junc[events_idx] == m
        if not sel.any():
            continue
        ce, ee, nn = cells_idx[sel], events_idx[sel], totals[sel]
        cols = starts[ee][:, None] + np.arange(m)[None, :]
        if sample_psi is None:
            psi = type_psi[cell_type[ce][:, None], cols]
        else:
            psi = sample_psi[sample[ce][:, None], cell_type[ce][:, None], cols]
        alpha = np.maximum(psi * dm_concentration, 1e-3)
        p = rng.gamma(alpha)
        p /= p.sum(axis=1, keepdims=True)
        counts = _multinomial_rows(nn, p, rng)
        nz = counts > 0
        k_rows.append(np.broadcast_to(ce[:, None], counts.shape)[nz])
        k_cols.append(cols[nz])
        k_vals.append(counts[nz])
    junction_counts = sp.csr_matrix(
        (np.concatenate(k_vals).astype(np.float32), (np.concatenate(k_rows), np.concatenate(k_cols))),
        shape=(n_cells, n_junctions),
    )
    cell_ids = [f"cell{i:06d}" for i in range(n_cells)]
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([types[t] for t in cell_type], categories=types),
            "batch": pd.Categorical([f"batch{b}" for b in batch]),
            "library_depth": depth[:, 0],
        },
        index=pd.Index(cell_ids, name="cell_id"),
    )
    if n_samples:
        names = sample_names(n_samples)
        obs["sample"] = pd.Categorical([names[s] for s in sample], categories=names)
        cond = sample_conditions(n_samples)
        obs["condition"] = pd.Categorical([cond[s] for s in sample], categories=["control", "treated"])
    genes = pd.DataFrame({"gene_name": gene_names}, index=pd.Index(gene_ids, name="gene_id"))
    junctions = junctions.drop(columns=["event", "gene", "rank"])
    return SimulatedData(
        gene_counts=sp.csr_matrix(gene_counts),
        junction_counts=junction_counts,
        obs=obs,
        genes=genes,
        junctions=junctions,
        events=events,
        type_psi=type_psi,
        params=params,
        sample_psi=sample_psi,
    )


def sample_names(n_samples: int) -> list[str]:
    """Sample ids of a simulated cohort (valid sample-sheet ids)."""
    return [f"sample{s + 1}" for s in range(n_samples)]


def sample_conditions(n_samples: int) -> list[str]:
    """Condition of each simulated sample: the first ``ceil(n / 2)`` control, the rest treated."""
    n_control = (n_samples + 1) // 2
    return ["control" if s < n_control else "treated" for s in range(n_samples)]


def _sample_psi(type_psi, starts, n_junc, cell_type, n_samples, concentration, frac_events, min_dpsi, rng):
    """Per-sample PSI (samples × types × junctions): condition shift, then a Dirichlet draw per ATSE.

    Returns the PSI, the true condition ΔPSI per junction (treated − control, types weighted by
    their cell counts) and the planted events.
    """
    n_types, n_junctions = type_psi.shape
    n_events = starts.size
    treated = type_psi.copy()
    planted = rng.random(n_events) < frac_events
    for e in np.nonzero(planted)[0]:
        sl = slice(starts[e], starts[e] + n_junc[e])
        psi = treated[:, sl]  # view
        i = int(np.argmax(psi.mean(axis=0)))  # move mass away from the most used junction
        j = int(rng.choice([x for x in range(n_junc[e]) if x != i]))
        amount = rng.uniform(min_dpsi, min_dpsi + 0.15)
        move = np.minimum(amount, np.maximum(psi[:, i] - 0.02, 0.0))
        psi[:, i] -= move
        psi[:, j] += move
    weights = np.bincount(cell_type, minlength=n_types) / max(cell_type.size, 1)
    cond_dpsi = weights @ (treated - type_psi)
    conditions = sample_conditions(n_samples)
    out = np.empty((n_samples, n_types, n_junctions))
    for s in range(n_samples):
        base = treated if conditions[s] == "treated" else type_psi
        for m in np.unique(n_junc):
            ev = np.nonzero(n_junc == m)[0]
            cols = starts[ev][:, None] + np.arange(m)[None, :]  # events × m
            alpha = np.maximum(base[:, cols] * concentration, 1e-3)  # types × events × m
            draw = rng.gamma(alpha)
            draw /= np.maximum(draw.sum(axis=2, keepdims=True), 1e-300)
            out[s][:, cols] = draw
    return out, cond_dpsi, planted


def _shift_psi(base: np.ndarray, min_dpsi: float, rng: np.random.Generator) -> np.ndarray:
    """Move mass between two junctions of an event so that one changes by at least ``min_dpsi``."""
    psi = base.copy()
    i, j = rng.choice(len(psi), size=2, replace=False)
    # Move from the junction with more mass towards the other, as far as possible.
    if psi[i] < psi[j]:
        i, j = j, i
    amount = max(min_dpsi, rng.uniform(min_dpsi, max(min_dpsi, 0.9 * psi[i])))
    amount = min(amount, psi[i] - 0.02)
    if amount < min_dpsi:  # base too flat to move that much: give j most of the mass instead
        psi = np.full_like(psi, 0.05 / max(len(psi) - 1, 1))
        psi[j] = 0.95
        psi[i] = 0.05 / max(len(psi) - 1, 1) if len(psi) > 1 else psi[i]
        psi /= psi.sum()
        return psi
    psi[i] -= amount
    psi[j] += amount
    return psi


def _calibrate(weight: np.ndarray, target: float) -> float:
    """Scale ``s`` such that the mean of ``1 - exp(-s * weight)`` is ``target`` (bisection)."""
    lo, hi = 1e-8, 1e4
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        if np.mean(1.0 - np.exp(-mid * weight)) < target:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def _multinomial_rows(n: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One multinomial draw per row (vectorised via sequential binomials)."""
    out = np.zeros(p.shape, dtype=np.int64)
    remaining = n.astype(np.int64).copy()
    mass_left = np.ones(p.shape[0])
    for col in range(p.shape[1] - 1):
        q = np.clip(p[:, col] / np.maximum(mass_left, 1e-12), 0.0, 1.0)
        draw = rng.binomial(remaining, q)
        out[:, col] = draw
        remaining -= draw
        mass_left -= p[:, col]
    out[:, -1] = remaining
    return out


def to_mudata(sim: SimulatedData, with_expression: bool = True) -> md.MuData:
    """MuData in the project's data contract from a :class:`SimulatedData`."""
    codes, _ = event_codes(sim.junctions[EVENT_ID_COLUMN])
    layers = splicing_layers(sim.junction_counts, codes)
    var = sim.junctions.copy()
    var["n_cells_observed"] = np.asarray((layers["psi_mask"] > 0).sum(axis=0)).ravel()
    splicing = ad.AnnData(X=layers["junc_ratio"].copy(), obs=sim.obs.copy(), var=var, layers=layers)
    mods = {"splicing": splicing}
    if with_expression:
        mods["rna"] = ad.AnnData(X=sim.gene_counts.copy(), obs=sim.obs.copy(), var=sim.genes.copy())
    mdata = md.MuData(mods)
    for col in sim.obs.columns:
        mdata.obs[col] = sim.obs[col].reindex(mdata.obs_names).to_numpy()
        if isinstance(sim.obs[col].dtype, pd.CategoricalDtype):
            mdata.obs[col] = pd.Categorical(mdata.obs[col], categories=sim.obs[col].cat.categories)
    mdata.uns["splicevi_provenance"] = {
        "source": "splicevi.data.simulate",
        "params": {k: str(v) for k, v in sim.params.items()},
    }
    return mdata
