"""Point-source grains: each grain a point at its centroid, expanded as a dipole (3
coefficients), up to the quadrupole (8) or up to the octupole (15).

Basis and normalisation (those of the public `mmt_multipole_inversion` library, module
`spherical_harmonics_basis`, so coefficients compare one to one): coefficient k of order l
has the scalar potential ψ_k(r) = S_k(r) / (4π r^(2l+1)), B = −μ0 ∇ψ, r = sensor − source,
with the real solid harmonics

    l = 1:  x, y, z                                  (the dipole moment m, A m²)
    l = 2:  (2z² − x² − y²)/√6, √2 xz, √2 yz, (x² − y²)/√2, √2 xy              (A m³)
    l = 3:  z(2z² − 3x² − 3y²)/√10, √15 x(4z² − x² − y²)/10, √15 y(4z² − x² − y²)/10,
            √6 z(x² − y²)/2, √6 xyz, x(x² − 3y²)/2, y(3x² − y²)/2            (A m⁴)

(`multipole_kernels.S_POLYNOMIALS`, found by the generator from the library's Bz kernels).
Here the three dipole unknowns are the grain's magnetization M = m/V in A/m, as for cuboid
grains, so the tables of both models share their first columns; `to_library` converts.

Sensors: a point, a rectangle of w × l (Bz averaged over it) or a box of w × l × t (averaged
over its volume), centred on the sensor position. The averages are closed forms: Bz_k is a sum
of derivatives of 1/r, whose integrals over the sensor are corner sums of derivatives of the
antiderivatives of 1/r (`tools/gen_multipole_kernels.py` derives and writes them, for all
orders; the library itself has area and volume sensors only up to the quadrupole). Corner
sums lose about (R/w)² of the working precision to cancellation at distance R: 1e-10 relative
at R = 1000 w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numba import njit, prange

from smm_daq.analysis.mmt.models import multipole_kernels as mk
from smm_daq.errors import InputError

MU0_OVER_4PI = 1e-7
MODELS = {"dipole": 3, "quadrupole": 8, "octupole": 15}
COEFFICIENT_NAMES = (
    "mx", "my", "mz",
    "q20", "q21c", "q21s", "q22c", "q22s",
    "o30", "o31c", "o31s", "o32c", "o32s", "o33c", "o33s",
)
COEFFICIENT_UNITS = ("A/m",) * 3 + ("A m3",) * 5 + ("A m4",) * 7


@dataclass(frozen=True)
class PointGrains:
    """Grains as points: centroids (G, 3) in m (z up, the sample top at 0), volumes (G,) m³,
    integer labels; ``lines[g]`` the file line of grain g (0 where not from a file)."""

    positions: np.ndarray
    volume: np.ndarray
    labels: np.ndarray
    source: str = ""
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_grains(self) -> int:
        return int(self.labels.size)

    def volumes(self) -> np.ndarray:
        return self.volume

    def centroids(self) -> np.ndarray:
        return self.positions

    def tops(self) -> np.ndarray:
        return self.positions[:, 2]

    def where(self, g: int) -> str:
        """The file (and line) grain g came from, for messages."""
        line = f", line {int(self.lines[g])}" if self.lines.size and self.lines[g] else ""
        return f"{self.source or 'grain list'}{line}"


def point_grains(positions: np.ndarray, volumes: np.ndarray, labels: np.ndarray | None = None,
                 *, source: str = "", lines: np.ndarray | None = None) -> PointGrains:
    """PointGrains with checks: finite positions, volumes > 0, unique labels."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    vol = np.asarray(volumes, dtype=float).reshape(-1)
    lab = (np.arange(1, pos.shape[0] + 1) if labels is None
           else np.asarray(labels).astype(np.int64).reshape(-1))
    ln = np.zeros(0, dtype=np.int64) if lines is None else np.asarray(lines, dtype=np.int64)
    grains = PointGrains(pos, vol, lab, source, ln)
    if vol.size != pos.shape[0] or lab.size != pos.shape[0]:
        raise InputError(f"{pos.shape[0]} positions, {vol.size} volumes and {lab.size} labels; "
                         "expected one of each per grain", source=source or None)
    if pos.shape[0] == 0:
        raise InputError("holds no grains", source=source or None)
    for g in range(pos.shape[0]):
        if not np.all(np.isfinite(pos[g])):
            raise InputError(f"grain {lab[g]} has position {pos[g].tolist()}; expected finite "
                             "numbers", source=grains.where(g))
        if not (vol[g] > 0 and math.isfinite(vol[g])):
            raise InputError(f"grain {lab[g]} has volume {vol[g]!r}; expected > 0",
                             source=grains.where(g))
    uniq, counts = np.unique(lab, return_counts=True)
    if np.any(counts > 1):
        g = int(np.flatnonzero(lab == uniq[counts > 1][0])[1])
        raise InputError(f"label {lab[g]} appears more than once; expected one grain per label",
                         source=grains.where(g))
    return grains


