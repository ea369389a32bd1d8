"""Differential splicing with samples as the units: pseudobulk counts and tests over samples.

When the two groups compared are unions of samples (a condition, a donor, any sample-sheet column
constant within a sample), the cells of one sample are not independent replicates: they share the
sample's (donor's) splicing. Testing cells as units reads sample-to-sample variation as a group
effect. Here each sample counts once:

* :func:`pseudobulk` sums each junction's reads ``k`` over the sample's cells; the ATSE total of a
  sample is the sum of its junctions' pseudobulk reads.
* :func:`dm_glm_test` fits, per ATSE, a Dirichlet-multinomial (DM) GLM of the samples' junction
  counts (multinomial-logit mean with a design of intercept, group indicator and optional
  per-sample covariates; one concentration per ATSE) and tests the group term by a likelihood
  ratio, as LeafCutter and scQuint do. The concentration absorbs sample-to-sample variation; it is
  estimated per ATSE under the full model and shrunk (normal empirical Bayes on its log) towards
  the typical value of all ATSEs, because two or three samples a group say little about it.
  Because a fitted concentration from few samples is optimistic (the group means are fitted on the
  same samples), the likelihood ratio is calibrated by a quasi-likelihood layer, as edgeR's QL
  F-test does for the negative binomial: the Pearson dispersion of the full model, per ATSE, is
  moderated across ATSEs (limma's ``squeezeVar``) and the likelihood ratio per degree of freedom is
  referred to an F distribution. With enough samples the dispersion is ≈ 1 and the test is the DM
  likelihood-ratio test.
* :func:`welch_test` is the simplest peer: a Welch t-test of the per-sample PSI (``k / n`` of each
  sample's pseudobulk) per junction.

Everything is vectorised across ATSEs: ATSEs of similar size are fitted together by a damped
Newton method on per-ATSE parameters (``torch.func`` gradients and Hessians under ``vmap``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import special, stats

#: Ridge penalty on the multinomial-logit coefficients: keeps them finite when a junction has no
#: reads in one group (separation) without moving the likelihood ratio of estimable effects.
RIDGE = 1e-3
#: Bounds of a fitted log concentration (a concentration of 1e5 is a multinomial for pseudobulks).
LOG_CONC_BOUNDS = (np.log(1e-2), np.log(1e5))
#: Cap of the prior degrees of freedom of the quasi-likelihood dispersion (see :func:`dm_glm_test`).
PRIOR_DF_MAX = 20.0
#: Default minimum of samples observing an ATSE in each group for the ATSE to be tested.
MIN_OBSERVED_SAMPLES = 2


# ---------------------------------------------------------------------------- pseudobulk
def pseudobulk(junction_counts: sp.spmatrix, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum each junction's reads over the cells of each sample.

    Parameters
    ----------
    junction_counts
        Cells × junctions reads ``k`` (sparse or dense).
    samples
        Sample label of each cell (rows of ``junction_counts``).

    Returns
    -------
    counts
        Samples × junctions summed reads (float64, dense).
    names
        Sample labels, in the row order of ``counts`` (sorted).
    """
    samples = np.asarray(samples).astype(str)
    if samples.shape[0] != junction_counts.shape[0]:
        raise ValueError(f"{samples.shape[0]} sample labels for {junction_counts.shape[0]} cells")
    names, code = np.unique(samples, return_inverse=True)
    onehot = sp.csr_matrix((np.ones(code.size), (code, np.arange(code.size))), shape=(names.size, code.size))
    counts = onehot @ sp.csr_matrix(junction_counts, dtype=np.float64)
    return np.asarray(counts.todense()), names


