"""Bz of uniformly magnetized cuboids, averaged over a rectangular sensor area, in closed form.

The field outside a uniformly magnetized body is that of its surface charges. With the
Newtonian potential of the body Φ(r) = ∫ dV'/|r − r'|, the field is
Bz = μ0/(4π) Σ_j M_j ∂z ∂j Φ. For a cuboid, Φ is a sum over its 8 corners of a triple
antiderivative of 1/R in the corner-relative coordinates X, Y, Z (sensor − corner), so
every column of the kernel is a corner sum of closed-form functions:

* point sensor, per corner (Mx, My, Mz):
  asinh(Y/√(X²+Z²)), asinh(X/√(Y²+Z²)), −atan(XY/(ZR)) (the asinh evaluated as a single
  logarithm, `_log_plus`);
* sensor area w × l: two more antiderivatives, in X and in Y, over the 4 sensor corners,
  i.e. ∂X, ∂Y, ∂Z of W = ∂X⁻²∂Y⁻² (1/R) (Newell's f function with z as its first argument),
  divided by w·l: 32 terms per column.

Far from the cuboid these corner sums cancel to many digits (the area form loses about
(R/s)⁵ in relative accuracy, s the sensor's half-width), so three forms are used, chosen per
(sensor, cuboid) pair by an error estimate:

1. far field: the expansion of Φ of the cuboid convolved with the sensor's area (a centrally
   symmetric density, so its odd moments vanish) to the quadrupole, whose remainder is at most
   ``EXPANSION_CONSTANT`` (L/R)⁴ μ0 V/(4π R³) per unit M (L the half-diagonal of the convolved
   box, R the centre distance; the constant is checked in the tests). It is used beyond the
   distance where that bound drops below ``TOLERANCE`` of the reference scale
   μ0 V/(4π R_ref³), R_ref the distance from the cuboid's centre to its nearest sensor in the
   call, so the error is relative to the column's largest (dipole-scale) entry;
2. the closed form (above) where its rounding error, estimated as
   ``ROUNDING_CONSTANT`` ε (R + L)²/(w·l), is below the same target;
3. otherwise (a sensor much smaller than its distance from a large cuboid) Gauss–Legendre
   quadrature over the sensor area of the point-sensor closed form, with enough nodes for the
   target given the ratio of the sensor's size to its clearance from the cuboid.

All lengths in m, M in A/m, Bz in T. Sensors must lie above every cuboid's top face.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit, prange

MU0_OVER_4PI = 1e-7  # T m / A
TOLERANCE = 1e-7  # target error relative to the reference (dipole-scale) entry
EXPANSION_CONSTANT = 8.0  # bound on |remainder| / ((L/R)^4 V/R^3) of the quadrupole expansion
ROUNDING_CONSTANT = 50.0  # closed-form area rounding: |error| <= K eps (R+L)^2 / (w l)
_EPS = 2.220446049250313e-16
_PARALLEL_PAIRS = 20_000  # below this many pairs, a serial loop is faster than threads

# Gauss-Legendre nodes and weights on [-1, 1] for n = 1..16, padded into one table.
_GL_MAX = 16
_GL_NODES = np.zeros((_GL_MAX + 1, _GL_MAX))
_GL_WEIGHTS = np.zeros((_GL_MAX + 1, _GL_MAX))
for _n in range(1, _GL_MAX + 1):
    _x, _w = np.polynomial.legendre.leggauss(_n)
    _GL_NODES[_n, :_n] = _x
    _GL_WEIGHTS[_n, :_n] = _w


@njit(cache=True, error_model="numpy")
def _log_plus(u, R, rho2):
    """ln(u + R), R² = u² + ρ², without the cancellation in u + R when u < 0 (there
    u + R = ρ²/(R − u)). asinh(u/ρ) = ln(u + R) − ln ρ, and ln ρ does not depend on u, so the
    corner sums along u (whose signs add to zero, and where it multiplies a factor at most
    linear in u) remove it: one logarithm per asinh."""
    if u >= 0.0:
        return math.log(u + R)
    return math.log(rho2 / (R - u))


@njit(cache=True, error_model="numpy")
def _point_exact(dx, dy, dz, a, b, c):
    """Point-sensor corner sums (Mx, My, Mz columns, ×4π/μ0) at offset (dx, dy, dz).

    The Mx and My columns are Σ ± ln(u + R) (as in `_log_plus`): one logarithm of a ratio of
    products, which is also more accurate than 8 logarithms of about ln(1 µm) each. The Mz
    column −Σ ± atan(XY/(ZR)) with Z > 0 on both faces is a sum of arguments of the complex
    numbers ZR + iXY: the two corners on one vertical edge combine into one angle in
    (−π/2, π/2) (same sign of XY), two such edges into one atan2 in (−π, π); two atan2 in all
    (the products: `_point_products`)."""
    num_x, den_x, num_y, den_y, re0, im0, re1, im1 = _point_products(dx, dy, dz, a, b, c)
    return (math.log(num_x / den_x), math.log(num_y / den_y),
            -math.atan2(im0, re0) - math.atan2(im1, re1))


@njit(cache=True, inline="always", error_model="numpy")
def _point_products(dx, dy, dz, a, b, c):
    """The products whose logarithms and arguments `_point_exact` takes: (num_x, den_x,
    num_y, den_y, re0, im0, re1, im1), the Mx column ln(num_x/den_x), the My column
    ln(num_y/den_y) and the Mz column −arg(re0 + i im0) − arg(re1 + i im1), each of those two
    arguments in (−π, π) (the two pairs of vertical edges, j = 0 and 1). Products of up to 8
    lengths stay far inside the double range for µm-scale geometry."""
    num_x = 1.0
    den_x = 1.0
    num_y = 1.0
    den_y = 1.0
    re0 = 1.0
    im0 = 0.0
    z1 = dz + c
    z2 = dz - c
    z1s = z1 * z1
    z2s = z2 * z2
    for j in range(2):
        Y = dy + b if j == 0 else dy - b
        y2 = Y * Y
        re = 1.0
        im = 0.0
        for i in range(2):
            X = dx + a if i == 0 else dx - a
            x2 = X * X
            r1 = math.sqrt(x2 + y2 + z1s)  # upper corner, sign +1 when i + j is even
            r2 = math.sqrt(x2 + y2 + z2s)  # lower corner, the opposite sign
            if Y >= 0.0:
                py1, qy1, py2, qy2 = Y + r1, 1.0, Y + r2, 1.0
            else:
                py1, qy1, py2, qy2 = x2 + z1s, r1 - Y, x2 + z2s, r2 - Y
            if X >= 0.0:
                px1, qx1, px2, qx2 = X + r1, 1.0, X + r2, 1.0
            else:
                px1, qx1, px2, qx2 = y2 + z1s, r1 - X, y2 + z2s, r2 - X
            xy = X * Y
            zr1 = z1 * r1
            zr2 = z2 * r2
            wr = zr1 * zr2 + xy * xy  # (Z1R1 + iXY) conj(Z2R2 + iXY)
            wi = xy * (zr2 - zr1)
            if i == j:
                num_x *= py1 * qy2
                den_x *= qy1 * py2
                num_y *= px1 * qx2
                den_y *= qx1 * px2
                re, im = re * wr - im * wi, re * wi + im * wr
            else:
                num_x *= qy1 * py2
                den_x *= py1 * qy2
                num_y *= qx1 * px2
                den_y *= px1 * qx2
                re, im = re * wr + im * wi, im * wr - re * wi
        if j == 0:
            re0 = re
            im0 = im
    return num_x, den_x, num_y, den_y, re0, im0, re, im


@njit(cache=True, error_model="numpy")
def _area_exact(dx, dy, dz, a, b, c, p, q):
    """Sensor-area (half-widths p, q) corner sums over 4 × 8 corners, ×4π/μ0."""
    gx = 0.0
    gy = 0.0
    gz = 0.0
    for i in range(4):
        # X = sensor edge − cuboid face; sign + for (upper sensor edge, lower cuboid face)
        if i == 0:
            X = dx + p + a
            si = 1.0
        elif i == 1:
            X = dx + p - a
            si = -1.0
        elif i == 2:
            X = dx - p + a
            si = -1.0
        else:
            X = dx - p - a
            si = 1.0
        for j in range(4):
            if j == 0:
                Y = dy + q + b
                sj = si
            elif j == 1:
                Y = dy + q - b
                sj = -si
            elif j == 2:
                Y = dy - q + b
                sj = -si
            else:
                Y = dy - q - b
                sj = si
            for k in range(2):
                Z = dz + c if k == 0 else dz - c
                s = sj if k == 0 else -sj
                ex, ey, ez = _area_corner(X, Y, Z)
                gx += s * ex
                gy += s * ey
                gz += s * ez
    inv = 1.0 / (4.0 * p * q)
    return gx * inv, gy * inv, gz * inv


@njit(cache=True, inline="always", error_model="numpy")
def _area_corner(X, Y, Z):
    """One corner's terms of `_area_exact` (X, Y, Z: sensor edge − cuboid face, Z > 0)."""
    x2z2 = X * X + Z * Z
    y2z2 = Y * Y + Z * Z
    R = math.sqrt(x2z2 + Y * Y)
    ax = _log_plus(X, R, y2z2)
    ay = _log_plus(Y, R, x2z2)
    at = math.atan(X * Y / (Z * R))
    return (X * Y * ay + 0.5 * (Y * Y - Z * Z) * ax - 0.5 * X * R - Y * Z * at,
            X * Y * ax + 0.5 * (X * X - Z * Z) * ay - 0.5 * Y * R - X * Z * at,
            Z * R - X * Y * at - X * Z * ax - Y * Z * ay)


