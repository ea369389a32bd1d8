"""One source of defaults, the example kept out of user runs, and config checks at parse time.

Dry runs only (no job runs): the same config gives the same commands from a data folder and from the
repository root; the embedded example (config/example.yaml) never reaches a run that does not name it;
a run without a config file says how to give one; a typo in a contrast's columns stops the parse; a
cohort takes a cell table and contrasts within a subset; the SLURM profile plans without conda.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
needs_snakemake = pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed")


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin"  # no conda on PATH
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))
    return env


def dry_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-n", "-p", "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_env(), timeout=300)


def commands(proc: subprocess.CompletedProcess) -> list[str]:
    """The `splicevi ...` shell commands of a dry run (``-p``), in a stable order."""
    lines = (
        line.strip().removeprefix("Shell command:").strip()
        for line in (proc.stdout + proc.stderr).splitlines()
    )
    return sorted({line for line in lines if line.startswith("splicevi ")})


@pytest.fixture
def data_folder(tmp_path) -> Path:
    """A user's data folder: STARsolo-like inputs (empty: a dry run only checks that they exist)."""
    data = tmp_path / "mydata"
    (data / "Solo.out" / "SJ" / "raw").mkdir(parents=True)
    (data / "Solo.out" / "Gene" / "filtered").mkdir(parents=True)
    return data


def _user_config(data: Path, **extra) -> Path:
    cfg = {
        "outdir": str(data / "results"),
        "input": {
            "junctions": str(data / "Solo.out" / "SJ" / "raw"),
            "genes": str(data / "Solo.out" / "Gene" / "filtered"),
        },
        **extra,
    }
    path = data / "my_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _schema_defaults(schema: dict) -> dict:
    out = {}
    for key, prop in schema.get("properties", {}).items():
        if str(prop.get("description", "")).startswith("No effect"):
            continue  # accepted for old configs only; not in the template
        if prop.get("type") == "object" and "properties" in prop:
            out[key] = _schema_defaults(prop)
        elif "default" in prop:
            out[key] = prop["default"]
    return out


