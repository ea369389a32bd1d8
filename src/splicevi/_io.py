"""Small I/O helpers shared by every stage: atomic writes, outputs published as a set, file checks.

Every output is written under a temporary name next to its final path. Inside
:func:`publish_together` (the command line wraps every subcommand in it) the temporary files are not
renamed one by one but all at the end (a SIGTERM/SIGINT meanwhile is recorded and rolls the set back),
and the old outputs are kept as backups until every rename succeeded: an interruption or an error leaves either all old or all new
outputs, never a mix. A write that fails for lack of space (or any OS error) becomes
:class:`OutputWriteError` naming the path, with no temporary file left behind.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


class OutputWriteError(OSError):
    """Writing an output failed (disk full, quota, I/O error): the command line exits with status 4."""


class InputOverwriteError(ValueError):
    """An output path is (or contains) one of the command's inputs."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _temporary_name(final: Path, suffix: str, kind: str = "tmp") -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".{kind}{suffix}", dir=final.parent)
    os.close(fd)
    os.unlink(name)  # the writer creates it (file or directory)
    return Path(name)


#: Depth of the renaming sections now running (see :func:`_critical`).
_CRITICAL: list[int] = [0]


def in_critical_section() -> bool:
    """Whether outputs are being renamed now: a signal handler must record the stop, not raise."""
    return _CRITICAL[0] > 0


@contextlib.contextmanager
def _critical() -> Iterator[None]:
    """Renames that must not be cut in half: the command line's signal handler only records a stop.

    The handler (``cli/main.py``) checks :func:`in_critical_section` and then records the request
    (:func:`request_stop`) instead of raising; the renames finish and :meth:`OutputSet.publish` rolls
    them back at its commit point. Blocking the signals instead (``pthread_sigmask``) would not do:
    it delays the handler past the commit point, and in a process with other threads (torch,
    Lightning) the kernel delivers the signal to one of them anyway. Another handler (Python's
    default SIGINT one) raises between two renames: that exception rolls the set back too.
    """
    _CRITICAL[0] += 1
    try:
        yield
    finally:
        _CRITICAL[0] -= 1


#: Set when an HDF5 write failed: the HDF5 library may hold a half-closed file (see below).
_HDF5_BROKEN: list[bool] = [False]


def _release_hdf5(tmp: Path) -> None:
    """Free the space of a failed temporary output and note a possibly broken HDF5 library state.

    When h5py fails to write (disk full), ``H5Fclose`` fails half-way and leaves an identifier whose
    file structure is already freed: touching it, or the HDF5 library's own clean-up when the
    interpreter exits, crashes the process (SIGSEGV, exit status 139: the segfault of ``splicevi
    assemble`` on a full disk). Nothing can close it safely, so :func:`hdf5_left_broken` tells the
    command line to end with ``os._exit`` after reporting the error (skipping that clean-up).
    Truncating the temporary gives the space back at once.
    """
    import sys

    with contextlib.suppress(OSError):
        if tmp.is_file():
            os.truncate(tmp, 0)
    if "h5py" in sys.modules:
        _HDF5_BROKEN[0] = True


def hdf5_left_broken() -> bool:
    """Whether an HDF5 write failed in this process (its library may crash at interpreter exit)."""
    return _HDF5_BROKEN[0]


def _as_write_error(err: OSError, path: Path) -> OutputWriteError:
    reason = err.strerror or str(err)
    hint = (
        "free some space or choose another output folder"
        if err.errno in (errno.ENOSPC, errno.EDQUOT)
        else "check the output folder"
    )
    return OutputWriteError(err.errno, f"cannot write {path}: {reason}; {hint}", str(path))


