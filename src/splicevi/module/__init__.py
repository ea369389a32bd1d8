"""Torch modules: :class:`SPLICEVAE`."""

from ..nn._observed import ObservedEntries, observed_entries
from ._splicevae import SPLICEVAE

__all__ = ["SPLICEVAE", "ObservedEntries", "observed_entries"]
