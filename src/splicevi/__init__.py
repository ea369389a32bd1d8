"""splicevi: joint single-cell model of gene expression and alternative splicing.

The model (:class:`SPLICEVI`, module :class:`SPLICEVAE`) is built on scvi-tools; the data pipeline
(:mod:`splicevi.data`) turns junction count tables into the MuData the model reads.

``SPLICEVI`` and ``SPLICEVAE`` are imported on first use, so the data commands (``splicevi ingest``,
``atse``, ``assemble``, ``simulate``) start without loading torch and scvi-tools.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["SPLICEVAE", "SPLICEVI", "__version__", "data", "pl", "pp", "tl"]

#: Submodules reachable as attributes (``splicevi.pl.arcs``, as ``sc.pl`` in scanpy), imported on first use.
_SUBMODULES = ("data", "pl", "pp", "tl")


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    if name == "SPLICEVI":
        from .model import SPLICEVI

        return SPLICEVI
    if name == "SPLICEVAE":
        from .module import SPLICEVAE

        return SPLICEVAE
    raise AttributeError(f"module 'splicevi' has no attribute {name!r}")
