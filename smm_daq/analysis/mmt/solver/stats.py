"""Per-grain statistics of seed 001: the uncertainty ratio (eq. 12), the signal strength ratio
(eq. 13), and declination and inclination with linearised uncertainties."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

CHI2_1_95 = 3.841458820694124  # 0.95 quantile of chi-square with 1 degree of freedom
CHI2_3_95 = 7.814727903251178  # ... with 3 degrees of freedom


def _octant_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions ω² components (N, 3) and weights (N,) summing to 1 for the average over
    the unit sphere of a function of (ω_x², ω_y², ω_z²): Gauss–Legendre in cos θ and φ over
    one octant (the function is even in every component)."""
    t, wt = np.polynomial.legendre.leggauss(n)
    c = 0.5 * (t + 1.0)  # cos θ in (0, 1)
    phi = 0.25 * math.pi * (t + 1.0)  # φ in (0, π/2)
    C, P = np.meshgrid(c, phi, indexing="ij")
    W = np.outer(wt, wt) * 0.5 * (0.25 * math.pi) / (0.5 * math.pi)
    s2 = 1.0 - C**2
    omega2 = np.stack([s2 * np.cos(P) ** 2, s2 * np.sin(P) ** 2, C**2], axis=-1)
    return omega2.reshape(-1, 3), W.reshape(-1)


_OMEGA2, _OMEGA_W = _octant_rule(24)


# A coarse rule (8 × 8: its root lies within 3e-5 of the fine rule's) brings Halley's iteration
# close for a ninth of the fine rule's cost; one step on the fine rule then lands within
# ~1.1 e³ of its root from e away (measured over eigenvalue ratios 1 to 1e-12), so a step
# below 3e-5 x leaves it within 1e-13 (the fine rule itself is within 2e-11 of the exact
# quantile): one fine evaluation per grain instead of the five to six of a Newton iteration
# from the bracket's middle.
_COARSE2, _COARSE_W = _octant_rule(8)
_FINE_TOL = 3e-5
_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_Z_95 = 1.6448536269514722  # 0.95 quantile of the standard normal
# beyond t = 80, 1 − F₃(t) < 4e-17 and p₃(t) < 3e-17: a node there adds its weight to the CDF
_T_NEGLIGIBLE = 80.0


def _quantiles(lam: np.ndarray, fine2: np.ndarray, fine_w: np.ndarray, coarse2: np.ndarray,
               coarse_w: np.ndarray) -> np.ndarray:
    """0.95 quantiles of Σ λ_k Z_k² for rows of λ (G, 3) with largest 1.

    With Z = ρ ω (ρ² ~ chi-square(3), ω uniform on the sphere, independent),
    Σ λ_k Z_k² = ρ² g(ω), g = Σ λ_k ω_k², so P(Σ λ_k Z_k² ≤ x) = mean over ω of F₃(x / g(ω)):
    an exact representation whose smooth integrand the rules (ω², w) of `_octant_rule`
    integrate (the fine one to ~1e-11); its x-derivatives take p₃(t)/g and p₃(t) (1/(2t) −
    1/2)/g². Halley's iteration, safeguarded by the bracket [χ²₁, χ²₃] (λ_max Z_1² ≤ Q ≤
    λ_max Σ Z²), starts from the Welch–Satterthwaite scaled chi-square (its quantile by
    Wilson–Hilferty), coarse rule first."""
    out = np.empty(lam.shape[0])
    for i in range(lam.shape[0]):
        l0, l1, l2 = lam[i, 0], lam[i, 1], lam[i, 2]
        s1 = l0 + l1 + l2
        s2 = l0 * l0 + l1 * l1 + l2 * l2
        a = 2.0 * s2 / (9.0 * s1 * s1)
        x = min(max(s1 * (1.0 - a + _Z_95 * math.sqrt(a)) ** 3, CHI2_1_95), CHI2_3_95)
        for stage in range(2):
            omega2, w = (coarse2, coarse_w) if stage == 0 else (fine2, fine_w)
            tol = 1e-9 if stage == 0 else _FINE_TOL
            lo, hi = CHI2_1_95, CHI2_3_95
            for _ in range(100):
                f = d1 = d2 = 0.0
                for k in range(w.shape[0]):
                    g = l0 * omega2[k, 0] + l1 * omega2[k, 1] + l2 * omega2[k, 2]
                    if g * _T_NEGLIGIBLE > x:
                        t = x / g
                        rt = math.sqrt(t)
                        e = math.exp(-0.5 * t)
                        f += w[k] * (math.erf(rt * _SQRT_HALF) - _SQRT_2_PI * rt * e)
                        p = w[k] * (0.5 * _SQRT_2_PI) * rt * e / g
                        d1 += p
                        d2 += p * (0.5 / t - 0.5) / g
                    else:
                        f += w[k]
                f -= 0.95
                if f == 0.0:
                    break
                if f < 0.0:
                    lo = x
                else:
                    hi = x
                new = x - 2.0 * f * d1 / (2.0 * d1 * d1 - f * d2)
                if not lo < new < hi:
                    new = 0.5 * (lo + hi)
                done = abs(new - x) <= tol * new
                x = new
                if done:
                    break
        out[i] = x
    return out


