rule differential_splicing:
    """Differential splicing per junction and per ATSE for every contrast."""
    input:
        mdata=out("splicevi.h5mu"),
        model=out("model"),
    output:
        junctions=report(
            out("ds", "ds_junctions.tsv"),
            caption="../report/ds_table.rst",
            category="Tables",
            labels={"table": "differential splicing, per junction"},
        ),
        events=report(
            out("ds", "ds_events.tsv"),
            caption="../report/ds_table.rst",
            category="Tables",
            labels={"table": "differential splicing, per ATSE"},
        ),
    log:
        logs("differential_splicing"),
    benchmark:
        bench("differential_splicing")
    # torch CPU threads: one is fastest for models this small on shared CPUs; raise it for large data
    # (e.g. --set-threads train=8, or in a profile's set-threads).
    threads: 1
    params:
        contrasts=contrasts_json(),
        delta=config["ds"]["delta"],
        fdr=config["ds"]["fdr_target"],
        batch_correction="--batch-correction" if config["ds"]["batch_correction"] else "",
        seed=config["train"]["seed"],
        command="ds",
        options=["--design", config["ds"]["design"], *opt("--sample-key", config["ds"]["sample_key"]),
                 "--min-cells", config["ds"]["min_cells"], "--fdr-method", config["ds"]["fdr_method"]],
        outputs=lambda wc, output: ["--out-junctions", output.junctions, "--out-events", output.events],
    resources:
        gpu=0,
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 120 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi {params.command:q} --mdata {input.mdata:q} --model {input.model:q} --contrasts {params.contrasts:q}"
        " --delta {params.delta:q} --fdr-target {params.fdr:q} {params.batch_correction:q} --seed {params.seed:q}"
        " {params.options:q} --threads {threads} {params.outputs:q} > {log:q} 2>&1"


# Differential expression per gene for every contrast (needs gene counts): the same command with the
# DE settings.
use rule differential_splicing as differential_expression with:
    output:
        genes=report(
            out("de", "de_genes.tsv"),
            caption="../report/de_table.rst",
            category="Tables",
            labels={"table": "differential expression"},
        ),
    log:
        logs("differential_expression"),
    benchmark:
        bench("differential_expression")
    params:
        delta=config["de"]["delta"],
        fdr=config["de"]["fdr_target"],
        batch_correction="--batch-correction" if config["de"]["batch_correction"] else "",
        command="de",
        options=[],
        outputs=lambda wc, output: ["--out", output.genes],
