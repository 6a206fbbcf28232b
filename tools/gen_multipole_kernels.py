"""Generate smm_daq/analysis/mmt/models/multipole_kernels.py (needs sympy; run from the
repository root: ``python tools/gen_multipole_kernels.py``).

The basis is that of the public `mmt_multipole_inversion` library (its spherical-harmonics
module): the potential of coefficient k of order l is ψ_k = S_k(r) / (4π r^(2l+1)), B = −μ0∇ψ,
with the harmonic polynomials S_k found here from the library's point kernels of Bz. By
Hobson's theorem S(r)/r^(2l+1) = (−1)^l / (2l−1)!! S(∇)(1/r), so every Bz_k is a sum of
derivatives ∂^α(1/r), |α| = l + 1, α_z ≥ 1. Averages over a sensor follow from
antiderivatives of 1/r evaluated at the sensor's corners:

* area (x, y): ∂^α 1/r with α_x, α_y ≥ 1 integrates to ∂^(α−x−y) 1/r; with α_y = 0 to
  ∂^(α−x) asinh(y/√(x²+z²)); with α_x = 0 to ∂^(α−y) asinh(x/√(y²+z²)); with neither to
  ∂^(α−z) of −atan(xy/(zr)) (the integral of ∂z 1/r);
* volume (x, y, z): one z-derivative less, then the area rule.

The generated functions return the value at one corner (the point value for point sensors);
the block kernel sums corners with signs and divides by the sensor's area or volume.

After regenerating, delete the numba cache of `multipole.py` (its `__pycache__/*.nbi` and
`*.nbc`, or NUMBA_CACHE_DIR): its kernels inline these functions, and numba checks only the
source file of the kernel itself, so it would keep running the old ones.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import sympy as sp

OUT = Path(__file__).resolve().parents[1] / "smm_daq/analysis/mmt/models/multipole_kernels.py"

x, y, z = sp.symbols("x y z", real=True)
r = sp.sqrt(x**2 + y**2 + z**2)
R2 = x**2 + y**2 + z**2

# The library's Bz point kernels (per unit coefficient, without μ0/4π), order 1, 2, 3.
LIBRARY_BZ = [
    [3 * x * z / r**5, 3 * y * z / r**5, (3 * z**2 - R2) / r**5],
    [sp.sqrt(sp.Rational(3, 2)) * z * (-3 * R2 + 5 * z**2) / r**7,
     -sp.sqrt(2) * x * (R2 - 5 * z**2) / r**7,
     -sp.sqrt(2) * y * (R2 - 5 * z**2) / r**7,
     5 / sp.sqrt(2) * (x**2 - y**2) * z / r**7,
     5 * sp.sqrt(2) * x * y * z / r**7],
    [(3 * R2**2 - 30 * R2 * z**2 + 35 * z**4) / sp.sqrt(10) / r**9,
     sp.sqrt(15) * x * z * (-3 * R2 + 7 * z**2) / 2 / r**9,
     sp.sqrt(15) * y * z * (-3 * R2 + 7 * z**2) / 2 / r**9,
     -sp.sqrt(sp.Rational(3, 2)) * (x**2 - y**2) * (R2 - 7 * z**2) / r**9,
     -sp.sqrt(6) * x * y * (R2 - 7 * z**2) / r**9,
     sp.Rational(7, 2) * x * (x**2 - 3 * y**2) * z / r**9,
     -sp.Rational(7, 2) * y * (-3 * x**2 + y**2) * z / r**9],
]


def _in_r(expr: sp.Expr) -> sp.Expr:
    """`expr` expanded with r as a symbol of its own, then r² as x² + y² + z²: the powers of r
    cancel before the square root is opened, where sp.simplify takes seconds to find that."""
    rho = sp.Symbol("rho", positive=True)
    return sp.expand(sp.expand(expr.subs(r, rho)).subs(rho, r))


def harmonic_polynomials() -> list[list[sp.Expr]]:
    """S_k with −∂z(S_k / r^(2l+1)) equal to the library's kernel k."""
    out = []
    for order, kernels in enumerate(LIBRARY_BZ, start=1):
        monomials = [x**a * y**b * z**(order - a - b)
                     for a in range(order + 1) for b in range(order + 1 - a)]
        row = []
        for kernel in kernels:
            coeffs = sp.symbols(f"c0:{len(monomials)}")
            s = sum(c * m for c, m in zip(coeffs, monomials, strict=True))
            residual = _in_r((-sp.diff(s / r**(2 * order + 1), z) - kernel)
                             * r**(2 * order + 3))
            sol = sp.solve(sp.Poly(residual, x, y, z).coeffs(), coeffs, dict=True)[0]
            poly = sp.expand(s.subs(sol).subs({c: 0 for c in coeffs}))
            assert sp.expand(sp.diff(poly, x, 2) + sp.diff(poly, y, 2) + sp.diff(poly, z, 2)) == 0
            row.append(poly)
        out.append(row)
    return out


