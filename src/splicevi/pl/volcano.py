"""Volcano plots of differential splicing (ΔPSI) or expression (log fold change) against the evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._utils import empty_figure, grid

#: Columns per kind: (effect, probability, FDR call prefix, label columns, x-axis label).
KINDS = {
    "ds": ("effect_size", "proba_ds", "is_ds_fdr", ("gene_name", "junction_id"), "ΔPSI (group1 − group2)"),
    "de": ("lfc_mean", "proba_de", "is_de_fdr", ("gene_name", "gene_id"), "log fold change (group1 vs group2)"),
}


def volcano(table: pd.DataFrame, kind: str = "ds", n_labels: int = 5, eps: float = 1e-4, max_panels: int = 24):
    """One volcano panel per contrast: effect against the log-odds of the posterior probability.

    Parameters
    ----------
    table
        A ``splicevi ds`` (per-junction or per-ATSE) or ``splicevi de`` table: one row per feature and
        contrast (column ``contrast``).
    kind
        ``"ds"`` or ``"de"`` (selects the columns, see ``KINDS``).
    n_labels
        Best features labelled per panel.
    eps
        Probabilities are clipped to ``[eps, 1 - eps]`` before the log-odds.
    max_panels
        At most this many contrasts are drawn (the first ones).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    effect, proba, call_prefix, label_cols, xlabel = KINDS[kind]
    if effect not in table.columns and kind == "ds" and {"est_psi1", "est_psi2"} <= set(table.columns):
        table = table.assign(effect_size=table["est_psi1"] - table["est_psi2"])
    if effect not in table.columns and kind == "de":
        effect = next((c for c in ("lfc_median", "effect_size") if c in table.columns), effect)
    for col in (effect, proba):
        if col not in table.columns:
            raise ValueError(f"{kind} table lacks column '{col}' (columns: {', '.join(map(str, table.columns))})")
    if table.empty:
        return empty_figure("no features tested")
    call = next((c for c in table.columns if str(c).startswith(call_prefix)), None)
    label_col = next((c for c in label_cols if c in table.columns), None)
    if "contrast" not in table.columns:
        table = table.assign(contrast="all")
    contrasts = list(pd.unique(table["contrast"]))[:max_panels]
    fig, axes = grid(len(contrasts), ncols=3, size=(4.2, 3.6))
    for ax, name in zip(axes, contrasts, strict=True):
        t = table[table["contrast"] == name]
        x = t[effect].to_numpy(dtype=float)
        if kind == "ds" and "log10_pvalue" in t.columns:
            # −log10 p keeps resolving strong from very strong evidence where a clipped
            # probability would pile every strong call onto one line.
            y, ylabel = -t["log10_pvalue"].to_numpy(dtype=float), "−log10 p-value (|ΔPSI| > delta)"
        else:
            p = np.clip(t[proba].to_numpy(dtype=float), eps, 1 - eps)
            y, ylabel = np.log10(p / (1 - p)), f"log10 odds of {proba}"
        hit = t[call].to_numpy(dtype=bool) if call else np.zeros(len(t), dtype=bool)
        ax.scatter(x[~hit], y[~hit], s=6, color="0.65", linewidths=0, rasterized=True, label="not called")
        ax.scatter(x[hit], y[hit], s=10, color="tab:red", linewidths=0, rasterized=True, label=f"called ({hit.sum()})")
        if label_col is not None and len(t):
            best = np.argsort(-(y + 1e-3 * np.abs(x)), kind="stable")[:n_labels]
            for i in best:
                ax.annotate(str(t[label_col].iloc[i]), (x[i], y[i]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.axvline(0, color="0.8", lw=0.8)
        ax.set_title(str(name), fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    fig.tight_layout()
    return fig
