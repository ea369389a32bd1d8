"""Data: readers, ATSE grouping, masking, MuData assembly and the simulator."""

from .layers import (
    ATSE_COUNTS,
    JUNCTION_COUNTS,
    JUNCTION_RATIO,
    PSI_MASK,
    atse_totals,
    event_codes,
    splicing_layers,
)
from .simulate import SimulatedData, simulate, to_mudata

__all__ = [
    "ATSE_COUNTS",
    "JUNCTION_COUNTS",
    "JUNCTION_RATIO",
    "PSI_MASK",
    "SimulatedData",
    "atse_totals",
    "event_codes",
    "simulate",
    "splicing_layers",
    "to_mudata",
]
