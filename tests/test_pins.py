"""Dependency pins: ranges in pyproject.toml, exact versions in constraints.txt (used by make / CI)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [Requirement(r) for r in reqs]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"constraints.txt: '{line}' is not an exact pin"
        pins[req.name.lower().replace("_", "-")] = specs[0].version
    return pins


def test_library_dependencies_are_ranges():
    """No exact (==) pin in the package's own dependencies: it must install next to current scverse releases."""
    exact = [
        str(r) for r in _pyproject_requirements() if any(s.operator in ("==", "===") for s in r.specifier)
    ]
    assert exact == []


def test_constraints_pin_every_dependency_inside_its_range():
    pins = _constraints()
    for req in _pyproject_requirements():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"constraints.txt has no pin for {name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside '{req}'"
        )
    assert pins["torch"] == "2.13.0"


def test_makefile_installs_with_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    install = [line for line in makefile.splitlines() if "pip install" in line and "-e" in line]
    assert install and all("-c constraints.txt" in line for line in install)
