"""Model-independent statistics: differential splicing tests and group contrasts.

A low layer: it imports neither the model nor ``tl``, so the model (``SPLICEVI``'s differential
methods), ``tl`` and the CLI all use the same code.
"""
