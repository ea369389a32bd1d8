"""Which differential-splicing test a comparison gets: its design, the test's name and why.

The units of a valid test depend on where the two groups come from:

* ``labels``: groups from annotations independent of the reads (cell types, a labelled column):
  cells are the units (the model-assisted cell-level test of :mod:`splicevi.stats.differential`
  and the reads-only test of :mod:`splicevi.stats.read_test`);
* ``samples``: groups that are unions of samples (condition, donor): samples are the units;
* ``clusters``: groups found on the same reads (clusters of the model's latent): the test must
  use reads that the clustering did not see.

This module holds the decision and the bookkeeping around it (names, reasons, skipped
comparisons, the table's metadata); the tests themselves live elsewhere. Model-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._constants import EVENT_ID_COLUMN
from .choices import DS_DESIGNS, check_choice

#: Default of ``min_cells``: a group with fewer cells, or fewer cells with splicing reads, is not
#: tested (a handful of cells gives no usable variance, and the model's term dominates).
MIN_CELLS = 10
#: Short human-readable name of each design's test (the table's ``test`` column).
TESTS = {
    "labels": "model-assisted and reads-only (quasi-binomial) cell-level tests",
    "samples": "pseudobulk Dirichlet-multinomial LRT over samples",
    "clusters": "held-out reads (count splitting)",
}
#: Key of ``DataFrame.attrs`` with the design, the test and the reason.
ATTRS_KEY = "splicevi_ds"

#: Columns of an empty (skipped) table, per level: those every design's table carries.
JUNCTION_COLUMNS = (
    "proba_ds",
    "bayes_factor",
    "lfdr",
    "lfdr_qvalue",
    "pvalue",
    "qvalue",
    "is_ds_fdr",
    "effect_size",
    "effect_se",
    "df",
    "log10_pvalue",
    "log10_lfdr",
    "est_psi1",
    "est_psi2",
    "emp_psi1",
    "emp_psi2",
    "emp_effect",
    "n_obs_group1",
    "n_obs_group2",
    "junction_id",
    EVENT_ID_COLUMN,
    "gene_name",
)
EVENT_COLUMNS = (
    EVENT_ID_COLUMN,
    "gene_name",
    "best_junction",
    "effect_size",
    "max_abs_dpsi",
    "proba_ds",
    "bayes_factor",
    "lfdr",
    "lfdr_qvalue",
    "log10_lfdr",
    "pvalue",
    "qvalue",
    "log10_pvalue",
    "is_ds_fdr",
    "n_junctions",
    "emp_max_abs_dpsi",
    "n_obs_group1",
    "n_obs_group2",
)


@dataclass(frozen=True)
class DesignChoice:
    """The design of one comparison, the name of its test and why it was chosen."""

    design: str
    test: str
    reason: str
    skipped: bool = False

    def attrs(self) -> dict:
        """The table's ``attrs[ATTRS_KEY]``."""
        out = {"design": self.design, "test": self.test, "reason": self.reason}
        if self.skipped:
            out["skipped"] = True
        return out


def too_few_cells(
    cells1: np.ndarray, cells2: np.ndarray, with_reads: np.ndarray, min_cells: int
) -> str | None:
    """Why a comparison cannot be tested (a group below ``min_cells`` cells or observing cells); else None.

    Parameters
    ----------
    cells1, cells2
        Integer indices of the groups' cells.
    with_reads
        Per cell of the data: whether it has any splicing read.
    min_cells
        Cells, and cells with splicing reads, each group needs.
    """
    problems = []
    for name, cells in (("group1", cells1), ("group2", cells2)):
        n_cells = int(np.asarray(cells).size)
        n_obs = int(np.asarray(with_reads)[np.asarray(cells, dtype=np.int64)].sum()) if n_cells else 0
        if n_cells < min_cells:
            problems.append(f"{name} has {n_cells} cells")
        elif n_obs < min_cells:
            problems.append(f"{name} has {n_obs} cells with splicing reads (of {n_cells})")
    if not problems:
        return None
    return f"{' and '.join(problems)}, fewer than min_cells={min_cells}"


