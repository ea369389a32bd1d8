"""Exit statuses and one-line messages of the command line for user mistakes and faults.

0 only when every output was written; 2 usage, 3 data, 4 output errors; SIGTERM / SIGINT during
training end with 143 / 130 and leave earlier outputs as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from splicevi.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _mdata(path: Path, n_cells: int, n_batches: int = 1) -> Path:
    from splicevi.data import simulate

    sim = simulate(
        n_cells=n_cells,
        n_genes=20,
        n_events=10,
        n_types=2,
        n_batches=n_batches,
        observed_fraction=0.5,
        seed=3,
    )
    sim.to_mudata().write_h5mu(path)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return _mdata(tmp_path_factory.mktemp("cli_err") / "small.h5mu", 60)


@pytest.fixture(scope="module")
def trained(small) -> Path:
    """A model trained for one epoch (only its files matter here)."""
    out = small.parent / "model"
    rc = main(
        [
            "train",
            "--mdata",
            str(small),
            "--max-epochs",
            "1",
            "--threads",
            "1",
            "--out-model",
            str(out),
            "--out-history",
            str(small.parent / "history.tsv"),
        ]
    )
    assert rc == 0 and (out / "model.pt").stat().st_size > 0
    return out


def _err(capsys) -> str:
    """The message of a failed command: its last stderr line (an exception escaping main fails the test)."""
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("splicevi "), last
    return last


def test_help_documents_exit_statuses(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for line in (
        "2    usage error",
        "3    data error",
        "4    output error",
        "130  interrupted",
        "143 terminated",
    ):
        assert line in out


def test_usage_and_data_errors_have_distinct_statuses(tmp_path, capsys):
    out = ["--out-model", str(tmp_path / "m"), "--out-history", str(tmp_path / "h.tsv")]
    assert main(["train", "--mdata", str(tmp_path / "x.h5mu"), "--model-kwargs", "[1]", *out]) == 2
    assert "usage error: --model-kwargs must be a JSON object" in _err(capsys)
    assert main(["train", "--mdata", str(tmp_path / "x.h5mu"), *out]) == 3
    assert "MuData (.h5mu) not found" in _err(capsys)
    with pytest.raises(SystemExit) as exc:  # argparse's own usage errors
        main(["train", "--mdata"])
    assert exc.value.code == 2


def test_unwritable_output_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    # The input does not exist either: the output check comes first, before anything is read.
    rc = main(
        [
            "train",
            "--mdata",
            str(tmp_path / "missing.h5mu"),
            "--out-model",
            str(blocker / "model"),
            "--out-history",
            str(tmp_path / "h.tsv"),
        ]
    )
    assert rc == 4
    err = _err(capsys)
    assert "--out-model" in err and "is a file, not a folder" in err
    if Path("/proc").is_dir():  # not writable even by root
        rc = main(["plot", "training", "--history", str(tmp_path / "h.tsv"), "--out", "/proc/splicevi/x.png"])
        assert rc == 4 and "cannot write in /proc" in _err(capsys)


def test_two_outputs_on_one_path_are_refused(tmp_path, capsys):
    sim = tmp_path / "sim"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(sim),
                "--format",
                "starsolo",
                "--n-cells",
                "20",
                "--n-genes",
                "10",
                "--n-events",
                "5",
                "--n-types",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    same = str(tmp_path / "x.h5ad")
    rc = main(
        [
            "ingest",
            "--junctions",
            str(sim),
            "--genes",
            str(sim / "Solo.out" / "Gene" / "filtered"),
            "--out-junctions",
            same,
            "--out-genes",
            same,
            "--no-progress",
        ]
    )
    assert rc == 2 and "are the same path" in _err(capsys)
    assert not Path(same).exists()


def test_unknown_model_argument(small, tmp_path, capsys):
    rc = main(
        [
            "train",
            "--mdata",
            str(small),
            "--model-kwargs",
            '{"n_latnt": 4}',
            "--max-epochs",
            "1",
            "--out-model",
            str(tmp_path / "m"),
            "--out-history",
            str(tmp_path / "h.tsv"),
        ]
    )
    assert rc == 2
    err = _err(capsys)
    assert "'n_latnt' is not an argument" in err and "did you mean 'n_latent'" in err
    assert not (tmp_path / "m").exists()


def test_too_few_cells_for_validation(tmp_path, capsys):
    tiny = _mdata(tmp_path / "tiny.h5mu", 4)
    rc = main(
        [
            "train",
            "--mdata",
            str(tiny),
            "--max-epochs",
            "2",
            "--threads",
            "1",
            "--out-model",
            str(tmp_path / "m"),
            "--out-history",
            str(tmp_path / "h.tsv"),
        ]
    )
    assert rc == 3
    err = _err(capsys)
    assert "no cell left for validation: 4 cell(s)" in err and "--train-size 1 --no-early-stopping" in err
    assert not (tmp_path / "m").exists() and not (tmp_path / "h.tsv").exists()


def test_batch_key_with_one_level_is_refused(small, tmp_path, capsys):
    rc = main(
        [
            "train",
            "--mdata",
            str(small),
            "--batch-key",
            "batch",
            "--max-epochs",
            "1",
            "--out-model",
            str(tmp_path / "m"),
            "--out-history",
            str(tmp_path / "h.tsv"),
        ]
    )
    assert rc == 3
    assert "batch_key 'batch' has one value" in _err(capsys)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "missing_file", "missing_folder"])
def test_damaged_model_folder(trained, small, tmp_path, capsys, damage):
    model = tmp_path / "model"
    shutil.copytree(trained, model)
    pt = model / "model.pt"
    if damage == "empty":
        pt.write_bytes(b"")
    elif damage == "truncated":
        pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    elif damage == "garbage":
        pt.write_bytes(b"not a model " * 20)
    elif damage == "missing_file":
        pt.unlink()
    else:
        shutil.rmtree(model)
    rc = main(["embed", "--mdata", str(small), "--model", str(model), "--out", str(tmp_path / "e.h5ad")])
    assert rc == 3
    err = _err(capsys)
    expected = {"missing_folder": "model directory not found", "missing_file": "holds no model.pt"}
    assert expected.get(damage, "cannot be read: the file is empty, truncated or not a saved model") in err
    assert not (tmp_path / "e.h5ad").exists()


def test_model_load_on_missing_folder(small, tmp_path):
    from splicevi import SPLICEVI

    with pytest.raises(FileNotFoundError, match="model folder not found"):
        SPLICEVI.load(str(tmp_path / "nope"), adata=None)


def _train_then_signal(tmp_path: Path, mdata: Path, signum: int) -> tuple[int, str]:
    """Start a long training in a child process, send ``signum`` once epochs run; (status, stderr)."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    )
    cmd = [
        sys.executable,
        "-m",
        "splicevi.cli.main",
        "train",
        "--mdata",
        str(mdata),
        "--max-epochs",
        "100000",
        "--no-early-stopping",
        "--threads",
        "1",
        "--out-model",
        str(tmp_path / "model"),
        "--out-history",
        str(tmp_path / "history.tsv"),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    chunks: list[bytes] = []
    started = threading.Event()

    def read():
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            chunks.append(chunk)
            # the first minibatch (a sparse tensor, whose beta warning torch prints once) means epochs run
            if b"sparse_csr_tensor" in b"".join(chunks[-3:]):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(180), b"".join(chunks).decode(errors="replace")[-2000:]
        time.sleep(2)  # well inside the training loop
        proc.send_signal(signum)
        rc = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    return rc, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_training_exits_nonzero_and_keeps_outputs(tmp_path, small, signum, status):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pt").write_bytes(b"previous model")
    (tmp_path / "history.tsv").write_text("previous history\n")
    before = time.time()
    rc, err = _train_then_signal(tmp_path, small, signum)
    assert rc == status, err[-2000:]
    assert f"{signal.Signals(signum).name} received: stopped, nothing written" in err
    assert (tmp_path / "model" / "model.pt").read_bytes() == b"previous model"
    assert (tmp_path / "history.tsv").read_text() == "previous history\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.tsv", "model"]  # no temporary left
    assert time.time() - before < 300


