"""Registry keys of the splicing fields (scvi-tools' AnnDataManager) and the one table of their names.

The registry key values are stored with saved models, so they stay as they are.
"""

#: Junction read counts k (cells × junctions).
JUNCTION_COUNTS_KEY = "junc_counts"
#: ATSE total reads n stored on every junction of an observed ATSE.
ATSE_COUNTS_KEY = "atse_counts"
#: Optional observed mask (1 = observed).
PSI_MASK_KEY = "psi_mask"
#: Junction ratio k / n (only read when counts are not available).
JUNCTION_RATIO_KEY = "junc_ratio"

#: The one place the names of a splicing field meet. Registry key → (keyword of
#: ``SPLICEVAE.inference``, ``SPLICEVI.setup_mudata`` argument, ``SPLICEVI.setup_anndata`` argument).
#: The setup arguments are the reference API's names and stay as they are; in the reference's
#: ``cell_by_cluster_matrix`` "cluster" means ATSE (not a Leiden cluster).
SPLICING_FIELD_NAMES = {
    JUNCTION_COUNTS_KEY: ("junction_counts", "junc_counts_layer", "cell_by_junction_matrix"),
    ATSE_COUNTS_KEY: ("atse_counts", "atse_counts_layer", "cell_by_cluster_matrix"),
    PSI_MASK_KEY: ("psi_mask", "psi_mask_layer", "psi_mask_layer"),
    JUNCTION_RATIO_KEY: ("junction_ratio", "junc_ratio_layer", "junc_ratio"),
}

#: Column of the splicing var table with the ATSE of each junction.
EVENT_ID_COLUMN = "event_id"
