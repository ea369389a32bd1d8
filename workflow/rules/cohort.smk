# Several samples (config key `samples`: a sample sheet, see config/README.md): one `ingest` job per
# sample, run in parallel, then `merge` into the cohort's ingest/junctions.h5ad (+ genes.h5ad), which
# atse and assemble read exactly as in a single-input run.


wildcard_constraints:
    sample=SAMPLE_ID_PATTERN,


rule ingest:
    """Read one sample's junction counts (and gene counts) into AnnData files (barcodes as in the input)."""
    input:
        junctions=lambda wc: sample_value(wc, "junctions"),
        cell_sheet=lambda wc: sample_value(wc, "cell_sheet", []),
        genes=lambda wc: sample_value(wc, "genes", []),
        barcodes=lambda wc: sample_value(wc, "barcodes", []),
    output:
        junctions=out("ingest", "samples", "{sample}", "junctions.h5ad"),
        genes=out("ingest", "samples", "{sample}", "genes.h5ad") if HAS_GENES else [],
    log:
        out("logs", "ingest", "{sample}.log"),
    benchmark:
        out("benchmarks", "ingest", "{sample}.tsv")
    params:
        junction_format=lambda wc: sample_value(wc, "junction_format", "auto"),
        cell_sheet=lambda wc: opt("--cell-sheet", sample_value(wc, "cell_sheet")),
        genes=lambda wc: opt("--genes", sample_value(wc, "genes")),
        gene_format=lambda wc: opt("--gene-format", sample_value(wc, "gene_format", "auto") if HAS_GENES else None),
        strandedness=opt("--gene-strandedness", strandedness()),
        multimappers=opt("--sj-multimappers", config["input"]["sj_multimappers"]),
        out_genes=lambda wc, output: opt("--out-genes", output.genes if HAS_GENES else None),
        barcodes=lambda wc: opt("--barcodes", sample_value(wc, "barcodes")),
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi ingest --junctions {input.junctions:q} --junction-format {params.junction_format:q}"
        " {params.cell_sheet:q} {params.genes:q} {params.gene_format:q} {params.strandedness:q}"
        " {params.barcodes:q} {params.multimappers:q} --no-progress"
        " --out-junctions {output.junctions:q} {params.out_genes:q} > {log:q} 2>&1"


rule merge:
    """Merge the samples: cell ids <sample>_<barcode>, union of junctions, sheet (and cell table) columns as annotations."""
    input:
        sheet=config["samples"],
        junctions=expand(out("ingest", "samples", "{sample}", "junctions.h5ad"), sample=SAMPLES.index),
        genes=expand(out("ingest", "samples", "{sample}", "genes.h5ad"), sample=SAMPLES.index) if HAS_GENES else [],
        cell_annotations=config["input"]["cell_annotations"] or [],
    output:
        junctions=out("ingest", "junctions.h5ad"),
        genes=out("ingest", "genes.h5ad") if HAS_GENES else [],
        annotations=out("ingest", "cells.tsv"),
    log:
        logs("merge"),
    benchmark:
        bench("merge")
    params:
        genes=lambda wc, input: ["--genes", *input.genes] if HAS_GENES else [],
        out_genes=lambda wc, output: opt("--out-genes", output.genes if HAS_GENES else None),
        cell_annotations=opt("--cell-annotations", config["input"]["cell_annotations"]),
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi merge --sample-sheet {input.sheet:q} --junctions {input.junctions:q} {params.genes:q}"
        " --out-junctions {output.junctions:q} {params.out_genes:q} --out-annotations {output.annotations:q}"
        " {params.cell_annotations:q}"
        " > {log:q} 2>&1"
