"""Fourier tools against the closed-form field of a uniformly magnetised cuboid.

Bz (point and area-averaged) comes from the forward model's closed form
(`smm_daq.analysis.forward.cuboid_bz`). Bx and By come from the cuboid's magnetic scalar
potential, summed here in closed form over its six charged faces (σ = M·n) and differentiated
by central differences: independent of the Fourier code it checks. That potential is itself
checked against a far point dipole, brute-force volume quadrature and `cuboid_bz`.
"""

from __future__ import annotations

import numpy as np
import pytest

from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.fourier import (
    average_over_sensor,
    horizontal_components,
    remove_sensor_area,
    upward_continue,
)
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

MU0 = 4e-7 * np.pi
CENTRE = np.array([1.3e-6, -0.7e-6, -3e-6])
SIZE = np.array([8e-6, 5e-6, 4e-6])
MAG = np.array([2e3, -1e3, 1.5e3])  # A/m
HEIGHT = 4e-6
STEP = 1e-6


def _face_integral(u1, u2, v1, v2, w):
    """∫∫ du dv / sqrt(u² + v² + w²) over [u1, u2] × [v1, v2]."""
    total = 0.0
    for u, su in ((u2, 1), (u1, -1)):
        for v, sv in ((v2, 1), (v1, -1)):
            r = np.sqrt(u**2 + v**2 + w**2)
            with np.errstate(divide="ignore", invalid="ignore"):
                at = np.where(w == 0, 0.0, w * np.arctan(u * v / (w * r)))
            total = total + su * sv * (u * np.log(v + r) + v * np.log(u + r) - at)
    return total


def cuboid_potential(p, centre=CENTRE, size=SIZE, mag=MAG):
    """Magnetic scalar potential (A) at points p (..., 3) of a uniformly magnetised cuboid."""
    half = np.asarray(size) / 2
    phi = 0.0
    for axis in range(3):
        a, b = (i for i in range(3) if i != axis)
        for sign in (1, -1):
            w = centre[axis] + sign * half[axis] - p[..., axis]
            phi = phi + sign * mag[axis] * _face_integral(
                centre[a] - half[a] - p[..., a],
                centre[a] + half[a] - p[..., a],
                centre[b] - half[b] - p[..., b],
                centre[b] + half[b] - p[..., b],
                w,
            )
    return phi / (4 * np.pi)


def cuboid_field(p, **kw):
    """B = -µ0 ∇φ (..., 3) in T, by central differences of the closed-form potential."""
    delta = 1e-9
    out = []
    for axis in range(3):
        e = np.zeros(3)
        e[axis] = delta
        diff = cuboid_potential(p + e, **kw) - cuboid_potential(p - e, **kw)
        out.append(-MU0 * diff / (2 * delta))
    return np.stack(out, axis=-1)


def forward_bz(p, sensor_size=(0.0, 0.0)):
    cuboid = np.concatenate([CENTRE, SIZE])[None, :]
    bz = cuboid_bz(p.reshape(-1, 3), cuboid, MAG[None, :], sensor_size=sensor_size)
    return bz.reshape(p.shape[:-1])


