"""Evaluation metrics against a planted truth: clustering agreement, ranking quality, FDR."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    normalized_mutual_info_score,
    roc_auc_score,
)


def clustering_agreement(truth: Sequence, clusters: Sequence) -> dict[str, float]:
    """ARI and NMI of a clustering against the true labels."""
    truth, clusters = np.asarray(truth).astype(str), np.asarray(clusters).astype(str)
    return {
        "ari": float(adjusted_rand_score(truth, clusters)),
        "nmi": float(normalized_mutual_info_score(truth, clusters)),
        "n_clusters": int(np.unique(clusters).size),
    }


def ranking_quality(truth: Sequence[bool], score: Sequence[float]) -> dict[str, float]:
    """AUROC and AUPRC of a score ranking the true positives first.

    Missing scores (NaN) rank last, so a method that cannot score a feature is not rewarded for it.
    Returns NaN metrics when the truth has a single class.
    """
    truth = np.asarray(truth, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    finite = np.isfinite(score)
    score = np.where(finite, score, (score[finite].min() if finite.any() else 0.0) - 1.0)
    if truth.all() or not truth.any():
        return {
            "auroc": float("nan"),
            "auprc": float("nan"),
            "n_true": int(truth.sum()),
            "n": int(truth.size),
        }
    return {
        "auroc": float(roc_auc_score(truth, score)),
        "auprc": float(average_precision_score(truth, score)),
        "prevalence": float(truth.mean()),
        "n_true": int(truth.sum()),
        "n": int(truth.size),
    }


def call_quality(truth: Sequence[bool], calls: Sequence[bool]) -> dict[str, float]:
    """Empirical FDR and power of a set of calls (FDR is 0 when nothing is called)."""
    truth = np.asarray(truth, dtype=bool)
    calls = np.asarray(calls, dtype=bool)
    n_calls = int(calls.sum())
    false = int((calls & ~truth).sum())
    return {
        "n_calls": n_calls,
        "n_false": false,
        "empirical_fdr": float(false / n_calls) if n_calls else 0.0,
        "power": float((calls & truth).sum() / truth.sum()) if truth.any() else float("nan"),
    }
