"""A plain image of a map to paint a mask of bad pixels on (the mask reader's counterpart,
`smm_daq.analysis.mmt.masks`).

Pixels of equal size in µm, the smaller of the map's x and y steps, oriented as the reader
reads an image: x to the right, the top row the highest y. With equal steps (most maps) that is
one image pixel per sensor; with unequal ones an image editor would show one pixel per sensor
stretched, so each sensor is drawn as a block of pixels along the axis of the larger step (a
sensor of 2 × 5 µm steps as 1 × 2.5 pixels, by nearest neighbour), and the reader, which
resamples an image of the scan's extent to its grid by the sensors' centres, reads the painted
image back sensor for sensor (`image_size`). Where steps so unequal would make that image too
large or too elongated to paint on, it is one pixel a sensor, stretched, as the reader takes
too. Only light tones, so that the reader keeps every
pixel of the map and excludes only what the user paints black: Bz below the map's median in
pale blue, above it in pale red, the median white, over a robust range (the 1st to 99th
percentile of the measured pixels; beyond it the palest colour's full tint), and unmeasured
(NaN) pixels in a neutral light grey. Every colour's grey level (ITU-R 601 luma, as the reader
converts) is at least `MIN_LUMA`, well above the reader's half grey: a lossy save (JPEG at
quality 90) or an anti-aliased brush's edge blending paint with the map cannot turn an
unpainted pixel black, and no pixel is a dark grey of the kind the reader warns of as "a
picture, not a mask".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.whole_files import written_whole

WHITE = np.array([255.0, 255.0, 255.0])
BELOW = np.array([130.0, 160.0, 245.0])  # pale blue: Bz below the median (luma 0.63)
ABOVE = np.array([240.0, 130.0, 120.0])  # pale red: Bz above the median (luma 0.63)
NOT_MEASURED = (200, 200, 200)  # neutral light grey, a tone the colour scale never takes
MIN_LUMA = 0.6  # every colour is at least this light, as PIL turns it grey (0: black, 1: white)
PERCENTILES = (1.0, 99.0)  # the colour range: a few saturated or dusty pixels do not set it
# The scan's extent in pixels of equal size is drawn only where it makes an image to paint on:
# one of at most this many pixels (a tenth of those above which Pillow warns of a bomb), with
# no side longer than MAX_SIDE, and no more elongated than MAX_ASPECT (long side over short)
# unless the sensor grid itself is. Else, as for a map of very unequal steps (5 × 5 sensors
# at 1 µm × 3 mm would be 5 × 15000 pixels), one pixel a sensor, stretched.
MAX_PIXELS = 1 << 23
MAX_SIDE = 4096
MAX_ASPECT = 10.0


def extent_size(m: MapData) -> tuple[int, int]:
    """The map's extent in pixels (width, height) the size of its smaller step in both x and
    y, so the scan keeps its shape in µm: one pixel a sensor when the steps are equal or
    along an axis of one sensor. The mask reader takes an image of this shape, as it takes
    one of the sensor grid's."""
    ny, nx = m.shape
    dx, dy = (abs(step) for step in m.step)
    dx, dy = dx or dy, dy or dx  # an axis of one sensor takes the other's step
    if not dx:
        return nx, ny
    pixel = min(dx, dy)
    return max(nx, round(nx * dx / pixel)), max(ny, round(ny * dy / pixel))


def _elongation(w: int, h: int) -> float:
    return max(w, h) / min(w, h)


def image_size(m: MapData) -> tuple[int, int]:
    """The template's (width, height) in pixels: the map's extent (`extent_size`) where that
    is an image to paint on (`MAX_PIXELS`, `MAX_SIDE`, `MAX_ASPECT`), else one pixel a
    sensor."""
    ny, nx = m.shape
    w, h = extent_size(m)
    if (w * h <= MAX_PIXELS and max(w, h) <= MAX_SIDE
            and _elongation(w, h) <= max(MAX_ASPECT, _elongation(nx, ny))):
        return w, h
    return nx, ny


def template_rgb(values: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB (height, width, 3) uint8 of a map (ny, nx) with row 0 the lowest y, rows flipped so
    that the image's top row is the highest y; `size` (width, height), default (nx, ny): each
    pixel takes the sensor its centre falls on, as the reader samples it back."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    rgb = np.empty((*v.shape, 3))
    rgb[:] = NOT_MEASURED
    if finite.any():
        known = v[finite]
        centre = float(np.median(known))
        lo, hi = np.percentile(known, PERCENTILES)
        half = max(hi - centre, centre - lo)
        t = np.clip((known - centre) / half, -1.0, 1.0) if half > 0 else np.zeros(known.size)
        end = np.where(t[:, None] < 0, BELOW, ABOVE)
        rgb[finite] = WHITE + np.abs(t)[:, None] * (end - WHITE)
    ny, nx = v.shape
    w, h = size or (nx, ny)
    rows = np.minimum((np.arange(h) + 0.5) * ny / h, ny - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) * nx / w, nx - 1).astype(int)
    return np.round(rgb[np.ix_(rows, cols)][::-1]).astype(np.uint8)


def write_mask_template(m: MapData, path: str | Path, *, values: np.ndarray | None = None
                        ) -> Path:
    """Write the template of `values` (default: the map's Bz) on the grid of `m` as a PNG of
    `image_size(m)`; InputError naming the file when it cannot be written."""
    from PIL import Image

    v = m.bz if values is None else np.asarray(values, dtype=float)
    if v.shape != m.shape:
        raise InputError(f"values have shape {v.shape}; expected the map's {m.shape}")
    path = Path(path)
    try:
        with written_whole(path) as part:
            Image.fromarray(template_rgb(v, image_size(m)), "RGB").save(part, format="PNG")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