@dataclass(frozen=True)
class Sensor:
    """Sensor shape: half-widths (p, q) along x, y and half-thickness t along z, in m; all
    zero for a point, t = 0 for an area sensor."""

    p: float = 0.0
    q: float = 0.0
    t: float = 0.0

    @property
    def kind(self) -> str:
        if self.t > 0:
            return "volume"
        return "area" if self.p > 0 else "point"

    @classmethod
    def from_size(cls, size: tuple[float, ...]) -> Sensor:
        """From full dimensions (w, l) or (w, l, thickness) in m; (0, 0) a point."""
        dims = [float(v) for v in size] + [0.0] * (3 - len(size))
        w, l, th = dims[:3]
        if min(w, l, th) < 0 or (w > 0) != (l > 0) or (th > 0 and w == 0):
            raise InputError(f"sensor size {tuple(size)}; expected W, L both > 0 (and a "
                             "thickness >= 0), or all 0 for a point")
        return cls(w / 2, l / 2, th / 2)


@njit(cache=True, inline="always", error_model="numpy")
def _point_values(n, x, y, z, buf):
    """The point kernel of n coefficients at (x, y, z) into buf (one kernel per branch keeps
    the block functions free of function arguments, so numba can cache them)."""
    if n == 3:
        v3 = mk.point_3(x, y, z)
        for j in range(3):
            buf[j] = v3[j]
    elif n == 8:
        v8 = mk.point_8(x, y, z)
        for j in range(8):
            buf[j] = v8[j]
    else:
        v15 = mk.point_15(x, y, z)
        for j in range(15):
            buf[j] = v15[j]


@njit(cache=True, inline="always", error_model="numpy")
def _corner_values(volume, n, x, y, z, buf):
    """Corner value of the area (volume False) or volume kernel, n coefficients, into buf."""
    if volume:
        if n == 3:
            v3 = mk.volume_3(x, y, z)
            for j in range(3):
                buf[j] = v3[j]
        elif n == 8:
            v8 = mk.volume_8(x, y, z)
            for j in range(8):
                buf[j] = v8[j]
        else:
            v15 = mk.volume_15(x, y, z)
            for j in range(15):
                buf[j] = v15[j]
    elif n == 3:
        v3 = mk.area_3(x, y, z)
        for j in range(3):
            buf[j] = v3[j]
    elif n == 8:
        v8 = mk.area_8(x, y, z)
        for j in range(8):
            buf[j] = v8[j]
    else:
        v15 = mk.area_15(x, y, z)
        for j in range(15):
            buf[j] = v15[j]


