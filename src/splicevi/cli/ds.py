"""``splicevi ds``: differential splicing per junction and per ATSE, for every contrast."""

from __future__ import annotations

import argparse
import json
import logging

import pandas as pd

from splicevi._io import atomic_path

from ._common import configure, load_model, read_mudata
from ._errors import UsageError

log = logging.getLogger("splicevi")


def add_contrast_arguments(p: argparse.ArgumentParser, delta: float) -> None:
    """Arguments shared by ``ds`` and ``de``."""
    p.add_argument("--mdata", required=True, help=".h5mu from `splicevi cluster` (has the cluster annotation)")
    p.add_argument("--model", required=True, help="model directory from `splicevi train`")
    p.add_argument(
        "--contrasts",
        default="[]",
        help='JSON list of {"name", "groupby", "group1", "group2"}; [] (default): each cluster vs the rest',
    )
    p.add_argument("--groupby", default="leiden", help="annotation of the default contrasts (each group vs rest)")
    p.add_argument("--delta", type=float, default=delta, help="minimum effect that counts as differential")
    p.add_argument("--fdr-target", type=float, default=0.05, help="target false discovery rate of the calls")
    p.add_argument("--batch-correction", action="store_true", help="average estimates over batches")
    p.add_argument("--batch-size", type=int, default=None, help="cells per minibatch of inference (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the posterior samples")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's choice)")


def parse_contrasts(text: str) -> list:
    """The ``--contrasts`` JSON, checked for shape and self-comparisons before any data is read."""
    try:
        contrasts = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"--contrasts is not valid JSON: {err}") from None
    if not isinstance(contrasts, list):
        raise UsageError("--contrasts must be a JSON list")
    for i, c in enumerate(contrasts):
        if isinstance(c, dict) and c.get("group2") is not None and str(c.get("group1")) == str(c["group2"]):
            raise UsageError(f"--contrasts[{i}] ({c.get('name', 'unnamed')}): group1 and group2 are both "
                             f"{c['group1']!r}; compare two different groups (or group2 null for the rest)")
    return contrasts


def contrasts_of(args: argparse.Namespace, mdata):
    """Parse ``--contrasts``, resolve them against the cell annotations and store their groupings in ``mdata.obs``.

    The model's differential methods (scvi-tools' DE in particular) read a grouping from ``mdata.obs``.
    """
    from splicevi.stats.contrasts import resolve_contrasts, store_group_labels

    contrasts = resolve_contrasts(mdata, parse_contrasts(args.contrasts), default_groupby=args.groupby)
    for groupby in dict.fromkeys(c.groupby for c in contrasts):
        store_group_labels(mdata, groupby)
    return contrasts


def run_contrasts(method, contrasts, id_col: str, **kwargs) -> pd.DataFrame:
    """Call a differential method of the model once per contrast; stack the tables.

    The feature id (the tables' index) becomes column ``id_col`` unless the table already has it.
    """
    tables = []
    for c in contrasts:
        log.info("contrast %s: %s %s vs %s", c.name, c.groupby, c.group1, c.group2 or "rest")
        table = method(groupby=c.groupby, group1=c.group1, group2=c.group2, **kwargs)
        table = table.drop(columns=[c for c in ("contrast", "groupby", "group1", "group2") if c in table.columns])
        if id_col in table.columns:
            table = table.reset_index(drop=True)
        else:
            table = table.rename_axis(id_col).reset_index()
        table.insert(0, "contrast", c.name)
        table.insert(1, "groupby", c.groupby)
        table.insert(2, "group1", c.group1)
        table.insert(3, "group2", c.group2 or "rest")
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi ds``."""
    p = subparsers.add_parser(
        "ds",
        help=help_text,
        description="Differential splicing (ΔPSI, posterior probability, FDR calls) per junction and per ATSE.",
    )
    add_contrast_arguments(p, delta=0.1)
    p.add_argument("--out-junctions", required=True, help="output TSV, one row per junction and contrast")
    p.add_argument("--out-events", required=True, help="output TSV, one row per ATSE and contrast")
    p.set_defaults(func=run)
    return p


def annotate_ds_tables(mdata, junctions: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add coordinates, genes and annotation status from ``mdata["splicing"].var`` to both DS tables.

    The statistics are left as the model computed them; only columns are added (see
    :mod:`splicevi.tl.annotate` and the README's column table).
    """
    from splicevi.tl.annotate import (
        annotate_table,
        event_coordinates,
        junction_coordinates,
        rename_call_columns,
    )

    var = mdata["splicing"].var
    junctions = annotate_table(rename_call_columns(junctions, "ds"), junction_coordinates(var), "junction_id")
    events = annotate_table(rename_call_columns(events, "ds"), event_coordinates(var), "event_id")
    return junctions, events


def _with_evidence(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``evidence`` = −log10 p-value (higher first), where the table has p-values."""
    if "log10_pvalue" not in table.columns:
        return table
    return table.assign(evidence=-table["log10_pvalue"])


def run(args: argparse.Namespace) -> int:
    """Test every contrast and write both tables."""
    configure(args.threads, args.seed)
    from splicevi.tl.ranking import rank_table

    parse_contrasts(args.contrasts)  # a wrong command line fails before the data is read
    mdata = read_mudata(args.mdata)
    contrasts = contrasts_of(args, mdata)
    model = load_model(args.model, mdata)
    kwargs = dict(
        delta=args.delta,
        fdr_target=args.fdr_target,
        batch_correction=args.batch_correction,
        batch_size=args.batch_size,
        silent=True,
    )
    junctions = run_contrasts(model.differential_splicing, contrasts, "junction_id", **kwargs)
    events = run_contrasts(model.differential_splicing, contrasts, "event_id", level="event", **kwargs)
    # Rank by the tables' own evidence order (increasing p-value): the calls are then the top ranks.
    score = "evidence" if "log10_pvalue" in junctions.columns else "proba_ds"
    junctions = rank_table(_with_evidence(junctions), score, "effect_size").drop(columns="evidence", errors="ignore")
    events = rank_table(_with_evidence(events), score, "effect_size").drop(columns="evidence", errors="ignore")
    junctions, events = annotate_ds_tables(mdata, junctions, events)
    with atomic_path(args.out_junctions) as tmp:
        junctions.to_csv(tmp, sep="\t", index=False)
    with atomic_path(args.out_events) as tmp:
        events.to_csv(tmp, sep="\t", index=False)
    calls = junctions.groupby("contrast", sort=False)["is_ds_fdr"].sum() if "is_ds_fdr" in junctions else None
    log.info("%d contrasts; junctions called DS per contrast: %s", len(contrasts), None if calls is None else calls.to_dict())
    return 0
