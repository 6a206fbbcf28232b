"""The cuboid Green's matrix of `cuboid` on a CUDA GPU (numba.cuda kernels).

One thread per (sensor, grain) pair writes the grain's three columns at that sensor, by the
same tiers as the CPU kernels `cuboid._order_2_block` and `_green_block` (the grain's far
field to one of GRAIN_ORDERS beyond its switching distances, else the sum over its cuboids of
the forward model's per-pair form, or the cuboid's own order-6 or order-10 expansion for an
area sensor) and through the same scalar functions (`moment_expansion`, `_orders_3_4`,
`_grain_orders`, `_top_order`, `_cuboid_expansion`, `_cuboid_expansion_10`, `_pair`,
`_point_pair`), which numba compiles for the GPU as device functions. So the GPU block equals
the CPU block to rounding, and the test suite checks that in numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which runs these kernels in Python on any machine.

Threads are numbered sensor-fastest, so a warp holds consecutive sensors of one grain (the
same tier for nearly all of them) and its writes to a column-major block are coalesced.
A second kernel, `field`, gives Q·M at each sensor without storing Q (the fitted map and
synthetic scans).

Arrays may be CuPy arrays (anything with ``__cuda_array_interface__``) or, in the simulator,
NumPy arrays.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from smm_daq.analysis.forward import MU0_OVER_4PI, _pair, _point_pair, moment_expansion
from smm_daq.analysis.mmt.models.compiled import cache_depends_on
from smm_daq.analysis.mmt.models.cuboid import (
    CUBOID_TOLERANCE,
    HIGHER_ORDERS,
    GreenModel,
    _cuboid_expansion,
    _cuboid_expansion_10,
    _grain_orders,
    _orders_3_4,
    _top_order,
)
from smm_daq.analysis.mmt.models.cuda_compat import cuda

THREADS = 256  # threads per CUDA block
# The simulator runs kernels in Python, where a CPU-compiled function cannot take its array
# arguments: it runs the same function's Python source instead.
SIMULATED = bool(int(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") or 0))  # as numba reads it
_orders = _orders_3_4.py_func if SIMULATED else _orders_3_4
_higher = _grain_orders.py_func if SIMULATED else _grain_orders
_top = _top_order.py_func if SIMULATED else _top_order
_expansion = _cuboid_expansion.py_func if SIMULATED else _cuboid_expansion
_expansion_10 = _cuboid_expansion_10.py_func if SIMULATED else _cuboid_expansion_10


@cuda.jit(device=True)
def _grain_columns(sx, sy, sz, g, p, q, centroid, volume, moments, high, coarse2, far2,
                   higher, fine2, start, cuboids, half, cub_far2, cub_scale, cub_terms,
                   cub_mid2, cub_inner2, tol):
    """The three columns (×4π/μ0) of grain g at sensor (sx, sy, sz): the CPU's tiers
    (`_order_2_block`, `_green_block`) for one pair."""
    dx = sx - centroid[g, 0]
    dy = sy - centroid[g, 1]
    dz = sz - centroid[g, 2]
    d2 = dx * dx + dy * dy + dz * dz
    if d2 >= far2[g]:
        fx, fy, fz = moment_expansion(
            dx, dy, dz, volume[g], moments[g, 0], moments[g, 1], moments[g, 2],
            moments[g, 3], moments[g, 4], moments[g, 5])
        if d2 < coarse2[g]:
            ex, ey, ez = _orders(dx, dy, dz, high, g)
            fx += ex
            fy += ey
            fz += ez
            if d2 < fine2[g, 0]:
                ex, ey, ez = _higher(dx, dy, dz, higher, g, HIGHER_ORDERS[0],
                                     _top(d2, fine2, g))
                fx += ex
                fy += ey
                fz += ez
        return fx, fy, fz
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
                ex, ey, ez = _expansion(ddx, ddy, ddz, half[m, 0], half[m, 1], half[m, 2],
                                        p, q, cub_terms, m)
            elif cub_inner2[m] <= r2 < cub_far2[m]:
                ex, ey, ez = _expansion_10(ddx, ddy, ddz, half[m, 0], half[m, 1], half[m, 2],
                                           p, q, cub_terms, m)
            else:
                ex, ey, ez = _pair(ddx, ddy, ddz, half[m, 0], half[m, 1], half[m, 2], p, q,
                                   cub_far2[m], cub_scale[m], tol)
        fx += ex
        fy += ey
        fz += ez
    return fx, fy, fz


@cuda.jit(cache=True)
def _green_kernel(sensors, p, q, centroid, volume, moments, high, coarse2, far2, higher,
                  fine2, start, cuboids, half, cub_far2, cub_scale, cub_terms, cub_mid2,
                  cub_inner2, tol, out):
    b = sensors.shape[0]
    t = cuda.grid(1)
    if t >= b * centroid.shape[0]:
        return
    g = t // b
    i = t - g * b
    fx, fy, fz = _grain_columns(sensors[i, 0], sensors[i, 1], sensors[i, 2], g, p, q,
                                centroid, volume, moments, high, coarse2, far2, higher,
                                fine2, start, cuboids, half, cub_far2, cub_scale,
                                cub_terms, cub_mid2, cub_inner2, tol)
    out[i, 3 * g] = MU0_OVER_4PI * fx
    out[i, 3 * g + 1] = MU0_OVER_4PI * fy
    out[i, 3 * g + 2] = MU0_OVER_4PI * fz


@cuda.jit(cache=True)
def _field_kernel(sensors, p, q, centroid, volume, moments, high, coarse2, far2, higher,
                  fine2, start, cuboids, half, cub_far2, cub_scale, cub_terms, cub_mid2,
                  cub_inner2, tol, m, out):
    i = cuda.grid(1)
    if i >= sensors.shape[0]:
        return
    acc = 0.0
    for g in range(centroid.shape[0]):
        fx, fy, fz = _grain_columns(sensors[i, 0], sensors[i, 1], sensors[i, 2], g, p, q,
                                    centroid, volume, moments, high, coarse2, far2,
                                    higher, fine2, start, cuboids, half, cub_far2,
                                    cub_scale, cub_terms, cub_mid2, cub_inner2, tol)
        acc += fx * m[g, 0] + fy * m[g, 1] + fz * m[g, 2]
    out[i] = MU0_OVER_4PI * acc


@dataclass
class DeviceGreen:
    """A `GreenModel`'s arrays on the device, ready for the kernels."""

    p: float
    q: float
    arrays: tuple[Any, ...]  # centroid … cub_inner2 in the kernels' argument order
    n_grains: int

    @classmethod
    def upload(cls, model: GreenModel, to_device: Any) -> DeviceGreen:
        """`to_device` copies a host array to the device (cupy.asarray, or the identity in
        the simulator)."""
        g = model.grains
        host = (model.centroid, model.volume, model.moments, model.high, model.coarse2,
                model.far2, model.higher, model.fine2, g.start, g.cuboids, model.half,
                model.cub_far2, model.cub_scale, model.cub_terms, model.cub_mid2,
                model.cub_inner2)
        arrays = tuple(to_device(np.ascontiguousarray(a)) for a in host)
        return cls(0.5 * model.sensor_size[0], 0.5 * model.sensor_size[1], arrays, g.n_grains)

    @property
    def n_columns(self) -> int:
        return 3 * self.n_grains

    def block(self, sensors: Any, out: Any) -> None:
        """Q rows (B, 3G) in T/(A/m) into `out` (any strides; column-major is fastest) for
        sensor centres (B, 3) in m, both on the device. Returns once launched (asynchronous
        on a GPU)."""
        pairs = sensors.shape[0] * self.n_grains
        if pairs == 0:
            return
        if pairs >= 2**31:
            raise ValueError(f"{pairs} sensor-grain pairs in one launch; expected < 2^31")
        _green_kernel[(pairs + THREADS - 1) // THREADS, THREADS](
            sensors, self.p, self.q, *self.arrays, CUBOID_TOLERANCE, out)

    def field(self, sensors: Any, m: Any, out: Any) -> None:
        """Bz = Q·M (B,) into `out` for magnetizations m (G, 3) in A/m, without storing Q."""
        b = sensors.shape[0]
        if b == 0:
            return
        _field_kernel[(b + THREADS - 1) // THREADS, THREADS](
            sensors, self.p, self.q, *self.arrays, CUBOID_TOLERANCE, m, out)


# the kernels compile in cuboid.py's functions and, through them, what those compile in
cache_depends_on(__name__, "smm_daq.analysis.forward", "smm_daq.analysis.mmt.models.cuboid",
                 "smm_daq.analysis.mmt.models.expansion_terms")
