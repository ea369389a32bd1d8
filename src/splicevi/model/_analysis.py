"""Analysis methods of SPLICEVI: normalized expression / PSI, differential splicing and expression."""

from __future__ import annotations


class SplicingAnalysisMixin:
    """Normalized expression and splicing, differential splicing and expression (see methods)."""