def atse_totals(counts: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per sample, the reads of each junction's ATSE (sum over the ATSE's junctions), same shape."""
    codes = np.asarray(codes)
    _, inv = np.unique(codes, return_inverse=True)
    onehot = sp.csr_matrix((np.ones(inv.size), (np.arange(inv.size), inv)))
    per_atse = np.asarray(counts) @ onehot  # samples × ATSEs
    return np.asarray(per_atse)[:, inv]


def sample_psi(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Per-sample PSI ``k / n`` (NaN where the sample has no read of the junction's ATSE)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.maximum(totals, 1e-300), np.nan)


# ---------------------------------------------------------------------------- Welch (peer)
@dataclass
class WelchResult:
    """Welch t-test of per-sample PSI, per junction (NaN p-values: untestable, reported as 1)."""

    effect: np.ndarray
    psi1: np.ndarray
    psi2: np.ndarray
    pvalue: np.ndarray
    n1: np.ndarray
    n2: np.ndarray


def welch_test(
    counts: np.ndarray, totals: np.ndarray, group: np.ndarray, min_samples: int = 2
) -> WelchResult:
    """Welch t-test of the per-sample PSI between two groups of samples, per junction.

    Parameters
    ----------
    counts, totals
        Samples × junctions pseudobulk reads and ATSE totals.
    group
        Boolean per sample: True for group 1.
    min_samples
        Samples observing the junction's ATSE needed in each group (else p-value 1).
    """
    psi = sample_psi(counts, totals)
    group = np.asarray(group, dtype=bool)
    out = []
    for sel in (group, ~group):
        x = psi[sel]
        n = np.sum(np.isfinite(x), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (
                np.nanmean(np.where(n > 0, x, 0.0), axis=0) if x.shape[0] else np.full(psi.shape[1], np.nan)
            )
            mean = np.where(n > 0, mean, np.nan)
            var = np.where(n > 1, np.nansum((x - mean) ** 2, axis=0) / np.maximum(n - 1, 1), np.nan)
        out.append((mean, var, n))
    (m1, v1, n1), (m2, v2, n2) = out
    with np.errstate(invalid="ignore", divide="ignore"):
        s1, s2 = v1 / n1, v2 / n2
        se2 = s1 + s2
        df = se2**2 / (s1**2 / np.maximum(n1 - 1, 1) + s2**2 / np.maximum(n2 - 1, 1))
        t = (m1 - m2) / np.sqrt(se2)
        p = 2.0 * stats.t.sf(np.abs(t), df)
    ok = (n1 >= min_samples) & (n2 >= min_samples) & (se2 > 0) & np.isfinite(p)
    return WelchResult(effect=m1 - m2, psi1=m1, psi2=m2, pvalue=np.where(ok, p, 1.0), n1=n1, n2=n2)


# ---------------------------------------------------------------------------- design
def design_matrix(group: np.ndarray, covariates: pd.DataFrame | None = None) -> tuple[np.ndarray, list[str]]:
    """Per-sample design: intercept, group indicator (group 1 = 1), then the covariates.

    Numeric covariates are centred and scaled; others are one-hot coded (first level dropped).

    Raises
    ------
    ValueError
        When the design is not of full rank (a covariate confounded with the group or with another)
        or leaves no residual degree of freedom.
    """
    group = np.asarray(group, dtype=float)
    cols = [np.ones_like(group), group]
    names = ["intercept", "group"]
    if covariates is not None and covariates.shape[1]:
        for col in covariates.columns:
            v = covariates[col]
            if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
                x = v.to_numpy(dtype=float)
                if not np.isfinite(x).all():
                    raise ValueError(
                        f"covariate {col!r} has missing or infinite values; give one value per sample"
                    )
                sd = x.std()
                cols.append((x - x.mean()) / (sd if sd > 0 else 1.0))
                names.append(str(col))
            else:
                levels = pd.Categorical(v.astype(str))
                for level in levels.categories[1:]:
                    cols.append((levels == level).astype(float))
                    names.append(f"{col}[{level}]")
    x = np.column_stack(cols)
    rank = np.linalg.matrix_rank(x)
    if rank < x.shape[1]:
        raise ValueError(
            f"the per-sample design ({', '.join(names)}) is not of full rank over {x.shape[0]} samples: "
            "a covariate is constant, confounded with the groups or with another covariate; "
            "drop it or add samples"
        )
    if x.shape[0] <= x.shape[1]:
        raise ValueError(
            f"{x.shape[0]} samples for {x.shape[1]} design terms ({', '.join(names)}): no residual "
            "degree of freedom to estimate sample-to-sample variation; drop covariates or add samples"
        )
    return x, names


# ---------------------------------------------------------------------------- DM GLM
@dataclass
class DMTestResult:
    """Per-ATSE result of :func:`dm_glm_test` (arrays over ATSEs, in the order of ``atse``).

    Attributes
    ----------
    atse
        ATSE code of each row.
    lr
        Likelihood-ratio statistic of the group term (2 × log-likelihood difference).
    df
        Its degrees of freedom (junctions with reads − 1); 0 when untestable.
    dispersion
        Moderated quasi-likelihood dispersion (≈ 1 when the DM concentration fits).
    df_residual
        Residual degrees of freedom of the F reference (prior + own).
    log_pvalue
        Natural log of the p-value (0: untestable).
    concentration
        The DM concentration used (shrunk).
    concentration_mle
        Its per-ATSE maximum-likelihood estimate under the full model.
    testable
        Whether the ATSE was tested.
    """

    atse: np.ndarray
    lr: np.ndarray
    df: np.ndarray
    dispersion: np.ndarray
    df_residual: np.ndarray
    log_pvalue: np.ndarray
    concentration: np.ndarray
    concentration_mle: np.ndarray
    testable: np.ndarray

    @property
    def pvalue(self) -> np.ndarray:
        """P-values (1 where untestable)."""
        return np.exp(self.log_pvalue)


def _buckets(sizes: np.ndarray) -> list[np.ndarray]:
    """ATSEs grouped by size (2, 3, 4, 5–8, 9–16, ...), so padding wastes little."""
    edges = [2, 3, 4, 5, 9, 17, 33, 65, 129, 257, np.inf]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = np.nonzero((sizes >= lo) & (sizes < hi))[0]
        if sel.size:
            out.append(sel)
    return out


def _dm_objective(theta, y, mask, x, log_conc, ridge):
    """Negative penalised DM log-likelihood of one ATSE (torch, for ``torch.func``).

    ``theta`` holds the coefficients (design terms × (junctions − 1), junction 0 the reference) and,
    when ``log_conc`` is None, the log concentration last.
    """
    import torch

    n_terms = x.shape[1]
    n_j = mask.shape[0]
    n_coef = n_terms * (n_j - 1)
    beta = theta[:n_coef].reshape(n_terms, n_j - 1)
    lc = theta[n_coef] if log_conc is None else log_conc
    eta = torch.cat([torch.zeros(x.shape[0], 1, dtype=theta.dtype), x @ beta], dim=1)
    eta = torch.where(mask, eta, torch.full_like(eta, -40.0))
    logp = torch.log_softmax(eta, dim=1)
    conc = torch.exp(lc)
    a = torch.where(mask, conc * torch.exp(logp), torch.ones_like(eta))
    n = y.sum(dim=1)
    ll = torch.lgamma(conc) - torch.lgamma(n + conc)
    ll = ll + torch.where(mask, torch.lgamma(y + a) - torch.lgamma(a), torch.zeros_like(a)).sum(dim=1)
    return -ll.sum() + ridge * (beta**2).sum()


def _dm_derivatives(theta, y, mask, x, log_conc, ridge):
    """Objective, gradient and Hessian of :func:`_dm_objective` for every ATSE of a bucket (analytic).

    With ``α = c p`` (``p`` the softmax of the linear predictor ``η``), ``g = ψ(y + α) − ψ(α)``,
    ``h = ψ'(y + α) − ψ'(α)`` and ``ḡ = Σ p g``, the log-likelihood of a sample has
    ``∂ℓ/∂η_k = G_k = c p_k (g_k − ḡ)`` and
    ``∂²ℓ/∂η∂η = diag(G + b) − G pᵀ − p Gᵀ − b pᵀ − p bᵀ + c² S₂ p pᵀ`` with ``b = c² p² h``,
    ``S₂ = Σ p² h``; for the log concentration ``∂ℓ/∂log c = c (ψ(c) − ψ(n + c) + ḡ)``, its second
    derivative ``∂ℓ/∂log c + c² (ψ'(c) − ψ'(n + c) + S₂)`` and the cross term ``G + b − c² S₂ p``.
    Everything is batched over ATSEs (no per-ATSE Python loop).
    """
    import torch

    n_e, n_s, n_j = y.shape
    n_terms = x.shape[1]
    n_coef = n_terms * (n_j - 1)
    free = log_conc is None
    beta = theta[:, :n_coef].reshape(n_e, n_terms, n_j - 1)
    lc = theta[:, n_coef] if free else log_conc
    c = torch.exp(lc)[:, None, None]  # E × 1 × 1
    eta = torch.einsum("sp,epj->esj", x, beta)
    eta = torch.cat([torch.zeros(n_e, n_s, 1, dtype=y.dtype), eta], dim=2)
    m = mask[:, None, :]
    eta = torch.where(m, eta, torch.full_like(eta, -1e4))
    p = torch.softmax(eta, dim=2) * m
    a = torch.where(m, c * p, torch.ones_like(p))
    n = y.sum(dim=2)  # E × S
    cc = c[:, :, 0]
    ll = (torch.lgamma(cc) - torch.lgamma(n + cc)) + torch.where(
        m, torch.lgamma(y + a) - torch.lgamma(a), torch.zeros_like(a)
    ).sum(dim=2)
    obj = -ll.sum(dim=1) + ridge * (beta**2).sum(dim=(1, 2))
    g = torch.where(m, torch.digamma(y + a) - torch.digamma(a), torch.zeros_like(a))
    h = torch.where(m, torch.polygamma(1, y + a) - torch.polygamma(1, a), torch.zeros_like(a))
    gbar = (p * g).sum(dim=2, keepdim=True)
    big_g = c * p * (g - gbar)  # E × S × J
    b = c**2 * p**2 * h
    s2 = (p**2 * h).sum(dim=2, keepdim=True)
    # Hessian of ℓ in η per sample: E × S × J × J
    h_eta = (
        torch.diag_embed(big_g + b)
        - big_g[..., :, None] * p[..., None, :]
        - p[..., :, None] * big_g[..., None, :]
        - b[..., :, None] * p[..., None, :]
        - p[..., :, None] * b[..., None, :]
        + (c**2 * s2)[..., None] * p[..., :, None] * p[..., None, :]
    )
    grad_beta = torch.einsum("sp,esk->epk", x, big_g[:, :, 1:]).reshape(n_e, n_coef)
    hess_beta = torch.einsum("sp,sq,eskm->epkqm", x, x, h_eta[:, :, 1:, 1:]).reshape(n_e, n_coef, n_coef)
    grad = -grad_beta + 2 * ridge * beta.reshape(n_e, n_coef)
    hess = -hess_beta + 2 * ridge * torch.eye(n_coef, dtype=y.dtype)
    if free:
        dig = torch.digamma(cc) - torch.digamma(n + cc)
        tri = torch.polygamma(1, cc) - torch.polygamma(1, n + cc)
        has = (n > 0).to(y.dtype)
        d_lc = cc * (dig + gbar[..., 0]) * has  # E × S
        dd_lc = (d_lc + cc**2 * (tri + s2[..., 0]) * has).sum(dim=1)
        cross = big_g + b - c**2 * s2 * p  # E × S × J
        cross_beta = torch.einsum("sp,esk->epk", x, cross[:, :, 1:]).reshape(n_e, n_coef)
        grad = torch.cat([grad, -d_lc.sum(dim=1, keepdim=True)], dim=1)
        top = torch.cat([hess, -cross_beta[:, :, None]], dim=2)
        bottom = torch.cat([-cross_beta[:, None, :], -dd_lc[:, None, None]], dim=2)
        hess = torch.cat([top, bottom], dim=1)
    return obj, grad, hess


def _newton(y, mask, x, theta, log_conc, ridge, max_iter=80, tol=1e-4):
    """Damped Newton (Levenberg–Marquardt) per ATSE, all ATSEs of a bucket at once."""
    import torch

    obj, _, _ = _dm_derivatives(theta, y, mask, x, log_conc, ridge)
    lam = torch.full((theta.shape[0],), 1e-6, dtype=theta.dtype)
    active = torch.ones(theta.shape[0], dtype=torch.bool)
    for _ in range(max_iter):
        idx = torch.nonzero(active).squeeze(1)
        if idx.numel() == 0:
            break
        lcs = None if log_conc is None else log_conc[idx]
        th, yy, mm = theta[idx], y[idx], mask[idx]
        _, g, h = _dm_derivatives(th, yy, mm, x, lcs, ridge)
        # Saddle-free Newton: the DM likelihood is not concave jointly in the coefficients and the
        # concentration, so the Hessian's eigenvalues are taken in absolute value (always a descent
        # direction), damped Levenberg–Marquardt style where a step fails.
        evals, evecs = torch.linalg.eigh(h)
        top = evals.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
        evals = evals.abs().clamp_min(1e-8 * top) + lam[idx, None] * top
        step = evecs @ ((evecs.transpose(1, 2) @ g[:, :, None]) / evals[:, :, None])
        step = step[:, :, 0]
        step = torch.where(torch.isfinite(step), step, -g * 1e-3)
        new = th - step
        if log_conc is None:  # keep the concentration in bounds
            new[:, -1] = new[:, -1].clamp(*LOG_CONC_BOUNDS)
        new_obj, _, _ = _dm_derivatives(new, yy, mm, x, lcs, ridge)
        better = torch.isfinite(new_obj) & (new_obj <= obj[idx] + 1e-12)
        gain = (obj[idx] - new_obj).abs()
        theta[idx] = torch.where(better[:, None], new, th)
        obj[idx] = torch.where(better, new_obj, obj[idx])
        lam[idx] = torch.where(better, (lam[idx] / 10).clamp_min(1e-10), lam[idx] * 10)
        if log_conc is None:
            # a concentration at its bound that pushes outwards is done (e.g. no overdispersion: c → ∞)
            lc_now = theta[idx, -1]
            outward = ((lc_now >= LOG_CONC_BOUNDS[1] - 1e-9) & (g[:, -1] < 0)) | (
                (lc_now <= LOG_CONC_BOUNDS[0] + 1e-9) & (g[:, -1] > 0)
            )
            g = torch.cat(
                [g[:, :-1], torch.where(outward, torch.zeros_like(g[:, -1]), g[:, -1])[:, None]], dim=1
            )
        converged = (better & (gain < tol)) | (lam[idx] > 1e4) | (g.abs().amax(dim=1) < tol)
        active[idx] = ~converged
    return theta, obj


def _fit_bucket(y, mask, x_full, x_null, log_conc_fixed=None, theta_full=None):
    """Full-model fit (concentration free or fixed) of one bucket; returns parameters and objective."""
    import torch

    n_terms = x_full.shape[1]
    n_j = mask.shape[1]
    if theta_full is None:
        # start at the pooled proportions, no group effect, moderate concentration
        tot = y.sum(dim=1) + 0.5
        logit0 = torch.log(tot[:, 1:]) - torch.log(tot[:, :1])
        beta = torch.zeros(y.shape[0], n_terms, n_j - 1, dtype=y.dtype)
        beta[:, 0, :] = torch.where(mask[:, 1:], logit0, torch.zeros_like(logit0))
        theta_full = beta.reshape(y.shape[0], -1)
        if log_conc_fixed is None:
            theta_full = torch.cat(
                [theta_full, torch.full((y.shape[0], 1), np.log(20.0), dtype=y.dtype)], dim=1
            )
    return _newton(y, mask, x_full, theta_full.clone(), log_conc_fixed, RIDGE)


def _fitted_psi(theta, mask, x):
    """Fitted proportions (ATSEs × samples × junctions) from coefficients (no concentration entry)."""
    import torch

    n_terms = x.shape[1]
    n_j = mask.shape[1]
    beta = theta[:, : n_terms * (n_j - 1)].reshape(-1, n_terms, n_j - 1)
    eta = torch.einsum("sp,epj->esj", x, beta)
    eta = torch.cat([torch.zeros(eta.shape[0], eta.shape[1], 1, dtype=eta.dtype), eta], dim=2)
    eta = torch.where(mask[:, None, :], eta, torch.full_like(eta, -40.0))
    return torch.softmax(eta, dim=2)


def trigamma_inverse(x: np.ndarray) -> np.ndarray:
    """Inverse of the trigamma function (Newton's method, as limma's ``trigammaInverse``)."""
    x = np.asarray(x, dtype=float)
    y = np.where(
        x > 1e7,
        1.0 / np.sqrt(np.maximum(x, 1e-300)),
        np.where(x < 1e-6, 1.0 / np.maximum(x, 1e-300), 0.5 + 1.0 / np.maximum(x, 1e-300)),
    )
    for _ in range(50):
        tri = special.polygamma(1, y)
        dif = tri * (1.0 - tri / x) / special.polygamma(2, y)
        y = y + dif
        if np.all(np.abs(dif) / y < 1e-8):
            break
    return y


def squeeze_variances(s2: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Empirical-Bayes moderation of variances (limma's ``squeezeVar`` / ``fitFDist``, moment fit).

    Fits a scaled inverse-chi-square prior (``s0²``, ``d0``) to variances ``s2`` with ``df`` degrees
    of freedom and returns the posterior variances ``(d0 s0² + df s2) / (d0 + df)``, ``s0²`` and
    ``d0`` (``inf`` when the variances vary no more than sampling explains).
    """
    s2 = np.maximum(np.asarray(s2, dtype=float), 1e-8)
    df = np.asarray(df, dtype=float)
    if s2.size < 3:
        return s2, float(np.mean(s2)) if s2.size else 1.0, 0.0
    z = np.log(s2)
    e = z - special.digamma(df / 2) + np.log(df / 2)
    emean = e.mean()
    evar = np.sum((e - emean) ** 2) / (e.size - 1) - np.mean(special.polygamma(1, df / 2))
    if evar > 0:
        d0 = float(2.0 * trigamma_inverse(np.array([evar]))[0])
        s0 = float(np.exp(emean + special.digamma(d0 / 2) - np.log(d0 / 2)))
        post = (d0 * s0 + df * s2) / (d0 + df)
    else:
        d0 = np.inf
        s0 = float(np.exp(emean))
        post = np.full_like(s2, s0)
    return post, s0, d0


