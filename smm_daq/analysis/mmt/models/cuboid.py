"""The Green's matrix Q of MMT (Bz at each sensor per unit magnetization of each grain),
computed one block of sensors at a time, in parallel over the sensors of a block.

Column 3g + j of Q is the field of grain g magnetized along axis j: the sum over the grain's
cuboids of the closed-form kernel of `smm_daq.analysis.forward` (with its own choice between
the exact form and the cuboid's far-field expansion). Far from the grain, the grain's own far
field replaces that sum: the multipole expansion of its Newtonian potential about its volume
centroid (where the dipole-order term of the potential, i.e. the quadrupole of the field,
vanishes), from the volume moments of the grain convolved with the sensor area.

The remainder of that expansion truncated after order N is bounded for any shape: the order-n
term of a unit source at distance s from the centroid is at most (n+1)(n+2) sⁿ/R^(n+3)
(attained on the axis through the source), and for the first neglected order, which is odd,
the zero-mean constraint of moments about the centroid lowers that to ``OCTUPOLE_CONSTANT``
(n = 3) or ``ORDER5_CONSTANT`` (n = 5): the largest term over zero-mean distributions inside
the ball ρ, a linear program (12.45 and 27.9; the extremes are a point plus a ring on a cone,
not two points on a line, which give only 5 and 13.7); from n = 7 the pointwise constant
(n+1)(n+2) is kept. With x = ρ/R, ρ the largest distance
from the centroid to the grain plus the sensor's half-diagonal, R the distance from the
centroid:

    |remainder| ≤ [c x^(N+1) + Σ_{n ≥ N+2} (n+1)(n+2) xⁿ] μ0 V/(4π R³) per unit M
    (`remainder_bound`).

The truncations GRAIN_ORDERS are used, each from the distance where its bound falls below
``GRAIN_TOLERANCE`` of the grain's reference scale μ0 V/(4π R_ref³), R_ref the distance from
the centroid to the nearest point of the scanned area (about the column's largest entry):
N = 2 (second moments only, cheapest) farthest out, then N = 4 (`_orders_3_4`), then N = 6,
8, 10 and 12 (`_grain_orders`: the Bz columns of each order as homogeneous polynomials over
r^(2n+5), `grain_order_terms`). Each order brings nearer the distance from which the grain's
own far field replaces the sum over its cuboids, the costliest entries: on the 200 × 200 ×
50 µm sample of `benchmarks/mmt_scale.py` (seed 1, point sensors), 34.5 million (sensor,
cuboid) pairs after order 4, 6.7 million after order 8 and 1.5 million after order 12 (on
its 300 × 300 × 75 µm sample: 28.7 and 7.9 million after orders 8 and 12, which halved the
time of the Green's block kernel). Order 14 gained nothing more
(its terms cost what its fewer sums saved). Tests check the bounds on adversarial shapes,
that every entry stays within 1e-4 of its column's largest, and that every M̂ moves by less
than a tenth of its standard deviation on a sample with 20 nT noise. The second property
depends on the signal-to-noise ratio: a map with far less noise than that, relative to its
field, may need a smaller GRAIN_TOLERANCE (or `exact=True`).

Between a cuboid's quadrupole switch (`forward`) and the exact sensor-area form, an area
sensor uses the cuboid's own expansion to the sixth order (`_cuboid_expansion`): the cuboid
convolved with the sensor rectangle is centrally symmetric, so its odd orders vanish and the
remainder after order 6 is at most Σ_{n even ≥ 8} (n+1)(n+2) xⁿ μ0 V/(4π R³) per unit M,
x = L/R with L the half-diagonal of the convolved box (`even_remainder_bound`, in closed
form). It is used from the distance where that bound falls below ``NEAR_TOLERANCE`` of the
cuboid's reference scale μ0 V/(4π R_ref³), a quarter of the quadrupole's target, so that
on the 1 × 1 µm sensors 1 µm above a 200 × 200 × 50 µm sample (5 nT) every M̂ stays within
0.002 of its SD of the exact form's. Most of the pairs that took the exact form there are
far from the sensor's scale (a deep cuboid under a wide disc of sensors): this takes about
80 % of them, at about a fifth of their cost. Nearer, the expansion to the tenth order
(`_cuboid_expansion_10`, the same bound summed from n = 12) takes 85 % of the rest, at about
a third of the exact form's cost on shared corners. Point sensors keep the closed form,
about as cheap as the expansion.

Area sensors whose pitch is their size (a QDM or SQUID map: each pixel the sensor's area)
share their corners with their neighbours. The exact sensor-area form is a signed sum over
the sensor's 4 corners of a sum over the cuboid's 8 corners, so on such a lattice each
(lattice corner, cuboid) sum is computed once and used by the up to 4 sensors around it:
about 8 corner terms a pair instead of 32 (`_grid_exact`). Which form each (sensor, cuboid)
pair takes is decided as before; only the exact form's sums are regrouped, so the rows agree
with the per-sensor form to its rounding error.

The fitted map needs no rows of Q held (it keeps them only where all of Q fits a small
budget, `inversion.accumulate`): the costly entries, the (sensor, grain) pairs nearer
than the grain's far-field switch (sums over its cuboids), are few (only sensors near a grain
have any; 0.14 % of the pairs on the 200 × 200 × 50 µm sample above) and are kept sparse
(`GreenModel.near_part`); the far fields are cheap to compute again, dotted with M without
forming their rows (`GreenModel.far_field`).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np
from numba import njit, prange
from scipy import sparse

from smm_daq.analysis.forward import (
    AREA_EXACT,
    MU0_OVER_4PI,
    _area_corner,
    _area_form,
    _area_tier,
    _cuboid_constants,
    _point_pair,
    moment_expansion,
)
from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.models.compiled import cache_depends_on, fortran_rows
from smm_daq.analysis.mmt.models.expansion_terms import (
    EVEN_MONOMIALS,
    cuboid_even_terms,
    grain_moments,
    grain_order_terms,
    orders_3_4_terms,
    switch_distance,
)
from smm_daq.analysis.mmt.models.grain_products import point_grain_tile

GRAIN_TOLERANCE = 1e-5  # far-field error target relative to the grain's reference scale
CUBOID_TOLERANCE = 1e-5  # the same for each cuboid's own switch (forward model)
NEAR_TOLERANCE = 2.5e-6  # the same for the switches to a cuboid's order-6 and -10 expansions
# the grain far field truncated after each of these orders, the first farthest out
GRAIN_ORDERS = (2, 4, 6, 8, 10, 12)
HIGHER_ORDERS = tuple(range(5, GRAIN_ORDERS[-1] + 1))  # `grain_order_terms` in the model


@njit(cache=True, inline="always", error_model="numpy")
def _orders_3_4(x, y, z, t, g):
    """Bz columns (×4π/μ0) of the third- and fourth-order terms of a grain's potential.

    t[g] holds (2n−1)!!/n! × V × the detraced n-th volume moments: 10 components for n = 3
    (xxx xxy xxz xyy xyz xzz yyy yyz yzz zzz), 15 for n = 4 (xxxx … zzzz in the same order).
    The order-n potential is P(r)/r^(2n+1) with P = t·rⁿ a harmonic polynomial; with
    v_ij = Σ t_ij… r…, w = v·r: P = w·r, ∇P = n w, ∂z∇P = n(n−1) v_·z, and
    ∂z∂j (P r^−m) = r^−m [∂z∂jP − m r^−2 (∂jP z + ∂zP r_j + P δzj) + m(m+2) r^−4 P r_j z]."""
    r2 = x * x + y * y + z * z
    ir2 = 1.0 / r2
    # n = 3
    vxx = t[g, 0] * x + t[g, 1] * y + t[g, 2] * z
    vxy = t[g, 1] * x + t[g, 3] * y + t[g, 4] * z
    vxz = t[g, 2] * x + t[g, 4] * y + t[g, 5] * z
    vyy = t[g, 3] * x + t[g, 6] * y + t[g, 7] * z
    vyz = t[g, 4] * x + t[g, 7] * y + t[g, 8] * z
    vzz = t[g, 5] * x + t[g, 8] * y + t[g, 9] * z
    wx = vxx * x + vxy * y + vxz * z
    wy = vxy * x + vyy * y + vyz * z
    wz = vxz * x + vyz * y + vzz * z
    P3 = wx * x + wy * y + wz * z
    a3 = 7.0 * ir2
    c3 = 63.0 * ir2 * ir2 * P3 * z - a3 * 3.0 * wz
    s3 = ir2 * ir2 * ir2 / math.sqrt(r2)  # r^-7
    fx = s3 * (6.0 * vxz - a3 * 3.0 * wx * z + c3 * x)
    fy = s3 * (6.0 * vyz - a3 * 3.0 * wy * z + c3 * y)
    fz = s3 * (6.0 * vzz - a3 * (3.0 * wz * z + P3) + c3 * z)
    # n = 4
    xx = x * x
    yy = y * y
    zz = z * z
    xy2 = 2.0 * x * y
    xz2 = 2.0 * x * z
    yz2 = 2.0 * y * z
    vxx = (t[g, 10] * xx + t[g, 13] * yy + t[g, 15] * zz
           + t[g, 11] * xy2 + t[g, 12] * xz2 + t[g, 14] * yz2)
    vxy = (t[g, 11] * xx + t[g, 16] * yy + t[g, 18] * zz
           + t[g, 13] * xy2 + t[g, 14] * xz2 + t[g, 17] * yz2)
    vxz = (t[g, 12] * xx + t[g, 17] * yy + t[g, 19] * zz
           + t[g, 14] * xy2 + t[g, 15] * xz2 + t[g, 18] * yz2)
    vyy = (t[g, 13] * xx + t[g, 20] * yy + t[g, 22] * zz
           + t[g, 16] * xy2 + t[g, 17] * xz2 + t[g, 21] * yz2)
    vyz = (t[g, 14] * xx + t[g, 21] * yy + t[g, 23] * zz
           + t[g, 17] * xy2 + t[g, 18] * xz2 + t[g, 22] * yz2)
    vzz = (t[g, 15] * xx + t[g, 22] * yy + t[g, 24] * zz
           + t[g, 18] * xy2 + t[g, 19] * xz2 + t[g, 23] * yz2)
    wx = vxx * x + vxy * y + vxz * z
    wy = vxy * x + vyy * y + vyz * z
    wz = vxz * x + vyz * y + vzz * z
    P4 = wx * x + wy * y + wz * z
    a4 = 9.0 * ir2
    c4 = 99.0 * ir2 * ir2 * P4 * z - a4 * 4.0 * wz
    s4 = s3 * ir2  # r^-9
    fx += s4 * (12.0 * vxz - a4 * 4.0 * wx * z + c4 * x)
    fy += s4 * (12.0 * vyz - a4 * 4.0 * wy * z + c4 * y)
    fz += s4 * (12.0 * vzz - a4 * (4.0 * wz * z + P4) + c4 * z)
    return fx, fy, fz


@njit(cache=True, inline="always", error_model="numpy")
def _first_scale(dz, r, first):
    """dz^N / r^(2n+5) for order n = first (N = n + 2) as (dz/r)^N / r^(n+3), by repeated
    products (and each next order's is this times dz/r², `_grain_orders`): not the
    library's pow, which had taken two calls per (sensor, order), a third of the time of
    orders from 5 on the 200 × 200 × 50 µm sample of `benchmarks/mmt_scale.py`."""
    w = dz / r
    num = 1.0
    for _ in range(first + 2):
        num *= w
    den = 1.0
    for _ in range(first + 3):
        den *= r
    return num / den


@njit(cache=True, inline="always", error_model="numpy")
def _grain_orders(dx, dy, dz, t, g, first, top):
    """Bz columns (×4π/μ0) of the orders `first` … `top` of grain g's potential from their
    coefficients t[g] (`grain_order_terms`): order n's three columns are Q_j(r)/r^(2n+5),
    Q_j a homogeneous polynomial of degree N = n + 2, evaluated as dz^N q_j(dx/dz, dy/dz) by
    Horner's rule in both variables (the coefficients stored in that order, the three
    columns interleaved). dz ≠ 0: the sensor is above the grain (checked before any
    inversion)."""
    u = dx / dz
    v = dy / dz
    r2 = dx * dx + dy * dy + dz * dz
    r = math.sqrt(r2)
    f = _first_scale(dz, r, first)  # dz^N / r^(2n+5)
    step = dz / r / r
    fx = 0.0
    fy = 0.0
    fz = 0.0
    k = 0
    for n in range(first, top + 1):
        big_n = n + 2
        qx = 0.0
        qy = 0.0
        qz = 0.0
        for a in range(big_n, -1, -1):
            sx = 0.0
            sy = 0.0
            sz = 0.0
            for _ in range(big_n - a, -1, -1):
                sx = sx * v + t[g, k]
                sy = sy * v + t[g, k + 1]
                sz = sz * v + t[g, k + 2]
                k += 3
            qx = qx * u + sx
            qy = qy * u + sy
            qz = qz * u + sz
        fx += f * qx
        fy += f * qy
        fz += f * qz
        f *= step
    return fx, fy, fz


@njit(cache=True, inline="always", error_model="numpy")
def _top_order(d2, fine2, g):
    """The last order of grain g's far field at squared distance d2 from it (nearer than
    fine2[g, 0], so beyond order 4): 6, and 2 more for each of its later switches (fine2[g, j],
    order 4 + 2j suffices beyond it) that d2 is nearer than."""
    top = 6
    for j in range(1, fine2.shape[1]):
        if d2 >= fine2[g, j]:
            break
        top += 2
    return top


@njit(cache=True, inline="always", error_model="numpy")
def _gather_for_orders(j, dx, dy, dz, d2, fine2, g, held):
    """Keeps in column j of `held` (rows u = dx/dz, v = dy/dz, the first order's scale and
    its step from order to order as `_grain_orders` takes them, and the last order,
    `_top_order`) what `_orders_over_tile` needs of one sensor at offset (dx, dy, dz) from
    grain g; returns that last order."""
    r = math.sqrt(dx * dx + dy * dy + dz * dz)
    top = _top_order(d2, fine2, g)
    held[0, j] = dx / dz
    held[1, j] = dy / dz
    held[2, j] = _first_scale(dz, r, HIGHER_ORDERS[0])
    held[3, j] = dz / r / r
    held[4, j] = top
    return top


@njit(cache=True, inline="always", error_model="numpy")
def _by_last_order(cnt, top, held, index, into, into_index):
    """Copies the cnt columns of `held` (`_gather_for_orders`) and their `index` into `into`
    and `into_index`, by decreasing last order (row 4; `top` the largest), in their order
    within each last order; then zeros in rows 0–3 up to a multiple of LANES columns."""
    m = 0
    for last in range(top, HIGHER_ORDERS[0] - 1, -2):  # 6, 8, 10 or 12
        for j in range(cnt):
            if held[4, j] == last:
                for row in range(5):
                    into[row, m] = held[row, j]
                into_index[m] = index[j]
                m += 1
    for j in range(m, min(TILE, (m + LANES - 1) // LANES * LANES)):
        for row in range(4):
            into[row, j] = 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _orders_over_tile(t, g, cols, cnt, top, held, part, f):
    """f[c, j] = column c of `_grain_orders` (cols = 3) or of its coefficients dotted with
    grain g's M (cols = 1, t the dotted coefficients) for the cnt sensors of a tile gathered
    in `held` (`_gather_for_orders`, then `_by_last_order`), up to each one's own last order;
    `part` (2 cols × TILE) is workspace. Each sensor takes the same operations in the same
    order as in `_grain_orders`, so the result is the same to the bit; but they run across
    the sensors, which the compiler vectorizes, not one sensor at a time, a chain of
    dependent multiply-adds (Horner's rule) that left the core waiting on each (one core, the
    200 × 200 × 50 µm sample of `benchmarks/mmt_scale.py`: the fitted map's orders from 5
    took 29 ms instead of 46, the Green's blocks 270–300 ms instead of 325–360). The sensors
    come by decreasing last order, so each order runs over those that take it only (the
    first `live`): on that sample a third of the multiply-adds had gone to orders past a
    sensor's own, to the last order of its tile's nearest. The Horner sums run on to a
    multiple of LANES sensors (`span`): the ones after `live` are workspace only."""
    u = held[0]
    v = held[1]
    scale = held[2]  # the current order's, stepped in place
    step = held[3]
    tops = held[4]
    f[:cols, :cnt] = 0.0
    k = 0
    live = cnt
    for n in range(HIGHER_ORDERS[0], top + 1):
        while tops[live - 1] < n:
            live -= 1
        big_n = n + 2
        span = min(TILE, (live + LANES - 1) // LANES * LANES)
        part[cols:, :span] = 0.0  # q, the polynomial in u of polynomials in v
        for a in range(big_n, -1, -1):
            part[:cols, :span] = 0.0  # s, the polynomial in v of x's power a
            steps = big_n - a + 1
            for c in range(cols):
                k_c = k + c
                done = 0
                while done + 3 < steps:  # four of Horner's steps per pass over the sensors
                    c0 = t[g, k_c + done * cols]
                    c1 = t[g, k_c + (done + 1) * cols]
                    c2 = t[g, k_c + (done + 2) * cols]
                    c3 = t[g, k_c + (done + 3) * cols]
                    for j in range(span):
                        vj = v[j]
                        part[c, j] = (((part[c, j] * vj + c0) * vj + c1) * vj + c2) * vj + c3
                    done += 4
                while done + 1 < steps:  # two of Horner's steps per pass over the sensors
                    first = t[g, k_c + done * cols]
                    second = t[g, k_c + (done + 1) * cols]
                    for j in range(span):
                        part[c, j] = (part[c, j] * v[j] + first) * v[j] + second
                    done += 2
                if done < steps:
                    last = t[g, k_c + done * cols]
                    for j in range(span):
                        part[c, j] = part[c, j] * v[j] + last
            k += steps * cols
            for c in range(cols):
                for j in range(span):
                    part[cols + c, j] = part[cols + c, j] * u[j] + part[c, j]
        for c in range(cols):
            for j in range(live):
                f[c, j] += scale[j] * part[cols + c, j]
        for j in range(live):
            scale[j] *= step[j]


@njit(cache=True, inline="always", error_model="numpy")
def _even_sums(w, base, lo, hi, xp, yp, zp):
    """P = Σ w[k − base] x^i y^j z^l over the even monomials k = lo … hi − 1 of
    EVEN_MONOMIALS (xp[i] = x^i, …) and its derivatives ∂x, ∂y, ∂z, ∂z∂x, ∂z∂y, ∂z∂z.
    Called with constant base, lo and hi, at most 10 apart, so that the compiler unrolls the
    loop (it does not at 15 or 21: the tuples are then indexed at run time, twice as slow as
    in runs of 5, and 3× slower than the exact form)."""
    P = 0.0
    px = 0.0
    py = 0.0
    pz = 0.0
    pzx = 0.0
    pzy = 0.0
    pzz = 0.0
    for k in range(lo, hi):
        i = EVEN_MONOMIALS[k, 0]
        j = EVEN_MONOMIALS[k, 1]
        l = EVEN_MONOMIALS[k, 2]
        c = w[k - base]
        xi = xp[i]
        yj = yp[j]
        zl = zp[l]
        P += c * xi * yj * zl
        if i > 0:
            px += c * i * xp[i - 1] * yj * zl
        if j > 0:
            py += c * j * xi * yp[j - 1] * zl
        if l > 0:
            zl1 = zp[l - 1]
            pz += c * l * xi * yj * zl1
            if i > 0:
                pzx += c * i * l * xp[i - 1] * yj * zl1
            if j > 0:
                pzy += c * j * l * xi * yp[j - 1] * zl1
            if l > 1:
                pzz += c * l * (l - 1) * xi * yj * zp[l - 2]
    return P, px, py, pz, pzx, pzy, pzz


@njit(cache=True, inline="always", error_model="numpy")
def _even_field(sums, n, x, y, z, ir2, r):
    """Bz columns (×4π/μ0) of the order-n term P(r)/r^(2n+1) of a potential from P and its
    derivatives (`_even_sums`), by
    ∂z∂j (P r^−s) = r^−s [∂z∂jP − s r^−2 (∂jP z + ∂zP r_j + P δzj) + s(s+2) r^−4 P r_j z]."""
    P, px, py, pz, pzx, pzy, pzz = sums
    s = 2.0 * n + 1.0
    scale = ir2**n / r  # r^−(2n+1)
    common = s * (s + 2.0) * ir2 * ir2 * P * z - s * ir2 * pz
    return (scale * (pzx - s * ir2 * px * z + common * x),
            scale * (pzy - s * ir2 * py * z + common * y),
            scale * (pzz - s * ir2 * (pz * z + P) + common * z))


@njit(cache=True, inline="always", error_model="numpy")
def _add(a, b):
    """The sum of two tuples of P and its derivatives (`_even_sums`)."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4], a[5] + b[5],
            a[6] + b[6])


