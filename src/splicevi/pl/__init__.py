"""Plots: one small module per figure kind (matplotlib object-oriented API; no backend is set here).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes it atomically
(PNG or SVG from the file name).
"""

from ._utils import save_figure
from .coverage import event_coverage
from .embedding import umap
from .psi import top_events_psi
from .training import training_curves
from .volcano import volcano

__all__ = ["event_coverage", "save_figure", "top_events_psi", "training_curves", "umap", "volcano"]
