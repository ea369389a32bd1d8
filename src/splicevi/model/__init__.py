"""User-facing models: :class:`SPLICEVI`."""

from ._splicevi import SPLICEVI

__all__ = ["SPLICEVI"]