class OutputSet:
    """Temporary outputs waiting to be published together (see :func:`publish_together`)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []  # (temporary, final)

    def add(self, tmp: Path, final: Path) -> None:
        """Register a finished temporary output for ``final``."""
        self.pending.append((tmp, final))

    def discard(self) -> None:
        """Remove every temporary output (nothing is published)."""
        for tmp, _ in self.pending:
            _remove(tmp)
        self.pending.clear()

    def publish(self) -> None:
        """Rename every temporary output onto its final path, all or none.

        Existing outputs are moved aside first and restored if any rename fails or a signal arrives
        before the set is complete; they are deleted only once every new output is in place.
        """
        backups: list[tuple[Path, Path]] = []  # (backup, final)
        placed: list[Path] = []
        final = None
        with _critical():
            try:
                for tmp, final in self.pending:
                    if final.exists() or final.is_symlink():
                        backup = _temporary_name(final, final.suffix, "old")
                        os.replace(final, backup)
                        backups.append((backup, final))
                    os.replace(tmp, final)
                    placed.append(final)
                # the commit point: a stop requested during the renames still rolls everything back
                raise_if_stopped()
            except BaseException as err:
                self._roll_back(placed, backups)
                self.discard()
                if isinstance(err, OSError) and not isinstance(err, OutputWriteError):
                    raise _as_write_error(err, final) from None
                raise
            for backup, _ in backups:
                _remove(backup)
        self.pending.clear()

    def _roll_back(self, placed: list[Path], backups: list[tuple[Path, Path]]) -> None:
        for final in placed:
            _remove(final)
        for backup, final in reversed(backups):
            os.replace(backup, final)
        placed.clear()
        backups.clear()


_CURRENT: contextvars.ContextVar[OutputSet | None] = contextvars.ContextVar("splicevi_outputs", default=None)

#: The exception of a stop request (SIGTERM/SIGINT) received during the command, if any. A signal
#: handler's exception can be swallowed: raised inside a callback that C code invoked (numba/llvmlite
#: compile through ctypes callbacks, which print "Exception ignored" and go on), so the request is
#: also recorded here and checked again before anything is published.
_STOP: list[BaseException] = []


def request_stop(exc: BaseException) -> None:
    """Record a stop request (called by the signal handler of the command line before it raises)."""
    _STOP.append(exc)


def clear_stop() -> None:
    """Forget earlier stop requests (at the start of a command)."""
    _STOP.clear()


def raise_if_stopped() -> None:
    """Raise the recorded stop request, if any (one was received even if its exception was lost)."""
    if _STOP:
        raise _STOP[0]


@contextlib.contextmanager
def publish_together() -> Iterator[OutputSet]:
    """Collect every :func:`atomic_path` output written in the block; publish them together at its end.

    On any exception (an error, ``KeyboardInterrupt``, a signal turned into an exception) nothing
    is published and the temporary outputs are removed: the previous outputs stay as they were.
    Nested blocks join the outermost one.
    """
    outer = _CURRENT.get()
    if outer is not None:
        yield outer
        return
    outputs = OutputSet()
    token = _CURRENT.set(outputs)
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
    finally:
        _CURRENT.reset(token)
    try:
        raise_if_stopped()
    except BaseException:
        outputs.discard()
        raise
    outputs.publish()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it becomes ``path`` only if the block succeeds.

    Nothing half-written is ever left under the final name: on error the temporary file (or
    directory) is removed and ``path`` is untouched. Inside :func:`publish_together` the rename waits
    for the other outputs of the set. An ``OSError`` of the writer (disk full, ...) becomes
    :class:`OutputWriteError` naming ``path``.

    Parameters
    ----------
    path
        Final destination (file or directory).
    suffix
        Suffix of the temporary name; defaults to the final name's suffix so writers that infer the
        format from the extension (h5ad, h5mu, parquet) keep working.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _as_write_error(err, final) from None
    tmp = _temporary_name(final, final.suffix if suffix is None else suffix)
    with publish_together() as outputs, _quiet_failed_deallocs():
        try:
            yield tmp
        except OutputWriteError:
            _release_hdf5(tmp)
            _remove(tmp)
            raise
        except OSError as err:
            _release_hdf5(tmp)
            _remove(tmp)
            # a reader error (FileNotFoundError of an input...) is not a write error
            if err.filename is not None and Path(os.fspath(err.filename)) not in (tmp, final):
                raise
            raise _as_write_error(err, final) from None
        except RuntimeError as err:
            # torch.save reports a full disk as a RuntimeError ("file write failed", or "unexpected
            # pos" of its zip writer): look at the disk before the temporary frees its space
            full = _disk_full(final.parent)
            _release_hdf5(tmp)
            _remove(tmp)
            if full:
                raise _as_write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), final) from None
            if _WRITE_FAILED.search(str(err)):
                raise _as_write_error(OSError(errno.EIO, " ".join(str(err).split())), final) from None
            raise
        except BaseException:
            _release_hdf5(tmp)
            _remove(tmp)
            raise
        if not (tmp.exists() or tmp.is_symlink()):
            raise OutputWriteError(errno.EIO, f"cannot write {final}: the writer created nothing", str(final))
        outputs.add(tmp, final)


def _disk_full(folder: Path) -> bool:
    """Whether the file system of ``folder`` has (next to) no space left for an unprivileged writer."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


