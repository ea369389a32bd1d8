"""The splicing likelihoods of the model, one class each, and the registry that names them.

A likelihood says everything the module needs to know about it: its log-probability on the
observed entries of a minibatch, how decoder logits become PSI (the link), the concentration
parameters it learns (if any) and how the decoder bias starts from the junctions' mean PSI.
``splicing_loss_type`` of :class:`splicevi.SPLICEVI` is a key of :data:`SPLICING_LIKELIHOODS`;
the model's, the module's, the CLI's and the workflow schema's choices are read from it.

Adding a likelihood is one class here (or in your own code) decorated with
:func:`register_likelihood`::

    @register_likelihood
    class MyLikelihood(SplicingLikelihood):
        name = "my_likelihood"

        def log_likelihood(self, obs, logits, log_concentration):
            ...

The classes hold no state: the module keeps the concentration (a parameter or a buffer, saved
with the model) and passes it in.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from ._splicing import (
    beta_binomial_log_prob,
    binomial_log_prob,
    dirichlet_multinomial_log_prob,
    segment_log_softmax,
)

#: Initial concentration φ when none is given.
DEFAULT_CONCENTRATION = 10.0
#: How a Dirichlet-multinomial concentration is shared: one per ATSE, or one for all.
CONCENTRATION_SHARING = ("atse", "scalar")


class SplicingLikelihood:
    """A splicing likelihood: log-probability, PSI link, concentration and decoder bias.

    The defaults describe a likelihood of each junction on its own with a logit link (binomial);
    a subclass overrides what differs. ``obs`` below is the minibatch's
    :class:`~splicevi.nn._observed.ObservedEntries` (the entries with reads in their ATSE).
    """

    #: Name used by ``splicing_loss_type`` (the registry key).
    name: ClassVar[str] = ""
    #: Whether the PSI of a junction is normalised over its ATSE (softmax) rather than its own (σ).
    within_atse: ClassVar[bool] = False
    #: Whether the likelihood has a concentration (overdispersion of the reads).
    has_concentration: ClassVar[bool] = False

    def initial_log_concentration(
        self, n_junctions: int, n_events: int, concentration: float | None, sharing: str
    ) -> tuple[torch.Tensor, bool] | None:
        """Initial log φ and whether it is learned; ``None`` for a likelihood without φ.

        Parameters
        ----------
        n_junctions, n_events
            Numbers of junctions and ATSEs.
        concentration
            The model's ``splicing_concentration`` (``None``: the likelihood's default).
        sharing
            The model's ``dm_concentration`` (one of :data:`CONCENTRATION_SHARING`).
        """
        return None

    def concentration_per_junction(self, phi: torch.Tensor, junc2atse: torch.Tensor) -> torch.Tensor:
        """Concentration φ of each junction from the stored φ (default: stored per junction)."""
        return phi

    def decoder_bias(self, p: torch.Tensor) -> torch.Tensor:
        """Decoder bias that decodes to PSI ``p`` at the start of training (inverse of the link)."""
        return torch.logit(p)

    def psi(self, logits: torch.Tensor, groups: torch.Tensor | None, n_events: int) -> torch.Tensor:
        """PSI from dense decoder logits (last axis: junctions; ``groups`` their ATSE codes)."""
        return torch.sigmoid(logits)

    def log_likelihood(
        self, obs, logits: torch.Tensor, log_concentration: torch.Tensor | None
    ) -> torch.Tensor:
        """Log-likelihood per cell of the observed entries, shape ``(obs.n_cells,)``."""
        raise NotImplementedError


#: Registered likelihoods by name (what ``splicing_loss_type`` accepts).
SPLICING_LIKELIHOODS: dict[str, type[SplicingLikelihood]] = {}


def register_likelihood(cls: type[SplicingLikelihood]) -> type[SplicingLikelihood]:
    """Add a :class:`SplicingLikelihood` subclass to :data:`SPLICING_LIKELIHOODS` (class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, SplicingLikelihood)):
        raise TypeError(f"{cls!r} is not a SplicingLikelihood subclass")
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    known = SPLICING_LIKELIHOODS.get(cls.name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ValueError(
            f"a splicing likelihood named {cls.name!r} is already registered ({known.__qualname__})"
        )
    SPLICING_LIKELIHOODS[cls.name] = cls
    return cls


def likelihood_names() -> tuple[str, ...]:
    """Names of the registered likelihoods, in registration order."""
    return tuple(SPLICING_LIKELIHOODS)


def splicing_likelihood(name: str) -> SplicingLikelihood:
    """The likelihood registered as ``name``.

    Raises
    ------
    ValueError
        When no likelihood has that name (the message lists the registered ones).
    """
    if name not in SPLICING_LIKELIHOODS:
        raise ValueError(f"splicing_loss_type must be one of {likelihood_names()}, got {name!r}")
    return SPLICING_LIKELIHOODS[name]()


@register_likelihood
class Binomial(SplicingLikelihood):
    """Binomial reads of each junction out of its ATSE's, PSI = σ(logit); no overdispersion."""

    name = "binomial"

    def log_likelihood(self, obs, logits, log_concentration):  # noqa: D102
        per_cell = torch.zeros(obs.n_cells, device=logits.device)
        return per_cell.index_add(0, obs.rows, binomial_log_prob(obs.k, obs.n, logits))


@register_likelihood
class BetaBinomial(SplicingLikelihood):
    """Beta-binomial per junction, PSI = σ(logit); φ per junction, fixed when given."""

    name = "beta_binomial"
    has_concentration = True

    def initial_log_concentration(self, n_junctions, n_events, concentration, sharing):  # noqa: D102
        init = float(concentration) if concentration else DEFAULT_CONCENTRATION
        return torch.full((n_junctions,), float(math.log(init))), concentration is None

    def log_likelihood(self, obs, logits, log_concentration):  # noqa: D102
        per_cell = torch.zeros(obs.n_cells, device=logits.device)
        ll = beta_binomial_log_prob(obs.k, obs.n, logits, log_concentration.exp()[obs.cols])
        return per_cell.index_add(0, obs.rows, ll)


@register_likelihood
class DirichletMultinomial(SplicingLikelihood):
    """Dirichlet-multinomial over the junctions of an ATSE, PSI = softmax of the logits within it.

    φ is one per ATSE (``dm_concentration="atse"``) or one for all (``"scalar"``), learned from
    ``splicing_concentration`` (default 10).
    """

    name = "dirichlet_multinomial"
    within_atse = True
    has_concentration = True

    def initial_log_concentration(self, n_junctions, n_events, concentration, sharing):  # noqa: D102
        init = float(concentration) if concentration else DEFAULT_CONCENTRATION
        size = n_events if sharing == "atse" else 1
        return torch.full((size,), float(math.log(init))), True

    def concentration_per_junction(self, phi, junc2atse):  # noqa: D102
        return phi[junc2atse] if phi.numel() > 1 else phi.expand(junc2atse.shape[0])

    def decoder_bias(self, p):  # noqa: D102
        # Softmax logits: log p decodes to p when an ATSE's mean PSIs sum to one.
        return p.log()

    def psi(self, logits, groups, n_events):  # noqa: D102
        # Softmax within each ATSE along the last axis, with the ATSE's maximum subtracted.
        flat = logits.reshape(-1, groups.shape[0])
        index = groups.expand_as(flat)
        group_max = torch.full((flat.shape[0], n_events), float("-inf"), device=logits.device)
        group_max = group_max.scatter_reduce(1, index, flat, reduce="amax", include_self=True)
        e = (flat - group_max.gather(1, index)).exp()
        denom = torch.zeros(flat.shape[0], n_events, device=logits.device).scatter_add(1, index, e)
        return (e / denom.gather(1, index)).reshape(logits.shape)

    def log_likelihood(self, obs, logits, log_concentration):  # noqa: D102
        per_cell = torch.zeros(obs.n_cells, device=logits.device)
        log_p = segment_log_softmax(logits, obs.group, obs.n_groups)
        phi = log_concentration.exp()
        # One φ per ATSE (or one scalar): lgamma(φ) once per ATSE, gathered to the groups.
        index = obs.group_event if phi.numel() > 1 else torch.zeros_like(obs.group_event)
        ll = dirichlet_multinomial_log_prob(
            obs.k,
            log_p,
            phi,
            obs.group,
            obs.n_groups,
            concentration_index=index,
            group_totals=obs.group_totals(),
            nonzero=obs.reads_by_count() or obs.nonzero(),
            totals_order=obs.groups_by_total(),
        )
        return per_cell.index_add(0, obs.group_row, ll)
