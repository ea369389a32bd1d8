"""ATSE grouping: filter junctions, then connected components of shared splice sites.

A junction is an edge between its donor-side site (first intron base) and acceptor-side site (last
intron base) on one chromosome strand; an ATSE (alternative transcript structure event) is a
connected component of that graph. Alternative 5'/3' sites share one site; exon skipping is a chain
A–B–C of sites; events that share no site are separate components.

Filters, in this order (each junction is reported under the first filter it fails):

``min_reads``
    Total reads of the junction over all cells (default 5).
``min_cells``
    Number of cells with at least one read (default 3).
``intron_length``
    Intron length ``end - start + 1`` within ``[min_intron, max_intron]`` (default 50 .. 500,000).
``motif``
    With ``motif="canonical"``: drop junctions with a known non-canonical motif (STAR motif 0), an
    unknown strand, or a strand that contradicts the motif. Junctions of unknown motif (LeafCutter,
    regtools, tables) are kept when their strand is known. ``motif="any"`` keeps all.
``site_usage``
    Drop junctions carrying less than ``min_site_usage`` (default 0.05) of the reads at either of
    their two splice sites (reads of junctions passing the filters above).
``event_size``
    After recomputing components, keep events with ``min_junctions`` (default 2) to
    ``max_junctions`` (default 50) junctions.

Cost is linear in the number of junctions (pandas group keys and a sparse-graph component search).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .._constants import EVENT_ID_COLUMN
from .readers_junctions import strand_from_motif

FILTER_ORDER = ("min_reads", "min_cells", "intron_length", "motif", "site_usage", "event_size")


@dataclass
class AtseParams:
    """Filters of :func:`group_atse` (see the module docstring)."""

    min_reads: int = 5
    min_cells: int = 3
    min_intron: int = 50
    max_intron: int = 500_000
    motif: str = "canonical"
    min_site_usage: float = 0.05
    min_junctions: int = 2
    max_junctions: int = 50

    def __post_init__(self):
        if self.motif not in ("canonical", "any"):
            raise ValueError(f"motif must be 'canonical' or 'any', not {self.motif!r}")
        if self.min_junctions < 2:
            raise ValueError("min_junctions must be at least 2 (an ATSE needs alternatives)")
        if self.max_junctions < self.min_junctions:
            raise ValueError("max_junctions must be ≥ min_junctions")
        if not 0 <= self.min_site_usage < 1:
            raise ValueError("min_site_usage must be in [0, 1)")
        if self.min_intron > self.max_intron:
            raise ValueError("min_intron must be ≤ max_intron")

    def as_dict(self) -> dict:
        """The filter settings as a plain dict (for provenance records)."""
        return asdict(self)


def _site_codes(chrom: np.ndarray, strand: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return (
        pd.DataFrame({"c": chrom, "s": strand, "p": pos})
        .groupby(["c", "s", "p"], sort=False)
        .ngroup()
        .to_numpy()
    )


def site_components(chrom, strand, start, end) -> np.ndarray:
    """Connected component of each junction in the splice-site graph.

    Nodes are (chrom, strand, first intron base) and (chrom, strand, last intron base) sites; a
    junction joins its two sites. Returns one component label per junction.
    """
    n = len(start)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    s_node = _site_codes(chrom, strand, start)
    e_node = _site_codes(chrom, strand, end) + s_node.max() + 1
    n_nodes = int(e_node.max()) + 1
    graph = sp.coo_matrix((np.ones(n, dtype=np.int8), (s_node, e_node)), shape=(n_nodes, n_nodes)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels[s_node].astype(np.int64)


def site_usage(chrom, strand, start, end, reads) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of the reads at each junction's start site and end site that the junction carries."""
    reads = np.asarray(reads, dtype=np.float64)
    out = []
    for pos in (start, end):
        code = _site_codes(chrom, strand, pos)
        total = np.bincount(code, weights=reads)
        out.append(np.divide(reads, total[code], out=np.zeros_like(reads), where=total[code] > 0))
    return out[0], out[1]


