"""Missingness-aware splicing encoder (EDDI-style partial encoder) on observed entries only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from scvi.nn import FCLayers
from torch import nn
from torch.distributions import Normal
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from ..module._observed import ObservedEntries


class PartialEncoder(nn.Module):
    """Encode a cell's observed junctions into a Gaussian posterior over the latent space.

    Each observed (cell, junction) entry is embedded independently by a shared network ``h`` from
    ``[psi·e_j, e_j, psi, log1p(n)]`` where ``e_j`` is a learned embedding of the junction. The
    product ``psi·e_j`` gives every junction its own direction for its value (pooled with ``sum``
    and a linear ``h`` this is exactly the first layer of a dense encoder restricted to observed
    entries, which a concatenation ``[psi, e_j]`` alone learns poorly); ``e_j`` keeps the junction's
    identity when PSI = 0 and ``log1p(n)`` makes coverage visible. The codes are pooled per cell by a
    scatter over the observed entries (mean or sum), then an MLP and two plain linear heads give the
    posterior mean and (raw) variance. Unobserved entries are never materialised.

    Parameters
    ----------
    n_junctions
        Number of junctions (rows of the embedding table).
    n_output
        Latent dimensionality.
    code_dim
        Size of the junction embeddings and of the per-entry codes.
    h_hidden_dim
        Hidden width of the shared per-entry network ``h``.
    encoder_hidden_dim
        Hidden width of the post-pooling MLP.
    n_layers
        Layers of the post-pooling MLP.
    n_cat_list
        Category counts of covariates injected into the post-pooling MLP.
    n_continuous
        Number of continuous covariates appended to the pooled code.
    dropout_rate, use_batch_norm, use_layer_norm
        Options of the post-pooling MLP.
    pool_mode
        ``"mean"`` or ``"sum"`` over a cell's observed entries.
    max_nobs
        Entries processed per chunk by ``h``; chunks are recomputed in the backward pass
        (gradient checkpointing), which caps the activation memory of ``h`` at
        ``max_nobs × h_hidden_dim`` per chunk. ``-1`` processes all entries at once.
    distribution
        ``"normal"`` or ``"ln"`` (logistic normal: softmax of the Gaussian sample).
    var_eps
        Added to the variance for numerical stability.
    """

    def __init__(
        self,
        n_junctions: int,
        n_output: int,
        code_dim: int = 16,
        h_hidden_dim: int = 64,
        encoder_hidden_dim: int = 128,
        n_layers: int = 2,
        n_cat_list: list[int] | None = None,
        n_continuous: int = 0,
        dropout_rate: float = 0.1,
        use_batch_norm: bool = False,
        use_layer_norm: bool = True,
        pool_mode: str = "mean",
        max_nobs: int = -1,
        distribution: str = "normal",
        var_eps: float = 1e-4,
    ):
        super().__init__()
        if pool_mode not in ("mean", "sum"):
            raise ValueError(f"pool_mode must be 'mean' or 'sum', got {pool_mode!r}")
        self.pool_mode = pool_mode
        self.max_nobs = int(max_nobs)
        self.code_dim = code_dim
        self.distribution = distribution
        self.var_eps = var_eps
        self.feature_embedding = nn.Parameter(torch.randn(n_junctions, code_dim))
        self.h = nn.Sequential(
            nn.Linear(2 * code_dim + 2, h_hidden_dim),
            nn.LayerNorm(h_hidden_dim),
            nn.ReLU(),
            # No activation on the codes: they are averaged, and a ReLU here zeroes half the signal.
            nn.Linear(h_hidden_dim, code_dim),
        )
        # The pooled code of a cell is an average over ~10^2-10^3 entries, so most of it is shared by
        # all cells and the cell-specific part is small: standardise each pooled feature across cells
        # (batch norm) so the MLP sees the differences between cells. Without this the posterior
        # means hardly vary between cells and the VAE learns to ignore them.
        self.pool_norm = nn.BatchNorm1d(code_dim + 1)
        # pooled code + log1p(number of observed entries) + continuous covariates
        self.post = FCLayers(
            n_in=code_dim + 1 + n_continuous,
            n_out=encoder_hidden_dim,
            n_cat_list=n_cat_list,
            n_layers=n_layers,
            n_hidden=encoder_hidden_dim,
            dropout_rate=dropout_rate,
            use_batch_norm=use_batch_norm,
            use_layer_norm=use_layer_norm,
        )
        # Plain linear heads: no activation, norm or dropout on (mu, raw variance).
        self.mean_encoder = nn.Linear(encoder_hidden_dim, n_output)
        self.var_encoder = nn.Linear(encoder_hidden_dim, n_output)

    def z_transformation(self, z: torch.Tensor) -> torch.Tensor:
        """Map a Gaussian sample to the latent space (identity or softmax for ``ln``)."""
        return torch.softmax(z, dim=-1) if self.distribution == "ln" else z

    def _codes(self, obs: ObservedEntries, start: int, stop: int) -> torch.Tensor:
        psi = obs.psi[start:stop, None]
        embedding = self.feature_embedding[obs.cols[start:stop]]
        inputs = torch.cat([psi * embedding, embedding, psi, torch.log1p(obs.n[start:stop, None])], dim=-1)
        return self.h(inputs)

    def pool(self, obs: ObservedEntries) -> torch.Tensor:
        """Pooled per-cell code (cells without observed entries get zeros)."""
        device = self.feature_embedding.device
        pooled = torch.zeros(obs.n_cells, self.code_dim, device=device)
        n_entries = obs.rows.shape[0]
        chunk = n_entries if self.max_nobs <= 0 else self.max_nobs
        for start in range(0, n_entries, max(chunk, 1)):
            stop = min(start + chunk, n_entries)
            if self.max_nobs > 0 and torch.is_grad_enabled():
                codes = checkpoint(self._codes, obs, start, stop, use_reentrant=False)
            else:
                codes = self._codes(obs, start, stop)
            pooled = pooled.index_add(0, obs.rows[start:stop], codes)
        counts = torch.zeros(obs.n_cells, device=device).index_add_(
            0, obs.rows, torch.ones_like(obs.k, device=device)
        )
        if self.pool_mode == "mean":
            pooled = pooled / counts.clamp_min(1.0)[:, None]
        return torch.cat([pooled, torch.log1p(counts)[:, None]], dim=-1)

    def forward(
        self, obs: ObservedEntries, *cat_list: torch.Tensor, cont: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior mean, variance and a reparameterised sample."""
        pooled = self.pool(obs)
        if pooled.shape[0] > 1 or not self.training:
            pooled = self.pool_norm(pooled)
        if cont is not None:
            pooled = torch.cat([pooled, cont], dim=-1)
        hidden = self.post(pooled, *cat_list)
        q_m = self.mean_encoder(hidden)
        q_v = torch.exp(self.var_encoder(hidden)) + self.var_eps
        z = self.z_transformation(Normal(q_m, q_v.sqrt()).rsample())
        return q_m, q_v, z