@njit(cache=True, inline="always", error_model="numpy")
def _powers(v):
    """(1, v, v², …, v¹⁰)."""
    v2 = v * v
    v4 = v2 * v2
    v8 = v4 * v4
    return (1.0, v, v2, v2 * v, v4, v4 * v, v4 * v2, v4 * v2 * v, v8, v8 * v, v8 * v2)


@njit(cache=True, inline="always", error_model="numpy")
def _expansion_to_6(dx, dy, dz, a, b, c, p, q, w):
    """`_cuboid_expansion` from its 16 coefficients w."""
    fx, fy, fz = moment_expansion(dx, dy, dz, 8.0 * a * b * c, (a * a + p * p) / 3.0,
                                  (b * b + q * q) / 3.0, c * c / 3.0, 0.0, 0.0, 0.0)
    xp = _powers(dx)
    yp = _powers(dy)
    zp = _powers(dz)
    r2 = dx * dx + dy * dy + dz * dz
    ir2 = 1.0 / r2
    r = math.sqrt(r2)
    ex, ey, ez = _even_field(_even_sums(w, 0, 0, 6, xp, yp, zp), 4, dx, dy, dz, ir2, r)
    gx, gy, gz = _even_field(_even_sums(w, 0, 6, 16, xp, yp, zp), 6, dx, dy, dz, ir2, r)
    return fx + ex + gx, fy + ey + gy, fz + ez + gz


