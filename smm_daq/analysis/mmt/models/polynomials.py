"""Polynomials in x, y, z as dicts {(a, b, c): coefficient of x^a y^b z^c}, the coefficients
NumPy arrays over grains or cuboids: the algebra that turns volume moments into the
coefficients of multipole terms (harmonic projection, derivatives, products with r² and
with coordinates). Done once per model, in Python; the kernels only evaluate the results."""

from __future__ import annotations

import math
from typing import Any

Poly = dict[tuple[int, int, int], Any]


def double_factorial(n: int) -> int:
    return math.prod(range(n, 0, -2))


def laplacian(poly: Poly) -> Poly:
    out: Poly = {}
    for (a, b, c), w in poly.items():
        for e, f in (((a - 2, b, c), a * (a - 1)), ((a, b - 2, c), b * (b - 1)),
                     ((a, b, c - 2), c * (c - 1))):
            if f:
                out[e] = out.get(e, 0.0) + f * w
    return out


def times_r2(poly: Poly) -> Poly:
    out: Poly = {}
    for (a, b, c), w in poly.items():
        for e in ((a + 2, b, c), (a, b + 2, c), (a, b, c + 2)):
            out[e] = out.get(e, 0.0) + w
    return out


def derivative(poly: Poly, axis: int) -> Poly:
    """∂/∂x, ∂/∂y or ∂/∂z (axis 0, 1, 2)."""
    out: Poly = {}
    for e, w in poly.items():
        if e[axis]:
            d = list(e)
            d[axis] -= 1
            key = (d[0], d[1], d[2])
            out[key] = out.get(key, 0.0) + e[axis] * w
    return out


def times(poly: Poly, axis: int) -> Poly:
    """x, y or z (axis 0, 1, 2) times the polynomial."""
    out: Poly = {}
    for e, w in poly.items():
        d = list(e)
        d[axis] += 1
        out[(d[0], d[1], d[2])] = w
    return out


def combine(*terms: tuple[float, Poly]) -> Poly:
    """Σ weight · polynomial."""
    out: Poly = {}
    for weight, poly in terms:
        for e, w in poly.items():
            out[e] = out.get(e, 0.0) + weight * w
    return out


def harmonic_part(poly: Poly, n: int) -> Poly:
    """H[f], the harmonic projection of a homogeneous polynomial f of degree n:
    H[f] = Σ_k (−1)^k (2n−2k−1)!! / ((2n−1)!! (2k)!!) r^(2k) Δ^k f. For f = E (u·r)ⁿ over
    a source density, (2n−1)!!/n! H[f] / r^(2n+1) is the order-n term of its potential
    (the Legendre expansion of 1/|r − u|)."""
    out: Poly = {}
    term, power = poly, {(0, 0, 0): 1.0}  # Δ^k f and r^(2k)
    for k in range(n // 2 + 1):
        w = ((-1) ** k * double_factorial(2 * n - 2 * k - 1)
             / (double_factorial(2 * n - 1) * double_factorial(2 * k)))
        for ea, ca in term.items():
            for eb, cb in power.items():
                key = (ea[0] + eb[0], ea[1] + eb[1], ea[2] + eb[2])
                out[key] = out.get(key, 0.0) + w * ca * cb
        term = laplacian(term)
        power = times_r2(power)
    return out


def bz_numerators(p: Poly, n: int) -> tuple[Poly, Poly, Poly]:
    """Q_x, Q_y, Q_z with ∂z∂j (P r^−s) = Q_j / r^(s+4), s = 2n + 1, for P homogeneous of
    degree n (the Bz columns of the potential term P/r^s): by
    ∂z∂j (P r^−s) = r^−s [∂z∂jP − s r^−2 (z ∂jP + δzj P + r_j ∂zP) + s(s+2) r^−4 z r_j P],
    Q_j = r⁴ ∂z∂jP − s r² (z ∂jP + δzj P + r_j ∂zP) + s(s+2) z r_j P, of degree n + 2."""
    s = 2 * n + 1
    pz = derivative(p, 2)
    out = []
    for j in range(3):
        pj = derivative(p, j)
        inner = combine((1.0, times(pj, 2)), (1.0, times(pz, j)),
                        *([(1.0, p)] if j == 2 else []))
        out.append(combine((1.0, times_r2(times_r2(derivative(pj, 2)))),
                           (-float(s), times_r2(inner)),
                           (float(s * (s + 2)), times(times(p, 2), j))))
    return out[0], out[1], out[2]
