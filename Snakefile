# splicevi workflow: junction tables (+ optional gene counts) -> SpliceVI model -> embeddings,
# clusters, differential splicing / expression, figures and a Snakemake HTML report.
#
#   snakemake --cores 2                          # run (config/config.yaml)
#   snakemake --cores 2 --report report.html     # self-contained report after the run
#   snakemake --profile workflow/profiles/slurm  # on a SLURM cluster (GPU for training)
#
# Every rule is one call of the `splicevi` command line; all logic lives in src/splicevi.
from snakemake.utils import min_version

min_version("9.0")


# Before the configfile directive: a YAML syntax error is named with its file and line.
include: "workflow/rules/config_yaml.smk"


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
if SAMPLES is None:

    include: "workflow/rules/ingest.smk"

else:

    include: "workflow/rules/cohort.smk"


include: "workflow/rules/atse.smk"
include: "workflow/rules/assemble.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/differential.smk"
include: "workflow/rules/plots.smk"


# Figures and tables are quick: run them where Snakemake runs, not as cluster jobs.
localrules:
    all,
    qc,
    plot_training,
    plot_umap_clusters,
    plot_umap_covariates,
    plot_umap_qc,
    plot_volcano_ds,
    plot_volcano_de,
    plot_top_events_psi,
    plot_event_coverage,
    plot_event_arcs,
    plot_umap_psi,


rule all:
    input:
        final_outputs(),
    default_target: True
