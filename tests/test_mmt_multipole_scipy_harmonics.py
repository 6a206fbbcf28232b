"""The point-source model's 15 columns against a potential built from scipy's spherical
harmonics, not from the basis table the model and its other tests were written from.

The multipole library's basis (docs/mmt-models.md) is, order by order, the real Schmidt
semi-normalised solid harmonics r^l P_l^m(cos θ) {cos, sin}(mφ) · √((2 − δ_m0)(l − m)!/(l + m)!)
times c_l = √(2^l (l!)² / (2l)!): 1 for the dipole, √(2/3) for the quadrupole and √(2/5) for
the octupole. Here they come from scipy.special's complex orthonormal Y_l^m (Condon–Shortley
phase removed), Bz = −μ0 ∂ψ/∂z by central differences.
"""

import math

import numpy as np
import scipy.special as sps

from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains

MU0 = 4e-7 * math.pi
UM = 1e-6
# (l, m, cos or sin) in the model's column order: dipole x, y, z; then m = 0, 1c, 1s, 2c, ...
COLUMNS = [(1, 1, "c"), (1, 1, "s"), (1, 0, "c")] + [
    (l, m, cs) for l in (2, 3) for m in range(l + 1) for cs in (("c",) if m == 0 else "cs")]


def _ylm(l: int, m: int, polar: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    if hasattr(sps, "sph_harm_y"):  # scipy >= 1.15
        return sps.sph_harm_y(l, m, polar, azimuth)
    return sps.sph_harm(m, l, azimuth, polar)


def solid_harmonic(l: int, m: int, cs: str, d: np.ndarray) -> np.ndarray:
    """The library's S_k at displacements d (3, N)."""
    r = np.linalg.norm(d, axis=0)
    y = _ylm(l, m, np.arccos(d[2] / r), np.arctan2(d[1], d[0]))
    real = y.real if m == 0 else math.sqrt(2) * (-1) ** m * (y.real if cs == "c" else y.imag)
    schmidt = math.sqrt(4 * math.pi / (2 * l + 1)) * r**l * real
    return math.sqrt(2**l * math.factorial(l) ** 2 / math.factorial(2 * l)) * schmidt


def bz_by_differences(k: int, d: np.ndarray, h: float = 1e-9) -> np.ndarray:
    l, m, cs = COLUMNS[k]

    def psi(dd: np.ndarray) -> np.ndarray:
        return solid_harmonic(l, m, cs, dd) / (4 * math.pi * np.linalg.norm(dd, axis=0)
                                               ** (2 * l + 1))

    step = np.array([[0.0], [0.0], [h]])
    return -MU0 * (psi(d + step) - psi(d - step)) / (2 * h)


def test_every_column_is_the_field_of_scipys_harmonic_potential():
    source = np.array([1.0, -2.0, -5.0]) * UM
    volume = 2.0 * UM**3
    grains = point_grains(source[None], np.array([volume]))
    rng = np.random.default_rng(1)
    sensors = np.c_[rng.uniform(-15, 15, (30, 2)) * UM, np.full(30, 4 * UM)]
    q = MultipoleModel.build(grains, Sensor(), "octupole").block(sensors, np.zeros((30, 15)))
    d = (sensors - source).T
    for k in range(15):
        expected = bz_by_differences(k, d) * (volume if k < 3 else 1.0)  # dipole: M = m/V
        assert np.abs(q[:, k] - expected).max() <= 1e-6 * np.abs(expected).max(), COLUMNS[k]
