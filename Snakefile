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


def _check_yaml(path):
    """Stop on a YAML syntax error naming the file and line (Snakemake's message names neither)."""
    import yaml
    from snakemake.exceptions import WorkflowError

    try:
        with open(path, encoding="utf-8") as fh:
            yaml.safe_load(fh)
    except FileNotFoundError:
        return  # the configfile directive decides (not needed when --configfile is given)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else path
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise WorkflowError(
            f"{where}: not valid YAML ({problem}). Fix: check indentation (spaces, no tabs), colons and quotes there"
        ) from None


_check_yaml("config/config.yaml")


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
