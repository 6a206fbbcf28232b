"""Where the tiles of a tiled MMT inversion lie, and which grains each one solves and keeps.

The scanned rectangle is cut into equal *cores* of about the requested tile size. A tile's
*window* (the sensors it inverts) is its core widened by the margin on every side and clipped
to the scan. Its unknowns are the grains whose centroid lies in the window widened further by
the nuisance band on its interior sides (sides on the scan's own edge are open: grains beyond
the scan's edge are unknowns of the whole inversion too). A grain's result is taken from the
tile where it lies farthest from an interior window edge; with one margin for all tiles that is
the tile whose core holds its centroid, at least one margin from any interior edge.

Lengths in m; x, y in the scan plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smm_daq.errors import InputError


@dataclass(frozen=True)
class Tile:
    """One tile: core and window as (x0, x1, y0, y1) in m, window as index slices of the map,
    and which window edges are interior (left, right, bottom, top)."""

    index: tuple[int, int]  # (ix, iy) of the core
    core: tuple[float, float, float, float]
    window: tuple[float, float, float, float]
    cols: slice  # x indices of the window's sensors
    rows: slice  # y indices
    interior: tuple[bool, bool, bool, bool]

    def edge_distance(self, xy: np.ndarray) -> np.ndarray:
        """(N,) distance from points (N, 2) to the nearest interior window edge, negative
        outside the window across an interior edge, +inf when no edge is interior."""
        x0, x1, y0, y1 = self.window
        d = [xy[:, 0] - x0, x1 - xy[:, 0], xy[:, 1] - y0, y1 - xy[:, 1]]
        out = np.full(xy.shape[0], np.inf)
        for dist, inner in zip(d, self.interior, strict=True):
            if inner:
                out = np.minimum(out, dist)
        return out

    def unknowns(self, xy: np.ndarray, band: float) -> np.ndarray:
        """Indices of the points (grain centroids) within `band` outside the window's interior
        edges (and anywhere beyond its scan-edge sides)."""
        return np.flatnonzero(self.edge_distance(xy) >= -band)


@dataclass(frozen=True)
class TileLayout:
    tiles: tuple[Tile, ...]
    margin: float
    band: float

    def owners(self, xy: np.ndarray) -> np.ndarray:
        """(N,) index of the tile where each point lies farthest from an interior edge."""
        if len(self.tiles) == 1:
            return np.zeros(xy.shape[0], dtype=np.int64)
        dist = np.stack([t.edge_distance(xy) for t in self.tiles])
        return np.argmax(dist, axis=0)


def _cuts(axis: np.ndarray, tile: float) -> list[tuple[int, int]]:
    """Index ranges [i0, i1) cutting the axis into equal parts of about `tile` length."""
    span = float(axis[-1] - axis[0]) if axis.size > 1 else 0.0
    n = max(1, math.ceil(span / tile - 1e-9))
    edges = axis[0] + span * np.arange(n + 1) / n
    out = []
    for k in range(n):
        i0 = int(np.searchsorted(axis, edges[k] - 1e-12 * max(span, 1e-30), side="left"))
        i1 = int(np.searchsorted(axis, edges[k + 1] - 1e-12 * max(span, 1e-30), side="left"))
        out.append((i0, axis.size if k == n - 1 else i1))
    return out


def plan_tiles(x: np.ndarray, y: np.ndarray, tile: float, margin: float,
               band: float) -> TileLayout:
    """Tiles of about `tile` × `tile` over the sensor axes x (nx,) and y (ny,) in m (sorted,
    regular), windows widened by `margin`, unknowns reaching `band` beyond the window."""
    if not (math.isfinite(tile) and tile > 0):
        raise InputError(f"tile size is {tile!r} m; expected a length > 0")
    if not (math.isfinite(margin) and margin >= 0 and math.isfinite(band) and band >= 0):
        raise InputError(f"margin {margin!r} m and band {band!r} m: expected lengths >= 0")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    tiles = []
    xcuts = _cuts(x, tile)
    ycuts = _cuts(y, tile)
    for iy, (r0, r1) in enumerate(ycuts):
        for ix, (c0, c1) in enumerate(xcuts):
            core = (
                float(x[0]) if ix == 0 else 0.5 * float(x[c0 - 1] + x[c0]),
                float(x[-1]) if ix == len(xcuts) - 1 else 0.5 * float(x[c1 - 1] + x[c1]),
                float(y[0]) if iy == 0 else 0.5 * float(y[r0 - 1] + y[r0]),
                float(y[-1]) if iy == len(ycuts) - 1 else 0.5 * float(y[r1 - 1] + y[r1]),
            )
            wx0 = max(core[0] - margin, float(x[0]))
            wx1 = min(core[1] + margin, float(x[-1]))
            wy0 = max(core[2] - margin, float(y[0]))
            wy1 = min(core[3] + margin, float(y[-1]))
            cols = slice(int(np.searchsorted(x, wx0 - 1e-12)),
                         int(np.searchsorted(x, wx1 + 1e-12, side="right")))
            rows = slice(int(np.searchsorted(y, wy0 - 1e-12)),
                         int(np.searchsorted(y, wy1 + 1e-12, side="right")))
            interior = (wx0 > x[0], wx1 < x[-1], wy0 > y[0], wy1 < y[-1])
            tiles.append(Tile((ix, iy), core, (wx0, wx1, wy0, wy1), cols, rows,
                              tuple(bool(v) for v in interior)))  # type: ignore[arg-type]
    if len(tiles) > 1 and not any(any(t.interior) for t in tiles):
        # the margin covers the scan from every core: one whole inversion does it all
        whole = (float(x[0]), float(x[-1]), float(y[0]), float(y[-1]))
        tiles = [Tile((0, 0), whole, whole, slice(0, x.size), slice(0, y.size),
                      (False, False, False, False))]
    return TileLayout(tuple(tiles), float(margin), float(band))
