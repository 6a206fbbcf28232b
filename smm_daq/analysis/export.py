"""Export of a map (or any 2-D result on its grid) to CSV and to a PNG picture.

CSV: one row per pixel, columns x_um, y_um and the value with its unit in the name
(e.g. Bz_nT, chi_SI); NaN pixels are written as empty fields. PNG: the map in µm with a scale
bar and a colour bar symmetric about zero (a diverging colour map: white is zero), so the
sign of the field reads at a glance; pixels not measured are grey (`NOT_MEASURED`).
"""

from __future__ import annotations

import csv
import math
import textwrap
from pathlib import Path

import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.whole_files import written_whole

TITLE_WIDTH = 48  # characters a line of the title holds across the map's width
NOT_MEASURED = "0.6"  # a mid grey (matplotlib's grey level), a colour RdBu_r never takes


def _values(m: MapData, values: np.ndarray | None) -> np.ndarray:
    v = m.bz if values is None else np.asarray(values, dtype=float)
    if v.shape != m.shape:
        raise InputError(f"values have shape {v.shape}; expected the map's {m.shape}")
    return v


def write_csv(
    m: MapData, path: str | Path, *, values: np.ndarray | None = None, column: str = "Bz_nT",
    factor: float = 1e9,
) -> Path:
    """Write x_um, y_um and `column` (the values times `factor`) for every pixel: the whole
    file, or (InputError) nothing, a file it replaces left as it was."""
    v = _values(m, values) * factor
    path = Path(path)
    try:
        with written_whole(path) as part, part.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["x_um", "y_um", column])
            for iy, y in enumerate(m.y):
                for ix, x in enumerate(m.x):
                    val = v[iy, ix]
                    w.writerow([f"{x * 1e6:.6g}", f"{y * 1e6:.6g}",
                                f"{val:.9g}" if np.isfinite(val) else ""])
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    return path


def _nice_length(span_um: float) -> float:
    """1, 2 or 5 × 10^n µm, about a fifth of the span."""
    target = span_um / 5
    power = 10 ** math.floor(math.log10(target))
    return max(s * power for s in (1, 2, 5) if s * power <= target)


def _pixel_size(m: MapData) -> tuple[float, float]:
    """Width and height (m) of a pixel in the picture. An axis with a single point (a scan of
    one line or one column) has no step of its own: it takes the other axis' step, or for a
    single point the sensor's width (else 1 µm), so the picture and its scale bar have extent."""
    dx, dy = m.step
    fallback = max(dx, dy)
    if fallback <= 0:
        fallback = max(m.sensor_size or (0.0, 0.0)) or 1e-6
    return dx if dx > 0 else fallback, dy if dy > 0 else fallback


def write_png(
    m: MapData, path: str | Path, *, values: np.ndarray | None = None, label: str = "Bz (nT)",
    factor: float = 1e9, title: str | None = None,
) -> Path:
    """A picture of the map: µm axes, a scale bar, a colour bar symmetric about zero; the
    whole file, or (InputError) nothing, a file it replaces left as it was."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    v = _values(m, values) * factor
    finite = v[np.isfinite(v)]
    limit = float(np.max(np.abs(finite))) if finite.size else 1.0
    limit = limit or 1.0
    dx, dy = _pixel_size(m)
    extent = (
        (m.x[0] - dx / 2) * 1e6, (m.x[-1] + dx / 2) * 1e6,
        (m.y[0] - dy / 2) * 1e6, (m.y[-1] + dy / 2) * 1e6,
    )
    # laid out to fit its labels: five-digit µm ticks (a stage in mm) pushed the y label off
    # the fixed margin's left edge
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120, layout="constrained")
    try:
        # not measured (NaN) in grey, as the mask template draws it: the colour map's white
        # is zero, and a scan cut off read as one that found no field in its lines not taken
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=NOT_MEASURED)
        image = ax.imshow(np.ma.masked_invalid(v), origin="lower", extent=extent,
                          cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.locator_params(axis="x", nbins=5)  # five-digit ticks side by side: no overlap
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)")
        # wrapped: an entry's name and title side by side ran over the colour bar and out
        # of the picture
        ax.set_title(textwrap.fill(title if title is not None else (m.title or m.name),
                                   TITLE_WIDTH))
        length = _nice_length(extent[1] - extent[0])
        bar = AnchoredSizeBar(ax.transData, length, f"{length:g} µm", "lower right", pad=0.4,
                              frameon=True, size_vertical=(extent[3] - extent[2]) / 100)
        ax.add_artist(bar)
        fig.colorbar(image, ax=ax, label=label)
        path = Path(path)
        try:
            with written_whole(path) as part:
                fig.savefig(part, format="png")
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        plt.close(fig)
    return path
