"""Numbers behind the map views: colour levels, the pixel under the cursor, line profiles.

Pure numpy, no Qt, so the rules the views follow are tested directly.
"""

from __future__ import annotations

import numpy as np

from smm_daq.storage.mapdata import MapData

SMALLEST_LEVEL_T = 1e-12  # a blank or all-zero map still gets a valid colour range


def symmetric_level(bz: np.ndarray) -> float:
    """Half-width L of the colour range [-L, L]: max |Bz| over the whole image (T).

    The maximum, not a percentile: a single-pixel dipole must reach the ends of the scale.
    NaN (not yet measured) pixels are ignored.
    """
    finite = np.abs(bz[np.isfinite(bz)])
    if finite.size == 0:
        return SMALLEST_LEVEL_T
    return max(float(finite.max()), SMALLEST_LEVEL_T)


def pixel_rect(m: MapData) -> tuple[float, float, float, float]:
    """(left, bottom, width, height) in m of the image, each pixel centred on its grid point."""
    dx, dy = m.step
    dx = dx or (m.sensor_size[0] if m.sensor_size and m.sensor_size[0] else 1e-6)
    dy = dy or (m.sensor_size[1] if m.sensor_size and m.sensor_size[1] else 1e-6)
    return (
        float(m.x[0]) - dx / 2,
        float(m.y[0]) - dy / 2,
        dx * m.x.size,
        dy * m.y.size,
    )


def on_same_grid(a: MapData, b: MapData) -> bool:
    """Whether two maps' pixels lie in the same places (two quantities of one scan)."""
    return a.bz.shape == b.bz.shape and pixel_rect(a) == pixel_rect(b)


def pixel_at(m: MapData, x: float, y: float) -> tuple[int, int] | None:
    """(iy, ix) of the grid point whose pixel holds (x, y) m, or None outside the map."""
    left, bottom, width, height = pixel_rect(m)
    if not (left <= x < left + width and bottom <= y < bottom + height):
        return None
    ix = min(int((x - left) / width * m.x.size), m.x.size - 1)
    iy = min(int((y - bottom) / height * m.y.size), m.y.size - 1)
    return iy, ix


def profile_along(
    m: MapData, start: tuple[float, float], end: tuple[float, float], n: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Bz (T) bilinearly interpolated at n points from start to end (m); distance (m) too.

    Points off the grid, or next to an unmeasured pixel, are NaN.
    """
    t = np.linspace(0.0, 1.0, n)
    xs = start[0] + t * (end[0] - start[0])
    ys = start[1] + t * (end[1] - start[1])
    dx, dy = m.step
    col = (xs - m.x[0]) / dx if dx else np.zeros(n)
    row = (ys - m.y[0]) / dy if dy else np.zeros(n)
    inside = (col >= 0) & (col <= m.x.size - 1) & (row >= 0) & (row <= m.y.size - 1)
    from scipy.ndimage import map_coordinates  # ~0.2 s to import: not at the window's start

    bz = map_coordinates(m.bz, [row, col], order=1, mode="nearest", cval=np.nan)
    bz = np.where(inside, bz, np.nan)
    distance = t * float(np.hypot(end[0] - start[0], end[1] - start[1]))
    return distance, bz


def grid_from_rectangle(
    corner_a: tuple[float, float], corner_b: tuple[float, float], step: tuple[float, float]
) -> tuple[float, float, int, int]:
    """A scan grid covering a dragged rectangle: first point (x0, y0) m and nx, ny points.

    The grid starts at the lower-left corner and has as many whole steps (sx, sy) as fit.
    """
    x0, x1 = sorted((corner_a[0], corner_b[0]))
    y0, y1 = sorted((corner_a[1], corner_b[1]))
    nx = int(np.floor((x1 - x0) / step[0] + 1e-9)) + 1
    ny = int(np.floor((y1 - y0) / step[1] + 1e-9)) + 1
    return x0, y0, nx, ny
