"""The point-source grain model against independent results: finite differences of the scalar
potential written from the documented basis, choclo's dipole, quadrature of the point field
over area and volume sensors, and the far field of a uniformly magnetized cuboid."""

import math

import choclo.dipole
import numpy as np
import pytest

from smm_daq.analysis.forward import _point_exact
from smm_daq.analysis.mmt.models.multipole import (
    MultipoleModel,
    Sensor,
    point_grains,
    to_library,
)
from smm_daq.errors import InputError

UM = 1e-6
S6, S2, S10, S15 = math.sqrt(6), math.sqrt(2), math.sqrt(10), math.sqrt(15)


def harmonics(x, y, z):
    """The 15 real solid harmonics of the module docstring (orders 1, 2, 3)."""
    return [
        x, y, z,
        (2 * z * z - x * x - y * y) / S6, S2 * x * z, S2 * y * z, (x * x - y * y) / S2,
        S2 * x * y,
        z * (2 * z * z - 3 * x * x - 3 * y * y) / S10, S15 * x * (4 * z * z - x * x - y * y) / 10,
        S15 * y * (4 * z * z - x * x - y * y) / 10, S6 * z * (x * x - y * y) / 2, S6 * x * y * z,
        x * (x * x - 3 * y * y) / 2, y * (3 * x * x - y * y) / 2,
    ]


ORDER = [1] * 3 + [2] * 5 + [3] * 7


def potential(d):
    """ψ_k = S_k / (4π r^(2l+1)) for displacements d (..., 3)."""
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    r = np.sqrt(x * x + y * y + z * z)
    return np.stack([s / (4 * math.pi * r ** (2 * ll + 1))
                     for s, ll in zip(harmonics(x, y, z), ORDER, strict=True)], axis=-1)


def grains_at(pos, vol):
    return point_grains(np.asarray(pos, float), np.asarray(vol, float))


def rows(model, sensors):
    out = np.empty((len(sensors), model.n_columns))
    return model.block(np.asarray(sensors, float), out)


def test_solid_harmonics_are_harmonic():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(5, 3))
    h = 1e-3
    lap = sum(np.array(harmonics(*(p + h * e).T)) + np.array(harmonics(*(p - h * e).T))
              - 2 * np.array(harmonics(*p.T)) for e in np.eye(3)) / h**2
    assert np.max(np.abs(lap)) < 1e-6


@pytest.mark.parametrize("model", ["dipole", "quadrupole", "octupole"])
def test_point_sensor_is_minus_mu0_dz_of_the_potential(model):
    vol = 2.0 * UM**3
    g = grains_at([[1 * UM, -2 * UM, -5 * UM]], [vol])
    m = MultipoleModel.build(g, Sensor(), model)
    sensors = np.array([[0.5, 0.3, 2.0], [10.0, -4.0, 3.0], [-3.0, 6.0, 1.0]]) * UM
    got = rows(m, sensors)
    d = sensors - g.positions[0]
    h = 1e-3 * UM
    e = np.array([0.0, 0.0, h])
    dz = (potential(d + e) - potential(d - e)) / (2 * h)
    want = -4e-7 * math.pi * dz[:, :m.n_per_grain]
    want[:, :3] *= vol  # the dipole unknowns are M = m / V
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7 * np.abs(want).max())


def test_dipole_matches_choclo():
    rng = np.random.default_rng(2)
    pos = rng.uniform(-20, 20, (4, 3)) * UM
    pos[:, 2] = -rng.uniform(1, 30, 4) * UM
    vol = rng.uniform(0.5, 8, 4) * UM**3
    mag = rng.normal(size=(4, 3)) * 1e4
    g = grains_at(pos, vol)
    sensors = np.c_[rng.uniform(-30, 30, (20, 2)) * UM, np.full(20, 2 * UM)]
    got = rows(MultipoleModel.build(g, Sensor(), "dipole"), sensors) @ mag.ravel()
    want = np.zeros(20)
    for i, s in enumerate(sensors):
        for k in range(4):
            mom = mag[k] * vol[k]
            want[i] += choclo.dipole.magnetic_u(*s, *pos[k], *mom)
    # choclo's μ0 is the measured one (CODATA), 5.5e-10 from 4π·1e-7
    assert np.allclose(got, want, rtol=1e-8, atol=1e-12 * np.abs(want).max())


def _gauss_average(model_point, sensor_centre, half, n=24):
    """Average of the point model's rows over the box centre ± half by Gauss–Legendre."""
    t, w = np.polynomial.legendre.leggauss(n)
    axes = [(sensor_centre[k] + half[k] * t, w / 2) if half[k] > 0
            else (np.array([sensor_centre[k]]), np.array([1.0])) for k in range(3)]
    X, Y, Z = np.meshgrid(axes[0][0], axes[1][0], axes[2][0], indexing="ij")
    W = np.einsum("i,j,k->ijk", axes[0][1], axes[1][1], axes[2][1])
    pts = np.c_[X.ravel(), Y.ravel(), Z.ravel()]
    return W.ravel() @ rows(model_point, pts)


