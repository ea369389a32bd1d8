"""Helpers every model stage of the command line shares.

Logging and seeds, reading the ``.h5mu``, registering it with the model and loading a saved model
(``train``, ``embed``, ``cluster``, ``ds``, ``de``, ``plot`` and ``export`` import them from here).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from splicevi._io import require_file
from splicevi._labels import cell_labels

log = logging.getLogger("splicevi")


def configure(threads: int | None = None, seed: int | None = None) -> None:
    """Logging to stderr, CPU threads of torch and the scvi-tools seed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    if seed is not None:
        import scvi

        scvi.settings.seed = int(seed)


def read_mudata(path: str | Path):
    """Read an ``.h5mu`` written by ``splicevi assemble`` (or later stages) and check its modalities."""
    import mudata as md

    md.set_options(pull_on_update=False)
    from splicevi.data.io import read_mudata_file

    mdata = read_mudata_file(path, "MuData (.h5mu)", made_by="`splicevi assemble`")
    if "splicing" not in mdata.mod:
        raise ValueError(f"{path} has no 'splicing' modality (modalities: {', '.join(mdata.mod) or 'none'})")
    from splicevi.data.layers import tie_x_to_counts

    tie_x_to_counts(mdata["splicing"])  # X is the counts: one matrix in memory, not two
    return mdata


def _batch_to_splicing(mdata, batch_key: str | None) -> None:
    """Make the batch annotation available on every modality (the model reads it from 'splicing')."""
    if batch_key is None:
        return
    try:
        values = cell_labels(mdata, batch_key)
    except ValueError as err:
        raise ValueError(f"batch_key: {err}") from None
    if values.isna().any():
        raise ValueError(f"batch_key '{batch_key}' is missing for {int(values.isna().sum())} cell(s)")
    values = values.astype(str)
    if values.nunique() < 2:
        raise ValueError(
            f"batch_key '{batch_key}' has one value ({values.iloc[0]!r}) for every cell: there is no batch effect "
            "to correct; leave the batch key out (config batch_key: null) or name an annotation with 2+ batches"
        )
    for mod in mdata.mod.values():
        mod.obs[batch_key] = pd.Categorical(values.reindex(mod.obs_names))
    mdata.obs[batch_key] = pd.Categorical(values)


def setup_model_data(mdata, batch_key: str | None = None) -> None:
    """Register a MuData with SPLICEVI (expression + splicing, or splicing only when no 'rna')."""
    from splicevi import SPLICEVI

    _batch_to_splicing(mdata, batch_key)
    modalities = {
        "junc_ratio_layer": "splicing",
        "atse_counts_layer": "splicing",
        "junc_counts_layer": "splicing",
        "psi_mask_layer": "splicing",
        "batch_key": "splicing",
    }
    kwargs = {}
    if "rna" in mdata.mod:
        modalities["rna_layer"] = "rna"
        kwargs["rna_layer"] = None
    # Junction counts carry everything (n, PSI and the mask are derived per minibatch, and the lean
    # file `splicevi assemble` writes has nothing else); ratio + totals only for files without k.
    has_k = "cell_by_junction_matrix" in mdata["splicing"].layers
    SPLICEVI.setup_mudata(
        mdata,
        junc_ratio_layer=None if has_k else "junc_ratio",
        atse_counts_layer=None if has_k else "cell_by_cluster_matrix",
        junc_counts_layer="cell_by_junction_matrix" if has_k else None,
        psi_mask_layer=None if has_k else "psi_mask",
        batch_key=batch_key,
        modalities=modalities,
        **kwargs,
    )


def load_model(model_dir: str | Path, mdata):
    """Load a model saved by ``splicevi train`` onto ``mdata`` (same features, same modalities)."""
    from splicevi import SPLICEVI

    model_dir = require_file(model_dir, "model directory")
    return SPLICEVI.load(str(model_dir), adata=mdata)
