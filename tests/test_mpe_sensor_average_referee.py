"""Area and volume sensors of the point-source models against quadrature of the closed-form
field, written here from first principles rather than taken from the model's point kernel.

A sensor reads Bz averaged over its active area (w × l) or volume (w × l × t), centred on its
position: a volume sensor at height h spans h − t/2 .. h + t/2, as the multipole library
integrates it (its `Sensor dimensions` are the half-lengths, its `Scan height Hz` the
sensor's centre, its flux divided by 8 hx hy hz). The average is computed here by
composite Gauss–Legendre quadrature of

    dipole:      Bz = μ0/4π (3 z (m·r) / r⁵ − m_z / r³)
    quadrupole:  Bz = −μ0 ∂z ψ, ψ = S(r) / (4π r⁵) (the library's real solid harmonics S),

for several sensor sizes and heights, sources a few µm below the top."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains

UM = 1e-6
MU0_OVER_4PI = 1e-7
S2, S6 = math.sqrt(2.0), math.sqrt(6.0)


def dipole_bz(d: np.ndarray) -> np.ndarray:
    """Bz (P, 3) of unit moments along x, y and z at displacements d (P, 3) from the source."""
    x, y, z = d.T
    r2 = x * x + y * y + z * z
    r5 = r2 * r2 * np.sqrt(r2)
    return MU0_OVER_4PI * np.stack([3 * z * x / r5, 3 * z * y / r5,
                                    3 * z * z / r5 - 1 / (r2 * np.sqrt(r2))], axis=1)


def quadrupole_bz(d: np.ndarray) -> np.ndarray:
    """Bz (P, 5) of the unit quadrupoles q20, q21c, q21s, q22c, q22s at displacements d:
    −μ0/4π ∂z (S / r⁵) = −μ0/4π (∂z S / r⁵ − 5 z S / r⁷)."""
    x, y, z = d.T
    s = np.stack([(2 * z * z - x * x - y * y) / S6, S2 * x * z, S2 * y * z,
                  (x * x - y * y) / S2, S2 * x * y])
    ds = np.stack([4 * z / S6, S2 * x, S2 * y, 0 * z, 0 * z])
    r2 = x * x + y * y + z * z
    r5 = r2 * r2 * np.sqrt(r2)
    return (-MU0_OVER_4PI * (ds / r5 - 5 * z * s / (r5 * r2))).T


def box_mean(field, centre: np.ndarray, half: tuple[float, float, float],
             panels: int = 6, nodes: int = 10) -> np.ndarray:
    """The mean of field(points) over the box centre ± half (an axis of half-length 0 is not
    integrated), by Gauss–Legendre with `nodes` nodes in each of `panels` panels per axis."""
    t, w = np.polynomial.legendre.leggauss(nodes)
    axes = []
    for c, h in zip(centre, half, strict=True):
        if h == 0:
            axes.append((np.array([c]), np.array([1.0])))
            continue
        edges = np.linspace(-h, h, panels + 1)
        mid, rad = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
        axes.append(((c + mid[:, None] + rad[:, None] * t).ravel(),
                     (rad[:, None] * w / (2 * h)).ravel()))
    X, Y, Z = np.meshgrid(axes[0][0], axes[1][0], axes[2][0], indexing="ij")
    weight = np.einsum("i,j,k->ijk", axes[0][1], axes[1][1], axes[2][1]).ravel()
    return weight @ field(np.c_[X.ravel(), Y.ravel(), Z.ravel()])


SOURCE = np.array([1.3 * UM, -0.7 * UM, -2.5 * UM])
VOLUME = 2.0 * UM**3
# full sizes (w, l) or (w, l, thickness) and heights of the sensor's centre above the top
GEOMETRIES = [
    ((1.4 * UM, 1.0 * UM, 2.0 * UM), 2.0 * UM),  # the library fixture's sensor
    ((3.0 * UM, 2.0 * UM, 5.0 * UM), 4.0 * UM),  # thicker than it is wide, near the top
    ((20.0 * UM, 5.0 * UM, 1.0 * UM), 6.0 * UM),  # a long, thin sensor
    ((30.0 * UM, 30.0 * UM, 10.0 * UM), 40.0 * UM),  # a large one, far above
    ((3.0 * UM, 2.0 * UM), 2.0 * UM),  # area sensors
    ((30.0 * UM, 30.0 * UM), 40.0 * UM),
]


@pytest.mark.parametrize(("size", "height"), GEOMETRIES)
def test_area_and_volume_sensors_average_the_closed_form_field(size, height):
    """Each column of Q (dipole and quadrupole) at sensors over, beside and off the source
    is the quadrature mean of the closed-form field over the sensor to 1e-9 of the column's
    largest value; and differs from the point field at its centre, so that the test would
    see a sensor put anywhere else or averaged over the wrong size."""
    half = (size[0] / 2, size[1] / 2, size[2] / 2 if len(size) > 2 else 0.0)
    model = MultipoleModel.build(point_grains(SOURCE[None, :], np.array([VOLUME])),
                                 Sensor.from_size(size), "quadrupole")
    offsets = np.array([[0.0, 0.0], [0.6, 0.4], [2.0, -1.0], [-5.0, 3.0]]) * max(size[:2])
    centres = np.c_[SOURCE[:2] + offsets, np.full(len(offsets), height)]
    got = model.block(centres, np.empty((len(centres), 8)))
    got[:, :3] /= VOLUME  # the model's dipole unknowns are M = m / V

    def closed(points: np.ndarray) -> np.ndarray:
        d = points - SOURCE
        return np.c_[dipole_bz(d), quadrupole_bz(d)]

    want = np.array([box_mean(closed, c, half) for c in centres])
    scale = np.abs(want).max(axis=0)
    np.testing.assert_array_less(np.abs(got - want) / scale, 1e-9)
    assert np.abs(got - closed(centres)).max(axis=0).min() > 1e-3 * scale.min()
