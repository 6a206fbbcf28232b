"""Uncertainty ratio (seed 001 eq. 12), SSR (eq. 13) and directions against independent
results: chi-square quantiles, Imhof's formula by adaptive quadrature, and Monte Carlo."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from smm_daq.analysis.mmt.solver.stats import (
    direction,
    signal_strength_ratio,
    sphere_radius_95,
    uncertainty_ratio_pct,
)


def _imhof_quantile(lam):
    """0.95 quantile of Σ λ χ²₁ by Imhof (1961): P(Q > x) = 1/2 + (1/π) ∫ sin θ / (u ρ) du,
    θ = ½ Σ atan(λu) − xu/2; beyond u = 1 the oscillation is split off (sin(a − wu) =
    sin a cos wu − cos a sin wu) for QUADPACK's Fourier-integral rule."""
    lam = np.asarray(lam, float) / np.max(lam)

    def parts(u):
        a = 0.5 * np.sum(np.arctan(lam * u))
        r = u * np.prod((1 + (lam * u) ** 2) ** 0.25)
        return math.sin(a) / r, math.cos(a) / r

    def tail(x):
        w = 0.5 * x

        def f(u):
            if u == 0:
                return 0.5 * (lam.sum() - x)
            sa, ca = parts(u)
            return sa * math.cos(w * u) - ca * math.sin(w * u)

        head = integrate.quad(f, 0, 1, epsabs=1e-13, epsrel=1e-13)[0]
        c = integrate.quad(lambda u: parts(u)[0], 1, np.inf, weight="cos", wvar=w)[0]
        s = integrate.quad(lambda u: parts(u)[1], 1, np.inf, weight="sin", wvar=w)[0]
        return 0.5 + (head + c - s) / math.pi

    x = optimize.brentq(lambda x: tail(x) - 0.05, 3.8, 7.9, xtol=1e-13)
    return x * np.max(np.asarray(lam))


def _reference_quantile(lam) -> float:
    """0.95 quantile of λ₁Z₁² + λ₂Z₂² + λ₃Z₃² (λ₁ = 1 ≥ λ₂ ≥ λ₃ ≥ 0) by another route than the
    product's: (Z₁, Z₂) in polar form (R² exponential with mean 2) and Z₃ integrated in closed
    form (E[e^{aZ²}; |Z| < c] = erf(c √((1 − 2a)/2)) / √(1 − 2a)) leave, with h = λ₁cos²φ +
    λ₂sin²φ and ε = 1 − λ₃/h,
    P(Q ≤ x) = (2/π) ∫₀^{π/2} erf(√(x/2λ₃)) − e^{−x/2h} erf(√(xε/2λ₃))/√ε dφ,
    one smooth integral for adaptive quadrature, then a root search."""
    l1, l2, l3 = lam

    def integrand(phi: float, x: float) -> float:
        c2, s2 = math.cos(phi) ** 2, math.sin(phi) ** 2
        h = l1 * c2 + l2 * s2
        gap = (l1 - l3) * c2 + (l2 - l3) * s2  # h − λ₃ without cancellation
        if l3 == 0:
            return -math.expm1(-x / (2 * h))
        if gap == 0:  # ε → 0: erf(√(xε/2λ₃))/√ε → √(2x/(πλ₃))
            return math.erf(math.sqrt(x / (2 * l3))) - math.exp(-x / (2 * h)) * math.sqrt(
                2 * x / (math.pi * l3))
        eps = gap / h
        return (math.erf(math.sqrt(x / (2 * l3)))
                - math.exp(-x / (2 * h)) * math.erf(math.sqrt(x * eps / (2 * l3)))
                / math.sqrt(eps))

    def cdf(x: float) -> float:
        return 2 / math.pi * integrate.quad(integrand, 0, math.pi / 2, args=(x,), epsabs=1e-14,
                                            epsrel=1e-13, limit=200)[0]

    return optimize.brentq(lambda x: cdf(x) - 0.95, stats.chi2.ppf(0.95, 1) - 1e-9,
                           stats.chi2.ppf(0.95, 3) + 1e-9, xtol=1e-14, rtol=1e-14)


