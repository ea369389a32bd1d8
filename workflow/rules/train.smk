rule train:
    """Train SpliceVI on the assembled MuData; saves the model and its training history."""
    input:
        mdata=out("data", "data.h5mu"),
    output:
        model=directory(out("model")),
        history=out("train", "history.tsv"),
    log:
        logs("train"),
    benchmark:
        bench("train")
    # torch CPU threads: one is fastest for models this small on shared CPUs; raise it for large data
    # (e.g. --set-threads train=8, or in a profile's set-threads).
    threads: 1
    params:
        batch_key=opt("--batch-key", config["batch_key"]),
        model_kwargs=model_kwargs(),
        max_epochs=config["train"]["max_epochs"],
        batch_size=config["train"]["batch_size"],
        lr=config["train"]["lr"],
        early_stopping="--early-stopping" if config["train"]["early_stopping"] else "--no-early-stopping",
        patience=config["train"]["early_stopping_patience"],
        train_size=config["train"]["train_size"],
        kl_warmup=config["train"]["n_epochs_kl_warmup"],
        seed=config["train"]["seed"],
        accelerator=config["train"]["accelerator"],
        devices=config["train"]["devices"],
    resources:
        # GPU: set `gpu: 1` (and a partition) for this rule in a profile, see workflow/profiles/slurm.
        gpu=0,
        mem_mb=lambda wc, attempt: 16000 * attempt,
        runtime=lambda wc, attempt: 240 * attempt,
    conda:
        "../../envs/splicevi.yaml"
    shell:
        "splicevi train --mdata {input.mdata:q} {params.batch_key:q} --model-kwargs {params.model_kwargs:q}"
        " --max-epochs {params.max_epochs:q} --batch-size {params.batch_size:q} --lr {params.lr:q}"
        " {params.early_stopping:q} --early-stopping-patience {params.patience:q}"
        " --train-size {params.train_size:q} --n-epochs-kl-warmup {params.kl_warmup:q} --seed {params.seed:q}"
        " --accelerator {params.accelerator:q} --devices {params.devices:q}"
        " --threads {threads} --out-model {output.model:q} --out-history {output.history:q} > {log:q} 2>&1"