# Parallel over grains, sensors inner: the blocks of Q are column-major (Fortran order, for
# LAPACK), so each grain's columns are written contiguously.
@njit(cache=True, parallel=True, error_model="numpy")
def _block_point(sensors, pos, scale, n, out):
    for g in prange(pos.shape[0]):
        vol = pos[g, 3]
        buf = np.empty(n)
        for i in range(sensors.shape[0]):
            _point_values(n, sensors[i, 0] - pos[g, 0], sensors[i, 1] - pos[g, 1],
                          sensors[i, 2] - pos[g, 2], buf)
            for j in range(n):
                out[i, n * g + j] = scale[j] * buf[j] * (vol if j < 3 else 1.0)


@njit(cache=True, parallel=True, error_model="numpy")
def _block_corners(sensors, pos, scale, n, p, q, t, out):
    nz = 2 if t > 0 else 1
    for g in prange(pos.shape[0]):
        vol = pos[g, 3]
        buf = np.empty(n)
        acc = np.empty(n)
        for i in range(sensors.shape[0]):
            dx = sensors[i, 0] - pos[g, 0]
            dy = sensors[i, 1] - pos[g, 1]
            dz = sensors[i, 2] - pos[g, 2]
            acc[:] = 0.0
            for c in range(4 * nz):
                sx = 1.0 if c & 1 else -1.0
                sy = 1.0 if c & 2 else -1.0
                sz = (1.0 if c & 4 else -1.0) if nz == 2 else 1.0
                _corner_values(nz == 2, n, dx + sx * p, dy + sy * q, dz + sz * t, buf)
                sign = sx * sy * sz
                for j in range(n):
                    acc[j] += sign * buf[j]
            for j in range(n):
                out[i, n * g + j] = acc[j] * scale[j] * (vol if j < 3 else 1.0)


@dataclass
class MultipoleModel:
    """The Green's matrix of point-source grains: column n g + j is Bz per unit coefficient j
    of grain g (the dipole's per unit magnetization, A/m)."""

    grains: PointGrains
    sensor: Sensor
    n_per_grain: int
    # the fitted map never keeps the rows: they are computed again faster than copied
    keep_rows: ClassVar[bool] = False

    @classmethod
    def build(cls, grains: PointGrains, sensor: Sensor, model: str) -> MultipoleModel:
        if model not in MODELS:
            raise InputError(f"model {model!r}; expected one of {', '.join(MODELS)}")
        return cls(grains, sensor, MODELS[model])

    @property
    def n_columns(self) -> int:
        return self.n_per_grain * self.grains.n_grains

    def block(self, sensors: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Rows of Q for sensors (B, 3) into out (B, n_columns)."""
        s = self.sensor
        n = self.n_per_grain
        pos = np.ascontiguousarray(np.c_[self.grains.positions, self.grains.volume])
        sens = np.ascontiguousarray(sensors[:, :3], dtype=float)
        if s.kind == "point":
            scale = np.full(n, MU0_OVER_4PI)
            _block_point(sens, pos, scale, n, out)
        else:
            measure = 4.0 * s.p * s.q * (2.0 * s.t if s.t > 0 else 1.0)
            scale = np.full(n, MU0_OVER_4PI / measure)
            _block_corners(sens, pos, scale, n, s.p, s.q, s.t, out)
        return out


def check_below_sensor(grains: PointGrains, height: float, sensor: Sensor) -> None:
    """Every source strictly below the sensor's lowest face."""
    bottom = height - sensor.t
    bad = np.flatnonzero(grains.positions[:, 2] >= bottom)
    if bad.size:
        g = int(bad[0])
        raise InputError(
            f"grain {grains.labels[g]} is at z = {grains.positions[g, 2] / 1e-6:.4g} µm, at or "
            f"above the sensor's lowest face ({bottom / 1e-6:.4g} µm); expected every grain "
            "below the sensor", source=grains.where(g))


def to_library(coefficients: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    """Coefficients (G, k) with the dipole as M (A/m) into the library's (G, k): the dipole
    as the moment m = M V (A m²), higher orders unchanged."""
    out = np.array(coefficients, dtype=float)
    out[:, :3] *= volumes[:, None]
    return out
