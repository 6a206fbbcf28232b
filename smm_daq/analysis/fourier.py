"""Fourier tools for Bz maps: Bx and By from Bz, upward continuation, the sensor-area transfer
and its regularised inverse.

Above the sources the field is a potential field, so in the 2-D Fourier domain (k = |(kx, ky)|,
f(x) = ∫ F(k) e^{i k·x}):
    Bx = -i kx / k · Bz,   By = -i ky / k · Bz           (Lima & Weiss 2009)
    Bz(h + dz) = e^{-k dz} Bz(h)                          (upward continuation, dz ≥ 0)
    <Bz>_{w × l} = sinc(kx w / 2) sinc(ky l / 2) · Bz     (average over the sensor's area)
with sinc(u) = sin(u) / u.

A map is a window onto a field that does not end at its edges, and an FFT treats it as one
tile of a periodic pattern. Unmeasured (NaN) pixels are filled smoothly first
(`fill.fill_nan`), the map is padded to twice its size so the edges of the tile meet far from
the data, and the result is cut back and NaN restored where the input had NaN. Padding
"taper" (the default) reflects it and fades the reflection to the map's mean with a cosine
(continuous and flat far out); "mirror" only reflects it (continuous, but Bz made even about
each edge, which is wrong for Bx and By there); "none" transforms the map as it is. On a
window four source sizes wide the taper cuts the largest Bx error about fourfold.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from smm_daq.analysis.fill import fill_nan
from smm_daq.analysis.grids import require_regular
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

PADDINGS = ("mirror", "taper", "none")


def wavenumbers(shape: tuple[int, int], step: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Angular wavenumbers kx (1, nx) and ky (ny, 1) in rad/m of a full FFT of `shape`."""
    ny, nx = shape
    kx = 2 * np.pi * np.fft.fftfreq(nx, step[0])
    ky = 2 * np.pi * np.fft.fftfreq(ny, step[1])
    return kx[None, :], ky[:, None]