@njit(cache=True, error_model="numpy")
def _cuboid_expansion(dx, dy, dz, a, b, c, p, q, terms, m):
    """Bz columns (×4π/μ0) of cuboid m (half-edges a, b, c) convolved with the sensor area
    (half-widths p, q), expanded to the sixth order: its odd moments vanish (a centrally
    symmetric density), so this is the quadrupole expansion plus the order-4 and order-6
    terms, harmonic polynomials over EVEN_MONOMIALS with the coefficients terms[m]
    (`cuboid_even_terms`). The array is read here only (the GPU simulator runs this
    function's Python source, where a compiled function cannot take it).

    This and `_cuboid_expansion_10` are compiled as functions of their own, not inlined into
    `_green_block` as the other helpers are: their unrolled sums inlined made numba's passes
    over the parallel loop's body (and LLVM's over the kernel) the better part of a fresh
    machine's first inversion, 66 to 82 s of CPU for `_green_block` against 25 to 28 s for
    the three apart (`benchmarks/numba_cold.py`). They run once per (sensor, cuboid) pair
    in a scalar loop, where a call costs nothing that shows, and compute the same bits."""
    w = (terms[m, 0], terms[m, 1], terms[m, 2], terms[m, 3], terms[m, 4], terms[m, 5],
         terms[m, 6], terms[m, 7], terms[m, 8], terms[m, 9], terms[m, 10], terms[m, 11],
         terms[m, 12], terms[m, 13], terms[m, 14], terms[m, 15])
    return _expansion_to_6(dx, dy, dz, a, b, c, p, q, w)


