rule cluster:
    """Leiden clusters on the joint latent; writes the final MuData (latents, UMAP, clusters added).

    With cluster.heldout_fraction > 0 (default) the junction reads and gene counts are split first:
    the clusters are found on the latent of the fit parts and the held-out parts are stored for the
    DS and DE tests of the cluster contrasts (the UMAP stays that of all reads).
    """
    input:
        mdata=out("data", "data.h5mu"),
        embedding=out("embed", "embedding.h5ad"),
        model=out("model"),
        annotations=cell_annotations() or [],
    output:
        mdata=out("splicevi.h5mu"),
        cells=out("cluster", "cells.tsv"),
    log:
        logs("cluster"),
    benchmark:
        bench("cluster")
    params:
        resolution=config["cluster"]["resolution"],
        seed=config["cluster"]["seed"],
        annotations=opt("--annotations", cell_annotations()),
        # split the junction reads: cluster on one part, test the clusters on the other
        heldout=(
            ["--model", out("model"), "--heldout-fraction", str(config["cluster"]["heldout_fraction"])]
            if config["cluster"]["heldout_fraction"] > 0
            else []
        ),
        # checked here, before any differential job (and its removal of earlier tables) starts
        contrasts=contrasts_json(),
    resources:
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 30 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi cluster --mdata {input.mdata:q} --embedding {input.embedding:q}"
        " --resolution {params.resolution:q} --seed {params.seed:q} {params.annotations:q} {params.heldout:q}"
        " --contrasts {params.contrasts:q}"
        " --out {output.mdata:q} --out-cells {output.cells:q} > {log:q} 2>&1"
