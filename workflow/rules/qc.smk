rule qc:
    """QC tables: per sample and overall (cells in/kept, junctions and ATSEs per filter, reads per cell)."""
    input:
        mdata=out("data", "data.h5mu"),
        junctions=out("ingest", "junctions.h5ad"),
        events=out("atse", "events.tsv"),
    output:
        samples=report(
            out("qc", "qc_samples.tsv"),
            caption="../report/qc_table.rst",
            category="Quality control",
            labels={"table": "QC per sample"},
        ),
        overall=report(
            out("qc", "qc_overall.tsv"),
            caption="../report/qc_table.rst",
            category="Quality control",
            labels={"table": "QC overall"},
        ),
    log:
        logs("qc"),
    benchmark:
        bench("qc")
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi qc --mdata {input.mdata:q} --junctions {input.junctions:q} --events {input.events:q}"
        " --out-samples {output.samples:q} --out-overall {output.overall:q} > {log:q} 2>&1"
