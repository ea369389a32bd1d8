"""Files for the tools people already use: LeafCutter count tables, BED12 tracks, per-modality AnnData.

Coordinates: splicevi ids are 1-based, inclusive introns (``chrom:start-end:strand``).

- LeafCutter's ``*_perind.counts`` rows name an intron ``chrom:A:B:clu_<n>_<strand>`` with
  ``A = start - 1`` and ``B = end + 1`` (it reads 0-based starts from ``.junc`` files and adds one to
  the end), and hold ``k/n`` per sample: junction reads over the reads of its cluster (our ATSE).
- BED12 intervals are 0-based, half-open. A junction is drawn as in aligners' junction tracks: two
  1-base blocks on the exonic bases flanking the intron (``start - 1`` and ``end + 1`` in 1-based terms)
  joined by the intron; an ATSE is one record spanning its junctions with a 1-base block at each of
  their splice-site flanks.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from splicevi._io import atomic_path

from .._constants import EVENT_ID_COLUMN

#: itemRgb of BED records: called with ΔPSI > 0, called with ΔPSI < 0, not called.
RGB_UP, RGB_DOWN, RGB_NONE = "215,48,39", "69,117,180", "150,150,150"


def pseudobulk_samples(mdata, groupby: str, replicates: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Each cell's pseudobulk sample name, and each sample's group (LeafCutter's groups file).

    Samples are named ``<groupby>_<group>`` (e.g. ``leiden_3``, ``cell_type_T``: a header that says
    what was pooled), or ``<replicate>.<groupby>_<group>`` with ``replicates`` (e.g. ``ch1.leiden_3``):
    one sample per replicate (channel, donor) and group, which is what ``leafcutter_ds`` needs to
    compare two groups. Cells without a label are in no sample.

    Returns
    -------
    cell_samples, groups
        Sample name per cell (missing: unlabelled), and the group of each sample (index: sample name,
        in natural order of group then replicate).
    """
    from splicevi._labels import cell_labels, natural_sort

    spl = mdata["splicing"]
    labels = cell_labels(mdata, groupby, spl.obs_names)
    if labels.dropna().empty:
        raise ValueError(f"annotation '{groupby}' has no labelled cell")
    group = (groupby + "_" + labels.astype("string")).astype(object)
    names = group
    if replicates is not None:
        reps = cell_labels(mdata, replicates, spl.obs_names)
        names = (reps.astype("string") + "." + group.astype("string")).astype(object)
    names = names.where(labels.notna() & names.notna())
    bad = sorted({str(n) for n in names.dropna() if any(c.isspace() for c in str(n))})
    if bad:
        raise ValueError(
            f"sample name '{bad[0]}' contains white space, which LeafCutter cannot read; "
            f"rename the values of '{groupby}'" + (f" or '{replicates}'" if replicates else "")
        )
    pairs = pd.DataFrame({"sample": names, "group": group}).dropna().drop_duplicates("sample")
    order = {g: i for i, g in enumerate(natural_sort(pairs["group"].unique()))}
    pairs = pairs.assign(_o=pairs["group"].map(order))
    pairs = pairs.iloc[np.lexsort((natural_sort_keys(pairs["sample"]), pairs["_o"].to_numpy()))]
    return names, pd.Series(
        pairs["group"].to_numpy(), index=pd.Index(pairs["sample"].to_numpy(), name="sample")
    )


def natural_sort_keys(values: pd.Series) -> np.ndarray:
    """Position of each value in natural order (``ch2`` before ``ch10``)."""
    from splicevi._labels import natural_sort

    rank = {v: i for i, v in enumerate(natural_sort(pd.unique(values)))}
    return values.map(rank).to_numpy()


