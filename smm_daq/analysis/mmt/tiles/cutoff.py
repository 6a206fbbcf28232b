"""Which outside grains a tile may leave out of its outside-field subtraction, with the bound.

A tile solves its unknowns x from its window's map less the field b of the grains outside
them: x̂ = argmin ‖φ − b − Q x‖. Leaving out the field f of some outside grains moves x̂_j by
wⱼᵀf with wⱼ = Q(QᵀQ)⁻¹eⱼ, and ‖wⱼ‖² = (QᵀQ)⁻¹ⱼⱼ = sdⱼ²/σ², so by Cauchy–Schwarz

    |Δx̂ⱼ| ≤ sdⱼ ‖f‖ / σ    for every unknown j at once,

‖f‖ the 2-norm over the window's P sensors, ‖f‖ ≤ √P max|f| ≤ √P Σ_g B_g. B_g bounds grain g's
Bz anywhere over the window: outside a uniformly magnetized body its field is the sum of the
point-dipole fields of its volume elements, each at most 2 μ0 |M| dV / (4π r³), so

    B_g = 2 μ0 |M_g| V_g / (4π d_g³),

d_g the distance from the grain's centroid to the nearest point any sensor covers (the window's
rectangle in the sensor plane widened by half the sensor's size, for the averaging over its
area) less the grain's radius (centroid to farthest corner). Grains are skipped, weakest first,
while √P Σ B_g ≤ ``SKIP_SHIFT`` σ: together they move no unknown by more than SKIP_SHIFT of its
standard deviation.

The bound is rigorous and therefore conservative (the √P and the sum of maxima assume the worst
alignment): with seed 001's magnetizations (|M|V ~ 1e-13 to 1e-12 A m²) at 20 nT noise a grain
is skipped only some millimetres from a window, so it pays on scans much wider than a tile and
on weakly magnetized samples, not on the benchmark's few hundred micrometres.
"""

from __future__ import annotations

import numpy as np

MU0_OVER_4PI = 1e-7
SKIP_SHIFT = 0.01  # the largest move, in standard deviations, skipping may cause


def field_bounds(centroids: np.ndarray, radii: np.ndarray, moments: np.ndarray,
                 window: tuple[float, float, float, float], height: float,
                 sensor_size: tuple[float, float]) -> np.ndarray:
    """(N,) B_g in T: the largest |Bz| grains (centroids (N, 3), radii (N,), moments |M|V (N,)
    in A m²) can make at any sensor of the window (x0, x1, y0, y1); inf for a grain that may
    reach within a sensor's area."""
    x0, x1, y0, y1 = window
    px, py = 0.5 * sensor_size[0], 0.5 * sensor_size[1]
    dx = np.maximum(np.maximum(x0 - px - centroids[:, 0], centroids[:, 0] - x1 - px), 0.0)
    dy = np.maximum(np.maximum(y0 - py - centroids[:, 1], centroids[:, 1] - y1 - py), 0.0)
    d = np.sqrt(dx**2 + dy**2 + (height - centroids[:, 2]) ** 2) - radii
    with np.errstate(divide="ignore"):
        return np.where(d > 0, 2 * MU0_OVER_4PI * moments / np.maximum(d, 1e-300) ** 3, np.inf)


def shift_bound(bounds: np.ndarray, n_sensors: int, sigma: float) -> float:
    """The largest move, in standard deviations, of any unknown when grains with field bounds
    `bounds` (T) are left out of a window of `n_sensors` sensors at noise `sigma` (T)."""
    return float(np.sqrt(n_sensors) * np.sum(bounds) / sigma)


def skippable(bounds: np.ndarray, n_sensors: int, sigma: float,
              shift: float = SKIP_SHIFT) -> np.ndarray:
    """(N,) mask of the weakest grains whose total shift_bound stays within `shift`."""
    order = np.argsort(bounds, kind="stable")
    total = np.sqrt(n_sensors) * np.cumsum(bounds[order]) / sigma
    mask = np.zeros(bounds.size, dtype=bool)
    mask[order[total <= shift]] = True
    return mask
