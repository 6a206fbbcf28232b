"""Cut a map down to a rectangle."""

from __future__ import annotations

import numpy as np

from smm_daq.analysis.masks import in_range
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData


def crop(m: MapData, x_range: tuple[float, float], y_range: tuple[float, float]) -> MapData:
    """The pixels whose centres lie in x_range × y_range (m, ends included to rounding)."""
    (x0, x1), (y0, y1) = sorted(x_range), sorted(y_range)
    ix = np.nonzero(in_range(m.x, x_range))[0]
    iy = np.nonzero(in_range(m.y, y_range))[0]
    if ix.size == 0 or iy.size == 0:
        raise InputError(
            f"the crop x {x0 * 1e6:.4g}..{x1 * 1e6:.4g} µm, y {y0 * 1e6:.4g}..{y1 * 1e6:.4g} µm "
            f"holds no pixel of '{m.name or 'the map'}' (x {m.x[0] * 1e6:.4g}..{m.x[-1] * 1e6:.4g}"
            f" µm, y {m.y[0] * 1e6:.4g}..{m.y[-1] * 1e6:.4g} µm); expected ranges that overlap "
            "the map"
        )
    sub = (slice(iy[0], iy[-1] + 1), slice(ix[0], ix[-1] + 1))
    if np.isnan(m.bz[sub]).all():  # e.g. the lines an aborted scan never measured
        raise InputError(
            f"the crop x {x0 * 1e6:.4g}..{x1 * 1e6:.4g} µm, y {y0 * 1e6:.4g}..{y1 * 1e6:.4g} µm "
            f"holds no measured pixel of '{m.name or 'the map'}' (Bz is NaN there: not "
            "measured, or masked); expected ranges that take in measured pixels"
        )
    return m.with_bz(m.bz[sub], x=m.x[sub[1]], y=m.y[sub[0]])
