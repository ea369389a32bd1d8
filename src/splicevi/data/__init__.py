"""Data: readers, ATSE grouping, masking, MuData assembly and the simulator."""

from ._tables import InputError
from .assemble import assemble, harmonize_splicing, read_events, read_transcript_lengths
from .atse import AtseParams, annotate_events, group_atse, site_components
from .barcodes import apply_allowlist, match_cells
from .formats import GENE_READERS, JUNCTION_READERS, Reader, format_choices, register_reader
from .gtf import assign_genes, check_chromosomes, read_gtf
from .layers import (
    ATSE_COUNTS,
    JUNCTION_COUNTS,
    JUNCTION_RATIO,
    PSI_MASK,
    atse_totals,
    event_codes,
    splicing_layers,
)
from .readers_genes import read_genes
from .readers_junctions import read_cell_sheet, read_junctions
from .simulate import SimulatedData, simulate, to_mudata
from .simulate_files import write_simulation
from .thinning import HELDOUT_GENE_LAYER, HELDOUT_LAYER, split_data, split_genes, split_reads

__all__ = [
    "ATSE_COUNTS",
    "GENE_READERS",
    "HELDOUT_GENE_LAYER",
    "HELDOUT_LAYER",
    "JUNCTION_COUNTS",
    "JUNCTION_READERS",
    "JUNCTION_RATIO",
    "PSI_MASK",
    "AtseParams",
    "InputError",
    "Reader",
    "SimulatedData",
    "annotate_events",
    "apply_allowlist",
    "assemble",
    "assign_genes",
    "atse_totals",
    "check_chromosomes",
    "event_codes",
    "format_choices",
    "group_atse",
    "harmonize_splicing",
    "match_cells",
    "read_cell_sheet",
    "read_events",
    "read_genes",
    "read_gtf",
    "read_junctions",
    "read_transcript_lengths",
    "register_reader",
    "simulate",
    "site_components",
    "splicing_layers",
    "split_data",
    "split_genes",
    "split_reads",
    "to_mudata",
    "write_simulation",
]
