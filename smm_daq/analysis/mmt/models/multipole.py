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
from smm_daq.analysis.mmt.models.compiled import cache_depends_on, fortran_rows
from smm_daq.errors import InputError

MU0_OVER_4PI = 1e-7
MODELS = {"dipole": 3, "quadrupole": 8, "octupole": 15}
COEFFICIENT_NAMES = (
    "mx", "my", "mz",
    "q20", "q21c", "q21s", "q22c", "q22s",
    "o30", "o31c", "o31s", "o32c", "o32s", "o33c", "o33s",
)
COEFFICIENT_UNITS = ("A/m",) * 3 + ("A m3",) * 5 + ("A m4",) * 7


def coefficient_column(j: int) -> str:
    """A result CSV's column of higher-order coefficient j (≥ 3): its name and its unit, as
    `moment_Am2` names its unit (q20_Am3, o33s_Am4)."""
    if j < 3:
        raise ValueError(f"coefficient {j}: the dipole's columns are mx_A_per_m etc.")
    return f"{COEFFICIENT_NAMES[j]}_{COEFFICIENT_UNITS[j].replace(' ', '')}"


@dataclass(frozen=True)
class PointGrains:
    """Grains as points: centroids (G, 3) in m (z up, the sample top at 0), volumes (G,) m³,
    integer labels; ``lines[g]`` the file line of grain g (0 where not from a file).
    ``left_out``: the file's grains its reader or the crop to the scans left out, each a reason
    ("min_voxels", "crop") with the labels it left out, so that a command can say what it did
    not invert."""

    positions: np.ndarray
    volume: np.ndarray
    labels: np.ndarray
    source: str = ""
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    left_out: tuple[tuple[str, tuple[int, ...]], ...] = ()

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


POSITION_LIMIT_M = 1e3  # far beyond any sample; the fit's products stay finite
VOLUME_RANGE_M3 = (1e-27, 1e9)  # a cubic nanometre up to far beyond any sample
MAX_LABEL = 2**53  # labels stay exact as float64 and fit int64


