# Helpers shared by the rules: config validation, input checks, output paths, parameters.
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# --- configuration ------------------------------------------------------------------------------
# Validate first (unknown keys, wrong types, missing required keys): one short line per problem,
# naming the key; then let Snakemake fill in the schema's defaults.
def _config_errors(cfg, schema_path):
    import jsonschema
    import yaml

    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    lines = []
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: list(e.path)):
        key = ".".join(str(p) for p in err.path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for name in extra:
                lines.append(f"config key '{f'{key}.' if key else ''}{name}': unknown key")
        elif err.validator == "required":
            lines.append(f"config key '{key or '<top level>'}': {err.message}")
        else:
            lines.append(f"config key '{key}': {err.message}")
    return lines


_errors = _config_errors(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
if _errors:
    raise WorkflowError(
        "Invalid configuration (keys are documented in config/README.md):\n  " + "\n  ".join(_errors)
    )
validate(config, schema="../schemas/config.schema.yaml")


def _check_path(key, value, kind="path"):
    """Stop before any job runs if a configured input path does not exist, naming the config key."""
    if value is not None and not Path(value).exists():
        raise WorkflowError(
            f"config key '{key}': {kind} not found: '{value}' "
            f"(paths are relative to the working directory {os.getcwd()})"
        )


# --- cohort (sample sheet) or single input ---------------------------------------------------------
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from splicevi.data.samples import SAMPLE_ID_PATTERN, SampleSheetError, annotation_columns, read_cohort_sheet

SAMPLES = None
if config["samples"] is not None:
    # Snakemake merges --configfile into config/config.yaml, whose single-input paths would then be
    # set too: they are ignored (and named) rather than an error.
    _set = [k for k in ("junctions", "sample_sheet", "genes", "barcodes", "batch", "cell_annotations")
            if config["input"].get(k)]
    if _set:
        print(
            f"config key 'samples' is set: ignoring input.{', input.'.join(_set)} "
            "(each sample's inputs are columns of the sample sheet)",
            file=sys.stderr,
        )
        for _k in _set:
            config["input"][_k] = None
    try:
        SAMPLES = read_cohort_sheet(
            config["samples"], schema=Path(workflow.basedir) / "workflow" / "schemas" / "samples.schema.yaml"
        )
    except SampleSheetError as err:
        raise WorkflowError(f"config key 'samples': {err}") from None
    _with_genes = SAMPLES["genes"].notna() if "genes" in SAMPLES.columns else None
    if _with_genes is not None and 0 < _with_genes.sum() < len(SAMPLES):
        raise WorkflowError(
            f"config key 'samples': {config['samples']}: column 'genes' is empty for sample(s) "
            f"{', '.join(SAMPLES.index[~_with_genes])}; give gene counts for every sample or for none"
        )
    # The model's batch covariate defaults to the sheet's 'batch' column, else the sample.
    if config["batch_key"] is None and (
        SAMPLES["batch"].nunique() if "batch" in SAMPLES.columns else len(SAMPLES)
    ) > 1:
        config["batch_key"] = "batch"
elif not config["input"].get("junctions"):
    raise WorkflowError(
        "config key 'input.junctions': required (or set 'samples' to a sample sheet of several samples)"
    )
else:
    _check_path("input.junctions", config["input"]["junctions"])
_check_path("input.sample_sheet", config["input"]["sample_sheet"], "sample sheet")
_check_path("input.genes", config["input"]["genes"])
_check_path("input.cell_annotations", config["input"]["cell_annotations"], "cell annotation table")
_check_path("input.barcodes", config["input"]["barcodes"], "barcode file")
_check_path("input.transcript_lengths", config["input"]["transcript_lengths"], "transcript length table")
_check_path("atse.gtf", config["atse"]["gtf"], "GTF")
for _i, _c in enumerate(config["contrasts"]):
    if _c["group1"] == _c.get("group2"):
        raise WorkflowError(f"config key 'contrasts[{_i}]': group1 and group2 are both '{_c['group1']}'")


def _check_annotation_contrasts(contrasts, table_path, min_cells=3):
    """Groups of contrasts on a column of the cell annotation table must exist, with enough cells.

    Checked while the workflow is parsed, so a typo stops the run before any job (instead of failing at
    the differential-splicing stage after its previous tables were removed). Groups of clusters
    (leiden) are only known after clustering: `splicevi cluster --contrasts` checks them there, before
    any differential job starts.
    """
    if not contrasts or table_path is None:
        return
    import pandas as pd

    sep = "," if str(table_path).endswith(".csv") else "\t"
    try:
        table = pd.read_csv(table_path, sep=sep, index_col=0, dtype=str)
    except (ValueError, OSError) as err:
        raise WorkflowError(f"config key 'input.cell_annotations': cannot read {table_path}: {err}")
    for i, c in enumerate(contrasts):
        if c["groupby"] not in table.columns:
            continue  # leiden, or an annotation of the data itself (e.g. a sample-sheet column)
        counts = table[c["groupby"]].value_counts()
        for key in ("group1", "group2"):
            group = c.get(key)
            if group is None or (key == "group2" and group == "rest"):
                continue
            n = int(counts.get(str(group), 0))
            if n < min_cells:
                present = ", ".join(f"{g} ({k})" for g, k in counts.head(20).items())
                raise WorkflowError(
                    f"config key 'contrasts[{i}].{key}': group '{group}' of '{c['groupby']}' has {n} cell(s) in "
                    f"{table_path} (need {min_cells}); groups there: {present}"
                )


_check_annotation_contrasts(config["contrasts"], config["input"]["cell_annotations"])


def _check_sheet_contrasts(contrasts, sheet):
    """Contrasts on a sample-sheet column must name values of that column (checked before any job)."""
    for i, c in enumerate(contrasts):
        if sheet is None or c["groupby"] not in annotation_columns(sheet) + ["sample"]:
            continue
        values = set(sheet[c["groupby"]].dropna())
        for key in ("group1", "group2"):
            group = c.get(key)
            if group is not None and group != "rest" and group not in values:
                raise WorkflowError(
                    f"config key 'contrasts[{i}].{key}': '{group}' is not a value of column '{c['groupby']}' "
                    f"of {config['samples']} (values: {', '.join(sorted(values))})"
                )


_check_sheet_contrasts(config["contrasts"], SAMPLES)

OUT = Path(config["outdir"])
HAS_GENES = (
    config["input"]["genes"] is not None
    if SAMPLES is None
    else "genes" in SAMPLES.columns and SAMPLES["genes"].notna().all()
)
if config["input"]["transcript_lengths"] and not HAS_GENES:
    raise WorkflowError(
        "config key 'input.transcript_lengths': transcript lengths normalise gene counts, but this run has "
        "none (input.genes, or the sample sheet's genes column); remove the key or give gene counts."
    )


def cell_annotations():
    """The cell annotation table given to `cluster`: the config's, or the merge's sheet columns."""
    return config["input"]["cell_annotations"] if SAMPLES is None else out("ingest", "cells.tsv")


def sample_value(wc, column, default=None):
    """A column of the sample sheet for the job's {sample} (``default`` when the cell is empty)."""
    value = SAMPLES.loc[wc.sample, column] if column in SAMPLES.columns else None
    return value if value is not None else default


def strandedness():
    """The ReadsPerGene.out.tab column, passed only when not the CLI's default."""
    value = config["input"]["gene_strandedness"]
    return None if not HAS_GENES or value == "unstranded" else value
FMT = config["plots"]["format"]

# Run `splicevi` from the Python environment that runs Snakemake (a virtualenv need not be activated).
# Under --sdm conda the rule's environment (envs/splicevi.yaml: the dependencies) comes first on PATH
# and workflow/scripts/splicevi runs the package from this repository's src/ with its Python.
def _use_conda():
    from snakemake.settings.types import DeploymentMethod

    return DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method


_bin = Path(sys.executable).parent
_scripts = Path(workflow.basedir) / "workflow" / "scripts"
_path = [str(_scripts)] if _use_conda() or not (_bin / "splicevi").exists() else [str(_bin)]
os.environ.update(
    PATH=os.pathsep.join([*_path, os.environ.get("PATH", "")]),
    PYTHONPATH=os.pathsep.join([str(Path(workflow.basedir) / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
)


# --- paths --------------------------------------------------------------------------------------
def out(*parts):
    """A path under the configured output directory."""
    return str(OUT.joinpath(*parts))


def logs(name):
    return out("logs", f"{name}.log")


def bench(name):
    return out("benchmarks", f"{name}.tsv")


def fig(name):
    return out("figures", f"{name}.{FMT}")


# --- parameters ---------------------------------------------------------------------------------
def opt(flag, value):
    """``[flag, value]`` when ``value`` is set, ``[flag]`` when it is True, else nothing.

    A list, so that ``{params.x:q}`` in a rule's shell command quotes each word for the shell: config
    text is untrusted and must arrive at the command verbatim, never run as shell code.
    """
    if value is None or value is False:
        return []
    if value is True:
        return [flag]
    return [flag, str(value)]


def model_kwargs():
    """Model constructor arguments as JSON, leaving out the ones left at the model's default."""
    return json.dumps({k: v for k, v in sorted(config["model"].items()) if v is not None})


def contrasts_json():
    """Configured contrasts as JSON ([] = each cluster against the rest)."""
    return json.dumps(config["contrasts"])


def batch_colors():
    """Annotations worth a UMAP panel of their own: the batch key, contrast groupings, cell annotations."""
    keys = [config["batch_key"]] if config["batch_key"] else []
    if config["input"]["cell_annotations"]:
        keys.append("annotations")
    if SAMPLES is not None:
        keys += [k for k in ["sample", *annotation_columns(SAMPLES)] if k not in keys]
    keys += [c["groupby"] for c in config["contrasts"] if c["groupby"] not in keys and c["groupby"] != "leiden"]
    return keys


# --- targets ------------------------------------------------------------------------------------
def final_outputs():
    """Everything `rule all` asks for."""
    targets = [
        out("splicevi.h5mu"),
        out("model"),
        out("ds", "ds_junctions.tsv"),
        out("ds", "ds_events.tsv"),
        out("qc", "qc_samples.tsv"),
        out("qc", "qc_overall.tsv"),
        fig("training_curves"),
        fig("umap_clusters"),
        fig("umap_qc"),
        fig("volcano_ds"),
        fig("top_events_psi"),
        fig("event_coverage"),
        fig("event_arcs"),
        fig("umap_psi"),
    ]
    if batch_colors():
        targets.append(fig("umap_covariates"))
    if HAS_GENES:
        targets += [out("de", "de_genes.tsv"), fig("volcano_de")]
    return targets
