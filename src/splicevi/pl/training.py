"""Training curves."""

from __future__ import annotations

import pandas as pd

from ._utils import empty_figure, grid

#: Panels: metric base name → title.
METRICS = {
    "elbo": "ELBO",
    "reconstruction_loss": "reconstruction loss",
    "kl_local": "KL (local)",
}


def training_curves(history: pd.DataFrame):
    """ELBO, reconstruction loss and KL per epoch, training and validation, one panel per metric.

    Parameters
    ----------
    history
        Epoch × metric table (columns such as ``elbo_train``, ``elbo_validation``), as written by
        ``splicevi train`` (``history.tsv``).
    """
    panels = [m for m in METRICS if any(c.startswith(m) for c in history.columns)]
    if history.empty or not panels:
        return empty_figure("no training history")
    fig, axes = grid(len(panels), ncols=len(panels), size=(4.0, 3.2))
    for ax, metric in zip(axes, panels, strict=True):
        for split, style in (("train", "-"), ("validation", "--")):
            col = f"{metric}_{split}"
            if col in history.columns:
                series = history[col].dropna()
                ax.plot(
                    series.index,
                    series.to_numpy(),
                    style,
                    marker="." if len(series) < 30 else None,
                    label=split,
                )
        ax.set_title(METRICS[metric])
        ax.set_xlabel("epoch")
        ax.legend(frameon=False)
    fig.suptitle(f"SpliceVI training ({len(history)} epochs)")
    fig.tight_layout()
    return fig
