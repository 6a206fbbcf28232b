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
# The order whose floor, set against the 6th's, tells a field that bends at the pixel scale:
# of white noise, every order's floor is σ (their ratio 1, its log's SD 0.8/√n for n 6th
# differences, measured from 10 to 88,000); a field the 6th difference does not cancel
# passes more through the 4th. Only more: a strong field smooth at the pixel scale passes the
# 4th alone (one grain 20 µm under a 4 µm grid, 20 times the noise: the ratio 1.3, the 6th's
# floor right within 8 %), and a dense one at low contrast shows little in either (the 6th's
# floor 1.6 to 2 times σ at a ratio of 1.1 to 1.3); no ratio of orders tells the two apart.
_CHECK_ORDER = 4
# The ratio above which the field, not the noise, is taken to set the floor: 40 %, above the
# smooth field's (where measured, the 6th's floor then read 1.2 to 10 times σ, and 0.9 to 2.0
# times where not so taken); and at least 4 SDs of white noise's ratio where fewer
# differences scatter more.
_BEND_RATIO = 1.4
_BEND_SDS = 4 * 0.8
# Fewer differences scatter more than their SD says (heavy tails): 1 white-noise map in 200
# of 8 × 8 points, 16 differences, was taken for one that bends.
_BEND_MIN_DIFFERENCES = 40


def white_noise_floor(bz: np.ndarray) -> float:
    """Robust white-noise RMS (T) of a map from high-order differences along its lines.

    For white noise of RMS σ, the k-th difference Σ c_i b[j+i] (c binomial with alternating
    signs) has RMS σ √(Σ c_i²); the median absolute value (over 0.6745 for a Gaussian)
    ignores the differences where grains still bend the field. Over a dense sample whose
    field bends at the pixel scale no one map can tell it from noise, and this reads high (an
    upper bound, which `bends_at_pixel_scale` tells); repeats (`noise_from_repeats`) then
    measure it. The order is 6 (lines of 7 points or more), lower for shorter lines; NaN for
    lines under 3 points or fewer than 10 differences. Along the lines only: offsets between
    lines are not pixel noise.
    """
    order = min(_ORDER, bz.shape[1] - 1)
    if order < 2:
        return math.nan
    diff = _line_differences(bz, order)
    if diff.size < 10:
        return math.nan
    return _robust_rms(diff)


def bends_at_pixel_scale(bz: np.ndarray) -> bool:
    """Whether the map's field bends at the pixel scale, so that `white_noise_floor` reads
    high: its floor from 4th differences exceeds that from 6th ones by more than 40 %
    (`_BEND_RATIO`) and more than white noise scatters (4 SDs). False where the lines are
    too short or too few to tell (under 7 points, under 40 differences).

    No single-map floor is right there (`benchmarks/noise_floor_estimators.py`: 60 µm of
    10⁵ grains/mm³ 0.5 to 2 µm below the sensor at 2 µm steps, 5 nT of noise): along the
    lines 2.3 to 2.4 times σ, across them or the lower of the two 2.3 to 2.5, the pixelwise
    lower 2.8 to 3.0, a lower quartile 1.9, 10th differences 1.9 to 2.2, 2D 6th differences
    1.6 to 2.1; the last two read below σ on other maps, the 2D ones scatter twice as much."""
    if bz.shape[1] <= _ORDER:
        return False
    fine = _line_differences(bz, _ORDER)
    if fine.size < _BEND_MIN_DIFFERENCES:
        return False
    coarse = _robust_rms(_line_differences(bz, _CHECK_ORDER))
    floor = _robust_rms(fine)
    if not floor > 0:
        return False
    limit = max(math.log(_BEND_RATIO), _BEND_SDS / math.sqrt(fine.size))
    return math.log(coarse / floor) > limit


def _line_differences(bz: np.ndarray, order: int) -> np.ndarray:
    """The finite `order`-th differences along the lines, scaled to white noise's RMS."""
    weights = np.array([(-1) ** i * math.comb(order, i) for i in range(order + 1)], float)
    n = bz.shape[1] - order
    diff = sum(w * bz[:, i:i + n] for i, w in enumerate(weights)) / math.sqrt(np.sum(weights**2))
    return diff[np.isfinite(diff)]


def _robust_rms(diff: np.ndarray) -> float:
    return float(np.median(np.abs(diff)) / 0.6745)
