"""Splicing likelihoods (binomial, beta-binomial, Dirichlet-multinomial) on observed entries."""

from ._splicing import (
    beta_binomial_log_prob,
    binomial_log_prob,
    dirichlet_multinomial_log_prob,
    segment_log_softmax,
)

__all__ = [
    "beta_binomial_log_prob",
    "binomial_log_prob",
    "dirichlet_multinomial_log_prob",
    "segment_log_softmax",
]
