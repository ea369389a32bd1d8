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
include: "workflow/rules/ingest.smk"
include: "workflow/rules/atse.smk"
include: "workflow/rules/assemble.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/differential.smk"
include: "workflow/rules/plots.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