def _rotation(q) -> np.ndarray:
    """The rotation of a (non-zero) quaternion."""
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_the_reference_gives_the_chi_square_quantiles_where_they_are_exact():
    for lam, dof in (((1, 0, 0), 1), ((1, 1, 0), 2), ((1, 1, 1), 3)):
        assert _reference_quantile(lam) == pytest.approx(stats.chi2.ppf(0.95, dof), rel=1e-13)


@settings(max_examples=10, derandomize=True, deadline=None, database=None)
@given(st.floats(0, 12), st.floats(0, 12), st.floats(-30, 30),
       st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
           lambda q: np.linalg.norm(q) > 0.1))
def test_radius_matches_an_independent_quantile_over_condition_numbers_to_1e12(
        log_a, log_b, log_scale, q):
    """Eigenvalues 1 ≥ 10^-a ≥ 10^-b (condition numbers 1 to 1e12), any orientation, scaled
    by 10^s: the radius is √(quantile × λ_max) to 1e-10, the quantile from the exact
    eigenvalues by `_reference_quantile`."""
    lam = np.array([1.0, 10.0 ** -min(log_a, log_b), 10.0 ** -max(log_a, log_b)])
    rot = _rotation(q)
    scale = 10.0 ** log_scale
    cov = scale * (rot * lam) @ rot.T
    expected = math.sqrt(_reference_quantile(lam) * scale)
    assert sphere_radius_95(cov) == pytest.approx(expected, rel=1e-10)


def test_batches_keep_their_shape_and_each_grain_its_exact_case():
    """Zero, non-finite, rank-1, rank-2 and isotropic covariances side by side in a (2, 4)
    batch, at scales far from 1: each gets its exact value (0, inf, or the chi-square
    quantile's), whatever its neighbours."""
    rot = _rotation([0.3, -0.5, 0.7, 0.2])
    q = [stats.chi2.ppf(0.95, k) for k in (1, 2, 3)]
    covs = np.array([np.zeros((3, 3)), np.full((3, 3), np.nan), np.diag([1.0, np.inf, 1.0]),
                     1e-200 * np.eye(3), 1e200 * (rot * [0, 0, 1]) @ rot.T,
                     4e-8 * (rot * [1, 0, 1]) @ rot.T, np.diag([0.0, 9.0, 0.0]),
                     2.5 * np.eye(3)]).reshape(2, 4, 3, 3)
    radii = sphere_radius_95(covs)
    assert radii.shape == (2, 4)
    expected = [0.0, np.inf, np.inf, math.sqrt(q[2] * 1e-200), math.sqrt(q[0] * 1e200),
                math.sqrt(q[1] * 4e-8), 3 * math.sqrt(q[0]), math.sqrt(q[2] * 2.5)]
    np.testing.assert_allclose(radii.ravel(), expected, rtol=1e-10, atol=0)


def test_isotropic_and_degenerate_covariances_give_chi_square_quantiles():
    s = 2.5
    assert sphere_radius_95(s**2 * np.eye(3)) == pytest.approx(
        s * math.sqrt(stats.chi2.ppf(0.95, 3)), rel=1e-10)
    assert sphere_radius_95(np.diag([s**2, 0, 0])) == pytest.approx(
        s * math.sqrt(stats.chi2.ppf(0.95, 1)), rel=1e-10)
    assert sphere_radius_95(np.diag([s**2, s**2, 0])) == pytest.approx(
        s * math.sqrt(stats.chi2.ppf(0.95, 2)), rel=1e-10)


