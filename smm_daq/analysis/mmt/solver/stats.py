"""Per-grain statistics of seed 001: the uncertainty ratio (eq. 12), the signal strength ratio
(eq. 13), and declination and inclination with linearised uncertainties."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

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


def _chi2_3_cdf_pdf(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CDF and density of chi-square with 3 degrees of freedom."""
    root = np.sqrt(0.5 * t)
    e = np.exp(-0.5 * t)
    cdf = special.erf(root) - np.sqrt(2.0 * t / math.pi) * e
    pdf = np.sqrt(t / (2.0 * math.pi)) * e
    return cdf, pdf


def _cdf_and_density(x: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(Σ λ_k Z_k² ≤ x) and its derivative in x, for rows of λ (G, 3).

    With Z = ρ ω (ρ² ~ chi-square(3), ω uniform on the sphere, independent),
    Σ λ_k Z_k² = ρ² g(ω), g = Σ λ_k ω_k², so P = mean over ω of F₃(x / g(ω)): an exact
    representation whose smooth integrand a product Gauss rule integrates to ~1e-12."""
    g = lam @ _OMEGA2.T  # (G, N)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        t = x[:, None] / g
        cdf, pdf = _chi2_3_cdf_pdf(t)
        cdf = np.where(g > 0, cdf, 1.0)
        dens = np.where(g > 0, pdf / g, 0.0)
    return cdf @ _OMEGA_W, dens @ _OMEGA_W


def sphere_radius_95(cov: np.ndarray) -> np.ndarray:
    """Radius of the sphere about the mean holding 95 % of N(0, cov), for covariances
    (..., 3, 3): the square root of the 0.95 quantile of Σ λ_k χ²₁ (λ the eigenvalues), from
    the exact distribution function (`_cdf_and_density`) by safeguarded Newton iteration."""
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
        norm = lam[ok] / top[ok, None]
        # λ_max Z_1² ≤ Q ≤ λ_max Σ Z² brackets the quantile between chi-square(1) and (3)
        lo = np.full(norm.shape[0], CHI2_1_95)
        hi = np.full(norm.shape[0], CHI2_3_95)
        x = 0.5 * (lo + hi)
        active = np.arange(norm.shape[0])
        for _ in range(100):
            f, df = _cdf_and_density(x[active], norm[active])
            f -= 0.95
            xa, la, ha = x[active], lo[active], hi[active]
            la = np.where(f < 0, xa, la)
            ha = np.where(f >= 0, xa, ha)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = xa - f / df
            new = np.where((step > la) & (step < ha), step, 0.5 * (la + ha))
            x[active], lo[active], hi[active] = new, la, ha
            active = active[np.abs(new - xa) > 1e-12 * xa]
            if active.size == 0:
                break
        out[ok] = np.sqrt(x * top[ok])
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
