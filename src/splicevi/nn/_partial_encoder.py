"""Missingness-aware splicing encoder (EDDI-style partial encoder) on observed entries only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scvi.nn import FCLayers
from torch import nn
from torch.distributions import Normal

from ._entry_ops import entry_matmul

if TYPE_CHECKING:
    import scipy.sparse as sp

    from ._observed import ObservedEntries


class PartialEncoder(nn.Module):
    """Encode a cell's observed junctions into a Gaussian posterior over the latent space.

    Each observed (cell, junction) entry contributes its *centred* PSI ``r = psi - c_j`` times a
    learned embedding ``e_j`` of the junction, and the contributions are pooled per cell by a scatter
    over the observed entries (mean or sum). The pooled code is therefore a sparse linear map of
    centred PSI restricted to the observed entries: it contains the projection a truncated SVD of
    centred PSI would make, costs O(observed entries × ``code_dim``), and never materialises an
    unobserved entry. The pooled code is standardised across cells (batch norm), joined with
    ``log1p(number of observed entries)`` (how much evidence the cell has) and mapped by an MLP and
    two plain linear heads to the posterior mean and (raw) variance.

    The per-entry map is linear and centred so that *which* junctions a cell observed (mostly
    sampling noise) does not drive the code: an unobserved entry and one at its junction's usual PSI
    both contribute zero. ``c_j`` is the junction's mean PSI over the cells that observe it (a
    buffer of :class:`~splicevi.module.SPLICEVAE`), and the embeddings start at the leading right
    singular vectors of centred PSI (:meth:`initialize_embeddings`).

    The MLP and heads are not :class:`scvi.nn.Encoder`: that class cannot express the zero-started
    mean head plus the identity-started linear ``skip`` path that make the untrained posterior mean
    the SVD projection.

    Parameters
    ----------
    n_junctions
        Number of junctions (rows of the embedding table).
    n_output
        Latent dimensionality.
    code_dim
        Size of the junction embeddings, i.e. of the pooled code.
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
        ``"mean"`` (default: a cell's code does not grow with its coverage) or ``"sum"`` over a
        cell's observed entries.
    max_nobs
        Entries processed per chunk when pooling falls back to gather/scatter (bounds the memory
        of the gathered embeddings at ``max_nobs × code_dim``); ``-1`` processes all entries at
        once. The sparse-kernel pooling used for minibatches in row order gathers nothing, so
        there the value has no effect.
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
        self.feature_embedding = nn.Parameter(torch.randn(n_junctions, code_dim) / np.sqrt(code_dim))
        # Pooled codes are averages over 10^2-10^3 entries: standardise them across cells so the
        # MLP sees the differences between cells at a usable scale.
        self.pool_norm = nn.BatchNorm1d(code_dim + 1)
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
        # Plain linear heads: no activation, norm or dropout on (mu, raw variance). The mean also has
        # a linear path from the standardised pooled code (``skip``), which starts as the identity
        # on the leading components while the MLP's head starts at zero: at initialisation the
        # posterior mean *is* the SVD projection, and training moves it from there.
        self.mean_encoder = nn.Linear(encoder_hidden_dim, n_output)
        self.var_encoder = nn.Linear(encoder_hidden_dim, n_output)
        self.skip = nn.Linear(code_dim + 1, n_output, bias=False)
        with torch.no_grad():
            self.mean_encoder.weight.zero_()
            self.skip.weight.zero_()
            diagonal = min(code_dim, n_output)
            self.skip.weight[:diagonal, :diagonal] = torch.eye(diagonal)

    @torch.no_grad()
    def initialize_embeddings(
        self, centred: sp.csr_matrix, seed: int = 0, row_weight: np.ndarray | None = None
    ) -> None:
        """Start the embeddings at the top right singular vectors of centred PSI.

        Parameters
        ----------
        centred
            Cells × junctions CSR of PSI minus the junction centres on the observed entries
            (:func:`splicevi.data.layers.centred_psi`), already multiplied by the entries'
            pooling weights when the encoder pools with weights.
        seed
            Seed of the randomized SVD.
        row_weight
            Each cell's total pooling weight (the mean pool's denominator when the encoder pools
            with weights; ``None``: the number of stored entries of the row).
        """
        from sklearn.utils.extmath import randomized_svd, svd_flip

        n_comp = min(self.code_dim, min(centred.shape) - 1)
        if n_comp < 1 or centred.nnz == 0:
            return
        # TruncatedSVD(n_comp, random_state=seed).fit(centred).components_, without the explained
        # variance it also computes (a full copy of the matrix: the largest allocation at set-up).
        u, _, vt = randomized_svd(
            centred, n_comp, n_oversamples=10, n_iter=5, random_state=seed, flip_sign=False
        )
        _, components = svd_flip(u, vt, u_based_decision=False)
        emb = self.feature_embedding.detach().cpu().numpy().copy()
        # Random directions beyond the rank of the data; the singular vectors scaled so that each
        # pooled feature has unit spread across cells (the scale batch norm would give it).
        emb[:, n_comp:] *= 0.1
        vectors = components.T.astype(np.float32)
        pooled = centred @ vectors
        if self.pool_mode == "mean":
            denominator = np.diff(centred.indptr) if row_weight is None else np.asarray(row_weight)
            pooled = pooled / np.maximum(denominator, 1)[:, None]
        spread = np.maximum(pooled.std(axis=0), 1e-6)
        emb[:, :n_comp] = vectors / spread[None, :]
        self.feature_embedding.copy_(torch.as_tensor(emb, device=self.feature_embedding.device))
        # Batch norm standardises every pooled feature; its scale starts at each component's spread
        # relative to the first, so weak (mostly noise) components do not weigh as much as strong ones.
        self.pool_norm.weight[:n_comp] = torch.as_tensor(spread / spread[0], dtype=torch.float32)
        self.pool_norm.weight[n_comp:] = float(np.min(spread / spread[0]))

    def z_transformation(self, z: torch.Tensor) -> torch.Tensor:
        """Map a Gaussian sample to the latent space (identity or softmax for ``ln``)."""
        return torch.softmax(z, dim=-1) if self.distribution == "ln" else z

    def pool(
        self, obs: ObservedEntries, centred: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooled per-cell code and ``log1p`` of its number of entries (cells without entries: zeros).

        ``centred`` is the centred PSI of each observed entry (aligned with ``obs.rows``). With
        ``weight`` (one non-negative value per entry, e.g. its reads' information and whether its
        ATSE is selected) each entry contributes ``weight × centred × e_j``, the mean divides by the
        cell's total weight instead of its number of entries, and the evidence feature is
        ``log1p`` of that total weight.
        """
        device = self.feature_embedding.device
        if weight is not None:
            centred = centred * weight
        layout = obs.layout()
        if layout is not None:
            # One sparse (cells x junctions) x (junctions x code_dim) product, forward and backward.
            pooled = entry_matmul(layout, obs.rows, obs.cols, centred, self.feature_embedding, obs.n_cells)
            counts = torch.diff(layout.crow).to(pooled.dtype)
        else:
            pooled = torch.zeros(obs.n_cells, self.code_dim, device=device)
            n_entries = obs.rows.shape[0]
            chunk = n_entries if self.max_nobs <= 0 else self.max_nobs
            for start in range(0, n_entries, max(chunk, 1)):
                stop = min(start + chunk, n_entries)
                pooled = pooled + entry_matmul(
                    None,
                    obs.rows[start:stop],
                    obs.cols[start:stop],
                    centred[start:stop],
                    self.feature_embedding,
                    obs.n_cells,
                )
            counts = torch.zeros(obs.n_cells, device=device).index_add_(
                0, obs.rows, torch.ones_like(obs.k, device=device)
            )
        if weight is not None:
            counts = torch.zeros(obs.n_cells, device=device, dtype=pooled.dtype).index_add_(
                0, obs.rows, weight
            )
        if self.pool_mode == "mean":
            pooled = pooled / counts.clamp_min(1.0)[:, None]
        return torch.cat([pooled, torch.log1p(counts)[:, None]], dim=-1)

    def forward(
        self,
        obs: ObservedEntries,
        centred: torch.Tensor,
        *cat_list: torch.Tensor,
        cont: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posterior mean, variance and a reparameterised sample from the entries' centred PSI.

        ``weight``: optional per-entry weight of the pooling (see :meth:`pool`).
        """
        pooled = self.pool(obs, centred, weight)
        if pooled.shape[0] > 1 or not self.training:
            pooled = self.pool_norm(pooled)
        if cont is not None:
            pooled = torch.cat([pooled, cont], dim=-1)
        hidden = self.post(pooled, *cat_list)
        q_m = self.mean_encoder(hidden) + self.skip(pooled[:, : self.skip.in_features])
        q_v = torch.exp(self.var_encoder(hidden)) + self.var_eps
        z = self.z_transformation(Normal(q_m, q_v.sqrt()).rsample())
        return q_m, q_v, z
