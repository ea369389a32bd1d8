"""Figures of splicevi.pl on small synthetic inputs: files are written, bad inputs give clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from splicevi import pl
from splicevi.data import simulate
from splicevi.tl.ranking import events_from_junctions, rank_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sim():
    return simulate(n_cells=120, n_genes=40, n_events=30, n_types=3, seed=3)


@pytest.fixture(scope="module")
def mdata(sim):
    m = sim.to_mudata()
    m.obs["leiden"] = pd.Categorical(m.obs["cell_type"].astype(str).str.replace("type", ""))
    return m


@pytest.fixture(scope="module")
def ds_table(sim):
    """A DS table shaped like `splicevi ds` output, with the true ΔPSI as effect."""
    j = sim.junctions
    rows = []
    for t in ("type1", "type2"):
        eff = (j[f"true_psi_{t}"] - j["true_psi_type0"]).to_numpy()
        proba = np.clip(np.abs(eff) * 3, 0.01, 0.99)
        rows.append(
            pd.DataFrame(
                {
                    "contrast": f"{t}_vs_type0",
                    "junction_id": j.index.astype(str),
                    "event_id": j["event_id"].to_numpy(),
                    "gene_name": j["gene_name"].to_numpy(),
                    "proba_ds": proba,
                    "bayes_factor": np.log(proba / (1 - proba)),
                    "effect_size": eff,
                    "is_ds_fdr": proba > 0.5,
                }
            )
        )
    return rank_table(pd.concat(rows, ignore_index=True), "proba_ds", "effect_size")


def _check_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000


def test_training_curves(tmp_path):
    history = pd.DataFrame(
        {
            "elbo_train": np.linspace(100, 50, 10),
            "elbo_validation": np.linspace(110, 60, 10),
            "reconstruction_loss_train": np.linspace(90, 45, 10),
            "kl_local_train": np.linspace(1, 5, 10),
        }
    )
    out = tmp_path / "t.png"
    pl.save_figure(pl.training_curves(history), out)
    _check_png(out)
    svg = tmp_path / "t.svg"
    pl.save_figure(pl.training_curves(history), svg)
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()[:2000]


def test_save_figure_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unsupported figure format"):
        pl.save_figure(pl.training_curves(pd.DataFrame({"elbo_train": [1.0, 0.5]})), tmp_path / "x.jpg")
    assert not list(tmp_path.iterdir())


def test_umap_categorical_numeric_and_qc(tmp_path):
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(
        {
            "umap1": rng.normal(size=200),
            "umap2": rng.normal(size=200),
            "leiden": rng.integers(0, 14, 200).astype(str),
            "cell_type": rng.choice(["a", "b"], 200),
            "n_junction_reads": rng.poisson(50, 200),
            "n_atse_observed": rng.poisson(5, 200),
        }
    )
    out = tmp_path / "u.png"
    pl.save_figure(pl.umap(cells, ["leiden", "qc", "annotations"]), out)
    _check_png(out)
    with pytest.raises(ValueError, match="no cell annotation 'batch'"):
        pl.umap(cells, ["batch"])


def test_volcano_ds_and_de(tmp_path, ds_table):
    out = tmp_path / "v.png"
    pl.save_figure(pl.volcano(ds_table, "ds"), out)
    _check_png(out)
    de = pd.DataFrame(
        {"contrast": "a", "gene_id": ["g1", "g2"], "lfc_mean": [1.0, -0.2], "proba_de": [0.99, 0.2]}
    )
    pl.save_figure(pl.volcano(de, "de"), tmp_path / "d.png")
    with pytest.raises(ValueError, match="lacks column 'proba_ds'"):
        pl.volcano(ds_table.drop(columns="proba_ds"), "ds")


def test_group_psi_matches_counts(mdata, sim):
    """Pooled observed PSI per group equals sum(k) / sum(n) over the group's cells."""
    from splicevi.pl.psi import group_psi

    junctions = list(sim.junctions.index[:5].astype(str))
    psi, frac = group_psi(mdata, junctions, "leiden")
    k = mdata["splicing"].layers["cell_by_junction_matrix"].toarray()
    n = mdata["splicing"].layers["cell_by_cluster_matrix"].toarray()
    cells = (mdata.obs["leiden"] == "1").to_numpy()
    j = 2
    expect = k[cells, j].sum() / n[cells, j].sum()
    assert psi.loc[junctions[j], "1"] == pytest.approx(expect)
    assert frac.loc[junctions[j], "1"] == pytest.approx((n[cells, j] > 0).mean())
    # PSI of the junctions of one event sum to one within a group
    first_event = sim.junctions["event_id"].iloc[0]
    members = list(sim.junctions.index[sim.junctions["event_id"] == first_event].astype(str))
    p, _ = group_psi(mdata, members, "leiden")
    assert p["0"].sum() == pytest.approx(1.0)


