"""The workflow on a cohort (config key `samples`): per-sample ingest jobs, merge, and a full run.

Three simulated STARsolo channels from the same simulation seed (so every barcode collides) and a
condition column; .test/config_cohort.yaml with .test/samples_cohort.tsv.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed"),
]


def _env() -> dict:
    import os

    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(REPO / ".test" / "config_cohort.yaml"),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def _job_counts(out: str) -> dict[str, int]:
    table = out.split("Job stats:", 1)[-1]
    return {
        m.group(1): int(m.group(2)) for m in re.finditer(r"^([A-Za-z_]\w*)\s+(\d+)\s*$", table, flags=re.M)
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from splicevi.cli.main import main

    work = tmp_path_factory.mktemp("wf_cohort")
    for i in (1, 2, 3):
        assert (
            main(
                [
                    "simulate",
                    "--out",
                    str(work / "sim" / f"ch{i}"),
                    "--format",
                    "starsolo",
                    "--n-cells",
                    "80",
                    "--n-genes",
                    "60",
                    "--n-events",
                    "60",
                    "--n-types",
                    "2",
                    "--seed",
                    "1",
                    "--no-progress",
                ]
            )
            == 0
        )
    shutil.copy(REPO / ".test" / "samples_cohort.tsv", work / "sim" / "samples.tsv")
    return work


def test_slurm_dry_run_has_one_ingest_job_per_sample(cohort):
    """The SLURM profile plans one ingest job per sample, a merge, and asks a GPU for the model rules only."""
    # env-modules instead of the profile's conda (not installed here); no rule names a module.
    proc = snakemake(
        cohort, "-n", "--profile", str(REPO / "workflow" / "profiles" / "slurm"), "--sdm", "env-modules"
    )
    counts = _job_counts(proc.stdout)
    assert counts["ingest"] == 3 and counts["merge"] == 1 and counts["atse"] == 1, proc.stdout[-3000:]
    for sample in ("ch1", "ch2", "ch3"):
        assert f"results/ingest/samples/{sample}/junctions.h5ad" in proc.stdout
    gpu = {}
    for block in re.split(r"\n(?:local)?rule ", proc.stdout)[1:]:
        found = re.search(r"resources:[^\n]*?gpu=(\d)", block)
        gpu[block.split(":", 1)[0]] = found.group(1) if found else "0"
    assert gpu["train"] == "1" and gpu["differential_splicing"] == "1", gpu
    assert gpu["ingest"] == "0" and gpu["merge"] == "0", gpu


def test_lint_of_cohort_config(cohort):
    proc = snakemake(cohort, "--lint", check=False)
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("ch2\t", "ch1\t", 1), "line 3, column 'sample': duplicate sample id 'ch1'"),
        (lambda t: t.replace("ch3\t", "ch 3;x\t", 1), "line 4, column 'sample': id 'ch 3;x' is not allowed"),
        (
            lambda t: t.replace("sim/ch2/Solo.out/SJ/raw", "sim/nope", 1),
            "line 3, column 'junctions': path not found",
        ),
    ],
)
def test_bad_sample_sheet_stops_before_any_job(tmp_path, cohort, edit, message):
    work = tmp_path / "w"
    (work / "sim").mkdir(parents=True)
    for i in (1, 2, 3):
        (work / "sim" / f"ch{i}").symlink_to(cohort / "sim" / f"ch{i}")
    (work / "sim" / "samples.tsv").write_text(edit((REPO / ".test" / "samples_cohort.tsv").read_text()))
    proc = snakemake(work, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "sim/samples.tsv" in proc.stdout + proc.stderr and message in proc.stdout + proc.stderr
    assert not (work / "results").exists()


@pytest.mark.slow
def test_cohort_run_merges_channels_and_contrasts_conditions(cohort):
    import mudata as md
    import torch

    snakemake(cohort, "--cores", "2")
    res = cohort / "results"
    mdata = md.read_h5mu(res / "splicevi.h5mu")
    assert mdata.n_obs == 240 and mdata.obs_names.is_unique  # 3 × 80 cells, same barcodes in each channel
    assert mdata.obs["batch"].value_counts().to_dict() == {"ch1": 80, "ch2": 80, "ch3": 80}
    assert mdata.obs["condition"].value_counts().to_dict() == {"treated": 160, "control": 80}
    registry = torch.load(res / "model" / "model.pt", weights_only=False, map_location="cpu")["attr_dict"][
        "registry_"
    ]
    assert registry["setup_args"]["batch_key"] == "batch"
    assert list(registry["field_registries"]["batch"]["state_registry"]["categorical_mapping"]) == [
        "ch1",
        "ch2",
        "ch3",
    ]
    ds = pd.read_csv(res / "ds" / "ds_events.tsv", sep="\t")
    assert set(ds["contrast"]) == {"treated_vs_control"} and ds["proba_ds"].between(0, 1).all()
    qc = pd.read_csv(res / "qc" / "qc_samples.tsv", sep="\t", index_col=0)
    assert list(qc.index) == ["ch1", "ch2", "ch3"] and (qc["cells_ingested"] == 80).all()
    assert qc["cells_kept"].sum() == mdata.n_obs and (qc["reads_per_cell_median"] > 0).all()
    overall = pd.read_csv(res / "qc" / "qc_overall.tsv", sep="\t", index_col=0)["value"]
    assert "junctions_removed_by_min_reads" in overall.index and int(overall["cells_kept"]) == mdata.n_obs
    snakemake(cohort, "--report", "report.html")
    html = (cohort / "report.html").read_text(errors="replace")
    assert "qc_samples.tsv" in html and "Quality control" in html
    # a rerun plans nothing
    assert _job_counts(snakemake(cohort, "-n", "--cores", "1").stdout) == {}


@pytest.mark.slow
def test_cohort_with_a_cell_type_table_and_a_contrast_within_one_cell_type(tmp_path, cohort):
    """A per-cell table (sample + barcode columns) gives cell types; condition is compared within one type."""
    import mudata as md
    import yaml

    work = tmp_path / "w"
    (work / "sim").mkdir(parents=True)
    for i in (1, 2, 3):
        (work / "sim" / f"ch{i}").symlink_to(cohort / "sim" / f"ch{i}")
    shutil.copy(REPO / ".test" / "samples_cohort.tsv", work / "sim" / "samples.tsv")
    parts = []
    for i in (1, 2, 3):
        truth = pd.read_csv(cohort / "sim" / f"ch{i}" / "truth_cells.tsv", sep="\t")
        parts.append(
            pd.DataFrame({"sample": f"ch{i}", "barcode": truth["cell_id"], "cell_type": truth["cell_type"]})
        )
    table = pd.concat(parts, ignore_index=True)
    table.to_csv(work / "sim" / "cell_types.tsv", sep="\t", index=False)
    cfg = yaml.safe_load((REPO / ".test" / "config_cohort.yaml").read_text())
    cfg["input"] = {"cell_annotations": "sim/cell_types.tsv"}
    cfg["contrasts"] = [
        {
            "name": "treated_in_type0",
            "groupby": "condition",
            "group1": "treated",
            "group2": "control",
            "subset": {"cell_type": "type0"},
        }
    ]
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(work),
        "--configfile",
        str(work / "cfg.yaml"),
        "--cores",
        "2",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    res = work / "results"
    mdata = md.read_h5mu(res / "splicevi.h5mu")
    obs = mdata.obs
    assert obs["cell_type"].notna().all()  # every cell labelled from the table
    derived = obs["condition_within_treated_in_type0"]
    in_type0 = (obs["cell_type"].astype(str) == "type0").to_numpy()
    assert derived[in_type0].notna().all() and derived[~in_type0].isna().all()  # only the subset is compared
    ds = pd.read_csv(res / "ds" / "ds_events.tsv", sep="\t")
    assert set(ds["contrast"]) == {"treated_in_type0"}
    treated = int((in_type0 & (obs["condition"].astype(str) == "treated").to_numpy()).sum())
    control = int((in_type0 & (obs["condition"].astype(str) == "control").to_numpy()).sum())
    assert 0 < ds["n_obs_group1"].max() <= treated and 0 < ds["n_obs_group2"].max() <= control
    page = (res / "report" / "summary.rst").read_text()
    assert "treated_in_type0" in page and f"<td>{treated}</td><td>{control}</td>" in page
    assert "condition: treated vs control, within cell_type = type0" in page
    cells = pd.read_csv(res / "cluster" / "cells.tsv", sep="\t", index_col=0)
    assert "cell_type" in cells.columns  # for the UMAP colours
    assert (res / "figures" / "umap_covariates.png").exists()


REAL = REPO.parent / "shared" / "data" / "scasl_tnbc_smartseq2"


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="real data ../shared/data/scasl_tnbc_smartseq2 not present")
def test_real_cohort_of_two_formats(tmp_path):
    """Real Smart-seq2 cells as two samples in two formats (.junc and SJ.out.tab), merged and assembled."""
    import mudata as md

    sheet = pd.read_csv(REPO / ".test" / "samples_real.tsv", sep="\t")
    sheet["junctions"] = [str((REPO / p).resolve()) for p in sheet["junctions"]]
    (tmp_path / ".test").mkdir()
    sheet.to_csv(tmp_path / ".test" / "samples_real.tsv", sep="\t", index=False)
    cmd = [
        "--configfile",
        str(REPO / ".test" / "config_real_cohort.yaml"),
        "--cores",
        "2",
        "results_real_cohort/qc/qc_samples.tsv",
    ]
    proc = subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), *cmd],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results_real_cohort"
    mdata = md.read_h5mu(res / "data" / "data.h5mu")
    assert set(mdata.obs["batch"].astype(str)) == {"junc", "sjtab"} and mdata["splicing"].n_vars > 100
    assert all(c.split("_", 1)[0] in {"junc", "sjtab"} for c in mdata.obs_names)
    qc = pd.read_csv(res / "qc" / "qc_samples.tsv", sep="\t", index_col=0)
    assert qc.loc["junc", "cells_ingested"] == 34 and qc.loc["sjtab", "cells_ingested"] == 37
