"""The higher-order test's degrees of freedom: every octupole direction counted whatever its
unit, and a σ estimated from the fit's own residual tested against F, not χ².

The references are scipy's χ² and F distributions and degrees of freedom counted by hand,
not numbers the test's own code made."""

from __future__ import annotations

import functools

import numpy as np
from scipy import linalg
from scipy import stats as sps
from test_mmt_joint import GRAINS, M_TRUE, NT, UM, noisy

from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor
from smm_daq.analysis.mmt.solver.higher_order import higher_order_test
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.storage.mapdata import MapData

COARSE = np.arange(0.0, 41.0, 4.0) * UM  # 11 × 11 = 121 pixels
HEIGHT = 3 * UM
SIGMA = 20 * NT


@functools.cache
def coarse_map() -> MapData:
    """The 4 point dipoles' clean map on 121 pixels, 3 µm above: fitted as octupoles (60
    unknowns) it leaves 61 degrees of freedom."""
    X, Y = np.meshgrid(COARSE, COARSE)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, HEIGHT)]
    bz = forward(MultipoleModel.build(GRAINS, Sensor.from_size((0.0, 0.0)), "dipole"), sensors,
                 M_TRUE).reshape(X.shape)
    return MapData(bz=bz, x=COARSE, y=COARSE, height=HEIGHT, name="coarse")


def test_octupole_directions_count_whatever_their_unit():
    """Quadrupole coefficients (A m³) with SDs 1e-21 beside octupole ones (A m⁴) 1e-27, a
    well-conditioned correlation: χ² is the full hᵀC⁻¹h on 12 degrees of freedom (a cut
    relative to the largest eigenvalue of C dropped the octupole's)."""
    rng = np.random.default_rng(31)
    a = rng.standard_normal((12, 12))
    corr = a @ a.T + 12 * np.eye(12)
    sd = np.r_[np.full(5, 1e-21), np.full(7, 1e-27)] * rng.uniform(0.5, 2.0, 12)
    corr /= np.sqrt(np.outer(np.diag(corr), np.diag(corr)))
    cov = np.zeros((1, 15, 15))
    cov[0, :3, :3] = np.eye(3)
    cov[0, 3:, 3:] = corr * np.outer(sd, sd)
    coef = np.r_[1e3, 2e3, 3e3, sd * rng.standard_normal(12)][None, :]
    chi2, p, _ = higher_order_test(coef, cov)
    h = coef[0, 3:] / sd
    expected = float(h @ linalg.solve(corr, h, assume_a="pos"))
    assert abs(chi2[0] / expected - 1) < 1e-9
    assert abs(p[0] / sps.chi2.sf(expected, 12) - 1) < 1e-9


def test_a_dipole_fitted_as_an_octupole_is_tested_on_its_12_higher_coefficients():
    """The solver's own covariances, σ given: each grain's p-value is that of its χ² on
    5 + 7 degrees of freedom."""
    rng = np.random.default_rng(32)
    res = invert_scans([Scan(noisy(coarse_map(), SIGMA, rng), HEIGHT, sigma=SIGMA)], GRAINS,
                       model="octupole")
    chi2, p, resolved = res.higher_orders()
    assert np.allclose(p, sps.chi2.sf(chi2, 12), rtol=1e-9)
    assert np.array_equal(resolved, p < 0.05)


def test_sigma_from_the_residual_tests_against_f_on_the_residuals_dof():
    """σ estimated from the residual of 121 pixels less 60 unknowns: χ²/12 against
    F(12, 61). (Over 500 draws of the noise, 4 dipoles each, scratch Monte Carlo: 7.3 % of
    the 2,000 tests flagged against χ², 4.9 % against F, ±0.5 %.)"""
    rng = np.random.default_rng(33)
    res = invert_scans([Scan(noisy(coarse_map(), SIGMA, rng), HEIGHT)], GRAINS,
                       model="octupole")
    assert res.sigma_from_residual and res.n_sensors == 121
    chi2, p, _ = res.higher_orders()
    assert np.allclose(p, sps.f.sf(chi2 / 12, 12, 121 - 60), rtol=1e-9)
    # σ given: χ² itself, as before
    given = invert_scans([Scan(noisy(coarse_map(), SIGMA, rng), HEIGHT, sigma=SIGMA)], GRAINS,
                         model="octupole")
    chi2, p, _ = given.higher_orders()
    assert np.allclose(p, sps.chi2.sf(chi2, 12), rtol=1e-9)
