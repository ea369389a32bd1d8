"""SPLICEVAE: the torch module of SpliceVI (expression + splicing multimodal VAE)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from scvi.nn import DecoderSCVI, Encoder, LinearDecoderSCVI
from torch.distributions import Normal, Poisson
from torch.distributions import kl_divergence as kld

from .._constants import SPLICING_FIELD_NAMES
from ..distributions.likelihoods import splicing_likelihood
from ..nn import ModalityMixer, PartialEncoder, SplicingDecoder
from ..nn._observed import ObservedEntries, observed_entries
from .choices import check_options


def default_hidden_width(n_genes: int, n_junctions: int) -> int:
    """Width of the MLPs when ``n_hidden`` is ``None``: √(genes + junctions) clipped to [64, 256] (MULTIVI's rule)."""
    return int(np.clip(np.sqrt(n_genes + n_junctions), 64, 256))


def _where(option: str, part: str) -> bool:
    """Whether a norm option (``encoder``/``decoder``/``both``/``none``) applies to ``part``."""
    return option in (part, "both")


class SPLICEVAE(BaseModuleClass):
    """Variational autoencoder of gene expression and junction usage with a mixed joint posterior.

    Expression follows scVI (ZINB / NB / Poisson with observed library size); splicing is encoded
    by a partial (EDDI) or vanilla encoder and decoded into junction logits whose likelihood
    (binomial, beta-binomial or Dirichlet-multinomial within each ATSE) is evaluated on observed
    entries only. The two posteriors are mixed per cell (:class:`~splicevi.nn.ModalityMixer`), and
    a cell lacking one modality takes its posterior from the other.

    Parameters
    ----------
    n_input_genes
        Number of genes; 0 turns the expression branch off (splicing-only data).
    n_input_junctions
        Number of junctions.
    junction_event_codes
        ATSE index of each junction (``int``, length ``n_input_junctions``). Stored as the buffer
        ``junc2atse`` so a saved module carries its junction → ATSE map.
    splicing_offset
        Columns before the first junction in the splicing tensors (genes and junctions
        concatenated in one AnnData); 0 for MuData input.
    splicing_weight_prior_sd
        Standard deviation of a Gaussian prior on the splicing decoder's junction weights (MAP;
        ``None``: no prior). Pass it to :class:`splicevi.SPLICEVI` as a keyword argument.
    splicing_encoder_weighting
        ``none`` or ``reads``: the partial encoder weighs each observed entry by the information
        of its ATSE's reads (:func:`read_information`), so a PSI from one read counts less than
        one from ten. Set by :class:`splicevi.SPLICEVI`.
    splicing_encoder_selection
        Whether the partial encoder reads only the junctions whose ``encoder_junction_weight`` is
        non-zero (the highly variable ATSEs chosen by :class:`splicevi.SPLICEVI`).
    splicing_reconstruction_weight
        Factor on the splicing reconstruction term of the training loss (1: the ELBO). Above 1 it
        balances a splicing likelihood of a few hundred reads per cell against an expression
        likelihood of thousands, which otherwise decides the latent alone. Set by
        :class:`splicevi.SPLICEVI` (a number, or resolved from the data with ``"balanced"``).
    splicing_latent_weight
        Factor on the gradient that the splicing reconstruction sends into the latent (and so into
        the encoders) during training; the decoder and the reported loss still follow the ELBO.
        Above 1 the latent is shaped more by a cell's few junction reads without letting the
        decoder fit them (which the reconstruction weight does). Set by :class:`splicevi.SPLICEVI`.

    Other Parameters
    ----------------
    **module_kwargs
        As in :class:`splicevi.SPLICEVI`.
    """

    def __init__(
        self,
        n_input_genes: int,
        n_input_junctions: int,
        junction_event_codes: np.ndarray,
        splicing_offset: int = 0,
        modality_weights: str = "equal",
        modality_penalty: str = "Jeffreys",
        n_batch: int = 0,
        n_obs: int = 0,
        n_labels: int = 0,
        gene_likelihood: str = "zinb",
        gene_dispersion: str = "gene",
        n_hidden: int | None = None,
        n_latent: int | None = None,
        n_layers_encoder: int = 2,
        n_layers_decoder: int = 2,
        n_continuous_cov: int = 0,
        n_cats_per_cov: Iterable[int] | None = None,
        dropout_rate: float = 0.1,
        use_batch_norm: str = "none",
        use_layer_norm: str = "both",
        latent_distribution: str = "normal",
        deeply_inject_covariates: bool = False,
        encode_covariates: bool = False,
        use_size_factor_key: bool = False,
        splicing_encoder_architecture: str = "partial",
        splicing_decoder_architecture: str = "linear",
        expression_architecture: str = "linear",
        splicing_loss_type: str = "dirichlet_multinomial",
        splicing_concentration: float | None = None,
        dm_concentration: str = "atse",
        encoder_hidden_dim: int = 128,
        code_dim: int = 16,
        pool_mode: str = "mean",
        max_nobs: int = -1,
        splicing_weight_prior_sd: float | None = 0.1,
        splicing_encoder_weighting: str = "none",
        splicing_encoder_selection: bool = False,
        splicing_reconstruction_weight: float = 1.0,
        splicing_latent_weight: float = 1.0,
    ):
        super().__init__()
        check_options(
            splicing_encoder_weighting=splicing_encoder_weighting,
            dm_concentration=dm_concentration,
            gene_likelihood=gene_likelihood,
            gene_dispersion=gene_dispersion,
            modality_penalty=modality_penalty,
            modality_weights=modality_weights,
            splicing_encoder_architecture=splicing_encoder_architecture,
            splicing_decoder_architecture=splicing_decoder_architecture,
            expression_architecture=expression_architecture,
            latent_distribution=latent_distribution,
            use_batch_norm=use_batch_norm,
            use_layer_norm=use_layer_norm,
            pool_mode=pool_mode,
        )
        self.likelihood = splicing_likelihood(splicing_loss_type)
        codes = torch.as_tensor(np.asarray(junction_event_codes), dtype=torch.long)
        if codes.shape[0] != n_input_junctions:
            raise ValueError(
                f"junction_event_codes has {codes.shape[0]} entries for {n_input_junctions} junctions"
            )
        self.n_input_genes = int(n_input_genes)
        self.n_input_junctions = int(n_input_junctions)
        self.splicing_offset = int(splicing_offset)
        self.n_batch = n_batch
        self.n_hidden = (
            int(n_hidden) if n_hidden is not None else default_hidden_width(n_input_genes, n_input_junctions)
        )
        self.n_latent = int(n_latent) if n_latent is not None else 30
        self.latent_distribution = latent_distribution
        self.gene_likelihood = gene_likelihood
        self.gene_dispersion = gene_dispersion
        self.modality_penalty = modality_penalty
        self.modality_weights = modality_weights
        self.splicing_loss_type = splicing_loss_type
        self.splicing_encoder_architecture = splicing_encoder_architecture
        self.encode_covariates = encode_covariates
        self.use_size_factor_key = use_size_factor_key
        if splicing_weight_prior_sd is not None and splicing_weight_prior_sd <= 0:
            raise ValueError(
                f"splicing_weight_prior_sd must be positive or None, got {splicing_weight_prior_sd}"
            )
        self.splicing_weight_prior_sd = splicing_weight_prior_sd
        if not splicing_reconstruction_weight > 0:
            raise ValueError(
                f"splicing_reconstruction_weight must be positive, got {splicing_reconstruction_weight}"
            )
        # A buffer: SPLICEVI may resolve it from the data ("balanced"), and a saved module keeps it.
        self.register_buffer(
            "splicing_reconstruction_weight", torch.tensor(float(splicing_reconstruction_weight))
        )
        if not splicing_latent_weight > 0:
            raise ValueError(f"splicing_latent_weight must be positive, got {splicing_latent_weight}")
        self.register_buffer("splicing_latent_weight", torch.tensor(float(splicing_latent_weight)))
        self.n_obs = max(int(n_obs), 1)

        # Junction -> ATSE map and its CSR inverse (ATSE -> junctions), saved with the module.
        n_events = int(codes.max().item()) + 1 if codes.numel() else 0
        self.n_events = n_events
        order = torch.argsort(codes, stable=True)
        sizes = torch.bincount(codes, minlength=n_events)
        self.register_buffer("junc2atse", codes)
        self.register_buffer(
            "atse_ptr", torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        )
        self.register_buffer("atse_junctions", order)
        # Per-junction centre of PSI (mean over the cells observing it): both splicing encoders see
        # PSI minus this centre, so an unobserved entry and one at its usual value both read as 0.
        # Set from the data by SPLICEVI (initialize_splicing_encoder) and saved with the module.
        self.register_buffer("psi_center", torch.full((n_input_junctions,), 0.5))
        # Pooling weights of the partial encoder: per junction (1 for the junctions of the ATSEs the
        # encoder reads, 0 for the others; all 1 without a selection) and, with ``reads``, the
        # information of each entry's reads. Set by SPLICEVI (initialize_splicing_encoder).
        self.splicing_encoder_weighting = splicing_encoder_weighting
        self.splicing_encoder_selection = bool(splicing_encoder_selection)
        self.register_buffer("encoder_junction_weight", torch.ones(n_input_junctions))

        cat_list = [n_batch] + list(n_cats_per_cov or [])
        encoder_cat_list = cat_list if encode_covariates else None
        n_cont_enc = n_continuous_cov * int(encode_covariates)
        bn_enc, bn_dec = _where(use_batch_norm, "encoder"), _where(use_batch_norm, "decoder")
        ln_enc, ln_dec = _where(use_layer_norm, "encoder"), _where(use_layer_norm, "decoder")
        self.mixer = ModalityMixer(modality_weights, self.n_latent, n_obs=n_obs)
        n_joint = self.n_latent * (2 if modality_weights == "concatenate" else 1)
        self.n_joint_latent = n_joint
        n_decoder_input = n_joint + n_continuous_cov

        def gaussian_encoder(n_input: int) -> Encoder:
            """scVI encoder of one modality into the latent (shared settings of both branches)."""
            return Encoder(
                n_input=n_input,
                n_output=self.n_latent,
                n_cat_list=encoder_cat_list,
                n_layers=n_layers_encoder,
                n_hidden=self.n_hidden,
                dropout_rate=dropout_rate,
                distribution=latent_distribution,
                var_eps=1e-4,
                use_batch_norm=bn_enc,
                use_layer_norm=ln_enc,
                return_dist=False,
            )

        # --- expression branch ---
        if self.n_input_genes > 0:
            self.z_encoder_expression = gaussian_encoder(self.n_input_genes + n_cont_enc)
            scale_activation = "softplus" if use_size_factor_key else "softmax"
            if expression_architecture == "linear":
                self.z_decoder_expression = LinearDecoderSCVI(
                    n_decoder_input,
                    self.n_input_genes,
                    n_cat_list=cat_list,
                    use_batch_norm=bn_dec,
                    use_layer_norm=ln_dec,
                    # A bias (per-gene baseline) also keeps scArches' online-update hooks working.
                    bias=True,
                )
            else:
                self.z_decoder_expression = DecoderSCVI(
                    n_decoder_input,
                    self.n_input_genes,
                    n_cat_list=cat_list,
                    n_layers=n_layers_decoder,
                    n_hidden=self.n_hidden,
                    inject_covariates=deeply_inject_covariates,
                    use_batch_norm=bn_dec,
                    use_layer_norm=ln_dec,
                    scale_activation=scale_activation,
                )
            if gene_dispersion == "gene":
                self.px_r = torch.nn.Parameter(torch.randn(self.n_input_genes))
            elif gene_dispersion == "gene-batch":
                self.px_r = torch.nn.Parameter(torch.randn(self.n_input_genes, n_batch))
            elif gene_dispersion == "gene-label":
                self.px_r = torch.nn.Parameter(torch.randn(self.n_input_genes, max(n_labels, 1)))
            else:
                self.px_r = None  # gene-cell: from the decoder

        # --- splicing branch ---
        if splicing_encoder_architecture == "partial":
            self.z_encoder_splicing = PartialEncoder(
                n_junctions=self.n_input_junctions,
                n_output=self.n_latent,
                code_dim=code_dim,
                encoder_hidden_dim=encoder_hidden_dim,
                n_layers=n_layers_encoder,
                n_cat_list=encoder_cat_list,
                n_continuous=n_cont_enc,
                dropout_rate=dropout_rate,
                use_batch_norm=bn_enc,
                use_layer_norm=ln_enc,
                pool_mode=pool_mode,
                max_nobs=max_nobs,
                distribution=latent_distribution,
            )
        else:
            # Vanilla: dense minibatch of [centred PSI, observed mask] (the mask tells "observed at its
            # usual value" apart from "not observed").
            self.z_encoder_splicing = gaussian_encoder(2 * self.n_input_junctions + n_cont_enc)
        self.z_decoder_splicing = SplicingDecoder(
            n_decoder_input,
            self.n_input_junctions,
            architecture=splicing_decoder_architecture,
            n_cat_list=cat_list,
            n_layers=n_layers_decoder,
            n_hidden=self.n_hidden,
            use_batch_norm=bn_dec,
            use_layer_norm=ln_dec,
            inject_covariates=deeply_inject_covariates,
        )
        # log φ as the likelihood sets it up: learned (a parameter), fixed (a buffer) or none.
        initial = self.likelihood.initial_log_concentration(
            self.n_input_junctions, n_events, splicing_concentration, dm_concentration
        )
        if initial is None:
            self.log_concentration = None
        elif initial[1]:
            self.log_concentration = torch.nn.Parameter(initial[0])
        else:
            self.register_buffer("log_concentration", initial[0])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Models saved before encoder weights existed read every junction with weight 1.
        state_dict.setdefault(
            prefix + "encoder_junction_weight", torch.ones_like(self.encoder_junction_weight)
        )
        # Models saved before the splicing reconstruction weight existed weigh it 1.
        state_dict.setdefault(prefix + "splicing_reconstruction_weight", torch.ones(()))
        state_dict.setdefault(prefix + "splicing_latent_weight", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ inputs
    def _get_inference_input(self, tensors: dict) -> dict:
        return {
            "x": tensors.get(REGISTRY_KEYS.X_KEY),
            **{names[0]: tensors.get(key) for key, names in SPLICING_FIELD_NAMES.items()},
            "batch_index": tensors[REGISTRY_KEYS.BATCH_KEY],
            "cont_covs": tensors.get(REGISTRY_KEYS.CONT_COVS_KEY),
            "cat_covs": tensors.get(REGISTRY_KEYS.CAT_COVS_KEY),
            "cell_idx": tensors.get(REGISTRY_KEYS.INDICES_KEY),
            "size_factor": tensors.get(REGISTRY_KEYS.SIZE_FACTOR_KEY),
        }

    def _get_generative_input(
        self, tensors: dict, inference_outputs: dict, transform_batch=None, use_z_mean: bool = False
    ) -> dict:
        """Inputs of :meth:`generative`; ``use_z_mean`` decodes the (transformed) posterior mean, not a sample."""
        batch_index = tensors[REGISTRY_KEYS.BATCH_KEY]
        if transform_batch is not None:
            batch_index = torch.ones_like(batch_index) * transform_batch
        z = self.z_transformation(inference_outputs["qz_m"]) if use_z_mean else inference_outputs["z"]
        return {
            "z": z,
            "library": inference_outputs["library"],
            "batch_index": batch_index,
            "cont_covs": tensors.get(REGISTRY_KEYS.CONT_COVS_KEY),
            "cat_covs": tensors.get(REGISTRY_KEYS.CAT_COVS_KEY),
            "label": tensors.get(REGISTRY_KEYS.LABELS_KEY),
            "observed": inference_outputs["observed"],
        }

    def observed(
        self,
        junction_counts: torch.Tensor,
        atse_counts: torch.Tensor | None = None,
        psi_mask: torch.Tensor | None = None,
        junction_ratio: torch.Tensor | None = None,
    ) -> ObservedEntries:
        """Observed splicing entries of a minibatch (see :func:`observed_entries`)."""
        if junction_counts is None:
            # Reference layout without counts: k = ratio × n.
            if junction_ratio is None or atse_counts is None:
                raise ValueError("splicing needs junction counts, or junction ratios with ATSE counts")
            junction_counts = _sparse_product(junction_ratio, atse_counts)
        return observed_entries(
            junction_counts,
            self.junc2atse,
            self.atse_ptr,
            self.atse_junctions,
            atse_counts=atse_counts,
            psi_mask=psi_mask,
            offset=self.splicing_offset,
        )

    # ------------------------------------------------------------------ inference
    @auto_move_data
    def inference(
        self,
        x,
        junction_counts,
        atse_counts,
        psi_mask,
        junction_ratio,
        batch_index,
        cont_covs=None,
        cat_covs=None,
        cell_idx=None,
        size_factor=None,
        n_samples: int = 1,
    ) -> dict:
        """Encode both modalities and mix them into the joint posterior."""
        obs = self.observed(junction_counts, atse_counts, psi_mask, junction_ratio)
        n_cells = batch_index.shape[0]
        device = batch_index.device
        categorical_input = (
            torch.split(cat_covs, 1, dim=1) if (cat_covs is not None and self.encode_covariates) else ()
        )
        enc_cats = (batch_index, *categorical_input) if self.encode_covariates else ()
        cont_in = cont_covs if (cont_covs is not None and self.encode_covariates) else None

        # Splicing posterior.
        centred = obs.psi - self.psi_center.index_select(0, obs.cols)
        if self.splicing_encoder_architecture == "partial":
            qzm_spl, qzv_spl, z_spl = self.z_encoder_splicing(
                obs, centred, *enc_cats, cont=cont_in, weight=self.encoder_entry_weight(obs)
            )
        else:
            dense = torch.zeros(n_cells, 2 * self.n_input_junctions, device=device)
            dense[obs.rows, obs.cols] = centred
            dense[obs.rows, obs.cols + self.n_input_junctions] = 1.0
            if cont_in is not None:
                dense = torch.cat([dense, cont_in], dim=-1)
            qzm_spl, qzv_spl, z_spl = self.z_encoder_splicing(dense, *enc_cats)
        mask_spl = obs.cell_has_splicing()

        means, variances, masks = [], [], []
        outputs: dict = {}
        if self.n_input_genes > 0:
            x = _dense(x)[:, : self.n_input_genes]
            mask_expr = x.sum(dim=1) > 0
            if self.use_size_factor_key and size_factor is not None:
                library = torch.log(size_factor[:, [0]] + 1e-6)
            else:
                library = torch.log(x.sum(dim=1, keepdim=True).clamp_min(1.0))
            x_in = torch.log1p(x)
            if cont_in is not None:
                x_in = torch.cat([x_in, cont_in], dim=-1)
            qzm_expr, qzv_expr, z_expr = self.z_encoder_expression(x_in, *enc_cats)
            means.append(qzm_expr)
            variances.append(qzv_expr)
            masks.append(mask_expr)
            outputs.update(qzm_expr=qzm_expr, qzv_expr=qzv_expr, z_expr=z_expr, mask_expr=mask_expr, x=x)
        else:
            library = torch.zeros(n_cells, 1, device=device)
        means.append(qzm_spl)
        variances.append(qzv_spl)
        masks.append(mask_spl)
        qz_m, qz_v = self.mixer(means, variances, masks, cell_idx)

        dist = Normal(qz_m, qz_v.sqrt())
        if n_samples > 1:
            untran_z = dist.sample((n_samples,))
            library = library.unsqueeze(0).expand(n_samples, -1, -1)
        else:
            untran_z = dist.rsample()
        z = self.z_transformation(untran_z)
        outputs.update(
            z=z,
            qz_m=qz_m,
            qz_v=qz_v,
            qzm_spl=qzm_spl,
            qzv_spl=qzv_spl,
            z_spl=z_spl,
            mask_spl=mask_spl,
            library=library,
            observed=obs,
        )
        return outputs

    def encoder_entry_weight(self, obs: ObservedEntries) -> torch.Tensor | None:
        """Pooling weight of each observed entry in the partial encoder (``None``: unweighted).

        The weight is the entry's junction weight (its ATSE selected or not) times, with
        ``splicing_encoder_weighting="reads"``, the information of its ATSE's ``n`` reads,
        :func:`read_information`.
        """
        if not self.splicing_encoder_selection and self.splicing_encoder_weighting == "none":
            return None
        weight = self.encoder_junction_weight.index_select(0, obs.cols)
        if self.splicing_encoder_weighting == "reads":
            weight = weight * read_information(obs.n)
        return weight

    @torch.no_grad()
    def initialize_splicing_encoder(
        self,
        centred,
        center: np.ndarray,
        pca_embeddings: bool = True,
        junction_weight: np.ndarray | None = None,
        entry_totals: np.ndarray | None = None,
    ) -> None:
        """Set the PSI centre, start the decoder at it and (partial encoder) the embeddings at an SVD.

        The splicing decoder's per-junction bias starts at the centre (``log c_j`` for the
        within-ATSE softmax of the Dirichlet-multinomial, ``logit c_j`` otherwise): a decoder that
        starts at uniform PSI sends a large reconstruction gradient through the encoder in the
        first steps, which scrambles the information the encoder starts with.

        Parameters
        ----------
        centred
            Cells × junctions CSR of centred PSI on observed entries (training data).
        center
            Per-junction centre (mean observed PSI).
        pca_embeddings
            Initialise the partial encoder's embeddings at the top right singular vectors of
            ``centred`` (otherwise they stay random), weighted as the encoder pools.
        junction_weight
            Per-junction pooling weight of the partial encoder (1 for the junctions of the selected
            ATSEs, 0 otherwise); ``None`` keeps every junction at 1.
        entry_totals
            ATSE reads ``n`` of each stored entry of ``centred`` (needed with
            ``splicing_encoder_weighting="reads"``).
        """
        self.psi_center.copy_(
            torch.as_tensor(np.asarray(center), dtype=torch.float32, device=self.psi_center.device)
        )
        if junction_weight is not None:
            self.encoder_junction_weight.copy_(
                torch.as_tensor(np.asarray(junction_weight), dtype=torch.float32)
            )
        row_weight = None
        if self.splicing_encoder_selection or self.splicing_encoder_weighting != "none":
            # The SVD sees what the encoder pools: weighted entries, mean over the cell's weight.
            entry_weight = self.encoder_junction_weight.cpu().numpy()[centred.indices].astype(np.float64)
            if self.splicing_encoder_weighting == "reads":
                if entry_totals is None:
                    raise ValueError("entry_totals are needed to weight the SVD by reads")
                entry_weight = entry_weight * read_information(torch.as_tensor(entry_totals)).numpy()
            centred = centred.copy()
            centred.data = (centred.data * entry_weight).astype(np.float32)
            rows = np.repeat(np.arange(centred.shape[0]), np.diff(centred.indptr))
            row_weight = np.bincount(rows, weights=entry_weight, minlength=centred.shape[0])
            centred.eliminate_zeros()
        p = self.psi_center.clamp(1e-3, 1.0 - 1e-3)
        self.z_decoder_splicing.bias.copy_(self.likelihood.decoder_bias(p))
        if pca_embeddings and self.splicing_encoder_architecture == "partial":
            self.z_encoder_splicing.initialize_embeddings(centred, row_weight=row_weight)

    def z_transformation(self, z: torch.Tensor) -> torch.Tensor:
        """Identity (normal) or softmax (logistic normal) of a Gaussian sample."""
        return torch.softmax(z, dim=-1) if self.latent_distribution == "ln" else z

    # ------------------------------------------------------------------ generative
    def _decoder_input(self, z: torch.Tensor, cont_covs: torch.Tensor | None) -> torch.Tensor:
        if cont_covs is None:
            return z
        if z.dim() != cont_covs.dim():
            cont_covs = cont_covs.unsqueeze(0).expand(z.shape[0], -1, -1)
        return torch.cat([z, cont_covs], dim=-1)

    @auto_move_data
    def generative(
        self,
        z,
        library,
        batch_index,
        cont_covs=None,
        cat_covs=None,
        label=None,
        observed: ObservedEntries | None = None,
        transform_batch: int | None = None,
    ) -> dict:
        """Decode expression (dense, genes) and splicing logits (observed entries only)."""
        if transform_batch is not None:
            batch_index = torch.ones_like(batch_index) * transform_batch
        categorical_input = torch.split(cat_covs, 1, dim=1) if cat_covs is not None else ()
        decoder_input = self._decoder_input(z, cont_covs)
        outputs: dict = {}
        if self.n_input_genes > 0:
            px_scale, px_r, px_rate, px_dropout = self.z_decoder_expression(
                self.gene_dispersion, decoder_input, library, batch_index, *categorical_input
            )
            if self.gene_dispersion == "gene-label":
                px_r = F.linear(F.one_hot(label.squeeze(-1).long(), self.px_r.shape[1]).float(), self.px_r)
            elif self.gene_dispersion == "gene-batch":
                px_r = F.linear(F.one_hot(batch_index.squeeze(-1).long(), self.n_batch).float(), self.px_r)
            elif self.gene_dispersion == "gene":
                px_r = self.px_r
            outputs.update(px_scale=px_scale, px_r=torch.exp(px_r), px_rate=px_rate, px_dropout=px_dropout)
        if observed is not None and decoder_input.dim() == 2:
            splicing_input = decoder_input
            if self.training:
                # The factor stays a tensor: reading it as a float would sync the GPU every step.
                splicing_input = scale_gradient(decoder_input, self.splicing_latent_weight)
            logits = self.z_decoder_splicing.logits_at(
                splicing_input,
                observed.rows,
                observed.cols,
                batch_index,
                *categorical_input,
                layout=observed.layout(),
            )
            outputs["splicing_logits"] = logits
        return outputs

    def splicing_concentration_per_junction(self) -> torch.Tensor:
        """Concentration φ of each junction (its ATSE's for DM; its own for beta-binomial).

        Raises
        ------
        ValueError
            For a likelihood without concentration (``self.likelihood.has_concentration`` is false).
        """
        if self.log_concentration is None:
            raise ValueError(f"the {self.splicing_loss_type} splicing likelihood has no concentration")
        return self.likelihood.concentration_per_junction(self.log_concentration.exp(), self.junc2atse)

    @torch.inference_mode()
    def decode_psi(
        self,
        z: torch.Tensor,
        batch_index: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        cont_covs: torch.Tensor | None = None,
        junction_idx: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoded PSI ``p`` of the cells in ``z`` (2-D or samples × cells × latent).

        The likelihood's link makes PSI of the logits; a link within the ATSE (Dirichlet-
        multinomial: softmax) decodes all junctions of each requested junction's ATSE.
        """
        categorical_input = torch.split(cat_covs, 1, dim=1) if cat_covs is not None else ()
        decoder_input = self._decoder_input(z, cont_covs)
        if not self.likelihood.within_atse:
            logits = self.z_decoder_splicing.dense_logits(
                decoder_input, batch_index, *categorical_input, cols=junction_idx
            )
            return self.likelihood.psi(logits, None, self.n_events)
        if junction_idx is None:
            cols = torch.arange(self.n_input_junctions, device=z.device)
        else:
            # All junctions of the requested junctions' ATSEs (ascending), for the within-ATSE softmax.
            events = torch.unique(self.junc2atse[junction_idx])
            cols = torch.nonzero(torch.isin(self.junc2atse, events)).view(-1)
        logits = self.z_decoder_splicing.dense_logits(
            decoder_input, batch_index, *categorical_input, cols=cols
        )
        psi = self.likelihood.psi(logits, self.junc2atse[cols], self.n_events)
        if junction_idx is None:
            return psi
        position = torch.searchsorted(cols, junction_idx)
        return psi[..., position]

    # ------------------------------------------------------------------ loss
    def splicing_log_likelihood(self, obs: ObservedEntries, logits: torch.Tensor) -> torch.Tensor:
        """Splicing log-likelihood per cell, summed over its observed entries / ATSEs."""
        if obs.rows.numel() == 0:
            return torch.zeros(obs.n_cells, device=logits.device)
        return self.likelihood.log_likelihood(obs, logits, self.log_concentration)

    def expression_log_likelihood(self, x: torch.Tensor, generative_outputs: dict) -> torch.Tensor:
        """Expression log-likelihood per cell."""
        px_rate = generative_outputs["px_rate"]
        if self.gene_likelihood == "zinb":
            dist = ZeroInflatedNegativeBinomial(
                mu=px_rate, theta=generative_outputs["px_r"], zi_logits=generative_outputs["px_dropout"]
            )
        elif self.gene_likelihood == "nb":
            dist = NegativeBinomial(mu=px_rate, theta=generative_outputs["px_r"])
        else:
            dist = Poisson(px_rate)
        return dist.log_prob(x).sum(dim=-1)

    def loss(self, tensors, inference_outputs, generative_outputs, kl_weight: float = 1.0) -> LossOutput:
        """Negative ELBO: reconstruction of both modalities, KL of the joint posterior, penalty."""
        obs: ObservedEntries = inference_outputs["observed"]
        rl_spl = -self.splicing_log_likelihood(obs, generative_outputs["splicing_logits"])
        mask_spl = inference_outputs["mask_spl"]
        recon = {"reconstruction_loss_splicing": rl_spl}
        # The weight scales only the training objective; the reported reconstruction stays the likelihood.
        total_recon = self.splicing_reconstruction_weight * rl_spl
        if self.n_input_genes > 0:
            mask_expr = inference_outputs["mask_expr"]
            rl_expr = -self.expression_log_likelihood(inference_outputs["x"], generative_outputs) * mask_expr
            recon["reconstruction_loss_expression"] = rl_expr
            total_recon = total_recon + rl_expr
        qz_m, qz_v = inference_outputs["qz_m"], inference_outputs["qz_v"]
        kl_z = kld(Normal(qz_m, qz_v.sqrt()), Normal(0.0, 1.0)).sum(dim=1)
        if self.n_input_genes > 0:
            penalty = self._modality_penalty(inference_outputs, inference_outputs["mask_expr"] & mask_spl)
        else:
            penalty = torch.zeros_like(kl_z)
        loss = torch.mean(total_recon + kl_weight * kl_z + penalty) + self._splicing_weight_prior()
        return LossOutput(
            loss=loss,
            reconstruction_loss=recon,
            kl_local={"kl_divergence_z": kl_z, "kl_divergence_paired": penalty},
        )

    def _splicing_weight_prior(self) -> torch.Tensor:
        """Negative log of a Gaussian prior on the splicing decoder's junction weights, per cell.

        Each junction is observed in few cells and most do not change with cell state, so
        unregularised weights fit sampling noise. The prior ``N(0, sd²)`` makes the weights MAP
        estimates; divided by the number of cells it adds up to one prior per epoch.
        """
        if self.splicing_weight_prior_sd is None:
            return torch.zeros((), device=self.z_decoder_splicing.weight.device)
        squared = self.z_decoder_splicing.weight.pow(2).sum()
        return squared / (2.0 * self.splicing_weight_prior_sd**2 * self.n_obs)

    def _modality_penalty(self, io: dict, paired: torch.Tensor) -> torch.Tensor:
        """Alignment penalty between the expression and splicing posteriors of paired cells."""
        zeros = torch.zeros(paired.shape[0], device=paired.device)
        if self.modality_penalty == "None" or not bool(paired.any()):
            return zeros
        if self.modality_penalty == "Jeffreys":
            q_e = Normal(io["qzm_expr"], io["qzv_expr"].sqrt())
            q_s = Normal(io["qzm_spl"], io["qzv_spl"].sqrt())
            sym = (kld(q_e, q_s) + kld(q_s, q_e)).sum(dim=1)
            return torch.where(paired, sym, zeros)
        # MMD with a Gaussian kernel between the two modalities' posterior means of paired cells,
        # spread evenly over those cells.
        a, b = io["qzm_expr"][paired], io["qzm_spl"][paired]
        mmd = _gaussian_mmd(a, b)
        return torch.where(paired, mmd.expand_as(zeros), zeros)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by a constant."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


def scale_gradient(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``x`` unchanged, with the gradient flowing back through it multiplied by ``factor``.

    The splicing decoder reads the latent through it, so the splicing term's pull on the latent
    (the encoders) is ``factor`` times its pull in the ELBO while the decoder's own gradient is not.
    """
    return _ScaleGradient.apply(x, factor)


def _gaussian_mmd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Biased squared MMD between two samples with a Gaussian kernel (median-free, bandwidth = dim)."""
    bandwidth = float(a.shape[1])

    def kernel(x, y):
        return torch.exp(-torch.cdist(x, y).pow(2) / bandwidth).mean()

    return kernel(a, a) + kernel(b, b) - 2.0 * kernel(a, b)


def _dense(x: torch.Tensor) -> torch.Tensor:
    """Dense view of a minibatch tensor (gene counts are densified per minibatch, like scVI)."""
    return x.to_dense() if x.layout != torch.strided else x


def _sparse_product(ratio: torch.Tensor, totals: torch.Tensor) -> torch.Tensor:
    """Element-wise ratio × totals (junction counts from a ratio layer), rounded to integers."""
    if ratio.layout == torch.strided and totals.layout == torch.strided:
        return torch.round(ratio * totals)
    product = ratio.to_sparse_coo() * totals.to_sparse_coo()
    product = product.coalesce()
    return torch.sparse_coo_tensor(product.indices(), torch.round(product.values()), product.shape)


#: Intra-cell correlation of reads assumed by :func:`read_information` (a Dirichlet-multinomial
#: concentration of 9): n reads of one cell's ATSE are worth at most 1/ρ independent reads.
READ_CORRELATION = 0.1


def read_information(n: torch.Tensor, rho: float = READ_CORRELATION) -> torch.Tensor:
    """Effective number of independent reads among ``n`` overdispersed ones: ``n / (1 + (n - 1) ρ)``.

    The variance of an observed PSI from ``n`` Dirichlet-multinomial reads is ``p(1-p)(1 + (n-1)ρ) / n``;
    its inverse (up to ``p(1-p)``) weighs an entry in the partial encoder: one read counts 1, a
    hundred count about ``1/ρ``.
    """
    n = n.to(torch.float32)
    return n / (1.0 + (n - 1.0).clamp_min(0.0) * rho)
