"""The report's first page: what a workflow run found, from its tables, logs and figures.

The page answers "what did we find" before any figure is opened: the inputs and samples, cells and
ATSEs kept, clusters, calls per contrast with the test used, the top events with their arc plot and
PSI on the UMAP inline, the QC tables (rounded), and warnings for degenerate data.

It is written as reStructuredText holding one ``raw`` HTML block, because Snakemake renders the
report's front page from reStructuredText through Jinja and then embeds it as JSON inside a
``<script>`` element. So every string that comes from the user (paths, sample ids, group names,
annotation values, log lines) is HTML-escaped, and braces are escaped too: an unescaped ``<`` could
close the script element, and ``{{`` or ``{%`` would be run by Jinja. The whole block is also
wrapped in Jinja's ``raw`` tags; an escaped string cannot contain the closing tag.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from .._constants import EVENT_ID_COLUMN

#: Fewer cells kept than this (or under :data:`MIN_CELL_FRACTION` of the ingested ones) is warned about.
MIN_CELLS = 100
MIN_CELL_FRACTION = 0.1
#: Fewer ATSEs kept than this is warned about.
MIN_ATSES = 20
#: A contrast group with fewer cells than this is warned about.
MIN_GROUP_CELLS = 10
#: Top events per contrast listed on the page.
N_TOP = 3

_MIME = {".png": "image/png", ".svg": "image/svg+xml"}

#: Layout of the page inside Snakemake's report: its landing view centres its content in a screen-high
#: flex box, which cuts the top off a page taller than the screen ("safe" centring falls back to the
#: start), and limits the text to a narrow column (widened for this page only).
_STYLE = (
    "<style>"
    ".h-screen.items-center.justify-center{align-items:safe center;justify-content:safe center}"
    ".prose:has(.splicevi-summary){max-width:none}"
    ".splicevi-summary table{width:auto;font-size:0.8em;border-collapse:collapse;margin:0.5em 0}"
    ".splicevi-summary code::before,.splicevi-summary code::after{content:none}"
    ".splicevi-summary th,.splicevi-summary td{padding:0.15em 0.5em;text-align:right}"
    ".splicevi-summary caption{text-align:left;font-weight:bold}"
    "</style>"
)


#: What the DS calls of each ``fdr_method`` control (README "What the calls promise").
_FDR_PROMISES = {
    "bh_lfdr": "the FDR of a change (ΔPSI ≠ 0), kept where the change is confidently at least delta",
    "bh": "the FDR of a change (ΔPSI ≠ 0), kept where the change is confidently at least delta",
    "interval": "the FDR of |ΔPSI| above delta itself",
    "lfdr": "the posterior FDR of |ΔPSI| above delta",
}


def _calls_promise(fdr_method) -> str:
    """`` (fdr_method: what it controls)`` for the report, or nothing when the run does not say."""
    if not fdr_method:
        return ""
    return f" (<code>fdr_method</code> {fdr_method}: {_FDR_PROMISES.get(str(fdr_method), 'see the README')})"


def esc(value) -> str:
    """HTML-escape a user-provided value for the page (also braces and line breaks; see the module doc)."""
    text = html.escape(
        "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    )
    return (
        text.replace("{", "&#123;")
        .replace("}", "&#125;")
        .replace("\r", " ")
        .replace("\n", " ")
        .replace("`", "&#96;")
        .replace("\\", "&#92;")
    )


def fmt(value, digits: int = 3) -> str:
    """A number for a table: integers with thousands separators, others to ``digits`` significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int,)) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.{digits}g}"
    return esc(value)