#: How writers written in C++ (torch.save, HDF5) report a failed write in a RuntimeError.
_WRITE_FAILED = re.compile(r"write failed|No space left|errno = 28|Disk quota", re.I)


@contextlib.contextmanager
def _quiet_failed_deallocs() -> Iterator[None]:
    """Drop the "Exception ignored" reports of h5py objects freed after a failed write.

    After a full disk, every h5py object of the file raises again when it is freed; Python prints
    each as an unraisable exception, burying the one-line error of the command under tracebacks.
    """
    import sys

    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, (RuntimeError, OSError)) and _WRITE_FAILED.search(
            str(unraisable.exc_value)
        ):
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        import gc

        gc.collect()  # free the failed writer's objects while the hook is in place
        sys.unraisablehook = previous


def require_file(path: str | os.PathLike, what: str = "input file") -> Path:
    """Return ``Path(path)`` or raise ``FileNotFoundError`` naming what was expected there."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p} (check the path in your config or command line)")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links too
    except OSError:
        return False


def check_not_an_input(
    outputs: dict[str, str | os.PathLike], inputs: dict[str, Iterable[str | os.PathLike]]
) -> None:
    """Raise :class:`InputOverwriteError` if an output would replace or delete one of the inputs.

    An output is refused when it resolves (after symlinks, or as a hard link) to an input, or when it
    is a folder that contains an input (outputs replace whole folders).

    Parameters
    ----------
    outputs
        ``{flag: path}`` of the outputs.
    inputs
        ``{flag: paths}`` of the inputs (only existing paths matter).
    """
    for out_flag, out in outputs.items():
        out_real = Path(os.path.realpath(out))
        for in_flag, paths in inputs.items():
            for inp in paths:
                if not os.path.lexists(inp):
                    continue
                in_real = Path(os.path.realpath(inp))
                if in_real == out_real or _same_file(Path(inp), Path(out)):
                    raise InputOverwriteError(
                        f"{out_flag} {out} is the input {in_flag} {inp}: writing it would overwrite the input; "
                        "choose another output path"
                    )
                # an output folder replaces the folder (--out-model); a --*-dir only writes into it
                if out_real in in_real.parents and not out_flag.endswith("-dir"):
                    raise InputOverwriteError(
                        f"{out_flag} {out} contains the input {in_flag} {inp}: replacing the folder would delete "
                        "the input; choose another output path"
                    )


def write_x_as_layer(data, path: str | os.PathLike, layer: str, modality: str | None = None) -> None:
    """Write an AnnData / MuData whose ``X`` is the same matrix as ``layers[layer]``, storing it once.

    Scanpy reads ``X`` (``sc.pp.calculate_qc_metrics``, ``sc.pl.umap(color=<feature>)``) while the model
    reads the named layer; both hold the counts. Written naively the counts would be stored twice, so
    ``X`` is written as an HDF5 hard link to the layer: one copy on disk, and every reader (anndata,
    mudata, h5py) sees an ordinary ``X``. When ``X`` is not that matrix, the object is written as is.

    Parameters
    ----------
    data
        AnnData (``.h5ad``) or MuData (``.h5mu``, then ``modality`` names the AnnData).
    path
        Output file (write it through :func:`atomic_path`).
    layer
        The layer that ``X`` mirrors.
    modality
        MuData only: the modality whose ``X`` is linked.
    """
    import h5py

    adata = data[modality] if modality is not None else data
    if adata.X is None or adata.layers.get(layer) is not adata.X:
        data.write(path) if modality is not None else data.write_h5ad(path)
        return
    x = adata.X
    adata.X = None
    try:
        data.write(path) if modality is not None else data.write_h5ad(path)
    finally:
        adata.X = x
    prefix = f"mod/{modality}/" if modality is not None else ""
    with h5py.File(path, "r+") as fh:
        if f"{prefix}X" in fh:  # an empty X written by an older anndata
            del fh[f"{prefix}X"]
        fh[f"{prefix}X"] = fh[f"{prefix}layers/{layer}"]
