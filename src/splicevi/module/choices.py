"""The choices of the module's string options, each list defined once.

:class:`~splicevi.module.SPLICEVAE` checks its arguments against :data:`OPTION_CHOICES`, and the
workflow's config check reads the schema's ``model`` choices from it (and the splicing likelihoods
from :data:`splicevi.distributions.SPLICING_LIKELIHOODS`).
"""

from __future__ import annotations

from ..distributions.likelihoods import CONCENTRATION_SHARING
from ..nn._mixing import MODALITY_WEIGHTS

#: Where batch / layer norm applies.
NORM_PLACES = ("encoder", "decoder", "none", "both")
#: How the partial encoder weighs an observed entry: equally, or by the information of its reads.
ENCODER_WEIGHTINGS = ("none", "reads")

#: Module keyword → allowed values.
OPTION_CHOICES: dict[str, tuple[str, ...]] = {
    "modality_weights": MODALITY_WEIGHTS,
    "modality_penalty": ("Jeffreys", "MMD", "None"),
    "gene_likelihood": ("zinb", "nb", "poisson"),
    "gene_dispersion": ("gene", "gene-batch", "gene-label", "gene-cell"),
    "splicing_encoder_architecture": ("vanilla", "partial"),
    "splicing_decoder_architecture": ("vanilla", "linear"),
    "expression_architecture": ("vanilla", "linear"),
    "latent_distribution": ("normal", "ln"),
    "use_batch_norm": NORM_PLACES,
    "use_layer_norm": NORM_PLACES,
    "splicing_encoder_weighting": ENCODER_WEIGHTINGS,
    "dm_concentration": CONCENTRATION_SHARING,
    "pool_mode": ("mean", "sum"),
}


def check_options(**options) -> None:
    """Raise ``ValueError`` for the first option whose value is not one of its :data:`OPTION_CHOICES`."""
    for name, value in options.items():
        if value not in OPTION_CHOICES[name]:
            raise ValueError(f"{name} must be one of {OPTION_CHOICES[name]}, got {value!r}")