def test_template_config_equals_the_schema_defaults():
    """config/config.yaml (the template) holds exactly the schema's defaults (= the commands'), no example path."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    template = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert template == _schema_defaults(schema)
    assert "resources/example" not in (REPO / "config" / "config.yaml").read_text().split("contrasts: []")[
        0
    ].replace("# The embedded example (resources/example)", "")
    # ... and those are the `splicevi` commands' defaults: one set of numbers
    from splicevi.cli.main import build_parser

    schema = template
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    train = {a.dest: a.default for a in sub["train"]._actions}
    for key in (
        "max_epochs",
        "batch_size",
        "lr",
        "early_stopping",
        "early_stopping_patience",
        "train_size",
        "n_epochs_kl_warmup",
        "seed",
        "accelerator",
    ):
        assert schema["train"][key] == train[key], key
    assert (
        schema["cluster"]["resolution"] == {a.dest: a.default for a in sub["cluster"]._actions}["resolution"]
    )
    embed = {a.dest: a.default for a in sub["embed"]._actions}
    assert (
        schema["embed"]["n_neighbors"] == embed["n_neighbors"]
        and schema["embed"]["min_dist"] == embed["min_dist"]
    )


@needs_snakemake
def test_same_commands_from_a_data_folder_and_from_the_repository_root(data_folder):
    cfg = _user_config(data_folder)
    here = dry_run(data_folder, "--configfile", str(cfg))
    root = dry_run(REPO, "--configfile", str(cfg))
    assert here.returncode == 0 and root.returncode == 0, here.stderr[-3000:] + root.stderr[-3000:]
    assert commands(here) and commands(here) == commands(root)
    # the documented defaults, not the example's settings
    train = next(c for c in commands(root) if c.startswith("splicevi train "))
    assert "--max-epochs 500" in train and "--early-stopping-patience 50" in train
    assert "resources/example" not in root.stdout + root.stderr  # the example never reaches a user run
    assert not [c for c in commands(root) if "--gtf" in c or "--annotations" in c or "--barcodes" in c]


@needs_snakemake
def test_a_run_without_a_config_file_says_how_to_give_one(tmp_path):
    proc = dry_run(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "input.junctions" in out and "--configfile" in out and "example.yaml" in out


@needs_snakemake
def test_a_typo_in_a_contrast_column_stops_the_parse(data_folder):
    table = data_folder / "cells.tsv"
    table.write_text("cell_id\tcell_type\nAAAC\tT\n")
    contrast = {"name": "t_vs_rest", "groupby": "cell_tpye", "group1": "T"}
    proc = dry_run(
        data_folder,
        "--configfile",
        str(
            _user_config(
                data_folder,
                input={
                    "junctions": str(data_folder / "Solo.out" / "SJ" / "raw"),
                    "cell_annotations": str(table),
                },
                contrasts=[contrast],
            )
        ),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'contrasts[0].groupby': no cell annotation 'cell_tpye'" in out, out[-2000:]
    assert "cell_type" in out  # the columns there are


def _cohort(tmp_path: Path, table: str | None, contrasts: list, **input_keys) -> Path:
    for s in ("s1", "s2"):
        (tmp_path / s / "raw").mkdir(parents=True)
    (tmp_path / "samples.tsv").write_text(
        "sample\tjunctions\tcondition\ns1\ts1/raw\tctrl\ns2\ts2/raw\ttreated\n"
    )
    inp = dict(input_keys)
    if table is not None:
        (tmp_path / "cells.tsv").write_text(table)
        inp["cell_annotations"] = "cells.tsv"
    cfg = {"outdir": "results", "samples": "samples.tsv", "input": inp, "contrasts": contrasts}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tmp_path / "c.yaml"


CELLS = "sample\tbarcode\tcell_type\n" + "".join(
    f"{s}\tBC{i}\t{'T' if i % 2 else 'B'}\n" for s in ("s1", "s2") for i in range(12)
)


@needs_snakemake
def test_cohort_takes_a_cell_table_and_a_contrast_within_a_subset(tmp_path):
    contrast = {
        "name": "treated_in_T",
        "groupby": "condition",
        "group1": "treated",
        "group2": "ctrl",
        "subset": {"cell_type": "T"},
    }
    cfg = _cohort(tmp_path, CELLS, [contrast], junctions="elsewhere")  # set but ignored in a cohort
    proc = dry_run(tmp_path, "--configfile", str(cfg))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    merge = next(c for c in commands(proc) if c.startswith("splicevi merge "))
    assert "--cell-annotations cells.tsv" in merge
    assert "ignoring input.junctions" in out and "atse.gtf = null" in out  # the note names what applies
    umap = next(c for c in commands(proc) if "--color" in c and "qc" not in c.split("--color")[1])
    assert "cell_type" in umap  # the table's columns colour the UMAP
    ds = next(c for c in commands(proc) if c.startswith("splicevi ds "))
    assert '"subset": {"cell_type": "T"}' in ds


@needs_snakemake
def test_a_subset_value_or_column_typo_stops_the_parse(tmp_path):
    contrast = {
        "name": "x",
        "groupby": "condition",
        "group1": "treated",
        "group2": "ctrl",
        "subset": {"celltype": "T"},
    }
    proc = dry_run(tmp_path, "--configfile", str(_cohort(tmp_path, CELLS, [contrast])))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "contrasts[0].subset.celltype" in out and "cell_type" in out


@needs_snakemake
def test_slurm_profile_plans_without_conda(tmp_path):
    """No conda on PATH: the SLURM profile still dry-runs (conda is an option: --sdm conda)."""
    proc = dry_run(
        tmp_path,
        "--profile",
        str(REPO / "workflow" / "profiles" / "slurm"),
        "--configfile",
        str(_cohort(tmp_path, None, [])),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "conda" not in out.lower() or "--sdm conda" in out
    assert re.search(r"rule train:", out)


def test_option_choices_come_from_the_package_once():
    """Each option whose choices the package defines: the schema does not repeat them, the check uses them."""
    from splicevi.cli._workflow_config import check_config, choices

    path = REPO / "workflow" / "schemas" / "config.schema.yaml"
    raw = yaml.safe_load(path.read_text())
    for keys, values in choices().items():
        node = raw
        for key in keys:
            node = node["properties"][key]
        assert "enum" not in node, f"{'.'.join(keys)}: choices repeated in the schema"
        for value in values:
            assert check_config({keys[0]: {keys[1]: value}}, path) == [], (keys, value)
        errors = check_config({keys[0]: {keys[1]: "no-such-choice"}}, path)
        assert len(errors) == 1 and errors[0].startswith(f"config key '{'.'.join(keys)}'"), errors


def test_a_renamed_key_still_reads_with_a_note(capsys):
    """`input.sample_sheet` (the per-cell table's old name) is read as `input.cell_sheet`, with a note."""
    from splicevi.cli._workflow_config import check_config

    config = {"input": {"junctions": "x", "sample_sheet": "cells.tsv"}}
    assert check_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml") == []
    assert config["input"]["cell_sheet"] == "cells.tsv" and "sample_sheet" not in config["input"]
    assert "'input.sample_sheet' is now 'input.cell_sheet'" in capsys.readouterr().err
