"""Does a grain need more than a dipole? A Wald test of its higher-order coefficients.

Under the hypothesis that a grain's quadrupole (and octupole) coefficients h are zero, with
Gaussian noise h ~ N(0, C_h), C_h their covariance block, the statistic χ² = hᵀ C_h⁻¹ h follows
a chi-square distribution with k − 3 degrees of freedom. A grain's higher orders are
"resolved" when the p-value P(χ²_(k−3) ≥ χ²) is below ``ALPHA`` (5 %): then its field is
distinguishable from a dipole's at that level. About ALPHA of grains that are truly dipoles
will be flagged by chance. An unresolved grain (infinite variances) has neither χ² nor p-value
(NaN): its data say nothing of its higher orders, not "no evidence of them" (p = 1); it is never
flagged.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 0.05


def higher_order_test(coefficients: np.ndarray, covariance: np.ndarray,
                      alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """χ² (G,), p-value (G,) and resolved (G,) bool for coefficients (G, k), covariance
    (G, k, k), k > 3 (the first three the dipole); χ² and p NaN for an unresolved grain."""
    h = np.asarray(coefficients, dtype=float)[:, 3:]
    c = np.asarray(covariance, dtype=float)[:, 3:, 3:]
    G, k = h.shape
    chi2 = np.full(G, np.nan)
    dof = np.full(G, k)
    ok = np.all(np.isfinite(c), axis=(1, 2)) & np.all(np.isfinite(h), axis=1)
    for g in np.flatnonzero(ok):
        # eigen-decomposition: a covariance singular to working precision contributes only
        # its determined directions (and their number to the degrees of freedom)
        lam, vec = np.linalg.eigh(c[g])
        keep = lam > lam.max(initial=0.0) * 1e-12
        proj = vec[:, keep].T @ h[g]
        chi2[g] = float(np.sum(proj**2 / lam[keep]))
        dof[g] = int(np.sum(keep))
    p = np.where(ok, stats.chi2.sf(np.nan_to_num(chi2), np.maximum(dof, 1)), np.nan)
    return chi2, p, ok & (np.nan_to_num(p, nan=1.0) < alpha)
