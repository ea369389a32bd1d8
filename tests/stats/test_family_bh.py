"""One Benjamini–Hochberg family over the contrasts of one clustering (issue 18, clusters design)."""

from __future__ import annotations

import numpy as np

from splicevi.stats import differential as ds


def test_family_bh_adjusts_contrasts_of_one_clustering_together():
    rng = np.random.default_rng(3)
    # Ten null contrasts of 100 tests; one carries a p-value that its own BH would call (q 0.04).
    logs = [np.log(rng.uniform(0.05, 1.0, 100)) for _ in range(10)]
    logs[4][0] = np.log(0.0004)
    logs[7][0] = np.log(1e-7)  # a strong change stays a call
    per_contrast = [ds.bh_qvalues(x) for x in logs]
    family = ds.family_bh_qvalues(logs)
    assert per_contrast[4][0] <= 0.05
    assert family[4][0] > 0.05 and family[7][0] <= 0.05
    assert [len(q) for q in family] == [100] * 10
    assert ds.family_bh_qvalues([]) == []


def _held_out_table(pvalues, design="clusters"):
    import pandas as pd

    p = np.asarray(pvalues, dtype=np.float64)
    return pd.DataFrame(
        {
            "interval_pvalue": p,
            "interval_qvalue": ds.bh_qvalues(np.log(p)),
            "is_ds_fdr": ds.bh_qvalues(np.log(p)) <= 0.05,
            "log10_pvalue": np.log10(p),
            "effect_size": np.full(p.size, 0.2),
            "design": design,
        }
    )


def test_cli_contrasts_of_one_clustering_share_one_family():
    from splicevi.cli.ds import clusters_family
    from splicevi.model._ds_clusters import family_calls_ds

    rng = np.random.default_rng(4)
    # One contrast of eight has a p-value that its own BH calls (q 0.04); the family does not.
    tables = [_held_out_table(np.r_[0.0004 if i == 0 else 0.5, rng.uniform(0.05, 1, 99)]) for i in range(8)]
    labels = _held_out_table(np.r_[0.0004, rng.uniform(0.05, 1, 99)], design="labels")
    before = [int(t["is_ds_fdr"].sum()) for t in tables]
    out = clusters_family([*tables, labels], lambda held: family_calls_ds(held, 0.05, "interval"))
    assert before == [1] + [0] * 7
    assert [int(t["is_ds_fdr"].sum()) for t in out[:8]] == [0] * 8
    assert out[8] is labels and int(labels["is_ds_fdr"].sum()) == 1  # other designs untouched
    assert "8 cluster contrasts together" in out[0].attrs["splicevi_ds"]["reason"]


def test_default_family_rule_is_point_null_bh_with_the_confident_change_filter():
    import pandas as pd

    from splicevi.model._ds_clusters import family_calls_ds

    rng = np.random.default_rng(5)

    def table(p, bound):
        p = np.asarray(p, dtype=np.float64)
        return pd.DataFrame(
            {
                "pvalue": p,
                "qvalue": ds.bh_qvalues(np.log(p)),
                "interval_pvalue": np.ones_like(p),  # the interval test would call nothing
                "abs_dpsi_bound": np.asarray(bound, dtype=np.float64),
                "is_ds_fdr": np.zeros(p.size, dtype=bool),
                "log10_pvalue": np.log10(p),
                "effect_size": np.full(p.size, 0.3),
                "design": "clusters",
            }
        )

    # Two strong changes in contrast 0: one confidently above delta, one whose bound is below it.
    tables = [table(np.r_[1e-9, 1e-9, rng.uniform(0.05, 1, 98)], np.r_[0.15, 0.05, np.zeros(98)])]
    tables += [table(rng.uniform(0.05, 1, 100), np.zeros(100)) for _ in range(3)]
    out = family_calls_ds(tables, 0.05)  # the user's default bh_lfdr means bh here
    assert int(out[0]["is_ds_fdr"].sum()) == 1
    assert out[0].loc[out[0]["abs_dpsi_bound"] == 0.15, "is_ds_fdr"].all()
    assert not out[0].loc[out[0]["abs_dpsi_bound"] == 0.05, "is_ds_fdr"].any()
    assert sum(int(t["is_ds_fdr"].sum()) for t in out[1:]) == 0
    # Without delta (vanilla mode) both strong changes are calls; under interval neither is.
    assert int(family_calls_ds(tables, 0.05, delta=0.0)[0]["is_ds_fdr"].sum()) == 2
    assert int(family_calls_ds(tables, 0.05, "interval")[0]["is_ds_fdr"].sum()) == 0
