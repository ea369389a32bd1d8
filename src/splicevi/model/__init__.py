"""User-facing models: :class:`SPLICEVI` and the held-out-reads helpers of cluster contrasts."""

from ._ds_clusters import fit_part_latent
from ._splicevi import SPLICEVI

__all__ = ["SPLICEVI", "fit_part_latent"]
