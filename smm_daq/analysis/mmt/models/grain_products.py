"""The point-sensor closed form of a whole grain, with its logarithms and arctangents taken
once per (sensor, grain) pair instead of once per cuboid.

A point sensor's closed form of a cuboid (`forward._point_exact`) is two logarithms of ratios
of products of corner lengths (the Mx and My columns) and two arguments of complex products
(the Mz column), from `forward._point_products`. A grain is uniformly magnetized, so its
columns are sums over its cuboids: the logarithm of the product of their ratios and the
argument of the product of their complex numbers. Only the ratios' range and the argument's
whole turns need keeping:

- the products are kept within 2^±400 by exact powers of two, counted (`_rescaled`);
- each cuboid's two complex factors have arguments in (−π, π); multiplied into the grain's
  product, a factor with positive imaginary part turns it counterclockwise by less than π,
  so it passed π (one turn more) exactly when the product went from the upper half plane
  (imaginary part ≥ 0) to the lower one, and conversely (`_turned`).

Which form each (sensor, cuboid) pair takes is decided as before (the cuboid's quadrupole
beyond its switching distance), so the columns agree with the per-cuboid sum to its
rounding. On the 200 × 200 × 50 µm sample of `benchmarks/mmt_scale.py` the 1.46 million
(sensor, cuboid) pairs of the closed form belong to 11,500 (sensor, grain) pairs: 2.9 million
logarithms and as many atan2 become 23,000 and 11,500, and the block kernel takes about 10 %
less time (one core).

Merging each grain's cuboid corners instead (corners shared by two of its cuboids with
opposite signs cancel) leaves 0.61 of those pairs' corner evaluations on that sample, but was
no faster: the per-cuboid form shares X, Y and one complex factor between the two corners of
each vertical edge, which a list of merged corners loses, and it still needs a turn counted
per corner.
"""

from __future__ import annotations

import math

from numba import njit

from smm_daq.analysis.forward import _point_pair, _point_products
from smm_daq.analysis.mmt.models.compiled import cache_depends_on

_SCALE_EXP = 400  # the products kept within 2^±400 (a cuboid's factors are about 2^±320)
_SCALE = 2.0**_SCALE_EXP
_TINY = 2.0**-_SCALE_EXP
_LN2 = math.log(2.0)

EMPTY = (1.0, 1.0, 0, 1.0, 1.0, 0, 1.0, 0.0, 0)  # the grain's products before any cuboid


@njit(cache=True, inline="always", error_model="numpy")
def _rescaled(value):
    """(value × 2^k, k): k = 0, or ±400 where a positive value left 2^±400."""
    if value < _TINY:
        return value * _SCALE, _SCALE_EXP
    if value > _SCALE:
        return value * _TINY, -_SCALE_EXP
    return value, 0


@njit(cache=True, inline="always", error_model="numpy")
def _ratio_times(num, den, exponent, f_num, f_den):
    """(num/den) × 2^exponent times f_num/f_den, as (num, den, exponent) rescaled."""
    num, shift = _rescaled(num * f_num)
    den, back = _rescaled(den * f_den)
    return num, den, exponent - shift + back


@njit(cache=True, inline="always", error_model="numpy")
def _turned(re, im, turns, fr, fi):
    """(re + i im)(fr + i fi), arg(fr + i fi) in (−π, π), and `turns` + 1 where its argument
    passed π counterclockwise, − 1 where it passed it clockwise."""
    nre = re * fr - im * fi
    nim = re * fi + im * fr
    # & rather than `and`: no jumps on signs that vary from one cuboid to the next
    up = (im >= 0.0) & (nim < 0.0) & (fi > 0.0)
    down = (im < 0.0) & (nim >= 0.0) & (fi < 0.0)
    turns += up - down
    _, shift = _rescaled(abs(nre) + abs(nim))  # only its argument is kept
    if shift != 0:
        return math.ldexp(nre, shift), math.ldexp(nim, shift), turns
    return nre, nim, turns


@njit(cache=True, inline="always", error_model="numpy")
def times_cuboid(state, products):
    """The grain's products `state` (EMPTY at first) times one cuboid's
    `forward._point_products`."""
    num_x, den_x, exp_x, num_y, den_y, exp_y, re, im, turns = state
    f_num_x, f_den_x, f_num_y, f_den_y, re0, im0, re1, im1 = products
    num_x, den_x, exp_x = _ratio_times(num_x, den_x, exp_x, f_num_x, f_den_x)
    num_y, den_y, exp_y = _ratio_times(num_y, den_y, exp_y, f_num_y, f_den_y)
    re, im, turns = _turned(re, im, turns, re0, im0)
    re, im, turns = _turned(re, im, turns, re1, im1)
    return num_x, den_x, exp_x, num_y, den_y, exp_y, re, im, turns


@njit(cache=True, inline="always", error_model="numpy")
def _log_ratio(num, den, exponent):
    """ln(num/den × 2^exponent) for positive normal num, den."""
    mn, en = math.frexp(num)
    md, ed = math.frexp(den)
    return math.log(mn / md) + (exponent + en - ed) * _LN2


@njit(cache=True, inline="always", error_model="numpy")
def columns(state):
    """The Mx, My, Mz columns (×4π/μ0) of the grain's products `state`: Σ over its cuboids
    of `forward._point_exact`. (+ 0.0: a product on the negative real axis is at π, as the
    turns were counted.)"""
    num_x, den_x, exp_x, num_y, den_y, exp_y, re, im, turns = state
    return (_log_ratio(num_x, den_x, exp_x), _log_ratio(num_y, den_y, exp_y),
            -(math.atan2(im + 0.0, re) + 2.0 * math.pi * turns))


@njit(cache=True, error_model="numpy")
def point_grain(sx, sy, sz, first, last, cuboids, half, cub_far2):
    """Σ over cuboids first … last − 1 of `forward._point_pair` (Mx, My, Mz columns, ×4π/μ0)
    at sensor (sx, sy, sz): the cuboids within their switching distance by their closed form,
    its logarithms and arctangents taken once for them all. (A function of its own, called
    from the parallel block kernel: inlined there, its tuple of products sends numba's
    reduction analysis of the parallel loop into endless recursion.)"""
    fx = 0.0
    fy = 0.0
    fz = 0.0
    products = EMPTY
    for m in range(first, last):
        dx = sx - cuboids[m, 0]
        dy = sy - cuboids[m, 1]
        dz = sz - cuboids[m, 2]
        if dx * dx + dy * dy + dz * dz >= cub_far2[m]:  # as `_point_pair` tells them
            ex, ey, ez = _point_pair(dx, dy, dz, half[m, 0], half[m, 1], half[m, 2],
                                     cub_far2[m])
            fx += ex
            fy += ey
            fz += ez
        else:
            products = times_cuboid(products, _point_products(dx, dy, dz, half[m, 0],
                                                              half[m, 1], half[m, 2]))
    ex, ey, ez = columns(products)
    return fx + ex, fy + ey, fz + ez


# point_grain compiles in forward.py's functions
cache_depends_on(__name__, "smm_daq.analysis.forward")