def leafcutter_counts(mdata, groupby: str | None = "leiden", replicates: str | None = None) -> pd.DataFrame:
    """LeafCutter-style count table: one row per junction, ``k/n`` per pseudobulk sample (or per cell).

    Parameters
    ----------
    mdata
        MuData with the splicing counts (``cell_by_junction_matrix`` and ``event_id``).
    groupby
        Cell annotation whose groups are pooled (pseudobulk; see :func:`pseudobulk_samples` for the
        column names). ``None``: one column per cell (large for droplet data: cells × junctions text).
    replicates
        Annotation whose values are kept apart within each group (e.g. ``sample``): one column per
        replicate × group, the replicates ``leafcutter_ds`` needs.

    Returns
    -------
    DataFrame
        Index: LeafCutter intron names ``chrom:start-1:end+1:clu_<n>_<strand>``; one string column
        ``k/n`` per sample.
    """
    from splicevi.data.layers import JUNCTION_COUNTS, event_codes, junction_to_event_matrix
    from splicevi.tl.annotate import junction_coordinates

    spl = mdata["splicing"]
    codes, _ = event_codes(spl.var[EVENT_ID_COLUMN].astype(str))
    k = sp.csr_matrix(spl.layers[JUNCTION_COUNTS], dtype=np.float64)
    m = junction_to_event_matrix(codes)
    if groupby is None:
        if replicates is not None:
            raise ValueError("replicates need a groupby (per-cell columns have no replicates)")
        samples = list(spl.obs_names.astype(str))
        pooled = k
    else:
        names, groups = pseudobulk_samples(mdata, groupby, replicates)
        samples = list(groups.index)
        # Samples × cells indicator: pooling is one sparse product.
        rows = pd.Index(samples).get_indexer(names.where(names.notna(), "\0").to_numpy())
        keep = np.flatnonzero(rows >= 0)
        indicator = sp.csr_matrix((np.ones(keep.size), (rows[keep], keep)), shape=(len(samples), spl.n_obs))
        pooled = indicator @ k
    pooled = sp.csr_matrix(pooled)
    kk = pooled.toarray()
    nn = ((pooled @ m) @ m.T).toarray()  # n: reads of the junction's ATSE in each sample
    coords = junction_coordinates(spl.var)
    names = (
        coords["chrom"]
        + ":"
        + (coords["start"] - 1).astype(str)
        + ":"
        + (coords["end"] + 1).astype(str)
        + ":clu_"
        + pd.Series(codes + 1, index=coords.index).astype(str)
        + "_"
        + coords["strand"]
    )
    values = np.char.add(np.char.add(kk.astype(np.int64).astype(str), "/"), nn.astype(np.int64).astype(str))
    table = pd.DataFrame(values.T, index=pd.Index(names.to_numpy(), name="chrom"), columns=samples)
    order = np.lexsort((coords["end"].to_numpy(), coords["start"].to_numpy(), codes))
    return table.iloc[order]


