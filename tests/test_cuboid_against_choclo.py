"""The cuboid field against choclo's prism (Nagy et al. 2000's closed forms, written by the
Fatiando a Terra project): the kernel every part of smm-daq shares (the simulated sample's
truth, the forward scan, MMT's Green's matrix with its far-field switches) refereed by code
nobody here wrote. A mistake shared by the simulator and the inversion (a sign, an axis, a
factor) would leave the inversion recovering its own truth; it cannot hide from this.

choclo works in (easting, northing, upward) with a prism given by its bounds: smm-daq's x, y,
z (z up) map onto those directly. Its μ0 is CODATA's measured value, 5.5e-10 relative from
4π·1e-7 (smm-daq's), so its fields are scaled by the ratio before comparing.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from choclo.constants import VACUUM_MAGNETIC_PERMEABILITY
from choclo.prism import magnetic_u

from smm_daq.analysis.forward import cuboid_bz, cuboid_bz_kernel
from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver.inversion import forward

UM = 1e-6
MU0_RATIO = 4e-7 * math.pi / VACUUM_MAGNETIC_PERMEABILITY


@numba.njit(cache=False)
def _choclo_kernel(sensors: np.ndarray, cuboids: np.ndarray) -> np.ndarray:
    """(P, C, 3): Bz at each sensor of each cuboid magnetized 1 A/m along x, y or z."""
    out = np.empty((sensors.shape[0], cuboids.shape[0], 3))
    for i in range(sensors.shape[0]):
        e, n, u = sensors[i, 0], sensors[i, 1], sensors[i, 2]
        for m in range(cuboids.shape[0]):
            c = cuboids[m]
            bounds = (c[0] - c[3] / 2, c[0] + c[3] / 2, c[1] - c[4] / 2, c[1] + c[4] / 2,
                      c[2] - c[5] / 2, c[2] + c[5] / 2)
            out[i, m, 0] = magnetic_u(e, n, u, *bounds, 1.0, 0.0, 0.0)
            out[i, m, 1] = magnetic_u(e, n, u, *bounds, 0.0, 1.0, 0.0)
            out[i, m, 2] = magnetic_u(e, n, u, *bounds, 0.0, 0.0, 1.0)
    return out * MU0_RATIO


def _gauss_area(sensors: np.ndarray, size: float, n: int) -> np.ndarray:
    """The points and weights of an n × n Gauss–Legendre rule over each square sensor."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    dx, dy = np.meshgrid(nodes * size / 2, nodes * size / 2)
    w = np.outer(weights, weights).ravel() / 4
    points = sensors[:, None, :] + np.c_[dx.ravel(), dy.ravel(), np.zeros(n * n)][None]
    return points.reshape(-1, 3), w


def _cuboids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n cuboids of 0.2–3 µm edges, tops 0.5–20 µm below z = 0, over a 30 µm square."""
    edges = rng.uniform(0.2, 3.0, (n, 3)) * UM
    centres = np.c_[rng.uniform(-15, 15, (n, 2)) * UM,
                    -rng.uniform(0.5, 20.0, n) * UM - edges[:, 2] / 2]
    return np.c_[centres, edges]


def _sensors(rng: np.random.Generator, n: int, height: float) -> np.ndarray:
    """n sensors at `height` from right above the cuboids to 200 µm away."""
    r = np.geomspace(0.1, 200.0, n) * UM
    angle = rng.uniform(0, 2 * math.pi, n)
    return np.c_[r * np.cos(angle), r * np.sin(angle), np.full(n, height)]


def test_point_kernel_is_choclos_prism_for_every_axis_from_near_to_far():
    rng = np.random.default_rng(3)
    cuboids, sensors = _cuboids(rng, 40), _sensors(rng, 300, 1.0 * UM)
    ours = cuboid_bz_kernel(sensors, cuboids)
    theirs = _choclo_kernel(sensors, cuboids)
    # each column's error against its largest entry (the kernel's documented accuracy, 1e-6)
    scale = np.abs(theirs).max(axis=0)
    assert np.all(np.abs(ours - theirs) <= 1e-6 * scale)


def test_field_of_magnetized_cuboids_is_choclos_sum():
    rng = np.random.default_rng(5)
    cuboids, sensors = _cuboids(rng, 25), _sensors(rng, 200, 2.0 * UM)
    m = rng.normal(0, 1e4, (25, 3))  # A/m
    theirs = np.einsum("pcj,cj->p", _choclo_kernel(sensors, cuboids), m)
    ours = cuboid_bz(sensors, cuboids, m)
    assert np.max(np.abs(ours - theirs)) <= 1e-6 * np.max(np.abs(theirs))


@pytest.mark.parametrize("size_um", [0.5, 2.0])
def test_area_sensor_is_gauss_quadrature_of_choclos_point_field(size_um):
    rng = np.random.default_rng(7)
    cuboids, sensors = _cuboids(rng, 10), _sensors(rng, 60, 1.5 * UM)
    size = size_um * UM
    points, w = _gauss_area(sensors, size, 24)
    theirs = np.einsum("spcj,p->scj", _choclo_kernel(points, cuboids).reshape(
        sensors.shape[0], w.size, cuboids.shape[0], 3), w)
    ours = cuboid_bz_kernel(sensors, cuboids, sensor_size=(size, size))
    scale = np.abs(theirs).max(axis=0)
    assert np.all(np.abs(ours - theirs) <= 1e-6 * scale)


@pytest.mark.parametrize("sensor_um", [0.0, 1.0])
def test_greens_matrix_with_its_far_field_switches_is_choclos_sum_over_each_grain(sensor_um):
    """The MMT Green's matrix: columns 3g + j are grain g's cuboids magnetized along j,
    summed, with the grain's own far-field expansions from its switching distances; its
    documented accuracy is 1e-4 of each column's largest entry. Area sensors on a 3 µm grid
    (their reference is 64 points each), point sensors on a 2 µm one."""
    rng = np.random.default_rng(11)
    sample = synth.make_sample((60 * UM, 60 * UM), 20 * UM, 1e5, rng)
    grains = sample.grains
    step, height, size = (3 if sensor_um else 2) * UM, 1 * UM, sensor_um * UM
    x = np.arange(0.0, 60 * UM + step / 2, step)
    X, Y = np.meshgrid(x, x)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    model = GreenModel.build(grains, (size, size), np.zeros(2), np.full(2, x[-1]), height)
    ours = model.block(sensors)
    if size:
        points, w = _gauss_area(sensors, size, 8)
        per_cuboid = np.einsum("spcj,p->scj", _choclo_kernel(points, grains.cuboids).reshape(
            sensors.shape[0], w.size, grains.cuboids.shape[0], 3), w)
    else:
        per_cuboid = _choclo_kernel(sensors, grains.cuboids)
    theirs = np.zeros_like(ours)
    for g in range(grains.n_grains):
        cubs = slice(grains.start[g], grains.start[g + 1])
        theirs[:, 3 * g:3 * g + 3] = per_cuboid[:, cubs].sum(axis=1)
    scale = np.abs(theirs).max(axis=0)
    assert grains.n_grains >= 5
    assert np.all(np.abs(ours - theirs) <= 1e-4 * scale)
    # the forward map (what the simulator and `mmt synth` scan) from the same sums
    m = sample.magnetization
    np.testing.assert_allclose(forward(model, sensors, m), theirs @ m.ravel(),
                               atol=1e-4 * np.abs(theirs @ m.ravel()).max())