@pytest.mark.slow
def test_cluster_checks_contrast_groups_before_differential_jobs(trained, small, tmp_path, capsys):
    """Cluster groups are known only after clustering: `splicevi cluster --contrasts` refuses a missing one."""
    emb = tmp_path / "emb.h5ad"
    assert (
        main(
            [
                "embed",
                "--mdata",
                str(small),
                "--model",
                str(trained),
                "--n-neighbors",
                "10",
                "--out",
                str(emb),
            ]
        )
        == 0
    )
    out = ["--out", str(tmp_path / "c.h5mu"), "--out-cells", str(tmp_path / "cells.tsv")]
    bad = '[{"name": "c", "groupby": "leiden", "group1": "99", "group2": null}]'
    capsys.readouterr()
    rc = main(["cluster", "--mdata", str(small), "--embedding", str(emb), "--contrasts", bad, *out])
    assert rc == 3
    err = _err(capsys)
    assert "group '99' of 'leiden' has 0 cells (need 3); groups present: 0" in err
    assert not (tmp_path / "c.h5mu").exists() and not (tmp_path / "cells.tsv").exists()
    good = '[{"name": "c", "groupby": "leiden", "group1": "0", "group2": null}]'
    assert main(["cluster", "--mdata", str(small), "--embedding", str(emb), "--contrasts", good, *out]) == 0


