"""The noise floor of a map: the RMS of its off-sample pixels, or, from two repeated scans of
the same sample, the RMS of their difference over √2 (the sample's field cancels; two equal
independent noises add in quadrature); and, from one map alone, an estimate of its white noise
from high-order differences along its lines."""

from __future__ import annotations

import math

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
    fa, fb = a.applied_field, b.applied_field
    if fa is not None and fb is not None and not np.allclose(fa, fb, rtol=0, atol=1e-10):
        raise InputError(
            f"'{a.name}' was taken in {_ut(fa)} and '{b.name}' in {_ut(fb)}: their difference "
            "holds the field's induced response, not only noise; expected a repeat in the "
            "same field")
    diff = a.bz - b.bz
    used = np.isfinite(diff)
    if mask is not None:
        used &= check_mask(a, mask)
    if used.sum() < 2:
        shared = int(used.sum())
        raise InputError(
            f"'{a.name}' and '{b.name}' share {shared} measured pixel{'' if shared == 1 else 's'}"
            f"{' inside the mask' if mask is not None else ''}; expected at least 2 to take "
            "the noise from their difference")
    if np.ptp(diff[used]) == 0:  # no real repeat: two measurements never agree to the bit
        # the noise is the difference's spread about its mean: one offset from the other by
        # a constant holds none either
        same = ("are identical at every pixel compared" if not np.any(diff[used]) else
                f"differ by the same {float(diff[used][0]) / 1e-9:.4g} nT at every pixel "
                "compared")
        raise InputError(
            f"'{a.name}' and '{b.name}' {same}, so their "
            "difference holds no noise (0 nT): one measurement stored twice (a copy of the "
            "entry), or a noiseless simulator's; expected a repeat measured on its own")
    return float(np.std(diff[used], ddof=1) / np.sqrt(2))


def _ut(field: np.ndarray) -> str:
    return "(" + ", ".join(f"{v / 1e-6:g}" for v in field) + ") µT"


# Binomial weights of the 6th difference: it cancels every polynomial of degree < 6, so the
# smooth part of a grain's field drops out far better than in a 2nd difference, where the
# curvature of dense, shallow grains dominated the median and read as noise.
_ORDER = 6


def white_noise_floor(bz: np.ndarray) -> float:
    """Robust white-noise RMS (T) of a map from high-order differences along its lines.

    For white noise of RMS σ, the k-th difference Σ c_i b[j+i] (c binomial with alternating
    signs) has RMS σ √(Σ c_i²); the median absolute value (over 0.6745 for a Gaussian)
    ignores the differences where grains still bend the field. Over a dense sample whose
    field bends at the pixel scale no one map can tell it from noise, and this reads high (an
    upper bound); repeats (`noise_from_repeats`) then measure it. The order is 6 (lines of 7
    points or more), lower for shorter lines; NaN for lines under 3 points or fewer than 10
    differences. Along the lines only: offsets between lines are not pixel noise.
    """
    order = min(_ORDER, bz.shape[1] - 1)
    if order < 2:
        return math.nan
    weights = np.array([(-1) ** i * math.comb(order, i) for i in range(order + 1)], float)
    n = bz.shape[1] - order
    diff = sum(w * bz[:, i:i + n] for i, w in enumerate(weights))
    diff = diff[np.isfinite(diff)]
    if diff.size < 10:
        return math.nan
    return float(np.median(np.abs(diff)) / 0.6745 / math.sqrt(np.sum(weights**2)))
