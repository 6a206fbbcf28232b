"""The order-6 and order-10 expansions of a cuboid convolved with the sensor area, which
replace the exact sensor-area form between the distance where their bounds meet the tolerance
and the cuboid's quadrupole switch: their bounds against the series they sum, their errors
against the closed form (the forward model at a 100× tighter tolerance) on adversarial cuboid
shapes in every direction above, Q's rows against the exact form, and the inversion's
answers."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest

from smm_daq.analysis.forward import cuboid_bz_kernel, moment_expansion
from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.cuboid import NEAR_TOLERANCE, GreenModel
from smm_daq.analysis.mmt.models.expansion_terms import (
    cuboid_even_terms,
    even_remainder_bound,
)
from smm_daq.analysis.mmt.solver import inversion

UM = 1e-6
NT = 1e-9
MU0_OVER_4PI = 1e-7
SHAPES_UM = [(0.75, 0.75, 0.75), (22.5, 0.75, 0.75), (0.75, 7.5, 0.75), (10.0, 8.0, 0.75),
             (0.75, 0.75, 5.25), (4.5, 1.5, 3.0)]


@pytest.mark.parametrize("order", [6, 10])
def test_the_closed_form_bound_is_the_even_tail_of_the_pointwise_series(order):
    x = np.array([0.01, 0.1, 0.3, 0.5, 0.7, 0.9])
    n = np.arange(order + 2, 4000, 2)
    series = np.sum((n + 1) * (n + 2) * x[:, None] ** n, axis=1)
    np.testing.assert_allclose(even_remainder_bound(x, order), series, rtol=1e-12)


def _upper_directions(k: int) -> np.ndarray:
    """k nearly uniform unit vectors with z > 0.05 (Fibonacci hemisphere)."""
    i = np.arange(k) + 0.5
    cos_polar = 0.05 + 0.95 * i / k
    azimuth = math.pi * (1 + 5**0.5) * i
    s = np.sqrt(1 - cos_polar**2)
    return np.c_[np.cos(azimuth) * s, np.sin(azimuth) * s, cos_polar]


def _one_cuboid(shape_um):
    """Sensor half-widths (1 × 1 µm sensor), the cuboid's half-edges, its expansion's
    coefficients and its volume."""
    p = q = 0.5 * UM
    a, b, c = (0.5 * s * UM for s in shape_um)
    return p, q, (a, b, c), cuboid_even_terms(np.array([[a, b, c]]), (p, q)), 8 * a * b * c


def _around(shape_um, x):
    """The distance R = L/x (L the half-diagonal of the cuboid ⊗ sensor), sensor centres at
    R in the directions above the top face, and the closed form's columns (×4π/μ0) there."""
    p, q, (a, b, c), _, _ = _one_cuboid(shape_um)
    r = math.sqrt((a + p) ** 2 + (b + q) ** 2 + c * c) / x
    pts = r * _upper_directions(60)
    pts = pts[pts[:, 2] > c + 0.05 * UM]
    cuboid = np.array([[0.0, 0.0, 0.0, 2 * a, 2 * b, 2 * c]])
    return r, pts, cuboid_bz_kernel(pts, cuboid, sensor_size=(2 * p, 2 * q))[:, 0, :] / MU0_OVER_4PI


@functools.cache
def _tier_models(shape_um) -> dict[int | str, GreenModel]:
    """The cuboid as a one-grain forward model with every tier but one switched off (the
    grain's far fields, the cuboid's quadrupole, and all but one of its order-6 expansion,
    order-10 expansion and exact form), keyed 6, 10 and "exact"."""
    p, q, (a, b, c), terms, _ = _one_cuboid(shape_um)
    grains = from_arrays(np.array([[0.0, 0.0, 0.0, 2 * a, 2 * b, 2 * c]]), np.array([1]))
    model = GreenModel.build(grains, (2 * p, 2 * q), np.zeros(2), np.zeros(2), c + UM)
    np.testing.assert_array_equal(model.cub_terms, terms)
    inf, zero = np.full(1, np.inf), np.zeros(1)
    model = dataclasses.replace(model, far2=inf, coarse2=inf, fine2=np.full_like(model.fine2, inf),
                                cub_far2=inf, cub_inner2=zero, share_corners=False)
    return {6: dataclasses.replace(model, cub_mid2=zero),
            10: dataclasses.replace(model, cub_mid2=inf),
            "exact": dataclasses.replace(model, cub_mid2=inf, cub_inner2=inf)}


