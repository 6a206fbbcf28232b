"""The point-source Green's matrix of `multipole` (dipole, quadrupole, octupole; point, area
and volume sensors) on a CUDA GPU (numba.cuda kernels).

The kernels call the generated corner functions of `multipole_kernels` (point_n, area_n,
volume_n), which numba compiles for the GPU as device functions, and sum the sensor's corners
in the same order and with the same signs and scale as the CPU kernels of `multipole`
(`_block_point`, `_block_corners`), so the GPU block equals the CPU block to rounding; in
numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the two are the same computation, which is
how the test suite checks these kernels without a GPU.

One kernel pair per sensor kind and number of coefficients (9 in all, compiled when first
used): `block`, one thread per (sensor, grain) pair writing the grain's n columns at that
sensor, threads numbered sensor-fastest so a warp's writes to a column-major block are
coalesced; `field`, one thread per sensor summing Q·c over the grains without storing Q (the
fitted map and synthetic scans).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import float64

from smm_daq.analysis.mmt.models import multipole_kernels as mk
from smm_daq.analysis.mmt.models.cuda_compat import cuda
from smm_daq.analysis.mmt.models.multipole import MU0_OVER_4PI, MultipoleModel

THREADS = 256  # threads per CUDA block
CORNERS = {"point": 1, "area": 4, "volume": 8}


@functools.cache
def kernels(kind: str, n: int) -> tuple[Any, Any]:
    """(block, field) kernels for a sensor kind ("point", "area", "volume") and n = 3, 8 or 15
    coefficients per grain."""
    values = getattr(mk, f"{kind}_{n}")
    corners = CORNERS[kind]

    @cuda.jit(device=True)
    def columns(sx, sy, sz, g, pos, p, q, t, scale, col):
        """Grain g's n columns at sensor (sx, sy, sz) into the local array col: the body of
        `multipole._block_point` / `_block_corners` for one pair."""
        vol = pos[g, 3]
        dx = sx - pos[g, 0]
        dy = sy - pos[g, 1]
        dz = sz - pos[g, 2]
        if corners == 1:
            v = values(dx, dy, dz)
            for j in range(n):
                col[j] = scale * v[j] * (vol if j < 3 else 1.0)
            return
        for j in range(n):
            col[j] = 0.0
        for c in range(corners):
            cx = 1.0 if c & 1 else -1.0
            cy = 1.0 if c & 2 else -1.0
            cz = (1.0 if c & 4 else -1.0) if corners == 8 else 1.0
            v = values(dx + cx * p, dy + cy * q, dz + cz * t)
            sign = cx * cy * cz
            for j in range(n):
                col[j] += sign * v[j]
        for j in range(n):
            col[j] = col[j] * scale * (vol if j < 3 else 1.0)

    @cuda.jit
    def block(sensors, pos, p, q, t, scale, out):
        b = sensors.shape[0]
        k = cuda.grid(1)
        if k >= b * pos.shape[0]:
            return
        g = k // b
        i = k - g * b
        col = cuda.local.array(n, float64)
        columns(sensors[i, 0], sensors[i, 1], sensors[i, 2], g, pos, p, q, t, scale, col)
        for j in range(n):
            out[i, n * g + j] = col[j]

    @cuda.jit
    def field(sensors, pos, p, q, t, scale, m, out):
        i = cuda.grid(1)
        if i >= sensors.shape[0]:
            return
        col = cuda.local.array(n, float64)
        acc = 0.0
        for g in range(pos.shape[0]):
            columns(sensors[i, 0], sensors[i, 1], sensors[i, 2], g, pos, p, q, t, scale, col)
            for j in range(n):
                acc += col[j] * m[g, j]
        out[i] = acc

    return block, field


@dataclass
class DeviceMultipole:
    """A `MultipoleModel`'s grains on the device, ready for the kernels."""

    kind: str
    n: int
    p: float
    q: float
    t: float
    scale: float
    pos: Any  # (G, 4): centroid x, y, z and volume
    n_grains: int

    @classmethod
    def upload(cls, model: MultipoleModel, to_device: Any) -> DeviceMultipole:
        """`to_device` copies a host array to the device (cupy.asarray, or the identity in
        the simulator)."""
        s = model.sensor
        g = model.grains
        if s.kind == "point":
            scale = MU0_OVER_4PI
        else:  # as `MultipoleModel.block`: the corner sum over the sensor's area or volume
            scale = MU0_OVER_4PI / (4.0 * s.p * s.q * (2.0 * s.t if s.t > 0 else 1.0))
        pos = to_device(np.ascontiguousarray(np.c_[g.positions, g.volume], dtype=float))
        return cls(s.kind, model.n_per_grain, s.p, s.q, s.t, scale, pos, g.n_grains)

    @property
    def n_columns(self) -> int:
        return self.n * self.n_grains

    def block(self, sensors: Any, out: Any) -> None:
        """Q rows (B, n G) into `out` (any strides; column-major is fastest) for sensor
        centres (B, ≥ 3) in m, both on the device. Returns once launched."""
        pairs = sensors.shape[0] * self.n_grains
        if pairs == 0:
            return
        if pairs >= 2**31:
            raise ValueError(f"{pairs} sensor-grain pairs in one launch; expected < 2^31")
        block, _ = kernels(self.kind, self.n)
        block[(pairs + THREADS - 1) // THREADS, THREADS](
            sensors, self.pos, self.p, self.q, self.t, self.scale, out)

    def field(self, sensors: Any, m: Any, out: Any) -> None:
        """Bz = Q·c (B,) into `out` for coefficients m (G, n), without storing Q."""
        b = sensors.shape[0]
        if b == 0:
            return
        _, field = kernels(self.kind, self.n)
        field[(b + THREADS - 1) // THREADS, THREADS](
            sensors, self.pos, self.p, self.q, self.t, self.scale, m, out)
