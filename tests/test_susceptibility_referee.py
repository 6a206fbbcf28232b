"""The layer inversion's transfer function and its inversion, refereed by choclo's prism field
(Fatiando a Terra's closed forms, not ours) on grids of non-square pixels.

`layer_transfer` is the 2-D spectrum of the Bz of one cell (dx × dy × t) of the layer sampled
on the grid: its inverse FFT must be choclo's Bz of that prism at the grid's offsets. The
sensor here is only 2.5 µm above the layer, under two pixels (dy = 1.4 µm), where the
band-limited closed form alone misses the aliases, e^{-π h/dy} ≈ 4e-3 of the peak. What may
remain, from the math: the periodic images of the cell, ≥ 180 pixels (252 µm) away, where
Bz is below (h/252 µm)³ ≈ 1e-6 of its peak, and the aliases left out, below 1e-9. So 2e-5 of
the peak; a wrong sign of the in-plane term, a swapped axis or step, a missing cell-size
factor or the aliases left out give errors of 1e-3 to 1.

At this height (15 aliases along the 1.4 µm axis) `layer_transfer` takes its sampled route,
whose own budget is the near part's tail (~1e-6) and the cuboid field's area mean (1e-7); the
alias sum, taken a few pixels up or more, is held to it by the two-routes tests below.
"""

from __future__ import annotations

import numpy as np
import pytest
from choclo.prism import magnetic_u
from numba import njit
from scipy.signal import fftconvolve

from smm_daq.analysis.susceptibility import invert_magnetization, layer_transfer
from smm_daq.storage.mapdata import MapData

UM = 1e-6
DX, DY = 1.0 * UM, 1.4 * UM
HEIGHT, THICKNESS = 2.5 * UM, 3 * UM
TOLERANCE = 2e-5
DIRECTIONS = {
    "tilted": np.array([0.6, -0.48, 0.64]),
    "along x": np.array([1.0, 0.0, 0.0]),
    "along y": np.array([0.0, 1.0, 0.0]),
}


@njit(cache=False)  # choclo's prism cannot be cached (numba: dynamic globals)
def _cell_bz(px, py, h, dx, dy, t, u):  # pragma: no cover - compiled
    """choclo's Bz (T) at (px, py, h) of a cell [-dx/2, dx/2] × [-dy/2, dy/2] × [-t, 0], M = u."""
    out = np.zeros(px.size)
    for i in range(px.size):
        out[i] = magnetic_u(px[i], py[i], h, -dx / 2, dx / 2, -dy / 2, dy / 2, -t, 0.0,
                            u[0], u[1], u[2])
    return out


def cell_bz(ox: np.ndarray, oy: np.ndarray, u: np.ndarray, *, height: float, thickness: float,
            dx: float, dy: float) -> np.ndarray:
    px, py = np.meshgrid(ox, oy)
    bz = _cell_bz(px.ravel(), py.ravel(), height, dx, dy, thickness, np.asarray(u, float))
    return bz.reshape(px.shape)