@njit(cache=True, error_model="numpy")
def _area_quadrature(dx, dy, dz, a, b, c, p, q, n):
    """Gauss-Legendre n × n average over the sensor area of the point-sensor form."""
    fx = 0.0
    fy = 0.0
    fz = 0.0
    for i in range(n):
        for j in range(n):
            w = _GL_WEIGHTS[n, i] * _GL_WEIGHTS[n, j]
            ex, ey, ez = _point_exact(dx + p * _GL_NODES[n, i], dy + q * _GL_NODES[n, j], dz,
                                      a, b, c)
            fx += w * ex
            fy += w * ey
            fz += w * ez
    return 0.25 * fx, 0.25 * fy, 0.25 * fz


@njit(cache=True, error_model="numpy")
def moment_expansion(dx, dy, dz, volume, sxx, syy, szz, sxy, sxz, syz):
    """Bz columns (×4π/μ0) of a density with volume V and second moments S (about its centroid,
    per unit volume): the dipole plus the quadrupole term of its Newtonian potential.

    Serves a cuboid convolved with the sensor area (diagonal S) and a whole grain (full S)."""
    r2 = dx * dx + dy * dy + dz * dz
    r = math.sqrt(r2)
    ir2 = 1.0 / r2
    ir5 = ir2 * ir2 / r
    ir7 = ir5 * ir2
    ir9 = ir7 * ir2
    tr = sxx + syy + szz
    # C = (3 S - tr S I) / 2, the quadrupole per unit volume over 2
    cxx = 0.5 * (3.0 * sxx - tr)
    cyy = 0.5 * (3.0 * syy - tr)
    czz = 0.5 * (3.0 * szz - tr)
    cxy = 1.5 * sxy
    cxz = 1.5 * sxz
    cyz = 1.5 * syz
    vx = cxx * dx + cxy * dy + cxz * dz
    vy = cxy * dx + cyy * dy + cyz * dz
    vz = cxz * dx + cyz * dy + czz * dz
    u = dx * vx + dy * vy + dz * vz
    common = -10.0 * vz * ir7 + 35.0 * dz * u * ir9
    fx = 3.0 * dz * dx * ir5 + 2.0 * cxz * ir5 - 10.0 * vx * dz * ir7 + dx * common
    fy = 3.0 * dz * dy * ir5 + 2.0 * cyz * ir5 - 10.0 * vy * dz * ir7 + dy * common
    fz = ((3.0 * dz * dz - r2) * ir5 + 2.0 * czz * ir5 - 10.0 * vz * dz * ir7 - 5.0 * u * ir7
          + dz * common)
    return volume * fx, volume * fy, volume * fz


