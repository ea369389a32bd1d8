"""Splicing decoder: junction logits from the latent, at observed entries or densely."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi.nn import FCLayers
from torch import nn

from ._entry_ops import EntryLayout, entry_dot


class SplicingDecoder(nn.Module):
    """Decode junction logits ``l[c, j] = h(z_c) · w_j + b_j``.

    ``h`` is the latent itself plus one-hot covariates (``linear``) or an MLP (``vanilla``). Writing
    the last layer as a per-junction weight table lets training evaluate logits only at the observed
    entries (a gather and a row-wise dot product), so the cost grows with observed entries, not with
    cells × junctions. Dense decoding (:meth:`dense_logits`) is for analysis.

    Parameters
    ----------
    n_input
        Latent (+ continuous covariates) dimensionality.
    n_junctions
        Number of junctions.
    architecture
        ``"linear"`` or ``"vanilla"``.
    n_cat_list
        Category counts of categorical covariates (batch first).
    n_layers, n_hidden, dropout_rate, use_batch_norm, use_layer_norm, inject_covariates
        Options of the ``vanilla`` MLP.
    """

    def __init__(
        self,
        n_input: int,
        n_junctions: int,
        architecture: str = "linear",
        n_cat_list: list[int] | None = None,
        n_layers: int = 2,
        n_hidden: int = 128,
        dropout_rate: float = 0.0,
        use_batch_norm: bool = False,
        use_layer_norm: bool = False,
        inject_covariates: bool = False,
    ):
        super().__init__()
        if architecture not in ("linear", "vanilla"):
            raise ValueError(
                f"splicing_decoder_architecture must be 'linear' or 'vanilla', got {architecture!r}"
            )
        self.architecture = architecture
        self.cat_sizes = list(n_cat_list or [])
        if architecture == "vanilla":
            self.body = FCLayers(
                n_in=n_input,
                n_out=n_hidden,
                n_cat_list=n_cat_list,
                n_layers=n_layers,
                n_hidden=n_hidden,
                dropout_rate=dropout_rate,
                use_batch_norm=use_batch_norm,
                use_layer_norm=use_layer_norm,
                inject_covariates=inject_covariates,
            )
            width = n_hidden
        else:
            self.body = None
            width = n_input + sum(n for n in self.cat_sizes if n > 1)
        # Junction weights start at zero, so the first logits are the biases (the module sets them
        # to the junctions' mean PSI): random weights add logit noise of order one to every junction
        # and the resulting reconstruction gradient scrambles the encoder before the decoder has
        # learned anything. The weights' gradient is not zero (the hidden layer is not), so the
        # decoder picks up the directions of the latent that explain PSI from the first step.
        self.weight = nn.Parameter(torch.zeros(n_junctions, width))
        self.bias = nn.Parameter(torch.zeros(n_junctions))

    def hidden(self, z: torch.Tensor, *cat_list: torch.Tensor) -> torch.Tensor:
        """Per-cell hidden representation the junction weights act on."""
        if self.body is not None:
            return self.body(z, *cat_list)
        # Linear decoder: covariates enter as one-hot columns next to the latent.
        one_hots = [
            F.one_hot(cat.squeeze(-1).long(), n).float().expand(*z.shape[:-1], n)
            for cat, n in zip(cat_list, self.cat_sizes, strict=False)
            if n > 1
        ]
        return torch.cat([z, *one_hots], dim=-1) if one_hots else z

    def logits_at(
        self,
        z: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        *cat_list: torch.Tensor,
        layout: EntryLayout | None = None,
    ) -> torch.Tensor:
        """Logits at the entries ``(rows, cols)`` only.

        With the entries' CSR ``layout`` the row dot products run as a sampled sparse product
        (and its backward as two sparse matmuls) instead of gathering ``entries × width`` rows.
        """
        h = self.hidden(z, *cat_list)
        return entry_dot(layout, rows, cols, h, self.weight) + self.bias.index_select(0, cols)

    def dense_logits(
        self, z: torch.Tensor, *cat_list: torch.Tensor, cols: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of every cell for all junctions (or the junctions ``cols``)."""
        h = self.hidden(z, *cat_list)
        weight = self.weight if cols is None else self.weight[cols]
        bias = self.bias if cols is None else self.bias[cols]
        return h @ weight.T + bias
