"""Does a grain need more than a dipole? A Wald test of its higher-order coefficients.

Under the hypothesis that a grain's quadrupole (and octupole) coefficients h are zero, with
Gaussian noise h ~ N(0, C_h), C_h their covariance block, the statistic χ² = hᵀ C_h⁻¹ h follows
a chi-square distribution with k − 3 degrees of freedom. A grain's higher orders are
"resolved" when the p-value P(χ²_(k−3) ≥ χ²) is below ``ALPHA`` (5 %): then its field is
distinguishable from a dipole's at that level. About ALPHA of grains that are truly dipoles
will be flagged by chance. An unresolved grain (infinite variances) has neither χ² nor p-value
(NaN): its data say nothing of its higher orders, not "no evidence of them" (p = 1); it is never
flagged.

Where σ was estimated from the residual of the fit itself (one scan, σ not given), the χ² holds
σ̂² for σ²: χ²/(k − 3) then follows F(k − 3, ν), ν the residual's degrees of freedom (N − rank),
and the p-value is taken from it; χ² against χ²(k − 3) would flag dipoles above ALPHA where ν is
small (4 point dipoles fitted as octupoles on 121 pixels, ν = 61: 7.3 % of 2,000 tests against
4.9 % by F). Several scans with σ estimated are tested against χ², their σ being iterated
estimates of pooled variance components.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 0.05


def higher_order_test(coefficients: np.ndarray, covariance: np.ndarray,
                      alpha: float = ALPHA, residual_dof: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """χ² (G,), p-value (G,) and resolved (G,) bool for coefficients (G, k), covariance
    (G, k, k), k > 3 (the first three the dipole); χ² and p NaN for an unresolved grain.
    `residual_dof`: where the covariance's σ is the residual's own estimate, its degrees of
    freedom ν, and the p-value is that of χ²/q against F(q, ν); None: against χ²(q)."""
    h = np.asarray(coefficients, dtype=float)[:, 3:]
    c = np.asarray(covariance, dtype=float)[:, 3:, 3:]
    G, k = h.shape
    chi2 = np.full(G, np.nan)
    dof = np.full(G, k)
    ok = np.all(np.isfinite(c), axis=(1, 2)) & np.all(np.isfinite(h), axis=1)
    for g in np.flatnonzero(ok):
        # eigen-decomposition of the correlation matrix: a covariance singular to working
        # precision contributes only its determined directions (and their number to the
        # degrees of freedom). Not of the covariance itself: a quadrupole's coefficients (A m³)
        # and an octupole's (A m⁴) differ in scale by some 1e5 at µm sizes, their variances by
        # 1e10 and more, and a cut relative to the largest eigenvalue dropped octupole
        # directions that were well determined (a pure dipole fitted as an octupole: χ² with
        # 6 to 7 degrees of freedom, not 12, and an octupole unseen by the test)
        sd = np.sqrt(np.diagonal(c[g]))
        scale = np.where(sd > 0, sd, 1.0)
        lam, vec = np.linalg.eigh(c[g] / np.outer(scale, scale))
        keep = lam > lam.max(initial=0.0) * 1e-12
        proj = vec[:, keep].T @ (h[g] / scale)
        chi2[g] = float(np.sum(proj**2 / lam[keep]))
        dof[g] = int(np.sum(keep))
    q = np.maximum(dof, 1)
    if residual_dof is None:
        tail = stats.chi2.sf(np.nan_to_num(chi2), q)
    else:
        tail = stats.f.sf(np.nan_to_num(chi2) / q, q, residual_dof)
    p = np.where(ok, tail, np.nan)
    return chi2, p, ok & (np.nan_to_num(p, nan=1.0) < alpha)