@njit(cache=True, error_model="numpy")
def _quadrature_order(clearance, p, q, target):
    """Nodes per axis so that the Gauss-Legendre error (≈ 4 ρ^(−2n), ρ the Bernstein radius
    of the sensor half-width against the clearance to the cuboid) stays below `target`."""
    h = max(p, q)
    t = clearance / h
    rho = t + math.sqrt(t * t + 1.0)
    # int(): math.ceil gives a float in numba.cuda, which cannot index the node table
    n = int(math.ceil(math.log(4.0 / target) / (2.0 * math.log(rho))))  # noqa: RUF046
    return min(max(n, 2), _GL_MAX)


@njit(cache=True, error_model="numpy")
def _point_pair(dx, dy, dz, a, b, c, far2):
    """The three columns (×4π/μ0) for a point sensor and one cuboid: the expansion beyond
    the switching distance, else the closed form."""
    if dx * dx + dy * dy + dz * dz >= far2:
        return moment_expansion(dx, dy, dz, 8.0 * a * b * c, a * a / 3.0, b * b / 3.0,
                                c * c / 3.0, 0.0, 0.0, 0.0)
    return _point_exact(dx, dy, dz, a, b, c)


@njit(cache=True, error_model="numpy")
def _pair(dx, dy, dz, a, b, c, p, q, far2, ref_scale, tol):
    """The three columns (×4π/μ0) for one sensor and one cuboid, by the cheapest accurate form.

    Only scalars are passed (the quadrature table is a compile-time constant), so this
    per-pair call does no reference counting of array arguments."""
    if p == 0.0:
        return _point_pair(dx, dy, dz, a, b, c, far2)
    return _area_form(_area_tier(dx, dy, dz, a, b, c, p, q, far2, ref_scale, tol),
                      dx, dy, dz, a, b, c, p, q, ref_scale, tol)


