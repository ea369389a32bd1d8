# Helpers shared by the rules: config validation, input checks, output paths, parameters.
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# --- configuration ------------------------------------------------------------------------------
# One validation pass (unknown keys, wrong types, missing required keys; the choices the package
# defines, e.g. the registered likelihoods, come from the package): one short line per problem,
# naming the key; then the schema's defaults are filled in.
from splicevi.cli._workflow_config import check_config

_errors = check_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
if _errors:
    raise WorkflowError(
        "Invalid configuration (keys are documented in config/README.md):\n  " + "\n  ".join(_errors)
    )


def _check_path(key, value, kind="path"):
    """Stop before any job runs if a configured input path does not exist, naming the config key."""
    if value is not None and not Path(value).exists():
        raise WorkflowError(
            f"config key '{key}': {kind} not found: '{value}' "
            f"(paths are relative to the working directory {os.getcwd()})"
        )


# --- cohort (sample sheet) or single input ---------------------------------------------------------
from splicevi.data.samples import SAMPLE_ID_PATTERN, SampleSheetError, annotation_columns, read_cohort_sheet

SAMPLES = None
if config["samples"] is not None:
    # A cohort's inputs are columns of the sample sheet: single-input keys that are set are ignored, and
    # the note names each of them (and the GTF, which every sample shares), so nothing applies unseen.
    _ignored = [k for k in ("junctions", "cell_sheet", "genes", "barcodes", "batch") if config["input"].get(k)]
    _ignored += [k for k in ("junction_format", "gene_format") if config["input"].get(k, "auto") != "auto"]
    if _ignored:
        print(
            f"config key 'samples' is set: ignoring input.{', input.'.join(_ignored)} "
            "(each sample's inputs are columns of the sample sheet)",
            file=sys.stderr,
        )
        for _k in _ignored:
            config["input"][_k] = "auto" if _k.endswith("_format") else None
    print(
        f"config key 'samples': atse.gtf = {config['atse']['gtf'] or 'null (no gene names)'} for every sample; "
        f"input.cell_annotations = {config['input']['cell_annotations'] or 'null'}",
        file=sys.stderr,
    )
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
        "config key 'input.junctions': required (or set 'samples' to a sample sheet of several samples). "
        "No config file is read unless named: run with --configfile my_config.yaml (template: "
        f"{Path(workflow.basedir) / 'config' / 'config.yaml'}; the embedded example: --configfile "
        f"{Path(workflow.basedir) / 'config' / 'example.yaml'})"
    )
else:
    _check_path("input.junctions", config["input"]["junctions"])
_check_path("input.cell_sheet", config["input"]["cell_sheet"], "cell sheet")
_check_path("input.genes", config["input"]["genes"])
_check_path("input.cell_annotations", config["input"]["cell_annotations"], "cell annotation table")
_check_path("input.barcodes", config["input"]["barcodes"], "barcode file")
_check_path("input.transcript_lengths", config["input"]["transcript_lengths"], "transcript length table")
_check_path("atse.gtf", config["atse"]["gtf"], "GTF")
for _i, _c in enumerate(config["contrasts"]):
    if _c["group1"] == _c.get("group2"):
        raise WorkflowError(f"config key 'contrasts[{_i}]': group1 and group2 are both '{_c['group1']}'")


def _cell_table(path, cohort):
    """The cell annotation table (indexed by cell id), read as the job that uses it will read it."""
    import pandas as pd

    if path is None:
        return None
    try:
        if cohort:
            from splicevi.data.cell_annotations import read_cell_table

            return read_cell_table(path)
        sep = "," if str(path).endswith(".csv") else "\t"
        return pd.read_csv(path, sep=sep, index_col=0, dtype=str)
    except (ValueError, OSError) as err:
        raise WorkflowError(f"config key 'input.cell_annotations': cannot read {path}: {err}")


CELL_TABLE = _cell_table(config["input"]["cell_annotations"], SAMPLES is not None)


