"""The Fourier tools refereed by choclo's point-dipole field (Fatiando a Terra's code, not ours).

Three dipoles of mixed moments under a map whose pixels are not square (dx ≠ dy) and whose
sides differ (nx ≠ ny), so a swapped axis, a swapped step, a wrong sign of i or a wrong
factor cannot hide: every product of `smm_daq.analysis.fourier` is compared with choclo's
Bx, By, Bz sampled on the same grid, at the map's height and higher.

What the comparison may leave, from the math rather than tuned: the transfer functions are
exact for a field sampled without aliasing, and the nearest source is 11 µm below the map,
so the spectrum at the Nyquist wavenumber π/dy has fallen by e^{-π·11/1.4} ≈ 2e-11. What
remains is the window: the map cuts Bz off where it is still ε_edge of its peak (the border's
largest |Bz|, computed from the data below), the padding puts something no larger in its
place, and every transfer here has |T| ≤ 1, so the error is of the order of ε_edge: it must
stay below ε_edge over the interior (20 pixels in from each side) and 2 ε_edge at the edges.
A swapped step alone gives an error of ~0.14 of the peak, forty times ε_edge.
"""

from __future__ import annotations

import numpy as np
import pytest
from choclo.dipole import magnetic_field
from numba import njit

from smm_daq.analysis.fourier import (
    average_over_sensor,
    horizontal_components,
    remove_sensor_area,
    upward_continue,
)
from smm_daq.storage.mapdata import MapData

UM = 1e-6
SOURCES = np.array([[20.0, -10.0, -5.0], [-30.0, 25.0, -9.0], [5.0, 30.0, -7.0]]) * UM
MOMENTS = np.array([[3.0, -1.0, 2.0], [-1.0, 2.0, -2.5], [0.5, 0.5, 1.5]]) * 1e-12  # A m²
HEIGHT = 6 * UM
DX, DY = 1.0 * UM, 1.4 * UM
NX, NY = 160, 120
INNER = (slice(20, -20), slice(20, -20))


@njit(cache=True)
def _choclo_field(px, py, pz, sources, moments):  # pragma: no cover - compiled
    out = np.zeros((px.size, 3))
    for i in range(px.size):
        for j in range(sources.shape[0]):
            be, bn, bu = magnetic_field(
                px[i], py[i], pz[i], sources[j, 0], sources[j, 1], sources[j, 2],
                moments[j, 0], moments[j, 1], moments[j, 2],
            )
            out[i, 0] += be
            out[i, 1] += bn
            out[i, 2] += bu
    return out


def axes() -> tuple[np.ndarray, np.ndarray]:
    return (np.arange(NX) - NX / 2) * DX, (np.arange(NY) - NY / 2) * DY


def choclo_b(height: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(NY, NX, 3) B in T on the map grid at `height`, points shifted by `offset` (m)."""
    x, y = axes()
    px, py = np.meshgrid(x + offset[0], y + offset[1])
    b = _choclo_field(px.ravel(), py.ravel(), np.full(px.size, height), SOURCES, MOMENTS)
    return b.reshape(NY, NX, 3)


def edge_ratio(bz: np.ndarray) -> float:
    border = np.concatenate([bz[0], bz[-1], bz[:, 0], bz[:, -1]])
    return float(np.abs(border).max() / np.abs(bz).max())


@pytest.fixture(scope="module")
def at_height() -> tuple[MapData, np.ndarray, float]:
    b = choclo_b(HEIGHT)
    x, y = axes()
    eps = edge_ratio(b[..., 2])
    assert eps < 5e-3  # the window is wide enough for the bound to mean something
    return MapData(b[..., 2], x, y, height=HEIGHT, sensor_size=(0.0, 0.0)), b, eps


@pytest.mark.parametrize("odd", [False, True], ids=["even", "odd"])
@pytest.mark.parametrize("padding", ["taper", "mirror", "none"])
def test_bx_by_from_bz_are_choclos_on_a_rectangular_grid(at_height, padding, odd):
    m, b, eps = at_height
    if odd:  # 119 × 159 pixels: odd sizes pad and cut back by other index arithmetic
        b = b[:-1, 1:]
        m = MapData(b[..., 2], m.x[1:], m.y[:-1], height=HEIGHT, sensor_size=(0.0, 0.0))
        eps = edge_ratio(b[..., 2])
    bx, by = horizontal_components(m, padding=padding)
    scale = np.abs(b).max()
    for got, want in ((bx, b[..., 0]), (by, b[..., 1])):
        err = np.abs(got - want) / scale
        assert err[INNER].max() < eps
        assert err.max() < 2 * eps


@pytest.mark.parametrize("dz_um", [2.0, 5.0, 12.0])
def test_upward_continuation_gives_choclos_field_higher_up(at_height, dz_um):
    m, _, eps = at_height
    dz = dz_um * UM
    want = choclo_b(HEIGHT + dz)[..., 2]
    up = upward_continue(m, dz)
    assert up.height == pytest.approx(HEIGHT + dz)
    # the window's error is ε_edge of the map's own peak, and e^{-k dz} ≤ 1 carries it up
    err = np.abs(up.bz - want) / np.abs(m.bz).max()
    assert err[INNER].max() < eps
    assert err.max() < 2 * eps
    # continuation is a semigroup: up a then up b is up a + b (to rounding, inside the window)
    twice = upward_continue(upward_continue(m, dz / 2), dz / 2)
    assert np.abs(twice.bz - up.bz)[INNER].max() < eps * np.abs(m.bz).max()


def test_sensor_area_average_is_gauss_quadrature_of_choclos_point_field(at_height):
    """A w × l sensor reads the mean of Bz over its area: 8 × 8 Gauss-Legendre nodes of
    choclo's point field (for a field analytic within d of the sensor the error falls as ρ^-16,
    ρ = d/s + √((d/s)² + 1) ≈ 7.5 for half-width s = 3 µm and d = 11 µm: far below ε_edge)."""
    m, _, eps = at_height
    size = (4.0 * UM, 6.0 * UM)
    nodes, weights = np.polynomial.legendre.leggauss(8)
    want = np.zeros((NY, NX))
    for ni, wi in zip(nodes, weights, strict=True):
        for nj, wj in zip(nodes, weights, strict=True):
            shift = (ni * size[0] / 2, nj * size[1] / 2)
            want += wi * wj / 4 * choclo_b(HEIGHT, shift)[..., 2]
    averaged = average_over_sensor(m, size)
    scale = np.abs(want).max()
    assert averaged.sensor_size == size
    err = np.abs(averaged.bz - want) / scale
    assert err[INNER].max() < eps
    assert err.max() < 2 * eps
    # the area matters here (so the check can see a wrong size or axis): averaging moves the
    # map by far more than the tolerance
    assert np.abs(want - m.bz)[INNER].max() > 10 * eps * scale
    # and back: T/(T² + α) with α = 1e-6 undoes T except where T² ≲ α, i.e. near the zeros of
    # the sinc, the first at k = 2π/6 µm, where this field has fallen by e^{-11 · 1.05} ≈ 1e-5
    back = remove_sensor_area(
        MapData(want, m.x, m.y, height=HEIGHT, sensor_size=size), regularization=1e-6
    )
    assert np.abs(back.bz - m.bz)[INNER].max() < eps * np.abs(m.bz).max()
