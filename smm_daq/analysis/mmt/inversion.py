"""MMT least squares from normal equations accumulated over blocks of sensors.

Q is never held whole: for each block of sensors, its rows of Q are computed (in parallel,
`green.GreenModel.block`) and added into QᵀQ (BLAS syrk) and Qᵀφ. The system is equilibrated
(columns scaled to unit norm) and solved by Cholesky; when QᵀQ is singular to working precision
a warning is given and an eigen-decomposition pseudo-inverse is used, with the grains touching
its null space reported as unresolved (infinite standard deviations). Optional Tikhonov damping
adds λ·mean(diag QᵀQ) to the diagonal (covariance then by the sandwich formula).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg
from scipy.linalg import blas, lapack

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt import stats
from smm_daq.analysis.mmt.green import GreenModel
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6
DEFAULT_BLOCK = 2048  # sensors per block: 2048 × 3G doubles (48 MB for 1,000 grains)
KEEP_Q_BYTES = 256 * 2**20  # below this, Q's blocks are kept for the fitted map


class SingularWarning(UserWarning):
    """QᵀQ is singular: some grains cannot be resolved from this map."""


@dataclass
class MMTResult:
    """Per-grain results (SI) and the maps; arrays indexed by grain (order of `grains`)."""

    grains: GrainSet
    magnetization: np.ndarray  # (G, 3) A/m
    covariance: np.ndarray  # (G, 3, 3) (A/m)^2
    sigma: float  # T, noise SD used for the covariance
    sigma_from_residual: bool
    fitted: MapData
    residual: MapData
    condition_number: float  # of Q (2-norm), from the eigenvalues of QᵀQ
    n_sensors: int
    damping: float
    timings: dict[str, float] = field(default_factory=dict)
    height: float = 0.0

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.einsum("gii->gi", self.covariance))

    @property
    def moment(self) -> np.ndarray:
        """(G,) |M| V in A m²."""
        return np.linalg.norm(self.magnetization, axis=1) * self.grains.volumes()

    def table(self) -> dict[str, np.ndarray]:
        """Columns of the result CSV (issue 4's headers first)."""
        m, sd = self.magnetization, self.sd
        vol_um3 = self.grains.volumes() / UM**3
        centroid = self.grains.centroids()
        depth_um = -centroid[:, 2] / UM
        distance_um = (self.height - centroid[:, 2]) / UM
        dec, sd_dec, inc, sd_inc = stats.direction(m, self.covariance)
        return {
            "grain": self.grains.labels,
            "mx_A_per_m": m[:, 0], "my_A_per_m": m[:, 1], "mz_A_per_m": m[:, 2],
            "sd_mx_A_per_m": sd[:, 0], "sd_my_A_per_m": sd[:, 1], "sd_mz_A_per_m": sd[:, 2],
            "moment_Am2": self.moment,
            "volume_um3": vol_um3,
            "depth_um": depth_um,
            "ssr": stats.signal_strength_ratio(vol_um3, distance_um),
            "uncertainty_ratio_pct": stats.uncertainty_ratio_pct(m, self.covariance),
            "declination_deg": dec, "sd_declination_deg": sd_dec,
            "inclination_deg": inc, "sd_inclination_deg": sd_inc,
            "cov_xy_A2_per_m2": self.covariance[:, 0, 1],
            "cov_xz_A2_per_m2": self.covariance[:, 0, 2],
            "cov_yz_A2_per_m2": self.covariance[:, 1, 2],
            "x_um": centroid[:, 0] / UM, "y_um": centroid[:, 1] / UM,
            "z_um": centroid[:, 2] / UM,
        }


def sensor_positions(data: MapData, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Sensor centres (P, 3) of the finite pixels and their flat indices into Bz."""
    X, Y = np.meshgrid(data.x, data.y)
    keep = np.flatnonzero(np.isfinite(data.bz).ravel())
    pts = np.c_[X.ravel()[keep], Y.ravel()[keep], np.full(keep.size, height)]
    return pts, keep


def check_grains_below_sensor(grains: GrainSet, height: float) -> None:
    tops = grains.tops()
    bad = np.flatnonzero(tops >= height)
    if bad.size:
        g = bad[0]
        first = grains.start[g]
        line = f", line {grains.lines[first]}" if grains.lines.size else ""
        raise InputError(
            f"grain {grains.labels[g]} reaches z = {tops[g] / UM:.4g} µm, at or above the sensor "
            f"(height {height / UM:.4g} µm); expected every grain below the sensor",
            source=f"{grains.source or 'grain file'}{line}",
        )


def accumulate(model: GreenModel, sensors: np.ndarray, phi: np.ndarray, *,
               block: int = DEFAULT_BLOCK, keep_rows: bool = False
               ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
    """QᵀQ (upper triangle filled, Fortran order) and Qᵀφ over blocks of sensors; with
    `keep_rows`, also the blocks of Q themselves (for the fitted map without recomputing)."""
    n = model.n_columns
    ata = np.zeros((n, n), order="F")
    atb = np.zeros(n)
    kept: list[np.ndarray] | None = [] if keep_rows else None
    buf = None if keep_rows else np.empty((min(block, sensors.shape[0]), n))
    for s in range(0, sensors.shape[0], block):
        size = min(block, sensors.shape[0] - s)
        rows = model.block(sensors[s:s + size], None if buf is None else buf[:size])
        ata = blas.dsyrk(1.0, rows.T, beta=1.0, c=ata, trans=0, lower=0, overwrite_c=1)
        atb += rows.T @ phi[s:s + size]
        if kept is not None:
            kept.append(rows)
    return ata, atb, kept


def forward(model: GreenModel, sensors: np.ndarray, m: np.ndarray, *,
            block: int = DEFAULT_BLOCK, rows: list[np.ndarray] | None = None) -> np.ndarray:
    """Q M over blocks of sensors (the fitted field at the sensors); `rows` are the blocks of
    Q when `accumulate` kept them."""
    flat = m.reshape(-1)
    if rows is not None:
        return np.concatenate([r @ flat for r in rows]) if rows else np.zeros(0)
    out = np.empty(sensors.shape[0])
    buf = np.empty((min(block, sensors.shape[0]), model.n_columns))
    for s in range(0, sensors.shape[0], block):
        size = min(block, sensors.shape[0] - s)
        out[s:s + size] = model.block(sensors[s:s + size], buf[:size]) @ flat
    return out


def solve_normal(ata: np.ndarray, atb: np.ndarray, damping: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Solution x, its unscaled covariance (QᵀQ)⁻¹ (or the damped sandwich), the mask of
    unresolved columns, and cond(Q). `ata` holds the upper triangle."""
    n = atb.size
    full = np.triu(ata) + np.triu(ata, 1).T
    diag = np.diag(full).copy()
    zero = diag <= 0
    scale = np.where(zero, 1.0, 1.0 / np.sqrt(np.where(zero, 1.0, diag)))
    A = full * scale[:, None] * scale[None, :]
    b = atb * scale
    lam_damp = damping * (float(np.mean(diag[~zero])) if np.any(~zero) else 0.0)
    D = np.asarray(lam_damp * scale**2)
    Ad = A + np.diag(D) if damping > 0 else A
    eig = linalg.eigvalsh(full) if n else np.zeros(0)
    cond = math.sqrt(eig[-1] / eig[0]) if n and eig[0] > 0 else math.inf
    c, info = lapack.dpotrf(Ad, lower=0, clean=1, overwrite_a=0)
    unresolved = np.zeros(n, dtype=bool)
    if info == 0 and not np.any(zero):
        y = linalg.cho_solve((c, False), b)
        inv, _ = lapack.dpotri(c, lower=0)
        inv = np.triu(inv) + np.triu(inv, 1).T
        if damping > 0:
            inv = inv @ A @ inv
    else:
        w, v = linalg.eigh(Ad)
        # eigenvalues of the equilibrated matrix are known to about eps absolute: keep those
        # known to ~1 % (their variances are large but meaningful), drop the rest
        cut = w.max(initial=0.0) * 100 * np.finfo(float).eps
        good = w > cut
        null = v[:, ~good]
        unresolved = np.sum(null**2, axis=1) > 1e-6
        pinv = (v[:, good] / w[good]) @ v[:, good].T
        y = pinv @ b
        inv = pinv @ A @ pinv if damping > 0 else pinv
        warnings.warn(
            f"QᵀQ is singular ({int(np.sum(~good))} of {n} directions unresolved; cond(Q) = "
            f"{cond:.3g}); falling back to the pseudo-inverse: the magnetizations of "
            f"{int(np.sum(unresolved.reshape(-1, 3).any(axis=1)))} grain(s) are not determined "
            "by this map (their standard deviations are reported as infinite)",
            SingularWarning, stacklevel=3,
        )
    x = y * scale
    cov = inv * scale[:, None] * scale[None, :]
    return x, cov, unresolved, cond


def invert_map(
    data: MapData,
    grains: GrainSet,
    *,
    height: float,
    sensor_size: tuple[float, float],
    sigma: float | None = None,
    damping: float = 0.0,
    block: int = DEFAULT_BLOCK,
    exact: bool = False,
    progress: Callable[[str], None] | None = None,
) -> MMTResult:
    """Per-grain magnetizations with covariances from the Bz map `data` (T; NaN masked).

    height (m) is the sensor plane above the sample top; sensor_size (w, l) in m; sigma (T) the
    noise SD, else estimated from the residual; damping the relative Tikhonov parameter.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    check_grains_below_sensor(grains, height)
    sensors, keep = sensor_positions(data, height)
    n = 3 * grains.n_grains
    if sensors.shape[0] <= n:
        raise InputError(
            f"map '{data.name}' has {sensors.shape[0]} finite pixels for {grains.n_grains} grains;"
            f" expected more than {n} (3 per grain)"
        )
    phi = data.bz.ravel()[keep]
    lo = sensors[:, :2].min(axis=0)
    hi = sensors[:, :2].max(axis=0)
    model = GreenModel.build(grains, sensor_size, lo, hi, height, exact=exact)
    if progress:
        progress(f"normal equations: {sensors.shape[0]} sensors × {grains.n_grains} grains")
    keep_rows = sensors.shape[0] * n * 8 <= KEEP_Q_BYTES
    ata, atb, rows = accumulate(model, sensors, phi, block=block, keep_rows=keep_rows)
    timings["green_and_normal_equations_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    x, cov_unit, unresolved, cond = solve_normal(ata, atb, damping)
    timings["solve_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    fitted = forward(model, sensors, x, block=block, rows=rows)
    del rows
    timings["forward_s"] = time.perf_counter() - t2
    resid = phi - fitted
    dof = sensors.shape[0] - n
    from_residual = sigma is None
    if sigma is None:
        sigma = math.sqrt(float(resid @ resid) / dof)
    cov = sigma**2 * cov_unit
    G = grains.n_grains
    blocks = np.stack([cov[3 * g:3 * g + 3, 3 * g:3 * g + 3] for g in range(G)]) if G else \
        np.zeros((0, 3, 3))
    bad = unresolved.reshape(-1, 3).any(axis=1)
    blocks[bad] = np.inf
    fitted_map = np.full(data.bz.size, np.nan)
    fitted_map[keep] = fitted
    resid_map = np.full(data.bz.size, np.nan)
    resid_map[keep] = resid
    common = {"height": height, "sensor_size": tuple(sensor_size),
              "applied_field": data.applied_field, "sources": (data.name,)}
    timings["total_s"] = time.perf_counter() - t0
    return MMTResult(
        grains=grains,
        magnetization=x.reshape(-1, 3),
        covariance=blocks,
        sigma=float(sigma),
        sigma_from_residual=from_residual,
        fitted=MapData(bz=fitted_map.reshape(data.bz.shape), x=data.x, y=data.y,
                       name=f"{data.name}_mmt_fitted", title="MMT fitted Bz", **common),
        residual=MapData(bz=resid_map.reshape(data.bz.shape), x=data.x, y=data.y,
                         name=f"{data.name}_mmt_residual", title="MMT residual Bz", **common),
        condition_number=cond,
        n_sensors=int(sensors.shape[0]),
        damping=damping,
        timings=timings,
        height=height,
    )
