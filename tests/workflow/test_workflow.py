"""The Snakemake workflow: lint, dry run, config errors, and real runs on simulated and real data.

The runs use tiny data and a few epochs (.test/config_sim.yaml, .test/config_real.yaml) in
temporary working directories; they check that the outputs exist and make sense (planted DS events
at the top of the DS table), that the HTML report is produced, and that a config edit reruns
training and everything downstream but nothing upstream.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
REAL = REPO.parent / "shared" / "data" / "scasl_tnbc_smartseq2"

pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed")
#: A cell annotation file name holding markup (no "/": it is a file name; no braces: Snakemake reads those
#: as wildcards in a path. Braces in group names are checked by tests/pl/test_report_summary.py).
HOSTILE_NAME = "<b class=splicevi-injected>'cells'&.tsv"


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
    env["MPLBACKEND"] = "Agg"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in ``workdir``."""
    cmd = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "-d", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def _write_config(path: Path, base: Path, **overrides) -> Path:
    cfg = yaml.safe_load(base.read_text())
    for key, value in overrides.items():
        section, _, sub = key.partition(".")
        if sub:
            cfg.setdefault(section, {})[sub] = value
        else:
            cfg[section] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _jobs(dry_run_output: str) -> set[str]:
    """Rule names of the jobs a dry run would execute."""
    table = dry_run_output.split("Job stats:", 1)
    if len(table) < 2:
        return set()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z_]\w*)\s+\d+\s*$", table[1], flags=re.M)} - {"total"}


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    """A small simulated STARsolo sample with gene counts and planted truth."""
    from splicevi.cli.main import main

    work = tmp_path_factory.mktemp("wf_sim")
    rc = main(
        [
            "simulate",
            "--out",
            str(work / "sim"),
            "--format",
            "starsolo",
            "--n-cells",
            "300",
            "--n-genes",
            "120",
            "--n-events",
            "100",
            "--n-types",
            "3",
            "--seed",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    return work


@pytest.fixture(scope="module")
def sim_run(sim_dir) -> Path:
    """The whole workflow on the simulated sample, then the HTML report."""
    # A file name with markup in it: the report must show it as text (tests/report_browser.py).
    hostile = sim_dir / "sim" / HOSTILE_NAME
    hostile.write_bytes((sim_dir / "sim" / "truth_cells.tsv").read_bytes())
    cfg = _write_config(
        sim_dir / "config.yaml",
        REPO / ".test" / "config_sim.yaml",
        **{"input.cell_annotations": f"sim/{HOSTILE_NAME}"},
    )
    snakemake(sim_dir, "--configfile", str(cfg), "--cores", "2")
    snakemake(sim_dir, "--configfile", str(cfg), "--report", "report.html")
    return sim_dir


@pytest.mark.slow
def test_lint_is_clean(sim_dir):
    cfg = _write_config(sim_dir / "lint.yaml", REPO / ".test" / "config_sim.yaml")
    proc = snakemake(sim_dir, "--configfile", str(cfg), "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition" in out, out


@pytest.mark.slow
def test_dry_run_of_the_example_config():
    """config/example.yaml (the embedded example, `make demo`) plans the whole workflow."""
    if not (REPO / "resources" / "example" / "Solo.out").exists():
        pytest.skip("embedded example resources/example not present")
    proc = snakemake(
        REPO,
        "-n",
        "--cores",
        "2",
        "--configfile",
        str(REPO / "config" / "example.yaml"),
        "--config",
        "outdir=.cache/dryrun_results",
    )
    jobs = _jobs(proc.stdout)
    assert {"ingest", "atse", "assemble", "train", "embed", "cluster", "differential_splicing"} <= jobs
    assert "differential_expression" in jobs  # the example has gene counts


@pytest.mark.slow  # five snakemake starts
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train.max_epochz": 3}, "config key 'train.max_epochz': unknown key"),
        ({"train.max_epochs": "many"}, "config key 'train.max_epochs': 'many' is not of type 'integer'"),
        ({"input.genes": "does/not/exist"}, "config key 'input.genes': path not found"),
        ({"plots.format": "jpg"}, "config key 'plots.format'"),
        (
            {
                "input.cell_annotations": "sim/truth_cells.tsv",
                "contrasts": [{"name": "c", "groupby": "cell_type", "group1": "type9", "group2": "type1"}],
            },
            "config key 'contrasts[0].group1': group 'type9' of 'cell_type' has 0 cell(s)",
        ),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, sim_dir, override, message):
    work = tmp_path / "w"
    work.mkdir()
    (work / "sim").symlink_to(sim_dir / "sim")
    cfg = _write_config(tmp_path / "bad.yaml", REPO / ".test" / "config_sim.yaml", **override)
    proc = snakemake(work, "--configfile", str(cfg), "--cores", "1", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (work / "results").exists()


@pytest.mark.slow
def test_outputs_exist_and_make_sense(sim_run):
    import mudata as md

    res = sim_run / "results"
    for name in [
        "splicevi.h5mu",
        "model/model.pt",
        "ds/ds_junctions.tsv",
        "ds/ds_events.tsv",
        "de/de_genes.tsv",
        "train/history.tsv",
        "cluster/cells.tsv",
    ]:
        assert (res / name).stat().st_size > 0, name
    for fig in [
        "training_curves",
        "umap_clusters",
        "umap_qc",
        "umap_covariates",
        "volcano_ds",
        "volcano_de",
        "top_events_psi",
        "event_coverage",
        "event_arcs",
        "umap_psi",
    ]:
        assert (res / "figures" / f"{fig}.png").stat().st_size > 5000, fig
    for rule in ["ingest", "train", "embed", "differential_splicing"]:
        assert (res / "logs" / f"{rule}.log").exists()
        assert (res / "benchmarks" / f"{rule}.tsv").exists()

    mdata = md.read_h5mu(res / "splicevi.h5mu")
    assert {"X_splicevi", "X_umap"} <= set(mdata.obsm)
    assert mdata.obsm["X_splicevi"].shape == (mdata.n_obs, 8)
    assert mdata.obs["leiden"].nunique() >= 2
    assert set(mdata.mod) == {"rna", "splicing"}
    assert mdata.uns["splicevi"]["connectivities_key"] in mdata.obsp and "splicevi_provenance" in mdata.uns
    assert all("leiden" in mod.obs and "X_splicevi" in mod.obsm for mod in mdata.mod.values())

    history = pd.read_csv(res / "train" / "history.tsv", sep="\t", index_col=0)
    assert len(history) == 8 and {"elbo_train", "elbo_validation"} <= set(history.columns)
    assert history["elbo_train"].iloc[-1] < history["elbo_train"].iloc[0]

    # planted differential splicing between type2 and type1 is at the top of the DS table
    ds = pd.read_csv(res / "ds" / "ds_junctions.tsv", sep="\t")
    truth = pd.read_csv(sim_run / "sim" / "truth_junctions.tsv", sep="\t", index_col=0)
    d = ds[ds["contrast"] == "type2_vs_type1"].sort_values("rank")
    assert len(d) > 50 and d["junction_id"].is_unique
    planted = (truth["true_psi_type2"] - truth["true_psi_type1"]).abs() > 0.1
    is_planted = d["junction_id"].map(planted)
    assert is_planted.notna().all()
    base_rate = is_planted.mean()
    top = is_planted.head(20).mean()
    assert base_rate < 0.5 and top >= 0.7, (base_rate, top)

    events = pd.read_csv(res / "ds" / "ds_events.tsv", sep="\t")
    assert not events.duplicated(["contrast", "event_id"]).any()
    assert set(events["event_id"]) <= set(ds["event_id"])
    # per ATSE too: the top events of the contrast hold planted junctions
    planted_events = set(d.loc[is_planted.to_numpy(), "event_id"])
    top_events = events[events["contrast"] == "type2_vs_type1"].sort_values("rank")["event_id"].head(10)
    assert top_events.isin(planted_events).mean() >= 0.7

    de = pd.read_csv(res / "de" / "de_genes.tsv", sep="\t")
    assert set(de["contrast"]) == {"type2_vs_type1"} and de["gene_id"].is_unique
    # annotation columns and common call names (README column table)
    assert {"chrom", "start", "end", "strand", "gene_id", "gene_name", "annotated", "is_ds_fdr"} <= set(
        ds.columns
    )
    assert {"chrom", "start", "end", "strand", "gene_id", "gene_name", "annotated", "is_ds_fdr"} <= set(
        events.columns
    )
    assert (
        ds["chrom"] + ":" + ds["start"].astype(str) + "-" + ds["end"].astype(str) + ":" + ds["strand"]
        == ds["junction_id"]
    ).all()
    assert {"gene_name", "is_de_fdr"} <= set(de.columns) and not any(
        c.startswith("is_de_fdr_") for c in de.columns
    )


@pytest.mark.slow
def test_report_is_self_contained_html(sim_run):
    html = sim_run / "report.html"
    assert html.stat().st_size > 100_000
    text = html.read_text(errors="replace")
    assert "umap_clusters" in text and "training_curves" in text and "ds_junctions" in text
    assert "event_arcs" in text and "umap_psi" in text


def _front_page(report: Path) -> str:
    """The report's first page as Snakemake embeds it (the JSON string of ``workflow_desc``)."""
    import json

    html = report.read_text(errors="replace")
    found = re.search(r"var workflow_desc = (\".*?\");\s*\n", html, flags=re.S)
    assert found, "no workflow description in the report"
    return json.loads(found.group(1))


@pytest.mark.slow
def test_report_first_page_says_what_was_found(sim_run):
    page = _front_page(sim_run / "report.html")
    assert "What this run found" in page
    for section in (
        "Inputs",
        "Cells and ATSEs kept",
        "Clusters",
        "Calls per contrast",
        "Top events",
        "Quality control",
    ):
        assert f"<h2>{section}</h2>" in page, section
    assert "type2_vs_type1" in page and "cell_type: type2 vs type1" in page
    assert "data:image/png;base64" in page  # arc plot and PSI on UMAP inline
    assert "System Message" not in page and "line-length-limit" not in page
    # the user's file name is shown as text, never as markup
    assert "&lt;b class=splicevi-injected&gt;&#x27;cells&#x27;&amp;.tsv" in page
    assert "<b class" not in page
    html = (sim_run / "report.html").read_text(errors="replace")
    for label in ("Volcano plots: differential splicing per junction", "Arc plots of the top ATSEs"):
        assert label in html  # figures named by what they show, not by file path


@pytest.mark.slow
def test_report_first_page_in_a_browser(sim_run, tmp_path):
    """The documented browser check (tests/report_browser.py) on the test run's report."""
    import report_browser

    if report_browser.chromium() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    dom = report_browser.render(sim_run / "report.html", tmp_path / "report.png")
    assert report_browser.problems(dom, ("type2_vs_type1",)) == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_export_target_writes_files_that_read_back(sim_run):
    """`snakemake export` (not part of `all`): LeafCutter counts per cluster + groups file, one .h5ad per modality."""
    import gzip

    import anndata as ad
    import mudata as md

    cfg = sim_run / "config.yaml"
    snakemake(sim_run, "--configfile", str(cfg), "--cores", "1", "export")
    res = sim_run / "results"
    mdata = md.read_h5mu(res / "splicevi.h5mu")
    with gzip.open(res / "export" / "leiden_perind.counts.gz", "rt") as fh:
        header = fh.readline().split()
        lines = fh.read().splitlines()
    assert header[0] == "chrom" and sorted(header[1:]) == sorted(
        "leiden_" + mdata.obs["leiden"].astype(str).unique()
    )
    groups = (res / "export" / "leiden_groups.txt").read_text().split()
    assert groups[0::2] == header[1:] and groups[1::2] == header[1:]  # one sample per cluster (no replicates)
    assert len(lines) == mdata["splicing"].n_vars and all(len(line.split()) == len(header) for line in lines)
    for name in ("rna", "splicing"):
        adata = ad.read_h5ad(res / "export" / f"{name}.h5ad")
        assert adata.shape == mdata[name].shape and "leiden" in adata.obs and "X_umap" in adata.obsm


@pytest.mark.slow
def test_config_edit_reruns_training_and_downstream_only(sim_run):
    cfg = sim_run / "config.yaml"
    proc = snakemake(sim_run, "--configfile", str(cfg), "-n", "--cores", "2")
    assert _jobs(proc.stdout) == set(), proc.stdout[-3000:]

    edited = _write_config(sim_run / "edited.yaml", cfg, **{"train.lr": 0.002})
    proc = snakemake(sim_run, "--configfile", str(edited), "-n", "--cores", "2")
    jobs = _jobs(proc.stdout)
    assert {
        "train",
        "embed",
        "cluster",
        "differential_splicing",
        "differential_expression",
        "plot_training",
        "plot_umap_clusters",
        "plot_volcano_ds",
        "all",
    } <= jobs, proc.stdout[-3000:]
    assert not jobs & {"ingest", "atse", "assemble"}

    edited = _write_config(sim_run / "edited2.yaml", cfg, **{"cluster.resolution": 0.9})
    jobs = _jobs(snakemake(sim_run, "--configfile", str(edited), "-n", "--cores", "2").stdout)
    assert "cluster" in jobs and not jobs & {"ingest", "atse", "assemble", "train", "embed"}


@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason="real data ../shared/data/scasl_tnbc_smartseq2 not present")
def test_real_data_splicing_only(tmp_path):
    """Real Smart-seq2 cells (per-cell SJ.out.tab) without gene counts: a splicing-only run."""
    cfg = _write_config(
        tmp_path / "config.yaml",
        REPO / ".test" / "config_real.yaml",
        **{
            "input.junctions": str(REAL / "sj_out_tab"),
            "input.cell_annotations": str(REAL / "labels_sj_out_tab.csv"),
        },
    )
    work = tmp_path / "w"
    work.mkdir()
    targets = ["results_real/ds/ds_events.tsv"]  # the figures are covered by the simulated run
    proc = snakemake(work, "--configfile", str(cfg), "-n", "--cores", "2")
    assert "differential_expression" not in _jobs(proc.stdout)
    snakemake(work, "--configfile", str(cfg), "--cores", "2", *targets)
    res = work / "results_real"
    import mudata as md

    mdata = md.read_h5mu(res / "splicevi.h5mu")
    assert set(mdata.mod) == {"splicing"}
    assert mdata.n_obs == 37 and mdata["splicing"].n_vars > 100
    assert set(mdata.obs["type"].astype(str)) == {"Tumor", "Normal"}
    ds = pd.read_csv(res / "ds" / "ds_junctions.tsv", sep="\t")
    assert ds["contrast"].str.startswith("leiden").all()
    assert len(ds) == mdata["splicing"].n_vars * ds["contrast"].nunique()
    # every junction once per contrast, ranked 1..n within it
    for _, d in ds.groupby("contrast"):
        assert d["junction_id"].is_unique and sorted(d["rank"]) == list(range(1, len(d) + 1))
    assert not (res / "de").exists()


def test_conda_env_pins_exactly_the_constraints():
    """envs/splicevi.yaml installs exactly the versions of constraints.txt (the lock CI tests)."""
    env = yaml.safe_load((REPO / "envs" / "splicevi.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip[-1] == "-e .."  # the package itself, from this repository, after its pinned dependencies
    pip = pip[:-1]
    lines = [line.split("#", 1)[0].strip() for line in (REPO / "constraints.txt").read_text().splitlines()]
    assert sorted(pip) == sorted(line for line in lines if line)
    assert all("==" in p for p in pip)
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.split("=")[-1] >= "3.11"


@pytest.mark.slow
def test_plain_run_uses_the_default_profile_and_resumes_after_ctrl_c(tmp_path, sim_dir):
    """`snakemake` without --profile uses workflow/profiles/default and resumes after Ctrl-C.

    The profile is found via profiles/default and its default resources apply; a run interrupted
    mid-training (SIGINT to the whole process group) resumes with a plain rerun that runs only what
    is missing.
    """
    import signal

    work = tmp_path / "w"
    work.mkdir()
    (work / "sim").symlink_to(sim_dir / "sim")
    cfg = _write_config(
        tmp_path / "c.yaml",
        REPO / ".test" / "config_sim.yaml",
        **{"train.max_epochs": 100000, "train.early_stopping": False},
    )
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(SNAKEFILE),
        "-d",
        str(work),
        "--configfile",
        str(cfg),
        "--cores",
        "1",
        "results/model",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
    )
    log = work / "results" / "logs" / "train.log"
    try:
        deadline = time.monotonic() + 300
        while (
            not (log.exists() and "Epoch" in log.read_text(errors="replace")) and time.monotonic() < deadline
        ):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(1)
        assert log.exists(), "training never started"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    out = proc.stdout.read().decode()
    assert rc != 0, out[-3000:]
    assert (
        not (work / "results" / "model").exists()
        and not (work / "results" / "train" / "history.tsv").exists()
    )
    assert "Using workflow specific profile" in out and "profiles/default" in out, out[:2000]

    plan = snakemake(work, "--configfile", str(cfg), "-n", "results/model")
    assert "Using workflow specific profile" in plan.stdout + plan.stderr
    assert _jobs(plan.stdout) == {"train"}, plan.stdout[-3000:]  # ingest, atse, assemble are kept
    # The profile's default resources reach the jobs that set none (without it: no mem_mb, no runtime).
    fig = "results/figures/training_curves.png"
    with_profile = snakemake(work, "--configfile", str(cfg), "-n", fig).stdout
    bare = snakemake(work, "--configfile", str(cfg), "-n", "--workflow-profile", "none", fig).stdout
    assert re.search(r"rule plot_training:\n(?:.*\n)*?\s+resources:.*mem_mb=4000.*runtime=60", with_profile)
    assert "mem_mb=4000" not in bare

    # A plain rerun (now with few epochs) resumes: only training runs, and it finishes.
    short = _write_config(tmp_path / "short.yaml", cfg, **{"train.max_epochs": 2})
    rerun = snakemake(work, "--configfile", str(short), "--cores", "1", "results/model")
    assert _jobs(rerun.stdout + rerun.stderr) == {"train"}
    assert (work / "results" / "model" / "model.pt").stat().st_size > 0
