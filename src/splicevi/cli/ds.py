"""``splicevi ds``: differential splicing per junction and per ATSE, for every contrast."""

from __future__ import annotations

import argparse
import json
import logging

import pandas as pd

from splicevi._io import atomic_path
from splicevi.stats.choices import DS_DESIGNS, FDR_METHODS
from splicevi.stats.design import MIN_CELLS

from .._constants import EVENT_ID_COLUMN
from ._common import configure, load_model, read_mudata
from ._errors import UsageError

log = logging.getLogger("splicevi")


def add_contrast_arguments(p: argparse.ArgumentParser, delta: float) -> None:
    """Arguments shared by ``ds`` and ``de``."""
    p.add_argument(
        "--mdata", required=True, help=".h5mu from `splicevi cluster` (has the cluster annotation)"
    )
    p.add_argument("--model", required=True, help="model directory from `splicevi train`")
    p.add_argument(
        "--contrasts",
        default="[]",
        help='JSON list of {"name", "groupby", "group1", "group2"}; [] (default): each cluster vs the rest',
    )
    p.add_argument(
        "--groupby", default="leiden", help="annotation of the default contrasts (each group vs rest)"
    )
    p.add_argument("--delta", type=float, default=delta, help="minimum effect that counts as differential")
    p.add_argument("--fdr-target", type=float, default=0.05, help="target false discovery rate of the calls")
    p.add_argument("--batch-correction", action="store_true", help="average estimates over batches")
    p.add_argument(
        "--batch-size", type=int, default=None, help="cells per minibatch of inference (default: the model's)"
    )
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
            raise UsageError(
                f"--contrasts[{i}] ({c.get('name', 'unnamed')}): group1 and group2 are both "
                f"{c['group1']!r}; compare two different groups (or group2 null for the rest)"
            )
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


def run_contrasts(
    method,
    contrasts,
    id_col: str,
    describe: bool = False,
    attrs_key: str = "splicevi_ds",
    family=None,
    **kwargs,
) -> pd.DataFrame:
    """Call a differential method of the model once per contrast; stack the tables.

    The feature id (the tables' index) becomes column ``id_col`` unless the table already has it.
    A table that says it was skipped (``attrs["splicevi_ds"]["skipped"]``: too few cells) is left
    out with a warning; with ``describe`` the design, test and reason of each contrast are logged
    (from ``attrs[attrs_key]``). ``family`` (the per-contrast tables → the same, adjusted) lets the
    held-out contrasts share one Benjamini–Hochberg family, as in one call of the model's method.
    """
    tables = []
    skipped = []
    for c in contrasts:
        log.info("contrast %s: %s %s vs %s", c.name, c.groupby, c.group1, c.group2 or "rest")
        table = method(groupby=c.groupby, group1=c.group1, group2=c.group2, **kwargs)
        info = table.attrs.get(attrs_key, {})
        if info.get("skipped"):
            skipped.append(c.name)
            if describe:
                log.warning("contrast %s skipped: %s", c.name, info.get("reason", "too few cells"))
            continue
        if describe and info:
            log.info(
                "contrast %s: %s (design %s): %s",
                c.name,
                info.get("test"),
                info.get("design"),
                info.get("reason"),
            )
        table = table.drop(
            columns=[c for c in ("contrast", "groupby", "group1", "group2") if c in table.columns]
        )
        if id_col in table.columns:
            table = table.reset_index(drop=True)
        else:
            table = table.rename_axis(id_col).reset_index()
        table.insert(0, "contrast", c.name)
        table.insert(1, "groupby", c.groupby)
        table.insert(2, "group1", c.group1)
        table.insert(3, "group2", c.group2 or "rest")
        tables.append(table)
    if describe and skipped:
        log.warning(
            "%d of %d contrasts skipped (too few cells; see --min-cells): %s",
            len(skipped),
            len(contrasts),
            ", ".join(skipped),
        )
    if not tables:
        return pd.DataFrame(columns=["contrast", "groupby", "group1", "group2", id_col])
    if family is not None:
        tables = family(tables)
    return pd.concat(tables, ignore_index=True)


