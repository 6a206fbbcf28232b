"""The simulator's demagnetizing factors against the field of the prism's own surface charges.

A prism magnetized along z by M carries the charges +M and −M on its top and bottom faces;
its magnetometric factor is N = −⟨H_z⟩ / M, the internal field averaged over the volume. Each
face's field is taken from choclo's closed-form gravity of a thin prism (a sheet of mass is a
sheet of charge, up to the constant and sign), and averaged by Gauss–Legendre quadrature over
the interior; neither shares a line with Aharoni's closed form in the product.
"""

from __future__ import annotations

import math

import choclo.prism
import numpy as np
import pytest
from choclo.constants import GRAVITATIONAL_CONST
from numpy.polynomial.legendre import leggauss

from simulators.demagnetization import demagnetizing_factors, effective_susceptibility
from simulators.sample import MU0, VirtualSample

SHEET = 1e-5  # the face sheets' thickness over the half edge: N off by about that much


def charge_sheet_factor(a: float, b: float, c: float, n: int = 20) -> float:
    """N along z of the prism [−a, a] × [−b, b] × [−c, c], from its face charges."""
    x, w = leggauss(n)
    eps = SHEET * c
    total = 0.0
    for i in range(n):
        for j in range(n):
            for k in range(n):
                p = (a * x[i], b * x[j], c * x[k])
                # gravity_u of a sheet of unit density: G ε ∫ (z_src − z_p) / R³ dA
                top = choclo.prism.gravity_u(*p, -a, a, -b, b, c, c + eps, 1.0)
                bottom = choclo.prism.gravity_u(*p, -a, a, -b, b, -c - eps, -c, 1.0)
                # H_z / M = (1/4π) ∫ σ (z_p − z_src) / R³ dA, σ = +1 on top and −1 below
                hz = (bottom - top) / (GRAVITATIONAL_CONST * eps) / (4 * math.pi)
                total += w[i] * w[j] * w[k] * hz
    return -total / 8


@pytest.mark.parametrize("edges", [(1.0, 1.0, 1.0), (2.0, 4.0, 6.0), (6.0, 2.0, 4.0),
                                   (480e-6, 300e-6, 30e-6), (10e-6, 10e-6, 80e-6)])
def test_factors_match_the_field_of_the_face_charges(edges):
    """Quadrature of 20³ points of a field with logarithmic edge singularities: 5e-4."""
    nz = demagnetizing_factors(np.array(edges))[0, 2]
    a, b, c = (e / 2 for e in edges)
    assert nz == pytest.approx(charge_sheet_factor(a, b, c), abs=5e-4)


def test_factors_by_symmetry_and_their_sum():
    edges = np.array([[1.0, 1.0, 1.0], [2.0, 4.0, 6.0], [1.0, 1.0, 1e-3], [1e-3, 1e-3, 1.0],
                      [5e-6, 7e-6, 3e-6]])
    n = demagnetizing_factors(edges)
    np.testing.assert_allclose(n.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(n[0], 1 / 3, atol=1e-12)  # a cube
    assert n[2, 2] > 0.99 and n[3, 2] < 0.01  # a thin plate across, a long rod along
    # the same prism turned: its factors turn with it
    np.testing.assert_allclose(demagnetizing_factors(edges[1][[2, 0, 1]]),
                               n[1:2][:, [2, 0, 1]], atol=1e-12)
    # only the shape matters, not the size
    np.testing.assert_allclose(demagnetizing_factors(edges[1] * 1e-6), n[1:2], atol=1e-12)


def test_a_strongly_magnetic_plate_takes_less_across_than_along():
    """Magnetite (χ = 3) as the demo's plate: χ/(1 + N χ) across its thickness and in plane."""
    edges = np.array([480e-6, 300e-6, 30e-6])
    n = demagnetizing_factors(edges)[0]
    eff = effective_susceptibility(np.array([3.0]), edges)[0]
    np.testing.assert_allclose(eff, 3.0 / (1 + 3.0 * n), rtol=1e-12)
    assert eff[2] < 1.0 < 2.0 < eff[1] < eff[0] < 3.0  # the longer edge: the smaller N
    assert effective_susceptibility(np.array([1e-5]), edges)[0] == pytest.approx(1e-5,
                                                                                 rel=1e-4)


def test_the_virtual_sample_is_magnetized_by_the_internal_field():
    """M of one plate grain in a field along z and along x; its Bz response agrees with it."""
    edges = [480e-6, 300e-6, 30e-6]
    sample = VirtualSample(np.array([[0.0, 0.0, -20e-6, *edges]]), np.array([0]),
                           np.zeros((1, 3)), np.array([3.0]))
    nx, _, nz = demagnetizing_factors(np.array(edges))[0]
    b = 40e-6
    m = sample.magnetization(np.array([b, 0.0, b]))[0]
    np.testing.assert_allclose(m, [3 / (1 + 3 * nx) * b / MU0, 0.0, 3 / (1 + 3 * nz) * b / MU0],
                               rtol=1e-12)
    sensors = np.array([[100e-6, 50e-6, 10e-6], [-200e-6, 0.0, 10e-6]])
    r = sample.response(sensors, (0.0, 0.0))
    field = np.array([b, 0.0, b])
    np.testing.assert_allclose(r[:, 0] + r[:, 1:] @ field,
                               sample.bz_true(sensors, (0.0, 0.0), field), rtol=1e-10)


def test_a_grain_of_several_cuboids_takes_the_factors_of_its_bounding_box():
    """A slab built of rows (as a thin section's patch is) is magnetized as the slab."""
    rows = np.array([[x, 0.0, -20e-6, 50e-6, 400e-6, 30e-6] for x in (-50e-6, 0.0, 50e-6)])
    slab = VirtualSample(rows, np.zeros(3, int), np.zeros((1, 3)), np.array([3.0]))
    whole = VirtualSample(np.array([[0.0, 0.0, -20e-6, 150e-6, 400e-6, 30e-6]]), np.array([0]),
                          np.zeros((1, 3)), np.array([3.0]))
    np.testing.assert_allclose(slab.effective_susceptibility,
                               np.repeat(whole.effective_susceptibility, 3, axis=0), rtol=1e-12)
    field = np.array([10e-6, 20e-6, 30e-6])
    sensors = np.array([[30e-6, 70e-6, 15e-6], [300e-6, -100e-6, 40e-6]])
    np.testing.assert_allclose(slab.bz_true(sensors, (0.0, 0.0), field),
                               whole.bz_true(sensors, (0.0, 0.0), field), rtol=1e-9)


def test_a_susceptibility_of_minus_one_or_less_is_refused():
    with pytest.raises(ValueError, match="> -1 SI"):
        VirtualSample(np.array([[0.0, 0.0, -1e-5, 1e-6, 1e-6, 1e-6]]), np.array([0]),
                      np.zeros((1, 3)), np.array([-1.0]))
