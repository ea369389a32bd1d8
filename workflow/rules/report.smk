rule report_summary:
    """The report's first page: inputs, cells and ATSEs kept, clusters, calls per contrast, top events, QC."""
    input:
        qc_samples=out("qc", "qc_samples.tsv"),
        qc_overall=out("qc", "qc_overall.tsv"),
        cells=out("cluster", "cells.tsv"),
        ds_junctions=out("ds", "ds_junctions.tsv"),
        ds_events=out("ds", "ds_events.tsv"),
        de=out("de", "de_genes.tsv") if HAS_GENES else [],
        arcs=fig("event_arcs"),
        psi_umap=fig("umap_psi"),
        sheet=config["samples"] or [],
    output:
        summary_page(),
    log:
        logs("report_summary"),
    benchmark:
        bench("report_summary")
    params:
        run_info=run_info_json(),
        de=lambda wc, input: opt("--de", input.de or None),
        sheet=lambda wc, input: opt("--sample-sheet", input.sheet or None),
        logs=out("logs"),
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi summary --run-info {params.run_info:q} --qc-samples {input.qc_samples:q}"
        " --qc-overall {input.qc_overall:q} --cells {input.cells:q} --ds-junctions {input.ds_junctions:q}"
        " --ds-events {input.ds_events:q} {params.de:q} {params.sheet:q} --arcs {input.arcs:q}"
        " --psi-umap {input.psi_umap:q} --logs {params.logs:q} --out {output:q} > {log:q} 2>&1"