@njit(cache=True, error_model="numpy")
def _cuboid_expansion_10(dx, dy, dz, a, b, c, p, q, terms, m):
    """`_cuboid_expansion` to the tenth order: with the order-8 and order-10 terms (the
    coefficients terms[m, 16:52]), for sensors nearer the cuboid than its order-6 switch."""
    w = (terms[m, 0], terms[m, 1], terms[m, 2], terms[m, 3], terms[m, 4], terms[m, 5],
         terms[m, 6], terms[m, 7], terms[m, 8], terms[m, 9], terms[m, 10], terms[m, 11],
         terms[m, 12], terms[m, 13], terms[m, 14], terms[m, 15])
    h = (terms[m, 16], terms[m, 17], terms[m, 18], terms[m, 19], terms[m, 20], terms[m, 21],
         terms[m, 22], terms[m, 23], terms[m, 24], terms[m, 25], terms[m, 26], terms[m, 27],
         terms[m, 28], terms[m, 29], terms[m, 30], terms[m, 31], terms[m, 32], terms[m, 33],
         terms[m, 34], terms[m, 35], terms[m, 36], terms[m, 37], terms[m, 38], terms[m, 39],
         terms[m, 40], terms[m, 41], terms[m, 42], terms[m, 43], terms[m, 44], terms[m, 45],
         terms[m, 46], terms[m, 47], terms[m, 48], terms[m, 49], terms[m, 50], terms[m, 51])
    fx, fy, fz = _expansion_to_6(dx, dy, dz, a, b, c, p, q, w)
    # the powers again (a few multiplications): passed down as a tuple of tuples they
    # fail numba's array analysis of the parallel block kernel
    xp = _powers(dx)
    yp = _powers(dy)
    zp = _powers(dz)
    r2 = dx * dx + dy * dy + dz * dz
    ir2 = 1.0 / r2
    r = math.sqrt(r2)
    order8 = _add(_add(_even_sums(h, 16, 16, 21, xp, yp, zp),
                       _even_sums(h, 16, 21, 26, xp, yp, zp)),
                  _even_sums(h, 16, 26, 31, xp, yp, zp))
    order10 = _add(_add(_even_sums(h, 16, 31, 36, xp, yp, zp),
                        _even_sums(h, 16, 36, 41, xp, yp, zp)),
                   _add(_even_sums(h, 16, 41, 46, xp, yp, zp),
                        _even_sums(h, 16, 46, 52, xp, yp, zp)))
    ex, ey, ez = _even_field(order8, 8, dx, dy, dz, ir2, r)
    gx, gy, gz = _even_field(order10, 10, dx, dy, dz, ir2, r)
    return fx + ex + gx, fy + ey + gy, fz + ez + gz


@njit(cache=True, inline="always", error_model="numpy")
def _offset(sensors, i, centroid, g):
    """(dx, dy, dz, squared distance) of sensor i from grain g's centroid."""
    dx = sensors[i, 0] - centroid[g, 0]
    dy = sensors[i, 1] - centroid[g, 1]
    dz = sensors[i, 2] - centroid[g, 2]
    return dx, dy, dz, dx * dx + dy * dy + dz * dz


TILE = 64  # sensors per tile: a grain's order 2 (or 3–4) over a tile is one vectorized loop
# `_orders_over_tile` runs its Horner sums over a multiple of this many sensors (zeros after
# the last): whole vectors, none left to a scalar loop (its time on the medium sample's
# Green's blocks: about 3 % of theirs)
LANES = 8


@njit(cache=True, inline="always", error_model="numpy")
def _tile_box(sensors, lo, hi):
    """The bounding box (x0, x1, y0, y1, z0, z1) of sensors lo … hi − 1, once per tile: the
    kernels then test each grain against it in a few operations."""
    x0 = x1 = sensors[lo, 0]
    y0 = y1 = sensors[lo, 1]
    z0 = z1 = sensors[lo, 2]
    for i in range(lo + 1, hi):
        x0 = min(x0, sensors[i, 0])
        x1 = max(x1, sensors[i, 0])
        y0 = min(y0, sensors[i, 1])
        y1 = max(y1, sensors[i, 1])
        z0 = min(z0, sensors[i, 2])
        z1 = max(z1, sensors[i, 2])
    return x0, x1, y0, y1, z0, z1


