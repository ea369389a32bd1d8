rule atse:
    """Filter junctions and group them into alternative transcript structure events (ATSEs)."""
    input:
        junctions=out("ingest", "junctions.h5ad"),
        gtf=config["atse"]["gtf"] or [],
    output:
        events=out("atse", "events.tsv"),
    log:
        logs("atse"),
    benchmark:
        bench("atse")
    params:
        gtf=opt("--gtf", config["atse"]["gtf"]),
        min_reads=config["atse"]["min_reads"],
        min_cells=config["atse"]["min_cells"],
        min_intron=config["atse"]["min_intron"],
        max_intron=config["atse"]["max_intron"],
        motif=config["atse"]["motif"],
        min_site_usage=config["atse"]["min_site_usage"],
        min_junctions=config["atse"]["min_junctions"],
        max_junctions=config["atse"]["max_junctions"],
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi atse --junctions {input.junctions:q} {params.gtf:q}"
        " --min-reads {params.min_reads:q} --min-cells {params.min_cells:q}"
        " --min-intron {params.min_intron:q} --max-intron {params.max_intron:q} --motif {params.motif:q}"
        " --min-site-usage {params.min_site_usage:q} --min-junctions {params.min_junctions:q}"
        " --max-junctions {params.max_junctions:q} --out {output.events:q} > {log:q} 2>&1"