def write_leafcutter_groups(groups: pd.Series, path: str | os.PathLike) -> None:
    """Write LeafCutter's groups file: one line ``<sample> <group>`` per column of the count table.

    ``leafcutter_ds.R`` compares two groups: keep the lines of the two groups to compare (it reads
    the first column as the count table's sample names and the second as their group).
    """
    text = "".join(f"{s}\t{g}\n" for s, g in groups.items())
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_leafcutter(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write :func:`leafcutter_counts` as LeafCutter does: space-separated, header ``chrom <samples>``.

    Gzip-compressed when ``path`` ends with ``.gz``. Sample names must not contain white space
    (LeafCutter splits on it).
    """
    bad = [s for s in table.columns if any(c.isspace() for c in str(s))]
    if bad:
        raise ValueError(
            f"sample name '{bad[0]}' contains white space, which LeafCutter cannot read; rename the groups"
        )
    buf = io.StringIO()
    buf.write(" ".join(["chrom", *map(str, table.columns)]) + "\n")
    table.to_csv(buf, sep=" ", header=False)
    data = buf.getvalue().encode()
    with atomic_path(path) as tmp:
        if str(path).endswith(".gz"):
            with gzip.GzipFile(tmp, "wb", mtime=0) as fh:
                fh.write(data)
        else:
            with open(tmp, "wb") as fh:
                fh.write(data)


def select_contrast(table: pd.DataFrame, contrast: str | None) -> pd.DataFrame:
    """Rows of one contrast of a DS table; ``None`` is allowed only when the table has one.

    Raises ``ValueError`` naming the contrasts there are when ``contrast`` is missing or unknown.
    """
    if "contrast" not in table.columns:
        return table
    names = list(pd.unique(table["contrast"].astype(str)))
    if contrast is None:
        if len(names) > 1:
            raise ValueError(
                f"the table has {len(names)} contrasts; choose one with --contrast ({', '.join(names[:10])})"
            )
        return table
    if contrast not in names:
        raise ValueError(f"no contrast '{contrast}' in the table (contrasts: {', '.join(names[:10])})")
    return table[table["contrast"].astype(str) == contrast]


def _score_name_rgb(t: pd.DataFrame, id_col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    proba = t["proba_ds"].to_numpy(dtype=float) if "proba_ds" in t.columns else np.zeros(len(t))
    score = np.clip(np.rint(1000 * np.nan_to_num(proba)), 0, 1000).astype(int)
    effect = t["effect_size"].to_numpy(dtype=float) if "effect_size" in t.columns else np.zeros(len(t))
    called = (
        t["is_ds_fdr"].astype(bool).to_numpy() if "is_ds_fdr" in t.columns else np.zeros(len(t), dtype=bool)
    )
    rgb = np.where(called & (effect > 0), RGB_UP, np.where(called & (effect < 0), RGB_DOWN, RGB_NONE))
    gene = t["gene_name"].astype(object).where(t["gene_name"].notna(), "") if "gene_name" in t.columns else ""
    # BED names may not contain white space: ids have none; gene lists are joined with commas.
    name = (
        pd.Series(gene, index=t.index).astype(str).str.replace(r"\s+", "_", regex=True)
        + "|"
        + t[id_col].astype(str)
        + "|dPSI="
        + pd.Series(effect, index=t.index).map(lambda v: f"{v:+.3f}")
    )
    return score, name.str.lstrip("|").to_numpy(), rgb


def junctions_bed(mdata, table: pd.DataFrame, contrast: str | None = None) -> pd.DataFrame:
    """BED12 records of the junctions of a per-junction DS table (one contrast).

    Score: ``round(1000 * proba_ds)``; name ``gene|junction_id|dPSI=<ΔPSI>``; colour: red / blue for
    junctions called with positive / negative ΔPSI, grey otherwise.
    """
    from splicevi.tl.annotate import junction_coordinates

    t = select_contrast(table, contrast)
    coords = junction_coordinates(mdata["splicing"].var)
    missing = ~t["junction_id"].astype(str).isin(coords.index)
    if missing.any():
        raise ValueError(f"junction '{t['junction_id'][missing].iloc[0]}' of the table is not in the data")
    c = coords.loc[t["junction_id"].astype(str)]
    chrom_start = c["start"].to_numpy() - 2  # 0-based position of the last exonic base before the intron
    chrom_end = c["end"].to_numpy() + 1  # exclusive end after the first exonic base after it
    score, name, rgb = _score_name_rgb(t, "junction_id")
    second = (chrom_end - 1 - chrom_start).astype(str)
    bed = pd.DataFrame(
        {
            "chrom": c["chrom"].to_numpy(),
            "chromStart": chrom_start,
            "chromEnd": chrom_end,
            "name": name,
            "score": score,
            "strand": c["strand"].to_numpy(),
            "thickStart": chrom_start,
            "thickEnd": chrom_end,
            "itemRgb": rgb,
            "blockCount": 2,
            "blockSizes": "1,1",
            "blockStarts": np.char.add("0,", second),
        }
    )
    return bed.sort_values(["chrom", "chromStart", "chromEnd"], kind="stable").reset_index(drop=True)


def events_bed(mdata, table: pd.DataFrame, contrast: str | None = None) -> pd.DataFrame:
    """BED12 records of the ATSEs of a per-ATSE DS table (one contrast): one record per ATSE.

    The record spans the ATSE's junctions; its blocks are the exonic bases flanking each distinct
    splice site, so IGV shows where the alternative donors / acceptors are.
    """
    from splicevi.tl.annotate import junction_coordinates

    t = select_contrast(table, contrast)
    var = mdata["splicing"].var
    coords = junction_coordinates(var)
    coords[EVENT_ID_COLUMN] = var[EVENT_ID_COLUMN].astype(str).to_numpy()
    flanks = pd.concat(
        [
            pd.DataFrame(
                {EVENT_ID_COLUMN: coords[EVENT_ID_COLUMN], "pos": coords["start"] - 2}
            ),  # 0-based, before the intron
            pd.DataFrame(
                {EVENT_ID_COLUMN: coords[EVENT_ID_COLUMN], "pos": coords["end"]}
            ),  # 0-based, after the intron
        ]
    )
    sites = (
        flanks.drop_duplicates()
        .sort_values([EVENT_ID_COLUMN, "pos"])
        .groupby(EVENT_ID_COLUMN)["pos"]
        .agg(list)
    )
    first = coords.groupby(EVENT_ID_COLUMN)[["chrom", "strand"]].first()
    ids = t[EVENT_ID_COLUMN].astype(str)
    missing = ~ids.isin(sites.index)
    if missing.any():
        raise ValueError(f"event '{ids[missing].iloc[0]}' of the table is not in the data")
    score, name, rgb = _score_name_rgb(t, EVENT_ID_COLUMN)
    rows = []
    for i, e in enumerate(ids):
        pos = np.asarray(sites[e], dtype=np.int64)
        start, end = int(pos[0]), int(pos[-1]) + 1
        rows.append(
            (
                first.at[e, "chrom"],
                start,
                end,
                name[i],
                score[i],
                first.at[e, "strand"],
                start,
                end,
                rgb[i],
                len(pos),
                ",".join(["1"] * len(pos)),
                ",".join((pos - start).astype(str)),
            )
        )
    bed = pd.DataFrame(
        rows,
        columns=[
            "chrom",
            "chromStart",
            "chromEnd",
            "name",
            "score",
            "strand",
            "thickStart",
            "thickEnd",
            "itemRgb",
            "blockCount",
            "blockSizes",
            "blockStarts",
        ],
    )
    return bed.sort_values(["chrom", "chromStart", "chromEnd"], kind="stable").reset_index(drop=True)


def write_bed(bed: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write BED12 records (no header, tab-separated), atomically."""
    with atomic_path(path) as tmp:
        bed.to_csv(tmp, sep="\t", header=False, index=False)


def modality_anndata(mdata, name: str):
    """One modality as a stand-alone AnnData: with the MuData's cell annotations, latents, UMAP and kNN graph.

    Global ``obs`` columns (clusters, annotations) not already in the modality, ``obsm`` entries and
    the ``splicevi`` neighbour graph (``obsp`` + ``uns["splicevi"]``) are copied onto its cells, and
    the provenance record into ``uns["splicevi_provenance"]``, so scanpy works on the file alone. The
    splicing modality's ``X`` is its junction counts (``layers["cell_by_junction_matrix"]``).
    """
    if name not in mdata.mod:
        raise ValueError(f"no modality '{name}' (modalities: {', '.join(mdata.mod)})")
    from splicevi.data.layers import JUNCTION_COUNTS, JUNCTION_RATIO

    adata = mdata[name].copy()
    if name == "splicing" and JUNCTION_COUNTS in adata.layers and JUNCTION_RATIO not in adata.layers:
        # X is the junction counts (the data contract), also for files assembled before X held them.
        adata.X = adata.layers[JUNCTION_COUNTS]
    rows = mdata.obs_names.get_indexer(adata.obs_names)
    if (rows < 0).any():
        raise ValueError(f"cells of modality '{name}' are missing from the MuData's obs")
    for col in mdata.obs.columns:
        if ":" not in str(col) and col not in adata.obs.columns:
            adata.obs[col] = mdata.obs[col].iloc[rows].to_numpy()
    for key, value in mdata.obsm.items():
        if key not in adata.obsm:
            adata.obsm[key] = np.asarray(value)[rows]
    neighbors = mdata.uns.get("splicevi")
    if neighbors is not None and "connectivities_key" in neighbors:
        for key in (neighbors["connectivities_key"], neighbors["distances_key"]):
            adata.obsp[key] = sp.csr_matrix(mdata.obsp[key])[rows][:, rows]
        adata.uns["splicevi"] = dict(neighbors)
    if "splicevi_provenance" in mdata.uns:
        adata.uns["splicevi_provenance"] = mdata.uns["splicevi_provenance"]
    return adata
