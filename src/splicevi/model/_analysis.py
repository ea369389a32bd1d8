"""Analysis methods of SPLICEVI: normalized expression / PSI, differential splicing and expression."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.utils import track

from .._constants import ATSE_COUNTS_KEY, JUNCTION_COUNTS_KEY
from ..data.thinning import has_heldout_genes
from ..stats import choices, permutation_test, read_test
from ..stats import design as dsdesign
from ..stats import differential as dstats
from ..stats.choices import check_choice
from ..stats.contrasts import group_labels
from ..stats.heldout_de import TEST_NAME as HELDOUT_DE_TEST
from ..stats.pseudobulk_de import TEST_NAME as PSEUDOBULK_DE_TEST
from ._de_clusters import family_calls_de, heldout_de
from ._ds_clusters import (
    clusters_fdr_method,
    family_calls_ds,
    groups_look_like_clusters,
    has_heldout_reads,
    heldout_ds,
)
from ._ds_samples import sample_level_ds, samples_nested_in_groups

log = logging.getLogger(__name__)
#: Added to the labels design's test name when a group was small enough to permute (stats.permutation_test).
PERMUTED_TEST = ", and a permutation test of Welch's t on the cells' residuals (small group)"

#: Test of each design of differential expression (the table's ``test`` column).
DE_TESTS = {
    "labels": "scvi-tools change mode on decoded expression (cells as units)",
    "samples": PSEUDOBULK_DE_TEST,
    "clusters": HELDOUT_DE_TEST,
}


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
        values = (
            transform_batch if isinstance(transform_batch, list | tuple | np.ndarray) else [transform_batch]
        )
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
        silent: bool = True,
    ) -> np.ndarray:
        """Decoded features, samples × cells × features (averaged over ``transform_batch``)."""
        codes = self._batch_codes(transform_batch)
        module = self.module
        if what != "expression":
            jidx = None if feature_idx is None else torch.as_tensor(feature_idx, dtype=torch.long)
            if what == "dm":
                # Without a concentration (binomial) the concentration is infinite: ψ* = p.
                has_conc = module.likelihood.has_concentration
                conc = module.splicing_concentration_per_junction().detach() if has_conc else None
                if conc is not None and jidx is not None:
                    conc = conc[jidx.to(conc.device)]
                n_sel = module.n_input_junctions if jidx is None else jidx.shape[0]
                # Position of each junction among the requested ones (-1: not requested).
                col_pos = torch.full((module.n_input_junctions,), -1, dtype=torch.long)
                col_pos[jidx if jidx is not None else torch.arange(n_sel)] = torch.arange(n_sel)
        chunks = []
        loader = self._data_loader(adata, indices, batch_size)
        for tensors in track(loader, description=f"Decoding {what}", disable=silent):
            if what != "expression":
                out = module.inference(**module._get_inference_input(tensors), n_samples=n_samples)
                z = self._latent_for_decoding(out, use_z_mean, n_samples)
                own_batch = tensors[REGISTRY_KEYS.BATCH_KEY].to(z.device)
            acc = None
            for code in codes:
                if what == "expression":
                    # The module's own forward path, as MULTIVI: encode, then decode in batch ``code``.
                    _, gen = module.forward(
                        tensors,
                        inference_kwargs={"n_samples": n_samples},
                        get_generative_input_kwargs={"use_z_mean": use_z_mean and n_samples == 1},
                        generative_kwargs={"transform_batch": code},
                        compute_loss=False,
                    )
                    vals = gen["px_scale"]
                    if feature_idx is not None:
                        vals = vals[..., torch.as_tensor(feature_idx, device=vals.device)]
                else:
                    batch_index = own_batch if code is None else torch.full_like(own_batch, code)
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
        self,
        what,
        adata,
        indices,
        n_samples_overall,
        transform_batch,
        subset,
        use_z_mean,
        n_samples,
        batch_size,
        return_mean,
        return_numpy,
        silent,
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
        values = self._decode(
            adata, indices, what, feature_idx, transform_batch, use_z_mean, n_samples, batch_size, silent
        )
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
        r"""Normalized (decoded) gene expression :math:`\rho_n` (frequencies summing to 1 per cell).

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
            Hide the progress bar over minibatches.
        """
        return self._normalized(
            "expression",
            adata,
            indices,
            n_samples_overall,
            transform_batch,
            gene_list,
            use_z_mean,
            n_samples,
            batch_size,
            return_mean,
            return_numpy,
            silent,
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
            "psi",
            adata,
            indices,
            n_samples_overall,
            transform_batch,
            junction_list,
            use_z_mean,
            n_samples,
            batch_size,
            return_mean,
            return_numpy,
            silent,
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
        r"""Posterior mean PSI :math:`\psi^* = (c\,p + k) / (c + n)` per junction.

        ``p`` is the decoded PSI, ``k`` the junction's reads and ``n`` its ATSE's reads in the cell,
        and ``c`` the concentration (per ATSE for ``dm_concentration='atse'``, else the scalar; the
        per-junction concentration of a beta-binomial model). This is the mean of the Dirichlet
        (beta) posterior of the cell's junction usage given its reads: where the cell has no reads
        for the ATSE, ``ψ* = p``. A binomial model has no finite concentration, so ``ψ* = p``.

        Parameters are those of :meth:`get_normalized_splicing`.
        """
        return self._normalized(
            "dm",
            adata,
            indices,
            n_samples_overall,
            transform_batch,
            junction_list,
            use_z_mean,
            n_samples,
            batch_size,
            return_mean,
            return_numpy,
            silent,
        )

    # ------------------------------------------------------------------ observed data
    @torch.inference_mode()
    def _observed_minibatches(self, adata, indices: np.ndarray, batch_size: int | None = None):
        """Yield ``(first row, rows, cols, k, n)`` of each minibatch's observed entries, as the model sees them.

        ``rows`` are positions within the minibatch; ``first row`` is the minibatch's offset in
        ``indices``. Only one minibatch is in memory at a time.
        """
        start = 0
        for tensors in self._data_loader(adata, indices, batch_size):
            obs = self.module.observed(
                *(
                    self.module._get_inference_input(tensors)[key]
                    for key in ("junction_counts", "atse_counts", "psi_mask", "junction_ratio")
                )
            )
            yield (
                start,
                obs.rows.cpu().numpy(),
                obs.cols.cpu().numpy(),
                obs.k.cpu().numpy(),
                obs.n.cpu().numpy(),
            )
            start += obs.n_cells

    def _observed_counts(self, adata, indices: np.ndarray, batch_size: int | None = None):
        """Observed ``k`` and ``n`` (cells × junctions CSR) of the cells, as the model sees them."""
        rows, cols, ks, ns = [], [], [], []
        for start, r, c, k, n in self._observed_minibatches(adata, indices, batch_size):
            rows.append(r + start)
            cols.append(c)
            ks.append(k)
            ns.append(n)
        shape = (len(indices), self.module.n_input_junctions)
        r, c = np.concatenate(rows), np.concatenate(cols)
        k = sp.csr_matrix((np.concatenate(ks), (r, c)), shape=shape)
        n = sp.csr_matrix((np.concatenate(ns), (r, c)), shape=shape)
        return k, n

    # ------------------------------------------------------------------ differential splicing
    def _group_indices(
        self, adata, groupby, group1, group2, idx1, idx2
    ) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
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
        labels = group_labels(adata, groupby).to_numpy(dtype=object)
        known = pd.notna(labels)  # cells without a label are in no group, not in "the rest"
        if group1 is None:
            groups1 = list(pd.unique(labels[known]))
        else:
            groups1 = [group1] if isinstance(group1, str) else list(group1)
        if isinstance(group2, str):
            group2 = [group2]
        comparisons = []
        for g in groups1:
            cells1 = np.nonzero(labels == str(g))[0]
            if group2 is None:
                cells2, name2 = np.nonzero(known & (labels != str(g)))[0], "rest"
            else:
                cells2, name2 = (
                    np.nonzero(np.isin(labels, [str(x) for x in group2]))[0],
                    ",".join(map(str, group2)),
                )
            if cells1.size == 0 or cells2.size == 0:
                raise ValueError(f"empty group in comparison {g} vs {name2} ({groupby})")
            comparisons.append((str(g), name2, cells1, cells2))
        return comparisons

    def _ds_design(self, adata, groupby, group1, group2, idx1, idx2):
        """Cells, their strata and the comparisons (as strata) of a differential splicing call.

        Returns
        -------
        cells
            Indices of the cells to decode (each once).
        stratum
            Stratum of each of ``cells``: a label of ``groupby``, or ``idx1`` / ``idx2``.
        comparisons
            ``(name1, name2, strata1, strata2)`` per comparison.
        """

        def as_idx(idx):
            idx = np.asarray(idx)
            return np.nonzero(idx)[0] if idx.dtype == bool else idx.astype(np.int64)

        if idx1 is not None:
            cells1 = np.unique(as_idx(idx1))
            cells2 = (
                np.unique(as_idx(idx2)) if idx2 is not None else np.setdiff1d(np.arange(adata.n_obs), cells1)
            )
            shared = np.intersect1d(cells1, cells2)
            if shared.size:
                raise ValueError(f"idx1 and idx2 share {shared.size} cells; a cell can be in one group only")
            if cells1.size == 0 or cells2.size == 0:
                raise ValueError("idx1 and idx2 must both select at least one cell")
            cells = np.concatenate([cells1, cells2])
            stratum = np.r_[np.zeros(cells1.size, dtype=np.int64), np.ones(cells2.size, dtype=np.int64)]
            return (
                cells,
                stratum,
                [("idx1", "idx2" if idx2 is not None else "rest", np.array([0]), np.array([1]))],
            )
        comparisons = self._group_indices(adata, groupby, group1, group2, None, None)
        labels = group_labels(adata, groupby).to_numpy()
        cells = np.unique(np.concatenate([np.r_[c1, c2] for _, _, c1, c2 in comparisons]))
        names, stratum = np.unique(labels[cells], return_inverse=True)
        out = []
        for name1, name2, c1, c2 in comparisons:
            s1 = np.nonzero(np.isin(names, np.unique(labels[c1])))[0]
            s2 = np.nonzero(np.isin(names, np.unique(labels[c2])))[0]
            if np.intersect1d(s1, s2).size:
                raise ValueError(
                    f"group1 {name1!r} is also in group2 ({name2}) of {groupby!r}; give disjoint groups"
                )
            out.append((name1, name2, s1, s2))
        return cells, stratum.astype(np.int64), out

    @torch.inference_mode()
    def _ds_moments(
        self,
        adata,
        cells,
        stratum,
        n_strata,
        model_batches,
        use_dm,
        n_samples,
        batch_size,
        seed,
        silent=True,
        *,
        rho_cells: np.ndarray,
    ) -> dstats.GroupMoments:
        """Per-stratum sufficient statistics of the cells, one minibatch of cells at a time.

        ``model_batches`` lists, per stratum, the batch codes whose decoded PSI the model term
        averages (``None``: the cells' own batches). ``rho_cells``: the cells' overdispersion per
        junction (:meth:`_read_sums`), used where ``dstats.CELL_OVERDISPERSION_WEIGHTS``. Only one
        minibatch of cells × junctions is ever dense.
        """
        module = self.module
        n_j = module.n_input_junctions
        rho = None
        if use_dm:
            # A likelihood without concentration (binomial) has no overdispersion.
            if module.likelihood.has_concentration:
                rho = 1.0 / (
                    1.0 + module.splicing_concentration_per_junction().detach().cpu().double().numpy()
                )
        if dstats.CELL_OVERDISPERSION_WEIGHTS:
            # The model's overdispersion is that of the reads around the cell's decoded PSI; where the
            # cells of a group differ far more than that (and the model does not follow them), neither
            # the weights nor the variance the model expects may let a few deep cells stand for the
            # group. On deep Smart-seq2 cells (PSI 0 or 1 cell by cell) the model's ρ alone made
            # random splits of one patient call dozens of junctions (bench/ds_quality.py, real cells).
            rho = rho_cells if rho is None else np.maximum(rho, rho_cells)
        mom = dstats.GroupMoments.zeros(n_strata, n_j)
        distinct = sorted({tuple(b) for b in model_batches if b is not None})
        start = 0
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            loader = self._data_loader(adata, cells, batch_size)
            for tensors in track(loader, description="Differential splicing", disable=silent):
                out = module.inference(**module._get_inference_input(tensors), n_samples=n_samples)
                z = out["z"] if n_samples > 1 else module.z_transformation(out["qz_m"])
                own = tensors[REGISTRY_KEYS.BATCH_KEY].to(z.device)
                cat = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
                cont = tensors.get(REGISTRY_KEYS.CONT_COVS_KEY)
                cat = cat.to(z.device) if cat is not None else None
                cont = cont.to(z.device) if cont is not None else None

                def decode(batch_index, z=z, cat=cat, cont=cont):
                    p = module.decode_psi(z, batch_index, cat, cont).float()
                    return (p.mean(0) if p.dim() == 3 else p).cpu().numpy()

                p_own = decode(own)
                n_rows = p_own.shape[0]
                strat = stratum[start : start + n_rows]
                p_model = None
                if distinct:
                    p_model = p_own.copy()
                    for codes in distinct:
                        p_tb = sum(decode(torch.full_like(own, c)) for c in codes) / len(codes)
                        rows_tb = np.array(
                            [model_batches[s] is not None and tuple(model_batches[s]) == codes for s in strat]
                        )
                        p_model[rows_tb] = p_tb[rows_tb]
                obs = out["observed"]
                mom.add(
                    strat,
                    p_own,
                    obs.rows.cpu().numpy(),
                    obs.cols.cpu().numpy(),
                    obs.k.cpu().double().numpy(),
                    obs.n.cpu().double().numpy(),
                    rho,
                    p_model,
                )
                start += n_rows
        return mom

    def _read_sums(self, adata, cells, stratum, n_strata, batch_size, weighted=True):
        """:func:`~splicevi.stats.read_test.read_sums` of the cells' observed counts, minibatch by minibatch."""
        return read_test.read_sums(
            lambda: self._observed_minibatches(adata, cells, batch_size),
            stratum,
            n_strata,
            self.module.n_input_junctions,
            weighted,
        )

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
        n_samples: int = 1,
        seed: int = 0,
        fdr_method: Literal["bh", "interval", "lfdr", "bh_lfdr"] = "bh_lfdr",
        design: Literal["auto", "labels", "clusters", "samples"] = "auto",
        sample_key: str | None = None,
        min_cells: int = dsdesign.MIN_CELLS,
        **kwargs,
    ) -> pd.DataFrame:
        """Differential splicing on the PSI scale, per junction or per ATSE, with a test fit for the design.

        **Which test.** The units of a valid test depend on where the groups come from
        (``design``; the choice, the test and why are in the table's ``design`` / ``test``
        columns and ``table.attrs["splicevi_ds"]``):

        - ``labels``: groups from annotations independent of the reads (cell types, a labelled
          column): cells are the units, and the model-assisted cell-level test below is used.
        - ``samples``: groups that are unions of samples (condition, donor): samples are the units
          (pseudobulk per sample; :func:`splicevi.model._ds_samples.sample_level_ds`).
        - ``clusters``: groups found on the same reads (clusters of the model's latent): a test on
          reads the clustering did not see (:func:`splicevi.model._ds_clusters.heldout_ds`).
        - ``auto`` (default): ``samples`` when every sample (``sample_key``; default the registered
          batch key) of the compared cells lies inside one group and each group has at least two
          samples; else ``clusters`` when ``groupby`` is recorded as a clustering (scanpy's
          ``uns[groupby]["params"]`` of ``sc.tl.leiden`` / ``louvain``, or ``splicevi cluster``'s
          provenance); else ``clusters`` when the model's latent separates the groups almost
          perfectly **and** the data hold held-out reads (``split_reads``); such groups without
          held-out reads (a well-separated cell type looks the same as a cluster) get ``labels``
          with a double-dipping warning in the log and the reason; else ``labels``. Decided per
          comparison. The clusters test calls with BH on ΔPSI = 0 and the confident |ΔPSI| ≥ delta
          filter on the held-out reads (``fdr_method`` ``bh_lfdr`` means ``bh`` there, without the lfdr
          and reads-only parts; see :func:`~splicevi.model._ds_clusters.clusters_fdr_method`),
          and the clusters contrasts of one call are one Benjamini–Hochberg family
          (:func:`~splicevi.model._ds_clusters.family_calls_ds`): on data without any difference
          no contrast has a call with probability at least 1 − ``fdr_target``.

        **The labels test.** The quantity tested is the difference of the two groups' **mean PSI**,
        ΔPSI = PSI1 − PSI2, where each cell of a group counts once. A group's mean PSI per junction
        is the mean of the model's decoded PSI over all the group's cells, corrected by the weighted
        mean residual (observed ``k / n`` − decoded) of the cells that observe the junction's ATSE
        (see :mod:`splicevi.stats.differential`). The model sharpens the estimate where it
        predicts the cells' PSI; the correction keeps it unbiased where it does not, so the
        ranking and the calls never rest on the model's extrapolation alone. Its variance treats
        cells as independent units (cell-to-cell overdispersion included), corrects for the
        leverage of deep cells, and is moderated towards the variance the model expects (limma's
        idea, 4 prior degrees of freedom): this is where the test gains power over a t-test on the
        few observing cells. The residuals are weighted by the cells' effective reads under the
        larger of the model's read overdispersion and the cells' own (so a few deep cells cannot
        stand for a group whose cells differ far more than their reads). **Stability across
        training seeds**: the model enters only through the decoded PSI, and the residual
        correction lets the observed reads decide wherever the model is off or moves with the
        seed; with the weights above the data dominate exactly where the cells disagree with the
        model (measured on real cells in ``bench/ds_quality.py``: five seeds, Jaccard index of
        the call sets).

        **Calls** (``is_ds_fdr``, default ``fdr_method="bh_lfdr"``): a junction is called when
        any of three FDR-controlling rules calls it at ``fdr_target``: (1) Benjamini–Hochberg on
        the p-values of ΔPSI = 0 with a confident change of at least ``delta``
        (|ΔPSI| − 1.645·se ≥ ``delta``, the effect filter rMATS/MAJIQ users apply by hand), once
        for the model-assisted test above and once for a quasi-binomial score test on the observed
        reads alone (cells weighted by their effective reads under the cells' overdispersion, which
        is estimated per junction and never below the estimate over all junctions; columns
        ``reads_*``; :mod:`splicevi.stats.read_test`): at droplet coverage, where a group's
        empirical variance rests on a few cells with one to three reads, the reads' own variance
        is the stronger evidence (measured on the quality grid at 3 % coverage: 1.4–2.4× the true
        junctions of a Welch t-test, empirical FDR ≤ 0.023 on the splice-only pair); in a
        comparison with a small group (at most 50 cells, e.g. a plate of deep cells; ``perm_*``
        columns, :mod:`splicevi.stats.permutation_test`, labels permuted within batches that
        hold both groups, reproducible with ``seed``) the reads-only rule also calls on a
        permutation test of Welch's t on the cells' standardised residuals (variance 1 whatever
        a cell's reads), with the same effect filter: where deep cells read nearly 0 or 1 each,
        Welch's statistic is the powerful one and the permutations make its level exact
        (Welch's own p-values are not, where a group's few observing cells agree); or (2)
        the empirical-Bayes posterior: the mean local FDR P(|ΔPSI| ≤ ``delta`` | data) of the
        calls is at most ``fdr_target`` (``lfdr_qvalue``). The posterior's prior is fitted to all
        junctions of the comparison and its likelihood is the t-statistic's own Student-t, so a
        change measured on a handful of observing cells is not taken as a sure one. The union
        adds the posterior's power (it borrows the spread of true changes across junctions) to
        the point-null test, and each part is calibrated on its own (measured per contrast kind
        in ``bench/ds_quality.py``; a union of calibrated rules can exceed the target, so the
        bench reports the empirical FDR of the union itself). These calls control the FDR of
        "ΔPSI ≠ 0"; where many true changes sit just below ``delta`` (one group against the rest)
        up to ~10 % of them may change by less than ``delta`` (README, *What the calls promise*).
        ``fdr_method="interval"`` instead controls the FDR of "|ΔPSI| > ``delta``" itself: BH on
        the interval-null p-values of the model-assisted test and of the reads-only score test
        (:func:`splicevi.stats.read_test.interval_log_pvalue`, variance at the PSIs fitted under
        ΔPSI = ±``delta``); measured at 3 % coverage: 0.92–1.46× Welch's true junctions with every
        contrast kind's FDR ≤ 0.032 (the model's interval test alone: 0.11–0.69×).

        With ``groupby`` and ``group2=None`` the second group is **the rest as the cells present**:
        the cell-count-weighted mean of the other groups' mean PSI, each group estimated on its own
        (so a well-covered group does not stand for the whole rest). The same holds for a
        ``group2`` listing several groups.

        Parameters
        ----------
        adata
            Data registered with the model; ``None`` for the training data.
        groupby, group1, group2
            ``obs`` column and its groups; ``group2=None`` compares with the rest of the cells;
            ``group1=None`` runs every group against the rest (column ``comparison``).
        idx1, idx2
            Cell indices or boolean masks instead of ``groupby`` (``idx2=None``: the rest); the two
            must not share cells.
        mode
            ``change`` (default): calls need an estimated ``|ΔPSI| ≥ delta`` besides the FDR;
            ``proba_ds`` = P(|ΔPSI| > delta | data); ``interval_pvalue`` / ``interval_qvalue`` test
            the interval null ``|ΔPSI| ≤ delta``. ``vanilla``: test ΔPSI ≠ 0 without an effect
            filter; ``proba_ds`` is the probability of the more likely sign and ``bayes_factor``
            is signed, log P(ΔPSI > 0) / P(ΔPSI ≤ 0).
        delta
            ΔPSI threshold of the ``change`` mode (effect filter of the calls, interval null).
        batch_size
            Minibatch size (cells decoded at once).
        all_stats
            Keep the empirical columns (``emp_psi1``, ``emp_psi2``, ``emp_effect``).
        batch_correction, batchid1, batchid2
            The model term of group 1 (2) averages the decoded PSI of every cell over the batches
            ``batchid1`` (``batchid2``; default: all batches) instead of the cells' own batch.
        fdr_target
            Target FDR of the calls.
        silent
            Hide the progress bar over minibatches of cells.
        norm_splicing_function
            ``dm_posterior_mean`` (default): a cell's residual is weighted by the effective number
            of its reads under the fitted Dirichlet-multinomial, ``n / (1 + (n − 1) / (1 + c))``
            (the weight of its reads in ψ* = (c·p + k) / (c + n)); ``decoded``: by its reads ``n``.
        level
            ``junction`` or ``event`` (one row per ATSE; see :func:`splicevi.stats.differential.event_level`).
        n_samples
            Posterior samples of the latent averaged into each cell's decoded PSI (1: the posterior
            mean).
        seed
            Seed of the latent samples (``n_samples > 1``) and of the label permutations of a
            comparison with a small group (``perm_*`` columns).
        fdr_method
            How ``is_ds_fdr`` controls the FDR: ``bh_lfdr`` (default; see *Calls* above), ``bh``
            (its point-null part alone), ``lfdr`` (its posterior part alone, ``lfdr_qvalue ≤
            fdr_target``) or ``interval`` (Benjamini–Hochberg on the interval-null p-values of the
            model-assisted and the reads-only tests: the FDR of "|ΔPSI| > delta" whatever the true
            changes). The table is sorted calls first, then by the
            evidence of the chosen method.
        design
            ``auto``, ``labels``, ``clusters`` or ``samples`` (see *Which test*); an explicit value
            overrides the automatic choice (``samples`` raises ``ValueError`` when a sample has
            cells in both groups or a group has too few samples).
        sample_key
            ``obs`` column naming each cell's sample (``None``: the registered batch key).
        min_cells
            A comparison with fewer cells, or fewer cells with splicing reads, in either group is
            skipped with a logged warning: its table is empty and its ``attrs["splicevi_ds"]``
            says why (``skipped``).
        **kwargs
            Accepted for the reference signature; any keyword given here raises ``TypeError``
            (naming it) rather than being silently ignored: this test has no further options.

        Returns
        -------
        pd.DataFrame
            Per junction (index ``junction_id``):

            - ``effect_size`` (estimated ΔPSI, within [−1, 1]), ``effect_se`` (its standard error),
              ``df``;
            - ``pvalue`` (of ΔPSI = 0), ``log10_pvalue`` (exact where ``pvalue`` underflows),
              ``qvalue`` (Benjamini–Hochberg), ``interval_pvalue`` / ``interval_qvalue``
              (``change`` mode: of ``|ΔPSI| ≤ delta``), ``is_ds_fdr`` (the calls);
            - ``proba_ds`` = P(|ΔPSI| > delta | data), ``bayes_factor`` (its natural log odds,
              exact far beyond where ``proba_ds`` rounds to 1), ``lfdr`` = 1 − ``proba_ds``,
              ``log10_lfdr``, ``lfdr_qvalue`` (mean ``lfdr`` of the rows at least as strong):
              posterior under an empirical-Bayes prior, a zero-centred normal scale mixture fitted
              to all junctions (the prior alone where a group has no observing cell: untestable,
              ``pvalue`` 1);
            - ``est_psi1``, ``est_psi2`` (the group estimates, within [0, 1]), ``emp_psi1``,
              ``emp_psi2``, ``emp_effect`` (pooled observed PSI Σk / Σn and its difference),
              ``n_obs_group1``, ``n_obs_group2`` (observing cells), ``junction_id``, ``event_id``,
              ``gene_name``;
            - ``design``, ``test``: the design and the test used (also in ``attrs["splicevi_ds"]``
              with the ``reason`` of the choice).

            Per event: see :func:`splicevi.stats.differential.event_level`. Sorted calls first,
            then by increasing ``pvalue`` (``log10_pvalue``), ties by decreasing |``effect_size``|.
        """
        if kwargs:
            raise TypeError(
                f"differential_splicing() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}"
            )
        # The options checked at the entry point, before any work (the public stats functions check the ones they take).
        check_choice("norm_splicing_function", norm_splicing_function, choices.NORM_SPLICING_FUNCTIONS)
        check_choice("level", level, choices.LEVELS)
        check_choice("mode", mode, choices.MODES)
        check_choice("fdr_method", fdr_method, choices.FDR_METHODS)
        if fdr_method == "interval" and mode != "change":
            raise ValueError("fdr_method='interval' tests |ΔPSI| ≤ delta: use it with mode='change'")
        check_choice("design", design, choices.DS_DESIGNS)
        if int(min_cells) < 1:
            raise ValueError(f"min_cells must be >= 1, got {min_cells}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if not 0 < fdr_target < 1:
            raise ValueError(f"fdr_target must be in (0, 1), got {fdr_target}")
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        cells, stratum, comparisons = self._ds_design(adata, groupby, group1, group2, idx1, idx2)
        with_reads = self._cells_with_reads(adata)
        uns_all = [adata.uns] + ([m.uns for m in adata.mod.values()] if isinstance(adata, MuData) else [])
        recorded = dsdesign.recorded_clustering(uns_all, groupby) if design == "auto" else None
        heldout_present = has_heldout_reads(self, adata) if design == "auto" else False
        samples = None
        plans = []  # (name1, name2, strata1, strata2, cells1, cells2, choice or None)
        for name1, name2, s1, s2 in comparisons:
            c1, c2 = cells[np.isin(stratum, s1)], cells[np.isin(stratum, s2)]
            label = f"{name1} vs {name2}"
            skip = dsdesign.too_few_cells(c1, c2, with_reads, int(min_cells))
            if skip is not None:
                log.warning("differential splicing: comparison %s skipped: %s", label, skip)
                plans.append(
                    (name1, name2, s1, s2, c1, c2, dsdesign.DesignChoice(design, "not tested", skip, True))
                )
                continue
            if samples is None and design in ("auto", "samples"):
                samples = self._sample_labels(adata, sample_key)
            nested = info = None
            if samples is not None:
                nested = samples_nested_in_groups(samples, c1, c2, min_samples=2)
                info = dsdesign.describe_samples(samples, c1, c2)
            choice = dsdesign.choose_design(
                design,
                nested,
                info,
                sample_key or "the batch key",
                lambda c1=c1, c2=c2: groups_look_like_clusters(self, adata, c1, c2),
                recorded_clustering=recorded,
                has_heldout_reads=heldout_present,
            )
            if "WARNING" in choice.reason and not silent:
                log.warning("differential splicing %s: %s", label, choice.reason)
            if choice.design == "samples" and not samples_nested_in_groups(samples, c1, c2, min_samples=1):
                raise ValueError(
                    f"design='samples' for {label}: a sample ({sample_key or 'batch key'}) has cells in both "
                    "groups, so samples cannot be the units; give a sample_key whose samples lie inside one "
                    "group each, or use design='labels'"
                )
            plans.append((name1, name2, s1, s2, c1, c2, choice))
        labels = [p for p in plans if p[6].design == "labels" and not p[6].skipped]
        tables = {}
        if labels:
            for (name1, name2, *_), table in zip(
                labels,
                self._labels_tables(
                    adata,
                    cells,
                    stratum,
                    [(p[0], p[1], p[2], p[3]) for p in labels],
                    mode,
                    delta,
                    batch_size,
                    all_stats,
                    batch_correction,
                    batchid1,
                    batchid2,
                    fdr_target,
                    silent,
                    norm_splicing_function,
                    level,
                    n_samples,
                    seed,
                    fdr_method,
                ),
                strict=True,
            ):
                tables[(name1, name2)] = table
        out = []
        for name1, name2, _, _, c1, c2, choice in plans:
            if choice.skipped:
                table = dsdesign.empty_table(level)
            elif choice.design == "labels":
                table = tables[(name1, name2)]
            elif choice.design == "samples":
                table = sample_level_ds(
                    self, adata, c1, c2, samples, delta=delta, fdr_target=fdr_target, level=level
                )
            else:
                table = heldout_ds(
                    self,
                    adata,
                    c1,
                    c2,
                    delta=delta,
                    fdr_target=fdr_target,
                    level=level,
                    mode=mode,
                    fdr_method=clusters_fdr_method(fdr_method),
                    batch_size=batch_size,
                    all_stats=all_stats,
                )
            table = dsdesign.finish_table(table, choice)
            if not silent and not choice.skipped:
                log.info(
                    "differential splicing %s vs %s: %s (%s): %s",
                    name1,
                    name2,
                    choice.test,
                    choice.design,
                    choice.reason,
                )
            if len(plans) > 1:
                table["comparison"] = f"{name1} vs {name2}"
                table["group1"], table["group2"] = name1, name2
            out.append((f"{name1} vs {name2}", table))
        held = [i for i, plan in enumerate(plans) if plan[6].design == "clusters" and not plan[6].skipped]
        for i, table in zip(
            held,
            family_calls_ds(
                [out[i][1] for i in held], fdr_target, fdr_method, delta=delta if mode == "change" else 0.0
            ),
            strict=True,
        ):
            out[i] = (out[i][0], table)
        if len(out) == 1:
            return out[0][1]
        # Skipped comparisons give empty tables; concatenating them is deprecated in pandas (their
        # all-NA columns would decide dtypes), and they add no rows.
        frames = [t for _, t in out if len(t)] or [out[0][1]]
        result = pd.concat(frames)
        result.attrs["splicevi_ds"] = dsdesign.combined_attrs(
            {name: t.attrs["splicevi_ds"] for name, t in out}
        )
        return result

    def _cells_with_reads(self, adata) -> np.ndarray:
        """Whether each cell of ``adata`` has any splicing read (observes some ATSE)."""
        manager = self.get_anndata_manager(adata, required=True)
        key = JUNCTION_COUNTS_KEY if JUNCTION_COUNTS_KEY in manager.data_registry else ATSE_COUNTS_KEY
        x = sp.csr_matrix(manager.get_from_registry(key))
        offset = self.module.splicing_offset
        if offset:
            x = x[:, offset:]
        x.eliminate_zeros()
        return np.diff(x.indptr) > 0

    def _sample_labels(self, adata, sample_key: str | None) -> np.ndarray:
        """Each cell's sample: ``obs[sample_key]``, or the registered batch (``None``)."""
        if sample_key is not None:
            try:
                return group_labels(adata, sample_key).to_numpy(dtype=object)
            except KeyError:
                raise ValueError(f"sample_key {sample_key!r} is not a cell annotation of the data") from None
        manager = self.get_anndata_manager(adata, required=True)
        codes = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
        return codes.astype(str).astype(object)

    def _labels_tables(
        self,
        adata,
        cells,
        stratum,
        comparisons,
        mode,
        delta,
        batch_size,
        all_stats,
        batch_correction,
        batchid1,
        batchid2,
        fdr_target,
        silent,
        norm_splicing_function,
        level,
        n_samples,
        seed,
        fdr_method,
    ) -> list[pd.DataFrame]:
        """The model-assisted cell-level test of each comparison (strata of ``stratum``)."""
        var, _ = self._splicing_var(adata, self.n_genes)
        codes = self.module.junc2atse.cpu().numpy()
        n_strata = int(stratum.max()) + 1
        use_dm = norm_splicing_function == "dm_posterior_mean"
        all_batches = list(
            range(len(self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping))
        )
        tb1 = (
            (self._batch_codes(list(batchid1)) if batchid1 is not None else all_batches)
            if batch_correction
            else None
        )
        tb2 = (
            (self._batch_codes(list(batchid2)) if batchid2 is not None else all_batches)
            if batch_correction
            else None
        )
        filt = delta if mode == "change" else 0.0

        # The cells' overdispersion, once for every comparison: the model term's weights and the
        # reads-only quasi-binomial rule of the calls (stats.read_test, strata as the model's) share it.
        uses_reads = fdr_method in ("bh", "bh_lfdr", "interval")
        reads, rho_cells = self._read_sums(adata, cells, stratum, n_strata, batch_size, weighted=uses_reads)
        cells_per_stratum = np.bincount(stratum, minlength=n_strata).astype(np.float64)

        def moments(assign):
            return self._ds_moments(
                adata,
                cells,
                stratum,
                n_strata,
                assign,
                use_dm,
                n_samples,
                batch_size,
                seed,
                silent,
                rho_cells=rho_cells,
            )

        # The cells' observed k, n and batches, read once if some comparison is permuted.
        counts = []

        def permutation_pvalues(s1, s2, n_testable):
            """Permutation log p-values (stats.permutation_test; None unless a group is small)."""
            in1, in2 = np.isin(stratum, s1), np.isin(stratum, s2)
            if not permutation_test.permuted(int(in1.sum()), int(in2.sum()), n_testable):
                return None
            rows = np.nonzero(in1 | in2)[0]
            if not counts:
                counts.extend(self._observed_counts(adata, cells, batch_size))
                counts.append(self._sample_labels(adata, None)[cells])
            k, n, batches = counts
            log_p = permutation_test.permutation_log_pvalues(
                k[rows],
                n[rows],
                np.isin(stratum[rows], s1),
                fdr_target,
                blocks=batches[rows],  # labels move within batches that hold both groups
                seed=seed,
            )
            if log_p is not None and not silent:
                log.info(
                    "differential splicing: a group of at most %d cells: also permuting Welch's t on "
                    "the cells' residuals",
                    permutation_test.MAX_SMALL_GROUP,
                )
            return log_p

        shared = None
        if tb1 == tb2:  # one pass serves every comparison
            shared = moments([tb1] * n_strata)
        tables = []
        for _name1, _name2, s1, s2 in comparisons:
            if shared is None:
                assign = [None] * n_strata
                for s in s1:
                    assign[s] = tb1
                for s in s2:
                    assign[s] = tb2
                mom = moments(assign)
            else:
                mom = shared
            psi_null = dstats.null_psi(mom.subset(np.concatenate([np.asarray(s1), np.asarray(s2)])))
            g1 = dstats.group_estimate(mom.subset(s1), psi_null=psi_null)
            g2 = dstats.group_estimate(mom.subset(s2), psi_null=psi_null)
            test = dstats.difference_test(g1, g2, delta=delta, mode=mode)
            by_reads = perm = None
            if uses_reads:
                s1, s2 = np.asarray(s1), np.asarray(s2)
                by_reads = read_test.read_test(
                    reads, rho_cells, s1, cells_per_stratum[s1], s2, cells_per_stratum[s2], delta=filt
                )
                if fdr_method != "interval":
                    perm = permutation_pvalues(s1, s2, int(np.isfinite(by_reads.effect).sum()))
            table = dstats.junction_table(
                test, g1, g2, fdr_target, fdr_method, delta=filt, reads=by_reads, perm_log_pvalue=perm
            )
            table.index = pd.Index(var.index, name="junction_id")
            table["junction_id"] = var.index.to_numpy()
            table["event_id"] = var["event_id"].to_numpy()
            table["gene_name"] = var["gene_name"].to_numpy() if "gene_name" in var else None
            if level == "event":
                table = dstats.event_level(
                    table, codes, fdr_target=fdr_target, fdr_method=fdr_method, delta=filt
                )
            if not all_stats:
                table = table.drop(columns=[c for c in ("emp_psi1", "emp_psi2", "emp_effect") if c in table])
            table = dstats.sort_table(table, fdr_method)
            if perm is not None:
                table.attrs[dsdesign.ATTRS_KEY] = {"test": dsdesign.TESTS["labels"] + PERMUTED_TEST}
            tables.append(table)
        return tables

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
        design: Literal["auto", "labels", "samples", "clusters"] = "auto",
        sample_key: str | None = None,
        covariates: pd.DataFrame | None = None,
        min_samples: int = 2,
        **kwargs,
    ) -> pd.DataFrame:
        """Differential expression: pseudobulk over samples, held-out counts for clusters, or scvi-tools' change mode.

        Three designs (``design``; the table's ``design`` and ``test`` columns and
        ``table.attrs["splicevi_de"]`` (with the ``reason``) say which ran):

        - ``samples``: the groups are unions of samples (a condition across donors or channels).
          Each sample's gene counts are summed over its cells and the samples are tested by
          DESeq2 (PyDESeq2; Wald test of the group term, per-sample ``covariates`` in the design):
          cells of one sample are not independent replicates, and testing them as such reads
          donor-to-donor variation as a group effect. ``is_de_fdr``: Benjamini–Hochberg
          ``qvalue ≤ fdr_target`` and ``|lfc_mean| ≥ delta``.
        - ``clusters``: the groups were found on the same data (clusters of the model's latent).
          Tested on the **held-out gene counts** (``split_data`` / ``splicevi cluster --model``;
          the clusters found on the fit parts) by a cell-level negative-binomial score test
          (:func:`splicevi.stats.heldout_de.heldout_de_test`); ``ValueError`` (saying how to make
          them) when the data hold no held-out gene counts. ``is_de_fdr``: BH ``qvalue ≤
          fdr_target`` and ``|lfc_mean| ≥ delta``, the BH over every clusters contrast of the call
          together (one family; :func:`~splicevi.model._de_clusters.family_calls_de`).
        - ``labels``: as MULTIVI's, scvi-tools' change mode on the model's decoded expression
          (cells as units; for groups of cells that share samples, e.g. cell types).
        - ``auto`` (default): ``samples`` when, in every comparison, every sample (``sample_key``,
          by default the registered batch key) lies inside one of the two groups and each group
          has at least ``min_samples`` samples; else, per comparison, the rule of
          :meth:`differential_splicing`: ``clusters`` when ``groupby`` is recorded as a clustering
          (scanpy's ``uns[groupby]["params"]``, ``splicevi cluster``'s provenance) or when the
          latent separates the groups almost perfectly and the data hold held-out gene counts;
          else ``labels`` (with a double-dipping warning when the latent separates the groups).

        Parameters
        ----------
        adata, groupby, group1, group2, idx1, idx2, mode, batch_size, all_stats, batch_correction, batchid1, batchid2, fdr_target, silent
            As :meth:`differential_splicing` (``mode``, ``batch_*`` and ``all_stats`` apply to the ``labels`` design).
        delta
            Threshold on the log2 fold change.
        design
            ``auto``, ``labels``, ``samples`` or ``clusters`` (see above); ``samples`` raises
            ``ValueError`` with the number of samples of each group when a group has fewer than
            ``min_samples``.
        sample_key
            ``obs`` column of the samples (replicates); ``None``: the registered batch key.
        covariates
            Per-sample covariates of the ``samples`` design: indexed by sample id, or one row per
            cell (constant within each sample).
        min_samples
            Samples needed in each group for the ``samples`` design.
        **kwargs
            To :meth:`scvi.model.base.DifferentialComputation.get_bayes_factors` (``labels``).

        Returns
        -------
        pd.DataFrame
            ``labels``: scvi-tools' DE table (``proba_de``, ``bayes_factor``, ``lfc_mean``,
            ``is_de_fdr_<fdr>``, raw-count statistics when ``all_stats``), indexed by gene.
            ``samples``: ``lfc_mean`` (log2), ``lfc_se``, ``base_mean``, ``stat``,
            ``pvalue``, ``qvalue``, ``proba_de`` (1 − q-value), ``log10_pvalue``, ``is_de_fdr``, ``cpm1``, ``cpm2``,
            ``n_samples_group1`` / ``2`` (see :func:`splicevi.stats.pseudobulk_de.deseq2_test`).
            ``clusters``: ``lfc_mean``, ``lfc_se``, ``stat``, ``df``, ``pvalue``, ``qvalue``,
            ``proba_de`` (1 − q-value), ``log10_pvalue``, ``is_de_fdr``, ``norm1`` / ``norm2``
            (held-out counts per 10,000), ``n_expr_group*``, ``n_cells_group*``.
            Both carry ``design`` and ``test``; with ``group1=None`` one table per comparison is
            stacked with ``comparison``, ``group1``, ``group2``.
        """
        from ._de_clusters import DE_ATTRS_KEY
        from ._ds_samples import check_samples, sample_labels, samples_nested_in_groups

        if self.module.n_input_genes == 0:
            raise ValueError("this model has no expression modality (splicing-only data)")
        check_choice("design of differential expression", design, choices.DE_DESIGNS)
        adata = self._validate_anndata(adata)
        col_names = self._feature_names(adata, "genes")
        if design == "labels":
            return self._labels_de_table(
                adata,
                col_names,
                groupby,
                group1,
                group2,
                idx1,
                idx2,
                mode,
                delta,
                batch_size,
                all_stats,
                batch_correction,
                batchid1,
                batchid2,
                fdr_target,
                silent,
                "design='labels' given explicitly",
                **kwargs,
            )
        comparisons = self._group_indices(adata, groupby, group1, group2, idx1, idx2)
        samples = None
        if design in ("auto", "samples"):
            samples = sample_labels(self, adata, sample_key)
            nested = samples is not None and all(
                samples_nested_in_groups(samples, c1, c2, min_samples) for _, _, c1, c2 in comparisons
            )
            if design == "samples" and not nested:
                if samples is None:
                    raise ValueError(
                        "design='samples' needs sample labels: give sample_key (an obs column of the "
                        "samples) or register a batch key"
                    )
                for _, _, c1, c2 in comparisons:
                    check_samples(samples, c1, c2, min_samples)
            if nested:
                return self._pseudobulk_de(
                    adata, comparisons, samples, col_names, covariates, delta, fdr_target
                )
        # Clusters or labels, per comparison, by the rule of differential splicing (stats.design).
        uns_all = [adata.uns] + ([m.uns for m in adata.mod.values()] if isinstance(adata, MuData) else [])
        recorded = dsdesign.recorded_clustering(uns_all, groupby) if design == "auto" else None
        held = has_heldout_genes(adata) if isinstance(adata, MuData) else False
        picked = []
        for name1, name2, c1, c2 in comparisons:
            info = dsdesign.describe_samples(samples, c1, c2) if samples is not None else None
            choice = dsdesign.choose_design(
                design,
                False if info is not None else None,
                info,
                sample_key or "the batch key",
                lambda c1=c1, c2=c2: groups_look_like_clusters(self, adata, c1, c2),
                recorded_clustering=recorded,
                has_heldout_reads=held,
                tests=DE_TESTS,
                held_out="gene counts",
            )
            if "WARNING" in choice.reason and not silent:
                log.warning("differential expression %s vs %s: %s", name1, name2, choice.reason)
            picked.append(choice)
        if all(c.design == "labels" for c in picked):
            # One call of scvi-tools' DE serves every comparison (as before the clusters design).
            reasons = {
                f"{n1} vs {n2}": c.reason for (n1, n2, _, _), c in zip(comparisons, picked, strict=True)
            }
            reason = (
                next(iter(reasons.values()))
                if len(reasons) == 1
                else "; ".join(f"{k}: {v}" for k, v in reasons.items())
            )
            return self._labels_de_table(
                adata,
                col_names,
                groupby,
                group1,
                group2,
                idx1,
                idx2,
                mode,
                delta,
                batch_size,
                all_stats,
                batch_correction,
                batchid1,
                batchid2,
                fdr_target,
                silent,
                reason,
                **kwargs,
            )
        tables, attrs = [], {}
        held_out = {
            i: heldout_de(self, adata, c1, c2, delta=delta, fdr_target=fdr_target, genes=col_names)
            for i, ((_, _, c1, c2), choice) in enumerate(zip(comparisons, picked, strict=True))
            if choice.design == "clusters"
        }
        family_calls_de(list(held_out.values()), delta, fdr_target)
        for i, ((name1, name2, c1, c2), choice) in enumerate(zip(comparisons, picked, strict=True)):
            if choice.design == "clusters":
                table = held_out[i]
                own = table.attrs[DE_ATTRS_KEY]
                table.attrs[DE_ATTRS_KEY] = {**own, "reason": f"{choice.reason}; {own['reason']}"}
            else:
                table = self._labels_de_table(
                    adata,
                    col_names,
                    None,
                    None,
                    None,
                    c1,
                    c2,
                    mode,
                    delta,
                    batch_size,
                    all_stats,
                    batch_correction,
                    batchid1,
                    batchid2,
                    fdr_target,
                    silent,
                    choice.reason,
                    **kwargs,
                )
            if not silent:
                log.info(
                    "differential expression %s vs %s: %s (%s): %s",
                    name1,
                    name2,
                    table.attrs[DE_ATTRS_KEY]["test"],
                    choice.design,
                    table.attrs[DE_ATTRS_KEY]["reason"],
                )
            if len(comparisons) > 1:
                table["comparison"] = f"{name1} vs {name2}"
                table["group1"], table["group2"] = name1, name2
            attrs[f"{name1} vs {name2}"] = table.attrs[DE_ATTRS_KEY]
            tables.append(table)
        if len(tables) == 1:
            return tables[0]
        result = pd.concat(tables)
        result.attrs[DE_ATTRS_KEY] = dsdesign.combined_attrs(attrs)
        return result

    def _labels_de_table(
        self,
        adata,
        col_names,
        groupby,
        group1,
        group2,
        idx1,
        idx2,
        mode,
        delta,
        batch_size,
        all_stats,
        batch_correction,
        batchid1,
        batchid2,
        fdr_target,
        silent,
        reason,
        **kwargs,
    ):
        """The labels design's table (scvi-tools' change mode) with ``design``, ``test`` and the attrs."""
        from ._de_clusters import DE_ATTRS_KEY

        table = self._labels_de(
            adata,
            col_names,
            groupby,
            group1,
            group2,
            idx1,
            idx2,
            mode,
            delta,
            batch_size,
            all_stats,
            batch_correction,
            batchid1,
            batchid2,
            fdr_target,
            silent,
            **kwargs,
        )
        table["design"] = "labels"
        table["test"] = DE_TESTS["labels"]
        table.attrs[DE_ATTRS_KEY] = {"design": "labels", "test": DE_TESTS["labels"], "reason": reason}
        return table

    def _pseudobulk_de(self, adata, comparisons, samples, col_names, covariates, delta, fdr_target):
        """Sample-level DE of each comparison (see :meth:`differential_expression`)."""
        from ..stats.pseudobulk_de import TEST_NAME, pseudobulk_de
        from ._ds_samples import per_sample_covariates

        counts = self.get_anndata_manager(adata, required=True).get_from_registry(REGISTRY_KEYS.X_KEY)
        counts = sp.csr_matrix(counts)[:, : self.n_genes]
        tables = []
        for name1, name2, c1, c2 in comparisons:
            cells = np.concatenate([c1, c2])
            names = np.unique(np.asarray(samples, dtype=object)[cells].astype(str))
            cov = per_sample_covariates(covariates, samples, names, cells)
            table = pseudobulk_de(counts, samples, c1, c2, col_names, covariates=cov, fdr_target=fdr_target)
            table["is_de_fdr"] = table["is_de_fdr"] & (table["lfc_mean"].abs() >= delta)
            table = table.sort_values(["log10_pvalue"], kind="stable")
            table["design"] = "samples"
            table["test"] = TEST_NAME
            table.attrs["splicevi_de"] = {
                "design": "samples",
                "test": TEST_NAME,
                "reason": f"every sample lies inside one group ({int(table['n_samples_group1'].iloc[0])} vs "
                f"{int(table['n_samples_group2'].iloc[0])} samples): samples are the units",
            }
            if len(comparisons) > 1:
                table["comparison"] = f"{name1} vs {name2}"
                table["group1"], table["group2"] = name1, name2
            tables.append(table)
        return tables[0] if len(tables) == 1 else pd.concat(tables)

    def _labels_de(
        self,
        adata,
        col_names,
        groupby,
        group1,
        group2,
        idx1,
        idx2,
        mode,
        delta,
        batch_size,
        all_stats,
        batch_correction,
        batchid1,
        batchid2,
        fdr_target,
        silent,
        **kwargs,
    ):
        """scvi-tools' DE (cells as units), as MULTIVI's."""
        from scvi.model._utils import scrna_raw_counts_properties
        from scvi.model.base._de_core import _de_core

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


def _dm_posterior_mean(p: torch.Tensor, observed, conc: torch.Tensor, col_pos: torch.Tensor) -> torch.Tensor:
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
