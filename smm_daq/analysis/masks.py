"""Pixel masks of a map: rectangles and polygons given in m, or boolean arrays, checked.

A mask is a boolean (ny, nx) array. Background steps take a mask that is True on the
off-sample (background) pixels; `apply_mask` blanks (NaN) the pixels outside a mask.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

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


# Coordinates (m) up to this: a crossing's product of two differences stays below 2**1002
OVERFLOW_FREE = 2.0**500


def polygon_mask(m: MapData, vertices: np.ndarray) -> np.ndarray:
    """True on the pixels whose centres lie inside the polygon (K, 2) of (x, y) vertices in m.

    Even-odd rule; the polygon closes itself. A pixel centre (x, y) is inside where an odd
    number of edges cross its row, y within [lower end, upper end), to its right: at an x
    greater than the centre's, that x computed as `_row_crossings` does (a centre on an edge
    or at a vertex is so in or out by that rule). Each row's crossings are sorted once and
    each centre counts those past it, so the cost grows with the crossings and pixels, not
    their product. Where a crossing's product could overflow (coordinates beyond
    `OVERFLOW_FREE`), vertices and pixel centres are first scaled alike by a power of 2 to
    within ±1, which rounds every crossing as it would without the overflow (corners near the
    float limit made every crossing infinite: no pixel inside).
    """
    v = np.asarray(vertices, dtype=float)
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not np.all(np.isfinite(v)):
        raise InputError(f"polygon has shape {v.shape}; expected at least 3 finite (x, y) vertices")
    x, y = np.asarray(m.x, dtype=float), np.asarray(m.y, dtype=float)
    top = max(float(np.abs(v).max()), float(np.abs(x).max(initial=0.0)),
              float(np.abs(y).max(initial=0.0)))
    if top > OVERFLOW_FREE:
        exponent = -int(np.frexp(top)[1])
        v, x, y = np.ldexp(v, exponent), np.ldexp(x, exponent), np.ldexp(y, exponent)
    rows = np.argsort(y, kind="stable")
    inside = np.zeros(m.shape, bool)
    for row, x_cross in _row_crossings(v, y[rows]):  # the parities of blocks add up
        order = np.lexsort((x_cross, row))
        row, x_cross = row[order], x_cross[order]
        bounds = np.searchsorted(row, np.arange(len(rows) + 1))
        for r, (start, end) in enumerate(itertools.pairwise(bounds)):
            if end > start:
                past = end - start - np.searchsorted(x_cross[start:end], x, side="right")
                inside[rows[r]] ^= past % 2 == 1
    return inside


CROSSINGS = 1 << 21  # crossings of edges with rows computed at once


def _row_crossings(v: np.ndarray, ys: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Where the closed polygon's edges cross the rows at heights `ys` (ascending), in blocks
    of about CROSSINGS: the row (index into ys) and x of each crossing. An edge a -> b
    crosses the row at y when (ya > y) != (yb > y), at x = xa + (y - ya)·(xb - xa)/(yb - ya),
    computed in this order (a pixel centre on the edge is then in or out as this rounds). An
    x that is NaN (an overflowing difference times 0) is past no centre, and left out."""
    (xa, ya), (xb, yb) = v.T, np.roll(v, -1, axis=0).T
    first = np.searchsorted(ys, np.minimum(ya, yb), side="left")  # min(ya, yb) <= y
    count = np.searchsorted(ys, np.maximum(ya, yb), side="left") - first  # y < max(ya, yb)
    before = np.concatenate([[0], np.cumsum(count)])  # crossings of the edges before
    i = 0
    while i < len(v):
        j = max(int(np.searchsorted(before, before[i] + CROSSINGS, side="right")) - 1, i + 1)
        edge = np.repeat(np.arange(i, j), count[i:j])
        row = first[edge] + np.arange(edge.size) - np.repeat(before[i:j] - before[i],
                                                             count[i:j])
        with np.errstate(over="ignore", invalid="ignore"):
            x_cross = (xa[edge] + (ys[row] - ya[edge]) * (xb[edge] - xa[edge])
                       / (yb[edge] - ya[edge]))
        kept = ~np.isnan(x_cross)
        yield row[kept], x_cross[kept]
        i = j


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
