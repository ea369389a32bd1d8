"""Analysis methods of SPLICEVI: normalized expression / PSI, differential splicing and expression."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS

from ..tl import differential as dstats


class SplicingAnalysisMixin:
    """Normalized expression and splicing, differential splicing and expression (see methods)."""

    # ------------------------------------------------------------------ helpers
    def _feature_names(self, adata, which: Literal["genes", "junctions"]) -> pd.Index:
        """Gene or junction names of the data, in model column order."""
        if which == "junctions":
            var, _ = self._splicing_var(adata, self.n_genes)
            return pd.Index(var.index)
        if isinstance(adata, MuData):
            rna_mod = self._modality_of("rna_layer")
            return pd.Index(adata.mod[rna_mod].var_names)
        return pd.Index(adata.var_names[: self.n_genes])

    def _feature_index(self, names: pd.Index, subset: Sequence[str] | None, what: str) -> np.ndarray | None:
        """Positions of ``subset`` among ``names`` (``None``: all)."""
        if subset is None:
            return None
        subset = list(subset)
        pos = names.get_indexer(subset)
        if (pos < 0).any():
            missing = [s for s, p in zip(subset, pos, strict=True) if p < 0][:5]
            raise ValueError(f"{what} not in the data: {missing}")
        return pos

    def _batch_codes(self, transform_batch) -> list[int | None]:
        """Integer batch codes for ``transform_batch`` (``None`` → the cells' own batches)."""
        if transform_batch is None:
            return [None]
        mapping = list(self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping)
        values = transform_batch if isinstance(transform_batch, list | tuple | np.ndarray) else [transform_batch]
        codes = []
        for value in values:
            if value in mapping:
                codes.append(mapping.index(value))
            elif isinstance(value, int | np.integer) and 0 <= int(value) < len(mapping):
                codes.append(int(value))
            else:
                raise ValueError(f"transform_batch {value!r} is not a batch of the model ({mapping})")
        return codes

    def _resolve_indices(self, adata, indices, n_samples_overall) -> np.ndarray:
        n_obs = adata.n_obs
        indices = np.arange(n_obs) if indices is None else np.asarray(indices)
        if indices.dtype == bool:
            indices = np.nonzero(indices)[0]
        if n_samples_overall is not None:
            indices = np.random.default_rng().choice(indices, n_samples_overall)
        return indices

    def _latent_for_decoding(self, out: dict, use_z_mean: bool, n_samples: int) -> torch.Tensor:
        """z to decode: posterior samples when n_samples > 1, else the mean or one sample."""
        if n_samples > 1:
            return out["z"]
        if use_z_mean:
            return self.module.z_transformation(out["qz_m"])
        return out["z"]

    @torch.inference_mode()
    def _decode(
        self,
        adata,
        indices: np.ndarray,
        what: Literal["expression", "psi", "dm"],
        feature_idx: np.ndarray | None,
        transform_batch,
        use_z_mean: bool,
        n_samples: int,
        batch_size: int | None,
    ) -> np.ndarray:
        """Decoded features, samples × cells × features (averaged over ``transform_batch``)."""
        codes = self._batch_codes(transform_batch)
        module = self.module
        if what != "expression":
            jidx = None if feature_idx is None else torch.as_tensor(feature_idx, dtype=torch.long)
            if what == "dm":
                try:
                    conc = module.splicing_concentration_per_junction().detach()
                except ValueError:
                    conc = None  # binomial: infinite concentration, ψ* = p
                if conc is not None and jidx is not None:
                    conc = conc[jidx.to(conc.device)]
                n_sel = module.n_input_junctions if jidx is None else jidx.shape[0]
                # Position of each junction among the requested ones (-1: not requested).
                col_pos = torch.full((module.n_input_junctions,), -1, dtype=torch.long)
                col_pos[jidx if jidx is not None else torch.arange(n_sel)] = torch.arange(n_sel)
        chunks = []
        for tensors in self._data_loader(adata, indices, batch_size):
            out = module.inference(**module._get_inference_input(tensors), n_samples=n_samples)
            z = self._latent_for_decoding(out, use_z_mean, n_samples)
            own_batch = tensors[REGISTRY_KEYS.BATCH_KEY].to(z.device)
            acc = None
            for code in codes:
                batch_index = own_batch if code is None else torch.full_like(own_batch, code)
                if what == "expression":
                    gen_in = module._get_generative_input(tensors, {**out, "z": z})
                    gen_in["batch_index"] = batch_index
                    gen_in["observed"] = None
                    if z.dim() == 2 and gen_in["library"].dim() == 3:
                        gen_in["library"] = gen_in["library"][0]
                    vals = module.generative(**gen_in)["px_scale"]
                    if feature_idx is not None:
                        vals = vals[..., torch.as_tensor(feature_idx, device=vals.device)]
                else:
                    cat = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
                    cont = tensors.get(REGISTRY_KEYS.CONT_COVS_KEY)
                    dev = z.device
                    vals = module.decode_psi(
                        z,
                        batch_index,
                        cat.to(dev) if cat is not None else None,
                        cont.to(dev) if cont is not None else None,
                        junction_idx=None if jidx is None else jidx.to(dev),
                    )
                    if what == "dm" and conc is not None:
                        vals = _dm_posterior_mean(vals, out["observed"], conc.to(dev), col_pos.to(dev))
                vals = vals.float()
                acc = vals if acc is None else acc + vals
            acc = acc / len(codes)
            if acc.dim() == 2:
                acc = acc.unsqueeze(0)
            chunks.append(acc.cpu().numpy())
        return np.concatenate(chunks, axis=1)

    def _format(self, values, adata, indices, names, n_samples, return_mean, return_numpy):
        """Average samples when asked, and wrap (cells × features) results in a DataFrame."""
        if n_samples > 1 and not return_mean:
            return values
        values = values.mean(axis=0)
        if return_numpy:
            return values
        return pd.DataFrame(values, index=adata.obs_names[indices], columns=names)

    def _normalized(
        self, what, adata, indices, n_samples_overall, transform_batch, subset, use_z_mean, n_samples,
        batch_size, return_mean, return_numpy,
    ):
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        if what == "expression" and self.module.n_input_genes == 0:
            raise ValueError("this model has no expression modality (splicing-only data)")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        names = self._feature_names(adata, "genes" if what == "expression" else "junctions")
        feature_idx = self._feature_index(names, subset, "genes" if what == "expression" else "junctions")
        if feature_idx is not None:
            names = names[feature_idx]
        indices = self._resolve_indices(adata, indices, n_samples_overall)
        values = self._decode(adata, indices, what, feature_idx, transform_batch, use_z_mean, n_samples, batch_size)
        return self._format(values, adata, indices, names, n_samples, return_mean, return_numpy)

    # ------------------------------------------------------------------ normalized outputs
    def get_normalized_expression(
        self,
        adata=None,
        indices: Sequence[int] | None = None,
        n_samples_overall: int | None = None,
        transform_batch=None,
        gene_list: Sequence[str] | None = None,
        use_z_mean: bool = True,
        n_samples: int = 1,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool = False,
        silent: bool = True,
    ) -> np.ndarray | pd.DataFrame:
        """Normalized (decoded) gene expression :math:`\\rho_n` (frequencies summing to 1 per cell).

        Parameters
        ----------
        adata
            Data with the structure of the training data; ``None`` for the training data.
        indices
            Cells to use (all when ``None``).
        n_samples_overall
            Draw this many cells (with replacement) from ``indices``.
        transform_batch
            ``None``: each cell's own batch; a batch label or code: decode every cell in that batch;
            a list: average the decoded values over those batches.
        gene_list
            Return only these genes.
        use_z_mean
            With ``n_samples == 1``: decode the posterior mean (else one posterior sample).
        n_samples
            Posterior samples of the joint latent; ``> 1`` always samples (``use_z_mean`` ignored).
        batch_size
            Minibatch size.
        return_mean
            Average over the samples; when False and ``n_samples > 1`` the result is
            ``(samples, cells, genes)``.
        return_numpy
            Return an array instead of a DataFrame (cells × genes).
        silent
            Unused (no progress bar); kept for API compatibility.
        """
        return self._normalized(
            "expression", adata, indices, n_samples_overall, transform_batch, gene_list, use_z_mean, n_samples,
            batch_size, return_mean, return_numpy,
        )

    def get_normalized_splicing(
        self,
        adata=None,
        indices: Sequence[int] | None = None,
        n_samples_overall: int | None = None,
        transform_batch=None,
        junction_list: Sequence[str] | None = None,
        use_z_mean: bool = True,
        n_samples: int = 1,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool = False,
        silent: bool = True,
    ) -> np.ndarray | pd.DataFrame:
        """Decoded PSI :math:`p_{nj}` of every junction (softmax within its ATSE for the DM).

        Parameters are those of :meth:`get_normalized_expression`, with ``junction_list`` (junction
        ids) in place of ``gene_list``. Returns cells × junctions, or ``(samples, cells, junctions)``
        when ``n_samples > 1`` and ``return_mean`` is False.
        """
        return self._normalized(
            "psi", adata, indices, n_samples_overall, transform_batch, junction_list, use_z_mean, n_samples,
            batch_size, return_mean, return_numpy,
        )

    def get_normalized_splicing_DM(
        self,
        adata=None,
        indices: Sequence[int] | None = None,
        n_samples_overall: int | None = None,
        transform_batch=None,
        junction_list: Sequence[str] | None = None,
        use_z_mean: bool = True,
        n_samples: int = 1,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool = False,
        silent: bool = True,
    ) -> np.ndarray | pd.DataFrame:
        """Posterior mean PSI :math:`\\psi^* = (c\\,p + k) / (c + n)` per junction.

        ``p`` is the decoded PSI, ``k`` the junction's reads and ``n`` its ATSE's reads in the cell,
        and ``c`` the concentration (per ATSE for ``dm_concentration='atse'``, else the scalar; the
        per-junction concentration of a beta-binomial model). This is the mean of the Dirichlet
        (beta) posterior of the cell's junction usage given its reads: where the cell has no reads
        for the ATSE, ``ψ* = p``. A binomial model has no finite concentration, so ``ψ* = p``.

        Parameters are those of :meth:`get_normalized_splicing`.
        """
        return self._normalized(
            "dm", adata, indices, n_samples_overall, transform_batch, junction_list, use_z_mean, n_samples,
            batch_size, return_mean, return_numpy,
        )

    # ------------------------------------------------------------------ observed data
    @torch.inference_mode()
    def _observed_counts(self, adata, indices: np.ndarray, batch_size: int | None = None):
        """Observed ``k`` and ``n`` (cells × junctions CSR) of the cells, as the model sees them."""
        rows, cols, ks, ns = [], [], [], []
        start = 0
        for tensors in self._data_loader(adata, indices, batch_size):
            obs = self.module.observed(*(self.module._get_inference_input(tensors)[key] for key in (
                "junction_counts", "atse_counts", "psi_mask", "junction_ratio")))
            rows.append(obs.rows.cpu().numpy() + start)
            cols.append(obs.cols.cpu().numpy())
            ks.append(obs.k.cpu().numpy())
            ns.append(obs.n.cpu().numpy())
            start += obs.n_cells
        shape = (len(indices), self.module.n_input_junctions)
        r, c = np.concatenate(rows), np.concatenate(cols)
        k = sp.csr_matrix((np.concatenate(ks), (r, c)), shape=shape)
        n = sp.csr_matrix((np.concatenate(ns), (r, c)), shape=shape)
        return k, n

    # ------------------------------------------------------------------ differential splicing
    def _group_indices(self, adata, groupby, group1, group2, idx1, idx2) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
        """(name1, name2, cells1, cells2) of each comparison, as scvi-tools' DE interface."""

        def as_idx(idx):
            idx = np.asarray(idx)
            return np.nonzero(idx)[0] if idx.dtype == bool else idx.astype(np.int64)

        if idx1 is not None:
            cells1 = as_idx(idx1)
            cells2 = as_idx(idx2) if idx2 is not None else np.setdiff1d(np.arange(adata.n_obs), cells1)
            return [("idx1", "idx2" if idx2 is not None else "rest", cells1, cells2)]
        if groupby is None:
            raise ValueError("give groupby (with group1 / group2) or idx1 (and idx2)")
        if groupby not in adata.obs:
            raise ValueError(f"groupby column {groupby!r} not in obs")
        labels = adata.obs[groupby].astype(str).to_numpy()
        if group1 is None:
            groups1 = list(pd.unique(labels))
        else:
            groups1 = [group1] if isinstance(group1, str) else list(group1)
        if isinstance(group2, str):
            group2 = [group2]
        comparisons = []
        for g in groups1:
            cells1 = np.nonzero(labels == str(g))[0]
            if group2 is None:
                cells2, name2 = np.nonzero(labels != str(g))[0], "rest"
            else:
                cells2, name2 = np.nonzero(np.isin(labels, [str(x) for x in group2]))[0], ",".join(map(str, group2))
            if cells1.size == 0 or cells2.size == 0:
                raise ValueError(f"empty group in comparison {g} vs {name2} ({groupby})")
            comparisons.append((str(g), name2, cells1, cells2))
        return comparisons

    def differential_splicing(
        self,
        adata=None,
        groupby: str | None = None,
        group1=None,
        group2=None,
        idx1=None,
        idx2=None,
        mode: Literal["vanilla", "change"] = "change",
        delta: float = 0.1,
        batch_size: int | None = None,
        all_stats: bool = True,
        batch_correction: bool = False,
        batchid1=None,
        batchid2=None,
        fdr_target: float = 0.05,
        silent: bool = False,
        norm_splicing_function: Literal["dm_posterior_mean", "decoded"] = "dm_posterior_mean",
        level: Literal["junction", "event"] = "junction",
        n_samples: int = 25,
        max_cells_per_group: int = 500,
        seed: int = 0,
        **kwargs,
    ) -> pd.DataFrame:
        """Differential splicing on the PSI scale, per junction or per ATSE.

        The quantity tested is the difference of the two groups' **mean PSI**, ΔPSI = PSI1 − PSI2.
        Its posterior is sampled as follows: for each group (up to ``max_cells_per_group`` cells,
        drawn without replacement) the model gives ``n_samples`` samples of each cell's PSI from
        samples of the joint latent; for each sample the group's cells are resampled with
        replacement (bootstrap) and averaged. The bootstrap adds the uncertainty of estimating a
        group mean from finitely many heterogeneous cells, which the latent posterior alone lacks.

        Why group means rather than pairs of random cells (scvi-tools' DE on expression): the
        difference of two single cells' PSI mixes in cell-to-cell variation, so ``P(|ΔPSI| > delta)``
        would be large for any junction with heterogeneous usage even when the groups do not differ;
        on a null contrast (two random halves of one cell type) that calls events. Group means keep
        the null ΔPSI near 0 while a real difference of the groups' PSI stays whole, so the
        posterior probabilities and hence the FDR control are calibrated on the null.

        Which cells enter a junction's group mean depends on ``norm_splicing_function``. With
        ``dm_posterior_mean`` (default) only the cells that observe the junction's ATSE: their ψ* is
        the model-regularised estimate of their own PSI, and the bootstrap over them measures how
        well the reads support the group mean. With ``decoded`` every cell's decoded ``p``: a pure
        model extrapolation, whose posterior ignores the uncertainty of the fitted decoder, so it is
        sharper but over-calls when the decoder extrapolates splicing along expression differences
        (seen in ``bench/quality.py`` on a type-vs-rest contrast).

        Parameters
        ----------
        adata
            Data registered with the model; ``None`` for the training data.
        groupby, group1, group2
            ``obs`` column and its groups; ``group2=None`` compares with the rest of the cells;
            ``group1=None`` runs every group against the rest (column ``comparison``).
        idx1, idx2
            Cell indices or boolean masks instead of ``groupby`` (``idx2=None``: the rest).
        mode
            ``change``: ``proba_ds = P(|ΔPSI| > delta)``. ``vanilla``: probability of the more
            likely sign of ΔPSI (``bayes_factor`` is then signed, log P(ΔPSI > 0) / P(ΔPSI ≤ 0)).
        delta
            ΔPSI threshold of the ``change`` mode.
        batch_size
            Minibatch size.
        all_stats
            Add the empirical columns (``emp_psi1``, ``emp_psi2``, ``emp_effect``, ``n_obs_group1``,
            ``n_obs_group2``).
        batch_correction, batchid1, batchid2
            Decode every cell in each batch of ``batchid1`` (group 1) / ``batchid2`` (group 2) and
            average over them (default: all batches), instead of the cells' own batches.
        fdr_target
            Posterior expected FDR of the calls (``is_ds_fdr``).
        silent
            Unused; kept for API compatibility.
        norm_splicing_function
            ``dm_posterior_mean`` (ψ*, :meth:`get_normalized_splicing_DM`: uses the cells' own reads)
            or ``decoded`` (p, :meth:`get_normalized_splicing`).
        level
            ``junction`` or ``event`` (one row per ATSE; see :func:`splicevi.tl.differential.event_level`).
        n_samples
            Posterior samples per cell.
        max_cells_per_group
            Cells drawn per group (all when fewer).
        seed
            Seed of the cell draws, latent samples and bootstrap.
        **kwargs
            Ignored (API compatibility with scvi-tools' DE keyword arguments).

        Returns
        -------
        pd.DataFrame
            Per junction (index ``junction_id``): ``proba_ds``, ``is_ds_fdr``, ``bayes_factor``,
            ``effect_size`` (posterior mean ΔPSI), ``emp_effect`` (``emp_psi1 − emp_psi2``),
            ``est_psi1``, ``est_psi2`` (posterior mean group PSI, as averaged above), ``emp_psi1``, ``emp_psi2``
            (pooled observed PSI, Σk / Σn over the group's cells observing the ATSE; NaN when
            none), ``n_obs_group1``, ``n_obs_group2``, ``junction_id``, ``event_id``, ``gene_name``.
            Per event: see :func:`splicevi.tl.differential.event_level`. Sorted by decreasing
            ``proba_ds`` (ties: decreasing |``effect_size``|).
        """
        if norm_splicing_function not in ("dm_posterior_mean", "decoded"):
            raise ValueError("norm_splicing_function must be 'dm_posterior_mean' or 'decoded'")
        if level not in ("junction", "event"):
            raise ValueError(f"level must be 'junction' or 'event', got {level!r}")
        if mode not in ("change", "vanilla"):
            raise ValueError(f"mode must be 'change' or 'vanilla', got {mode!r}")
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        var, _ = self._splicing_var(adata, self.n_genes)
        codes = self.module.junc2atse.cpu().numpy()
        what = "dm" if norm_splicing_function == "dm_posterior_mean" else "psi"
        batches = list(self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping)
        tables = []
        comparisons = self._group_indices(adata, groupby, group1, group2, idx1, idx2)
        for name1, name2, cells1, cells2 in comparisons:
            rng = np.random.default_rng(seed)
            group_means = []
            for cells, batchid in ((cells1, batchid1), (cells2, batchid2)):
                if cells.size > max_cells_per_group:
                    cells = np.sort(rng.choice(cells, max_cells_per_group, replace=False))
                tb = (list(batchid) if batchid is not None else batches) if batch_correction else None
                with torch.random.fork_rng():
                    torch.manual_seed(int(rng.integers(2**31)))
                    # At least 2 samples: one sample would always decode the posterior mean.
                    samples = self._decode(
                        adata, cells, what, None, tb, use_z_mean=False, n_samples=max(2, n_samples),
                        batch_size=batch_size,
                    )
                observed = None
                if what == "dm":
                    observed = self._observed_counts(adata, cells, batch_size)[1].toarray() > 0
                group_means.append(dstats.bootstrap_group_means(samples, rng, observed))
            dpsi = group_means[0] - group_means[1]
            proba, bayes = dstats.change_probability(dpsi, delta, mode)
            table = pd.DataFrame(
                {
                    "proba_ds": proba,
                    "is_ds_fdr": dstats.fdr_calls(proba, fdr_target),
                    "bayes_factor": bayes,
                    "effect_size": dpsi.mean(axis=0),
                    "est_psi1": group_means[0].mean(axis=0),
                    "est_psi2": group_means[1].mean(axis=0),
                },
                index=pd.Index(var.index, name="junction_id"),
            )
            if all_stats or level == "event":
                k, n = self._observed_counts(adata, np.concatenate([cells1, cells2]), batch_size)
                first = np.arange(cells1.size)
                second = np.arange(cells1.size, cells1.size + cells2.size)
                emp1, nobs1 = dstats.pooled_psi(k, n, first)
                emp2, nobs2 = dstats.pooled_psi(k, n, second)
                table["emp_effect"] = emp1 - emp2
                table["emp_psi1"], table["emp_psi2"] = emp1, emp2
                table["n_obs_group1"], table["n_obs_group2"] = nobs1, nobs2
            table["junction_id"] = var.index.to_numpy()
            table["event_id"] = var["event_id"].to_numpy()
            table["gene_name"] = var["gene_name"].to_numpy() if "gene_name" in var else None
            if level == "event":
                table = dstats.event_level(dpsi, table, codes, delta=delta, mode=mode, fdr_target=fdr_target)
            table = dstats.sort_table(table)
            if len(comparisons) > 1:
                table["comparison"] = f"{name1} vs {name2}"
                table["group1"], table["group2"] = name1, name2
            tables.append(table)
        return tables[0] if len(tables) == 1 else pd.concat(tables)

    # ------------------------------------------------------------------ differential expression
    def differential_expression(
        self,
        adata=None,
        groupby: str | None = None,
        group1=None,
        group2=None,
        idx1=None,
        idx2=None,
        mode: Literal["vanilla", "change"] = "change",
        delta: float = 0.25,
        batch_size: int | None = None,
        all_stats: bool = True,
        batch_correction: bool = False,
        batchid1=None,
        batchid2=None,
        fdr_target: float = 0.05,
        silent: bool = False,
        **kwargs,
    ) -> pd.DataFrame:
        """Differential expression, as MULTIVI's: scvi-tools' change mode on the log-fold change.

        Parameters are those of :meth:`differential_splicing` (``delta`` is an LFC threshold);
        ``**kwargs`` go to :meth:`scvi.model.base.DifferentialComputation.get_bayes_factors`.

        Returns
        -------
        pd.DataFrame
            scvi-tools' DE table (``proba_de``, ``bayes_factor``, ``lfc_mean``, ``is_de_fdr_<fdr>``,
            raw-count statistics when ``all_stats``), indexed by gene.
        """
        from scvi.model._utils import scrna_raw_counts_properties
        from scvi.model.base._de_core import _de_core

        if self.module.n_input_genes == 0:
            raise ValueError("this model has no expression modality (splicing-only data)")
        adata = self._validate_anndata(adata)
        col_names = self._feature_names(adata, "genes")
        model_fn = partial(self.get_normalized_expression, batch_size=batch_size, return_numpy=True)
        all_stats_fn = partial(scrna_raw_counts_properties, var_idx=np.arange(self.n_genes))
        return _de_core(
            adata_manager=self.get_anndata_manager(adata, required=True),
            model_fn=model_fn,
            representation_fn=None,
            groupby=groupby,
            group1=group1,
            group2=group2,
            idx1=idx1,
            idx2=idx2,
            all_stats=all_stats,
            all_stats_fn=all_stats_fn,
            col_names=col_names,
            mode=mode,
            batchid1=batchid1,
            batchid2=batchid2,
            delta=delta,
            batch_correction=batch_correction,
            fdr=fdr_target,
            silent=silent,
            **kwargs,
        )


def _dm_posterior_mean(
    p: torch.Tensor, observed, conc: torch.Tensor, col_pos: torch.Tensor
) -> torch.Tensor:
    """ψ* = (c·p + k) / (c + n) at the observed entries of the minibatch; ``p`` elsewhere.

    ``p`` is (cells × junctions) or (samples × cells × junctions) over the requested junctions;
    ``col_pos`` maps a junction index to its requested column (-1: not requested).
    """
    pos = col_pos[observed.cols]
    keep = pos >= 0
    rows, cols = observed.rows[keep], pos[keep]
    k = torch.zeros(p.shape[-2:], device=p.device)
    n = torch.zeros(p.shape[-2:], device=p.device)
    k[rows, cols] = observed.k[keep].float()
    n[rows, cols] = observed.n[keep].float()
    return (conc * p + k) / (conc + n)