@pytest.mark.parametrize("size", [(3 * UM, 2 * UM), (3 * UM, 2 * UM, 1 * UM)])
def test_area_and_volume_sensors_match_quadrature_of_the_point_field(size):
    g = grains_at([[1 * UM, -2 * UM, -4 * UM], [-6 * UM, 5 * UM, -9 * UM]],
                  [1 * UM**3, 3 * UM**3])
    sensor = Sensor.from_size(size)
    avg = MultipoleModel.build(g, sensor, "octupole")
    point = MultipoleModel.build(g, Sensor(), "octupole")
    centres = np.array([[0.0, 0.0, 2.0], [4.0, -3.0, 2.5], [-8.0, 6.0, 1.5]]) * UM
    got = rows(avg, centres)
    half = (sensor.p, sensor.q, sensor.t)
    want = np.array([_gauss_average(point, c, half) for c in centres])
    scale = np.abs(want).reshape(3, 2, 15).max(axis=0)  # per grain and coefficient
    err = np.abs(got - want).reshape(3, 2, 15) / scale
    assert err.max() < 1e-9
    # and the average differs from the point value by much more than that
    assert np.abs(got - rows(point, centres)).max() > 1e-3 * np.abs(want).max()


@pytest.mark.parametrize("model", ["dipole", "quadrupole", "octupole"])
@pytest.mark.parametrize("size", [(), (3 * UM, 2 * UM), (3 * UM, 2 * UM, 1 * UM)])
def test_the_field_kernel_is_the_rows_times_the_coefficients(model, size):
    """`field` (Q·m without rows, tiled over sensors) against `block` @ m, on a sensor count
    that leaves a partial tile, for point, area and volume sensors."""
    rng = np.random.default_rng(5)
    g = grains_at(rng.uniform(-20, 20, (7, 3)) * UM - [0, 0, 30 * UM],
                  rng.uniform(1, 8, 7) * UM**3)
    m = MultipoleModel.build(g, Sensor.from_size(size), model)
    sensors = np.c_[rng.uniform(-40, 40, (150, 2)) * UM, np.full(150, 2 * UM)]
    q = rows(m, sensors)
    coefficients = rng.standard_normal(m.n_columns) / np.abs(q).max(axis=0)  # all count
    want = q @ coefficients
    got = m.field(sensors, coefficients)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    assert np.abs(want).max() > 0


def test_far_field_of_a_uniform_cuboid():
    """A uniformly magnetized cuboid (half-lengths a, b, c, magnetization M) has, about its
    centre, the dipole M V, no quadrupole, and an octupole potential −M·∇ of the Newtonian
    quadrupole: ψ₃ = −(1/4π) M·∇[(1/2) Σ I_ij (3x_i x_j − r²δ_ij)/r⁵], I = V diag(a², b², c²)/3.
    Fitting the octupole model to the exact cuboid field far away recovers them."""
    a, b, c = 3 * UM, 1 * UM, 2 * UM
    vol = 8 * a * b * c
    M = np.array([2e3, -1e3, 3e3])
    rng = np.random.default_rng(3)
    n = 600
    u = rng.normal(size=(n, 3))
    u[:, 2] = np.abs(u[:, 2]) + 0.3
    d = 40 * UM * u / np.linalg.norm(u, axis=1, keepdims=True)  # sensor − centre
    field = np.array([1e-7 * np.dot(_point_exact(*di, a, b, c), M) for di in d])
    g = grains_at([[0.0, 0.0, 0.0]], [vol])
    q = rows(MultipoleModel.build(g, Sensor(), "octupole"), d)
    # the library's columns, scaled to comparable size for the fit
    scale = np.linalg.norm(q, axis=0)
    coef = np.linalg.lstsq(q / scale, field, rcond=None)[0] / scale
    assert np.allclose(coef[:3], M, rtol=2e-3)
    # octupole from the Newtonian quadrupole, projected onto the basis by least squares
    inertia = vol * np.diag([a * a, b * b, c * c]) / 3
    h = 1e-4 * UM

    def newton_quadrupole(p):
        r = np.linalg.norm(p, axis=-1)
        return 0.5 * (3 * np.einsum("ij,ni,nj->n", inertia, p, p)
                      - np.trace(inertia) * r**2) / r**5

    grad = np.stack([(newton_quadrupole(d + h * e) - newton_quadrupole(d - h * e)) / (2 * h)
                     for e in np.eye(3)], axis=1)
    psi3 = -(grad @ M) / (4 * math.pi)
    oct_basis = potential(d)[:, 8:]
    want_oct = np.linalg.lstsq(oct_basis, psi3, rcond=None)[0]
    assert np.allclose(oct_basis @ want_oct, psi3, rtol=1e-6, atol=1e-9 * np.abs(psi3).max())
    assert np.allclose(coef[8:], want_oct, rtol=0.05, atol=0.02 * np.abs(want_oct).max())
    assert np.abs(coef[3:8]).max() < 0.02 * np.abs(want_oct).max() / (40 * UM)


def test_to_library_gives_moments():
    coef = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    out = to_library(coef, np.array([2.0]))
    assert out.tolist() == [[2.0, 4.0, 6.0, 4.0, 5.0, 6.0, 7.0, 8.0]]


def test_bad_grains_and_sensors_refused():
    with pytest.raises(InputError, match="volume"):
        point_grains(np.zeros((2, 3)), np.array([1.0, 0.0]), source="g.txt")
    with pytest.raises(InputError, match="label 3 appears more than once"):
        point_grains(np.zeros((2, 3)), np.ones(2), np.array([3, 3]))
    with pytest.raises(InputError, match="sensor size"):
        Sensor.from_size((1e-6, 0.0))


def test_kernels_module_is_what_the_generator_writes():
    """The committed closed forms are the generator's (sympy derivation) output."""
    import importlib.util
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "gen_multipole_kernels.py"
    spec = importlib.util.spec_from_file_location("gen_multipole_kernels", tool)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.OUT.read_text(encoding="utf-8") == gen.generate()
