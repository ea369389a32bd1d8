"""Config keys that exist for real cohorts reach the commands: transcript lengths, accelerator, devices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
EXAMPLE = REPO / "resources" / "example" / "Solo.out"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed"),
    pytest.mark.skipif(not EXAMPLE.exists(), reason="embedded example resources/example not present"),
]


def _dry_run(tmp_path: Path, **overrides) -> subprocess.CompletedProcess:
    """Dry run (commands printed) of the example config with ``section.key`` overrides, from the repo root."""
    cfg = yaml.safe_load((REPO / "config" / "example.yaml").read_text())
    cfg["outdir"] = str(tmp_path / "results")
    for key, value in overrides.items():
        section, _, sub = key.partition(".")
        cfg.setdefault(section, {})[sub] = value  # the example config names only what it changes
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(SNAKEMAKE), "-n", "-p", "--cores", "1", "--configfile", str(path)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)


def _command(stdout: str, subcommand: str) -> str:
    lines = [line for line in stdout.splitlines() if f"splicevi {subcommand} " in line]
    assert lines, f"no `splicevi {subcommand}` command in the dry run:\n{stdout[-3000:]}"
    return lines[0]


def test_options_reach_the_commands(tmp_path):
    lengths = tmp_path / "lengths; rm -rf ~.tsv"  # a hostile file name must arrive quoted
    lengths.write_text("gene_id\tlength\n")
    proc = _dry_run(
        tmp_path, **{"input.transcript_lengths": str(lengths), "train.accelerator": "cpu", "train.devices": 2}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assemble = _command(proc.stdout, "assemble")
    assert f"--transcript-lengths '{lengths}'" in assemble
    train = _command(proc.stdout, "train")
    assert "--accelerator cpu --devices 2" in train


def test_defaults_leave_the_commands_as_before(tmp_path):
    proc = _dry_run(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--transcript-lengths" not in _command(proc.stdout, "assemble")
    assert "--accelerator auto --devices auto" in _command(proc.stdout, "train")


def test_transcript_lengths_without_gene_counts_is_a_config_error(tmp_path):
    lengths = tmp_path / "lengths.tsv"
    lengths.write_text("gene_id\tlength\n")
    proc = _dry_run(tmp_path, **{"input.transcript_lengths": str(lengths), "input.genes": None})
    assert proc.returncode != 0
    assert "config key 'input.transcript_lengths'" in proc.stdout + proc.stderr


def test_highly_variable_atses_and_encoder_options_reach_the_commands(tmp_path):
    proc = _dry_run(
        tmp_path, **{"assemble.highly_variable_atses": 400, "model.splicing_encoder_atses": "highly_variable"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--highly-variable-atses 400" in _command(proc.stdout, "assemble")
    assert '"splicing_encoder_atses": "highly_variable"' in _command(proc.stdout, "train")
    (tmp_path / "default").mkdir()
    default = _dry_run(tmp_path / "default")
    assert "--highly-variable-atses" not in _command(default.stdout, "assemble")