def test_covariances_at_the_ends_of_the_float_range_keep_a_finite_exact_radius():
    """A finite covariance near the largest double has a finite radius (√(q λ) would
    overflow in the product), one of subnormal size its full precision (the product itself
    subnormal, with few digits)."""
    q1, q3 = (stats.chi2.ppf(0.95, k) for k in (1, 3))
    scales = np.array([1e308, 1.7e308, 1e-320, 5e-323])
    covs = np.array([s * np.eye(3) for s in scales] + [np.diag([1.7e308, 0.0, 0.0])])
    expected = [*(math.sqrt(q3) * np.sqrt(scales)), math.sqrt(q1) * math.sqrt(1.7e308)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        radii = sphere_radius_95(covs)
    np.testing.assert_allclose(radii, expected, rtol=1e-10, atol=0)


def test_anisotropic_covariances_match_imhof_and_monte_carlo():
    rng = np.random.default_rng(4)
    covs = []
    for spread in (1.0, 0.3, 0.01):
        a = rng.normal(size=(3, 3)) * [1, spread, spread**2]
        covs.append(a @ a.T)
    radii = sphere_radius_95(np.array(covs))
    for cov, r in zip(covs, radii, strict=True):
        lam = np.linalg.eigvalsh(cov)
        assert r**2 / lam.max() == pytest.approx(_imhof_quantile(lam), rel=1e-7)
        draws = rng.multivariate_normal(np.zeros(3), cov, size=400_000)
        inside = np.mean(np.sum(draws**2, axis=1) <= r**2)
        assert abs(inside - 0.95) < 4 * math.sqrt(0.95 * 0.05 / 400_000)


def test_uncertainty_ratio_is_the_radius_over_the_norm_in_percent():
    m = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    cov = np.array([np.eye(3), np.eye(3)])
    ur = uncertainty_ratio_pct(m, cov)
    assert ur[0] == pytest.approx(100 * math.sqrt(stats.chi2.ppf(0.95, 3)) / 5, rel=1e-10)
    assert math.isinf(ur[1])


def test_ssr_of_a_sphere():
    """V/(R³ d): a sphere of 2 µm diameter 10 µm below the sensor."""
    v = math.pi / 6 * 8
    assert signal_strength_ratio(np.array([v]), np.array([10.0]))[0] == pytest.approx(
        v / (1000 * 2))


def test_direction_and_linearised_uncertainties_against_small_noise_draws():
    m = np.array([[1.0, 1.0, -math.sqrt(2.0)]])  # declination 45°, inclination +45° (down)
    cov = np.array([np.diag([1e-4, 2e-4, 3e-4])])
    dec, sd_dec, inc, sd_inc = direction(m, cov)
    assert dec[0] == pytest.approx(45.0)
    assert inc[0] == pytest.approx(45.0)
    rng = np.random.default_rng(0)
    draws = m + rng.multivariate_normal(np.zeros(3), cov[0], size=200_000)
    d, _, i, _ = direction(draws, np.repeat(cov, draws.shape[0], axis=0))
    assert np.std(d) == pytest.approx(sd_dec[0], rel=0.02)
    assert np.std(i) == pytest.approx(sd_inc[0], rel=0.02)


def test_declination_is_clockwise_from_north_as_the_stereonet_plots_it():
    """The table's declination is the palaeomagnetic one (as the window's net draws it,
    tests/test_gui_stereonet.py): clockwise from +y (north up the map) towards +x (east),
    so a grain magnetized along +x has declination 90°, not 0°."""
    m = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [-1.0, 0.0, -1.0],
                  [1.0, 2.0, 0.5]])
    dec, _, inc, _ = direction(m, np.repeat(np.eye(3)[None] * 1e-4, m.shape[0], axis=0))
    assert dec[:4] == pytest.approx([0.0, 90.0, 180.0, 270.0])
    assert dec[4] == pytest.approx(math.degrees(math.atan2(1.0, 2.0)))
    assert inc[3] == pytest.approx(45.0)  # −z: down, positive inclination