def _h5ad_obs_columns(path):
    """obs column names of an .h5ad (gene counts given as AnnData carry their own cell annotations)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            obs = fh["obs"]
            return [k for k in obs.keys() if not k.startswith("_")] if isinstance(obs, h5py.Group) else []
    except (OSError, KeyError):
        return []  # not HDF5 (or no obs): `splicevi ingest` names the problem


def known_annotations():
    """Cell annotations the run's cells will have: clusters, batch, the cell table's, the sheet's, an .h5ad's obs."""
    known = ["leiden", "batch"]
    if CELL_TABLE is not None:
        known += list(CELL_TABLE.columns)
    if SAMPLES is not None:
        known += ["sample", *annotation_columns(SAMPLES)]
    genes = [config["input"]["genes"]] if SAMPLES is None else list(SAMPLES.get("genes", []))
    for path in filter(None, genes):
        if str(path).endswith(".h5ad"):
            known += _h5ad_obs_columns(path)
    return list(dict.fromkeys(known))


def _check_contrast_columns(contrasts):
    """Every contrast's groupby and subset columns must be annotations the run will have (a typo stops the parse)."""
    known = known_annotations()
    for i, c in enumerate(contrasts):
        for key, column in [("groupby", c["groupby"])] + [(f"subset.{k}", k) for k in (c.get("subset") or {})]:
            if column not in known:
                close = [k for k in known if k.lower() == str(column).lower()]
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise WorkflowError(
                    f"config key 'contrasts[{i}].{key}': no cell annotation '{column}'{hint}; this run's "
                    f"annotations: {', '.join(known)} (leiden: the clusters; others from input.cell_annotations"
                    f"{' and the sample sheet' if SAMPLES is not None else ''})"
                )


_check_contrast_columns(config["contrasts"])


def _check_annotation_contrasts(contrasts, table, table_path, min_cells=3):
    """Groups of contrasts on a column of the cell annotation table must exist, with enough cells.

    Checked while the workflow is parsed, so a typo stops the run before any job (instead of failing at
    the differential-splicing stage after its previous tables were removed). Groups of clusters
    (leiden) are only known after clustering: `splicevi cluster --contrasts` checks them there, before
    any differential job starts. With a subset on the table's columns, the groups are counted within it.
    """
    if not contrasts or table is None:
        return
    for i, c in enumerate(contrasts):
        subset = c.get("subset") or {}
        if c["groupby"] not in table.columns or any(k not in table.columns for k in subset):
            continue  # leiden, or an annotation of the data itself (e.g. a sample-sheet column)
        inside = table[c["groupby"]].notna()
        for col, values in subset.items():
            inside &= table[col].isin([values] if isinstance(values, str) else values)
        counts = table.loc[inside, c["groupby"]].value_counts()
        for key in ("group1", "group2"):
            group = c.get(key)
            if group is None or (key == "group2" and group == "rest"):
                continue
            n = int(counts.get(str(group), 0))
            if n < min_cells:
                present = ", ".join(f"{g} ({k})" for g, k in counts.head(20).items())
                raise WorkflowError(
                    f"config key 'contrasts[{i}].{key}': group '{group}' of '{c['groupby']}'"
                    f"{' within the subset' if subset else ''} has {n} cell(s) in "
                    f"{table_path} (need {min_cells}); groups there: {present}"
                )


_check_annotation_contrasts(config["contrasts"], CELL_TABLE, config["input"]["cell_annotations"])


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
    if SAMPLES is None and config["input"]["cell_annotations"]:
        keys.append("annotations")
    if SAMPLES is not None:
        keys += [k for k in ["sample", *annotation_columns(SAMPLES)] if k not in keys]
        keys += [k for k in (CELL_TABLE.columns if CELL_TABLE is not None else []) if k not in keys]
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
        summary_page(),
    ]
    if batch_colors():
        targets.append(fig("umap_covariates"))
    if HAS_GENES:
        targets += [out("de", "de_genes.tsv"), fig("volcano_de")]
    return targets


# --- report -------------------------------------------------------------------------------------
def summary_page():
    """The report's first page, written by rule report_summary (reStructuredText holding escaped HTML)."""
    return out("report", "summary.rst")


def report_front_page():
    """The summary of this run once it exists (a report made after the run), else the static description.

    Absolute: Snakemake resolves the report text against the Snakefile's folder, the outputs against the
    working directory.
    """
    page = Path(summary_page()).resolve()
    return str(page) if page.exists() else "workflow/report/workflow.rst"


def run_info_json():
    """The settings the summary page reports (inputs, samples, GTF, thresholds), as JSON."""
    return json.dumps(
        {
            "input": config["input"],
            "samples": config["samples"],
            "gtf": config["atse"]["gtf"],
            "ds": config["ds"],
            "de": config["de"] if HAS_GENES else {},
            "resolution": config["cluster"]["resolution"],
            "contrasts": config["contrasts"],
        }
    )
