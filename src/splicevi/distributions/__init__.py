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
from .likelihoods import SPLICING_LIKELIHOODS, SplicingLikelihood, register_likelihood, splicing_likelihood

__all__ = [
    "CountOrder",
    "SPLICING_LIKELIHOODS",
    "SplicingLikelihood",
    "register_likelihood",
    "splicing_likelihood",
    "beta_binomial_log_prob",
    "binomial_log_prob",
    "count_order",
    "dirichlet_multinomial_log_prob",
    "log_rising_factorial",
    "segment_log_softmax",
]