@functools.cache
def _quantile_kernel() -> Callable[..., np.ndarray]:
    """`_quantiles` compiled by numba, imported on first use: the command line imports the
    analysis lazily, and numba takes longer to import than the rest together."""
    from numba import njit

    return njit(cache=True, error_model="numpy")(_quantiles)


def sphere_radius_95(cov: np.ndarray) -> np.ndarray:
    """Radius of the sphere about the mean holding 95 % of N(0, cov), for covariances
    (..., 3, 3): the square root of the 0.95 quantile of Σ λ_k χ²₁ (λ the eigenvalues), from
    the exact distribution function by `_quantiles`."""
    cov = np.asarray(cov, dtype=float)
    shape = cov.shape[:-2]
    flat = cov.reshape(-1, 3, 3)
    finite = np.all(np.isfinite(flat), axis=(1, 2))
    lam = np.full((flat.shape[0], 3), np.inf)
    if np.any(finite):
        lam[finite] = np.clip(np.linalg.eigvalsh(flat[finite]), 0.0, None)
    top = lam.max(axis=1)
    ok = np.isfinite(top) & (top > 0)
    out = np.where(np.isfinite(top), 0.0, np.inf)
    if np.any(ok):
        norm = np.ascontiguousarray(lam[ok] / top[ok, None])
        x = _quantile_kernel()(norm, _OMEGA2, _OMEGA_W, _COARSE2, _COARSE_W)
        # √x √λ, not √(x λ): the product overflows for λ near the largest double and
        # loses digits for a subnormal λ
        out[ok] = np.sqrt(x) * np.sqrt(top[ok])
    return out.reshape(shape)


def uncertainty_ratio_pct(m: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Seed 001 eq. 12: the 95 % sphere radius over |M̂|, in %, per grain. m (G, 3), cov
    (G, 3, 3)."""
    norm = np.linalg.norm(m, axis=1)
    r = sphere_radius_95(cov)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, 100.0 * r / norm, np.inf)


def signal_strength_ratio(volume_um3: np.ndarray, distance_um: np.ndarray) -> np.ndarray:
    """Seed 001 eq. 13: SSR = V/(R³ d), V in µm³, R the distance from the grain's centre to the
    sensor plane in µm, d the diameter of the sphere of volume V in µm."""
    d = np.cbrt(6.0 * volume_um3 / math.pi)
    return volume_um3 / (distance_um**3 * d)


def direction(m: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, ...]:
    """Declination and inclination in degrees, as palaeomagnetists give them (and the
    window's stereonet plots them): declination clockwise from +y (north up the map) towards
    +x (east), inclination positive downward (−z); with linearised standard deviations from
    the 3 × 3 covariances."""
    mx, my, mz = m[:, 0], m[:, 1], m[:, 2]
    h2 = mx**2 + my**2
    h = np.sqrt(h2)
    f2 = h2 + mz**2
    dec = np.degrees(np.arctan2(mx, my)) % 360.0
    inc = np.degrees(np.arctan2(-mz, h))
    with np.errstate(divide="ignore", invalid="ignore"):
        jd = np.stack([my / h2, -mx / h2, np.zeros_like(mx)], axis=1)
        ji = np.stack([mz * mx / (h * f2), mz * my / (h * f2), -h / f2], axis=1)
        sd_dec = np.degrees(np.sqrt(np.einsum("gi,gij,gj->g", jd, cov, jd)))
        sd_inc = np.degrees(np.sqrt(np.einsum("gi,gij,gj->g", ji, cov, ji)))
    return dec, sd_dec, inc, sd_inc