def clusters_family(tables: list[pd.DataFrame], adjust) -> list[pd.DataFrame]:
    """Apply ``adjust`` (list of tables → list) to the tables of the ``clusters`` design, keep the rest."""
    held = [i for i, t in enumerate(tables) if "design" in t and (t["design"] == "clusters").all()]
    out = list(tables)
    for i, table in zip(held, adjust([tables[i] for i in held]), strict=True):
        out[i] = table
    return out


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi ds``."""
    p = subparsers.add_parser(
        "ds",
        help=help_text,
        description="Differential splicing (ΔPSI, posterior probability, FDR calls) per junction and per ATSE.",
    )
    add_contrast_arguments(p, delta=0.1)
    p.add_argument(
        "--design",
        choices=DS_DESIGNS,
        default="auto",
        help="where the groups come from, which picks the test: labels (annotations independent of the reads: "
        "cells as units), samples (unions of samples: pseudobulk over samples), clusters (found on the same "
        "reads: held-out reads), auto (decided per contrast; the log says which and why) (default: %(default)s)",
    )
    p.add_argument(
        "--sample-key",
        default=None,
        help="cell annotation naming each cell's sample, for the samples design (default: the model's batch key)",
    )
    p.add_argument(
        "--min-cells",
        type=int,
        default=MIN_CELLS,
        help="skip a contrast with fewer cells, or cells with splicing reads, in either group (default: %(default)s)",
    )
    p.add_argument(
        "--fdr-method",
        choices=FDR_METHODS,
        default="bh_lfdr",
        help="how the calls control the FDR: bh_lfdr (the FDR of a change, kept when confidently at least "
        "--delta), interval (the FDR of |dPSI| > --delta itself: fewer calls, each a change of at least "
        "delta), bh, lfdr (README 'What the calls promise') (default: %(default)s)",
    )
    p.add_argument("--out-junctions", required=True, help="output TSV, one row per junction and contrast")
    p.add_argument("--out-events", required=True, help="output TSV, one row per ATSE and contrast")
    p.set_defaults(func=run)
    return p


def annotate_ds_tables(
    mdata, junctions: pd.DataFrame, events: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    events = annotate_table(rename_call_columns(events, "ds"), event_coordinates(var), EVENT_ID_COLUMN)
    return junctions, events


def _with_evidence(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``evidence``: the model's own order within each contrast (calls first, then by p-value).

    The model sorts each table by the evidence of its calls (:func:`splicevi.stats.differential.sort_table`),
    so the rank keeps that order rather than re-sorting by p-value (an uncalled strong but small
    change must not rank above a call).
    """
    if "log10_pvalue" not in table.columns:
        return table
    order = (
        table.groupby("contrast", sort=False).cumcount() if "contrast" in table.columns else range(len(table))
    )
    return table.assign(evidence=-pd.Series(order, index=table.index).astype(float))


def run(args: argparse.Namespace) -> int:
    """Test every contrast and write both tables."""
    configure(args.threads, args.seed)
    from splicevi.tl.ranking import rank_table

    parse_contrasts(args.contrasts)  # a wrong command line fails before the data is read
    if args.min_cells < 1:
        raise UsageError(f"--min-cells must be at least 1, got {args.min_cells}")
    mdata = read_mudata(args.mdata)
    contrasts = contrasts_of(args, mdata)
    model = load_model(args.model, mdata)
    kwargs = dict(
        delta=args.delta,
        fdr_target=args.fdr_target,
        batch_correction=args.batch_correction,
        batch_size=args.batch_size,
        silent=True,
        design=args.design,
        sample_key=args.sample_key,
        min_cells=args.min_cells,
        fdr_method=args.fdr_method,
    )
    from splicevi.model._ds_clusters import family_calls_ds

    # The default contrasts (each cluster against the rest) are one family, as in one model call.
    def family(tables):
        return clusters_family(
            tables, lambda held: family_calls_ds(held, args.fdr_target, args.fdr_method, delta=args.delta)
        )

    junctions = run_contrasts(
        model.differential_splicing, contrasts, "junction_id", describe=True, family=family, **kwargs
    )
    events = run_contrasts(
        model.differential_splicing, contrasts, EVENT_ID_COLUMN, level="event", family=family, **kwargs
    )
    if junctions.empty:
        # Every contrast was skipped (too few cells): header-only tables, so the workflow goes on.
        log.warning("every contrast was skipped (see --min-cells); writing empty tables")
        for path, table in ((args.out_junctions, junctions), (args.out_events, events)):
            with atomic_path(path) as tmp:
                table.to_csv(tmp, sep="\t", index=False)
        return 0
    # Rank by the tables' own evidence order (calls first): the calls are then the top ranks.
    score = "evidence" if "log10_pvalue" in junctions.columns else "proba_ds"
    junctions = rank_table(_with_evidence(junctions), score, "effect_size").drop(
        columns="evidence", errors="ignore"
    )
    events = rank_table(_with_evidence(events), score, "effect_size").drop(
        columns="evidence", errors="ignore"
    )
    junctions, events = annotate_ds_tables(mdata, junctions, events)
    with atomic_path(args.out_junctions) as tmp:
        junctions.to_csv(tmp, sep="\t", index=False)
    with atomic_path(args.out_events) as tmp:
        events.to_csv(tmp, sep="\t", index=False)
    calls = junctions.groupby("contrast", sort=False)["is_ds_fdr"].sum() if "is_ds_fdr" in junctions else None
    log.info(
        "%d contrasts; junctions called DS per contrast: %s",
        len(contrasts),
        None if calls is None else calls.to_dict(),
    )
    return 0