@njit(cache=True, inline="always", error_model="numpy")
def _box_distance2(box, centroid, g):
    """Squared distance from grain g's centroid to a tile's box (`_tile_box`): no sensor of
    the tile is nearer."""
    ex = max(0.0, box[0] - centroid[g, 0], centroid[g, 0] - box[1])
    ey = max(0.0, box[2] - centroid[g, 1], centroid[g, 1] - box[3])
    ez = max(0.0, box[4] - centroid[g, 2], centroid[g, 2] - box[5])
    return ex * ex + ey * ey + ez * ez


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _order_2_block(sensors, centroid, volume, moments, far2, add, out):
    """Each grain's order 2 (×μ0/4π) written to its columns of `out` (added with `add`), 0
    for the sensors nearer than its far-field switch: one loop without branches per (tile,
    grain), which the compiler vectorizes.

    Two things keep such a loop scalar, found by LLVM's vectorizer remarks and by timing:
    stores into an argument array (which might alias the sensors, so each (tile, grain) is
    computed into a buffer of the kernel's own and copied out) and a second loop of other
    work in the same kernel (so each pass is a kernel of its own)."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        cols = np.empty((3, TILE))
        for g in range(centroid.shape[0]):
            for i in range(lo, hi):
                dx, dy, dz, d2 = _offset(sensors, i, centroid, g)
                fx, fy, fz = moment_expansion(dx, dy, dz, volume[g], moments[g, 0],
                                              moments[g, 1], moments[g, 2], moments[g, 3],
                                              moments[g, 4], moments[g, 5])
                w = MU0_OVER_4PI if d2 >= far2[g] else 0.0
                cols[0, i - lo] = w * fx
                cols[1, i - lo] = w * fy
                cols[2, i - lo] = w * fz
            _store(cols, lo, hi, 3 * g, add, out)


@njit(cache=True, inline="always", error_model="numpy")
def _store(cols, lo, hi, first, add, out):
    """out[lo:hi, first:first + k] = cols[:, :hi − lo]ᵀ (added with `add`)."""
    for k in range(cols.shape[0]):
        for i in range(lo, hi):
            if add:
                out[i, first + k] += cols[k, i - lo]
            else:
                out[i, first + k] = cols[k, i - lo]


@njit(cache=True, inline="always", error_model="numpy")
def _dotted_order_2(dx, dy, dz, r2, cxx, cyy, czz, cxy, cxz, cyz, mx, my, mz, cmx, cmy, cmz):
    """Σ_j m_j × column j of `moment_expansion` (×4π/μ0), m the grain's moment V·M, C its
    quadrupole per unit volume over 2 (C = (3S − tr S I)/2) and cm = C m: with v = C r and
    u = r·v, the columns' dipole terms dotted give (3 z (r·m) − r² m_z)/r⁵, their quadrupole
    terms 2 (C m)_z/r⁵ − 10 z (r·C m)/r⁷ − 5 u m_z/r⁷ + (r·m)(35 z u/r⁹ − 10 v_z/r⁷): a third
    fewer operations and one division fewer than the three columns."""
    ir = 1.0 / math.sqrt(r2)
    ir2 = ir * ir
    ir5 = ir2 * ir2 * ir
    ir7 = ir5 * ir2
    vx = cxx * dx + cxy * dy + cxz * dz
    vy = cxy * dx + cyy * dy + cyz * dz
    vz = cxz * dx + cyz * dy + czz * dz
    u = dx * vx + dy * vy + dz * vz
    dm = dx * mx + dy * my + dz * mz
    dcm = dx * cmx + dy * cmy + dz * cmz
    return ((3.0 * dz * dm - r2 * mz + 2.0 * cmz) * ir5
            + (35.0 * dz * u * dm * ir2 - 10.0 * dz * dcm - 5.0 * u * mz - 10.0 * vz * dm)
            * ir7)


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _order_2_field(sensors, centroid, volume, moments, far2, m, out):
    """out[i] = Σ_g (grain g's order-2 columns ×μ0/4π at sensor i) · m[3g:3g+3], over the
    grains beyond their far-field switch, as `_order_2_block` without writing rows, M dotted
    into each grain's moments first (`_dotted_order_2`: the same to rounding); then
    `_orders_3_4_field` and `_higher_orders_field` add the higher orders."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        total = np.zeros(TILE)
        for g in range(centroid.shape[0]):
            tr = moments[g, 0] + moments[g, 1] + moments[g, 2]
            cxx = 0.5 * (3.0 * moments[g, 0] - tr)
            cyy = 0.5 * (3.0 * moments[g, 1] - tr)
            czz = 0.5 * (3.0 * moments[g, 2] - tr)
            cxy = 1.5 * moments[g, 3]
            cxz = 1.5 * moments[g, 4]
            cyz = 1.5 * moments[g, 5]
            mx = volume[g] * m[3 * g]
            my = volume[g] * m[3 * g + 1]
            mz = volume[g] * m[3 * g + 2]
            cmx = cxx * mx + cxy * my + cxz * mz
            cmy = cxy * mx + cyy * my + cyz * mz
            cmz = cxz * mx + cyz * my + czz * mz
            for i in range(lo, hi):
                dx, dy, dz, d2 = _offset(sensors, i, centroid, g)
                f = _dotted_order_2(dx, dy, dz, d2, cxx, cyy, czz, cxy, cxz, cyz, mx, my, mz,
                                    cmx, cmy, cmz)
                total[i - lo] += f if d2 >= far2[g] else 0.0
        for i in range(lo, hi):
            out[i] = MU0_OVER_4PI * total[i - lo]


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _orders_3_4_field(sensors, centroid, high, coarse2, far2, m, out):
    """Adds to out[i] the orders 3–4 that `_orders_3_4_block` adds to the grains' order 2,
    dotted with m."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        box = _tile_box(sensors, lo, hi)
        total = np.zeros(TILE)
        for g in range(centroid.shape[0]):
            if (far2[g] >= coarse2[g]  # no grain far field (`exact`)
                    or _box_distance2(box, centroid, g) >= coarse2[g]):
                continue  # no sensor of the tile takes orders 3–4
            m0 = m[3 * g]
            m1 = m[3 * g + 1]
            m2 = m[3 * g + 2]
            for i in range(lo, hi):
                dx, dy, dz, d2 = _offset(sensors, i, centroid, g)
                fx, fy, fz = _orders_3_4(dx, dy, dz, high, g)
                w = MU0_OVER_4PI if far2[g] <= d2 < coarse2[g] else 0.0
                total[i - lo] += w * (fx * m0 + fy * m1 + fz * m2)
        for i in range(lo, hi):
            out[i] += total[i - lo]


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _higher_orders_field(sensors, centroid, far2, dotted, fine2, out):
    """Adds to out[i] the orders from 5 that `_green_block` adds, dotted with M: from
    `dotted`, their coefficients dotted with each grain's M (a third of the work of the
    three columns), over each tile's sensors at once (`_orders_over_tile`)."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        box = _tile_box(sensors, lo, hi)
        index = np.empty(TILE, dtype=np.int64)
        held = np.empty((5, TILE))
        by_order = np.empty((5, TILE))
        by_order_index = np.empty(TILE, dtype=np.int64)
        part = np.empty((2, TILE))
        f = np.empty((1, TILE))
        for g in range(centroid.shape[0]):
            if _box_distance2(box, centroid, g) >= fine2[g, 0]:
                continue
            cnt = 0
            top = HIGHER_ORDERS[0]
            for i in range(lo, hi):
                dx, dy, dz, d2 = _offset(sensors, i, centroid, g)
                if far2[g] <= d2 < fine2[g, 0]:
                    index[cnt] = i
                    top = max(top, _gather_for_orders(cnt, dx, dy, dz, d2, fine2, g, held))
                    cnt += 1
            if cnt == 0:
                continue
            _by_last_order(cnt, top, held, index, by_order, by_order_index)
            _orders_over_tile(dotted, g, 1, cnt, top, by_order, part, f)
            for j in range(cnt):
                out[by_order_index[j]] += MU0_OVER_4PI * f[0, j]


