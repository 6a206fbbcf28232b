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
less time (one core). The block kernel hands over a grain's near sensors of one tile at once
(`point_grain_tile`), whose closed forms then run across those sensors, vectorized.

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
LANES = 4  # `point_grain_tile` runs over a multiple of this many sensors

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
    # only its argument is kept; × an exact power of two, as ldexp but vectorizable
    size = abs(nre) + abs(nim)
    factor = _SCALE if size < _TINY else (_TINY if size > _SCALE else 1.0)
    return nre * factor, nim * factor, turns


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
def point_grain_tile(sensors, index, count, first, last, cuboids, half, cub_far2, work, cols):
    """cols[:, j] = Σ over cuboids first … last − 1 of `forward._point_pair` (Mx, My, Mz
    columns, ×4π/μ0) at sensor index[j], j < count: the cuboids within their switching
    distance by their closed form, its logarithms and arctangents taken once for them all.

    The cuboids run outside and the sensors inside, so that each cuboid's closed form runs
    across the sensors (a grain's near sensors in one tile of the block kernel) in one loop
    that the compiler vectorizes, four sensors at a time on AVX2; the sensors' products are
    held in `work` (13 rows of at least count rounded up to LANES columns; the exponents
    and turns there as floats, small integers held exactly, one row type). Each sensor
    still takes the same operations in the same order as one sensor at a time would, so the
    columns are the same to the bit: a cuboid beyond a sensor's switch leaves that sensor's
    products as they were (a select, not a branch) and adds its quadrupole in a second loop.
    On the 200 × 200 × 50 µm sample of `benchmarks/mmt_scale.py` (one core) its 1.46 million
    closed forms took about 30 ms instead of 90 (one sensor at a time, the cuboids inside:
    scalar square roots and a chain of dependent products per sensor). (A function of its
    own, called from the parallel block kernel: inlined there, its tuples of products send
    numba's reduction analysis of the parallel loop into endless recursion.)"""
    n = (count + LANES - 1) // LANES * LANES
    xs = work[0]
    ys = work[1]
    zs = work[2]
    num_x = work[3]
    den_x = work[4]
    exp_x = work[5]
    num_y = work[6]
    den_y = work[7]
    exp_y = work[8]
    re = work[9]
    im = work[10]
    turns = work[11]
    far = work[12]
    for j in range(n):
        i = index[min(j, count - 1)]  # the last sensor again up to whole vectors
        xs[j] = sensors[i, 0]
        ys[j] = sensors[i, 1]
        zs[j] = sensors[i, 2]
        num_x[j] = 1.0
        den_x[j] = 1.0
        exp_x[j] = 0.0
        num_y[j] = 1.0
        den_y[j] = 1.0
        exp_y[j] = 0.0
        re[j] = 1.0
        im[j] = 0.0
        turns[j] = 0.0
        cols[0, j] = 0.0
        cols[1, j] = 0.0
        cols[2, j] = 0.0
    for m in range(first, last):
        cx = cuboids[m, 0]
        cy = cuboids[m, 1]
        cz = cuboids[m, 2]
        a = half[m, 0]
        b = half[m, 1]
        c = half[m, 2]
        far2 = cub_far2[m]
        any_far = False
        for j in range(n):
            dx = xs[j] - cx
            dy = ys[j] - cy
            dz = zs[j] - cz
            beyond = dx * dx + dy * dy + dz * dz >= far2  # as `_point_pair` tells them
            state = (num_x[j], den_x[j], exp_x[j], num_y[j], den_y[j], exp_y[j], re[j], im[j],
                     turns[j])
            nx, dnx, ex, ny, dny, ey, r, s, t = times_cuboid(
                state, _point_products(dx, dy, dz, a, b, c))
            # kept unchanged where the cuboid takes its quadrupole instead
            num_x[j] = num_x[j] if beyond else nx
            den_x[j] = den_x[j] if beyond else dnx
            exp_x[j] = exp_x[j] if beyond else ex
            num_y[j] = num_y[j] if beyond else ny
            den_y[j] = den_y[j] if beyond else dny
            exp_y[j] = exp_y[j] if beyond else ey
            re[j] = re[j] if beyond else r
            im[j] = im[j] if beyond else s
            turns[j] = turns[j] if beyond else t
            far[j] = 1.0 if beyond else 0.0
            any_far |= beyond
        if any_far:
            for j in range(count):
                if far[j] > 0.0:
                    fx, fy, fz = _point_pair(xs[j] - cx, ys[j] - cy, zs[j] - cz, a, b, c, far2)
                    cols[0, j] += fx
                    cols[1, j] += fy
                    cols[2, j] += fz
    for j in range(count):
        ex, ey, ez = columns((num_x[j], den_x[j], int(exp_x[j]), num_y[j], den_y[j],
                              int(exp_y[j]), re[j], im[j], int(turns[j])))
        cols[0, j] += ex
        cols[1, j] += ey
        cols[2, j] += ez


# point_grain_tile compiles in forward.py's functions
cache_depends_on(__name__, "smm_daq.analysis.forward")
