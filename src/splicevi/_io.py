"""Small I/O helpers shared by every stage: atomic writes and file checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Nothing half-written is ever left under the final name: on error the temporary file (or
    directory) is removed and ``path`` is untouched.

    Parameters
    ----------
    path
        Final destination (file or directory).
    suffix
        Suffix of the temporary name; defaults to the final name's suffix so writers that infer the
        format from the extension (h5ad, h5mu, parquet) keep working.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the writer creates it (file or directory)
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            import shutil

            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def require_file(path: str | os.PathLike, what: str = "input file") -> Path:
    """Return ``Path(path)`` or raise ``FileNotFoundError`` naming what was expected there."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p} (check the path in your config or command line)")
    return p
