rule assemble:
    """Mask and assemble the model-ready MuData (splicing modality, plus rna when gene counts exist)."""
    input:
        junctions=out("ingest", "junctions.h5ad"),
        events=out("atse", "events.tsv"),
        genes=out("ingest", "genes.h5ad") if HAS_GENES else [],
        transcript_lengths=config["input"]["transcript_lengths"] or [],
    output:
        mdata=out("data", "data.h5mu"),
    log:
        logs("assemble"),
    benchmark:
        bench("assemble")
    params:
        genes=opt("--genes", out("ingest", "genes.h5ad") if HAS_GENES else None),
        min_cell_reads=opt("--min-cell-reads", config["assemble"]["min_cell_reads"]),
        highly_variable=opt("--highly-variable-atses", config["assemble"]["highly_variable_atses"]),
        transcript_lengths=opt("--transcript-lengths", config["input"]["transcript_lengths"]),
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi assemble --junctions {input.junctions:q} --events {input.events:q} {params.genes:q}"
        " {params.min_cell_reads:q} {params.highly_variable:q} {params.transcript_lengths:q} --out {output.mdata:q}"
        " > {log:q} 2>&1"
