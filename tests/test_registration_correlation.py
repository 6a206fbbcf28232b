"""A registration's shift is significant at 95 % only outside its 95 % region both by its two
SDs alone (chi-square of the two ratios against 5.991) and by its full 2 × 2 covariance, its x
and y errors' correlation counted. The SDs alone made a shift at zero "significant" 7.8 % of
the time, not 5 %, where the errors correlate at 0.9; the covariance alone, its correlation
that of one of two estimates that seldom agree on it, did so more often than the SDs alone on
realistic maps. Features elongated along a diagonal (ridges) correlate the errors: the shift
along them is known less well than across."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_registration_coverage import _registrations

from smm_daq.analysis.registration import (
    Registration,
    estimate_registration,
    shift_is_significant,
)
from smm_daq.storage.mapdata import MapData

STEP = 10e-6  # m
NOISE = 0.25e-6  # T, each scan's


def _rate(draws: np.ndarray, sd: tuple[float, float], rho: float) -> float:
    return float(np.mean([shift_is_significant(Registration(
        shift=(float(dx), float(dy)), shift_sd=sd, shift_correlation=rho)) for dx, dy in draws]))


@pytest.mark.parametrize(("rho", "expected"), [(0.9, 0.0289), (-0.9, 0.0289), (0.0, 0.05)])
def test_a_shift_at_zero_is_significant_at_most_5_percent_of_the_time(rho, expected):
    """20,000 draws of a shift at zero with its stated covariance: outside both 95 % regions
    (the SDs' and the covariance's) 5 % of the time uncorrelated, 2.89 % at ±0.9 (20 million
    draws), within 4 SD of the binomial (0.15 % at 5 %), a false-failure rate of 1 in 16,000.
    The SDs alone gave 7.8 % at ±0.9."""
    sd = (3e-6, 5e-6)
    cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    n = 20_000
    draws = np.random.default_rng(11).multivariate_normal([0.0, 0.0], cov, size=n)
    rate = _rate(draws, sd, rho)
    assert abs(rate - expected) < 4 * np.sqrt(expected * (1 - expected) / n), rate


def test_a_shift_outside_the_covariance_s_region_alone_is_not_significant():
    """1.5 SD off along x and -1.5 along y, its errors correlated at 0.9: far outside the
    covariance's 95 % region (chi-square 45) but inside the SDs' (4.5): not significant. The
    covariance alone called it so."""
    reg = Registration(shift=(3e-6, -6e-6), shift_sd=(2e-6, 4e-6), shift_correlation=0.9)
    assert not shift_is_significant(reg)
    assert shift_is_significant(replace(reg, shift=(5e-6, -10e-6)))  # 2.5 SD: outside both


def test_on_realistic_maps_no_more_shifts_at_zero_are_significant_than_by_the_sds_alone():
    """The reviewer's maps (test_registration_coverage: 21 × 11 pixels, 4 grains, no induced
    field, seed 1), the first 25 of them (120 take 18 s; the 25th is the one significant by
    the SDs alone among the first 40, none of the next 15 is by any of the rules below): the
    error of each shift found (the true shift taken off) is judged as a shift at zero would
    be. With the SDs the larger of
    the sandwich's and the jackknife's, 3 were significant by the SDs alone; by the
    covariance alone, its correlation that of whichever estimate had the larger 95 % region,
    5 (of 120: 13 and 20): counting the correlation so made a shift that should be left out
    applied more often. Outside both regions, 3 (of 120: 11). With their sum (scaled by the
    misfit), 1 by the SDs alone, and no more outside both regions."""
    errors = [replace(reg, shift=tuple(np.array(reg.shift) - shift))
              for reg, shift in _registrations(1, 25, 4, (0.0, 0.0, 0.0), 0.0)]
    significant = sum(shift_is_significant(reg) for reg in errors)
    by_sds = sum(shift_is_significant(replace(reg, shift_correlation=0.0)) for reg in errors)
    assert by_sds == 1, by_sds
    assert significant <= by_sds, (significant, by_sds)


def _ridges(n: int) -> np.ndarray:
    """Bz of three ridges, each four times longer than wide, along the map's diagonal."""
    x = np.arange(n) * STEP
    px, py = np.meshgrid(x, x)
    c = x.mean()
    along, across = ((px - c) + (py - c)) / np.sqrt(2), (-(px - c) + (py - c)) / np.sqrt(2)
    rng = np.random.default_rng(5)
    bz = np.zeros_like(px)
    for _ in range(3):
        u0, v0 = rng.uniform(-0.3, 0.3, 2) * n * STEP
        bz += 5e-6 * rng.choice([-1, 1]) * np.exp(
            -((across - v0) / (1.5 * STEP)) ** 2 - ((along - u0) / (4 * STEP)) ** 2)
    return bz


def test_the_estimate_s_correlation_is_its_errors_and_the_false_positives_are_5_percent():
    """One sample of ridges along the diagonal, no shift, 60 noise draws of both scans: the
    shift's x and y errors correlate at about 0.9 over the draws, and each estimate says so
    (median within 0.1 of it); the shift is "significant" at the rate outside both 95 %
    regions that such a correlation allows (2.89 %, see above), within 3 SD of the binomial
    (at most 5 of 60: a false-failure rate of 0.77 %, 0.86 % at 7 of 100)."""
    n, draws = 15, 60
    x = np.arange(n) * STEP
    bz = _ridges(n)
    rng = np.random.default_rng(3)
    shifts, said, significant = [], [], 0
    for _ in range(draws):
        a, b = (MapData(bz + rng.normal(size=bz.shape) * NOISE, x, x, name=name,
                        height=100e-6, sensor_size=(0.0, 0.0)) for name in "ab")
        reg = estimate_registration(a, b)
        shifts.append(reg.shift)
        said.append(reg.shift_correlation)
        significant += shift_is_significant(reg)
    seen = float(np.corrcoef(np.array(shifts).T)[0, 1])
    assert seen > 0.7, seen  # the errors are correlated
    assert abs(float(np.median(said)) - seen) < 0.1, (np.median(said), seen)
    assert abs(significant / draws - 0.0289) < 3 * np.sqrt(0.0289 * 0.9711 / draws), significant