def group_atse(junctions: pd.DataFrame, params: AtseParams | None = None) -> tuple[pd.DataFrame, dict]:
    """Filter junctions and group the rest into ATSEs.

    Parameters
    ----------
    junctions
        Index ``junction_id``; columns ``chrom, start, end, strand, motif, total_reads, n_cells``
        (``var`` of an ingested junctions AnnData).
    params
        Filters; defaults of :class:`AtseParams`.

    Returns
    -------
    events
        One row per kept junction, sorted by event then position: ``junction_id``, ``event_id``,
        coordinates, ``motif``, ``total_reads``, ``n_cells``, ``usage_start``, ``usage_end``,
        ``n_junctions`` (of its event). ``event_id`` is ``ATSE_<chrom>:<first start>-<last end>:<strand>``.
    report
        Filter parameters, the number of junctions removed by each filter and the counts kept.
    """
    params = params or AtseParams()
    j = junctions
    chrom = j["chrom"].astype(str).to_numpy()
    strand = j["strand"].astype(str).to_numpy()
    start = j["start"].to_numpy(dtype=np.int64)
    end = j["end"].to_numpy(dtype=np.int64)
    reads = j["total_reads"].to_numpy(dtype=np.float64)
    cells = j["n_cells"].to_numpy(dtype=np.int64)
    motif = j["motif"].to_numpy(dtype=np.int16) if "motif" in j else np.full(len(j), -1, np.int16)
    length = end - start + 1

    fail = {
        "min_reads": reads < params.min_reads,
        "min_cells": cells < params.min_cells,
        "intron_length": (length < params.min_intron) | (length > params.max_intron),
    }
    if params.motif == "canonical":
        implied = strand_from_motif(motif)
        fail["motif"] = (motif == 0) | (strand == ".") | ((implied != ".") & (implied != strand))
    else:
        fail["motif"] = np.zeros(len(j), dtype=bool)
    reason = np.full(len(j), "", dtype=object)
    for name in ("min_reads", "min_cells", "intron_length", "motif"):
        reason[(reason == "") & fail[name]] = name

    keep = reason == ""
    u_start = np.zeros(len(j))
    u_end = np.zeros(len(j))
    if keep.any():
        us, ue = site_usage(chrom[keep], strand[keep], start[keep], end[keep], reads[keep])
        u_start[keep], u_end[keep] = us, ue
        low = keep & ((u_start < params.min_site_usage) | (u_end < params.min_site_usage))
        reason[low] = "site_usage"
    keep = reason == ""
    label = np.full(len(j), -1, dtype=np.int64)
    label[keep] = site_components(chrom[keep], strand[keep], start[keep], end[keep])
    size = np.bincount(label[keep], minlength=int(label.max()) + 1 if keep.any() else 0)
    n_in_event = np.zeros(len(j), dtype=np.int64)
    n_in_event[keep] = size[label[keep]]
    bad_size = keep & ((n_in_event < params.min_junctions) | (n_in_event > params.max_junctions))
    reason[bad_size] = "event_size"
    keep = reason == ""

    events = pd.DataFrame(
        {
            "junction_id": np.asarray(j.index, dtype=str)[keep],
            "chrom": chrom[keep],
            "start": start[keep],
            "end": end[keep],
            "strand": strand[keep],
            "motif": motif[keep].astype(np.int8),
            "total_reads": reads[keep].astype(np.int64),
            "n_cells": cells[keep],
            "usage_start": np.round(u_start[keep], 4),
            "usage_end": np.round(u_end[keep], 4),
            "n_junctions": n_in_event[keep],
            "_label": label[keep],
        }
    )
    for col in ("annotated",):
        if col in j:
            events[col] = j[col].to_numpy()[keep]
    span = events.groupby("_label").agg(
        ev_chrom=("chrom", "first"),
        ev_start=("start", "min"),
        ev_end=("end", "max"),
        ev_strand=("strand", "first"),
    )
    span[EVENT_ID_COLUMN] = (
        "ATSE_"
        + span["ev_chrom"]
        + ":"
        + span["ev_start"].astype(str)
        + "-"
        + span["ev_end"].astype(str)
        + ":"
        + span["ev_strand"]
    )
    events[EVENT_ID_COLUMN] = span[EVENT_ID_COLUMN].reindex(events["_label"]).to_numpy()
    events = events.merge(span[["ev_start"]], left_on="_label", right_index=True)
    events = events.sort_values(["chrom", "ev_start", EVENT_ID_COLUMN, "start", "end"]).drop(
        columns=["_label", "ev_start"]
    )
    cols = ["junction_id", EVENT_ID_COLUMN] + [
        c for c in events.columns if c not in ("junction_id", EVENT_ID_COLUMN)
    ]
    events = events[cols].reset_index(drop=True)

    removed = {name: int((reason == name).sum()) for name in FILTER_ORDER}
    report = {
        "params": params.as_dict(),
        "n_junctions_in": int(len(j)),
        "removed": removed,
        "n_junctions_kept": int(keep.sum()),
        "n_events": int(events[EVENT_ID_COLUMN].nunique()),
    }
    return events, report


def annotate_events(events: pd.DataFrame, assigned: pd.DataFrame) -> pd.DataFrame:
    """Add ``gene_id`` / ``gene_name`` per event (the most common gene among its junctions).

    ``assigned`` is the output of :func:`splicevi.data.gtf.assign_genes` indexed like ``events``.
    """
    ev = events.copy()
    ev["_gene"] = assigned["gene_id"].to_numpy()
    ev["_name"] = assigned["gene_name"].to_numpy()
    known = ev.dropna(subset=["_gene"])
    mode = (
        known.groupby([EVENT_ID_COLUMN, "_gene", "_name"], sort=False)
        .size()
        .reset_index(name="n")
        .sort_values([EVENT_ID_COLUMN, "n"], ascending=[True, False])
        .drop_duplicates(EVENT_ID_COLUMN)
        .set_index(EVENT_ID_COLUMN)
    )
    ev["gene_id"] = mode["_gene"].reindex(ev[EVENT_ID_COLUMN]).to_numpy()
    ev["gene_name"] = mode["_name"].reindex(ev[EVENT_ID_COLUMN]).to_numpy()
    if "annotated" in ev:
        gtf_ann = assigned["annotated_gtf"].to_numpy()
        ev["annotated"] = np.where(ev["annotated"].to_numpy() < 0, gtf_ann, ev["annotated"].to_numpy())
    return ev.drop(columns=["_gene", "_name"])
