"""The report's first page (splicevi.pl.summary): what the run found, escaped, rounded, with warnings.

Rendered here the way Snakemake renders a report's front page (Jinja, then docutils, then JSON inside
a ``<script>`` element), so a user string that could break out of the script or run as a template
fails here, without a workflow run. The page inside a real report is checked by
tests/report_browser.py (slow).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from splicevi.pl.summary import esc, render_summary

HOSTILE = "</script><script>alert(1)</script>{{ 7*7 }}{% endraw %}`x`\n.. raw:: html"


def _tables(group1="B", n_cells=300, atses=297, test=True):
    rng = np.random.default_rng(0)
    qc_samples = pd.DataFrame(
        {"cells_ingested": [400], "cells_kept": [n_cells], "reads_per_cell_median": [185.70000000000002]},
        index=pd.Index(["input"], name="sample"),
    )
    qc_overall = pd.DataFrame(
        {"value": [400, n_cells, 1234, atses, 0.123456789]},
        index=pd.Index(
            ["cells_ingested", "cells_kept", "junctions_kept", "atses_kept", "frac"], name="metric"
        ),
    )
    cells = pd.DataFrame(
        {
            "leiden": rng.integers(0, 3, n_cells).astype(str),
            "cell_type": ["A"] * (n_cells - 5) + [group1] * 5,
        },
        index=[f"c{i}" for i in range(n_cells)],
    )
    ev = pd.DataFrame(
        {
            "contrast": "B_vs_A",
            "groupby": "cell_type",
            "group1": group1,
            "group2": "A",
            "event_id": [f"E{i}" for i in range(6)],
            "gene_name": ["G1", "G2", HOSTILE, "G4", "G5", "G6"],
            "chrom": "chr1",
            "start": 100,
            "end": 900,
            "strand": "+",
            "effect_size": [0.4, -0.3, 0.2, 0.1, 0, 0],
            "qvalue": [1e-5, 0.01, 0.02, 0.5, 0.9, 1.0],
            "is_ds_fdr": [True, True, True, False, False, False],
            "rank": range(1, 7),
        }
    )
    if test:
        ev["test"] = "pseudobulk"
    jn = ev.assign(junction_id=[f"chr1:{100 + i}-900:+" for i in range(6)])
    return dict(qc_samples=qc_samples, qc_overall=qc_overall, cells=cells, ds_junctions=jn, ds_events=ev)


RUN = {
    "input": {
        "junctions": "data/Solo.out/SJ/raw",
        "junction_format": "auto",
        "genes": None,
        "cell_annotations": "cells.tsv",
    },
    "samples": None,
    "gtf": None,
    "ds": {"delta": 0.1, "fdr_target": 0.05},
    "de": {},
    "resolution": 1.0,
}


def _as_snakemake_report(rst: str) -> str:
    """The front page as Snakemake 9 embeds it: Jinja, docutils html_body, then JSON in a script element."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    rendered = Environment(trim_blocks=True, lstrip_blocks=True).from_string(rst).render(snakemake=None)
    body = publish_parts(rendered, writer="html")["html_body"]
    return json.dumps(body)


def test_summary_answers_what_was_found():
    page = _as_snakemake_report(render_summary(RUN, **_tables()))
    assert "What this run found" in page
    assert "300 kept of 400 ingested" in page  # cells kept
    assert "297" in page  # ATSEs kept
    assert "cell_type: B vs A" in page and "3 / 6" in page  # calls per contrast
    assert "pseudobulk" in page  # the test used, where the tables name it
    assert "186" in page and "185.70000000000002" not in page  # rounded QC values
    assert "0.123" in page and "0.123456789" not in page
    assert "System Message" not in page and "docutils" not in page.lower().replace("generator", "")


def test_summary_says_what_the_calls_promise():
    default = render_summary(
        dict(RUN, ds={"delta": 0.1, "fdr_target": 0.05, "fdr_method": "bh_lfdr"}), **_tables()
    )
    interval = render_summary(
        dict(RUN, ds={"delta": 0.1, "fdr_target": 0.05, "fdr_method": "interval"}), **_tables()
    )
    assert "the FDR of a change" in default and "|ΔPSI| above delta itself" not in default
    assert "the FDR of |ΔPSI| above delta itself" in interval


def test_a_contrast_within_a_subset_says_so():
    tables = _tables()
    for key in ("ds_junctions", "ds_events"):
        tables[key] = tables[key].assign(
            contrast="in_T", groupby="condition_within_in_T", group1="x", group2="y"
        )
    tables["cells"]["condition_within_in_T"] = ["x", "y"] * 150
    run = dict(
        RUN,
        contrasts=[
            {
                "name": "in_T",
                "groupby": "condition",
                "group1": "x",
                "group2": "y",
                "subset": {"cell_type": "T"},
            }
        ],
    )
    page = render_summary(run, **tables)
    assert "condition: x vs y, within cell_type = T" in page and "<td>150</td><td>150</td>" in page


def test_summary_without_test_column_has_no_test_column():
    page = render_summary(RUN, **_tables(test=False))
    assert "<th>test</th>" not in page


def test_hostile_strings_are_escaped_everywhere():
    run = dict(RUN, input=dict(RUN["input"], junctions=HOSTILE, cell_annotations=HOSTILE), gtf=HOSTILE)
    page = _as_snakemake_report(render_summary(run, **_tables(group1=HOSTILE)))
    lowered = page.lower()
    assert "</script" not in lowered and "<script" not in lowered  # nothing can leave the script element
    assert "49" not in page  # {{ 7*7 }} was not run by Jinja
    assert "&lt;/script&gt;" in page and "&#123;&#123; 7*7 &#125;&#125;" in page  # shown, as text
    assert "System Message" not in page


@pytest.mark.parametrize("text", ["<b>", "a&b", '"q"', "{%", "}}", "line\nbreak", "`tick`"])
def test_esc_leaves_no_markup(text):
    out = esc(text)
    assert not set(out) & set('<>"{}\n`')


def test_degenerate_data_is_warned_about():
    page = render_summary(RUN, **_tables(n_cells=16, atses=1))
    warnings = page.split("Warnings", 1)[1].split("</ul>", 1)[0]
    assert "only 16 of 400 cells were kept" in warnings
    assert "only 1 ATSEs were kept" in warnings
    assert "group1 has 5 cells" in warnings


def test_log_warnings_are_listed(tmp_path):
    (tmp_path / "atse.log").write_text(
        "2026-01-01 INFO fine\n2026-01-01 WARNING 3 of 5 events have no gene <x>\n"
    )
    page = render_summary(RUN, **_tables(), log_dir=tmp_path)
    assert "atse.log: 3 of 5 events have no gene &lt;x&gt;" in page


def test_summary_names_the_de_test_of_each_contrast():
    tables = _tables()
    de = pd.DataFrame(
        {
            "contrast": "B_vs_A",
            "gene_id": ["g1", "g2"],
            "is_de_fdr": [True, False],
            "design": "clusters",
            "test": "held-out gene counts (count splitting)",
        }
    )
    page = render_summary(RUN, de=de, **tables)
    assert "<th>DE test</th>" in page and "held-out gene counts (count splitting)" in page
    assert "1 / 2" in page