def describe_samples(samples: np.ndarray, cells1: np.ndarray, cells2: np.ndarray) -> tuple[int, int, int]:
    """Samples of group 1, of group 2, and samples with cells in both groups."""
    samples = np.asarray(samples, dtype=object)
    s1 = {str(x) for x in samples[np.asarray(cells1, dtype=np.int64)] if not pd.isna(x)}
    s2 = {str(x) for x in samples[np.asarray(cells2, dtype=np.int64)] if not pd.isna(x)}
    return len(s1), len(s2), len(s1 & s2)


def choose_design(
    design: str,
    nested: bool | None,
    sample_info: tuple[int, int, int] | None,
    sample_key: str,
    clusters: Callable[[], tuple[bool, float]],
    recorded_clustering: str | None = None,
    has_heldout_reads: bool = False,
    tests: dict[str, str] | None = None,
    held_out: str = "reads",
) -> DesignChoice:
    """The design of one comparison (``design`` ``auto``: the rule of this module's docs).

    Parameters
    ----------
    design
        The requested design (one of :data:`splicevi.stats.choices.DS_DESIGNS`).
    nested
        Whether every sample lies inside one group with at least two samples per group
        (``None``: no sample labels).
    sample_info
        :func:`describe_samples` of the comparison (for the reason).
    sample_key
        Name of the sample annotation (for the reason).
    clusters
        Called (``auto`` only, when samples do not decide) to ask whether the groups look like
        clusters of the model's latent: ``(answer, score)``. ``NotImplementedError`` means the
        check is not available.
    recorded_clustering
        Why the grouping is known to be a clustering (e.g. ``"scanpy's leiden parameters in
        uns['leiden']"``), or ``None``.
    has_heldout_reads
        Whether the data hold held-out reads (:func:`splicevi.data.thinning.split_reads`; for
        differential expression: held-out gene counts).
    tests
        Name of each design's test (default :data:`TESTS`, those of differential splicing;
        differential expression passes its own).
    held_out
        What is held out, in the reasons: ``reads`` (splicing) or ``gene counts``.

    Notes
    -----
    With ``auto`` a grouping recorded as a clustering is always a ``clusters`` design. A grouping
    that the latent merely predicts almost perfectly may be a clustering or a well-separated
    annotated cell type, which no statistic of the data can tell apart: it is tested on the
    held-out reads where the data have them (valid either way), and otherwise with cells as units
    and a warning in the reason (pass ``design="clusters"`` or ``design="labels"`` to decide).
    """
    check_choice("design", design, DS_DESIGNS)
    tests = TESTS if tests is None else tests
    if design != "auto":
        return DesignChoice(design, tests[design], f"design={design!r} given explicitly")
    if nested:
        n1, n2, _ = sample_info
        return DesignChoice(
            "samples",
            tests["samples"],
            f"every sample of {sample_key} lies inside one group ({n1} vs {n2} samples): samples are the units",
        )
    if sample_info is None:
        why_not = "no sample labels"
    else:
        n1, n2, shared = sample_info
        why_not = (
            f"{shared} sample(s) of {sample_key} have cells in both groups"
            if shared
            else f"{n1} vs {n2} samples of {sample_key} (samples need at least 2 per group)"
        )
    if recorded_clustering is not None:
        return DesignChoice(
            "clusters",
            tests["clusters"],
            f"{why_not}; the groups are a clustering ({recorded_clustering}): testing on {held_out} the "
            "clustering did not see",
        )
    try:
        looks, score = clusters()
    except NotImplementedError:
        looks, cluster_note = False, "cluster check not available"
    else:
        cluster_note = f"groups do not look like clusters of the latent (score {score:.3g})"
        if looks and has_heldout_reads:
            return DesignChoice(
                "clusters",
                tests["clusters"],
                f"{why_not}; the model's latent separates the groups almost perfectly (score {score:.3g}) "
                f"and the data hold held-out {held_out}: testing on {held_out} the clustering did not see",
            )
        if looks:
            cluster_note = (
                f"WARNING: the model's latent separates the groups almost perfectly (score {score:.3g}); "
                f"if they are clusters found on these {held_out} this test double-dips: split the {held_out} "
                "before clustering (README: 'Differential splicing of clusters you found yourself') and pass "
                "design='clusters'; for annotated cell types pass design='labels' to silence this"
            )
    return DesignChoice("labels", tests["labels"], f"{why_not}; {cluster_note}: cells are the units")


