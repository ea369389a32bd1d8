"""The package's layers import only downwards (docs/ARCHITECTURE.md, "Layers").

Parsed from the source (no imports are executed), so a new upward import fails here with the file
that makes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "splicevi"

#: What each layer may import from the package (besides itself and the root's ``__version__``).
ALLOWED = {
    "_constants": set(),
    "_io": set(),
    "_labels": set(),
    "data": {"_constants", "_io", "_labels"},
    "stats": {"_labels", "_constants", "data"},
    "distributions": {"_labels", "_constants"},
    "nn": {"_labels", "_constants", "distributions"},
    "module": {"_labels", "_constants", "distributions", "nn", "data"},
    "model": {"_labels", "_constants", "_io", "data", "stats", "distributions", "nn", "module"},
    "tl": {"_labels", "_constants", "_io", "data", "stats"},
    "pp": {"_labels", "_constants", "_io", "data"},
    "pl": {"_labels", "_constants", "_io", "data", "stats", "tl"},
    "cli": {
        "_labels",
        "_constants",
        "_io",
        "data",
        "stats",
        "distributions",
        "nn",
        "module",
        "model",
        "tl",
        "pl",
        "pp",
    },
}


def _layer_of(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_layers(path: Path) -> set[tuple[str, int]]:
    """(layer, line) of every import of a splicevi layer in ``path``; the root package is ``""``."""
    rel = path.relative_to(PACKAGE)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(rel.parts[:-1])[: len(rel.parts) - node.level] + (node.module or "").split(".")
            elif node.module and node.module.split(".")[0] == "splicevi":
                parts = node.module.split(".")[1:]
            else:
                continue
            parts = [p for p in parts if p]
            if parts:
                found.add((parts[0], node.lineno))
            else:  # ``from splicevi import x`` / ``from .. import x``: the names are layers or root attributes
                found.update(
                    (alias.name if alias.name in ALLOWED else "", node.lineno) for alias in node.names
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "splicevi":
                    found.add((parts[1] if len(parts) > 1 else "", node.lineno))
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        layer = _layer_of(rel)
        if layer not in ALLOWED:  # the root package re-exports the layers
            continue
        for target, line in sorted(_imported_layers(path), key=lambda t: (t[1], t[0])):
            if target in ("", layer):
                continue
            if target not in ALLOWED[layer]:
                out.append(f"src/splicevi/{rel}:{line}: {layer} imports {target}")
    return out


def test_every_module_belongs_to_a_known_layer():
    layers = {_layer_of(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    assert layers - set(ALLOWED) <= {"__init__"}, (
        f"new layer(s) without import rules: {layers - set(ALLOWED)}"
    )


def test_imports_point_down():
    assert _violations() == []


def test_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker must catch what it is meant to catch: tl importing the model."""
    fake = tmp_path / "splicevi"
    (fake / "tl").mkdir(parents=True)
    (fake / "tl" / "bad.py").write_text("from ..model import SPLICEVI\nfrom splicevi.cli import main\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    assert _violations() == [
        "src/splicevi/tl/bad.py:1: tl imports model",
        "src/splicevi/tl/bad.py:2: tl imports cli",
    ]
