"""A plain image of a map to paint a mask of bad pixels on (the mask reader's counterpart,
`smm_daq.analysis.mmt.masks`).

One image pixel per sensor, oriented as the reader reads an image: column i is x_i (x to the
right), the top row the highest y. Only light tones, so that the reader keeps every pixel of
the map and excludes only what the user paints black: Bz below the map's median in pale blue,
above it in pale red, the median white, over a robust range (the 1st to 99th percentile of the
measured pixels; beyond it the palest colour's full tint), and unmeasured (NaN) pixels in a
neutral light grey. Every colour's grey level (ITU-R 601 luma, as the reader converts) is at
least `MIN_LUMA`, well above the reader's half grey: a lossy save (JPEG at quality 90) or an
anti-aliased brush's edge blending paint with the map cannot turn an unpainted pixel black,
and no pixel is a dark grey of the kind the reader warns of as "a picture, not a mask".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

WHITE = np.array([255.0, 255.0, 255.0])
BELOW = np.array([130.0, 160.0, 245.0])  # pale blue: Bz below the median (luma 0.63)
ABOVE = np.array([240.0, 130.0, 120.0])  # pale red: Bz above the median (luma 0.63)
NOT_MEASURED = (200, 200, 200)  # neutral light grey, a tone the colour scale never takes
MIN_LUMA = 0.6  # every colour is at least this light, as PIL turns it grey (0: black, 1: white)
PERCENTILES = (1.0, 99.0)  # the colour range: a few saturated or dusty pixels do not set it


def template_rgb(values: np.ndarray) -> np.ndarray:
    """RGB (ny, nx, 3) uint8 of a map (ny, nx) with row 0 the lowest y, rows flipped so that
    the image's top row is the highest y."""
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
    return np.round(rgb[::-1]).astype(np.uint8)


def write_mask_template(m: MapData, path: str | Path, *, values: np.ndarray | None = None
                        ) -> Path:
    """Write the template of `values` (default: the map's Bz) on the grid of `m` as a PNG;
    InputError naming the file when it cannot be written."""
    from PIL import Image

    v = m.bz if values is None else np.asarray(values, dtype=float)
    if v.shape != m.shape:
        raise InputError(f"values have shape {v.shape}; expected the map's {m.shape}")
    path = Path(path)
    try:
        Image.fromarray(template_rgb(v), "RGB").save(path, format="PNG")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
