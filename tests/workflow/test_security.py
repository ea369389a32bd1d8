"""No config value can run as shell code: every value reaches its `splicevi` command verbatim.

Each string-valued config key (paths, labels, the output folder, contrast groups) gets a value full
of shell metacharacters (command substitution, backticks, ``;``, ``&``, ``|``, ``$IFS``, quotes,
``#``). The dry run's printed commands are then executed by a real shell with a stand-in `splicevi`
that records its arguments, and one rule (ingest) runs for real through Snakemake. Either way no
injected command may run (the file ``INJECTED`` never appears) and each value must arrive as one
argument, unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
MARKER = "INJECTED"

pytestmark = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed")


def payload(key: str) -> str:
    """A value for config key ``key`` that would create ``INJECTED`` if any shell evaluated it."""
    t = f"touch {MARKER}"
    return f"{key} b$({t})`{t}`;{t}&touch$IFS\"{MARKER}\";'#'|{t}"


def _env(extra_path: Path | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    paths = [str(extra_path)] if extra_path else []
    env["PATH"] = os.pathsep.join([*paths, str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(SNAKEMAKE),
        "-s",
        str(SNAKEFILE),
        "-d",
        str(work),
        "--configfile",
        str(work / "config.yaml"),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    from splicevi.cli.main import main

    out = tmp_path_factory.mktemp("sec_sim") / "sim"
    rc = main(
        [
            "simulate",
            "--out",
            str(out),
            "--format",
            "starsolo",
            "--n-cells",
            "40",
            "--n-genes",
            "30",
            "--n-events",
            "20",
            "--n-types",
            "2",
            "--seed",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    return out


def _hostile_workdir(work: Path, sim: Path, with_sheet: bool) -> dict:
    """Inputs whose names (and the config's labels) are shell payloads; returns the config written."""
    work.mkdir()
    data = work / payload("junctions")
    shutil.copytree(sim, data, symlinks=True)
    shutil.copy(sim / "Solo.out" / "Gene" / "filtered" / "barcodes.tsv", work / f"{payload('barcodes')}.tsv")
    shutil.copy(sim / "annotation.gtf", work / f"{payload('gtf')}.gtf")
    cells = pd.read_csv(sim / "truth_cells.tsv", sep="\t")
    first = cells["cell_type"] == cells["cell_type"].iloc[0]
    cells[payload("groupby")] = [payload("group1") if f else payload("group2") for f in first]
    cells.to_csv(work / f"{payload('annotations')}.tsv", sep="\t", index=False)
    cfg = yaml.safe_load((REPO / ".test" / "config_sim.yaml").read_text())
    cfg["outdir"] = payload("outdir")
    cfg["input"] = {
        "junctions": f"{data.name}/Solo.out/SJ/raw",
        "genes": f"{data.name}/Solo.out/Gene/filtered",
        "barcodes": f"{payload('barcodes')}.tsv",
        "cell_annotations": f"{payload('annotations')}.tsv",
        "batch": payload("batch"),
    }
    if with_sheet:
        (work / f"{payload('sheet')}.tsv").write_text("cell_id\tpath\n")
        cfg["input"]["cell_sheet"] = f"{payload('sheet')}.tsv"
        cfg["batch_key"] = payload("batch_key")
    cfg["atse"]["gtf"] = f"{payload('gtf')}.gtf"
    cfg["contrasts"] = [
        {
            "name": "c1",
            "groupby": payload("groupby"),
            "group1": payload("group1"),
            "group2": payload("group2"),
        }
    ]
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def _injected(work: Path) -> list[Path]:
    return [p for p in work.rglob(MARKER) if p.name == MARKER]


def _value(argv: list[str], flag: str) -> str:
    assert flag in argv, (flag, argv)
    return argv[argv.index(flag) + 1]


def test_every_shell_placeholder_is_quoted():
    """Static check of the rules: each ``{...}`` of a ``shell:`` command ends in ``:q`` (threads excepted)."""
    unquoted = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.findall(r"^\s+shell:\n((?:\s+\".*\"\n?)+)", smk.read_text(), flags=re.M):
            for field in re.findall(r"\{([^{}]+)\}", block):
                if not field.endswith(":q") and field != "threads":
                    unquoted.append(f"{smk.name}: {{{field}}}")
    assert not unquoted, unquoted
    assert len(list((REPO / "workflow" / "rules").glob("*.smk"))) >= 8


@pytest.mark.slow
def test_dry_run_commands_pass_hostile_values_verbatim(tmp_path, sim):
    work = tmp_path / "w"
    cfg = _hostile_workdir(work, sim, with_sheet=True)
    proc = _snakemake(work, "-n", "-p", "--cores", "1")
    printed = [
        line.split("Shell command: ", 1)[1] for line in proc.stdout.splitlines() if "Shell command: " in line
    ]
    commands = [c for c in printed if c != "None"]  # rule all has no command
    assert len(commands) >= 15, proc.stdout[-3000:]

    # Run the printed commands in a real shell, with a `splicevi` that only records its arguments.
    stub = tmp_path / "bin"
    stub.mkdir()
    record = tmp_path / "argv.jsonl"
    (stub / "splicevi").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    (stub / "splicevi").chmod(stat.S_IRWXU)
    (work / cfg["outdir"] / "logs").mkdir(parents=True)
    for command in commands:
        subprocess.run(["bash", "-c", command], cwd=work, env=_env(stub), check=True, timeout=60)
    assert not _injected(work), "a config value ran as a shell command"

    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(calls) == len(commands)
    by_name: dict[str, list[list[str]]] = {}
    for argv in calls:
        by_name.setdefault(argv[0], []).append(argv)
    (ingest,) = by_name["ingest"]
    assert _value(ingest, "--junctions") == cfg["input"]["junctions"]
    assert _value(ingest, "--genes") == cfg["input"]["genes"]
    assert _value(ingest, "--barcodes") == cfg["input"]["barcodes"]
    assert _value(ingest, "--cell-sheet") == cfg["input"]["cell_sheet"]
    assert _value(ingest, "--batch") == payload("batch")
    assert _value(ingest, "--out-junctions") == f"{payload('outdir')}/ingest/junctions.h5ad"
    assert _value(by_name["atse"][0], "--gtf") == cfg["atse"]["gtf"]
    assert _value(by_name["train"][0], "--batch-key") == payload("batch_key")
    assert _value(by_name["cluster"][0], "--annotations") == cfg["input"]["cell_annotations"]
    (contrast,) = json.loads(_value(by_name["ds"][0], "--contrasts"))
    assert contrast == cfg["contrasts"][0]
    colors = [argv for argv in by_name["plot"] if argv[1] == "umap" and payload("batch_key") in argv]
    assert len(colors) == 1
    argv = colors[0]
    assert argv[argv.index("--color") + 1 : argv.index("--out")] == [
        payload("batch_key"),
        "annotations",
        payload("groupby"),
    ]
    for argv in calls:  # every output and log lands under the configured folder, unsplit
        outs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--out")]
        assert outs and all(o.startswith(payload("outdir") + "/") for o in outs), argv


@pytest.mark.slow
def test_ingest_rule_runs_with_hostile_values(tmp_path, sim):
    """One real rule through Snakemake's own shell: nothing injected runs, the batch label arrives intact."""
    import anndata as ad

    work = tmp_path / "w"
    cfg = _hostile_workdir(work, sim, with_sheet=False)
    target = f"{cfg['outdir']}/ingest/junctions.h5ad"
    _snakemake(work, "--cores", "1", target)
    assert not _injected(work), "a config value ran as a shell command"
    jun = ad.read_h5ad(work / target)
    assert set(jun.obs["batch"].astype(str)) == {payload("batch")}
    assert jun.uns["splicevi_ingest"]["barcodes_file"] == cfg["input"]["barcodes"]
    assert (work / cfg["outdir"] / "ingest" / "genes.h5ad").exists()