def test_top_events_psi_and_coverage(tmp_path, mdata, ds_table):
    out = tmp_path / "psi.png"
    pl.save_figure(pl.top_events_psi(mdata, ds_table, "leiden", n_top=3), out)
    _check_png(out)
    events = events_from_junctions(ds_table)
    assert set(events.columns) >= {"contrast", "event_id", "proba_ds", "effect_size", "is_ds_fdr"}
    assert len(events) == ds_table.groupby(["contrast", "event_id"]).ngroups
    cov = tmp_path / "cov.png"
    pl.save_figure(
        pl.event_coverage(mdata, rank_table(events, "proba_ds", "effect_size"), "leiden", n_top=3), cov
    )
    _check_png(cov)
    with pytest.raises(ValueError, match="no cell annotation 'nope'"):
        pl.top_events_psi(mdata, ds_table, "nope")


# --- splicing figures on a MuData: arcs, PSI on the UMAP, coverage filter, volcano layout ---------------


@pytest.fixture(scope="module")
def contrast_table(ds_table):
    """The DS table with the contrast sides `splicevi ds` writes (groupby, group1, group2)."""
    t = ds_table.copy()
    t["groupby"] = "leiden"
    t["group1"] = t["contrast"].str.extract(r"type(\d)_vs")[0]
    t["group2"] = "0"
    return t


def _dense(mdata):
    spl = mdata["splicing"]
    return spl.layers["cell_by_junction_matrix"].toarray(), spl.layers["cell_by_cluster_matrix"].toarray()


def test_import_does_not_switch_the_backend():
    import subprocess
    import sys

    code = "import matplotlib; matplotlib.use('svg'); import splicevi.pl; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().lower() == "svg"
    # `import splicevi` is enough to reach the plots, as `sc.pl` in scanpy (fresh process)
    code = "import splicevi; print(splicevi.pl.arcs.__name__, splicevi.tl.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["arcs", "splicevi.tl"]


def test_arcs_label_pooled_reads_and_psi(mdata, tmp_path):
    from splicevi.pl._counts import event_junctions

    event = mdata["splicing"].var["event_id"].iloc[0]
    fig = pl.arcs(mdata, event, groupby="leiden", groups=["0", "2"])
    k, n = _dense(mdata)
    cols = mdata["splicing"].var_names.get_indexer(event_junctions(mdata, event))
    for ax, group in zip(fig.axes, ["0", "2"], strict=True):
        cells = (mdata.obs["leiden"] == group).to_numpy()
        expect = []
        names = mdata["splicing"].var_names[cols]
        for i, (c, name) in enumerate(zip(cols, names, strict=True)):
            reads, total = k[cells, c].sum(), n[cells, c].sum()
            value = f"{int(reads)} reads ({reads / total:.0%})" if total > 0 else "0 reads (unobserved)"
            expect.append(f"{i + 1}: {name}  {value}")
        # the legend names each junction (number, id) with its pooled reads and PSI; the arcs carry the numbers
        assert [t.get_text() for t in ax.get_legend().get_texts()] == expect
        assert sorted(t.get_text() for t in ax.texts) == [str(i + 1) for i in range(len(cols))]
        assert f"{int((n[cells][:, cols[0]] > 0).sum())} of {cells.sum()} cells" in ax.get_title()
    pl.save_figure(fig, tmp_path / "arcs.png")
    _check_png(tmp_path / "arcs.png")
    with pytest.raises(ValueError, match="have no cells"):
        pl.arcs(mdata, event, groupby="leiden", groups=["9"])
    with pytest.raises(ValueError, match="event 'nope' not in the data"):
        pl.arcs(mdata, "nope")