def recorded_clustering(uns_mappings: list, groupby: str | None) -> str | None:
    """Why ``groupby`` is known to be a clustering, from what the tools that made it recorded.

    scanpy's ``tl.leiden`` / ``tl.louvain`` write ``uns[key_added]["params"]`` with the resolution;
    ``splicevi cluster`` records its key in ``uns["splicevi_provenance"]["cluster"]["key"]``.

    Parameters
    ----------
    uns_mappings
        The ``uns`` of the MuData and of its modalities (or of the AnnData).
    groupby
        The grouping column (``None``: explicit cell indices, nothing recorded).
    """
    if groupby is None:
        return None
    for uns in uns_mappings:
        entry = uns.get(groupby)
        params = entry.get("params") if isinstance(entry, dict) else None
        if isinstance(params, dict) and ("resolution" in params or "n_clusters" in params):
            return f"clustering parameters in uns[{groupby!r}]['params']"
        cluster = (
            uns.get("splicevi_provenance", {}).get("cluster", {})
            if isinstance(uns.get("splicevi_provenance"), dict)
            else {}
        )
        if isinstance(cluster, dict) and cluster.get("key") == groupby:
            return f"made by `splicevi cluster` (uns['splicevi_provenance']['cluster'], {cluster.get('reads', 'all')} reads)"
    return None


def empty_table(level: str) -> pd.DataFrame:
    """A table with the standard columns of ``level`` and no rows (a skipped comparison)."""
    cols = JUNCTION_COLUMNS if level == "junction" else EVENT_COLUMNS
    index = pd.Index([], name="junction_id" if level == "junction" else EVENT_ID_COLUMN)
    return pd.DataFrame(
        {c: pd.Series([], dtype=bool if c == "is_ds_fdr" else object) for c in cols}, index=index
    )


#: Bounds of the effect and PSI columns: rounding of float32 decoder outputs can leave a value a
#: hair outside them (e.g. an effect of 1.0000000596).
_BOUNDS = {
    "effect_size": (-1.0, 1.0),
    "emp_effect": (-1.0, 1.0),
    "max_abs_dpsi": (0.0, 1.0),
    "emp_max_abs_dpsi": (0.0, 1.0),
    "est_psi1": (0.0, 1.0),
    "est_psi2": (0.0, 1.0),
    "emp_psi1": (0.0, 1.0),
    "emp_psi2": (0.0, 1.0),
}


def finish_table(table: pd.DataFrame, choice: DesignChoice) -> pd.DataFrame:
    """Clip effects and PSI to their ranges, add ``design`` / ``test`` and ``attrs[ATTRS_KEY]``.

    A ``test`` column or ``attrs`` the design's own test set (more precise) are kept.
    """
    table = table.copy()
    for col, (lo, hi) in _BOUNDS.items():
        if col in table.columns and len(table):
            table[col] = np.clip(pd.to_numeric(table[col], errors="coerce"), lo, hi)
    own = dict(table.attrs.get(ATTRS_KEY, {}))
    test = own.get("test") or (
        str(table["test"].iloc[0]) if "test" in table.columns and len(table) else choice.test
    )
    table["design"] = choice.design
    table["test"] = test
    attrs = choice.attrs()
    attrs["test"] = test
    for key, value in own.items():
        attrs.setdefault(key, value)
    table.attrs[ATTRS_KEY] = attrs
    return table


def combined_attrs(per_comparison: dict[str, dict]) -> dict:
    """``attrs[ATTRS_KEY]`` of a table stacking several comparisons."""
    designs = {a["design"] for a in per_comparison.values()}
    tests = {a["test"] for a in per_comparison.values()}
    return {
        "design": designs.pop() if len(designs) == 1 else "mixed",
        "test": tests.pop() if len(tests) == 1 else "mixed",
        "reason": "; ".join(f"{name}: {a['reason']}" for name, a in per_comparison.items()),
        "comparisons": per_comparison,
    }
