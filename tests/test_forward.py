"""The cuboid forward model against independent results: surface-charge quadrature, the
rectangle solid angle, a point dipole, symmetries, and accuracy far from the cuboid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from smm_daq.analysis.forward import cuboid_bz, cuboid_bz_kernel

MU0 = 4e-7 * math.pi
UM = 1e-6

# one cuboid (centre, full edges) in µm, deliberately not a cube
CUBOID_UM = np.array([0.3, -0.2, -1.5, 1.6, 1.0, 1.2])


def _faces(cuboid, j):
    """The two charged faces for magnetization along axis j: (fixed axis value, sign, the two
    in-face axes and their limits)."""
    c, e = cuboid[:3], cuboid[3:] / 2
    others = [k for k in range(3) if k != j]
    return [
        (j, c[j] + s * e[j], s, others, [(c[k] - e[k], c[k] + e[k]) for k in others])
        for s in (1.0, -1.0)
    ]


def _point_field_by_charges(sensor, cuboid, j):
    """Bz at a point from the surface charges σ = ±1 A/m of the faces normal to axis j,
    integrated numerically: μ0/(4π) ∫ σ (z − z')/|r − r'|³ dA'."""
    total = 0.0
    for axis, value, sign, others, lims in _faces(cuboid, j):

        def integrand(v, u, axis=axis, value=value, others=others):
            rp = np.empty(3)
            rp[axis] = value
            rp[others[0]] = u
            rp[others[1]] = v
            d = sensor - rp
            return d[2] / np.linalg.norm(d) ** 3

        val, _ = integrate.dblquad(integrand, *lims[0], *lims[1], epsabs=0, epsrel=1e-12)
        total += sign * val
    return MU0 / (4 * math.pi) * total


def _rectangle_solid_angle(xp, yp, zp, x1, x2, y1, y2, zs):
    """Solid angle of the rectangle [x1,x2]×[y1,y2] at height zs seen from (xp, yp, zp)."""
    Z = zs - zp
    total = 0.0
    for x, sx in ((x2, 1), (x1, -1)):
        for y, sy in ((y2, 1), (y1, -1)):
            X, Y = x - xp, y - yp
            total += sx * sy * math.atan(X * Y / (Z * math.sqrt(X * X + Y * Y + Z * Z)))
    return total


def _area_field_by_charges(sensor, size, cuboid, j):
    """Bz averaged over the sensor area = μ0 × (flux of H through the sensor)/(w l), the flux
    of each surface charge element being σ dA Ω/(4π), integrated numerically over the faces."""
    w, l = size
    x1, x2 = sensor[0] - w / 2, sensor[0] + w / 2
    y1, y2 = sensor[1] - l / 2, sensor[1] + l / 2
    total = 0.0
    for axis, value, sign, others, lims in _faces(cuboid, j):

        def integrand(v, u, axis=axis, value=value, others=others):
            rp = np.empty(3)
            rp[axis] = value
            rp[others[0]] = u
            rp[others[1]] = v
            return _rectangle_solid_angle(rp[0], rp[1], rp[2], x1, x2, y1, y2, sensor[2])

        val, _ = integrate.dblquad(integrand, *lims[0], *lims[1], epsabs=0, epsrel=1e-11)
        total += sign * val
    return MU0 * total / (4 * math.pi * w * l)


SENSORS_UM = np.array(
    [[0.0, 0.0, 1.0], [1.1, 0.7, 0.5], [-2.5, 1.3, 2.0], [0.3, -0.2, 0.2], [6.0, -4.0, 3.0]]
)


@pytest.mark.parametrize("j", [0, 1, 2])
def test_point_sensor_matches_surface_charge_quadrature(j):
    m = np.zeros(3)
    m[j] = 1.0
    for s in SENSORS_UM:
        ref = _point_field_by_charges(s, CUBOID_UM, j)
        got = cuboid_bz(s * UM, CUBOID_UM * UM, m)[0]
        assert got == pytest.approx(ref, rel=1e-9, abs=1e-9 * MU0)


@pytest.mark.parametrize("j", [0, 1, 2])
def test_sensor_area_matches_flux_of_surface_charges(j):
    size = (0.8, 1.3)
    for s in SENSORS_UM:
        ref = _area_field_by_charges(s, size, CUBOID_UM, j)
        got = cuboid_bz_kernel(s * UM, CUBOID_UM * UM, sensor_size=(size[0] * UM, size[1] * UM))
        assert got[0, 0, j] == pytest.approx(ref, rel=1e-8, abs=1e-9 * MU0)


def test_sensor_area_is_the_average_of_the_point_field():
    """Area average = 2D quadrature of the point-sensor field over the sensor area."""
    size = np.array([1.5, 0.6])
    centre = np.array([0.9, -0.4, 0.8])
    for j in range(3):

        def point(y, x, j=j):
            s = np.array([[x, y, centre[2]]]) * UM
            return cuboid_bz_kernel(s, CUBOID_UM * UM)[0, 0, j]

        val, _ = integrate.dblquad(
            point,
            centre[0] - size[0] / 2,
            centre[0] + size[0] / 2,
            centre[1] - size[1] / 2,
            centre[1] + size[1] / 2,
            epsabs=0,
            epsrel=1e-11,
        )
        ref = val / (size[0] * size[1])
        got = cuboid_bz_kernel(centre * UM, CUBOID_UM * UM, sensor_size=tuple(size * UM))
        assert got[0, 0, j] == pytest.approx(ref, rel=1e-8)


def _dipole_bz(sensors, centre, moment):
    r = sensors - centre
    d = np.linalg.norm(r, axis=1)
    return MU0 / (4 * math.pi) * (3 * r[:, 2] * (r @ moment) / d**5 - moment[2] / d**3)


@pytest.mark.parametrize("size_um", [(0.0, 0.0), (2.0, 2.0)])
def test_far_away_it_is_the_point_dipole(size_um):
    """A cube (no quadrupole) at 400 edge lengths: the point dipole (averaged over the sensor
    area by quadrature) within (L/R)^4."""
    cube = np.array([1.0, 2.0, -3.0, 2.0, 2.0, 2.0]) * UM
    rng = np.random.default_rng(5)
    dirs = rng.normal(size=(8, 3))
    dirs[:, 2] = np.abs(dirs[:, 2]) + 0.2
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    sensors = cube[:3] + 800 * UM * dirs
    M = np.array([[3e3, -2e3, 5e3]])
    moment = M[0] * 8 * UM**3
    w, l = size_um[0] * UM, size_um[1] * UM
    got = cuboid_bz(sensors, cube, M, sensor_size=(w, l))
    if w == 0:
        ref = _dipole_bz(sensors, cube[:3], moment)
    else:
        ref = np.array(
            [
                integrate.dblquad(
                    lambda y, x, s=s: _dipole_bz(np.array([[x, y, s[2]]]), cube[:3], moment)[0],
                    s[0] - w / 2,
                    s[0] + w / 2,
                    s[1] - l / 2,
                    s[1] + l / 2,
                    epsabs=0,
                    epsrel=1e-12,
                )[0]
                / (w * l)
                for s in sensors
            ]
        )
    scale = MU0 / (4 * math.pi) * np.linalg.norm(moment) / (800 * UM) ** 3
    assert np.max(np.abs(got - ref)) < 1e-6 * scale


def test_symmetries_about_the_cuboid_centre():
    """Mz: even in x and y; Mx: odd in x, even in y; My: odd in y, even in x."""
    cub = np.array([0.0, 0.0, -2.0, 1.4, 0.9, 0.8]) * UM
    rng = np.random.default_rng(2)
    pts = np.c_[rng.uniform(-8, 8, (30, 2)), rng.uniform(0.3, 5, 30)] * UM
    flip_x = pts * [-1, 1, 1]
    flip_y = pts * [1, -1, 1]
    for size in [(0.0, 0.0), (1.0 * UM, 0.4 * UM)]:
        k, kx, ky = (cuboid_bz_kernel(p, cub, sensor_size=size) for p in (pts, flip_x, flip_y))
        scale = np.abs(k).max()
        np.testing.assert_allclose(kx[:, 0, 2], k[:, 0, 2], atol=1e-12 * scale)
        np.testing.assert_allclose(ky[:, 0, 2], k[:, 0, 2], atol=1e-12 * scale)
        np.testing.assert_allclose(kx[:, 0, 0], -k[:, 0, 0], atol=1e-12 * scale)
        np.testing.assert_allclose(ky[:, 0, 0], k[:, 0, 0], atol=1e-12 * scale)
        np.testing.assert_allclose(ky[:, 0, 1], -k[:, 0, 1], atol=1e-12 * scale)
        np.testing.assert_allclose(kx[:, 0, 1], k[:, 0, 1], atol=1e-12 * scale)


def _reference(sensor, size_um, cuboid, j):
    """Independent reference for one sensor: the point field by surface-charge quadrature,
    averaged over the sensor by n × n Gauss-Legendre when the sensor is small against its
    clearance (the field is smooth there, error ~ (size/clearance)^(2n)), else the flux of the
    surface charges."""
    if size_um[0] == 0:
        return _point_field_by_charges(sensor, cuboid, j)
    clearance = sensor[2] - (cuboid[2] + cuboid[5] / 2)
    if np.hypot(*size_um) > clearance / 2:
        return _area_field_by_charges(sensor, size_um, cuboid, j)
    n = 2 if np.hypot(*size_um) < clearance / 100 else 3
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return sum(
        wa * wb / 4 * _point_field_by_charges(
            sensor + np.array([a * size_um[0] / 2, b * size_um[1] / 2, 0]), cuboid, j
        )
        for a, wa in zip(nodes, weights, strict=True)
        for b, wb in zip(nodes, weights, strict=True)
    )


@pytest.mark.parametrize("size_um", [(0.0, 0.0), (1.2, 1.2), (0.002, 0.05)])
def test_accurate_relative_to_the_column_maximum_from_near_to_far(size_um):
    """A line of sensors from over the cuboid to 400 µm away, including sensors much smaller
    than their distance: every entry within 1e-6 of the column's largest, against the
    surface-charge quadrature."""
    cub = np.array([0.0, 0.0, -1.0, 0.75, 1.5, 0.75])
    xs = np.r_[0.0, 0.4, 1.0, 3.0, 8.0, 20.0, 45.0, 90.0, 180.0, 400.0]
    sensors = np.c_[xs, 0.3 * xs, np.full(xs.size, 6.0)]
    size = (size_um[0] * UM, size_um[1] * UM)
    got = cuboid_bz_kernel(sensors * UM, cub * UM, sensor_size=size)[:, 0, :]
    for j in range(3):
        ref = np.array([_reference(s, size_um, cub, j) for s in sensors])
        col_max = np.abs(ref).max()
        assert np.max(np.abs(got[:, j] - ref)) < 1e-6 * col_max, j


def test_field_is_the_kernel_times_magnetization_summed_over_cuboids():
    rng = np.random.default_rng(1)
    cubs = (
        np.c_[
            rng.uniform(-20, 20, (40, 2)), rng.uniform(-15, -3, 40), rng.uniform(0.75, 3, (40, 3))
        ]
        * UM
    )
    M = rng.normal(size=(40, 3)) * 1e4
    g = np.linspace(-30, 30, 13) * UM
    X, Y = np.meshgrid(g, g)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2 * UM)]
    for size in [(0.0, 0.0), (1 * UM, 1 * UM)]:
        k = cuboid_bz_kernel(sensors, cubs, sensor_size=size)
        expected = np.einsum("pcj,cj->p", k, M)
        got = cuboid_bz(sensors, cubs, M, sensor_size=size)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


def test_refuses_sensors_below_a_cuboid_top_and_bad_sizes():
    cub = np.array([[0, 0, -0.1, 1, 1, 1]]) * UM
    with pytest.raises(ValueError, match="above"):
        cuboid_bz(np.array([[0, 0, 0.2]]) * UM, cub, np.ones((1, 3)))
    with pytest.raises(ValueError, match="sensor_size"):
        cuboid_bz(np.array([[0, 0, 1]]) * UM, cub, np.ones((1, 3)), sensor_size=(1e-6, 0))
