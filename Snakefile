# splicevi workflow: junction tables (+ optional gene counts) -> SpliceVI model -> embeddings,
# clusters, differential splicing / expression, figures and a Snakemake HTML report.
#
#   snakemake --cores 2 --configfile my_config.yaml               # run (template: config/config.yaml)
#   snakemake --configfile my_config.yaml --report report.html   # self-contained report after the run
#   snakemake --profile workflow/profiles/slurm --configfile my_config.yaml   # on a SLURM cluster
#   snakemake --cores 2 --configfile config/example.yaml          # the embedded example (make demo)
#
# No config file is read implicitly: the run is the same from any working directory, and keys not
# given take the defaults of workflow/schemas/config.schema.yaml (the one place that defines them).
#
# Every rule is one call of the `splicevi` command line; all logic lives in src/splicevi.
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"


# The report's first page: the run's summary (rule report_summary) once it exists, else the description.
report: report_front_page()


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
include: "workflow/rules/report.smk"


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
    report_summary,


rule all:
    input:
        final_outputs(),
    default_target: True