def derivative_terms(poly: sp.Expr, order: int) -> dict[tuple[int, int, int], sp.Expr]:
    """Bz_k as Σ a_α ∂^α(1/r): {α: a_α}."""
    factor = -(-1) ** order / sp.factorial2(2 * order - 1)
    terms: dict[tuple[int, int, int], sp.Expr] = {}
    for mono, coeff in sp.Poly(poly, x, y, z).terms():
        alpha = (mono[0], mono[1], mono[2] + 1)
        terms[alpha] = terms.get(alpha, 0) + factor * coeff
    return terms


F0 = 1 / r
FX = sp.asinh(x / sp.sqrt(y**2 + z**2))  # ∫ 1/r dx
FY = sp.asinh(y / sp.sqrt(x**2 + z**2))  # ∫ 1/r dy
GZ = -sp.atan(x * y / (z * r))  # ∫∫ ∂z(1/r) dx dy


def _d(f: sp.Expr, a: int, b: int, c: int) -> sp.Expr:
    args = [v for v, n in ((x, a), (y, b), (z, c)) for _ in range(n)]
    return sp.diff(f, *args) if args else f


def area_corner(alpha: tuple[int, int, int]) -> sp.Expr:
    a, b, c = alpha
    if a >= 1 and b >= 1:
        return _d(F0, a - 1, b - 1, c)
    if a >= 1:
        return _d(FY, a - 1, 0, c)
    if b >= 1:
        return _d(FX, 0, b - 1, c)
    return _d(GZ, 0, 0, c - 1)


def corner(alpha: tuple[int, int, int], sensor: str) -> sp.Expr:
    if sensor == "point":
        return _d(F0, *alpha)
    if sensor == "area":
        return area_corner(alpha)
    return area_corner((alpha[0], alpha[1], alpha[2] - 1))


HEADER = '''"""Generated by tools/gen_multipole_kernels.py: do not edit.

Corner values of the Bz kernels of the multipole basis (see `multipole`), without μ0/4π:
`point_<n>` the field itself at displacement (x, y, z) = sensor − source; `area_<n>` the
integral over x and y, `volume_<n>` over x, y and z, of that field, at one corner of the
sensor (signed sums over corners give the integral over the sensor). n = 3, 8 or 15
coefficients.
"""

import math

from numba import njit

'''


def _square_roots(exprs: list[sp.Expr]) -> tuple[list[tuple[sp.Symbol, sp.Expr]],
                                                   list[sp.Expr]]:
    """Half-integer powers b**(k/2) as integer powers of symbols s = sqrt(.): one square root
    per base instead of a call to pow per term (several times faster in the kernels). A base
    that is a ratio n/d of sums of squares (from the derivatives of asinh) becomes
    sqrt(n)^k / sqrt(d)^k, sharing the roots of r, √(x² + z²) and √(y² + z²)."""
    def parts(b: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        n, d = sp.fraction(sp.together(b))
        return sp.expand(n), sp.expand(d)

    halves = {p for e in exprs for p in e.atoms(sp.Pow)
              if p.exp.is_Rational and p.exp.q == 2}
    found = {f for p in halves for f in parts(p.base) if f != 1}
    roots = {b: sp.Symbol(f"s{i}", positive=True)
             for i, b in enumerate(sorted(found, key=sp.default_sort_key))}

    def root(f: sp.Expr) -> sp.Expr:
        return sp.Integer(1) if f == 1 else roots[f]

    def swap(e: sp.Expr) -> sp.Expr:
        def new(p: sp.Pow) -> sp.Expr:
            n, d = parts(p.base)
            k = int(2 * p.exp)
            return root(n) ** k / root(d) ** k
        return e.replace(lambda p: p.is_Pow and p.exp.is_Rational and p.exp.q == 2, new)

    return [(sym, sp.sqrt(b)) for b, sym in roots.items()], [swap(e) for e in exprs]


def generate() -> str:
    """The text of the kernels module."""
    polys = harmonic_polynomials()
    terms = [derivative_terms(p, order)
             for order, row in enumerate(polys, start=1) for p in row]
    for t, kernel in zip(terms, itertools.chain.from_iterable(LIBRARY_BZ), strict=True):
        value = sum(a * sp.diff(1 / r, x, al[0], y, al[1], z, al[2]) for al, a in t.items())
        point = {x: sp.Rational(3, 7), y: sp.Rational(-2, 5), z: sp.Rational(5, 3)}
        assert abs(float((value - kernel).subs(point))) < 1e-12
    lines = [HEADER]
    for sensor in ("point", "area", "volume"):
        for n in (3, 8, 15):
            exprs = [sum(sp.nsimplify(a) * corner(al, sensor) for al, a in t.items())
                     for t in terms[:n]]
            roots, exprs = _square_roots(exprs)
            subs, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"))
            lines.append("@njit(cache=True, inline=\"always\", fastmath=False, "
                         "error_model=\"numpy\")")
            lines.append(f"def {sensor}_{n}(x, y, z):")
            for sym, e in roots + subs:
                lines.append(f"    {sym} = {sp.pycode(e, fully_qualified_modules=True)}")
            values = ", ".join(sp.pycode(e, fully_qualified_modules=True) for e in reduced)
            lines.append(f"    return ({values},)")
            lines.append("")
            lines.append("")
    lines.append("S_POLYNOMIALS = (" + ", ".join(
        repr(str(p)) for row in polys for p in row) + ",)")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    OUT.write_text(generate(), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
