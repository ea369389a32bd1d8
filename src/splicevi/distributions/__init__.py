"""Splicing likelihoods (binomial, beta-binomial, Dirichlet-multinomial) on observed entries."""

from ._splicing import (
    CountOrder,
    beta_binomial_log_prob,
    binomial_log_prob,
    count_order,
    dirichlet_multinomial_log_prob,
    log_rising_factorial,
    segment_log_softmax,
)

__all__ = [
    "CountOrder",
    "beta_binomial_log_prob",
    "binomial_log_prob",
    "count_order",
    "dirichlet_multinomial_log_prob",
    "log_rising_factorial",
    "segment_log_softmax",
]