def point_grains(positions: np.ndarray, volumes: np.ndarray, labels: np.ndarray | None = None,
                 *, source: str = "", lines: np.ndarray | None = None,
                 left_out: tuple[tuple[str, tuple[int, ...]], ...] = ()) -> PointGrains:
    """PointGrains with checks: positions within ±POSITION_LIMIT_M, volumes in
    VOLUME_RANGE_M3, unique labels (a position or volume beyond them, however finite, is a
    unit or file error, and overflows the fit)."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    vol = np.asarray(volumes, dtype=float).reshape(-1)
    lab = (np.arange(1, pos.shape[0] + 1) if labels is None
           else np.asarray(labels).astype(np.int64).reshape(-1))
    ln = np.zeros(0, dtype=np.int64) if lines is None else np.asarray(lines, dtype=np.int64)
    grains = PointGrains(pos, vol, lab, source, ln, left_out)
    if vol.size != pos.shape[0] or lab.size != pos.shape[0]:
        raise InputError(f"{pos.shape[0]} positions, {vol.size} volumes and {lab.size} labels; "
                         "expected one of each per grain", source=source or None)
    if pos.shape[0] == 0:
        raise InputError("holds no grains", source=source or None)
    lo, hi = VOLUME_RANGE_M3
    for g in range(pos.shape[0]):
        if not np.all(np.abs(pos[g]) <= POSITION_LIMIT_M):
            position = ", ".join(f"{v:g}" for v in pos[g].tolist())
            raise InputError(f"grain {lab[g]} has position ({position}) m; expected finite "
                             f"numbers within ±{POSITION_LIMIT_M:g} m", source=grains.where(g))
        if not lo <= vol[g] <= hi:
            raise InputError(f"grain {lab[g]} has volume {vol[g]:g} m³; expected > 0, within "
                             f"{lo:g} .. {hi:g} m³", source=grains.where(g))
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


SIZE_OVER_DISTANCE = 100.0  # no grain's equal-volume radius is this many times its distance
TILE = 64  # sensors per loop of the point kernels: one vectorized loop per (tile, grain)


@njit(cache=True, inline="always", error_model="numpy")
def _point_columns(n, x, y, z, cols, k):
    """The point kernel of n coefficients at (x, y, z) into cols[:, k] (one kernel per
    branch keeps the block functions free of function arguments, so numba can cache them)."""
    if n == 3:
        v3 = mk.point_3(x, y, z)
        for j in range(3):
            cols[j, k] = v3[j]
    elif n == 8:
        v8 = mk.point_8(x, y, z)
        for j in range(8):
            cols[j, k] = v8[j]
    else:
        v15 = mk.point_15(x, y, z)
        for j in range(15):
            cols[j, k] = v15[j]


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


@njit(cache=True, inline="always", error_model="numpy")
def _grain_corners(sensors, i, pos, g, scale, n, p, q, t, buf, acc):
    """Grain g's n columns of Q at area or volume sensor i (half-sizes p, q, t) into acc: the
    signed sum of the kernel's antiderivative over the sensor's corners."""
    nz = 2 if t > 0 else 1
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
        acc[j] *= scale[j] * (pos[g, 3] if j < 3 else 1.0)


# Parallel over grains, sensors inner: the blocks of Q are column-major (Fortran order, for
# LAPACK), so each grain's columns are written contiguously. Each tile of sensors is computed
# into a buffer of the kernel's own, then scaled into `out`: LLVM vectorizes such a loop, not
# one storing into an argument array (which might alias the inputs).
@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _block_point(sensors, pos, scale, n, out):
    for g in prange(pos.shape[0]):
        cols = np.empty((n, TILE))
        w = np.empty(n)
        for j in range(n):
            w[j] = scale[j] * (pos[g, 3] if j < 3 else 1.0)
        for lo in range(0, sensors.shape[0], TILE):
            hi = min(sensors.shape[0], lo + TILE)
            for i in range(lo, hi):
                _point_columns(n, sensors[i, 0] - pos[g, 0], sensors[i, 1] - pos[g, 1],
                               sensors[i, 2] - pos[g, 2], cols, i - lo)
            for j in range(n):
                for i in range(lo, hi):
                    out[i, n * g + j] = w[j] * cols[j, i - lo]


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _block_corners(sensors, pos, scale, n, p, q, t, out):
    for g in prange(pos.shape[0]):
        buf = np.empty(n)
        acc = np.empty(n)
        for i in range(sensors.shape[0]):
            _grain_corners(sensors, i, pos, g, scale, n, p, q, t, buf, acc)
            for j in range(n):
                out[i, n * g + j] = acc[j]


@njit(cache=True, inline="always", error_model="numpy")
def _dotted_point(n, x, y, z, w):
    """The point kernel of n coefficients at (x, y, z) dotted with the weights w."""
    if n == 3:
        v3 = mk.point_3(x, y, z)
        return v3[0] * w[0] + v3[1] * w[1] + v3[2] * w[2]
    total = 0.0
    if n == 8:
        v8 = mk.point_8(x, y, z)
        for j in range(8):
            total += v8[j] * w[j]
    else:
        v15 = mk.point_15(x, y, z)
        for j in range(15):
            total += v15[j] * w[j]
    return total


# Parallel over tiles of sensors, grains inner: Q·m without Q's rows; each (tile, grain) one
# loop over the tile's sensors into a buffer of the kernel's own, which LLVM vectorizes (as
# `cuboid._order_2_field`).
@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _field_point(sensors, pos, scale, n, m, out):
    for t in prange((sensors.shape[0] + TILE - 1) // TILE):
        lo = t * TILE
        hi = min(sensors.shape[0], lo + TILE)
        total = np.zeros(TILE)
        w = np.empty(n)
        for g in range(pos.shape[0]):
            for j in range(n):
                w[j] = scale[j] * (pos[g, 3] if j < 3 else 1.0) * m[n * g + j]
            for i in range(lo, hi):
                total[i - lo] += _dotted_point(n, sensors[i, 0] - pos[g, 0],
                                               sensors[i, 1] - pos[g, 1],
                                               sensors[i, 2] - pos[g, 2], w)
        for i in range(lo, hi):
            out[i] = total[i - lo]


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def _field_corners(sensors, pos, scale, n, p, q, t, m, out):
    for k in prange((sensors.shape[0] + TILE - 1) // TILE):
        buf = np.empty(n)
        acc = np.empty(n)
        for i in range(k * TILE, min(sensors.shape[0], (k + 1) * TILE)):
            total = 0.0
            for g in range(pos.shape[0]):
                _grain_corners(sensors, i, pos, g, scale, n, p, q, t, buf, acc)
                for j in range(n):
                    total += acc[j] * m[n * g + j]
            out[i] = total


@dataclass
class MultipoleModel:
    """The Green's matrix of point-source grains: column n g + j is Bz per unit coefficient j
    of grain g (the dipole's per unit magnetization, A/m)."""

    grains: PointGrains
    sensor: Sensor
    n_per_grain: int
    # the fitted map never keeps the rows: Q·M is computed again faster than copied (`field`)
    keep_rows: ClassVar[bool] = False

    @classmethod
    def build(cls, grains: PointGrains, sensor: Sensor, model: str) -> MultipoleModel:
        if model not in MODELS:
            raise InputError(f"model {model!r}; expected one of {', '.join(MODELS)}")
        return cls(grains, sensor, MODELS[model])

    @property
    def n_columns(self) -> int:
        return self.n_per_grain * self.grains.n_grains

    def _kernel_args(self, sensors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sensors, the grains (x, y, z, volume) and each column's scale, as the kernels
        take them."""
        s = self.sensor
        measure = 1.0 if s.kind == "point" else 4.0 * s.p * s.q * (2.0 * s.t if s.t > 0 else 1.0)
        pos = np.ascontiguousarray(np.c_[self.grains.positions, self.grains.volume])
        sens = np.ascontiguousarray(sensors[:, :3], dtype=float)
        return sens, pos, np.full(self.n_per_grain, MU0_OVER_4PI / measure)

    def block(self, sensors: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Rows of Q for sensors (B, 3) into out (B, n_columns)."""
        s, n = self.sensor, self.n_per_grain
        sens, pos, scale = self._kernel_args(sensors)
        rows = fortran_rows(out)
        if s.kind == "point":
            _block_point(sens, pos, scale, n, rows)
        else:
            _block_corners(sens, pos, scale, n, s.p, s.q, s.t, rows)
        if rows is not out:
            out[...] = rows[:out.shape[0]]
        return out

    def field(self, sensors: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Q·m (B,) for sensors (B, 3) and coefficients m (n_columns,), without Q's rows:
        the fitted map and synthetic scans."""
        s, n = self.sensor, self.n_per_grain
        sens, pos, scale = self._kernel_args(sensors)
        m = np.ascontiguousarray(m, dtype=float).reshape(-1)
        out = np.empty(sens.shape[0])
        if s.kind == "point":
            _field_point(sens, pos, scale, n, m, out)
        else:
            _field_corners(sens, pos, scale, n, s.p, s.q, s.t, m, out)
        return out


def check_below_sensor(grains: PointGrains, height: float, sensor: Sensor) -> None:
    """Every source strictly below the sensor's lowest face, and no larger than could lie
    there: a grain whose sphere of equal volume reaches SIZE_OVER_DISTANCE times its
    distance to that face would hold the sensor many times over (a volume in µm³ read as m³
    makes its radius a million times too large, and its magnetization 10¹⁸ times too small)."""
    bottom = height - sensor.t
    z = grains.positions[:, 2]
    bad = np.flatnonzero(z >= bottom)
    if bad.size:
        g = int(bad[0])
        # above the top too: a depth written as positive z (the cuboid library's convention)
        # or a file whose top lies at another z (a CT's frame), which a height of its own
        # would not mend: each said with its remedy
        depth = (", z up with the sample top at 0 (depths written as positive z? their sign "
                 "turned; a top at another z? the grains shifted by minus it, "
                 "--grains-shift-um 0,0,-TOP)" if z[g] > 0 else "")
        raise InputError(
            f"grain {grains.labels[g]} is at z = {z[g] / 1e-6:.4g} µm, at or "
            f"above the sensor's lowest face ({bottom / 1e-6:.4g} µm); expected every grain "
            f"below the sensor{depth}", source=grains.where(g))
    radius = np.cbrt(3.0 * grains.volume / (4.0 * math.pi))
    bad = np.flatnonzero(radius > SIZE_OVER_DISTANCE * (bottom - z))
    if bad.size:
        g = int(bad[0])
        raise InputError(
            f"grain {grains.labels[g]} has volume {grains.volume[g]:.4g} m³ (a sphere of radius "
            f"{radius[g] / 1e-6:.4g} µm) with its centroid {(bottom - z[g]) / 1e-6:.4g} µm below "
            f"the sensor; expected volumes in m³, a grain no wider than "
            f"{SIZE_OVER_DISTANCE:g} times its distance to the sensor (a volume in µm³ or mm³?)",
            source=grains.where(g))


def to_library(coefficients: np.ndarray, volumes: np.ndarray) -> np.ndarray:
    """Coefficients (G, k) with the dipole as M (A/m) into the library's (G, k): the dipole
    as the moment m = M V (A m²), higher orders unchanged."""
    out = np.array(coefficients, dtype=float)
    out[:, :3] *= volumes[:, None]
    return out


# the kernels compile in the generated kernels of multipole_kernels.py
cache_depends_on(__name__, "smm_daq.analysis.mmt.models.multipole_kernels")
