"""The registry of input formats: one entry per junction or gene-count format.

An entry names the format, the file-name endings that identify it, the reader and whether it reads
one file per cell. Detection (``auto``), dispatch, the ``splicevi ingest`` choices and the
workflow's config and sample-sheet choices are all read from :data:`JUNCTION_READERS` and
:data:`GENE_READERS`, so a new format is one :func:`register_reader` call next to its reader.

Readers
-------
A per-cell junction reader takes one file and returns its records (columns ``chrom, start, end,
strand, motif, annotated, count``, see :mod:`splicevi.data.readers_junctions`); every other reader
takes the input path and returns cells × features (:class:`anndata.AnnData`). A reader is called
with the keyword options of :attr:`Reader.options` that the caller was given (``multimappers`` for
junctions, ``strandedness`` and ``progress`` for genes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: The two kinds of input, each with its registry.
KINDS = ("junctions", "genes")
#: The choice that asks for detection.
AUTO = "auto"


@dataclass(frozen=True)
class Reader:
    """One input format.

    Attributes
    ----------
    name
        The format's name (``--junction-format`` / ``--gene-format`` value).
    read
        The reader (see the module docstring).
    suffixes
        File-name endings (before compression) that identify a file of this format, most specific
        first; detection picks the first format, in registration order, with a matching ending.
    per_cell
        Whether a file holds one cell (read through a sample sheet or a folder of such files).
    cell_suffixes
        Endings of the per-cell files in a folder of cells (default: ``suffixes``); the rest of the
        name is the cell id.
    is_folder
        For a format stored as a folder: whether a folder is one (checked before the per-cell files).
    options
        Keyword options the reader accepts.
    """

    name: str
    read: Callable
    suffixes: tuple[str, ...] = ()
    per_cell: bool = False
    cell_suffixes: tuple[str, ...] = ()
    is_folder: Callable[[Path], bool] | None = None
    options: tuple[str, ...] = ()
    help: str = field(default="", compare=False)

    def files_suffixes(self) -> tuple[str, ...]:
        """Endings of this format's per-cell files in a folder."""
        return self.cell_suffixes or self.suffixes


#: Registered junction formats, in detection order.
JUNCTION_READERS: dict[str, Reader] = {}
#: Registered gene-count formats, in detection order.
GENE_READERS: dict[str, Reader] = {}
_REGISTRIES = {"junctions": JUNCTION_READERS, "genes": GENE_READERS}


def register_reader(kind: str, reader: Reader) -> Reader:
    """Add ``reader`` to the registry of ``kind`` (``junctions`` or ``genes``); returns it."""
    if kind not in _REGISTRIES:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if reader.name == AUTO or not reader.name:
        raise ValueError(f"a format cannot be named {reader.name!r}")
    registry = _REGISTRIES[kind]
    known = registry.get(reader.name)
    if known is not None and known.read is not reader.read:
        raise ValueError(f"a {kind} format named {reader.name!r} is already registered")
    registry[reader.name] = reader
    return reader


def format_choices(kind: str) -> tuple[str, ...]:
    """``auto`` and the registered format names of ``kind``: the CLI's and the schemas' choices."""
    return (AUTO, *_REGISTRIES[kind])


def get_reader(kind: str, name: str) -> Reader:
    """The reader of format ``name``; ``ValueError`` listing the choices when there is none."""
    registry = _REGISTRIES[kind]
    if name not in registry:
        raise ValueError(f"unknown {kind[:-1]} format {name!r}; use one of {', '.join(format_choices(kind))}")
    return registry[name]


#: Compression endings ignored when a name is matched (those the table readers decompress).
COMPRESSION = (".gz", ".bz2", ".zst", ".xz")


def strip_compression(name: str) -> str:
    """A file name without a compression ending (:data:`COMPRESSION`)."""
    for ending in COMPRESSION:
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return name


def format_of_name(kind: str, name: str, per_cell_only: bool = False) -> str | None:
    """The first registered format whose ``suffixes`` end ``name`` (compression ignored), else ``None``."""
    name = strip_compression(os.path.basename(name))
    for reader in _REGISTRIES[kind].values():
        if per_cell_only and not reader.per_cell:
            continue
        if any(name.endswith(s) or name.lower().endswith(s) for s in reader.suffixes):
            return reader.name
    return None


def format_of_folder(kind: str, folder: Path) -> str | None:
    """The format of a folder: a folder format whose ``is_folder`` accepts it, else that of its per-cell files."""
    registry = _REGISTRIES[kind]
    for reader in registry.values():
        if reader.is_folder is not None and reader.is_folder(folder):
            return reader.name
    names = [q.name for q in folder.iterdir()]
    for reader in registry.values():
        if reader.per_cell and any(format_of_name(kind, n, per_cell_only=True) == reader.name for n in names):
            return reader.name
    return None
