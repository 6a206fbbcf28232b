"""The Green's matrix Q of MMT (Bz at each sensor per unit magnetization of each grain),
computed one block of sensors at a time, in parallel over the sensors of a block.

Column 3g + j of Q is the field of grain g magnetized along axis j: the sum over the grain's
cuboids of the closed-form kernel of `smm_daq.analysis.forward` (with its own choice between
the exact form and the cuboid's far-field expansion). Far from the grain, the grain's own far
field replaces the sum over its cuboids: the dipole at its volume centroid (the quadrupole of a
uniformly magnetized body about its volume centroid vanishes) plus the leading correction from
the second moments of its volume (and of the sensor area). What remains is of third order in
the grain's size: at most ``GRAIN_FAR_CONSTANT`` (ρ/R)³ μ0 V/(4π R³) per unit M, ρ the largest
distance from the centroid to the grain (plus the sensor's half-diagonal), R the distance from
the centroid. That switch is made where this bound falls below ``GRAIN_TOLERANCE`` of the
grain's reference scale μ0 V/(4π R_ref³), R_ref the distance from the centroid to the nearest
point of the scanned area, which is about the column's largest entry. Tests check that every
entry then stays within 1e-4 of its column's largest, and that every M̂ moves by less than a
tenth of its standard deviation on a sample with 20 nT noise. The second property depends on
the signal-to-noise ratio: a map with far less noise than that, relative to its field, may
need a smaller GRAIN_TOLERANCE (or `exact=True`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from smm_daq.analysis.forward import (
    _GL_NODES,
    _GL_WEIGHTS,
    MU0_OVER_4PI,
    _cuboid_constants,
    _pair,
    moment_expansion,
)
from smm_daq.analysis.grains import GrainSet

GRAIN_TOLERANCE = 1e-5  # far-field error target relative to the grain's reference scale
CUBOID_TOLERANCE = 1e-5  # the same for each cuboid's own switch (forward model)
GRAIN_FAR_CONSTANT = 6.0  # bound on |remainder| / ((ρ/R)^3 V/R^3) of the grain far field


@njit(cache=True, parallel=True)
def _green_block(sensors, p, q, centroid, volume, moments, far2, start, cuboids, half,
                 cub_far2, cub_scale, tol, nodes, weights, out):
    G = centroid.shape[0]
    for i in prange(sensors.shape[0]):
        sx = sensors[i, 0]
        sy = sensors[i, 1]
        sz = sensors[i, 2]
        for g in range(G):
            dx = sx - centroid[g, 0]
            dy = sy - centroid[g, 1]
            dz = sz - centroid[g, 2]
            if dx * dx + dy * dy + dz * dz >= far2[g]:
                fx, fy, fz = moment_expansion(
                    dx, dy, dz, volume[g], moments[g, 0], moments[g, 1], moments[g, 2],
                    moments[g, 3], moments[g, 4], moments[g, 5])
            else:
                fx = 0.0
                fy = 0.0
                fz = 0.0
                for m in range(start[g], start[g + 1]):
                    ex, ey, ez = _pair(
                        sx - cuboids[m, 0], sy - cuboids[m, 1], sz - cuboids[m, 2],
                        half[m, 0], half[m, 1], half[m, 2], p, q,
                        cub_far2[m], cub_scale[m], tol, nodes, weights)
                    fx += ex
                    fy += ey
                    fz += ez
            out[i, 3 * g] = MU0_OVER_4PI * fx
            out[i, 3 * g + 1] = MU0_OVER_4PI * fy
            out[i, 3 * g + 2] = MU0_OVER_4PI * fz


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
    far2: np.ndarray  # (G,) squared switching distance to the grain far field, m^2
    cub_far2: np.ndarray
    cub_scale: np.ndarray
    half: np.ndarray
    exact: bool = False  # True: never the grain far field (for tests and references)

    @classmethod
    def build(cls, grains: GrainSet, sensor_size: tuple[float, float], scan_lo: np.ndarray,
              scan_hi: np.ndarray, height: float, *, exact: bool = False) -> GreenModel:
        """scan_lo/scan_hi: (x, y) corners of the scanned sensor centres in m."""
        p, q = 0.5 * float(sensor_size[0]), 0.5 * float(sensor_size[1])
        cub = grains.cuboids
        vol_c = grains.cuboid_volumes()
        volume = grains.volumes()
        centroid = grains.centroids()
        rel = cub[:, :3] - centroid[grains.grain]
        e2 = cub[:, 3:] ** 2 / 12.0  # a box's own second moments per unit volume
        G = grains.n_grains

        def moment(a: int, b: int) -> np.ndarray:
            own = e2[:, a] if a == b else 0.0
            return np.bincount(grains.grain, vol_c * (rel[:, a] * rel[:, b] + own), G) / volume

        moments = np.stack([moment(0, 0) + p * p / 3, moment(1, 1) + q * q / 3, moment(2, 2),
                            moment(0, 1), moment(0, 2), moment(1, 2)], axis=1)
        rho = grains.radii() + math.hypot(p, q)
        r_ref = distance_to_scan(centroid, scan_lo, scan_hi, height)
        # GRAIN_FAR_CONSTANT rho^3 V / R^6 <= GRAIN_TOLERANCE V / R_ref^3
        far = (GRAIN_FAR_CONSTANT / GRAIN_TOLERANCE * rho**3 * r_ref**3) ** (1.0 / 6.0)
        far2 = np.full(G, np.inf) if exact else far**2
        cub_ref = distance_to_scan(cub[:, :3], scan_lo, scan_hi, height)
        half, cub_far2, cub_scale = _cuboid_constants(
            np.ascontiguousarray(cub), p, q, cub_ref, CUBOID_TOLERANCE)
        return cls(grains, (2 * p, 2 * q), centroid, volume, np.ascontiguousarray(moments),
                   far2, cub_far2, cub_scale, half, exact)

    @property
    def n_columns(self) -> int:
        return 3 * self.grains.n_grains

    def block(self, sensors: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Q rows (B, 3G) in T/(A/m) for sensor centres (B, 3) in m."""
        sensors = np.ascontiguousarray(sensors, dtype=float)
        if out is None:
            out = np.empty((sensors.shape[0], self.n_columns))
        p, q = 0.5 * self.sensor_size[0], 0.5 * self.sensor_size[1]
        _green_block(sensors, p, q, self.centroid, self.volume, self.moments, self.far2,
                     self.grains.start, np.ascontiguousarray(self.grains.cuboids), self.half,
                     self.cub_far2, self.cub_scale, CUBOID_TOLERANCE, _GL_NODES, _GL_WEIGHTS,
                     out)
        return out
