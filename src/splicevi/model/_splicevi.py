"""SPLICEVI: the user-facing model (scvi-tools mixins), like MULTIVI with a splicing branch."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.model.base import ArchesMixin, BaseModelClass, UnsupervisedTrainingMixin, VAEMixin
from torch.distributions import Normal

from .._constants import (
    ATSE_COUNTS_KEY,
    JUNCTION_COUNTS_KEY,
    JUNCTION_RATIO_KEY,
    PSI_MASK_KEY,
    SPLICING_FIELD_NAMES,
)
from ..data.layers import (
    ATSE_COUNTS,
    JUNCTION_COUNTS,
    JUNCTION_RATIO,
    centred_psi,
    derivable_layers,
    junction_mean_psi,
    splicing_layers,
)
from ..data.variable_atses import DEFAULT_N_TOP, atse_variation, select_variable_atses
from ..module import SPLICEVAE
from ._analysis import SplicingAnalysisMixin
from ._model_file import read_model_file, serve_checked_model_file
from ._training import SparseDataSplitter, SplicingTrainingPlan
from ._validation import check_k_le_n, check_shapes, check_values, get_matrix, junction_event_codes

#: Cells used by the SVD that initialises the partial encoder's junction embeddings.
SVD_INIT_MAX_CELLS = 10_000

#: Keywords scvi-tools passes to a setup method when it transfers a saved setup (load, scArches).
_TRANSFER_KWARGS = ("source_registry", "extend_categories", "allow_missing_labels")

#: setup_mudata arguments that name a layer of the splicing modality.
_SPLICING_LAYER_ARGS = tuple(names[1] for names in SPLICING_FIELD_NAMES.values())


class SPLICEVI(SplicingAnalysisMixin, VAEMixin, UnsupervisedTrainingMixin, ArchesMixin, BaseModelClass):
    """Integration of gene expression and alternative splicing (SpliceVI).

    A multimodal VAE in the manner of MULTIVI: an expression encoder (scVI) and a splicing encoder
    (missingness-aware partial encoder by default) give two posteriors that are mixed into a joint
    latent; an expression decoder and a splicing decoder reconstruct both modalities. The splicing
    likelihood (binomial, beta-binomial or Dirichlet-multinomial per ATSE) is evaluated on the
    observed (cell, junction) entries only, and minibatches stay sparse end to end.

    Parameters
    ----------
    adata
        MuData (or concatenated AnnData) registered with :meth:`setup_mudata` / :meth:`setup_anndata`.
    n_genes, n_junctions
        Numbers of gene and junction columns. Required for a concatenated AnnData (genes first);
        read from the modalities for MuData.
    modality_weights
        ``equal`` (default), ``universal``, ``cell``, ``concatenate``,
        ``per_dimension_weighted_average`` or ``precision`` (precision-weighted product of the
        experts; see :class:`~splicevi.nn.ModalityMixer`).
    modality_penalty
        ``None`` (default; also Python ``None``), ``Jeffreys`` (symmetric KL between the two
        posteriors, the reference implementation's default) or ``MMD`` (Gaussian-kernel MMD between
        the posterior means of paired cells). A penalty pulls the splicing posterior onto the
        expression posterior, so cell groups that differ only in splicing can merge in the joint
        latent (measured in ``bench/quality.py``; results in ``bench/results``).
    gene_likelihood
        ``zinb``, ``nb`` or ``poisson``.
    dispersion
        ``gene``, ``gene-batch``, ``gene-label`` or ``gene-cell``.
    splicing_encoder_architecture
        ``partial`` (EDDI-style, observed entries only; see :class:`~splicevi.nn.PartialEncoder`)
        or ``vanilla`` (dense [centred PSI, mask] per minibatch). Both encoders see PSI centred on
        each junction's mean over the cells that observe it.
    splicing_decoder_architecture, expression_architecture
        ``linear`` or ``vanilla`` (MLP).
    n_hidden
        Width of the encoder/decoder MLPs; ``None`` → √(genes + junctions) clipped to [64, 256].
    n_latent
        Latent dimensionality per modality (the joint latent has twice this under
        ``concatenate``); ``None`` → 30.
    n_layers_encoder, n_layers_decoder, dropout_rate, use_batch_norm, use_layer_norm
        MLP options, as in MULTIVI.
    latent_distribution
        ``normal`` or ``ln``.
    deeply_inject_covariates, encode_covariates
        Covariate injection, as in MULTIVI.
    splicing_loss_type
        A registered splicing likelihood (:data:`splicevi.distributions.SPLICING_LIKELIHOODS`):
        ``binomial``, ``beta_binomial`` or ``dirichlet_multinomial`` unless more are registered.
    splicing_concentration
        Beta-binomial: a fixed concentration (learned per junction when ``None``). Dirichlet-
        multinomial: the initial concentration (default 10). Ignored for binomial.
    dm_concentration
        Dirichlet-multinomial concentration per ATSE (``atse``) or one ``scalar``.
    encoder_hidden_dim, code_dim, pool_mode, max_nobs
        Partial encoder options (see :class:`~splicevi.nn.PartialEncoder`).
    h_hidden_dim
        The reference API's width of a per-junction network, which this encoder does not have (its
        per-entry map is linear): accepted for that API's calls and ignored with a warning.
    initialize_embeddings_from_pca
        Start the partial encoder's junction embeddings at the leading right singular vectors of
        centred PSI (default ``True``): with the zero-initialised decoder weights and the encoder's
        linear path, the untrained splicing latent is the SVD baseline and training improves on it.
    fully_paired
        Expose only the joint latent.
    splicing_encoder_atses
        ``all`` or ``highly_variable``: the partial encoder reads only the junctions of the highly
        variable ATSEs (``var["highly_variable"]`` of the splicing modality when
        :func:`splicevi.pp.highly_variable_atses` wrote it; otherwise the most variable ATSEs of
        the training data by :func:`splicevi.data.variable_atses.atse_variation`). The decoder and
        the likelihood still use every ATSE.
    splicing_encoder_weighting
        ``none`` or ``reads``: the partial encoder weighs each observed entry by the information
        of its reads, ``n / (1 + (n - 1) ρ)`` (:func:`splicevi.module._splicevae.read_information`).
    splicing_reconstruction_weight
        Factor on the splicing reconstruction term of the training loss: ``1`` (the ELBO), a
        number, or ``"balanced"``: the median gene reads over the median junction reads per cell
        (at least 1), so that at droplet coverage the few junction reads of a cell are not
        drowned by its thousands of gene reads. At 3 % coverage it raises the separation of cell
        states that differ only in splicing but lowers the imputation of hidden ATSEs, hence off
        by default (``bench/results/quality.md``, section "Droplet coverage").
    splicing_latent_weight
        Factor on the gradient that the splicing reconstruction sends into the latent during
        training (``1``: the ELBO). The decoder and the reported loss still follow the ELBO, so,
        unlike the reconstruction weight, the decoder does not fit each cell's few reads. At
        droplet coverage ``5`` (with ``splicing_encoder_weighting="reads"`` and ``pool_mode="sum"``,
        the droplet recipe of the README) separates cell states that differ only in splicing far
        better than the default and leaves the differential splicing calls as they are; it stays
        1 by default because the latent then also carries more of each cell's read noise, which
        lowers the imputation of hidden ATSEs (``bench/results/quality_droplet_recipe.md``).
    **model_kwargs
        Passed to :class:`~splicevi.module.SPLICEVAE` (e.g. ``splicing_weight_prior_sd``, the prior
        standard deviation of the splicing decoder's junction weights, default 0.1; ``None`` or
        ``"none"``: no prior, part of the droplet recipe in the README).

    Examples
    --------
    >>> from splicevi.data import simulate
    >>> mdata = simulate(n_cells=200, n_genes=100, n_events=60).to_mudata()
    >>> SPLICEVI.setup_mudata(mdata, batch_key="batch")
    >>> model = SPLICEVI(mdata)
    >>> model.train(max_epochs=5)
    >>> latent = model.get_latent_representation()
    """

    _module_cls = SPLICEVAE
    _training_plan_cls = SplicingTrainingPlan
    _data_splitter_cls = SparseDataSplitter

    def __init__(
        self,
        adata: AnnData | MuData,
        modality_weights: Literal[
            "equal", "cell", "universal", "concatenate", "per_dimension_weighted_average", "precision"
        ] = "equal",
        modality_penalty: Literal["Jeffreys", "MMD", "None"] | None = "None",
        gene_likelihood: Literal["zinb", "nb", "poisson"] = "zinb",
        dispersion: Literal["gene", "gene-batch", "gene-label", "gene-cell"] = "gene",
        splicing_encoder_architecture: Literal["vanilla", "partial"] = "partial",
        splicing_decoder_architecture: Literal["vanilla", "linear"] = "linear",
        expression_architecture: Literal["vanilla", "linear"] = "linear",
        n_hidden: int | None = None,
        n_latent: int | None = None,
        n_layers_encoder: int = 2,
        n_layers_decoder: int = 2,
        dropout_rate: float = 0.1,
        use_batch_norm: Literal["encoder", "decoder", "none", "both"] = "none",
        use_layer_norm: Literal["encoder", "decoder", "none", "both"] = "both",
        latent_distribution: Literal["normal", "ln"] = "normal",
        deeply_inject_covariates: bool = False,
        encode_covariates: bool = False,
        splicing_loss_type: str = "dirichlet_multinomial",
        splicing_concentration: float | None = None,
        dm_concentration: Literal["atse", "scalar"] = "atse",
        encoder_hidden_dim: int = 128,
        code_dim: int = 16,
        h_hidden_dim: int | None = None,
        pool_mode: Literal["mean", "sum"] = "mean",
        max_nobs: int = -1,
        n_genes: int | None = None,
        n_junctions: int | None = None,
        initialize_embeddings_from_pca: bool = True,
        fully_paired: bool = False,
        splicing_encoder_atses: Literal["all", "highly_variable"] = "all",
        splicing_encoder_weighting: Literal["none", "reads"] = "none",
        splicing_reconstruction_weight: float | Literal["balanced"] = 1.0,
        splicing_latent_weight: float = 1.0,
        **model_kwargs,
    ):
        super().__init__(adata)
        # One meaning for "no penalty" whichever way it is spelled (Python None, "None", YAML null).
        modality_penalty = "None" if modality_penalty in (None, "none", "null") else modality_penalty
        # A config file's null means "the model default" (0.1), so "no prior" is spelled "none" there.
        if str(model_kwargs.get("splicing_weight_prior_sd", "")).lower() == "none":
            model_kwargs["splicing_weight_prior_sd"] = None
        is_mudata = isinstance(adata, MuData)
        splicing_var, offset = self._splicing_var(adata, n_genes)
        codes = junction_event_codes(splicing_var, where="splicing var")
        if is_mudata:
            rna_mod = self._modality_of("rna_layer")
            n_genes = adata.mod[rna_mod].n_vars if rna_mod is not None else 0
            n_junctions = splicing_var.shape[0]
        elif n_genes is None or n_junctions is None:
            raise ValueError("n_genes and n_junctions are required when the model is set up on an AnnData")
        if n_junctions != splicing_var.shape[0]:
            raise ValueError(
                f"n_junctions={n_junctions} but the data has {splicing_var.shape[0]} junction columns"
            )
        n_cats_per_cov = (
            self.adata_manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY).n_cats_per_key
            if REGISTRY_KEYS.CAT_COVS_KEY in self.adata_manager.data_registry
            else []
        )
        if h_hidden_dim is not None:
            warnings.warn(
                "h_hidden_dim has no effect: the partial encoder's per-entry map is linear "
                "(centred PSI times the junction embedding); see splicevi.nn.PartialEncoder",
                UserWarning,
                stacklevel=2,
            )
        if splicing_encoder_atses not in ("all", "highly_variable"):
            raise ValueError(
                f"splicing_encoder_atses must be 'all' or 'highly_variable', got {splicing_encoder_atses!r}"
            )
        balanced = splicing_reconstruction_weight == "balanced"
        if not balanced and not isinstance(splicing_reconstruction_weight, int | float):
            raise ValueError(
                "splicing_reconstruction_weight must be a positive number or 'balanced', "
                f"got {splicing_reconstruction_weight!r}"
            )
        if isinstance(splicing_latent_weight, bool) or not isinstance(splicing_latent_weight, int | float):
            raise ValueError(
                f"splicing_latent_weight must be a positive number, got {splicing_latent_weight!r}"
            )
        self.module = self._module_cls(
            n_input_genes=n_genes,
            n_input_junctions=n_junctions,
            junction_event_codes=codes,
            splicing_offset=offset,
            modality_weights=modality_weights,
            modality_penalty=modality_penalty,
            n_batch=self.summary_stats.n_batch,
            n_obs=adata.n_obs,
            n_labels=self.summary_stats.get("n_labels", 1),
            gene_likelihood=gene_likelihood,
            gene_dispersion=dispersion,
            n_hidden=n_hidden,
            n_latent=n_latent,
            n_layers_encoder=n_layers_encoder,
            n_layers_decoder=n_layers_decoder,
            n_continuous_cov=self.summary_stats.get("n_extra_continuous_covs", 0),
            n_cats_per_cov=n_cats_per_cov,
            dropout_rate=dropout_rate,
            use_batch_norm=use_batch_norm,
            use_layer_norm=use_layer_norm,
            latent_distribution=latent_distribution,
            deeply_inject_covariates=deeply_inject_covariates,
            encode_covariates=encode_covariates,
            use_size_factor_key=REGISTRY_KEYS.SIZE_FACTOR_KEY in self.adata_manager.data_registry,
            splicing_encoder_architecture=splicing_encoder_architecture,
            splicing_decoder_architecture=splicing_decoder_architecture,
            expression_architecture=expression_architecture,
            splicing_loss_type=splicing_loss_type,
            splicing_concentration=splicing_concentration,
            dm_concentration=dm_concentration,
            encoder_hidden_dim=encoder_hidden_dim,
            code_dim=code_dim,
            pool_mode=pool_mode,
            max_nobs=max_nobs,
            splicing_encoder_weighting=splicing_encoder_weighting,
            splicing_encoder_selection=splicing_encoder_atses == "highly_variable",
            splicing_reconstruction_weight=1.0 if balanced else splicing_reconstruction_weight,
            splicing_latent_weight=splicing_latent_weight,
            **model_kwargs,
        )
        self.n_genes = n_genes
        self.n_junctions = n_junctions
        self.fully_paired = fully_paired
        if balanced:
            self.module.splicing_reconstruction_weight.fill_(self._balanced_splicing_weight())
        self._model_summary_string = (
            f"SpliceVI model: genes {n_genes}, junctions {n_junctions}, ATSEs {self.module.n_events}, "
            f"latent {self.module.n_joint_latent}, hidden {self.module.n_hidden}, splicing loss {splicing_loss_type}, "
            f"encoder {splicing_encoder_architecture}, modality weights {modality_weights}, penalty {modality_penalty}, "
            f"splicing reconstruction weight {float(self.module.splicing_reconstruction_weight):.3g}, "
            f"splicing latent weight {float(self.module.splicing_latent_weight):.3g}"
        )
        self.init_params_ = self._get_init_params(locals())
        # Saved with the model (scvi-tools saves attributes ending in "_") so a load can say which
        # version wrote a file; a loaded model gets the saved value back.
        self.splicevi_version_ = _splicevi_version()
        self._initialize_splicing_encoder(pca_embeddings=initialize_embeddings_from_pca)

    # ------------------------------------------------------------------ helpers
    def _modality_of(self, arg: str) -> str | None:
        """Modality key registered for a setup argument (MuData only)."""
        setup_args = self.adata_manager.registry.get("setup_args", {})
        return (setup_args.get("modalities") or {}).get(arg)

    def _splicing_var(self, adata, n_genes: int | None):
        """Junction var table and the column offset of the junctions in the splicing tensors."""
        if isinstance(adata, MuData):
            mod = self._modality_of("junc_counts_layer") or self._modality_of("junc_ratio_layer")
            if mod is None or mod not in adata.mod:
                raise ValueError("no splicing modality registered; call SPLICEVI.setup_mudata first")
            return adata.mod[mod].var, 0
        if n_genes is None:
            raise ValueError("n_genes is required when the model is set up on an AnnData (genes first)")
        return adata.var.iloc[n_genes:], int(n_genes)

    def _training_junction_counts(self) -> sp.csr_matrix:
        """Junction counts ``k`` of the registered data (``ratio × n`` for the reference layout)."""
        offset = self.module.splicing_offset
        if JUNCTION_COUNTS_KEY in self.adata_manager.data_registry:
            k = sp.csr_matrix(self.adata_manager.get_from_registry(JUNCTION_COUNTS_KEY))
            # No column slice when there is nothing to drop: slicing copies the whole layer.
            return k[:, offset:] if offset else k
        ratio = sp.csr_matrix(self.adata_manager.get_from_registry(JUNCTION_RATIO_KEY))[:, offset:]
        totals = sp.csr_matrix(self.adata_manager.get_from_registry(ATSE_COUNTS_KEY))[:, offset:]
        k = ratio.multiply(totals).tocsr()
        k.data = np.round(k.data)
        return k

    def _balanced_splicing_weight(self) -> float:
        """Median gene reads over median junction reads per cell, at least 1 (``"balanced"``).

        Each modality's log-likelihood grows with its reads, so at droplet coverage (thousands of
        gene reads, a few hundred junction reads per cell) the expression term decides the latent
        and a cell state that only splicing tells apart is not encoded. Weighing the splicing term
        by the ratio of reads gives both modalities a comparable say; where junction reads are
        as many as gene reads (deep full-length data) the weight stays 1. Medians over the cells
        with reads of each modality; no gene reads (splicing-only model): 1.
        """
        if self.n_genes == 0 or REGISTRY_KEYS.X_KEY not in self.adata_manager.data_registry:
            return 1.0
        genes = sp.csr_matrix(self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY))[:, : self.n_genes]
        gene_reads = np.asarray(genes.sum(axis=1)).ravel()
        junction_reads = np.asarray(self._training_junction_counts().sum(axis=1)).ravel()
        gene_reads, junction_reads = gene_reads[gene_reads > 0], junction_reads[junction_reads > 0]
        if gene_reads.size == 0 or junction_reads.size == 0:
            return 1.0
        return float(max(1.0, np.median(gene_reads) / np.median(junction_reads)))

    def _initialize_splicing_encoder(self, pca_embeddings: bool) -> None:
        """PSI centre of every junction and (optionally) SVD-initialised junction embeddings.

        The centre uses every cell; the SVD at most :data:`SVD_INIT_MAX_CELLS` of them (a fixed
        random subset), which estimates the leading directions of centred PSI well and bounds the
        memory of the centred copy whatever the number of cells.
        """
        codes = self.module.junc2atse.cpu().numpy()
        k = self._training_junction_counts()
        center = junction_mean_psi(k, codes)
        junction_weight = (
            self._encoder_junction_weight(k, codes) if self.module.splicing_encoder_selection else None
        )
        if k.shape[0] > SVD_INIT_MAX_CELLS:
            rows = np.sort(np.random.default_rng(0).choice(k.shape[0], SVD_INIT_MAX_CELLS, replace=False))
            k = k[rows]
        centred = centred_psi(k, codes, center)
        totals = None
        if self.module.splicing_encoder_weighting == "reads":
            # n of every stored entry of ``centred`` (splicing_layers and centred_psi share the pattern).
            totals = splicing_layers(k, codes)[ATSE_COUNTS].data
        self.module.initialize_splicing_encoder(
            centred,
            center,
            pca_embeddings=pca_embeddings,
            junction_weight=junction_weight,
            entry_totals=totals,
        )

    def _encoder_junction_weight(self, k: sp.csr_matrix, codes: np.ndarray) -> np.ndarray:
        """1 for the junctions of the highly variable ATSEs the partial encoder reads, 0 otherwise.

        Uses the splicing ``var["highly_variable"]`` written by
        :func:`splicevi.pp.highly_variable_atses` when present; otherwise selects the
        :data:`~splicevi.data.variable_atses.DEFAULT_N_TOP` most variable ATSEs of the training
        data. An empty selection (too few cells with two reads in any ATSE) keeps every junction.
        """
        splicing_var, _ = self._splicing_var(self.adata, self.n_genes)
        if "highly_variable" in splicing_var.columns:
            selected = splicing_var["highly_variable"].to_numpy(dtype=bool)
        else:
            table = atse_variation(k, codes)
            selected = select_variable_atses(table, n_top=DEFAULT_N_TOP)[codes]
        if not selected.any():
            warnings.warn(
                "no highly variable ATSE found (too few cells with two reads in an ATSE); "
                "the splicing encoder reads every ATSE",
                UserWarning,
                stacklevel=3,
            )
            selected = np.ones_like(selected)
        return selected.astype(np.float32)

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int = 500,
        lr: float = 3e-3,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float | None = None,
        validation_size: float | None = None,
        shuffle_set_split: bool = True,
        batch_size: int = 128,
        weight_decay: float = 1e-3,
        eps: float = 1e-08,
        early_stopping: bool = True,
        early_stopping_patience: int = 50,
        check_val_every_n_epoch: int | None = None,
        n_steps_kl_warmup: int | None = None,
        n_epochs_kl_warmup: int | None = 50,
        adversarial_mixing: bool = True,
        lr_scheduler_type: Literal["plateau", "step"] = "plateau",
        reduce_lr_on_plateau: bool = False,
        lr_factor: float = 0.6,
        lr_patience: int = 30,
        lr_threshold: float = 0.0,
        lr_scheduler_metric: Literal[
            "elbo_validation", "reconstruction_loss_validation", "kl_local_validation"
        ] = "elbo_validation",
        step_size: int = 10,
        gradient_clipping: bool = True,
        gradient_clipping_max_norm: float = 5.0,
        datasplitter_kwargs: dict | None = None,
        plan_kwargs: dict | None = None,
        **kwargs,
    ):
        """Train with amortised variational inference on both modalities.

        Parameters
        ----------
        max_epochs
            Passes through the data.
        lr, weight_decay, eps
            AdamW hyperparameters (the default learning rate is the workflow's).
        accelerator, devices
            Lightning hardware options (``"auto"`` uses a GPU when there is one).
        train_size, validation_size, shuffle_set_split
            Train/validation split (scvi-tools' DataSplitter).
        batch_size
            Minibatch size.
        early_stopping, early_stopping_patience
            Stop when the validation reconstruction loss has not improved for this many epochs.
        check_val_every_n_epoch
            Validation frequency (every epoch when early stopping or a validation-metric scheduler
            is on).
        n_steps_kl_warmup, n_epochs_kl_warmup
            KL warm-up by steps or epochs (epochs win when both are set).
        adversarial_mixing
            Adversarial batch classifier on the joint latent (only with more than one batch).
        lr_scheduler_type
            ``plateau`` (ReduceLROnPlateau, on when ``reduce_lr_on_plateau``) or ``step``.
        reduce_lr_on_plateau, lr_factor, lr_patience, lr_threshold, lr_scheduler_metric, step_size
            Scheduler settings (``lr_factor`` is used by both schedulers).
        gradient_clipping, gradient_clipping_max_norm
            Global gradient-norm clipping of the module.
        datasplitter_kwargs, plan_kwargs
            Extra arguments of the data splitter / training plan (explicit arguments win).
        **kwargs
            Lightning Trainer arguments.
        """
        plan = dict(plan_kwargs or {})
        plan.update(
            lr=lr,
            weight_decay=weight_decay,
            eps=eps,
            optimizer="AdamW",
            n_epochs_kl_warmup=n_epochs_kl_warmup,
            n_steps_kl_warmup=n_steps_kl_warmup,
            adversarial_classifier=bool(adversarial_mixing and self.module.n_batch > 1),
            scale_adversarial_loss=1,
            reduce_lr_on_plateau=reduce_lr_on_plateau and lr_scheduler_type == "plateau",
            lr_factor=lr_factor,
            lr_patience=lr_patience,
            lr_threshold=lr_threshold,
            lr_scheduler_metric=lr_scheduler_metric,
            lr_scheduler_type=lr_scheduler_type,
            step_size=step_size,
            gradient_clipping=gradient_clipping,
            gradient_clipping_max_norm=gradient_clipping_max_norm,
        )
        if check_val_every_n_epoch is None and (
            early_stopping or (reduce_lr_on_plateau and "validation" in lr_scheduler_metric)
        ):
            check_val_every_n_epoch = 1
        data_splitter = self._data_splitter_cls(
            self.adata_manager,
            train_size=train_size if train_size is not None else 0.9,
            validation_size=validation_size,
            shuffle_set_split=shuffle_set_split,
            batch_size=batch_size,
            **{**self._loader_kwargs(self.adata_manager), **(datasplitter_kwargs or {})},
        )
        training_plan = self._training_plan_cls(self.module, **plan)
        kwargs.setdefault("enable_progress_bar", True)
        runner = self._train_runner_cls(
            self,
            training_plan=training_plan,
            data_splitter=data_splitter,
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            early_stopping=early_stopping,
            check_val_every_n_epoch=check_val_every_n_epoch,
            early_stopping_monitor="reconstruction_loss_validation",
            early_stopping_patience=early_stopping_patience,
            **kwargs,
        )
        return runner()

    def _data_loader(self, adata=None, indices=None, batch_size=None, **kwargs):
        """Sparse minibatch loader over the (validated) data."""
        adata = self._validate_anndata(adata)
        return self._make_data_loader(
            adata=adata, indices=indices, batch_size=batch_size, load_sparse_tensor=True, **kwargs
        )

    def _make_data_loader(
        self, adata, indices=None, batch_size=None, shuffle=False, data_loader_class=None, **kwargs
    ):
        """scvi-tools' loader, reading only the registered fields the module uses (see :meth:`_loader_kwargs`)."""
        manager = self.get_anndata_manager(adata)
        if manager is not None and data_loader_class is None:
            kwargs = {**self._loader_kwargs(manager), **kwargs}
        return super()._make_data_loader(
            adata,
            indices=indices,
            batch_size=batch_size,
            shuffle=shuffle,
            data_loader_class=data_loader_class,
            **kwargs,
        )

    def _loader_kwargs(self, manager: AnnDataManager) -> dict:
        """``data_and_attributes`` of a loader: the registered fields a minibatch must carry.

        The module reads the junction counts ``k`` and derives ``n``, PSI and the mask on each
        minibatch from them and the junction → ATSE map. A stored ATSE-total or mask layer (the
        reference API registers ``cell_by_cluster_matrix``, ``psi_mask``) is therefore left out of
        the minibatches when it holds exactly what ``k`` gives (checked once per registered data,
        :func:`~splicevi.data.layers.derivable_layers`); the ratio is never read next to counts;
        the cell index and labels only where the module uses them. A layer that says more than
        the counts (other totals, a mask hiding observed entries) stays in and is used.
        """
        keys = getattr(manager, "_splicevi_minibatch_keys", None)
        if keys is None:
            keys = _minibatch_keys(manager, self.module)
            manager._splicevi_minibatch_keys = keys
        return {"data_and_attributes": list(keys)}

    def _check_held_out(self, adata) -> None:
        if adata is not None and self.module.modality_weights == "cell":
            raise ValueError(
                "modality_weights='cell' learns one weight per training cell; it cannot embed new cells"
            )

    # ------------------------------------------------------------------ latents
    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | MuData | None = None,
        modality: Literal["joint", "expression", "splicing"] = "joint",
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        batch_size: int | None = None,
        return_dist: bool = False,
    ) -> np.ndarray:
        """Latent representation of each cell.

        Parameters
        ----------
        adata
            Data with the structure of the training data; ``None`` for the training data.
        modality
            ``joint`` (mixed posterior), ``expression`` or ``splicing`` (per-modality posterior).
            With splicing-only data the joint latent is the splicing latent.
        indices
            Cells to use (all when ``None``).
        give_mean
            Posterior mean (for ``ln``: mean of the softmax over samples) instead of a sample.
        batch_size
            Minibatch size.
        return_dist
            Return ``(mean, variance)`` of the posterior instead.

        Returns
        -------
        np.ndarray
            Cells × latent dimensions.
        """
        self._check_if_trained(warn=False)
        self._check_held_out(adata)
        if modality not in ("joint", "expression", "splicing"):
            raise ValueError(f"modality must be 'joint', 'expression' or 'splicing', got {modality!r}")
        if modality != "joint" and self.fully_paired:
            raise ValueError("a fully paired model only has a joint latent representation")
        if modality == "expression" and self.module.n_input_genes == 0:
            raise ValueError("this model has no expression modality (splicing-only data)")
        keys = {
            "joint": ("qz_m", "qz_v"),
            "expression": ("qzm_expr", "qzv_expr"),
            "splicing": ("qzm_spl", "qzv_spl"),
        }[modality]
        means, variances = [], []
        for tensors in self._data_loader(adata, indices, batch_size):
            out = self.module.inference(**self.module._get_inference_input(tensors))
            qm, qv = out[keys[0]], out[keys[1]]
            means.append(qm.cpu())
            variances.append(qv.cpu())
        qm, qv = torch.cat(means), torch.cat(variances)
        if return_dist:
            return qm.numpy(), qv.numpy()
        if self.module.latent_distribution == "ln":
            samples = Normal(qm, qv.sqrt()).sample((20 if give_mean else 1,))
            return torch.softmax(samples, dim=-1).mean(0).numpy()
        return (qm if give_mean else Normal(qm, qv.sqrt()).sample()).numpy()

    @torch.inference_mode()
    def get_library_size_factors(
        self,
        adata: AnnData | MuData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int = 128,
    ) -> dict[str, np.ndarray]:
        """Library size factors of the expression modality.

        The splicing modality needs none: its likelihood conditions on each ATSE's coverage.

        Returns
        -------
        dict
            ``{"expression": array}``: the log library size used by the expression decoder.
        """
        if self.module.n_input_genes == 0:
            raise ValueError("this model has no expression modality (splicing-only data)")
        libs = []
        for tensors in self._data_loader(adata, indices, batch_size):
            out = self.module.inference(**self.module._get_inference_input(tensors))
            libs.append(out["library"].cpu())
        return {"expression": torch.cat(libs).numpy().squeeze(-1)}

    # ------------------------------------------------------------------ save / load
    @classmethod
    def load(cls, dir_path: str, adata=None, **kwargs):
        """Load a saved model; a model saved on other genes or junctions raises ``ValueError``.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        adata
            Data to attach (must have the training genes and junctions, in order).
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load`.
        """
        model_file = os.path.join(str(dir_path), f"{kwargs.get('prefix') or ''}model.pt")
        if not os.path.isdir(dir_path):
            raise FileNotFoundError(f"model folder not found: {dir_path} (a folder written by SPLICEVI.save)")
        if not os.path.isfile(model_file):
            raise FileNotFoundError(f"{dir_path} holds no model.pt: not a folder written by SPLICEVI.save")
        # Never unpickle arbitrary objects: read and check model.pt safely, then serve that dict to
        # scvi-tools' load (which would read the file with weights_only=False).
        saved = read_model_file(model_file)
        with warnings.catch_warnings(record=True) as caught, serve_checked_model_file(model_file, saved):
            warnings.simplefilter("always")
            try:
                model = super().load(dir_path, adata=adata, **kwargs)
            except RuntimeError as err:
                if "size mismatch" in str(err) or "Error(s) in loading state_dict" in str(err):
                    raise ValueError(
                        f"the data does not match the saved model in {dir_path}: different numbers of genes, "
                        "junctions or covariate categories"
                    ) from err
                raise
        for w in caught:
            if "var_names" in str(w.message):
                raise ValueError(
                    f"the genes/junctions of the data differ from those the model in {dir_path} was trained on; "
                    "subset and order the data's var to the training features"
                )
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return model

    @staticmethod
    def load_registry(dir_path: str, prefix: str | None = None) -> dict:
        """The saved registry of a model folder, read through the same checks as :meth:`load`."""
        model_file = os.path.join(str(dir_path), f"{prefix or ''}model.pt")
        with serve_checked_model_file(model_file, read_model_file(model_file)):
            return BaseModelClass.load_registry(dir_path, prefix=prefix)

    @staticmethod
    def view_setup_args(dir_path: str, prefix: str | None = None) -> None:
        """Print the setup arguments of a saved model, read through the same checks as :meth:`load`."""
        model_file = os.path.join(str(dir_path), f"{prefix or ''}model.pt")
        with serve_checked_model_file(model_file, read_model_file(model_file)):
            BaseModelClass.view_setup_args(dir_path, prefix=prefix)

    @classmethod
    def load_query_data(cls, adata=None, reference_model=None, **kwargs):
        """Online update (scArches) of a reference model with a query dataset (new batches).

        Raises ``ValueError`` when the query's genes or junctions differ from the reference's.
        """
        ref = reference_model
        if isinstance(ref, SPLICEVI) and ref.module.modality_weights == "cell":
            raise ValueError("modality_weights='cell' models cannot be updated with query data")
        with warnings.catch_warnings(record=True) as caught, contextlib.ExitStack() as stack:
            warnings.simplefilter("always")
            if isinstance(ref, (str, os.PathLike)):  # a saved folder: checked like load()
                model_file = os.path.join(str(ref), "model.pt")
                if not os.path.isfile(model_file):
                    raise FileNotFoundError(f"{ref} holds no model.pt: not a folder written by SPLICEVI.save")
                stack.enter_context(serve_checked_model_file(model_file, read_model_file(model_file)))
            model = super().load_query_data(adata=adata, reference_model=reference_model, **kwargs)
        for w in caught:
            if "var_names" in str(w.message):
                raise ValueError("the query's genes/junctions differ from the reference model's")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return model

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        junc_ratio_layer: str | None = None,
        atse_counts_layer: str | None = None,
        junc_counts_layer: str | None = None,
        psi_mask_layer: str | None = None,
        batch_key: str | None = None,
        size_factor_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        continuous_covariate_keys: list[str] | None = None,
        idx_layer: str | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ):
        """Register a MuData for SPLICEVI.

        Parameters
        ----------
        mdata
            MuData with an expression modality (optional) and a splicing modality whose ``var`` has
            ``event_id``.
        rna_layer
            Gene count layer of the RNA modality (``None``: ``.X``).
        junc_ratio_layer
            Junction ratio layer; read only when there are no junction counts (then
            ``k = ratio × n``, so ``atse_counts_layer`` is needed too).
        atse_counts_layer
            ATSE totals ``n`` (e.g. ``cell_by_cluster_matrix``). ``None``: derived per minibatch from
            the junction counts and ``event_id`` (cheapest; an ATSE is observed when it has a read).
        junc_counts_layer
            Junction counts ``k``. ``None``: ``cell_by_junction_matrix`` when that layer exists.
        psi_mask_layer
            Optional observed mask; an entry is then observed only where it is 1 and ``n > 0``.
        batch_key, size_factor_key, categorical_covariate_keys, continuous_covariate_keys
            Columns of ``mdata.obs`` (size factors of the expression modality).
        idx_layer
            Modality holding the cell index (for ``modality_weights='cell'``).
        modalities
            Setup argument → modality name. ``None``: ``rna`` for ``rna_layer`` if present and
            ``splicing`` for the splicing layers.
        **kwargs
            Only the keywords scvi-tools passes when it transfers a saved setup
            (``source_registry``, ``extend_categories``, ``allow_missing_labels``); any other raises
            ``TypeError`` naming it.
        """
        if modalities is None:
            modalities = {"junc_counts_layer": "splicing"}
            if "rna" in mdata.mod:
                modalities["rna_layer"] = "rna"
        if "splicing" not in modalities.values() and not any(modalities.get(a) for a in _SPLICING_LAYER_ARGS):
            raise ValueError(
                "modalities must name the splicing modality (e.g. {'junc_counts_layer': 'splicing'})"
            )
        spl_mod = next(modalities[a] for a in _SPLICING_LAYER_ARGS if modalities.get(a))
        if spl_mod not in mdata.mod:
            raise ValueError(
                f"splicing modality {spl_mod!r} not in the MuData (modalities: {list(mdata.mod)})"
            )
        modalities = dict(modalities)
        for arg in _SPLICING_LAYER_ARGS:
            modalities.setdefault(arg, spl_mod)
        rna_mod = modalities.get("rna_layer")
        if rna_mod is not None and rna_mod not in mdata.mod:
            raise ValueError(f"RNA modality {rna_mod!r} not in the MuData (modalities: {list(mdata.mod)})")
        spl = mdata.mod[spl_mod]
        layers = _resolve_splicing_layers(
            spl,
            {
                JUNCTION_COUNTS_KEY: junc_counts_layer,
                ATSE_COUNTS_KEY: atse_counts_layer,
                PSI_MASK_KEY: psi_mask_layer,
                JUNCTION_RATIO_KEY: junc_ratio_layer,
            },
        )
        junc_counts_layer, atse_counts_layer, psi_mask_layer, junc_ratio_layer = layers.values()
        _validate_splicing(spl, layers, where=f"mdata[{spl_mod!r}]")
        junction_event_codes(spl.var, where=f"mdata[{spl_mod!r}].var")
        if rna_mod is not None:
            check_values(
                get_matrix(mdata.mod[rna_mod], rna_layer, f"mdata[{rna_mod!r}]"),
                rna_layer or "X",
                counts=True,
            )

        # Only the arguments are saved with the model (locals such as the AnnData must not be).
        setup_method_args = cls._get_setup_method_args(
            cls=cls,
            mdata=mdata,
            rna_layer=rna_layer,
            junc_ratio_layer=junc_ratio_layer,
            atse_counts_layer=atse_counts_layer,
            junc_counts_layer=junc_counts_layer,
            psi_mask_layer=psi_mask_layer,
            batch_key=batch_key,
            size_factor_key=size_factor_key,
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
            idx_layer=idx_layer,
            modalities=modalities,
        )
        modalities = cls._create_modalities_attr_dict(modalities, setup_method_args)
        mdata.obs["_indices"] = np.arange(mdata.n_obs)
        batch_field = fields.MuDataCategoricalObsField(
            REGISTRY_KEYS.BATCH_KEY, batch_key, mod_key=modalities.batch_key
        )
        mudata_fields = [
            batch_field,
            fields.MuDataCategoricalObsField(REGISTRY_KEYS.LABELS_KEY, None, mod_key=None),
            fields.MuDataNumericalObsField(
                REGISTRY_KEYS.SIZE_FACTOR_KEY, size_factor_key, mod_key=None, required=False
            ),
            fields.MuDataCategoricalJointObsField(
                REGISTRY_KEYS.CAT_COVS_KEY,
                categorical_covariate_keys,
                mod_key=modalities.categorical_covariate_keys,
            ),
            fields.MuDataNumericalJointObsField(
                REGISTRY_KEYS.CONT_COVS_KEY,
                continuous_covariate_keys,
                mod_key=modalities.continuous_covariate_keys,
            ),
            fields.MuDataNumericalObsField(
                REGISTRY_KEYS.INDICES_KEY, "_indices", mod_key=modalities.idx_layer, required=False
            ),
        ]
        if rna_mod is not None:
            mudata_fields.append(
                fields.MuDataLayerField(
                    REGISTRY_KEYS.X_KEY, rna_layer, mod_key=rna_mod, is_count_data=True, mod_required=True
                )
            )
        for key, layer in _registered_layers(layers).items():
            mudata_fields.append(
                fields.MuDataLayerField(
                    key, layer, mod_key=spl_mod, is_count_data=key in _COUNT_KEYS, mod_required=True
                )
            )
        adata_manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(mdata, **_transfer_kwargs("setup_mudata", kwargs))
        cls.register_manager(adata_manager)

    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        junc_ratio: str | None = None,
        cell_by_junction_matrix: str | None = None,
        cell_by_cluster_matrix: str | None = None,
        psi_mask_layer: str | None = None,
        batch_key: str | None = None,
        size_factor_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        continuous_covariate_keys: list[str] | None = None,
        **kwargs,
    ):
        """Register an AnnData whose columns are genes followed by junctions.

        Every splicing layer spans all columns (the gene columns are ignored); ``var['event_id']``
        is set on the junction columns. Pass ``n_genes`` and ``n_junctions`` to the model.

        Parameters
        ----------
        layer
            Gene count layer (``None``: ``.X``); its junction columns are ignored.
        junc_ratio, cell_by_junction_matrix, cell_by_cluster_matrix, psi_mask_layer
            Splicing layers, as the ``*_layer`` arguments of :meth:`setup_mudata`
            (``cell_by_junction_matrix=None`` uses the layer of that name when present).
        batch_key, size_factor_key, categorical_covariate_keys, continuous_covariate_keys
            Columns of ``adata.obs``.
        **kwargs
            As in :meth:`setup_mudata`.
        """
        layers = _resolve_splicing_layers(
            adata,
            {
                JUNCTION_COUNTS_KEY: cell_by_junction_matrix,
                ATSE_COUNTS_KEY: cell_by_cluster_matrix,
                PSI_MASK_KEY: psi_mask_layer,
                JUNCTION_RATIO_KEY: junc_ratio,
            },
        )
        cell_by_junction_matrix, cell_by_cluster_matrix, psi_mask_layer, junc_ratio = layers.values()
        _validate_splicing(adata, layers, where="adata")
        setup_method_args = cls._get_setup_method_args(
            cls=cls,
            adata=adata,
            layer=layer,
            junc_ratio=junc_ratio,
            cell_by_junction_matrix=cell_by_junction_matrix,
            cell_by_cluster_matrix=cell_by_cluster_matrix,
            psi_mask_layer=psi_mask_layer,
            batch_key=batch_key,
            size_factor_key=size_factor_key,
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
        )
        adata.obs["_indices"] = np.arange(adata.n_obs)
        anndata_fields = [
            fields.LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            fields.CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            fields.CategoricalObsField(REGISTRY_KEYS.LABELS_KEY, None),
            fields.NumericalObsField(REGISTRY_KEYS.SIZE_FACTOR_KEY, size_factor_key, required=False),
            fields.CategoricalJointObsField(REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys),
            fields.NumericalJointObsField(REGISTRY_KEYS.CONT_COVS_KEY, continuous_covariate_keys),
            fields.NumericalObsField(REGISTRY_KEYS.INDICES_KEY, "_indices"),
        ]
        for key, layer in _registered_layers(layers).items():
            anndata_fields.append(fields.LayerField(key, layer, is_count_data=key in _COUNT_KEYS))
        adata_manager = AnnDataManager(fields=anndata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(adata, **_transfer_kwargs("setup_anndata", kwargs))
        cls.register_manager(adata_manager)


def _splicevi_version() -> str:
    from splicevi import __version__

    return __version__


def _minibatch_keys(manager: AnnDataManager, module: SPLICEVAE) -> tuple[str, ...]:
    """Registered fields the module reads from a minibatch of ``manager``'s data."""
    registered = list(manager.data_registry)
    drop = set()
    if module.modality_weights != "cell":
        drop.add(REGISTRY_KEYS.INDICES_KEY)
    if module.gene_dispersion != "gene-label":
        drop.add(REGISTRY_KEYS.LABELS_KEY)
    if JUNCTION_COUNTS_KEY in registered:
        drop.add(JUNCTION_RATIO_KEY)
        layers = {
            key: manager.get_from_registry(key) if key in registered else None
            for key in (JUNCTION_COUNTS_KEY, ATSE_COUNTS_KEY, PSI_MASK_KEY)
        }
        if layers[ATSE_COUNTS_KEY] is None:
            # Without stored totals the module derives n from k and reads no mask.
            drop.add(PSI_MASK_KEY)
        else:
            same = derivable_layers(
                layers[JUNCTION_COUNTS_KEY],
                module.junc2atse.cpu().numpy(),
                atse_counts=layers[ATSE_COUNTS_KEY],
                psi_mask=layers[PSI_MASK_KEY],
                offset=module.splicing_offset,
            )
            # A mask that hides observed entries needs the stored-totals path: both stay in then.
            if same["atse_counts"] and same["psi_mask"]:
                drop.update((ATSE_COUNTS_KEY, PSI_MASK_KEY))
    return tuple(key for key in registered if key not in drop)


def _transfer_kwargs(method: str, kwargs: dict) -> dict:
    """``kwargs`` when all are setup-transfer keywords; TypeError naming the others."""
    unknown = sorted(set(kwargs) - set(_TRANSFER_KWARGS))
    if unknown:
        raise TypeError(f"{method}() got unexpected keyword argument(s): {', '.join(unknown)}")
    return kwargs


#: Splicing fields holding read counts.
_COUNT_KEYS = (JUNCTION_COUNTS_KEY, ATSE_COUNTS_KEY)

#: Data-contract layer name of each field (see :mod:`splicevi.data.layers`); the mask is used only when named.
_DEFAULT_LAYERS = {
    JUNCTION_COUNTS_KEY: JUNCTION_COUNTS,
    ATSE_COUNTS_KEY: ATSE_COUNTS,
    JUNCTION_RATIO_KEY: JUNCTION_RATIO,
}


def _resolve_splicing_layers(adata: AnnData, layers: dict[str, str | None]) -> dict[str, str | None]:
    """Layer of each splicing field (registry key → layer name or ``None``), defaults filled in.

    At least the junction counts, or the ratio together with the ATSE totals, must be available.
    The ratio and (by default) the totals are looked up only when there are no counts.
    """
    layers = dict(layers)
    junc, mask = layers[JUNCTION_COUNTS_KEY], layers[PSI_MASK_KEY]
    if junc is None and JUNCTION_COUNTS in adata.layers:
        layers[JUNCTION_COUNTS_KEY] = junc = JUNCTION_COUNTS
    if junc is None:
        for key in (JUNCTION_RATIO_KEY, ATSE_COUNTS_KEY):
            if layers[key] is None and _DEFAULT_LAYERS[key] in adata.layers:
                layers[key] = _DEFAULT_LAYERS[key]
        if layers[JUNCTION_RATIO_KEY] is None or layers[ATSE_COUNTS_KEY] is None:
            raise ValueError(
                f"the splicing data has no junction counts: expected layer {JUNCTION_COUNTS!r}, or "
                f"{JUNCTION_RATIO!r} together with {ATSE_COUNTS!r} (available: {sorted(adata.layers)})."
            )
    if mask is not None and mask not in adata.layers:
        get_matrix(adata, mask, "psi_mask_layer")
    return layers


def _registered_layers(layers: dict[str, str | None]) -> dict[str, str]:
    """The fields to register: every named layer, but the ratio only when there are no counts."""
    out = {key: layer for key, layer in layers.items() if layer is not None}
    if JUNCTION_COUNTS_KEY in out:
        out.pop(JUNCTION_RATIO_KEY, None)
    return out


def _validate_splicing(adata: AnnData, layers: dict[str, str | None], where: str) -> None:
    """Values and shapes of the splicing layers (ValueError naming the layer)."""
    names = [name for name in layers.values() if name is not None]
    mats = {name: get_matrix(adata, name, where) for name in names}
    check_shapes(mats, adata.shape)
    counts = {layers[k] for k in _COUNT_KEYS}
    for name, matrix in mats.items():
        check_values(matrix, name, counts=name in counts)
    ratio, junc, atse = layers[JUNCTION_RATIO_KEY], layers[JUNCTION_COUNTS_KEY], layers[ATSE_COUNTS_KEY]
    if ratio is not None and junc is None:
        r = mats[ratio]
        vmax = r.max() if r.size else 0
        if vmax > 1 + 1e-6:
            raise ValueError(f"layer {ratio!r} has ratios above 1 (max {vmax:g}); it must hold k / n")
    if junc is not None and atse is not None:
        check_k_le_n(mats[junc], mats[atse], junc, atse)
