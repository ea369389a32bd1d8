"""Registry keys of the splicing fields (scvi-tools' AnnDataManager) and other constants."""

#: Junction read counts k (cells × junctions).
JUNC_COUNTS_KEY = "junc_counts"
#: ATSE total reads n stored on every junction of an observed ATSE.
ATSE_COUNTS_KEY = "atse_counts"
#: Optional observed mask (1 = observed).
PSI_MASK_KEY = "psi_mask"
#: Junction ratio k / n (only read when counts are not available).
JUNC_RATIO_KEY = "junc_ratio"

#: Column of the splicing var table with the ATSE of each junction.
EVENT_ID_COLUMN = "event_id"
