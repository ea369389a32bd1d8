"""One-screen summaries printed at the end of the data subcommands."""

from __future__ import annotations

import sys


def print_summary(title: str, rows: list[tuple[str, object]], file=None) -> None:
    """Print ``title`` and aligned ``label: value`` rows (values formatted with thousands separators)."""
    file = file or sys.stdout
    width = max((len(label) for label, _ in rows), default=0)
    print(f"── {title} " + "─" * max(0, 60 - len(title)), file=file)
    for label, value in rows:
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        print(f"  {label.ljust(width)} : {text}", file=file)
