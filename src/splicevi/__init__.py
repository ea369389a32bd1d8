"""splicevi: joint single-cell model of gene expression and alternative splicing.

The model (:class:`SPLICEVI`, module :class:`SPLICEVAE`) is built on scvi-tools; the data pipeline
(:mod:`splicevi.data`) turns junction count tables into the MuData the model reads.
"""

__version__ = "0.1.0"

from .model import SPLICEVI
from .module import SPLICEVAE

__all__ = ["SPLICEVAE", "SPLICEVI", "__version__"]
