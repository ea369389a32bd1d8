rule ingest:
    """Read junction counts (and gene counts when configured) into AnnData files."""
    input:
        junctions=config["input"]["junctions"],
        cell_sheet=config["input"]["cell_sheet"] or [],
        genes=config["input"]["genes"] or [],
        barcodes=config["input"]["barcodes"] or [],
    output:
        junctions=out("ingest", "junctions.h5ad"),
        genes=out("ingest", "genes.h5ad") if HAS_GENES else [],
    log:
        logs("ingest"),
    benchmark:
        bench("ingest")
    params:
        junction_format=config["input"]["junction_format"],
        cell_sheet=opt("--cell-sheet", config["input"]["cell_sheet"]),
        genes=opt("--genes", config["input"]["genes"]),
        gene_format=opt("--gene-format", config["input"]["gene_format"] if HAS_GENES else None),
        out_genes=opt("--out-genes", out("ingest", "genes.h5ad") if HAS_GENES else None),
        barcodes=opt("--barcodes", config["input"]["barcodes"]),
        batch=opt("--batch", config["input"]["batch"]),
        strandedness=opt("--gene-strandedness", strandedness()),
        multimappers=opt("--sj-multimappers", config["input"]["sj_multimappers"]),
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi ingest --junctions {input.junctions:q} --junction-format {params.junction_format:q}"
        " {params.cell_sheet:q} {params.genes:q} {params.gene_format:q} {params.barcodes:q} {params.batch:q}"
        " {params.strandedness:q} {params.multimappers:q}"
        " --out-junctions {output.junctions:q} {params.out_genes:q} > {log:q} 2>&1"
