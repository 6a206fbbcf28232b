"""The coefficients of the Green's model's far-field expansions, and the bounds on their
remainders, computed once when a model is built (`cuboid.GreenModel.build`); the kernels that
evaluate them are in `cuboid`.

- A grain's own far field: its volume moments about its centroid, convolved with the sensor
  area (`grain_moments` to the fourth order, `grain_order_terms` from the fifth), and the
  bound on the remainder of its expansion truncated after an order (`remainder_bound`), from
  which each truncation's switching distance is found (`switch_distance`).
- A cuboid's own expansion for area sensors (`cuboid_even_terms`, orders 4 to 10 over
  ``EVEN_MONOMIALS``), with the bound for centrally symmetric densities
  (`even_remainder_bound`).

Why these bounds hold is set out in `cuboid`'s docstring.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from numba import njit

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.models import polynomials

# the monomials x^a y^b z^c (a, b, c even) of degrees 4, 6, 8 and 10, in the order of the
# coefficients of `cuboid_even_terms` (6, 10, 15 and 21 of them)
EVEN_MONOMIALS = np.array([(a, b, n - a - b) for n in (4, 6, 8, 10) for a in range(n, -1, -2)
                           for b in range(n - a, -1, -2)], dtype=np.int64)
OCTUPOLE_CONSTANT = 13.0  # sup |order-3 term| / ((ρ/R)^3 V/R^3) over zero-mean shapes (12.45)
ORDER5_CONSTANT = 30.0  # the same for the order-5 term (27.9)


def remainder_bound(x: np.ndarray, order: int | np.ndarray) -> np.ndarray:
    """Bound on |remainder| / (V/R³) of the grain expansion truncated after `order` (one of
    `cuboid.GRAIN_ORDERS`, or an integer array of them broadcast against x), x = ρ/R < 1: the
    first neglected (odd) order with its zero-mean constant (after order 6 and beyond the
    pointwise one, (n+1)(n+2)), then the pointwise bound (n+1)(n+2) xⁿ summed in closed form
    from n = k = order + 2:
    Σ_{n≥k} (n+1)(n+2) xⁿ = x^k [(k+1)(k+2)/(1−x) + (2k+3) x/(1−x)² + x(1+x)/(1−x)³]."""
    first = np.where(order == 2, OCTUPOLE_CONSTANT,
                     np.where(order == 4, ORDER5_CONSTANT, (order + 2) * (order + 3)))
    k = order + 2
    u = 1.0 - x
    tail = x**k * ((k + 1) * (k + 2) / u + (2 * k + 3) * x / u**2 + x * (1 + x) / u**3)
    return first * x ** (order + 1) + tail


def even_remainder_bound(x: np.ndarray, order: int | np.ndarray = 6) -> np.ndarray:
    """Bound on |remainder| / (V/R³) of the expansion of a centrally symmetric density (a
    cuboid convolved with the sensor area: its odd orders vanish) truncated after the even
    `order` (6 or 10, or an integer array of them broadcast against x), x = ρ/R < 1: the
    pointwise bound (n+1)(n+2) xⁿ summed over even n ≥ 2k = order + 2, in closed form with
    y = x², A = (2k+1)(2k+2), B = (2k−1)2k:
    Σ_{m≥k} (2m+1)(2m+2) y^m = y^k (A − (A + B − 8) y + B y²) / (1 − y)³
    (order 6: y⁴ (90 − 138 y + 56 y²) / (1 − y)³)."""
    k = order // 2 + 1
    a, b = (2 * k + 1) * (2 * k + 2), (2 * k - 1) * 2 * k
    y = x * x
    return y**k * (a - (a + b - 8) * y + b * y * y) / (1.0 - y) ** 3


def switch_distance(rho: np.ndarray, r_ref: np.ndarray, orders: np.ndarray, tol: float, *,
                    even: bool = False) -> np.ndarray:
    """(orders, grains) the distances R beyond which bound(ρ/R) V/R³ ≤ tol V/R_ref³ for each
    truncation `orders` (1-D) of each grain (ρ and R_ref, 1-D): `remainder_bound`, or with
    `even` `even_remainder_bound` (the left side decreases with R). By bisection on log R,
    each bracket until it stops moving, where 60 halvings would leave it too (most reach
    adjacent doubles in about 55). Compiled: in NumPy each of the 60 passes cost a dozen calls
    on a few hundred values (most of a small model's build); the bounds here are the same
    operations as NumPy's, libm's pow included, so the same doubles."""
    return _switch_distances(np.ascontiguousarray(rho, dtype=float),
                             np.ascontiguousarray(r_ref, dtype=float),
                             np.asarray(orders, dtype=np.int64).reshape(-1), float(tol), even)


@njit(cache=True, error_model="numpy")
def _bound_at(x: float, order: int, even: bool) -> float:
    """`remainder_bound` (or with `even` `even_remainder_bound`) at one x, operation for
    operation as NumPy evaluates them (integer powers through pow, as NumPy's)."""
    if even:
        k = order // 2 + 1
        a, b = (2 * k + 1) * (2 * k + 2), (2 * k - 1) * 2 * k
        y = x * x
        return y ** float(k) * (a - (a + b - 8) * y + b * y * y) / (1.0 - y) ** 3.0
    first = OCTUPOLE_CONSTANT if order == 2 else (
        ORDER5_CONSTANT if order == 4 else float((order + 2) * (order + 3)))
    k = order + 2
    u = 1.0 - x
    tail = x ** float(k) * ((k + 1) * (k + 2) / u + (2 * k + 3) * x / (u * u)
                            + x * (1 + x) / u ** 3.0)
    return first * x ** float(order + 1) + tail


@njit(cache=True, error_model="numpy")
def _excess(rho: float, r_ref: float, r: float, order: int, tol: float, even: bool) -> float:
    return _bound_at(rho / r, order, even) * (r_ref / r) ** 3.0 - tol


@njit(cache=True, nogil=True, error_model="numpy")
def _switch_distances(rho: np.ndarray, r_ref: np.ndarray, orders: np.ndarray, tol: float,
                      even: bool) -> np.ndarray:
    out = np.empty((orders.size, rho.size))
    for i in range(orders.size):
        for g in range(rho.size):
            lo, hi = rho[g], 2.0 * rho[g]
            while _excess(rho[g], r_ref[g], hi, orders[i], tol, even) > 0:
                hi = 2.0 * hi
            for _ in range(60):
                mid = np.sqrt(lo * hi)
                if _excess(rho[g], r_ref[g], mid, orders[i], tol, even) > 0:
                    if mid == lo:
                        break
                    lo = mid
                else:
                    if mid == hi:
                        break
                    hi = mid
            out[i, g] = hi
    return out


def _multi_indices(n: int) -> list[tuple[int, ...]]:
    """Sorted index tuples of a symmetric rank-n tensor in 3D: xxx, xxy, …, zzz."""
    return list(itertools.combinations_with_replacement(range(3), n))


def _detraced(t: np.ndarray) -> np.ndarray:
    """The traceless part of symmetric tensors (G, 3, 3, 3) or (G, 3, 3, 3, 3): the tensor
    whose contraction with rⁿ is the harmonic part of the contraction with the original."""
    d = np.eye(3)
    if t.ndim == 4:
        v = np.einsum("giik->gk", t)
        return t - (np.einsum("ij,gk->gijk", d, v) + np.einsum("ik,gj->gijk", d, v)
                    + np.einsum("jk,gi->gijk", d, v)) / 5.0
    w = np.einsum("giikl->gkl", t)
    tr = np.einsum("gkk->g", w)
    pairs = sum(np.einsum(f"{a},g{b}->gijkl", d, w) for a, b in
                (("ij", "kl"), ("ik", "jl"), ("il", "jk"), ("jk", "il"), ("jl", "ik"),
                 ("kl", "ij")))
    dd = (np.einsum("ij,kl->ijkl", d, d) + np.einsum("ik,jl->ijkl", d, d)
          + np.einsum("il,jk->ijkl", d, d))
    return t - pairs / 7.0 + tr[:, None, None, None, None] * dd / 35.0


def orders_3_4_terms(volume: np.ndarray, third: np.ndarray, fourth: np.ndarray
                     ) -> np.ndarray:
    """(G, 25) coefficients of `cuboid._orders_3_4` from the third and fourth moments per unit
    volume (`grain_moments`): (2n−1)!!/n! V times the detraced moments, in its component
    order."""
    d3, d4 = _detraced(third), _detraced(fourth)
    return np.ascontiguousarray(np.concatenate(
        [2.5 * volume[:, None] * np.stack([d3[(slice(None), *ix)]
                                           for ix in _multi_indices(3)], axis=1),
         35.0 / 8.0 * volume[:, None] * np.stack([d4[(slice(None), *ix)]
                                                   for ix in _multi_indices(4)], axis=1)],
        axis=1))


def cuboid_even_terms(half: np.ndarray, sensor_half: tuple[float, float]) -> np.ndarray:
    """(C, 52) coefficients of the order-4, -6, -8 and -10 terms of the kernels
    `cuboid._cuboid_expansion` and `cuboid._cuboid_expansion_10` for each cuboid (half-edges
    (C, 3)) convolved with the sensor area, over EVEN_MONOMIALS.

    The order-n term of the potential is P(r)/r^(2n+1) with P = (2n−1)!!/n! V H[E (u·r)ⁿ],
    H the harmonic projection of a homogeneous polynomial of degree n
    (`polynomials.harmonic_part`). The convolved density
    is a product along x, y, z of a box's uniform density plus the sensor's (x, y), so
    E (u·r)ⁿ = Σ n!/(a! b! c!) E uₓ^a E u_y^b E u_z^c x^a y^b z^c with one-axis moments
    E u^k = Σ_j C(k, j) h^j/(j+1) s^(k−j)/(k−j+1) (j, k − j even; h the half-edge, s the
    sensor's half-width); the odd ones vanish, so only even monomials appear."""
    widths = np.c_[half, np.full(half.shape[0], sensor_half[0]),
                   np.full(half.shape[0], sensor_half[1]), np.zeros(half.shape[0])]
    moments = np.zeros((half.shape[0], 3, 11))
    for axis in range(3):
        h, s = widths[:, axis], widths[:, axis + 3]
        for k in range(0, 11, 2):
            moments[:, axis, k] = sum(math.comb(k, j) * h**j / (j + 1) * s ** (k - j)
                                      / (k - j + 1) for j in range(0, k + 1, 2))
    volume = 8.0 * np.prod(half, axis=1)
    out = []
    for n in (4, 6, 8, 10):
        poly = {(a, b, n - a - b): math.factorial(n) / (math.factorial(a) * math.factorial(b)
                                                        * math.factorial(n - a - b))
                * moments[:, 0, a] * moments[:, 1, b] * moments[:, 2, n - a - b]
                for a in range(n, -1, -2) for b in range(n - a, -1, -2)}
        harmonic = polynomials.harmonic_part(poly, n)
        factor = polynomials.double_factorial(2 * n - 1) / math.factorial(n) * volume
        out += [factor * harmonic[(int(a), int(b), int(c))] for a, b, c in EVEN_MONOMIALS
                if a + b + c == n]
    return np.ascontiguousarray(np.stack(out, axis=1))


def grain_moments(grains: GrainSet, sensor_half: tuple[float, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Volume moments of each grain convolved with the sensor area (half-widths p, q), about
    the grain's centroid and per unit volume: second (G, 6: xx, yy, zz, xy, xz, yz), third
    (G, 3, 3, 3) and fourth (G, 3, 3, 3, 3).

    A cuboid convolved with the sensor rectangle is a product of independent distributions
    along x, y, z (a box's uniform one plus the sensor's along x and y), so each moment is a
    sum over cuboids of products of one-axis moments E[(c + u)^k], c the cuboid's offset from
    the centroid and u with E u² = (h² + p²)/3, E u⁴ = h⁴/5 + 2h²p²/3 + p⁴/5 (odd ones 0)."""
    cub = grains.cuboids
    vol_c = grains.cuboid_volumes()
    volume = grains.volumes()
    G = grains.n_grains
    c = cub[:, :3] - grains.centroids()[grains.grain]
    h2 = cub[:, 3:] ** 2 / 4.0
    s2 = np.array([sensor_half[0] ** 2, sensor_half[1] ** 2, 0.0])
    e2 = (h2 + s2) / 3.0
    e4 = h2 * h2 / 5.0 + 2.0 * h2 * s2 / 3.0 + s2 * s2 / 5.0
    axis = np.stack([np.ones_like(c), c, c * c + e2, c**3 + 3.0 * c * e2,
                     c**4 + 6.0 * c * c * e2 + e4], axis=-1)  # (C, 3, 5)

    def raw(index: tuple[int, ...]) -> np.ndarray:
        k = np.bincount(np.asarray(index, dtype=np.int64), minlength=3)
        w = vol_c * axis[:, 0, k[0]] * axis[:, 1, k[1]] * axis[:, 2, k[2]]
        return np.bincount(grains.grain, w, G) / volume

    second = np.stack([raw(ix) for ix in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))],
                      axis=1)
    tensors = []
    for n in (3, 4):
        t = np.empty((G,) + (3,) * n)
        for ix in _multi_indices(n):
            value = raw(ix)
            for perm in set(itertools.permutations(ix)):
                t[(slice(None), *perm)] = value
        tensors.append(t)
    return second, tensors[0], tensors[1]



def grain_order_terms(grains: GrainSet, sensor_half: tuple[float, float],
                      orders: tuple[int, ...]) -> np.ndarray:
    """(G, K) coefficients of the kernel `cuboid._grain_orders` for the given consecutive
    orders of each grain (convolved with the sensor area, half-widths p, q), about the
    grain's centroid.

    The order-n term of the potential is P/r^(2n+1), P = (2n−1)!!/n! H[Σ V E (u·r)ⁿ]
    (`polynomials.harmonic_part`; u the offset of a point of the grain, or of the sensor's
    area, from the centroid), and its Bz columns Q_j/r^(2n+5) (`polynomials.bz_numerators`).
    A cuboid convolved with the sensor rectangle is a product of independent distributions
    along x, y, z (a box's uniform one plus the sensor's along x and y), so each moment
    Σ V E u_x^a u_y^b u_z^c is a sum over cuboids of products of one-axis moments
    E (c + u)^k = Σ_j C(k, j) c^(k−j) E u^j, with E u^j = Σ_i C(j, i) h^i/(i+1)
    s^(j−i)/(j−i+1) (i, j − i even; h the half-edge, s the sensor's half-width). Stored in
    the order `cuboid._grain_orders` reads them: for each order, x's power a from N = n + 2
    down, y's from N − a down, the three columns interleaved."""
    cub = grains.cuboids
    offset = cub[:, :3] - grains.centroids()[grains.grain]
    half = cub[:, 3:] / 2.0
    sensor = np.array([sensor_half[0], sensor_half[1], 0.0])
    top = max(orders)
    binomials = np.array([[math.comb(k, j) for j in range(top + 1)] for k in range(top + 1)],
                         dtype=float)
    moments = _grain_moments_sums(offset, _own_moments(half, sensor, top), binomials,
                                  grains.grain, grains.cuboid_volumes(),
                                  np.concatenate([_monomials(n) for n in orders]),
                                  grains.n_grains)
    blocks = []
    start = 0
    for n in orders:
        end = start + _monomials(n).shape[0]
        blocks.append(np.ascontiguousarray(moments[:, start:end]) @ _order_terms_map(n).T)
        start = end
    return np.ascontiguousarray(np.concatenate(blocks, axis=1))


@njit(cache=True, error_model="numpy")
def _grain_moments_sums(offset: np.ndarray, own: np.ndarray, binomials: np.ndarray,
                        grain: np.ndarray, volume: np.ndarray, exponents: np.ndarray,
                        n_grains: int) -> np.ndarray:
    """(G, M) moments Σ V E u^e of every exponent e (M × 3) of each grain, from each cuboid's
    offset c from its grain's centroid (C, 3) and one-axis moments E u^j (`own`,
    C × 3 × (top + 1)): per cuboid and axis E (c + u)^k = Σ_j C(k, j) c^(k−j) E u^j
    (`binomials` C(k, j)), their products summed over each grain's cuboids in their order:
    the same operations in the same order as NumPy's passes over (C, 3, top + 1) and its
    sparse sum of the (M, C) products (7 MB at medium size), so the same doubles."""
    top = own.shape[2] - 1
    powers = np.empty(top + 1)
    axis = np.empty((3, top + 1))
    moments = np.zeros((n_grains, exponents.shape[0]))
    for c in range(grain.shape[0]):
        for d in range(3):
            powers[0] = 1.0
            for k in range(1, top + 1):
                powers[k] = powers[k - 1] * offset[c, d]
            axis[d] = 0.0
            for j in range(0, top + 1, 2):
                for k in range(j, top + 1):
                    axis[d, k] += binomials[k, j] * powers[k - j] * own[c, d, j]
        g = grain[c]
        for m in range(exponents.shape[0]):
            moments[g, m] += volume[c] * (axis[0, exponents[m, 0]] * axis[1, exponents[m, 1]]
                                          * axis[2, exponents[m, 2]])
    return moments


def _own_moments(half: np.ndarray, sensor: np.ndarray, top: int) -> np.ndarray:
    """(C, 3, top + 1) one-axis moments E u^j of each cuboid (half-edges `half`, C × 3)
    convolved with the sensor (half-widths `sensor`, 3), u a point of the cuboid plus one of
    the sensor: Σ_i C(j, i) h^i/(i+1) s^(j−i)/(j−i+1) over even i and j − i (odd j: 0).
    Point sensors (s = 0) keep only i = j: the other terms are exact zeros."""
    own = np.zeros((half.shape[0], 3, top + 1))
    point = not np.any(sensor)
    for j in range(0, top + 1, 2):
        own[:, :, j] = (half**j / (j + 1) if point else
                        sum(math.comb(j, i) * half**i / (i + 1) * sensor ** (j - i)
                            / (j - i + 1) for i in range(0, j + 1, 2)))
    return own


@functools.cache
def _monomials(n: int) -> np.ndarray:
    """(M, 3) exponents (a, b, c) of the monomials of degree n, a then b descending from n."""
    e = np.array([(a, b, n - a - b) for a in range(n, -1, -1) for b in range(n - a, -1, -1)])
    e.setflags(write=False)  # shared by every caller (cached)
    return e


@functools.cache
def _order_terms_map(n: int) -> np.ndarray:
    """The linear map from a grain's volume moments Σ V E u^e of degree n (`_monomials`) to
    the coefficients of its order-n Bz columns as `cuboid._grain_orders` reads them: the
    polynomial algebra done once on unit moments (each coefficient a row of the identity), as
    the map is the same for every grain."""
    exponents = [tuple(int(k) for k in m) for m in _monomials(n)]
    unit = np.eye(len(exponents))
    poly = {m: math.factorial(n) / math.prod(map(math.factorial, m)) * unit[i]
            for i, m in enumerate(exponents)}
    factor = polynomials.double_factorial(2 * n - 1) / math.factorial(n)
    q = polynomials.bz_numerators(
        {k: factor * w for k, w in polynomials.harmonic_part(poly, n).items()}, n)
    zero = np.zeros(len(exponents))
    terms = np.array([qj.get(tuple(int(k) for k in m), zero)
                      for m in _monomials(n + 2) for qj in q])
    terms.setflags(write=False)  # shared by every caller (cached)
    return terms
