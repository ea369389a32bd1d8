rule embed:
    """Latent representations (joint, expression, splicing), kNN graph and UMAP of the joint latent."""
    input:
        mdata=out("data", "data.h5mu"),
        model=out("model"),
    output:
        embedding=out("embed", "embedding.h5ad"),
    log:
        logs("embed"),
    benchmark:
        bench("embed")
    # torch CPU threads: one is fastest for models this small on shared CPUs; raise it for large data
    # (e.g. --set-threads train=8, or in a profile's set-threads).
    threads: 1
    params:
        n_neighbors=config["embed"]["n_neighbors"],
        min_dist=config["embed"]["min_dist"],
        seed=config["embed"]["seed"],
    resources:
        # GPU: set `gpu: 1` for this rule in a profile, see workflow/profiles/slurm.
        gpu=0,
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi embed --mdata {input.mdata:q} --model {input.model:q}"
        " --n-neighbors {params.n_neighbors:q} --min-dist {params.min_dist:q} --seed {params.seed:q}"
        " --threads {threads} --out {output.embedding:q} > {log:q} 2>&1"