def grid(n=160, height=HEIGHT):
    x = (np.arange(n) - n // 2) * STEP
    px, py = np.meshgrid(x, x)
    return x, np.stack([px, py, np.full_like(px, height)], axis=-1)


def test_reference_field_matches_a_dipole_far_away_and_quadrature_nearby():
    far = np.array([[40e-6, 25e-6, 300e-6], [-250e-6, 90e-6, 120e-6]])
    r = far - CENTRE
    m = MAG * np.prod(SIZE)
    rn = np.linalg.norm(r, axis=1)[:, None]
    dipole = MU0 / (4 * np.pi) * (3 * r * (r @ m)[:, None] / rn**5 - m / rn**3)
    np.testing.assert_allclose(cuboid_field(far), dipole, rtol=3e-3)
    # near: sum of 24³ small dipoles filling the cuboid (midpoint rule)
    near = np.array([3e-6, 2e-6, HEIGHT])
    n = 24
    cells = [(np.arange(n) + 0.5) / n * s - s / 2 + c for s, c in zip(SIZE, CENTRE, strict=True)]
    q = np.stack(np.meshgrid(*cells, indexing="ij"), axis=-1).reshape(-1, 3)
    r = near - q
    rn = np.linalg.norm(r, axis=1)[:, None]
    m = MAG * np.prod(SIZE) / n**3
    quad = (MU0 / (4 * np.pi) * (3 * r * (r @ m)[:, None] / rn**5 - m / rn**3)).sum(axis=0)
    np.testing.assert_allclose(cuboid_field(near), quad, rtol=2e-3, atol=1e-3 * np.abs(quad).max())
    _, p = grid(n=40)
    want = forward_bz(p)
    np.testing.assert_allclose(cuboid_field(p)[..., 2], want, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("padding", ["mirror", "taper"])
def test_bx_by_from_bz_match_the_closed_form(padding):
    x, p = grid()
    b = cuboid_field(p)
    m = MapData(forward_bz(p), x, x, height=HEIGHT)
    bx, by = horizontal_components(m, padding=padding)
    scale = np.abs(b[..., :2]).max()
    inner = (slice(20, -20), slice(20, -20))
    for got, want in ((bx, b[..., 0]), (by, b[..., 1])):
        assert np.abs(got - want)[inner].max() < 0.01 * scale
        assert np.abs(got - want).max() < 0.05 * scale


def test_padding_keeps_the_edge_error_small():
    x, p = grid(n=64)  # a window only ~4 cuboid sizes wide: edges matter
    b = cuboid_field(p)
    m = MapData(forward_bz(p), x, x, height=HEIGHT)
    errors = {
        pad: np.abs(horizontal_components(m, padding=pad)[0] - b[..., 0]).max()
        for pad in ("none", "mirror", "taper")
    }
    # mirroring makes Bz even about each edge, which forces the wrong Bx there; the taper
    # fades the reflection out and does much better
    assert errors["mirror"] < errors["none"]
    assert errors["taper"] < 0.4 * errors["none"]


def test_upward_continuation_matches_the_field_higher_up():
    x, p = grid()
    dz = 3e-6
    m = MapData(forward_bz(p), x, x, height=HEIGHT)
    up = upward_continue(m, dz)
    _, p_up = grid(height=HEIGHT + dz)
    want = forward_bz(p_up)
    assert up.height == pytest.approx(HEIGHT + dz)
    assert np.abs(up.bz - want).max() < 0.01 * np.abs(want).max()
    with pytest.raises(InputError, match="upward only"):
        upward_continue(m, -1e-6)


def test_sensor_area_transfer_and_its_inverse():
    x, p = grid(n=128)
    size = (2.0e-6, 1.5e-6)
    point = MapData(forward_bz(p), x, x, height=HEIGHT, sensor_size=(0.0, 0.0))
    want = forward_bz(p, sensor_size=size)
    averaged = average_over_sensor(point, size)
    scale = np.abs(want).max()
    assert averaged.sensor_size == size
    assert np.abs(averaged.bz - want).max() < 0.005 * scale
    # and back: the area-averaged closed form, deconvolved, gives the point field
    back = remove_sensor_area(MapData(want, x, x, height=HEIGHT, sensor_size=size))
    assert back.sensor_size == (0.0, 0.0)
    assert np.abs(back.bz - point.bz).max() < 0.01 * np.abs(point.bz).max()
    with pytest.raises(InputError, match="point-sensor map"):
        average_over_sensor(averaged, size)


def test_masked_pixels_stay_masked_and_do_not_spoil_the_rest():
    x, p = grid()
    b = cuboid_field(p)
    bz = forward_bz(p)
    bz[100:110, 30:45] = np.nan  # a patch away from the cuboid
    bx, _ = horizontal_components(MapData(bz, x, x))
    assert np.isnan(bx[100:110, 30:45]).all()
    assert np.isfinite(bx).sum() == bz.size - 150
    scale = np.abs(b[..., 0]).max()
    inner = np.zeros(bz.shape, bool)
    inner[20:-20, 20:-20] = True
    inner[95:115, 25:50] = False
    assert np.abs(bx - b[..., 0])[inner].max() < 0.01 * scale