AREA_EXPANSION = 0
AREA_EXACT = 1
AREA_QUADRATURE = 2


@njit(cache=True, error_model="numpy")
def _area_tier(dx, dy, dz, a, b, c, p, q, far2, ref_scale, tol):
    """Which form `_pair` uses for an area sensor: AREA_EXPANSION beyond the switching
    distance, else AREA_EXACT where its rounding error is below the target, else
    AREA_QUADRATURE."""
    r2 = dx * dx + dy * dy + dz * dz
    if r2 >= far2:
        return AREA_EXPANSION
    lx = a + p
    ly = b + q
    span = math.sqrt(r2) + math.sqrt(lx * lx + ly * ly + c * c)
    if ROUNDING_CONSTANT * _EPS * span * span / (4.0 * p * q) <= tol * ref_scale:
        return AREA_EXACT
    return AREA_QUADRATURE


@njit(cache=True, error_model="numpy")
def _area_form(tier, dx, dy, dz, a, b, c, p, q, ref_scale, tol):
    """The three columns (×4π/μ0) for an area sensor and one cuboid by the form `tier`."""
    if tier == AREA_EXPANSION:
        vx = (a * a + p * p) / 3.0
        vy = (b * b + q * q) / 3.0
        vz = c * c / 3.0
        return moment_expansion(dx, dy, dz, 8.0 * a * b * c, vx, vy, vz, 0.0, 0.0, 0.0)
    if tier == AREA_EXACT:
        return _area_exact(dx, dy, dz, a, b, c, p, q)
    ox = max(abs(dx) - a, 0.0)
    oy = max(abs(dy) - b, 0.0)
    oz = max(abs(dz) - c, 0.0)
    clearance = math.sqrt(ox * ox + oy * oy + oz * oz)
    n = _quadrature_order(clearance, p, q, tol * ref_scale)
    return _area_quadrature(dx, dy, dz, a, b, c, p, q, n)


