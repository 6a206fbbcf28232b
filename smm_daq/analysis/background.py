"""Background removal: an offset or a plane fitted on background (off-sample) pixels, and the
applied field's own Bz, which the sensor reads along with the sample's (a constant offset of
an in-field scan)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.masks import background_pixels
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

MODELS = ("offset", "plane")


@dataclass(frozen=True)
class BackgroundFit:
    map: MapData  # the map minus the fitted background
    coefficients: tuple[float, ...]  # offset (T) [, slope x, slope y (T/m) about the map centre]
    residual_rms: float  # T, on the background pixels after removal
    pixels: int
    used: np.ndarray  # (ny, nx) bool: the pixels fitted (the mask's measured ones)


def remove_background(m: MapData, mask: np.ndarray, *, model: str = "offset") -> BackgroundFit:
    """Fit `model` ("offset" or "plane") to the measured pixels where `mask` is True; remove it."""
    if model not in MODELS:
        raise InputError(f"background model is {model!r}; expected one of {', '.join(MODELS)}")
    used = background_pixels(m, mask, need=1 if model == "offset" else 3)
    px, py = np.meshgrid(m.x - m.x.mean(), m.y - m.y.mean())
    columns = [np.ones(m.shape)] + ([px, py] if model == "plane" else [])
    design = np.stack([c[used] for c in columns], axis=1)
    coef, *_ = np.linalg.lstsq(design, m.bz[used], rcond=None)
    if model == "plane" and np.linalg.matrix_rank(design) < 3:
        raise InputError("the background pixels lie on one line; a plane needs a 2-D patch")
    surface = sum(c * col for c, col in zip(coef, columns, strict=True))
    out = m.bz - surface
    return BackgroundFit(
        map=m.with_bz(out),
        coefficients=tuple(float(c) for c in coef),
        residual_rms=float(np.sqrt(np.mean(out[used] ** 2))),
        pixels=int(used.sum()),
        used=used,
    )


def remove_field_leakage(m: MapData, mask: np.ndarray | None = None) -> tuple[MapData, float]:
    """The map minus the applied field's reading, and that reading (T).

    With a background mask, the reading is the mean over its pixels of the in-field map (what
    the sensor really saw, including its cross-axis response); without one, the applied
    field's z component from the map's metadata.
    """
    if mask is not None:
        fit = remove_background(m, mask, model="offset")
        return fit.map, fit.coefficients[0]
    field = m.applied_field
    if field is None or np.shape(field) != (3,):
        raise InputError(
            f"'{m.name or 'the map'}' has no applied field vector; give a background mask "
            "to measure the leakage instead"
        )
    return m.with_bz(m.bz - field[2]), float(field[2])


def border_mask(m: MapData, width: float) -> np.ndarray:
    """True on a frame `width` (m) wide along the map's edges: a background for a sample that
    sits in the middle of the scan. A frame that would leave no pixel inside it is refused:
    it says where no sample is, so it cannot cover the whole map."""
    in_x = (m.x < m.x.min() + width) | (m.x > m.x.max() - width)
    in_y = (m.y < m.y.min() + width) | (m.y > m.y.max() - width)
    frame = in_y[:, None] | in_x[None, :]
    if frame.all():
        raise InputError(
            f"a border {width * 1e6:.4g} µm wide covers the whole of '{m.name or 'the map'}' "
            f"(x {m.x.min() * 1e6:.4g}..{m.x.max() * 1e6:.4g} µm, y {m.y.min() * 1e6:.4g}.."
            f"{m.y.max() * 1e6:.4g} µm); expected one that leaves the sample's pixels inside it"
        )
    return frame