def test_arc_labels_never_overlap_and_the_gtf_adds_an_exon_track(mdata, tmp_path):
    from matplotlib.patches import Rectangle

    from splicevi.pl._counts import event_junctions
    from splicevi.pl.arcs import _place_labels

    # crowded: five labels at one spot, both sides; every pair ends at least one label height apart
    xs, ys, sides = np.zeros(6), np.array([0.5, 0.5, 0.5, -0.5, -0.5, 0.6]), np.array([1, 1, 1, -1, -1, 1.0])
    out = _place_labels(xs, ys, sides, width=1.0, height=0.17)
    for i in range(6):
        for j in range(i + 1, 6):
            assert abs(out[i] - out[j]) >= 0.17 - 1e-9
    assert (np.sign(out) == sides).all()

    event = mdata["splicing"].var["event_id"].iloc[0]
    var = mdata["splicing"].var.loc[event_junctions(mdata, event)]
    chrom, lo, hi = str(var["chrom"].iloc[0]), int(var["start"].min()), int(var["end"].max())
    gtf = tmp_path / "a.gtf"
    gtf.write_text(
        "".join(
            f'{c}\tsim\texon\t{s}\t{e}\t.\t+\t.\tgene_id "G"; transcript_id "T1"; gene_name "GeneX";\n'
            for c, s, e in [(chrom, lo - 80, lo - 1), (chrom, hi + 1, hi + 90), ("chrOther", lo, hi)]
        )
    )
    fig = pl.arcs(mdata, event, groupby="leiden", groups=["0", "2"], gtf=gtf)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().isdigit()]
        assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
        exons = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(exons) == 2  # the two exons of this region, not the other chromosome's
    assert not [
        p
        for p in pl.arcs(mdata, event, groupby="leiden", groups=["0"]).axes[0].patches
        if isinstance(p, Rectangle)
    ]


def test_well_observed_keeps_events_seen_on_both_sides(mdata, contrast_table):
    from splicevi.pl._counts import well_observed

    k, _ = _dense(mdata)
    event_of = mdata["splicing"].var["event_id"].astype(str).to_numpy()
    labels = mdata.obs["leiden"].astype(str).to_numpy()
    min_cells = 8
    kept = well_observed(mdata, contrast_table, min_cells)
    for _, row in contrast_table.drop_duplicates(["contrast", "event_id"]).iterrows():
        seen = k[:, event_of == row["event_id"]].sum(axis=1) > 0
        n1, n2 = seen[labels == row["group1"]].sum(), seen[labels == row["group2"]].sum()
        present = ((kept["contrast"] == row["contrast"]) & (kept["event_id"] == row["event_id"])).any()
        assert present == (n1 >= min_cells and n2 >= min_cells)
    assert 0 < len(kept) < len(contrast_table)  # the filter does something on this data
    assert len(well_observed(mdata, contrast_table, 0)) == len(contrast_table)


def test_top_event_arcs_show_only_well_observed_events(mdata, contrast_table, tmp_path):
    from splicevi.pl._counts import well_observed

    events = rank_table(events_from_junctions(contrast_table), "proba_ds", "effect_size")
    fig = pl.top_event_arcs(mdata, events, n_top=2, min_cells=8)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    shown = [t.split(": ", 1)[1].split(" ")[0] for t in titles]
    allowed = set(well_observed(mdata, events, 8)["event_id"])
    assert shown and set(shown) <= allowed
    pl.save_figure(fig, tmp_path / "top_arcs.png")
    _check_png(tmp_path / "top_arcs.png")
    with pytest.raises(ValueError, match="lacks columns"):
        pl.top_event_arcs(mdata, events.drop(columns="group1"))


def test_umap_psi_shows_unobserved_cells_apart(mdata, tmp_path):
    m = mdata.copy()
    m.obsm["X_umap"] = np.random.default_rng(0).normal(size=(m.n_obs, 2))
    j = str(m["splicing"].var_names[4])
    fig = pl.umap_psi(m, [j])
    ax = fig.axes[0]
    unobserved, observed = ax.collections[0], ax.collections[1]
    k, n = _dense(m)
    seen = n[:, 4] > 0
    assert len(unobserved.get_offsets()) == (~seen).sum() and len(observed.get_offsets()) == seen.sum()
    assert sorted(observed.get_array()) == pytest.approx(sorted(k[seen, 4] / n[seen, 4]))
    assert observed.get_clim() == (0, 1)
    pl.save_figure(fig, tmp_path / "psi_umap.png")
    _check_png(tmp_path / "psi_umap.png")
    with pytest.raises(ValueError, match="no embedding"):
        pl.umap_psi(mdata.copy(), [j], basis="X_tsne")


def test_umap_takes_a_mudata(mdata):
    m = mdata.copy()
    m.obsm["X_umap"] = np.random.default_rng(1).normal(size=(m.n_obs, 2))
    fig = pl.umap(m, ["leiden", "qc"])
    assert [ax.get_title() for ax in fig.axes if ax.get_title()][:2] == ["leiden", "n_junction_reads"]