def _shrink_log_conc(log_mle: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Normal empirical-Bayes shrinkage of per-ATSE log concentrations towards their median."""
    centre = float(np.median(log_mle))
    mad = float(np.median(np.abs(log_mle - centre))) * 1.4826
    var = np.where(np.isfinite(var) & (var > 0), var, np.inf)
    finite = np.isfinite(var)
    sampling = float(np.median(var[finite])) if finite.any() else 0.0
    tau2 = max(mad**2 - sampling, 0.05)  # prior spread of the true log concentrations
    w = (1.0 / var) / (1.0 / var + 1.0 / tau2)
    return np.clip(w * log_mle + (1 - w) * centre, *LOG_CONC_BOUNDS)


def dm_glm_test(
    counts: np.ndarray,
    codes: np.ndarray,
    group: np.ndarray,
    covariates: pd.DataFrame | None = None,
    min_observed_samples: int = MIN_OBSERVED_SAMPLES,
    quasi: bool = True,
    prior_df_max: float = PRIOR_DF_MAX,
) -> DMTestResult:
    """Per-ATSE Dirichlet-multinomial GLM likelihood-ratio test of a group term over samples.

    Parameters
    ----------
    counts
        Samples × junctions pseudobulk reads (:func:`pseudobulk`).
    codes
        ATSE code of each junction.
    group
        Boolean per sample: True for group 1.
    covariates
        Per-sample covariates (rows in the order of ``counts``), added to both models.
    min_observed_samples
        An ATSE is tested when at least this many samples of each group have reads of it (and at
        least two of its junctions have reads).
    quasi
        Calibrate the likelihood ratio by the moderated quasi-likelihood dispersion (F-test; see the
        module docstring). False: the plain χ² DM likelihood-ratio test at the shrunk concentration.
    prior_df_max
        Cap of the prior degrees of freedom of the moderated dispersion in the F reference (the
        prior is itself estimated, and ATSEs differ in sample-to-sample variation beyond what few
        samples reveal; a finite cap gives the F reference a heavier tail). ``inf``: no cap.

    Returns
    -------
    DMTestResult
        One row per ATSE (sorted codes).
    """
    import torch

    counts = np.asarray(counts, dtype=np.float64)
    codes = np.asarray(codes)
    group = np.asarray(group, dtype=bool)
    x_full_np, _ = design_matrix(group, covariates)
    x_null_np = np.delete(x_full_np, 1, axis=1)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_codes))[0] + 1]
    ends = np.r_[starts[1:], order.size]
    atse = sorted_codes[starts]
    n_atse = atse.size
    total_reads = counts.sum(axis=0)
    # Junctions with reads in the compared samples, per ATSE (those without reads carry no information).
    members = [order[s:e][total_reads[order[s:e]] > 0] for s, e in zip(starts, ends, strict=True)]
    sizes = np.array([m.size for m in members])
    n_per_sample = np.stack(
        [counts[:, m].sum(axis=1) if m.size else np.zeros(counts.shape[0]) for m in members], 1
    )
    obs1 = (n_per_sample[group] > 0).sum(axis=0)
    obs2 = (n_per_sample[~group] > 0).sum(axis=0)
    s_obs = obs1 + obs2
    testable = (
        (sizes >= 2)
        & (obs1 >= min_observed_samples)
        & (obs2 >= min_observed_samples)
        & (s_obs > x_full_np.shape[1])
    )
    lr = np.zeros(n_atse)
    df = np.zeros(n_atse)
    pearson = np.full(n_atse, np.nan)
    conc_mle = np.full(n_atse, np.nan)
    conc_var = np.full(n_atse, np.nan)
    conc_used = np.full(n_atse, np.nan)
    dtype = torch.float64
    x_full = torch.as_tensor(x_full_np, dtype=dtype)
    x_null = torch.as_tensor(x_null_np, dtype=dtype)
    tested = np.nonzero(testable)[0]
    buckets = [tested[b] for b in _buckets(sizes[tested])]
    fits = []
    for b in buckets:
        width = int(sizes[b].max())
        idx = np.zeros((b.size, width), dtype=np.int64)
        msk = np.zeros((b.size, width), dtype=bool)
        for r, a in enumerate(b):
            idx[r, : sizes[a]] = members[a]
            msk[r, : sizes[a]] = True
        y = torch.as_tensor(np.transpose(counts[:, idx], (1, 0, 2)) * msk[:, None, :], dtype=dtype)
        mask = torch.as_tensor(msk)
        theta, _ = _fit_bucket(y, mask, x_full, x_null)
        lc = theta[:, -1].numpy().copy()
        # sampling variance of the log concentration: inverse of its observed information
        _, _, h = _dm_derivatives(theta, y, mask, x_full, None, RIDGE)
        h = h + 1e-9 * torch.eye(h.shape[1], dtype=dtype)
        try:
            cov = torch.linalg.inv(h)
            v = torch.diagonal(cov, dim1=1, dim2=2)[:, -1].numpy()
        except RuntimeError:
            v = np.full(b.size, np.inf)
        at_bound = (lc <= LOG_CONC_BOUNDS[0] + 1e-6) | (lc >= LOG_CONC_BOUNDS[1] - 1e-6)
        conc_mle[b] = lc
        conc_var[b] = np.where(at_bound | ~np.isfinite(v) | (v <= 0), np.inf, v)
        fits.append((b, y, mask, theta))
    df_res = np.where(testable, (s_obs - x_full_np.shape[1]) * np.maximum(sizes - 1, 0), 0).astype(float)
    if tested.size:
        # A log concentration estimated from few samples varies at least as a log variance with the
        # residual degrees of freedom does (trigamma(d / 2)); the curvature alone understates it, and
        # a concentration that is high by chance (samples close within groups) inflates the LR.
        floor = special.polygamma(1, np.maximum(df_res[tested], 0.5) / 2)
        conc_used[tested] = _shrink_log_conc(conc_mle[tested], np.maximum(conc_var[tested], floor))
    for b, y, mask, theta in fits:
        lcf = torch.as_tensor(conc_used[b], dtype=dtype)
        theta_full, obj_full = _newton(y, mask, x_full, theta[:, :-1].clone(), lcf, RIDGE)
        n_j = mask.shape[1]
        n_null = x_null.shape[1] * (n_j - 1)
        # null start: the full fit without its group row
        beta = theta_full.reshape(b.size, x_full.shape[1], n_j - 1)
        theta_null = torch.cat([beta[:, :1], beta[:, 2:]], dim=1).reshape(b.size, n_null).clone()
        theta_null, obj_null = _newton(y, mask, x_null, theta_null, lcf, RIDGE)
        lr[b] = np.maximum(2.0 * (obj_null - obj_full).numpy(), 0.0)
        df[b] = sizes[b] - 1
        # Pearson statistic of the full model under the DM variance n p (1 - p) (n + c) / (1 + c)
        p = _fitted_psi(theta_full, mask, x_full).numpy()
        yy = y.numpy()
        n = yy.sum(axis=2, keepdims=True)
        conc = np.exp(conc_used[b])[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            resid = np.where(
                mask.numpy()[:, None, :] & (n > 0),
                (yy - n * p) ** 2 / np.maximum(n * p, 1e-12) * (1 + conc) / (n + conc),
                0.0,
            )
        pearson[b] = resid.sum(axis=(1, 2))
    log_p = np.zeros(n_atse)
    disp = np.ones(n_atse)
    df2 = np.full(n_atse, np.inf)
    if tested.size:
        if quasi:
            s2 = pearson[tested] / df_res[tested]
            post, _, d0 = squeeze_variances(s2, df_res[tested])
            disp[tested] = post
            df2[tested] = np.minimum(min(d0, prior_df_max) + df_res[tested], 1e6)
            fstat = lr[tested] / (df[tested] * post)
            log_p[tested] = stats.f.logsf(fstat, df[tested], df2[tested])
        else:
            log_p[tested] = stats.chi2.logsf(lr[tested], df[tested])
    # NaN (no evidence) → 1; an underflowed tail → a very small p-value that still sorts first
    log_p = np.where(np.isnan(log_p), 0.0, np.minimum(np.maximum(log_p, -1e4), 0.0))
    return DMTestResult(
        atse=atse,
        lr=lr,
        df=df,
        dispersion=disp,
        df_residual=df2,
        log_pvalue=log_p,
        concentration=np.exp(conc_used),
        concentration_mle=np.exp(conc_mle),
        testable=testable,
    )


# ---------------------------------------------------------------------------- junctions of called ATSEs
def junction_tests(
    counts: np.ndarray,
    codes: np.ndarray,
    group: np.ndarray,
    covariates: pd.DataFrame | None = None,
    min_observed_samples: int = MIN_OBSERVED_SAMPLES,
    atse_result: DMTestResult | None = None,
) -> np.ndarray:
    """Per junction, the beta-binomial (two-column DM) GLM test of its reads against the rest of its ATSE.

    The same test as :func:`dm_glm_test` (concentration shrunk across junctions, quasi-likelihood
    F calibration) on ``[k, n − k]`` per sample. A junction of a two-junction ATSE has the same
    data as its ATSE: with ``atse_result`` given, it takes the ATSE's p-value instead of a second
    fit. Returns the log p-value of each junction (0: untestable).
    """
    counts = np.asarray(counts, dtype=np.float64)
    codes = np.asarray(codes)
    totals = atse_totals(counts, codes)
    log_p = np.zeros(counts.shape[1])
    own = np.ones(counts.shape[1], dtype=bool)
    if atse_result is not None:
        _, inv, size = np.unique(codes, return_inverse=True, return_counts=True)
        pair = size[inv] == 2
        log_p[pair] = atse_result.log_pvalue[np.searchsorted(atse_result.atse, codes[pair])]
        own = ~pair
    cols = np.nonzero(own)[0]
    if cols.size:
        pairs = np.empty((counts.shape[0], 2 * cols.size))
        pairs[:, 0::2] = counts[:, cols]
        pairs[:, 1::2] = totals[:, cols] - counts[:, cols]
        res = dm_glm_test(
            pairs,
            np.repeat(np.arange(cols.size), 2),
            group,
            covariates=covariates,
            min_observed_samples=min_observed_samples,
        )
        log_p[cols] = res.log_pvalue  # res.atse is 0..len(cols)-1 in order
    return log_p


def stagewise_confirmation(
    log_p_atse: np.ndarray, atse: np.ndarray, log_p_junction: np.ndarray, codes: np.ndarray, fdr_target: float
) -> tuple[np.ndarray, np.ndarray]:
    """Stage-wise testing (screen ATSEs, confirm junctions; Van den Berge et al. 2017, stageR's idea).

    Screening: Benjamini–Hochberg over ATSEs at ``fdr_target`` (R of m ATSEs pass). Confirmation:
    within a passing ATSE, the junction p-values are adjusted by Holm's step-down with Shaffer's
    first step (a changed ATSE changes at least two junctions, as PSIs sum to one: multipliers
    J−1, J−1, J−2, ..., 1) and compared with ``fdr_target · R / m``. This controls the FDR of
    the called ATSEs and, within them, the errors of the called junctions, so a junction is not
    called only because its ATSE changed.

    Returns
    -------
    confirmed
        Per junction: in a screened ATSE and confirmed.
    adjusted
        Per junction: its Holm–Shaffer adjusted p-value within its ATSE (1 outside screened ATSEs).
    """
    from .differential import bh_qvalues

    q = bh_qvalues(log_p_atse)
    screened_atse = q <= fdr_target
    n_pass = int(screened_atse.sum())
    m = int(np.sum(log_p_atse < 0)) or 1
    level = fdr_target * n_pass / m
    row = np.searchsorted(atse, codes)
    screened = screened_atse[row]
    adjusted = np.ones(codes.size)
    p = np.exp(log_p_junction)
    order = np.lexsort((p, codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_codes))[0] + 1]
    sizes = np.diff(np.r_[starts, order.size])
    rank = np.arange(order.size) - np.repeat(starts, sizes)  # 0-based rank within the ATSE
    size = np.repeat(sizes, sizes)
    mult = np.where(rank == 0, np.maximum(size - 1, 1), size - rank)
    adj = np.minimum(p[order] * mult, 1.0)
    seg = np.repeat(np.arange(starts.size), sizes)
    # step-down: running maximum within each ATSE (offsets keep the segments apart; adj ≤ 1)
    adj = np.maximum.accumulate(adj + 2.0 * seg) - 2.0 * seg
    adjusted[order] = adj
    adjusted = np.where(screened, adjusted, 1.0)
    return screened & (adjusted <= level), adjusted