SUBTILE = 16  # a tile's sensors in the runs that `_orders_3_4_block` takes or leaves whole


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _orders_3_4_block(sensors, centroid, high, coarse2, far2, out):
    """Adds to `out` (each grain's order 2, `_order_2_block`) orders 3–4 where the sensor is
    beyond the grain's far-field switch and nearer than its `coarse2`: over each run of
    SUBTILE sensors nearer than that in one loop (0 where not wanted), as `_order_2_block`.
    Runs, not whole tiles: a tile's box reaches into a grain's orders 3–4 with a corner, and
    its sensors beyond then took them for nothing (on the 200 × 200 × 50 µm sample of
    `benchmarks/mmt_scale.py`, 3.4 million pairs for 2.0 million taking them; 2.4 million in
    runs, and the kernel about 8 % faster)."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        box = _tile_box(sensors, lo, hi)
        cols = np.empty((3, SUBTILE))
        for g in range(centroid.shape[0]):
            if (far2[g] >= coarse2[g]  # no grain far field (`exact`)
                    or _box_distance2(box, centroid, g) >= coarse2[g]):
                continue  # no sensor of the tile takes orders 3–4
            for r_lo in range(lo, hi, SUBTILE):
                r_hi = min(hi, r_lo + SUBTILE)
                if _box_distance2(_tile_box(sensors, r_lo, r_hi), centroid, g) >= coarse2[g]:
                    continue
                for i in range(r_lo, r_hi):
                    dx, dy, dz, d2 = _offset(sensors, i, centroid, g)
                    fx, fy, fz = _orders_3_4(dx, dy, dz, high, g)
                    w = MU0_OVER_4PI if far2[g] <= d2 < coarse2[g] else 0.0
                    cols[0, i - r_lo] = w * fx
                    cols[1, i - r_lo] = w * fy
                    cols[2, i - r_lo] = w * fz
                _store(cols, r_lo, r_hi, 3 * g, True, out)


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _green_block(sensors, p, q, centroid, far2, higher, fine2, start, cuboids, half, cub_far2,
                 cub_scale, cub_terms, cub_mid2, cub_inner2, tol, skip_exact, per_grain, out):
    """Adds to `out` (orders 2–4, `_order_2_block` and `_orders_3_4_block`), pair by pair
    where the sensor is nearer than the grain's `fine2`, orders from 5 or (nearer than `far2`)
    the sum over the grain's cuboids. With `skip_exact`, the (sensor, cuboid) pairs of an area
    sensor that take the exact form are left out (`_grid_exact` adds them). With `per_grain`,
    a point sensor's closed form takes its logarithms and arctangents once per grain, not
    once per cuboid, for the tile's sensors nearer than the grain's far-field switch at once
    (`grain_products.point_grain_tile`, vectorized across them). Division by zero
    cannot occur (every grain is below the sensors), so the kernels take NumPy's error model,
    which lets the tile loops vectorize."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        box = _tile_box(sensors, lo, hi)
        index = np.empty(TILE, dtype=np.int64)
        held = np.empty((5, TILE))
        by_order = np.empty((5, TILE))
        by_order_index = np.empty(TILE, dtype=np.int64)
        part = np.empty((6, TILE))
        f = np.empty((3, TILE))
        near = np.empty(TILE, dtype=np.int64)
        work = np.empty((13, TILE))
        near_cols = np.empty((3, TILE))
        for g in range(centroid.shape[0]):
            if _box_distance2(box, centroid, g) >= fine2[g, 0]:
                continue
            cnt = 0  # the tile's sensors that take orders from 5, gathered
            n_near = 0  # and those of a point sensor's sum over the grain's cuboids
            top = HIGHER_ORDERS[0]
            for i in range(lo, hi):
                sx = sensors[i, 0]
                sy = sensors[i, 1]
                sz = sensors[i, 2]
                dx, dy, dz, d2 = _offset(sensors, i, centroid, g)
                if d2 >= fine2[g, 0]:
                    continue
                if d2 >= far2[g]:
                    index[cnt] = i
                    top = max(top, _gather_for_orders(cnt, dx, dy, dz, d2, fine2, g, held))
                    cnt += 1
                elif p == 0.0 and per_grain:
                    near[n_near] = i
                    n_near += 1
                else:
                    fx = 0.0
                    fy = 0.0
                    fz = 0.0
                    for m in range(start[g], start[g + 1]):
                        if p == 0.0:
                            ex, ey, ez = _point_pair(
                                sx - cuboids[m, 0], sy - cuboids[m, 1], sz - cuboids[m, 2],
                                half[m, 0], half[m, 1], half[m, 2], cub_far2[m])
                        else:
                            ddx = sx - cuboids[m, 0]
                            ddy = sy - cuboids[m, 1]
                            ddz = sz - cuboids[m, 2]
                            r2 = ddx * ddx + ddy * ddy + ddz * ddz
                            if cub_mid2[m] <= r2 < cub_far2[m]:
                                ex, ey, ez = _cuboid_expansion(ddx, ddy, ddz, half[m, 0],
                                                               half[m, 1], half[m, 2], p, q,
                                                               cub_terms, m)
                            elif cub_inner2[m] <= r2 < cub_far2[m]:
                                ex, ey, ez = _cuboid_expansion_10(ddx, ddy, ddz, half[m, 0],
                                                                  half[m, 1], half[m, 2], p,
                                                                  q, cub_terms, m)
                            else:
                                tier = _area_tier(ddx, ddy, ddz, half[m, 0], half[m, 1],
                                                  half[m, 2], p, q, cub_far2[m],
                                                  cub_scale[m], tol)
                                if skip_exact and tier == AREA_EXACT:
                                    continue
                                ex, ey, ez = _area_form(tier, ddx, ddy, ddz, half[m, 0],
                                                        half[m, 1], half[m, 2], p, q,
                                                        cub_scale[m], tol)
                        fx += ex
                        fy += ey
                        fz += ez
                    out[i, 3 * g] += MU0_OVER_4PI * fx
                    out[i, 3 * g + 1] += MU0_OVER_4PI * fy
                    out[i, 3 * g + 2] += MU0_OVER_4PI * fz
            if n_near > 0:  # (a count typed int64 at once: not compiled for a literal 0 too)
                point_grain_tile(sensors, near, np.int64(n_near), start[g], start[g + 1],
                                 cuboids, half, cub_far2, work, near_cols)
                for j in range(n_near):
                    for c in range(3):
                        out[near[j], 3 * g + c] += MU0_OVER_4PI * near_cols[c, j]
            if cnt == 0:
                continue
            _by_last_order(cnt, top, held, index, by_order, by_order_index)
            _orders_over_tile(higher, g, 3, cnt, top, by_order, part, f)
            for j in range(cnt):
                for c in range(3):
                    out[by_order_index[j], 3 * g + c] += MU0_OVER_4PI * f[c, j]