# ---------------------------------------------------------------- model files that could run code


class _RunsCode:
    """An object whose unpickling runs a shell command (what a hostile model.pt would carry)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Evals:
    def __init__(self, source: str):
        self.source = source

    def __reduce__(self):
        return eval, (self.source,)


def _resave(src: Path, dst: Path, edit) -> Path:
    """Copy a model folder, load its model.pt (ours: trusted), apply ``edit`` and save it again."""
    import torch

    shutil.copytree(src, dst)
    saved = torch.load(dst / "model.pt", weights_only=False)
    saved = edit(saved)
    torch.save(saved, dst / "model.pt")
    return dst


@pytest.mark.parametrize("where", ["attr_dict", "var_names", "state_dict", "top"])
@pytest.mark.parametrize("payload", ["system", "eval"])
def test_model_file_that_would_run_code_is_refused(trained, small, tmp_path, capsys, where, payload):
    marker = tmp_path / "PWNED"
    evil = (
        _RunsCode(f"touch {marker}")
        if payload == "system"
        else _Evals(f"open({str(marker)!r}, 'w').write('x')")
    )

    def plant(saved):
        if where == "attr_dict":
            saved["attr_dict"]["history_"] = evil
        elif where == "var_names":
            saved["var_names"] = {"splicing": evil}
        elif where == "state_dict":
            saved["model_state_dict"]["pyro_param_store"] = evil
        else:
            saved = {"payload": evil, **saved}
        return saved

    model = _resave(trained, tmp_path / "evil_model", plant)
    rc = main(["embed", "--mdata", str(small), "--model", str(model), "--out", str(tmp_path / "e.h5ad")])
    assert rc == 3
    err = _err(capsys)
    name = "posix.system" if payload == "system" else "builtins.eval"
    assert f"model.pt refused: it needs {name}" in err and str(model) in err
    assert not marker.exists(), "unpickling ran code from the model file"
    assert not (tmp_path / "e.h5ad").exists()

    from splicevi import SPLICEVI
    from splicevi.model._model_file import ModelFileError

    with pytest.raises(ModelFileError, match="refused"):
        SPLICEVI.load(str(model), adata=None)
    with pytest.raises(ModelFileError, match="refused"):  # scArches from a saved folder: same check
        SPLICEVI.load_query_data(None, str(model))
    with pytest.raises(ModelFileError, match="refused"):
        SPLICEVI.load_registry(str(model))
    assert not marker.exists()


def test_foreign_model_files_are_clear_data_errors(trained, small, tmp_path, capsys):
    import torch

    bare = _resave(trained, tmp_path / "bare", lambda saved: saved["model_state_dict"])
    rc = main(["embed", "--mdata", str(small), "--model", str(bare), "--out", str(tmp_path / "e.h5ad")])
    assert rc == 3 and "is not a saved scvi-tools model (a bare state dict" in _err(capsys)

    other = _resave(
        trained,
        tmp_path / "other",
        lambda s: {
            **s,
            "attr_dict": {
                **s["attr_dict"],
                "registry_": {**s["attr_dict"]["registry_"], "model_name": "SCVI"},
            },
        },
    )
    rc = main(["embed", "--mdata", str(small), "--model", str(other), "--out", str(tmp_path / "e.h5ad")])
    assert rc == 3 and "holds a SCVI model, not SPLICEVI" in _err(capsys)

    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "listmodel").mkdir()
    (tmp_path / "list.pt").rename(tmp_path / "listmodel" / "model.pt")
    rc = main(
        [
            "embed",
            "--mdata",
            str(small),
            "--model",
            str(tmp_path / "listmodel"),
            "--out",
            str(tmp_path / "e.h5ad"),
        ]
    )
    assert rc == 3 and "not a saved scvi-tools model (a list" in _err(capsys)
    assert not (tmp_path / "e.h5ad").exists()


def test_model_from_another_version_loads_with_a_warning(trained, small, tmp_path):
    """Older files (no splicevi version recorded, another scvi-tools) load if they hold allowed types only."""
    import mudata as md

    from splicevi import SPLICEVI
    from splicevi.cli._common import setup_model_data

    def older(saved):
        saved["attr_dict"].pop("splicevi_version_", None)
        saved["attr_dict"]["registry_"]["scvi_version"] = "1.3.0"
        return saved

    model = _resave(trained, tmp_path / "old", older)
    mdata = md.read_h5mu(small)
    setup_model_data(mdata)
    with pytest.warns(
        UserWarning, match=r"saved by scvi-tools 1\.3\.0 .*and a splicevi version that did not record"
    ):
        loaded = SPLICEVI.load(str(model), adata=mdata)
    assert loaded.get_latent_representation().shape[0] == mdata.n_obs

    current = SPLICEVI.load(str(trained), adata=mdata)  # this version's own file: no version warning
    assert current.splicevi_version_
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        from splicevi.model._model_file import read_model_file

        read_model_file(trained / "model.pt")


# ---------------------------------------------------------------- partial cases: merge, GTF, strands, .h5mu


def _table(path: Path, rows: list[tuple]) -> Path:
    lines = ["cell\tchrom\tstart\tend\tstrand\tcount"] + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_merge_harmonizes_chromosome_names_across_samples(tmp_path, capsys):
    """One sample spells chromosomes chr1, the other 1: the same introns must stay one junction each."""
    import anndata as ad

    a = _table(
        tmp_path / "a.tsv",
        [
            ("c1", "chr1", 100, 200, "+", 3),
            ("c2", "chr1", 300, 400, "+", 2),
            ("c2", "chr2", 100, 200, "-", 1),
        ],
    )
    b = _table(tmp_path / "b.tsv", [("c1", "1", 100, 200, "+", 5), ("c3", "1", 300, 400, "+", 1)])
    for name, table in (("a", a), ("b", b)):
        assert (
            main(
                [
                    "ingest",
                    "--junctions",
                    str(table),
                    "--out-junctions",
                    str(tmp_path / f"{name}.h5ad"),
                    "--no-progress",
                ]
            )
            == 0
        )
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"sample\tjunctions\nA\t{a}\nB\t{b}\n")
    capsys.readouterr()
    out = tmp_path / "merged.h5ad"
    assert (
        main(
            [
                "merge",
                "--sample-sheet",
                str(sheet),
                "--junctions",
                str(tmp_path / "a.h5ad"),
                str(tmp_path / "b.h5ad"),
                "--out-junctions",
                str(out),
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out
    assert (
        "NOTE chromosome names harmonized across samples" in summary
        and "1→chr1 in B (2 junctions)" in summary
    )
    merged = ad.read_h5ad(out)
    assert sorted(merged.var_names) == ["chr1:100-200:+", "chr1:300-400:+", "chr2:100-200:-"]
    assert int(merged.var.loc["chr1:100-200:+", "total_reads"]) == 8
    assert merged.uns["splicevi_merge"]["chrom_renamed"] == {"1": "chr1"}


def test_same_intron_on_both_strands_is_noted(tmp_path, capsys):
    table = _table(
        tmp_path / "t.tsv",
        [
            ("c1", "chr1", 100, 200, "+", 3),
            ("c2", "chr1", 100, 200, "-", 2),
            ("c2", "chr1", 300, 400, "+", 1),
        ],
    )
    capsys.readouterr()
    out = tmp_path / "j.h5ad"
    assert main(["ingest", "--junctions", str(table), "--out-junctions", str(out), "--no-progress"]) == 0
    assert "NOTE same intron on both strands : 1 intron(s), e.g. chr1:100-200" in " ".join(
        capsys.readouterr().out.split()
    ).replace("  ", " ")
    import anndata as ad

    assert ad.read_h5ad(out).uns["splicevi_ingest"]["introns_on_both_strands"] == 1


def test_partial_gtf_warns_with_the_share_of_events_annotated(tmp_path, capsys):
    sim = tmp_path / "sim"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(sim),
                "--format",
                "starsolo",
                "--n-cells",
                "60",
                "--n-genes",
                "40",
                "--n-events",
                "30",
                "--n-types",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    jun = tmp_path / "j.h5ad"
    assert main(["ingest", "--junctions", str(sim), "--out-junctions", str(jun), "--no-progress"]) == 0
    gtf_lines = (sim / "annotation.gtf").read_text().splitlines()
    chroms = sorted({line.split("\t")[0] for line in gtf_lines if line and not line.startswith("#")})
    assert len(chroms) >= 2
    partial = tmp_path / "partial.gtf"
    partial.write_text(
        "\n".join(line for line in gtf_lines if line.startswith("#") or line.startswith(chroms[0] + "\t"))
        + "\n"
    )
    capsys.readouterr()
    assert (
        main(["atse", "--junctions", str(jun), "--gtf", str(partial), "--out", str(tmp_path / "ev.tsv")]) == 0
    )
    summary = " ".join(capsys.readouterr().out.split())
    assert (
        "WARNING partial GTF : the GTF covers" in summary
        and "events (" in summary
        and "have a gene" in summary
    )
    report = json.loads((tmp_path / "ev.summary.json").read_text())
    assert report["n_events_outside_gtf"] > 0 and "absent from it" in report["gtf_partial"]


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all\n" * 50, b"\x89HDF\r\n\x1a\n" + b"\x00" * 100])
def test_garbage_h5mu_error_names_the_file(tmp_path, capsys, content):
    bad = tmp_path / "garbage.h5mu"
    bad.write_bytes(content)
    rc = main(
        [
            "train",
            "--mdata",
            str(bad),
            "--max-epochs",
            "1",
            "--out-model",
            str(tmp_path / "m"),
            "--out-history",
            str(tmp_path / "h.tsv"),
        ]
    )
    assert rc == 3
    err = _err(capsys)
    assert f"error: {bad}: not a readable MuData (.h5mu)" in err and "Fix:" in err
    bad_h5ad = tmp_path / "garbage.h5ad"
    bad_h5ad.write_bytes(content)
    rc = main(
        [
            "assemble",
            "--junctions",
            str(bad_h5ad),
            "--events",
            str(bad_h5ad),
            "--out",
            str(tmp_path / "d.h5mu"),
        ]
    )
    assert rc == 3