def test_volcano_evidence_does_not_saturate_and_labels_do_not_overlap():
    from splicevi.pl.volcano import evidence

    rng = np.random.default_rng(0)
    n = 300
    effect = rng.normal(0, 0.3, n)
    proba = np.clip(rng.uniform(size=n), 0, 1)
    proba[:60] = 1.0  # every posterior sample agrees
    y, saturated, cap = evidence(proba, effect)
    assert saturated.sum() == 60 and (y[saturated] > cap).all() and (y[~saturated] <= cap).all()
    assert len(np.unique(y[saturated])) == 60  # resolved, ordered by |effect|
    sat = np.flatnonzero(saturated)
    assert (np.diff(y[sat][np.argsort(np.abs(effect[sat]))]) > 0).all()
    table = pd.DataFrame(
        {
            "contrast": "a",
            "junction_id": [f"chr1:{i}-{i + 50}:+" for i in range(n)],
            "gene_name": [f"G{i}" for i in range(n)],
            "proba_ds": proba,
            "effect_size": effect,
            "is_ds_fdr": proba == 1.0,
        }
    )
    fig = pl.volcano(table, "ds", n_labels=16)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text().startswith("G")]
    best = table[table["is_ds_fdr"]].assign(y=y[saturated]).sort_values("y", ascending=False).head(16)
    assert len(labels) == len(best) == 16
    points = ax.transData.transform(np.c_[effect, y])
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the text itself, not its leader line
    for i in range(len(boxes)):
        for k in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[k]), (labels[i].get_text(), labels[k].get_text())
    inside = [
        (b.x0 <= points[:, 0]) & (points[:, 0] <= b.x1) & (b.y0 <= points[:, 1]) & (points[:, 1] <= b.y1)
        for b in boxes
    ]
    assert not np.any(inside)  # no label covers a point
    # each label names the gene and the junction (a gene alone repeats over its junctions)
    ids = dict(zip(table["gene_name"], table["junction_id"], strict=True))
    assert all(t.get_text() == f"{t.get_text().split()[0]} {ids[t.get_text().split()[0]]}" for t in labels)
    assert all(t.get_text().split()[0] in set(table.loc[table["is_ds_fdr"], "gene_name"]) for t in labels)


def test_volcano_labels_and_leader_lines_stay_inside_their_panel():
    rng = np.random.default_rng(1)
    n = 200
    rows = []
    for contrast in ("a", "b", "c", "d"):
        proba = rng.uniform(size=n)
        rows.append(
            pd.DataFrame(
                {
                    "contrast": contrast,
                    "junction_id": [f"chr1:{i}-{i + 50}:+" for i in range(n)],
                    "gene_name": "GENE",
                    "proba_ds": proba,
                    "effect_size": rng.normal(0, 0.3, n),
                    "is_ds_fdr": proba > 0.9,
                }
            )
        )
    fig = pl.volcano(pd.concat(rows, ignore_index=True), "ds", n_labels=12)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if not ax.has_data():
            continue
        frame = ax.get_window_extent(renderer)
        notes = [t for t in ax.texts if t.get_text().startswith("GENE")]
        assert notes
        for note in notes:
            box = note.get_window_extent(renderer)  # text and leader line together
            assert (
                frame.x0 - 1 <= box.x0
                and box.x1 <= frame.x1 + 1
                and frame.y0 - 1 <= box.y0
                and box.y1 <= frame.y1 + 1
            )
            assert note.arrow_patch is None or frame.contains(
                *note.arrow_patch.get_window_extent(renderer).p1
            )


def test_plot_cli_arcs_and_psi_umap(tmp_path, sim, contrast_table):
    from splicevi.cli.main import main

    m = sim.to_mudata()
    m.obs["leiden"] = pd.Categorical(m.obs["cell_type"].astype(str).str.replace("type", ""))
    m.obsm["X_umap"] = np.random.default_rng(2).normal(size=(m.n_obs, 2))
    m.write(tmp_path / "m.h5mu")
    contrast_table.to_csv(tmp_path / "ds.tsv", sep="\t", index=False)
    assert (
        main(
            [
                "plot",
                "umap",
                "--mdata",
                str(tmp_path / "m.h5mu"),
                "--color",
                "leiden",
                "qc",
                "--out",
                str(tmp_path / "umap.png"),
            ]
        )
        == 0
    )
    _check_png(tmp_path / "umap.png")
    for kind in ("arcs", "psi-umap"):
        out = tmp_path / f"{kind}.png"
        assert (
            main(
                [
                    "plot",
                    kind,
                    "--mdata",
                    str(tmp_path / "m.h5mu"),
                    "--table",
                    str(tmp_path / "ds.tsv"),
                    "--min-cells",
                    "5",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        _check_png(out)