@njit(cache=True, error_model="numpy")
def _cuboid_constants(cuboids, p, q, ref_dist, tol):
    """Per cuboid: half-edges, the squared switching distance to the expansion, and the
    reference scale V/R_ref³ that the error target `tol` is relative to."""
    C = cuboids.shape[0]
    half = np.empty((C, 3))
    far2 = np.empty(C)
    ref_scale = np.empty(C)
    for m in range(C):
        a = 0.5 * cuboids[m, 3]
        b = 0.5 * cuboids[m, 4]
        c = 0.5 * cuboids[m, 5]
        half[m, 0] = a
        half[m, 1] = b
        half[m, 2] = c
        lx = a + p
        ly = b + q
        L2 = lx * lx + ly * ly + c * c
        rr = ref_dist[m]
        # EXPANSION_CONSTANT L^4 V / R^7 <= tol V / R_ref^3
        far = (EXPANSION_CONSTANT / tol * L2 * L2 * rr * rr * rr) ** (1.0 / 7.0)
        far2[m] = far * far
        ref_scale[m] = 8.0 * a * b * c / (rr * rr * rr)
    return half, far2, ref_scale


@njit(cache=True, error_model="numpy")
def _nearest_sensor_distance(sensors, cuboids):
    """Distance from each cuboid's centre to its nearest sensor."""
    C = cuboids.shape[0]
    out = np.empty(C)
    for m in range(C):
        best = np.inf
        for i in range(sensors.shape[0]):
            dx = sensors[i, 0] - cuboids[m, 0]
            dy = sensors[i, 1] - cuboids[m, 1]
            dz = sensors[i, 2] - cuboids[m, 2]
            d2 = dx * dx + dy * dy + dz * dz
            if d2 < best:
                best = d2
        out[m] = math.sqrt(best)
    return out


def _variant(func: Callable[..., None], parallel: bool) -> Any:
    """`func` compiled serial or parallel, each variant cached on its own.

    numba names a function's cache after its qualified name and first line, and keys the
    entries by its bytecode and platform, not by its options: the two variants of one factory
    would share one entry, and whichever was saved last would serve both, so a serial call
    (made from threads that already run in parallel) could launch the parallel build, nested.
    The name says which variant it is."""
    suffix = "_parallel" if parallel else "_serial"
    func.__name__ += suffix
    func.__qualname__ += suffix
    return njit(cache=True, parallel=parallel, error_model="numpy")(func)


def _make_kernel(parallel: bool) -> Any:
    def kernel(sensors, cuboids, p, q, ref_dist, out):
        half, far2, ref_scale = _cuboid_constants(cuboids, p, q, ref_dist, TOLERANCE)
        for i in prange(sensors.shape[0]):
            for m in range(cuboids.shape[0]):
                fx, fy, fz = _pair(
                    sensors[i, 0] - cuboids[m, 0],
                    sensors[i, 1] - cuboids[m, 1],
                    sensors[i, 2] - cuboids[m, 2],
                    half[m, 0], half[m, 1], half[m, 2], p, q,
                    far2[m], ref_scale[m], TOLERANCE,
                )
                out[i, m, 0] = MU0_OVER_4PI * fx
                out[i, m, 1] = MU0_OVER_4PI * fy
                out[i, m, 2] = MU0_OVER_4PI * fz

    return _variant(kernel, parallel)