def periodic_smooth(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split u = p + s (Moisan 2011): p periodic without the jumps at the edges that make an
    FFT ring, s smooth (harmonic inside, carrying those jumps). p may be transformed exactly;
    s is smooth enough for spline interpolation."""
    ny, nx = u.shape
    v = np.zeros_like(u)
    v[0, :] += u[-1, :] - u[0, :]
    v[-1, :] += u[0, :] - u[-1, :]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    q = np.arange(ny)[:, None]
    r = np.arange(nx)[None, :]
    denom = 2 * np.cos(2 * np.pi * q / ny) + 2 * np.cos(2 * np.pi * r / nx) - 4
    denom[0, 0] = 1.0
    s_hat = np.fft.fft2(v) / denom
    s_hat[0, 0] = 0.0
    s = np.fft.ifft2(s_hat).real
    return u - s, s


def sinc_transfer(kx: np.ndarray, ky: np.ndarray, size: tuple[float, float]) -> np.ndarray:
    """Transfer function of the average over a w × l rectangle (size in m) centred on the point."""
    w, l = size
    return np.sinc(kx * w / (2 * np.pi)) * np.sinc(ky * l / (2 * np.pi))


def extend(values: np.ndarray, padding: str) -> tuple[np.ndarray, tuple[slice, slice]]:
    """`values` (no NaN) padded to about twice its size, and the slices that cut it back."""
    if padding not in PADDINGS:
        raise InputError(f"padding is {padding!r}; expected one of {', '.join(PADDINGS)}")
    ny, nx = values.shape
    if padding == "none":
        return values, (slice(0, ny), slice(0, nx))
    py, px = ny // 2, nx // 2
    out = np.pad(values, ((py, py), (px, px)), mode="symmetric")
    if padding == "taper":
        mean = float(values.mean())

        def ramp(n: int, pad: int) -> np.ndarray:
            r = np.ones(n + 2 * pad)
            fade = 0.5 * (1 + np.cos(np.pi * (np.arange(1, pad + 1)) / (pad + 1)))
            r[pad + n :] = fade
            r[:pad] = fade[::-1]
            return r

        out = mean + (out - mean) * np.outer(ramp(ny, py), ramp(nx, px))
    return out, (slice(py, py + ny), slice(px, px + nx))


def apply_transfer(
    m: MapData,
    transfer: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    padding: str = "taper",
) -> np.ndarray:
    """ifft(transfer(kx, ky) · fft(Bz)) on the padded, NaN-filled map, cut back, NaN restored.

    `transfer` must be Hermitian (T(-k) = conj T(k)) so the result is real.
    """
    step = require_regular(m)
    holes = ~np.isfinite(m.bz)
    padded, cut = extend(fill_nan(m.bz), padding)
    kx, ky = wavenumbers(padded.shape, step)
    out = np.fft.ifft2(np.fft.fft2(padded) * transfer(kx, ky)).real[cut]
    out[holes] = np.nan
    return out


def _k(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0  # the k = 0 term is set by each transfer itself
    return k


def horizontal_components(m: MapData, *, padding: str = "taper") -> tuple[np.ndarray, np.ndarray]:
    """Bx and By (ny, nx) in T on the map's grid from its Bz (Lima & Weiss 2009).

    The mean of Bx and By over the window is not determined by Bz and is returned as zero.
    """

    def to_bx(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
        t = -1j * kx / _k(kx, ky)
        t[0, 0] = 0.0
        return t

    def to_by(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
        t = -1j * ky / _k(kx, ky)
        t[0, 0] = 0.0
        return t

    return apply_transfer(m, to_bx, padding=padding), apply_transfer(m, to_by, padding=padding)


def upward_continue(m: MapData, dz: float, *, padding: str = "taper") -> MapData:
    """Bz on a plane dz (m) higher; the result's height is the map's plus dz.

    Downward continuation amplifies noise without bound and is refused.
    """
    if not (np.isfinite(dz) and dz >= 0):
        raise InputError(f"continuation distance is {dz!r} m; expected ≥ 0 (upward only)")
    bz = apply_transfer(m, lambda kx, ky: np.exp(-np.hypot(kx, ky) * dz), padding=padding)
    height = None if m.height is None else m.height + dz
    return m.with_bz(bz, height=height, title=f"{m.title} continued up {dz * 1e6:.4g} µm".strip())


def _require_size(size: tuple[float, float]) -> tuple[float, float]:
    w, l = (float(v) for v in size)
    if not (np.isfinite(w) and np.isfinite(l) and w >= 0 and l >= 0):
        raise InputError(f"sensor size is {size!r} m; expected two lengths ≥ 0")
    return w, l


def _is_point(size: tuple[float, float] | None) -> bool:
    return size is None or (size[0] == 0 and size[1] == 0)


def average_over_sensor(
    m: MapData, size: tuple[float, float], *, padding: str = "taper"
) -> MapData:
    """The map a sensor of active area w × l (m) would see, from a point-sensor map."""
    if not _is_point(m.sensor_size):
        raise InputError(
            f"'{m.name}' was taken with a sensor of size {m.sensor_size} m; expected a point-"
            "sensor map (remove its sensor area first)"
        )
    size = _require_size(size)
    bz = apply_transfer(m, lambda kx, ky: sinc_transfer(kx, ky, size), padding=padding)
    return m.with_bz(bz, sensor_size=size)


def remove_sensor_area(
    m: MapData, *, regularization: float = 1e-3, padding: str = "taper"
) -> MapData:
    """The point-sensor map from one averaged over the sensor's area (Wiener-type inverse).

    Divides by the sinc transfer T as T / (T² + α), α = `regularization`: where |T|² ≫ α the
    area average is undone; near the zeros of T (wavelengths the sensor averages out) the
    map is left damped rather than blown up.
    """
    if m.sensor_size is None:
        raise InputError(f"'{m.name}' has no sensor size; expected one to remove")
    if not (np.isfinite(regularization) and regularization > 0):
        raise InputError(f"regularization is {regularization!r}; expected a number > 0")
    size = _require_size(m.sensor_size)

    def inverse(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
        t = sinc_transfer(kx, ky, size)
        return t / (t**2 + regularization)

    bz = apply_transfer(m, inverse, padding=padding)
    return m.with_bz(bz, sensor_size=(0.0, 0.0))
