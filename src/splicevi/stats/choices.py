"""The choices of the differential analyses' options, each list defined once.

The model's ``differential_splicing`` / ``differential_expression`` check their arguments against
these (:func:`check_choice`), and the CLI's ``choices`` and the workflow config's check are read from
them, so a new design or FDR method is added here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Values of ``differential_splicing(design=...)``: ``auto`` picks per comparison
#: (:func:`splicevi.stats.design.choose_design`).
DS_DESIGNS = ("auto", "labels", "clusters", "samples")
#: Values of ``differential_expression(design=...)``.
DE_DESIGNS = ("auto", "labels", "clusters", "samples")
#: ``change`` (an effect of at least ``delta``) or ``vanilla`` (any effect) tests.
MODES = ("change", "vanilla")
#: How ``is_ds_fdr`` is decided: ``bh`` (Benjamini–Hochberg q-values of the point-null p-values,
#: and in ``change`` mode a confident |ΔPSI| of at least ``delta``), ``interval`` (Benjamini–Hochberg
#: q-values of the interval-null p-values of the model-assisted test and of the reads-only score
#: test: the FDR of "|ΔPSI| > delta" itself), ``lfdr`` (mean local FDR of the calls under the
#: fitted prior, with the t-statistic's own likelihood) or ``bh_lfdr`` (the ``bh`` calls and the
#: ``lfdr`` calls together).
FDR_METHODS = ("bh", "interval", "lfdr", "bh_lfdr")
#: Levels of a DS table: one row per junction or per event (ATSE).
LEVELS = ("junction", "event")
#: What the DS group means are taken of: the Dirichlet-multinomial posterior mean or the decoded PSI.
NORM_SPLICING_FUNCTIONS = ("dm_posterior_mean", "decoded")


def check_choice(name: str, value, choices: Iterable) -> None:
    """Raise ``ValueError`` naming the option and its choices when ``value`` is not one of them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
