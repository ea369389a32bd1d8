"""Mixing of the per-modality posteriors into the joint posterior."""

from __future__ import annotations

import torch
from torch import nn

MODALITY_WEIGHTS = (
    "equal",
    "universal",
    "cell",
    "concatenate",
    "per_dimension_weighted_average",
    "precision",
)


class ModalityMixer(nn.Module):
    """Combine the expression and splicing posteriors ``(μ, σ²)`` of each cell.

    Weighted average modes give ``μ = Σ_m w_m μ_m`` and ``σ² = Σ_m w_m σ²_m`` with weights
    renormalised (softmax) over the modalities a cell actually has, so a cell without splicing
    coverage (or without expression counts) takes its posterior from the other modality alone.

    * ``equal``: fixed equal weights;
    * ``universal``: one learned weight per modality;
    * ``cell``: learned weights per cell (training cells only);
    * ``per_dimension_weighted_average``: learned weights per modality and latent dimension;
    * ``precision``: precision-weighted (product of the Gaussian experts): per latent dimension
      ``1/σ² = Σ_m 1/σ²_m`` and ``μ = σ² Σ_m μ_m/σ²_m`` over the modalities the cell has, so a
      modality that is uncertain about a dimension has little say in it;
    * ``concatenate``: no averaging: the joint latent is ``[z_expr, z_splicing]`` (twice the size);
      a missing modality's block is the prior N(0, I).

    Parameters
    ----------
    mode
        One of :data:`MODALITY_WEIGHTS`.
    n_latent
        Per-modality latent size.
    n_obs
        Number of training cells (``cell`` mode).
    n_modalities
        Number of modalities mixed.
    """

    def __init__(self, mode: str, n_latent: int, n_obs: int = 0, n_modalities: int = 2):
        super().__init__()
        if mode not in MODALITY_WEIGHTS:
            raise ValueError(f"modality_weights must be one of {MODALITY_WEIGHTS}, got {mode!r}")
        self.mode = mode
        if mode == "equal":
            self.register_buffer("mod_weights", torch.zeros(n_modalities))
        elif mode == "universal":
            self.mod_weights = nn.Parameter(torch.zeros(n_modalities))
        elif mode == "cell":
            self.mod_weights = nn.Parameter(torch.zeros(n_obs, n_modalities))
        elif mode == "per_dimension_weighted_average":
            self.mod_weights = nn.Parameter(torch.zeros(n_modalities, n_latent))
        else:  # concatenate, precision: no weights to learn
            self.register_buffer("mod_weights", torch.zeros(n_modalities))

    def weights(self, masks: torch.Tensor, cell_idx: torch.Tensor | None) -> torch.Tensor:
        """Normalised weights, shape (cells, modalities, 1 or latent)."""
        n_cells = masks.shape[0]
        if self.mode == "cell":
            if cell_idx is None:
                raise ValueError("modality_weights='cell' needs the cell indices of the training data")
            logits = self.mod_weights[cell_idx.long().view(-1)][..., None]
        elif self.mode == "per_dimension_weighted_average":
            logits = self.mod_weights[None].expand(n_cells, -1, -1)
        else:
            logits = self.mod_weights[None, :, None].expand(n_cells, -1, 1)
        logits = logits.masked_fill(~masks[..., None], float("-inf"))
        w = torch.softmax(logits, dim=1)
        # Cells with no modality at all (should not happen after validation) get equal weights.
        return torch.nan_to_num(w, nan=1.0 / masks.shape[1])

    def forward(
        self,
        means: list[torch.Tensor],
        variances: list[torch.Tensor],
        masks: list[torch.Tensor],
        cell_idx: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint posterior mean and variance."""
        if self.mode == "precision":
            mask = torch.stack(masks, dim=1)[..., None].to(means[0].dtype)
            precision = mask / torch.stack(variances, dim=1)
            total = precision.sum(1).clamp_min(1e-8)
            mu = (precision * torch.stack(means, dim=1)).sum(1) / total
            return mu, 1.0 / total
        if self.mode == "concatenate":
            mu = [
                torch.where(m[:, None], mu_m, torch.zeros_like(mu_m))
                for mu_m, m in zip(means, masks, strict=True)
            ]
            var = [
                torch.where(m[:, None], v, torch.ones_like(v)) for v, m in zip(variances, masks, strict=True)
            ]
            return torch.cat(mu, dim=-1), torch.cat(var, dim=-1)
        mask = torch.stack(masks, dim=1)
        w = self.weights(mask, cell_idx)
        mu = (w * torch.stack(means, dim=1)).sum(1)
        var = (w * torch.stack(variances, dim=1)).sum(1)
        return mu, var
