"""Uncertainty ratio (seed 001 eq. 12), SSR (eq. 13) and directions against independent
results: chi-square quantiles, Imhof's formula by adaptive quadrature, and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
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


def test_isotropic_and_degenerate_covariances_give_chi_square_quantiles():
    s = 2.5
    assert sphere_radius_95(s**2 * np.eye(3)) == pytest.approx(
        s * math.sqrt(stats.chi2.ppf(0.95, 3)), rel=1e-10)
    assert sphere_radius_95(np.diag([s**2, 0, 0])) == pytest.approx(
        s * math.sqrt(stats.chi2.ppf(0.95, 1)), rel=1e-10)
    assert sphere_radius_95(np.diag([s**2, s**2, 0])) == pytest.approx(
        s * math.sqrt(stats.chi2.ppf(0.95, 2)), rel=1e-10)


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
