"""Pixel masks of a map: rectangles and polygons given in m, or boolean arrays, checked.

A mask is a boolean (ny, nx) array. Background steps take a mask that is True on the
off-sample (background) pixels; `apply_mask` blanks (NaN) the pixels outside a mask.
"""

from __future__ import annotations

import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData


def check_mask(m: MapData, mask: np.ndarray) -> np.ndarray:
    """`mask` as a boolean array of the map's shape, or InputError."""
    mask = np.asarray(mask)
    if mask.shape != m.shape:
        raise InputError(f"the mask has shape {mask.shape}; expected the map's {m.shape}")
    if mask.dtype != bool:
        raise InputError(f"the mask is of type {mask.dtype}; expected a boolean array")
    return mask


def rectangle_mask(
    m: MapData, x_range: tuple[float, float], y_range: tuple[float, float]
) -> np.ndarray:
    """True on the pixels whose centres lie in x_range × y_range (m, ends included)."""
    return in_range(m.y, y_range)[:, None] & in_range(m.x, x_range)[None, :]


# Grid positions are x0 + step·i in metres, so a pixel at 12000 µm is stored as
# 0.011999999999999999 m: a range's ends take in what lies a picometre past them.
END_TOLERANCE_M = 1e-12


def in_range(values: np.ndarray, ends: tuple[float, float]) -> np.ndarray:
    """True where `values` (m) lie between `ends`, in either order, ends included to
    rounding (END_TOLERANCE_M)."""
    lo, hi = sorted(ends)
    return (values >= lo - END_TOLERANCE_M) & (values <= hi + END_TOLERANCE_M)


def polygon_mask(m: MapData, vertices: np.ndarray) -> np.ndarray:
    """True on the pixels whose centres lie inside the polygon (K, 2) of (x, y) vertices in m.

    Even-odd rule; the polygon closes itself.
    """
    v = np.asarray(vertices, dtype=float)
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not np.all(np.isfinite(v)):
        raise InputError(f"polygon has shape {v.shape}; expected at least 3 finite (x, y) vertices")
    px, py = np.meshgrid(m.x, m.y)
    inside = np.zeros(m.shape, bool)
    for (xa, ya), (xb, yb) in zip(v, np.roll(v, -1, axis=0), strict=True):
        crosses = (ya > py) != (yb > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = xa + (py - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (px < x_cross)
    return inside


def apply_mask(m: MapData, keep: np.ndarray) -> MapData:
    """The map with the pixels outside `keep` set to NaN."""
    keep = check_mask(m, keep)
    return m.with_bz(np.where(keep, m.bz, np.nan))


def background_pixels(m: MapData, mask: np.ndarray, *, need: int = 1) -> np.ndarray:
    """The mask restricted to measured pixels; InputError if fewer than `need` remain."""
    used = check_mask(m, mask) & np.isfinite(m.bz)
    if used.sum() < need:
        raise InputError(
            f"the background mask holds {int(used.sum())} measured pixels of "
            f"'{m.name or 'the map'}'; expected at least {need}"
        )
    return used
