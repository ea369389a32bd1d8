rule plot_training:
    """Training curves (ELBO, reconstruction, KL; train and validation)."""
    input:
        history=out("train", "history.tsv"),
    output:
        report(
            fig("training_curves"),
            caption="../report/training_curves.rst",
            category="Model",
            labels={"figure": "Training curves (ELBO, reconstruction, KL)"},
        ),
    log:
        logs("plot_training"),
    benchmark:
        bench("plot_training")
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi plot training --history {input.history:q} --out {output:q} > {log:q} 2>&1"


# Rule families: one rule spells out the command, the others of its kind are `use rule ... with:`
# (their output, log, benchmark and the parameters that differ).


rule plot_umap_clusters:
    """UMAP of the joint latent coloured by Leiden cluster (the UMAP family: --color differs)."""
    input:
        cells=out("cluster", "cells.tsv"),
    output:
        report(
            fig("umap_clusters"),
            caption="../report/umap_clusters.rst",
            category="Embedding",
            labels={"figure": "UMAP coloured by Leiden cluster"},
        ),
    log:
        logs("plot_umap_clusters"),
    benchmark:
        bench("plot_umap_clusters")
    params:
        color=["leiden"],  # a list: each name is quoted on its own by {params.color:q}
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi plot umap --cells {input.cells:q} --color {params.color:q} --out {output:q} > {log:q} 2>&1"


# UMAP of the joint latent coloured by batch and the annotations used in contrasts.
use rule plot_umap_clusters as plot_umap_covariates with:
    output:
        report(
            fig("umap_covariates"),
            caption="../report/umap_covariates.rst",
            category="Embedding",
            labels={"figure": "UMAP coloured by batch and cell annotations"},
        ),
    log:
        logs("plot_umap_covariates"),
    benchmark:
        bench("plot_umap_covariates")
    params:
        color=batch_colors(),


# UMAP of the joint latent coloured by per-cell QC metrics (reads, observed events).
use rule plot_umap_clusters as plot_umap_qc with:
    output:
        report(
            fig("umap_qc"),
            caption="../report/umap_qc.rst",
            category="Embedding",
            labels={"figure": "UMAP coloured by QC metrics"},
        ),
    log:
        logs("plot_umap_qc"),
    benchmark:
        bench("plot_umap_qc")
    params:
        color=["qc"],


rule plot_volcano_ds:
    """Volcano plots of differential splicing: ΔPSI against the evidence, one panel per contrast."""
    input:
        table=out("ds", "ds_junctions.tsv"),
    output:
        report(
            fig("volcano_ds"),
            caption="../report/volcano_ds.rst",
            category="Differential splicing",
            labels={"figure": "Volcano plots: differential splicing per junction"},
        ),
    log:
        logs("plot_volcano_ds"),
    benchmark:
        bench("plot_volcano_ds")
    params:
        kind="ds",
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi plot volcano --table {input.table:q} --kind {params.kind:q} --out {output:q} > {log:q} 2>&1"


# Volcano plots of differential expression, one panel per contrast.
use rule plot_volcano_ds as plot_volcano_de with:
    input:
        table=out("de", "de_genes.tsv"),
    output:
        report(
            fig("volcano_de"),
            caption="../report/volcano_de.rst",
            category="Differential expression",
            labels={"figure": "Volcano plots: differential expression per gene"},
        ),
    log:
        logs("plot_volcano_de"),
    benchmark:
        bench("plot_volcano_de")
    params:
        kind="de",


rule plot_top_events_psi:
    """Observed PSI of the top differential junctions in each cluster (the top-events family)."""
    input:
        mdata=out("splicevi.h5mu"),
        table=out("ds", "ds_junctions.tsv"),
    output:
        report(
            fig("top_events_psi"),
            caption="../report/top_events_psi.rst",
            category="Differential splicing",
            labels={"figure": "Observed PSI of the top junctions per cluster"},
        ),
    log:
        logs("plot_top_events_psi"),
    benchmark:
        bench("plot_top_events_psi")
    params:
        figure="psi",
        options=["--groupby", "leiden"],
        n_top=config["plots"]["n_top"],
        min_cells=config["plots"]["min_cells_observed"],
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi plot {params.figure:q} --mdata {input.mdata:q} --table {input.table:q} {params.options:q}"
        " --n-top {params.n_top:q} --min-cells {params.min_cells:q} --out {output:q} > {log:q} 2>&1"


# Coverage (reads of the ATSE per cell) of the top differential events, by cluster.
use rule plot_top_events_psi as plot_event_coverage with:
    input:
        mdata=out("splicevi.h5mu"),
        table=out("ds", "ds_events.tsv"),
    output:
        report(
            fig("event_coverage"),
            caption="../report/event_coverage.rst",
            category="Differential splicing",
            labels={"figure": "Reads of the top ATSEs per cell, by cluster"},
        ),
    log:
        logs("plot_event_coverage"),
    benchmark:
        bench("plot_event_coverage")
    params:
        figure="coverage",


# Arc (sashimi-style) plots of the top differential ATSEs: pooled junction reads and PSI per group.
use rule plot_top_events_psi as plot_event_arcs with:
    input:
        mdata=out("splicevi.h5mu"),
        table=out("ds", "ds_events.tsv"),
        gtf=config["atse"]["gtf"] or [],
    output:
        report(
            fig("event_arcs"),
            caption="../report/event_arcs.rst",
            category="Differential splicing",
            labels={"figure": "Arc plots of the top ATSEs (reads and PSI per group)"},
        ),
    log:
        logs("plot_event_arcs"),
    benchmark:
        bench("plot_event_arcs")
    params:
        figure="arcs",
        options=opt("--gtf", config["atse"]["gtf"]),
        n_top=config["plots"]["n_arcs"],


# UMAP coloured by the observed PSI of the top differential junction of each contrast.
use rule plot_top_events_psi as plot_umap_psi with:
    output:
        report(
            fig("umap_psi"),
            caption="../report/umap_psi.rst",
            category="Differential splicing",
            labels={"figure": "UMAP coloured by the observed PSI of the top junctions"},
        ),
    log:
        logs("plot_umap_psi"),
    benchmark:
        bench("plot_umap_psi")
    params:
        figure="psi-umap",
        options=[],
        n_top=1,


rule export:
    """On demand (`snakemake export`): LeafCutter pseudobulk counts (per sample and cluster) + groups file, .h5ad files."""
    input:
        mdata=out("splicevi.h5mu"),
    output:
        leafcutter=out("export", "leiden_perind.counts.gz"),
        groups=out("export", "leiden_groups.txt"),
        h5ad=[out("export", "splicing.h5ad")] + ([out("export", "rna.h5ad")] if HAS_GENES else []),
    log:
        logs("export"),
    benchmark:
        bench("export")
    params:
        folder=lambda wc, output: os.path.dirname(output.leafcutter),
        # replicates within each cluster for leafcutter_ds: the cohort's samples, else the batches
        replicates=opt("--replicates", "sample" if SAMPLES is not None else config["batch_key"]),
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "(splicevi export leafcutter --mdata {input.mdata:q} --groupby leiden {params.replicates:q}"
        " --out {output.leafcutter:q} --out-groups {output.groups:q}"
        " && splicevi export h5ad --mdata {input.mdata:q} --out-dir {params.folder:q}) > {log:q} 2>&1"