def _make_field(parallel: bool) -> Any:
    def field(sensors, cuboids, magnetization, p, q, ref_dist, out):
        half, far2, ref_scale = _cuboid_constants(cuboids, p, q, ref_dist, TOLERANCE)
        for i in prange(sensors.shape[0]):
            acc = 0.0
            for m in range(cuboids.shape[0]):
                fx, fy, fz = _pair(
                    sensors[i, 0] - cuboids[m, 0],
                    sensors[i, 1] - cuboids[m, 1],
                    sensors[i, 2] - cuboids[m, 2],
                    half[m, 0], half[m, 1], half[m, 2], p, q,
                    far2[m], ref_scale[m], TOLERANCE,
                )
                acc += (
                    fx * magnetization[m, 0]
                    + fy * magnetization[m, 1]
                    + fz * magnetization[m, 2]
                )
            out[i] = MU0_OVER_4PI * acc

    return _variant(field, parallel)


_kernel_serial = _make_kernel(False)
_kernel_parallel = _make_kernel(True)
_field_serial = _make_field(False)
_field_parallel = _make_field(True)


def _checked(
    sensors: np.ndarray, cuboids: np.ndarray, sensor_size: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, float, float]:
    sensors = np.ascontiguousarray(sensors, dtype=float).reshape(-1, 3)
    cuboids = np.ascontiguousarray(cuboids, dtype=float).reshape(-1, 6)
    w, l = (float(v) for v in sensor_size)
    if not (w >= 0 and l >= 0 and (w > 0) == (l > 0)):
        raise ValueError(f"sensor_size {sensor_size!r}: expected (0, 0) or both sides > 0")
    if cuboids.size and np.any(cuboids[:, 3:] <= 0):
        raise ValueError("cuboid edge lengths must be > 0")
    if sensors.size and cuboids.size:
        top = float(np.max(cuboids[:, 2] + 0.5 * cuboids[:, 5]))
        if float(np.min(sensors[:, 2])) <= top:
            raise ValueError(
                f"every sensor must lie above every cuboid's top face (z > {top:g} m)"
            )
    return sensors, cuboids, 0.5 * w, 0.5 * l


def cuboid_bz_kernel(
    sensors: np.ndarray, cuboids: np.ndarray, *, sensor_size: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Bz per unit magnetization, (P, C, 3) in T/(A/m): [i, m, j] is the field at sensor i of
    cuboid m magnetized along axis j, averaged over the sensor area w × l = sensor_size (m).

    sensors (P, 3): sensor centres in m; cuboids (C, 6): centre x, y, z and FULL edge
    lengths in m. Errors are below 1e-6 of each column's largest entry (module docstring).
    """
    sensors, cuboids, p, q = _checked(sensors, cuboids, sensor_size)
    out = np.zeros((sensors.shape[0], cuboids.shape[0], 3))
    if out.size == 0:
        return out
    ref = _nearest_sensor_distance(sensors, cuboids)
    kernel = _kernel_parallel if out.shape[0] * out.shape[1] > _PARALLEL_PAIRS else _kernel_serial
    kernel(sensors, cuboids, p, q, ref, out)
    return out


def cuboid_bz(
    sensors: np.ndarray,
    cuboids: np.ndarray,
    magnetization: np.ndarray,
    *,
    sensor_size: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Bz (P,) in T at the sensors of cuboids with uniform magnetizations (C, 3) in A/m,
    averaged over the sensor area w × l = sensor_size (m); (0, 0) is a point sensor.
    Geometry as in `cuboid_bz_kernel`."""
    sensors, cuboids, p, q = _checked(sensors, cuboids, sensor_size)
    magnetization = np.ascontiguousarray(magnetization, dtype=float).reshape(-1, 3)
    if magnetization.shape[0] != cuboids.shape[0]:
        raise ValueError(
            f"{magnetization.shape[0]} magnetizations for {cuboids.shape[0]} cuboids"
        )
    out = np.zeros(sensors.shape[0])
    if sensors.shape[0] == 0 or cuboids.shape[0] == 0:
        return out
    ref = _nearest_sensor_distance(sensors, cuboids)
    pairs = sensors.shape[0] * cuboids.shape[0]
    field = _field_parallel if pairs > _PARALLEL_PAIRS else _field_serial
    field(sensors, cuboids, magnetization, p, q, ref, out)
    return out