def transfer_kernel(u: np.ndarray, sensor_size=(0.0, 0.0), half=30) -> np.ndarray:
    """The inverse FFT of `layer_transfer` on a 360 × 512 grid, offsets -half..half pixels."""
    ny, nx = 360, 512
    t = layer_transfer((ny, nx), (DX, DY), u, height=HEIGHT, thickness=THICKNESS,
                       sensor_size=sensor_size)
    k = np.fft.fftshift(np.fft.irfft2(t, s=(ny, nx)))
    return k[ny // 2 - half : ny // 2 + half + 1, nx // 2 - half : nx // 2 + half + 1]


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_transfer_is_the_spectrum_of_choclos_cell_field(name):
    u = DIRECTIONS[name]
    offsets = np.arange(-30, 31)
    want = cell_bz(offsets * DX, offsets * DY, u, height=HEIGHT, thickness=THICKNESS,
                   dx=DX, dy=DY)
    got = transfer_kernel(u)
    assert np.abs(got - want).max() < TOLERANCE * np.abs(want).max()


def test_transfer_with_a_sensor_area_is_the_area_mean_of_choclos_field():
    """8 × 8 Gauss-Legendre nodes over the 2 × 2.8 µm area: the field is analytic within
    h = 2.5 µm of it, so the rule's error is ~ρ^-16 with ρ = h/s + √((h/s)² + 1) ≈ 3.8 (s =
    1.4 µm the larger half-width): 5e-10, far below the tolerance."""
    u = DIRECTIONS["tilted"]
    size = (2 * DX, 2 * DY)
    offsets = np.arange(-12, 13)
    nodes, weights = np.polynomial.legendre.leggauss(8)
    want = np.zeros((offsets.size, offsets.size))
    for ni, wi in zip(nodes, weights, strict=True):
        for nj, wj in zip(nodes, weights, strict=True):
            want += wi * wj / 4 * cell_bz(offsets * DX + ni * size[0] / 2,
                                          offsets * DY + nj * size[1] / 2, u,
                                          height=HEIGHT, thickness=THICKNESS, dx=DX, dy=DY)
    got = transfer_kernel(u, sensor_size=size, half=12)
    assert np.abs(got - want).max() < TOLERANCE * np.abs(want).max()
    point = transfer_kernel(u, half=12)
    assert np.abs(point - want).max() > 100 * TOLERANCE * np.abs(want).max()  # the area shows


def test_inversion_on_non_square_pixels_has_the_error_it_states():
    """M drawn from the Tikhonov prior itself (white, SD s: the prior of ℓ = 0 and
    λ = σ²/s²), the map made by choclo (each cell's exact prism field, summed by a linear
    convolution): the errors must then scatter by the posterior SD the inversion states.
    ~2000 interior pixels, correlated over a few pixels, give the SD of the errors to about
    5 %; the stated SD itself is an approximation (periodic, coverage-interpolated), so 15 %."""
    rng = np.random.default_rng(12)
    dx, dy, ny, nx = 8 * UM, 11 * UM, 44, 60
    height, thickness = 12 * UM, 10 * UM
    u = np.array([0.3, -0.5, 0.81])
    u = u / np.linalg.norm(u)
    prior_sd, noise = 400.0, 2e-7  # A/m, T
    ox = np.arange(-(nx - 1), nx) * dx
    oy = np.arange(-(ny - 1), ny) * dy
    kernel = cell_bz(ox, oy, u, height=height, thickness=thickness, dx=dx, dy=dy)
    x, y = np.arange(nx) * dx, np.arange(ny) * dy
    errors, sds = [], []
    for _ in range(3):
        mag = rng.normal(size=(ny, nx)) * prior_sd
        bz = fftconvolve(mag, kernel, mode="full")[ny - 1 : 2 * ny - 1, nx - 1 : 2 * nx - 1]
        m = MapData(bz + rng.normal(size=bz.shape) * noise, x, y, height=height,
                    sensor_size=(0.0, 0.0))
        inv = invert_magnetization(m, u, thickness, noise=noise,
                                   regularization=(noise / prior_sd) ** 2, correlation_length=0.0)
        assert inv.converged
        inner = (slice(10, -10), slice(10, -10))
        errors.append((inv.values - mag)[inner])
        sds.append(inv.sd[inner])
    stated = float(np.mean(sds))
    assert stated < 0.7 * prior_sd  # the data constrain M: the check is not the prior's
    assert float(np.std(errors)) == pytest.approx(stated, rel=0.15)


@pytest.mark.parametrize(("height", "size"), [(1.5 * UM, (0.0, 0.0)), (3.0 * UM, (2 * DX, DY))])
def test_the_two_ways_to_the_transfer_agree(height, size):
    """The aliased closed-form spectrum and the split sampled field are two routes to one
    transfer (the first for a sensor a few pixels up or more, the second nearer). They agree
    to what the second cuts: its near part's r⁻⁷ tail beyond 32 lifts (128 pixels), whose
    sum over the plane falls as (lift / reach)⁴ ≈ 1e-6 of the peak (measured 0.8-1.0e-6; the
    aliases left out, 1e-9). 1e-5: ten times that; a near part cut at half this grid instead
    misses 4-5e-6, at half a 64-pixel grid 2e-4."""
    from smm_daq.analysis.susceptibility import _aliased, _sampled

    u = DIRECTIONS["tilted"]
    kw = {"height": height, "thickness": THICKNESS, "sensor_size": size}
    spectral = _aliased((180, 256), (DX, DY), u, **kw)
    spatial = _sampled((180, 256), (DX, DY), u, **kw)
    assert np.abs(spectral - spatial).max() < 1e-5 * np.abs(spectral).max()


@pytest.mark.parametrize("shape", [(16, 16), (15, 17), (1, 24), (64, 64)])
@pytest.mark.parametrize("height", [0.3 * DX, 2.0 * DX])
def test_the_sampled_transfer_of_a_small_grid_holds_all_its_images(shape, height):
    """A grid smaller than the near part's reach (the solution grid of a small map, or the
    map itself when λ is chosen) is periodic with a period shorter than the r⁻⁷ tail: the
    near part must fold in every image within its reach, not stop at half the grid (which
    missed 4 % of the peak on 16 × 16 pixels, 30-60 % on one row). Same bound as above."""
    from smm_daq.analysis.susceptibility import _aliased, _sampled

    u = DIRECTIONS["tilted"]
    kw = {"height": height, "thickness": THICKNESS, "sensor_size": (DX, 0.5 * DY)}
    spectral = _aliased(shape, (DX, DY), u, **kw)
    spatial = _sampled(shape, (DX, DY), u, **kw)
    assert np.abs(spectral - spatial).max() < 1e-5 * np.abs(spectral).max()


def test_near_contact_where_aliases_number_hundreds_the_transfer_is_still_choclos_field():
    """At a tenth of a pixel up the aliases number hundreds; the transfer then comes from the
    sampled field, still the spectrum of choclo's cell field."""
    from smm_daq.analysis import susceptibility

    height = 0.1 * DX
    mx = susceptibility._alias_orders(height, DX)
    assert (2 * mx + 1) ** 2 > 100 * susceptibility._MAX_ALIAS_TERMS
    ny, nx = 90, 128
    t = layer_transfer((ny, nx), (DX, DY), DIRECTIONS["tilted"], height=height,
                       thickness=THICKNESS, sensor_size=(0.0, 0.0))
    got = np.fft.irfft2(t, s=(ny, nx))
    offsets_x, offsets_y = np.fft.fftfreq(nx, 1 / nx)[:9], np.fft.fftfreq(ny, 1 / ny)[:9]
    want = cell_bz(offsets_x * DX, offsets_y * DY, DIRECTIONS["tilted"], height=height,
                   thickness=THICKNESS, dx=DX, dy=DY)
    assert np.abs(got[:9, :9] - want).max() < TOLERANCE * np.abs(want).max()