@njit(cache=True, inline="always", error_model="numpy")
def _node_value(ux, uy, sz, cx, cy, cz, a, b, c):
    """Corner sum of `_area_exact` at one sensor corner (ux, uy): over the cuboid's 8 corners,
    + for its lower faces and − for its upper ones. A sensor's exact form is the signed sum of
    its 4 corners' values over 4pq."""
    gx = 0.0
    gy = 0.0
    gz = 0.0
    for i in range(2):
        X = ux - (cx - a) if i == 0 else ux - (cx + a)
        for j in range(2):
            Y = uy - (cy - b) if j == 0 else uy - (cy + b)
            for k in range(2):
                Z = sz - (cz - c) if k == 0 else sz - (cz + c)
                ex, ey, ez = _area_corner(X, Y, Z)
                if (i + j + k) % 2 == 0:
                    gx += ex
                    gy += ey
                    gz += ez
                else:
                    gx -= ex
                    gy -= ey
                    gz -= ez
    return gx, gy, gz


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _grid_exact(sensors, grid, x0, y0, step_x, step_y, p, q, centroid, far2, start, cuboids,
                half, cub_far2, cub_scale, cub_inner2, tol, chunks, out):
    """Adds the exact-form pairs that `_green_block` left out, for sensors on a lattice whose
    pitch is the sensor's size: neighbouring sensors share corners, so each corner's value is
    computed once per cuboid (8 corner terms a pair instead of 32). grid[r, k] is the sensor
    at lattice row r, column k (centre x0 + k·step_x, y0 + r·step_y), or −1. Rows are split
    into `chunks` run in parallel; each keeps the last two rows of corner values."""
    nrow, ncol = grid.shape
    sz = sensors[0, 2]
    inv = MU0_OVER_4PI / (4.0 * p * q)
    for ch in prange(chunks.size - 1):
        values = np.empty((2, ncol + 1, 3))
        stamp = np.full((2, ncol + 1), -1, dtype=np.int64)
        for g in range(centroid.shape[0]):
            for m in range(start[g], start[g + 1]):
                cx = cuboids[m, 0]
                cy = cuboids[m, 1]
                cz = cuboids[m, 2]
                a = half[m, 0]
                b = half[m, 1]
                c = half[m, 2]
                reach2 = min(cub_far2[m], cub_inner2[m]) * (1.0 + 1e-6)
                for r in range(chunks[ch], chunks[ch + 1]):
                    dyc = y0 + r * step_y - cy
                    w2 = reach2 - dyc * dyc - (sz - cz) ** 2
                    if w2 <= 0.0:
                        continue
                    w = math.sqrt(w2)
                    k_lo = max(0, math.floor((cx - w - x0) / step_x) - 1)
                    k_hi = min(ncol - 1, math.ceil((cx + w - x0) / step_x) + 1)
                    for k in range(k_lo, k_hi + 1):
                        i = grid[r, k]
                        if i < 0:
                            continue
                        gx = sensors[i, 0] - centroid[g, 0]
                        gy = sensors[i, 1] - centroid[g, 1]
                        gz = sensors[i, 2] - centroid[g, 2]
                        if gx * gx + gy * gy + gz * gz >= far2[g]:
                            continue
                        ddx = sensors[i, 0] - cx
                        ddy = sensors[i, 1] - cy
                        ddz = sensors[i, 2] - cz
                        if ddx * ddx + ddy * ddy + ddz * ddz >= cub_inner2[m]:
                            continue  # an expansion (`_green_block`)
                        tier = _area_tier(ddx, ddy, ddz, a, b, c, p, q, cub_far2[m],
                                          cub_scale[m], tol)
                        if tier != AREA_EXACT:
                            continue
                        fx = 0.0
                        fy = 0.0
                        fz = 0.0
                        for corner in range(4):
                            nr = r + 1 if corner < 2 else r
                            nk = k + 1 if corner % 2 == 0 else k
                            sign = 1.0 if corner == 0 or corner == 3 else -1.0
                            slot = nr % 2
                            key = m * (nrow + 1) + nr
                            if stamp[slot, nk] != key:
                                vx, vy, vz = _node_value(x0 + (nk - 0.5) * step_x,
                                                         y0 + (nr - 0.5) * step_y, sz,
                                                         cx, cy, cz, a, b, c)
                                values[slot, nk, 0] = vx
                                values[slot, nk, 1] = vy
                                values[slot, nk, 2] = vz
                                stamp[slot, nk] = key
                            fx += sign * values[slot, nk, 0]
                            fy += sign * values[slot, nk, 1]
                            fz += sign * values[slot, nk, 2]
                        out[i, 3 * g] += inv * fx
                        out[i, 3 * g + 1] += inv * fy
                        out[i, 3 * g + 2] += inv * fz


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _near_counts(sensors, centroid, far2, counts):
    """counts[i]: the grains nearer to sensor i than their far-field switch (the pairs that
    `_green_block` sums over cuboids), by the same test, over each tile's sensors for the
    grains whose switch reaches its box only (a few of them: 0.14 % of the pairs are near
    on the medium sample of benchmarks/mmt_scale.py, and testing every pair took the
    streams 20 CPU-ms with `_near_fill`)."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        box = _tile_box(sensors, lo, hi)
        for i in range(lo, hi):
            counts[i] = 0
        for g in range(centroid.shape[0]):
            if _box_distance2(box, centroid, g) >= far2[g]:
                continue  # no sensor of the tile is nearer (rounding is monotone)
            for i in range(lo, hi):
                dx = sensors[i, 0] - centroid[g, 0]
                dy = sensors[i, 1] - centroid[g, 1]
                dz = sensors[i, 2] - centroid[g, 2]
                if not dx * dx + dy * dy + dz * dz >= far2[g]:
                    counts[i] += 1


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _near_fill(sensors, centroid, far2, rows, indptr, indices, data):
    """The near pairs' entries of `rows` as the 1 × 3 blocks of a BSR matrix (row i's blocks
    from indptr[i], by grain; the grain in `indices`, its 3 columns in `data`), over the tiles
    as `_near_counts`."""
    n_sensors = sensors.shape[0]
    for t in prange((n_sensors + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(n_sensors, lo + TILE)
        box = _tile_box(sensors, lo, hi)
        k = indptr[lo:hi].copy()  # each sensor's next block
        for g in range(centroid.shape[0]):
            if _box_distance2(box, centroid, g) >= far2[g]:
                continue
            for i in range(lo, hi):
                dx = sensors[i, 0] - centroid[g, 0]
                dy = sensors[i, 1] - centroid[g, 1]
                dz = sensors[i, 2] - centroid[g, 2]
                if not dx * dx + dy * dy + dz * dz >= far2[g]:
                    indices[k[i - lo]] = g
                    data[k[i - lo], 0, 0] = rows[i, 3 * g]
                    data[k[i - lo], 0, 1] = rows[i, 3 * g + 1]
                    data[k[i - lo], 0, 2] = rows[i, 3 * g + 2]
                    k[i - lo] += 1


NEAR_PAIR_BYTES = 28  # a near (sensor, grain) pair kept: 3 doubles and an int32 column
LATTICE_TOLERANCE = 1e-9  # sensor centres off the lattice by less than this × the pitch


def sensor_lattice(sensors: np.ndarray, sensor_size: tuple[float, float]
                   ) -> tuple[np.ndarray, float, float] | None:
    """(grid, x0, y0) when the sensors lie on a lattice whose pitch is the sensor's size, in
    one plane (grid[r, k] the sensor at (x0 + k·w, y0 + r·l), −1 where none), else None.
    None too when fewer than about half the lattice's places hold a sensor (scattered sensors,
    or sensors smaller than their pitch: few corners to share)."""
    w, l = sensor_size
    if w <= 0 or l <= 0 or sensors.shape[0] == 0 or np.ptp(sensors[:, 2]) != 0:
        return None
    x0, y0 = float(sensors[:, 0].min()), float(sensors[:, 1].min())
    kx = np.rint((sensors[:, 0] - x0) / w)
    ky = np.rint((sensors[:, 1] - y0) / l)
    if (np.abs(sensors[:, 0] - (x0 + kx * w)).max() > LATTICE_TOLERANCE * w
            or np.abs(sensors[:, 1] - (y0 + ky * l)).max() > LATTICE_TOLERANCE * l):
        return None
    shape = (int(ky.max()) + 1, int(kx.max()) + 1)
    if shape[0] * shape[1] > 2 * sensors.shape[0] + 1024:
        return None
    grid = np.full(shape, -1, dtype=np.int64)
    grid[ky.astype(np.int64), kx.astype(np.int64)] = np.arange(sensors.shape[0])
    if np.count_nonzero(grid >= 0) != sensors.shape[0]:  # two sensors at one place
        return None
    return grid, x0, y0


def distance_to_scan(points: np.ndarray, scan_lo: np.ndarray, scan_hi: np.ndarray,
                     height: float) -> np.ndarray:
    """Distance from points (N, 3) to the nearest point of the scanned rectangle
    [scan_lo, scan_hi] (x, y) in the plane z = height."""
    dxy = np.maximum(scan_lo - points[:, :2], 0.0) + np.maximum(points[:, :2] - scan_hi, 0.0)
    return np.sqrt(np.sum(dxy**2, axis=1) + (height - points[:, 2]) ** 2)


@dataclass
class GreenModel:
    """Everything the block kernel needs about the grains, the sensor and the scan."""

    grains: GrainSet
    sensor_size: tuple[float, float]
    centroid: np.ndarray  # (G, 3) m
    volume: np.ndarray  # (G,) m^3
    moments: np.ndarray  # (G, 6) second moments xx, yy, zz, xy, xz, yz per unit volume, m^2
    high: np.ndarray  # (G, 25) order-3 and -4 coefficients of `_orders_3_4`
    coarse2: np.ndarray  # (G,) squared distance beyond which order 2 suffices, m^2
    far2: np.ndarray  # (G,) squared switching distance to the grain far field, m^2
    higher: np.ndarray  # (G, K) coefficients of `_grain_orders`, HIGHER_ORDERS (none: exact)
    fine2: np.ndarray  # (G, 4) squared distances beyond which orders 4, 6, 8, 10 suffice, m^2
    cub_far2: np.ndarray  # (C,) squared distance beyond which a cuboid's quadrupole suffices
    cub_scale: np.ndarray  # (C,) its reference scale V/R_ref³
    half: np.ndarray  # (C, 3) its half-edges
    cub_terms: np.ndarray  # (C, 52) order-4 to -10 coefficients of cuboid ⊗ sensor (area only)
    cub_mid2: np.ndarray  # (C,) squared distance beyond which its order-6 expansion suffices
    cub_inner2: np.ndarray  # (C,) the same for its order-10 expansion (≤ cub_mid2)
    exact: bool = False  # True: never the grain far field (for tests and references)
    share_corners: bool = True  # False: every sensor's exact form on its own (for tests)
    # False: a point sensor's closed form with its logarithms cuboid by cuboid (for tests)
    per_grain_logs: bool = True
    # the fitted map keeps the rows when all of Q fits and either Q is small
    # (`inversion.KEEP_ROWS_BYTES`) or no near part is smaller (`exact`): sums over cuboids
    # cost more to compute again than to copy
    keep_rows: ClassVar[bool] = True

    @classmethod
    def build(cls, grains: GrainSet, sensor_size: tuple[float, float], scan_lo: np.ndarray,
              scan_hi: np.ndarray, height: float, *, exact: bool = False) -> GreenModel:
        """scan_lo/scan_hi: (x, y) corners of the scanned sensor centres in m."""
        p, q = 0.5 * float(sensor_size[0]), 0.5 * float(sensor_size[1])
        cub = grains.cuboids
        volume = grains.volumes()
        centroid = grains.centroids()
        G = grains.n_grains
        rho = grains.radii() + math.hypot(p, q)
        r_ref = distance_to_scan(centroid, scan_lo, scan_hi, height)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmt-switches") as pool:
            # the squared switching distances of GRAIN_ORDERS (a row each), each nearer: found
            # in one bisection, compiled and without the GIL, in a thread of their own while
            # this one takes the moments (each a core's work, 2 cores: `build` in one stage)
            switches = None if exact else pool.submit(
                switch_distance, rho, r_ref, np.array(GRAIN_ORDERS), GRAIN_TOLERANCE)
            second, third, fourth = grain_moments(grains, (p, q))
            high = orders_3_4_terms(volume, third, fourth)
            # (the exact model has no grain far field, point sensors no cuboid expansions)
            higher = (np.empty((G, 0)) if exact
                      else grain_order_terms(grains, (p, q), HIGHER_ORDERS))
            switch2 = (np.full((len(GRAIN_ORDERS), G), np.inf) if switches is None
                       else np.minimum.accumulate(switches.result() ** 2, axis=0))
        coarse2, far2 = switch2[0], switch2[-1]
        fine2 = np.ascontiguousarray(switch2[1:-1].T)
        cub_ref = distance_to_scan(cub[:, :3], scan_lo, scan_hi, height)
        half, cub_far2, cub_scale = _cuboid_constants(
            np.ascontiguousarray(cub), p, q, cub_ref, CUBOID_TOLERANCE)
        cub_terms = cuboid_even_terms(half, (p, q)) if p > 0 else np.empty((cub.shape[0], 0))
        if p > 0:
            reach = np.sqrt(np.sum((half + np.array([p, q, 0.0])) ** 2, axis=1))
            # the order-6 and order-10 expansions' switches
            cub_mid2, cub_inner2 = np.minimum.accumulate(switch_distance(
                reach, cub_ref, np.array([6, 10]), NEAR_TOLERANCE, even=True) ** 2, axis=0)
        else:  # point sensors: the closed form is about as cheap as the expansion
            cub_mid2 = cub_inner2 = np.full(cub.shape[0], np.inf)
        return cls(grains, (2 * p, 2 * q), centroid, volume, np.ascontiguousarray(second),
                   high, coarse2, far2, higher, fine2, cub_far2,
                   cub_scale, half, cub_terms, cub_mid2, cub_inner2, exact)

    @property
    def n_columns(self) -> int:
        return 3 * self.grains.n_grains

    def lattice(self, sensors: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        """`sensor_lattice` of these sensors when they share corners, else None."""
        return sensor_lattice(sensors, self.sensor_size) if self.share_corners else None

    def block(self, sensors: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Q rows (B, 3G) in T/(A/m) for sensor centres (B, 3) in m."""
        sensors = np.ascontiguousarray(sensors, dtype=float)
        if out is None:
            out = np.empty((sensors.shape[0], self.n_columns), order="F")
        rows = fortran_rows(out)
        p, q = 0.5 * self.sensor_size[0], 0.5 * self.sensor_size[1]
        cuboids = np.ascontiguousarray(self.grains.cuboids)
        lattice = self.lattice(sensors)
        if lattice is not None:
            # the exact form's pairs first, into zeroed rows, then the rest added to them
            grid, x0, y0 = lattice
            n_chunks = min(grid.shape[0], 2 * numba.get_num_threads())
            chunks = np.linspace(0, grid.shape[0], n_chunks + 1).round().astype(np.int64)
            rows[:] = 0.0
            _grid_exact(sensors, grid, x0, y0, 2 * p, 2 * q, p, q, self.centroid, self.far2,
                        self.grains.start, cuboids, self.half, self.cub_far2, self.cub_scale,
                        self.cub_inner2, CUBOID_TOLERANCE, chunks, rows)
        _order_2_block(sensors, self.centroid, self.volume, self.moments, self.far2,
                       lattice is not None, rows)
        _orders_3_4_block(sensors, self.centroid, self.high, self.coarse2, self.far2, rows)
        _green_block(sensors, p, q, self.centroid, self.far2, self.higher, self.fine2,
                     self.grains.start, cuboids, self.half, self.cub_far2, self.cub_scale,
                     self.cub_terms, self.cub_mid2, self.cub_inner2, CUBOID_TOLERANCE,
                     lattice is not None, self.per_grain_logs, rows)
        if rows is not out:
            out[...] = rows[:out.shape[0]]
        return out

    def field(self, sensors: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Q·m (B,) for sensors (B, 3) and magnetizations m (3G,): from the rows (`block`),
        as the sums over cuboids need them (`far_field` and `near_part` for the rest)."""
        return self.block(sensors) @ np.ascontiguousarray(m, dtype=float).reshape(-1)

    def far_field(self, sensors: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Σ over the grains beyond their far-field switch of their `block` entries times
        m (3G,), without forming the rows: the fitted map's far part (`near_part` holds the
        rest)."""
        sensors = np.ascontiguousarray(sensors, dtype=float)
        m = np.ascontiguousarray(m, dtype=float)
        out = np.empty(sensors.shape[0])
        _order_2_field(sensors, self.centroid, self.volume, self.moments, self.far2, m, out)
        _orders_3_4_field(sensors, self.centroid, self.high, self.coarse2, self.far2, m, out)
        G, K = self.higher.shape
        dotted = np.einsum("gkj,gj->gk", self.higher.reshape(G, K // 3, 3), m.reshape(G, 3))
        _higher_orders_field(sensors, self.centroid, self.far2, dotted, self.fine2, out)
        return out

    def near_part(self, sensors: np.ndarray, rows: np.ndarray, max_bytes: float = math.inf
                  ) -> sparse.bsr_matrix | None:
        """The entries of Q rows `rows` (from `block`) of the (sensor, grain) pairs nearer than
        the grain's far-field switch, as a BSR matrix of 1 × 3 blocks (only sensors near a
        grain have any); None when it would take more than `max_bytes`. These are the costly
        entries, the sums over cuboids: `far_field(sensors, m)` plus this part times m is the
        rows times m, so the fitted map needs no rows of Q held."""
        pointers = 4 * (sensors.shape[0] + 1)  # int32 row pointers, as SciPy keeps them
        if max_bytes < pointers:
            return None
        sensors = np.ascontiguousarray(sensors, dtype=float)
        counts = np.empty(sensors.shape[0], dtype=np.int64)
        _near_counts(sensors, self.centroid, self.far2, counts)
        indptr = np.zeros(sensors.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        nnz = int(indptr[-1])
        if nnz * NEAR_PAIR_BYTES + pointers > max_bytes:
            return None
        indices = np.empty(nnz, dtype=np.int32)
        data = np.empty((nnz, 1, 3))
        held = fortran_rows(rows)  # one layout of the rows, one compilation
        if held is not rows:
            held[:rows.shape[0]] = rows
        _near_fill(sensors, self.centroid, self.far2, held, indptr, indices, data)
        return sparse.bsr_matrix((data, indices, indptr.astype(np.int32)),
                                 shape=(sensors.shape[0], self.n_columns))


# the kernels compile in forward.py's and grain_products.py's functions and expansion_terms.py's
# constants
cache_depends_on(__name__, "smm_daq.analysis.forward",
                 "smm_daq.analysis.mmt.models.grain_products",
                 "smm_daq.analysis.mmt.models.expansion_terms")
