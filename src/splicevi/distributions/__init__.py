"""Splicing likelihoods (binomial, beta-binomial, Dirichlet-multinomial) on observed entries."""

from ._splicing import (
    beta_binomial_log_prob,
    binomial_log_prob,
    dirichlet_multinomial_log_prob,
    segment_log_softmax,
)
from .likelihoods import SPLICING_LIKELIHOODS, SplicingLikelihood, register_likelihood, splicing_likelihood

__all__ = [
    "SPLICING_LIKELIHOODS",
    "SplicingLikelihood",
    "register_likelihood",
    "splicing_likelihood",
    "beta_binomial_log_prob",
    "binomial_log_prob",
    "dirichlet_multinomial_log_prob",
    "segment_log_softmax",
]
