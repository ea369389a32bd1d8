"""Open a workflow report in headless Chromium and check its first page: the documented browser check.

Run after a workflow run and its report (e.g. ``make demo``)::

    apt-get install -y chromium          # Debian package; nothing is downloaded by this script
    .venv/bin/python tests/report_browser.py results/report.html --screenshot report.png

It loads the report as a user's browser does (the report's JavaScript renders the page), reads the
rendered page back (``--dump-dom``), checks that the first page says what the run found (the
summary's sections, no docutils error messages, no script injected by a user string), and writes a
screenshot to look at. Exit status 0 when every check holds, 1 otherwise (the problems are printed),
2 when Chromium is not installed. ``tests/workflow/test_workflow.py::test_report_first_page_in_a_browser``
runs it on the test workflow's report (slow; skipped only when Chromium is absent).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Sections the first page must show (splicevi.pl.summary).
SECTIONS = (
    "What this run found",
    "Inputs",
    "Cells and ATSEs kept",
    "Clusters",
    "Calls per contrast",
    "Top events",
    "Quality control",
)
#: Flags: no network, no GPU, no first-run set-up, no sandbox (containers), a fresh profile each run.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium() -> str | None:
    """The Chromium executable on PATH (Debian: ``chromium``), or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def render(report: Path, screenshot: Path | None = None, timeout: int = 120) -> str:
    """The report's DOM after its scripts ran; also writes ``screenshot`` (PNG, 1400 × 1400) when given."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install -y chromium)")
    url = report.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="splicevi-chromium-") as profile:
        base = [exe, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000"]
        dom = subprocess.run(
            [*base, "--dump-dom", url], capture_output=True, text=True, timeout=timeout
        ).stdout
        if screenshot is not None:
            subprocess.run(
                [*base, "--window-size=1400,1400", f"--screenshot={screenshot.resolve()}", url],
                capture_output=True,
                timeout=timeout,
            )
    return dom


def problems(dom: str, expect: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with the rendered first page (empty: nothing)."""
    out = [f"section '{s}' not shown" for s in SECTIONS if s not in dom]
    out += [f"'{s}' not shown" for s in expect if s not in dom]
    if "System Message" in dom or "Docutils System Messages" in dom:
        out.append("docutils error messages on the page")
    if 'class="splicevi-injected"' in dom:  # an element made from a user string (escaped text stays text)
        out.append("a user string was run as markup")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: check a report, print the problems, write the screenshot."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path, help="report.html made by `snakemake --report`")
    parser.add_argument(
        "--screenshot", type=Path, default=Path("report.png"), help="PNG to write (default: report.png)"
    )
    parser.add_argument("--expect", nargs="*", default=[], help="further text the first page must show")
    args = parser.parse_args(argv)
    if chromium() is None:
        print("chromium is not installed (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    found = problems(render(args.report, args.screenshot), tuple(args.expect))
    for p in found:
        print(f"{args.report}: {p}", file=sys.stderr)
    print(f"screenshot: {args.screenshot}" + ("" if found else "; first page OK"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
