"""Plots: one small module per figure kind (matplotlib object-oriented API; no backend is set here).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes it atomically
(PNG or SVG from the file name). Figures of cells take the MuData written by ``splicevi cluster``
(or any MuData in the data contract), e.g. ``splicevi.pl.arcs(mdata, "E00012", groupby="leiden")``.
"""

from ._utils import save_figure
from .arcs import arcs, top_event_arcs
from .coverage import event_coverage
from .embedding import top_junctions_umap, umap, umap_psi
from .psi import top_events_psi
from .training import training_curves
from .volcano import volcano

__all__ = [
    "arcs",
    "event_coverage",
    "save_figure",
    "top_event_arcs",
    "top_events_psi",
    "top_junctions_umap",
    "training_curves",
    "umap",
    "umap_psi",
    "volcano",
]
