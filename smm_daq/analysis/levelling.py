"""Line levelling: remove a per-line offset (or slope) from sensor drift between scan lines,
fitted on background pixels only so the sample's own field is not levelled away.

Lines run along x (one row of the map per line, as the raster scans them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.masks import background_pixels
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData


@dataclass(frozen=True)
class Levelling:
    map: MapData
    offsets: np.ndarray  # (ny,) T removed from each line (at the map's centre x)
    slopes: np.ndarray  # (ny,) T/m removed from each line (zeros for order 0)
    interpolated: np.ndarray  # (ny,) bool: lines with too few background pixels, filled in
    used: np.ndarray  # (ny, nx) bool: the pixels fitted (the mask's measured ones on lines fitted)


def level_lines(m: MapData, mask: np.ndarray, *, order: int = 0) -> Levelling:
    """Subtract from each line a constant (order 0) or a straight line (order 1) fitted to its
    background pixels; lines with fewer than order + 1 of them take the values interpolated
    from their neighbours."""
    if order not in (0, 1):
        raise InputError(f"levelling order is {order!r}; expected 0 (offset) or 1 (slope)")
    used = background_pixels(m, mask, need=order + 1)
    xc = m.x - m.x.mean()
    ny = m.shape[0]
    offsets = np.full(ny, np.nan)
    slopes = np.zeros(ny)
    for iy in range(ny):
        sel = used[iy]
        if sel.sum() < order + 1 or (order == 1 and np.ptp(xc[sel]) == 0):
            continue
        if order == 0:
            offsets[iy] = m.bz[iy, sel].mean()
        else:
            slopes[iy], offsets[iy] = np.polyfit(xc[sel], m.bz[iy, sel], 1)
    missing = np.isnan(offsets)
    if missing.all():
        raise InputError("no scan line has enough background pixels to level it")
    lines = np.arange(ny)
    offsets[missing] = np.interp(lines[missing], lines[~missing], offsets[~missing])
    if order == 1:
        slopes[missing] = np.interp(lines[missing], lines[~missing], slopes[~missing])
    out = m.bz - offsets[:, None] - slopes[:, None] * xc[None, :]
    return Levelling(m.with_bz(out), offsets, slopes, missing, used & ~missing[:, None])
