"""The noise floor of a map: the RMS of its off-sample pixels, or, from two repeated scans of
the same sample, the RMS of their difference over √2 (the sample's field cancels; two equal
independent noises add in quadrature)."""

from __future__ import annotations

import numpy as np

from smm_daq.analysis.grids import require_same_grid
from smm_daq.analysis.masks import background_pixels, check_mask
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData


def noise_rms(m: MapData, mask: np.ndarray) -> float:
    """RMS (T) about their mean of the measured pixels where `mask` is True."""
    used = background_pixels(m, mask, need=2)
    return float(np.std(m.bz[used], ddof=1))


def noise_from_repeats(a: MapData, b: MapData, mask: np.ndarray | None = None) -> float:
    """σ (T) of one scan from two repeats: RMS of (a - b) about its mean, over √2.

    `mask` (optional) limits the pixels used, e.g. to exclude strong gradients where a stage
    that did not return exactly would leave residues.
    """
    require_same_grid(a, b)
    diff = a.bz - b.bz
    used = np.isfinite(diff)
    if mask is not None:
        used &= check_mask(a, mask)
    if used.sum() < 2:
        raise InputError("the two scans share fewer than 2 measured pixels")
    return float(np.std(diff[used], ddof=1) / np.sqrt(2))