def _expansion(shape_um, pts, order):
    """The order-6 or order-10 expansion's columns (×4π/μ0) of the cuboid at sensor centres
    `pts`, as the forward model's block kernel evaluates them (`_tier_models`): the compiled
    code inversions run, which the rest of this file compiles anyway (a standalone copy of
    each expansion takes longer to compile than this whole file runs)."""
    models = _tier_models(tuple(shape_um))
    got = models[order].block(pts)
    exact = models["exact"].block(pts)
    assert np.all(np.any(got != exact, axis=1))  # the expansion at every sensor, not the exact form
    return got / MU0_OVER_4PI


@pytest.mark.parametrize("shape_um", SHAPES_UM)
def test_the_order_6_expansion_stays_within_its_bound_and_beats_the_quadrupole(shape_um):
    """At x = L/R from 0.6 to 0.1 (L the half-diagonal of the cuboid ⊗ sensor), in all
    directions where a sensor can be (above the top face): |error| ≤ even_remainder_bound(x)
    V/R³ per unit M; and from x = 0.3 in, where the quadrupole's own error is well above the
    reference's, the order-6 error far below it (the higher moments are right)."""
    p, q, (a, b, c), _, volume = _one_cuboid(shape_um)
    for x in (0.6, 0.45, 0.3, 0.2, 0.1):
        r, pts, ref = _around(shape_um, x)
        got = _expansion(shape_um, pts, 6)
        quad = np.array([moment_expansion(*pt, volume, (a * a + p * p) / 3,
                                          (b * b + q * q) / 3, c * c / 3, 0.0, 0.0, 0.0)
                         for pt in pts])
        scale = volume / r**3
        err4 = np.abs(got - ref).max()
        err2 = np.abs(quad - ref).max()
        assert err4 <= even_remainder_bound(np.array(x)) * scale, (shape_um, x)
        if x <= 0.3 and err2 > 1e-5 * scale:
            assert err4 < 0.2 * err2, (shape_um, x, err4, err2)


@pytest.mark.parametrize("shape_um", SHAPES_UM)
def test_the_order_10_expansion_stays_within_its_bound_and_beats_order_6(shape_um):
    """The same for the order-10 expansion from x = 0.45 to 0.2 (nearer than that the exact
    form's own rounding, at the reference's tighter tolerance, is about the size of the
    bound): |error| ≤ even_remainder_bound(x, 10) V/R³, and well below the order-6 error
    where that is above the reference's."""
    volume = _one_cuboid(shape_um)[-1]
    for x in (0.45, 0.3, 0.2):
        r, pts, ref = _around(shape_um, x)
        got = _expansion(shape_um, pts, 10)
        six = _expansion(shape_um, pts, 6)
        scale = volume / r**3
        err10 = np.abs(got - ref).max()
        err6 = np.abs(six - ref).max()
        assert err10 <= even_remainder_bound(np.array(x), 10) * scale, (shape_um, x)
        if err6 > 1e-6 * scale:
            assert err10 < 0.2 * err6, (shape_um, x, err10, err6)