def html_table(frame: pd.DataFrame, index: bool = True, caption: str | None = None) -> str:
    """An escaped, rounded HTML table of ``frame``."""
    cols = ([esc(frame.index.name or "")] if index else []) + [esc(c) for c in frame.columns]
    head = "".join(f"<th>{c}</th>" for c in cols)
    rows = []
    for key, row in frame.iterrows():
        cells = ([f"<th>{esc(key)}</th>"] if index else []) + [
            f"<td>{fmt(_py(v))}</td>" for v in row.to_numpy()
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{caption}</caption>" if caption else ""
    body = "\n".join(rows)  # a row a line: docutils refuses lines over 10,000 characters
    return (
        f'<table class="splicevi-table">{cap}<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'
    )


def _py(value):
    """A numpy scalar as the Python value (for :func:`fmt`); strings stay strings."""
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def image(path: str | Path | None, alt: str) -> str:
    """An inline image (data URI) of a figure, or a note when it is missing."""
    if path is None or not Path(path).exists():
        return f"<p><em>{esc(alt)}: no figure.</em></p>"
    mime = _MIME.get(Path(path).suffix.lower(), "image/png")
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    # Lines of 76 characters: docutils refuses lines over 10,000, and URL parsing drops the line breaks.
    wrapped = "\n".join(data[i : i + 76] for i in range(0, len(data), 76))
    return f'<img src="data:{mime};base64,\n{wrapped}" alt="{esc(alt)}" style="max-width:100%">'


def _overall(qc_overall: pd.DataFrame) -> dict:
    col = "value" if "value" in qc_overall.columns else qc_overall.columns[0]
    return {str(k): _py(v) for k, v in qc_overall[col].items()}


def _num(values: Mapping, key: str):
    value = values.get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def group_sizes(cells: pd.DataFrame, groupby: str, group1: str, group2: str) -> tuple[int | None, int | None]:
    """Cells of each side of a contrast in the cell table (``None`` when the grouping is not there)."""
    if groupby not in cells.columns:
        return None, None
    labels = cells[groupby].astype("string")
    n1 = int((labels == str(group1)).sum())
    n2 = (
        int((labels.notna() & (labels != str(group1))).sum())
        if group2 in (None, "rest")
        else int((labels == str(group2)).sum())
    )
    return n1, n2


def _subset_text(spec) -> str:
    """``cell_type = T`` from a contrast's ``subset`` mapping (values joined by "or")."""
    parts = []
    for col, values in (spec or {}).items():
        values = [values] if isinstance(values, str) else list(values)
        parts.append(f"{col} = {' or '.join(map(str, values))}")
    return ", ".join(parts)


def contrast_calls(
    ds_junctions: pd.DataFrame,
    ds_events: pd.DataFrame,
    de: pd.DataFrame | None,
    cells: pd.DataFrame,
    contrasts: Sequence[Mapping] = (),
) -> pd.DataFrame:
    """One row per contrast: the groups, their cells, the test used and the calls of each table.

    ``contrasts`` (the configured ones) name the subset of a contrast tested within one, whose table
    names its derived grouping ``<groupby>_within_<name>``.
    """
    configured = {str(c.get("name")): c for c in contrasts}
    rows = []
    for contrast, ev in ds_events.groupby("contrast", sort=False):
        first = ev.iloc[0]
        groupby, g1, g2 = (str(first.get(k, "")) for k in ("groupby", "group1", "group2"))
        n1, n2 = group_sizes(cells, groupby, g1, g2)
        jn = ds_junctions[ds_junctions["contrast"] == contrast]
        spec = configured.get(str(contrast), {})
        shown = str(spec.get("groupby", groupby)) if spec.get("subset") else groupby
        within = f", within {_subset_text(spec['subset'])}" if spec.get("subset") else ""
        row = {
            "contrast": contrast,
            "comparison": f"{shown}: {g1} vs {g2}{within}",
            "cells group1": n1 if n1 is not None else "",
            "cells group2": n2 if n2 is not None else "",
        }
        for col in ("design", "test"):  # how the contrast was tested, where the tables say
            if col in ev.columns:
                row[col] = ", ".join(str(t) for t in pd.unique(ev[col].dropna()))
        row["junctions called / tested"] = _called(jn, "is_ds_fdr")
        row["ATSEs called / tested"] = _called(ev, "is_ds_fdr")
        if de is not None:
            d = de[de["contrast"] == contrast]
            row["genes called / tested (DE)"] = _called(d, "is_de_fdr") if len(d) else ""
            if "test" in d.columns and len(d):  # the DE design's test (clusters: held-out gene counts)
                row["DE test"] = ", ".join(str(t) for t in pd.unique(d["test"].dropna()))
        rows.append(row)
    return pd.DataFrame(rows).set_index("contrast")


def _called(table: pd.DataFrame, col: str) -> str:
    if col not in table.columns:
        return f"? / {len(table):,}"
    called = table[col].astype(str).str.lower().isin(["true", "1"]).sum()
    return f"{called:,} / {len(table):,}"


def top_events(ds_events: pd.DataFrame, n_top: int = N_TOP) -> pd.DataFrame:
    """The ``n_top`` best-ranked ATSEs of each contrast, with gene, place, ΔPSI and the evidence."""
    table = ds_events.sort_values(["contrast", "rank"]) if "rank" in ds_events.columns else ds_events
    cols = [
        c
        for c in (
            "contrast",
            EVENT_ID_COLUMN,
            "gene_name",
            "chrom",
            "start",
            "end",
            "strand",
            "effect_size",
            "max_abs_dpsi",
            "qvalue",
            "proba_ds",
            "is_ds_fdr",
        )
        if c in table.columns
    ]
    top = table.groupby("contrast", sort=False).head(n_top)[cols]
    rename = {"effect_size": "ΔPSI (best junction)", "max_abs_dpsi": "max |ΔPSI|", "is_ds_fdr": "called"}
    return top.rename(columns=rename).reset_index(drop=True)


def log_warnings(log_dir: str | Path | None, limit: int = 20) -> list[str]:
    """WARNING lines of the run's logs (``<log>: message``), at most ``limit``."""
    if log_dir is None or not Path(log_dir).is_dir():
        return []
    out = []
    for path in sorted(Path(log_dir).rglob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            found = re.search(r"\bWARNING\b:?\s*(.*)", line)
            if found and found.group(1).strip():
                out.append(f"{path.relative_to(log_dir)}: {found.group(1).strip()}")
    return out[:limit]


def degenerate_warnings(overall: Mapping, qc_samples: pd.DataFrame, calls: pd.DataFrame) -> list[str]:
    """Warnings for data too small to trust: few cells or ATSEs kept, tiny contrast groups."""
    out = []
    kept, ingested = _num(overall, "cells_kept"), _num(overall, "cells_ingested")
    if kept is not None and (kept < MIN_CELLS or (ingested and kept < MIN_CELL_FRACTION * ingested)):
        out.append(
            f"only {kept:,.0f} of {ingested or 0:,.0f} cells were kept (under {MIN_CELLS} or under "
            f"{MIN_CELL_FRACTION:.0%}): check the barcode list, the ATSE filters and assemble.min_cell_reads"
        )
    atses = _num(overall, "atses_kept")
    if atses is not None and atses < MIN_ATSES:
        out.append(
            f"only {atses:,.0f} ATSEs were kept (under {MIN_ATSES}): the splicing modality carries "
            "little information; check the junction filters (atse.min_reads, atse.min_cells)"
        )
    for sample, row in qc_samples.iterrows():
        k, i = _py(row.get("cells_kept")), _py(row.get("cells_ingested"))
        if isinstance(k, (int, float)) and isinstance(i, (int, float)) and i and k < MIN_CELL_FRACTION * i:
            out.append(f"sample {sample}: {k:,.0f} of {i:,.0f} cells kept")
    for contrast, row in calls.iterrows():
        for side in ("cells group1", "cells group2"):
            n = row.get(side)
            if isinstance(n, (int, float)) and n < MIN_GROUP_CELLS:
                out.append(
                    f"contrast {contrast}: {side.split()[-1]} has {n:,.0f} cells (under {MIN_GROUP_CELLS}); "
                    "its calls rest on very few cells"
                )
    return out


def _inputs_html(run: Mapping, samples: pd.DataFrame | None) -> str:
    items = []
    inp = run.get("input", {})
    if samples is not None:
        items.append(
            f"<li>Cohort: sample sheet <code>{esc(run.get('samples'))}</code>, {len(samples)} samples</li>"
        )
    else:
        items.append(
            f"<li>Junction counts: <code>{esc(inp.get('junctions'))}</code> "
            f"(format {esc(inp.get('junction_format', 'auto'))})</li>"
        )
        items.append(f"<li>Gene counts: {_code_or(inp.get('genes'), 'none (splicing only)')}</li>")
        items.append(f"<li>Barcodes kept: {_code_or(inp.get('barcodes'), 'all')}</li>")
    items.append(f"<li>Cell annotations: {_code_or(inp.get('cell_annotations'), 'none')}</li>")
    items.append(f"<li>Annotation (GTF): {_code_or(run.get('gtf'), 'none (no gene names)')}</li>")
    out = "<ul>" + "".join(items) + "</ul>"
    if samples is not None:
        out += html_table(samples, caption="Samples (the sample sheet)")
    return out


def _code_or(value, fallback: str) -> str:
    return f"<code>{esc(value)}</code>" if value else esc(fallback)


def render_summary(
    run: Mapping,
    qc_samples: pd.DataFrame,
    qc_overall: pd.DataFrame,
    cells: pd.DataFrame,
    ds_junctions: pd.DataFrame,
    ds_events: pd.DataFrame,
    de: pd.DataFrame | None = None,
    samples: pd.DataFrame | None = None,
    figures: Sequence[tuple[str, str | Path | None, str]] = (),
    log_dir: str | Path | None = None,
    cluster_key: str = "leiden",
) -> str:
    """The first page of the report, as reStructuredText (a title and one raw HTML block).

    Parameters
    ----------
    run
        The run's settings: ``input`` (the config's input section), ``samples`` (sheet path or None),
        ``gtf``, ``ds`` and ``de`` (delta, fdr_target), ``resolution``, ``contrasts`` (as configured).
    qc_samples, qc_overall
        ``splicevi qc`` tables.
    cells
        ``splicevi cluster``'s cell table (clusters and annotations).
    ds_junctions, ds_events, de
        The differential tables (``de`` None without gene counts).
    samples
        The sample sheet of a cohort (shown as a table), else None.
    figures
        ``(title, path, caption)`` of figures shown inline (the top events' arc plots, PSI on UMAP).
    log_dir
        The run's log folder; its WARNING lines are listed.
    cluster_key
        The clusters' annotation in ``cells``.
    """
    overall = _overall(qc_overall)
    calls = contrast_calls(ds_junctions, ds_events, de, cells, run.get("contrasts") or ())
    warnings = degenerate_warnings(overall, qc_samples, calls) + log_warnings(log_dir)
    parts = [_STYLE, '<div class="splicevi-summary">']
    if warnings:
        parts.append(
            '<div class="splicevi-warnings" style="border:2px solid #c60;padding:0.5em;margin:0.5em 0">'
            "<strong>Warnings</strong><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul></div>"
        )
    parts.append("<h2>Inputs</h2>" + _inputs_html(run, samples))

    kept = {k: overall.get(k) for k in ("cells_ingested", "cells_kept", "junctions_kept", "atses_kept")}
    parts.append(
        "<h2>Cells and ATSEs kept</h2><ul>"
        f"<li>Cells: {fmt(kept['cells_kept'])} kept of {fmt(kept['cells_ingested'])} ingested</li>"
        f"<li>Junctions kept: {fmt(kept['junctions_kept'])}; ATSEs (alternative transcript structure "
        f"events) kept: {fmt(kept['atses_kept'])}</li></ul>"
    )

    if cluster_key in cells.columns:
        sizes = cells[cluster_key].astype(str).value_counts()
        sizes = sizes.reindex(sorted(sizes.index, key=lambda s: (len(s), s)))
        parts.append(
            f"<h2>Clusters</h2><p>{len(sizes)} Leiden clusters (resolution {fmt(run.get('resolution'))}) "
            "on the joint latent space; cells per cluster:</p>"
            + html_table(sizes.rename("cells").rename_axis("cluster").to_frame())
        )

    ds_cfg, de_cfg = run.get("ds", {}), run.get("de", {})
    parts.append(
        "<h2>Calls per contrast</h2>"
        f"<p>Differential splicing: |ΔPSI| above {fmt(ds_cfg.get('delta'))} at FDR target "
        f"{fmt(ds_cfg.get('fdr_target'))}{_calls_promise(ds_cfg.get('fdr_method'))}"
        + (
            f"; differential expression: |LFC| above {fmt(de_cfg.get('delta'))} at FDR target "
            f"{fmt(de_cfg.get('fdr_target'))}"
            if de is not None
            else ""
        )
        + ". Tables: <code>ds/ds_junctions.tsv</code>, <code>ds/ds_events.tsv</code>"
        + (", <code>de/de_genes.tsv</code>" if de is not None else "")
        + ".</p>"
        + html_table(calls)
    )
    parts.append(
        "<h2>Top events</h2><p>The best-ranked ATSEs of each contrast (rank 1 = strongest "
        "evidence).</p>" + html_table(top_events(ds_events), index=False)
    )
    for title, path, caption in figures:
        parts.append(f"<h3>{esc(title)}</h3>{image(path, title)}<p>{esc(caption)}</p>")
    parts.append(
        "<h2>Quality control</h2>"
        + html_table(qc_samples, caption="Per sample")
        + html_table(qc_overall, caption="Overall (junctions removed by each filter, in order)")
    )
    parts.append("</div>")
    body = "\n".join(parts)
    indented = "\n".join("   " + line for line in body.splitlines())
    return (
        "{% raw %}\n"
        "What this run found\n"
        "===================\n\n"
        ".. raw:: html\n\n"
        f"{indented}\n\n"
        "{% endraw %}\n"
    )
