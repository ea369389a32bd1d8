"""``splicevi de``: differential expression per gene, for every contrast (needs gene counts).

``--design auto`` (default) tests a contrast whose groups are unions of samples (every sample of
``--sample-key``, by default the model's batch key, inside one group, at least two a group) by
pseudobulk over samples (DESeq2); clusters found on the same data (the workflow's Leiden contrasts)
on the gene counts held out before clustering (``splicevi cluster --model``); else by the model's
cell-level test. The table's ``design`` and ``test`` columns and the log (with the reason) say which
ran.
"""

from __future__ import annotations

import argparse
import logging

from splicevi._io import atomic_path
from splicevi.stats.choices import DE_DESIGNS

from ._common import configure, load_model, read_mudata
from .ds import add_contrast_arguments, clusters_family, contrasts_of, parse_contrasts, run_contrasts

log = logging.getLogger("splicevi")


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi de``."""
    p = subparsers.add_parser(
        "de",
        help=help_text,
        description="Differential expression (log fold change, posterior probability, FDR calls) per gene.",
    )
    add_contrast_arguments(p, delta=0.25)
    add_design_arguments(p)
    p.add_argument("--out", required=True, help="output TSV, one row per gene and contrast")
    p.set_defaults(func=run)
    return p


def add_design_arguments(p: argparse.ArgumentParser) -> None:
    """``--design`` and ``--sample-key`` (unless the shared contrast arguments already define them)."""
    have = {a.dest for a in p._actions}
    if "design" not in have:
        p.add_argument(
            "--design",
            default="auto",
            choices=DE_DESIGNS,
            help="auto (default): samples when every sample lies inside one group and each group has "
            ">= 2 samples, clusters for a clustering (e.g. the Leiden clusters of `splicevi cluster`), "
            "else labels; samples: pseudobulk over samples (DESeq2), refused with "
            "fewer than 2 samples a group; clusters: the gene counts held out by `splicevi cluster "
            "--model`, refused without them; labels: the model's cell-level test",
        )
    if "sample_key" not in have:
        p.add_argument(
            "--sample-key",
            default=None,
            help="obs column of the samples (biological replicates) for the samples design "
            "(default: the model's batch key)",
        )


def annotate_de_table(mdata, table):
    """Add ``gene_name`` (from ``mdata["rna"].var``) after ``gene_id``; call column named ``is_de_fdr``."""
    from splicevi.tl.annotate import annotate_table, gene_annotations, rename_call_columns

    return annotate_table(rename_call_columns(table, "de"), gene_annotations(mdata["rna"].var), "gene_id")


def run(args: argparse.Namespace) -> int:
    """Test every contrast and write the table."""
    configure(args.threads, args.seed)
    from splicevi.tl.ranking import rank_table

    parse_contrasts(args.contrasts)  # a wrong command line fails before the data is read
    mdata = read_mudata(args.mdata)
    if "rna" not in mdata.mod:
        raise ValueError(
            f"{args.mdata} has no 'rna' modality (splicing-only data): no differential expression"
        )
    contrasts = contrasts_of(args, mdata)
    model = load_model(args.model, mdata)
    from splicevi.model._de_clusters import family_calls_de

    table = run_contrasts(
        model.differential_expression,
        contrasts,
        "gene_id",
        describe=True,
        attrs_key="splicevi_de",
        family=lambda tables: clusters_family(
            tables, lambda held: family_calls_de(held, args.delta, args.fdr_target)
        ),
        delta=args.delta,
        fdr_target=args.fdr_target,
        batch_correction=args.batch_correction,
        batch_size=args.batch_size,
        silent=True,
        design=args.design,
        sample_key=args.sample_key,
    )
    # Within a contrast: the labels design ranks by its posterior probability, the samples and clusters
    # designs by their p-values (most significant first); a contrast has one design, so the scales never mix.
    score = "_evidence"
    table["_evidence"] = table["proba_de"] if "proba_de" in table.columns else 0.0
    if "log10_pvalue" in table.columns:
        samples = table["design"].isin(["samples", "clusters"]).to_numpy()
        table.loc[samples, "_evidence"] = -table.loc[samples, "log10_pvalue"].fillna(0.0)
    effect = next((c for c in ("lfc_mean", "lfc_median", "effect_size") if c in table.columns), None)
    table = rank_table(table, score, effect).drop(columns="_evidence", errors="ignore")
    table = annotate_de_table(mdata, table)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("%d contrasts, %d genes", len(contrasts), table["gene_id"].nunique())
    return 0