def _sample_grains():
    """Adversarial cuboids (a long rod, a plate, a tall column) near the sensors, a cluster
    a few µm down and single cuboids deep down, on a 40 × 40 µm area."""
    cub = np.array([
        [0.0, 0.0, -1.0, 22.5, 0.75, 0.75],  # rod: a sensor right above each end
        [5.0, 12.0, -1.5, 10.0, 8.0, 0.75],  # plate: sensors over its corners and edges
        [-12.0, -10.0, -3.2, 0.75, 0.75, 5.25],  # column
        [-10.0, 10.0, -6.0, 3.0, 1.5, 1.5], [-8.5, 10.0, -6.0, 3.0, 1.5, 1.5],
        [12.0, -12.0, -25.0, 4.5, 0.75, 0.75],
        [-3.0, -14.0, -40.0, 1.5, 1.5, 0.75],
    ]) * UM
    return from_arrays(cub, np.array([1, 2, 3, 4, 4, 5, 6]))


def test_q_rows_with_the_expansion_tiers_match_the_exact_form():
    """Rows of Q (area sensors 1 × 1 µm on their lattice, 1 µm above the top cuboid, so
    sensors sit right over cuboid corners and edges at the smallest height) against the same
    model with the exact form wherever the order-6 or order-10 expansion is now used: every
    entry within the sum over the grain's cuboids of NEAR_TOLERANCE μ0 V/(4π R_ref³)."""
    size = 1.0 * UM
    grains = _sample_grains()
    x = np.arange(-20, 21) * size + 0.125 * UM  # sensors over the rod's ends and the plate
    X, Y = np.meshgrid(x, x)
    top = float(np.max(grains.cuboids[:, 2] + grains.cuboids[:, 5] / 2))
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, top + 1.0 * UM)]
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    model = GreenModel.build(grains, (size, size), lo, hi, top + 1.0 * UM, exact=True)
    exact = dataclasses.replace(model, cub_mid2=np.full_like(model.cub_mid2, np.inf),
                                cub_inner2=np.full_like(model.cub_inner2, np.inf))
    d2 = ((sensors[:, None, :] - grains.cuboids[None, :, :3]) ** 2).sum(-1)
    used = (d2 >= model.cub_mid2) & (d2 < model.cub_far2)
    assert used.mean() > 0.1  # the tiers are really used
    assert used.any(axis=0).sum() >= 5  # by all but the shallow rod and plate
    tenth = (d2 >= model.cub_inner2) & (d2 < model.cub_mid2) & (d2 < model.cub_far2)
    assert tenth.mean() > 0.02 and tenth.any(axis=0).sum() >= 5
    bound = np.repeat(np.bincount(grains.grain, NEAR_TOLERANCE * MU0_OVER_4PI
                                  * model.cub_scale), 3)
    for share in (True, False):
        new = dataclasses.replace(model, share_corners=share).block(sensors)
        old = dataclasses.replace(exact, share_corners=share).block(sensors)
        assert np.all(np.abs(new - old) <= bound)
        assert np.any(new != old)


def test_the_answers_move_by_less_than_a_hundredth_of_their_sd(monkeypatch):
    """A small sample scanned as the medium case is (1 × 1 µm sensors 1 µm above, 1 µm
    steps, 5 nT): every M̂ with the order-6 and order-10 tiers within 0.01 SD of M̂ with the
    exact form."""
    rng = np.random.default_rng(3)
    sample = synth.make_sample((80 * UM, 80 * UM), 30 * UM, 1e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(UM, UM),
                      noise=5 * NT, rng=rng)
    new = inversion.invert_map(data, sample.grains, height=1 * UM, sensor_size=(UM, UM))
    build = GreenModel.build.__func__

    def without_expansion(cls, *args, **kwargs):
        model = build(cls, *args, **kwargs)
        return dataclasses.replace(model, cub_mid2=np.full_like(model.cub_mid2, np.inf),
                                   cub_inner2=np.full_like(model.cub_inner2, np.inf))

    monkeypatch.setattr(GreenModel, "build", classmethod(without_expansion))
    old = inversion.invert_map(data, sample.grains, height=1 * UM, sensor_size=(UM, UM))
    assert sample.grains.n_grains >= 15
    assert np.any(new.magnetization != old.magnetization)
    assert np.all(np.abs(new.magnetization - old.magnetization) <= 0.01 * old.sd)
