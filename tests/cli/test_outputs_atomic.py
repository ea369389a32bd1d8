"""Outputs of a command are published as a set; no output may overwrite an input; write errors exit 4.

An interruption (SIGTERM/SIGINT) or an error at any point leaves either every old output or every new
one; a full disk gives exit status 4 with one line naming the path and leaves no temporary file.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest

from splicevi import _io
from splicevi._io import OutputWriteError, atomic_path, publish_together
from splicevi.cli.main import main


def _err(capsys) -> str:
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("splicevi "), last
    return last


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_set_is_published_together(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text("old a")
    b.write_text("old b")
    with publish_together():
        with atomic_path(a) as tmp:
            tmp.write_text("new a")
        assert a.read_text() == "old a"  # not yet: waits for the whole set
        with atomic_path(b) as tmp:
            tmp.write_text("new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert _files(tmp_path) == ["a.tsv", "b.tsv"]


def test_error_after_first_output_publishes_nothing(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b"
    a.write_text("old a")
    b.mkdir()
    (b / "x").write_text("old folder")
    with pytest.raises(RuntimeError), publish_together():
        with atomic_path(a) as tmp:
            tmp.write_text("new a")
        with atomic_path(b, suffix="") as tmp:
            tmp.mkdir()
            raise RuntimeError("boom")
    assert a.read_text() == "old a" and (b / "x").read_text() == "old folder"
    assert _files(tmp_path) == ["a.tsv", "b"]


def test_folder_output_replaced_whole(tmp_path):
    b = tmp_path / "model"
    b.mkdir()
    (b / "stale").write_text("x")
    with atomic_path(b, suffix="") as tmp:
        tmp.mkdir()
        (tmp / "model.pt").write_text("new")
    assert _files(b) == ["model.pt"] and _files(tmp_path) == ["model"]


def test_failed_rename_rolls_back_the_set(tmp_path, monkeypatch):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text("old a")
    b.write_text("old b")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if Path(dst) == b and ".tmp" in Path(src).name:  # publishing b fails; restoring it works
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(_io.os, "replace", flaky)
    with (
        pytest.raises(OutputWriteError, match=r"cannot write .*b\.tsv: Input/output error"),
        publish_together(),
    ):
        for path, text in ((a, "new a"), (b, "new b")):
            with atomic_path(path) as tmp:
                tmp.write_text(text)
    monkeypatch.setattr(_io.os, "replace", real)
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert _files(tmp_path) == ["a.tsv", "b.tsv"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_right_after_the_first_rename_keeps_all_old_outputs(
    tmp_path, monkeypatch, capsys, signum, status
):
    """The case of the issue: a signal between the renames of two outputs (ingest's two tables)."""
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
    out = tmp_path / "out"
    out.mkdir()
    jun, genes = out / "j.h5ad", out / "g.h5ad"
    jun.write_text("old\n")
    genes.write_text("old\n")
    real = os.replace
    renamed = []

    def replace_then_signal(src, dst):
        real(src, dst)
        if ".tmp" in Path(src).name:
            renamed.append(dst)
            if len(renamed) == 1:
                os.kill(os.getpid(), signum)

    monkeypatch.setattr(_io.os, "replace", replace_then_signal)
    capsys.readouterr()
    rc = main(
        [
            "ingest",
            "--junctions",
            str(sim),
            "--genes",
            str(sim / "Solo.out" / "Gene" / "filtered"),
            "--out-junctions",
            str(jun),
            "--out-genes",
            str(genes),
            "--no-progress",
        ]
    )
    monkeypatch.setattr(_io.os, "replace", real)
    assert rc == status
    assert "received: stopped, nothing written" in _err(capsys)
    assert renamed, "the signal was never sent"
    assert jun.read_text() == "old\n" and genes.read_text() == "old\n"
    assert _files(out) == ["g.h5ad", "j.h5ad"]


def test_disk_full_is_exit_4_naming_the_path(tmp_path, monkeypatch, capsys):
    """ENOSPC while writing: one line naming the output, status 4, no temporary file left."""
    import anndata as ad

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
    out = tmp_path / "out"
    out.mkdir()
    real = ad.AnnData.write_h5ad

    def full(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", full)
    capsys.readouterr()
    rc = main(["ingest", "--junctions", str(sim), "--out-junctions", str(out / "j.h5ad"), "--no-progress"])
    monkeypatch.setattr(ad.AnnData, "write_h5ad", real)
    assert rc == 4
    err = _err(capsys)
    assert f"cannot write {out / 'j.h5ad'}: No space left on device" in err and "free some space" in err
    assert _files(out) == []


def test_h5py_error_without_errno_becomes_a_write_error(tmp_path):
    """h5py reports a full disk as an OSError with its own text and no errno."""
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(OutputWriteError, match=r"cannot write .*c\.h5mu: Can't write data .*No space left"):
        with atomic_path(out / "c.h5mu") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(
                "Can't write data (file write failed: errno = 28, error message = 'No space left on device')"
            )
    assert _files(out) == []


def test_output_equal_to_an_input_is_refused_before_any_work(tmp_path, capsys):
    table = tmp_path / "t.tsv"
    table.write_text("cell_id\tchrom\tstart\tend\tstrand\tcount\nc1\tchr1\t100\t200\t+\t3\n")
    before = table.read_bytes()
    rc = main(["ingest", "--junctions", str(table), "--out-junctions", str(table), "--no-progress"])
    assert rc == 2
    err = _err(capsys)
    assert f"--out-junctions {table} is the input --junctions {table}" in err
    assert table.read_bytes() == before

    link = tmp_path / "link.h5ad"  # a symlink to the input: same file after resolving
    link.symlink_to(table)
    assert main(["ingest", "--junctions", str(table), "--out-junctions", str(link), "--no-progress"]) == 2
    assert "is the input --junctions" in _err(capsys)
    hard = tmp_path / "hard.h5ad"
    os.link(table, hard)
    assert main(["ingest", "--junctions", str(table), "--out-junctions", str(hard), "--no-progress"]) == 2
    assert table.read_bytes() == before


def test_train_history_or_model_on_the_data_is_refused(tmp_path, capsys):
    data = tmp_path / "run" / "d.h5mu"
    data.parent.mkdir()
    data.write_bytes(b"data")
    rc = main(["train", "--mdata", str(data), "--out-model", str(tmp_path / "m"), "--out-history", str(data)])
    assert rc == 2 and "--out-history" in _err(capsys)
    rc = main(
        [
            "train",
            "--mdata",
            str(data),
            "--out-model",
            str(data.parent),
            "--out-history",
            str(tmp_path / "h.tsv"),
        ]
    )
    assert rc == 2 and f"--out-model {data.parent} contains the input --mdata" in _err(capsys)
    assert data.read_bytes() == b"data"


# The point of this test: the handler's exception is swallowed by the C callback (Python reports it
# as unraisable), and the stop must still happen.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_swallowed_by_a_c_callback_still_stops(tmp_path, monkeypatch, capsys, signum, status):
    """numba compiles through ctypes callbacks: an exception raised in one is printed and ignored.

    The signal arrives while Python code runs inside such a callback (here a ctypes callback that
    the command calls, standing in for numba's compilation); the command must still end with
    130/143 and publish nothing.
    """
    import ctypes
    import time

    import splicevi.data.readers_junctions as readers

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
    real = readers.read_junctions

    def compile_step():
        os.kill(os.getpid(), signum)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # Python code inside the callback: the handler runs here
            pass

    callback = ctypes.CFUNCTYPE(None)(compile_step)

    def read_after_compiling(*args, **kwargs):
        callback()  # the exception of the handler is swallowed by ctypes
        return real(*args, **kwargs)

    monkeypatch.setattr(readers, "read_junctions", read_after_compiling)
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    rc = main(["ingest", "--junctions", str(sim), "--out-junctions", str(out / "j.h5ad"), "--no-progress"])
    assert rc == status
    assert "received: stopped, nothing written" in _err(capsys)
    assert _files(out) == []


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: real ENOSPC (CI runs as root; elsewhere the simulated tests above cover it)."""
    import subprocess

    mount = tmp_path / "full"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _cli(*args: str) -> tuple[int, str]:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(repo / "src"), os.environ.get("PYTHONPATH")])),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "splicevi.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return proc.returncode, proc.stderr


def test_disk_full_for_real_exit_4_no_segfault_no_temporary(tmp_path, full_disk):
    """assemble used to segfault (139) on a full disk, ingest exited 3 and train 1 with a traceback."""
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
                "150",
                "--n-genes",
                "150",
                "--n-events",
                "100",
                "--n-types",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    jun, genes, events = tmp_path / "j.h5ad", tmp_path / "g.h5ad", tmp_path / "ev.tsv"
    assert (
        main(
            [
                "ingest",
                "--junctions",
                str(sim),
                "--genes",
                str(sim / "Solo.out" / "Gene" / "filtered"),
                "--out-junctions",
                str(jun),
                "--out-genes",
                str(genes),
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["atse", "--junctions", str(jun), "--out", str(events)]) == 0
    data = tmp_path / "d.h5mu"
    assert (
        main(
            [
                "assemble",
                "--junctions",
                str(jun),
                "--events",
                str(events),
                "--genes",
                str(genes),
                "--out",
                str(data),
            ]
        )
        == 0
    )

    runs = {
        "assemble": [
            "assemble",
            "--junctions",
            str(jun),
            "--events",
            str(events),
            "--genes",
            str(genes),
            "--out",
            str(full_disk / "d.h5mu"),
        ],
        "ingest": [
            "ingest",
            "--junctions",
            str(sim),
            "--out-junctions",
            str(full_disk / "j.h5ad"),
            "--no-progress",
        ],
        "train": [
            "train",
            "--mdata",
            str(data),
            "--max-epochs",
            "1",
            "--threads",
            "1",
            "--out-model",
            str(full_disk / "model"),
            "--out-history",
            str(full_disk / "h.tsv"),
        ],
    }
    for name, argv in runs.items():
        rc, err = _cli(*argv)
        last = err.strip().splitlines()[-1]
        assert rc == 4, (name, rc, err[-3000:])
        assert last.startswith(f"splicevi {name}: output error: cannot write {full_disk}/"), (name, last)
        assert "No space left on device" in last or "errno = 28" in last or "file write failed" in last, (
            name,
            last,
        )
        assert list(full_disk.iterdir()) == [], (name, list(full_disk.iterdir()))
