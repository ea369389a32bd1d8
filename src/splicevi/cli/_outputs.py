"""Checks of a subcommand's output paths, made before any work starts.

Training can take hours; a typo in an output folder or a read-only file system must not be found
only when the model is saved.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from splicevi._io import InputOverwriteError, check_not_an_input

from ._errors import OutputError, UsageError


def output_paths(args: argparse.Namespace) -> dict[str, str]:
    """The ``--out*`` arguments of a parsed command line that are set: ``{"--out-model": path}``."""
    return {
        "--" + name.replace("_", "-"): value
        for name, value in sorted(vars(args).items())
        if name.startswith("out") and isinstance(value, (str, os.PathLike)) and str(value)
    }


def _nearest_existing(path: Path) -> Path:
    for folder in path.parents:
        if folder.exists():
            return folder
    return Path(path.anchor or ".")


def check_writable(flag: str, path: str | os.PathLike) -> None:
    """Raise :class:`OutputError` unless ``path`` can be created (its folder made and written).

    The nearest existing folder above ``path`` is probed by creating and removing a temporary file:
    permission bits alone say nothing for root or on read-only mounts.
    """
    target = Path(path)
    folder = _nearest_existing(target.absolute())
    if not folder.is_dir():
        raise OutputError(f"{flag} {path}: {folder} is a file, not a folder; choose another output path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".splicevi-write-test.", dir=folder)
    except OSError as err:
        raise OutputError(
            f"{flag} {path}: cannot write in {folder} ({err.strerror or err}); choose a writable output "
            "folder or fix its permissions"
        ) from None
    os.close(fd)
    os.unlink(probe)


def input_paths(args: argparse.Namespace) -> dict[str, list[str]]:
    """The other path-like arguments (strings, or lists of strings, naming something that exists)."""
    found: dict[str, list[str]] = {}
    for name, value in sorted(vars(args).items()):
        if name.startswith("out") or name == "func":
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        paths = [
            str(v)
            for v in values
            if isinstance(v, (str, os.PathLike)) and str(v) and len(str(v)) < 4096 and os.path.lexists(str(v))
        ]
        if paths:
            found["--" + name.replace("_", "-")] = paths
    return found


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path is writable, none is (or contains) an input, and no two are the same file."""
    outputs = output_paths(args)
    try:
        check_not_an_input(outputs, input_paths(args))
    except InputOverwriteError as err:
        raise UsageError(str(err)) from None
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        resolved = Path(path).resolve()
        if resolved in seen:
            raise UsageError(
                f"{seen[resolved]} and {flag} are the same path ({path}): give each output its own"
            )
        seen[resolved] = flag
    for flag, path in outputs.items():
        check_writable(flag, path)
