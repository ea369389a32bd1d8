"""Volcano plots of differential splicing (ΔPSI) or expression (log fold change) against the evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._utils import empty_figure, grid

#: Columns per kind: (effect, probability, FDR call prefix, label columns, x-axis label).
KINDS = {
    "ds": ("effect_size", "proba_ds", "is_ds_fdr", ("gene_name", "junction_id"), "ΔPSI (group1 − group2)"),
    "de": (
        "lfc_mean",
        "proba_de",
        "is_de_fdr",
        ("gene_name", "gene_id"),
        "log fold change (group1 vs group2)",
    ),
}


def evidence(proba: np.ndarray, effect: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Volcano y values: log10 odds of the probability, continued above its resolution by |effect|.

    Probabilities from posterior samples reach exactly 1 (every sample agrees) for many features,
    where the log-odds stops resolving them. Those features are placed in a band above the largest
    resolvable value, ordered by |effect|, so the axis does not saturate; the band is marked in the
    plot. Probabilities of 0 are shown at the smallest resolvable value.

    Returns
    -------
    y, saturated, cap
        y value per feature, whether it is in the band (probability 1), and the y where the band starts.
    """
    p = np.asarray(proba, dtype=float)
    saturated = p >= 1 - 1e-12
    inside = p[(p > 1e-12) & ~saturated]
    lo = min(float(inside.min()), 1 - float(inside.max())) if inside.size else 1e-3
    lo = min(lo, 1e-3)
    clipped = np.clip(p, lo, 1 - lo)
    y = np.log10(clipped / (1 - clipped))
    cap = float(y[~saturated].max()) if (~saturated).any() else 0.0
    if saturated.any():
        span = max(cap - float(y.min()), 1.0)
        gap, band = 0.08 * span, 0.3 * span
        size = np.abs(np.asarray(effect, dtype=float)[saturated])
        order = pd.Series(np.nan_to_num(size)).rank(method="first").to_numpy()
        y[saturated] = cap + gap + band * order / order.size
    return y, saturated, cap


def volcano(table: pd.DataFrame, kind: str = "ds", n_labels: int = 8, max_panels: int = 24):
    """One volcano panel per contrast: effect against the evidence, with non-overlapping labels.

    The evidence axis is the log10 odds of the posterior probability; features whose probability is 1
    continue above it ordered by |effect| (see :func:`evidence`), so the axis does not saturate.
    Labels of the best features (gene name and junction / gene id) are set in a column at the right of
    the panel with a leader line to their point, so they never overlap each other or the points and
    stay inside their panel.

    Parameters
    ----------
    table
        A ``splicevi ds`` (per-junction or per-ATSE) or ``splicevi de`` table: one row per feature and
        contrast (column ``contrast``).
    kind
        ``"ds"`` or ``"de"`` (selects the columns, see ``KINDS``).
    n_labels
        Best features labelled per panel (called ones only, when any are; at most 16).
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
            raise ValueError(
                f"{kind} table lacks column '{col}' (columns: {', '.join(map(str, table.columns))})"
            )
    if table.empty:
        return empty_figure("no features tested")
    call = next((c for c in table.columns if str(c).startswith(call_prefix)), None)
    if "contrast" not in table.columns:
        table = table.assign(contrast="all")
    contrasts = list(pd.unique(table["contrast"]))[:max_panels]
    fig, axes = grid(len(contrasts), ncols=3, size=(5.6, 4.0))
    for ax, name in zip(axes, contrasts, strict=True):
        t = table[table["contrast"] == name]
        x = t[effect].to_numpy(dtype=float)
        if kind == "ds" and "log10_pvalue" in t.columns:
            # −log10 p keeps resolving strong from very strong evidence where a clipped
            # probability would pile every strong call onto one line.
            y, ylabel = -t["log10_pvalue"].to_numpy(dtype=float), "−log10 p-value (|ΔPSI| > delta)"
            saturated, cap = np.zeros(len(t), dtype=bool), None
        else:
            y, saturated, cap = evidence(t[proba].to_numpy(dtype=float), x)
            ylabel = f"log10 odds of {proba}"
        hit = t[call].to_numpy(dtype=bool) if call else np.zeros(len(t), dtype=bool)
        for mask, colour, size, label in (
            (~hit, "0.65", 6, "not called"),
            (hit, "tab:red", 10, f"called ({hit.sum()})"),
        ):
            ax.scatter(
                x[mask & ~saturated],
                y[mask & ~saturated],
                s=size,
                color=colour,
                linewidths=0,
                rasterized=True,
                label=label,
            )
            ax.scatter(
                x[mask & saturated],
                y[mask & saturated],
                s=size + 4,
                color=colour,
                marker="^",
                linewidths=0,
                rasterized=True,
            )
        if saturated.any():
            ax.axhline(cap, color="0.5", lw=0.6, ls="--")
            ax.text(
                0.5,
                cap,
                f"▲ {proba} = 1 ({saturated.sum()}): ordered by |effect|",
                transform=ax.get_yaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=5.5,
                color="0.35",
            )
        ax.margins(x=0.08, y=0.12)
        ax.autoscale_view()
        labels = feature_labels(t, label_cols)
        if labels is not None:
            # The best called features; the best overall when nothing is called.
            order = np.lexsort((-np.abs(x), -y, ~hit if hit.any() else np.zeros_like(hit)))
            order = order[: min(n_labels, int(hit.sum()))] if hit.any() else order[:n_labels]
            place_labels(ax, x[order], y[order], labels[order])
        ax.axvline(0, color="0.8", lw=0.8)
        ax.set_title(str(name), fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize="x-small", loc="lower center", ncols=2)
    fig.tight_layout()
    return fig


def feature_labels(table: pd.DataFrame, label_cols) -> np.ndarray | None:
    """A label per row that names the feature: ``gene id`` (gene name and the junction / gene id), or the id alone.

    Several junctions of one gene are told apart by their ids (a gene name alone would repeat).
    """
    ids = next((c for c in label_cols[1:] if c in table.columns), None)
    names = table[label_cols[0]] if label_cols[0] in table.columns else None
    if names is None and ids is None:
        return None
    base = table[ids].astype(str) if ids is not None else pd.Series("", index=table.index)
    if names is None:
        return base.to_numpy()
    known = names.notna() & (names.astype(str) != "") & (names.astype(str) != base)
    both = names.astype(str) + " " + base if ids is not None else names.astype(str)
    return both.where(known, base).astype(str).to_numpy()


def place_labels(
    ax, x: np.ndarray, y: np.ndarray, labels: np.ndarray, max_labels: int = 16, column: float = 0.6
) -> list:
    """Labels in one column at the right of the panel, one slot each, linked to their points by a leader line.

    The x range is widened so the points lie left of ``column`` (axes fraction) and the labels right of
    it: labels and leader lines stay inside their own panel. Slots follow the points from the top down
    and are evenly spaced over the panel's height, so no two labels overlap and none covers a point.
    Returns the text artists.
    """
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, lo + (hi - lo) / column)
    idx = np.argsort(-y, kind="stable")[:max_labels]
    step = min(0.075, 0.92 / max(len(idx), 1))
    texts = []
    for slot, i in enumerate(idx):
        texts.append(
            ax.annotate(
                str(labels[i]),
                xy=(x[i], y[i]),
                xycoords="data",
                xytext=(column + 0.02, 0.96 - step * slot),
                textcoords="axes fraction",
                ha="left",
                va="center",
                fontsize=5,
                annotation_clip=True,
                arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5, shrinkA=1, shrinkB=2, clip_on=True),
            )
        )
    return texts
