"""MMT least squares from a QR factorization accumulated over blocks of sensors.

Q is never held whole: for each block of sensors, its rows of Q are computed (in parallel,
`green.GreenModel.block`) and folded, with the data φ as one more column, into the triangular
factor R of [Q | φ] by Householder reflections (`qr_update`). Forming QᵀQ instead would
square cond(Q): thick, dense samples reach cond(Q) ~ 1e9 with columns scaled to unit norm
(300 × 300 × 75 µm at 1e5 grains/mm³), where the normal equations in double precision lose
the deep grains (half of them came out "unresolved", and grains they did solve moved by up to
2.8 SD) while R keeps them, with large but finite, correct uncertainties. R is solved in
columns scaled to unit norm; the covariance (QᵀQ)⁻¹ = R⁻¹R⁻ᵀ is formed only in its diagonal
blocks, one per grain (3 × 3 for a magnetization, k × k for k multipole coefficients). When
R is singular to working precision a warning is given and the SVD's pseudo-inverse is used,
with the grains touching its null space reported as unresolved (infinite standard deviations).
Optional Tikhonov damping adds λ·Σ_j c_j x_j² to the misfit, c_j the mean ‖Q[:, i]‖² over
the columns i of x_j's own multipole order (all of them for a magnetization; the dipole,
quadrupole and octupole columns apart, as their units differ); the covariance is then the
sandwich formula's, the spread of the damped estimate about its own (biased) mean.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg, sparse
from scipy.linalg import lapack

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.models.compiled import first_run_notice
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.models.sizes import cuboid_model_bytes
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver import lapack_nogil, memory, stats
from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.analysis.mmt.solver.qr_update import QRUpdate
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6
DEFAULT_BLOCK = 6144  # sensors per block: 6144 × 3G doubles (147 MB for 1,000 grains);
# chosen with dtpqrt (34.9 GFLOPS at 6144 rows against 33.7 at 4096 and 31.8 at 3072, 2 cores)
# R (columns scaled to unit norm) is singular to working precision when LAPACK's reciprocal
# condition estimate falls below machine epsilon (the convention of scipy.linalg.solve); the
# SVD then drops singular values below n·eps of the largest (that of numpy's matrix_rank)
SINGULAR_RCOND = float(np.finfo(float).eps)
KEEP_Q_BYTES = 256 * 2**20  # what the fitted map may keep of Q's blocks (`accumulate`)
# all of Q's rows are kept before their sparse near part only up to this many bytes
# (`_part_to_keep`): a larger Q's copies into fresh memory (page faults included) cost the
# streams more than the fitted map's far fields cost to compute again. On 2 cores loaded 6 to
# 8 deep, the medium sample of benchmarks/mmt_scale.py (194 MB of rows): the copies took the
# streams 206 CPU-ms, the near parts 24 and the far fields 97-121 (all threads); inversions
# interleaved, best / median of 7, rows against near part: 5.20 / 6.49 s of wall against
# 3.80 / 4.64, 2.24 / 2.64 CPU-s against 1.68 / 1.85; `smm-daq mmt invert` of
# benchmarks/mmt_cli.py's medium case (1 µm sensors) peaked at 473 MB against 289. Smaller
# samples at fractions of its side, best / median CPU-s of 7: 12 MB of rows 0.080 / 0.087
# against 0.087 / 0.096 (rows cheaper), 47 MB 0.436 / 0.486 against 0.385 / 0.440
KEEP_ROWS_BYTES = 32 * 2**20
Kept = np.ndarray | sparse.bsr_matrix | None  # what `accumulate` keeps of one block
Held = tuple[int, int, Kept]  # a block's first sensor, its sensors and what was kept of it
# called after each block of sensors with (sensors done, sensors in all), and within a block
# as its QR goes on; an exception it raises (a user's cancel) stops the inversion and
# propagates
BlockProgress = Callable[[int, int], None]
# told as the CPU's two streams' triangles are merged, once every block is folded
# (`streams.MergeProgress`: panels done, panels in all, share of the work done)
MergeProgress = qr_streams.MergeProgress


# the least squares from a triangle of at most this many unknowns runs at one BLAS thread
# (`solve_triangle`): its calls (R's condition, R⁻¹, the covariance blocks) are too short for
# OpenBLAS's second thread to pay for waking and waiting, as the streams' merge
# (`streams.NARROW_MERGE_COLUMNS`). 2 cores loaded 6 to 7 deep, median of 9 (best), ms of
# wall at one thread against two: 600 unknowns 22.6 (14.6) against 144 (38.7), 6.6 against
# 46 CPU-ms; 1,200 unknowns 95 (71) against 264 (139), 31 against 88 CPU-ms.
NARROW_SOLVE_COLUMNS = qr_streams.NARROW_MERGE_COLUMNS


class SingularWarning(UserWarning):
    """Q is singular to working precision: some grains cannot be resolved from this map."""


class FarGrainWarning(UserWarning):
    """Grains far outside the scanned area: the map barely constrains them."""


class DampedSigmaWarning(UserWarning):
    """The noise σ estimated from the residual of a damped fit: too large."""


def warn_damped_sigma(damping: float) -> None:
    """Warn where a damped fit's residual is to give the noise σ: the damping pulls the
    moments towards zero, leaving part of the grains' field in the residual, so σ (and every
    SD scaled by it) comes out too large, the more so the stronger the damping and the worse
    resolved the grains (docs/mmt-models.md)."""
    if damping > 0:
        warnings.warn(
            f"damping {damping:g} (--damping) with the noise σ estimated from the residual: "
            "the damped fit leaves part of the grains' field in the residual, so σ, and every "
            "SD with it, comes out too large; expected the noise σ given (--sigma-nT, e.g. "
            "the map's noise floor) wherever the fit is damped",
            DampedSigmaWarning, stacklevel=3)


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
    condition_number: float  # of Q in unit-norm columns, LAPACK's 1-norm estimate from R
    n_sensors: int
    damping: float
    timings: dict[str, float] = field(default_factory=dict)
    height: float = 0.0
    device: str = "cpu"  # where it was computed ("cpu" or "gpu")
    # the directions the fit resolved (`Solution.rank`), which the residual's degrees of
    # freedom n_sensors − rank count with; None where not known (tiles, a saved result)
    rank: int | None = None

    @property
    def sd(self) -> np.ndarray:
        return np.sqrt(np.einsum("gii->gi", self.covariance))

    @property
    def moment(self) -> np.ndarray:
        """(G,) |M| V in A m²."""
        return np.linalg.norm(self.magnetization, axis=1) * self.grains.volumes()

    def table(self) -> dict[str, np.ndarray]:
        """Columns of the result CSV (its first headers unchanged since the first version)."""
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
            "ssr_per_um": stats.signal_strength_ratio(vol_um3, distance_um),
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


def scan_corners(sensors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) corners lo, hi of the sensor centres (P, 3+): each a reduction of one
    column (over the (P, 2) view at once NumPy took 2.7 to 11 ms at 40,401 sensors, against
    0.1)."""
    lo = np.array([sensors[:, 0].min(), sensors[:, 1].min()])
    hi = np.array([sensors[:, 0].max(), sensors[:, 1].max()])
    return lo, hi


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


def check_cuboid_grains(grains: GrainSet | Any) -> None:
    """Refuse point grains (centroids and volumes) for the cuboid model."""
    if not isinstance(grains, GrainSet):
        raise InputError("the cuboid model needs cuboid grains, and these grains are points "
                         f"({getattr(grains, 'source', '') or 'centroids and volumes'}); "
                         "expected the model dipole, quadrupole or octupole")


def warn_far_grains(grains: GrainSet | Any, lo: np.ndarray, hi: np.ndarray) -> None:
    """Warn of grains whose centroid lies farther from the scanned rectangle (sensor centres
    lo..hi, in the sample's top plane) than the rectangle's larger side. Their fields barely
    reach the sensors, so their magnetizations come out huge and meaningless; the cause is
    usually positions in the wrong unit (µm read as m) or grains outside the scanned area."""
    c = grains.centroids()
    lateral = np.hypot(*np.maximum(np.maximum(lo - c[:, :2], c[:, :2] - hi), 0.0).T)
    distance = np.hypot(lateral, c[:, 2])
    reach = max(float(np.max(hi - lo)), 0.0)
    far = np.flatnonzero(distance > reach)
    if far.size:
        g = far[np.argmax(distance[far])]
        where = (f"{lateral[g] / UM:.4g} µm outside it" if lateral[g] > 0
                 else "under it") + f", {-c[g, 2] / UM:.4g} µm deep"
        warnings.warn(
            f"{far.size} of {grains.n_grains} grains lie farther from the scanned area than "
            f"its size ({reach / UM:.4g} µm), e.g. grain {grains.labels[g]} at "
            f"({c[g, 0] / UM:.4g}, {c[g, 1] / UM:.4g}, {c[g, 2] / UM:.4g}) µm, {where}: the "
            "map barely constrains them (positions in µm read as metres? grains outside the "
            "scan? a scan too small for their depth?)",
            FarGrainWarning, stacklevel=3)


@dataclass
class Triangle:
    """The R factor of the augmented matrix [Q | φ] accumulated over blocks of sensors: Q = U R
    for some U with orthonormal columns (never formed), and c = Uᵀφ."""

    r: np.ndarray  # (n, n) upper triangular, Fortran order
    c: np.ndarray  # (n,)

    @property
    def column_norms(self) -> np.ndarray:
        """‖Q[:, j]‖, the same as ‖R[:, j]‖ since U has orthonormal columns."""
        return np.sqrt(np.einsum("ij,ij->j", self.r, self.r))


# what the inversion says once Q is folded: the solve and the fitted map that follow take
# minutes at the lab's size, with no progress of their own to show
SOLVING = "solving for the magnetizations and their covariance, then the fitted map"


def accumulate(model: GreenModel | Any, sensors: np.ndarray, phi: np.ndarray, *,
               block: int = DEFAULT_BLOCK, keep_bytes: float = 0,
               on_block: BlockProgress | None = None,
               on_merge: MergeProgress | None = None,
               streams: int | None = None) -> tuple[Triangle, list[Held] | None]:
    """R of [Q | φ] by Householder QR updated one block of sensors at a time (`QRUpdate`:
    the triangle so far stacked on the block's rows), in `streams` (`streams.fold`, blocks
    as `streams.plan` makes them; None: as many as this machine has the cores and memory
    for); with `keep_bytes`, also each block's span of sensors and what the fitted map needs
    of it without its cost, while their total stays within that many bytes (each stream's
    share in proportion to its sensors): the rows themselves when all of Q fits, the
    model's `keep_rows` and either all of Q fits KEEP_ROWS_BYTES or the model has no near
    part smaller than the rows, else for cuboid grains the sparse near part of its rows
    (`GreenModel.near_part`; a part of Q's rows would save only its share of a cheap
    recomputation); None for a block not kept (`forward` computes it again). `on_block` is
    told of the sensors folded in, after each block and within a block after each panel of
    its QR; `on_merge` of the streams' merge, if any, as it goes (without it, `on_block` is
    told all the sensors again after each of its panels: a chance to cancel)."""
    n = model.n_columns
    total = sensors.shape[0]
    if streams is None:
        streams = qr_streams.stream_count(n + 1, total, block,
                                          kept=min(keep_bytes, total * n * 8))
    starts, sizes, owners = qr_streams.plan(total, block, streams)
    kept: list[Kept] = [None] * len(starts)
    whole = total * n * 8 <= keep_bytes  # all of Q's rows fit
    rows_first = total * n * 8 <= KEEP_ROWS_BYTES  # kept before a smaller near part
    budget = [keep_bytes * sum(size for size, owner in zip(sizes, owners, strict=True)
                               if owner == i) / total for i in range(streams)]

    def fill(stream: int, b: int, rows: np.ndarray) -> None:
        s, size = starts[b], sizes[b]
        model.block(sensors[s:s + size], rows[:, :n])
        rows[:, n] = phi[s:s + size]
        if keep_bytes > 0:
            part = _part_to_keep(model, sensors[s:s + size], rows[:, :n], budget[stream], whole,
                                 rows_first)
            budget[stream] -= _nbytes(part)
            kept[b] = part

    report = None if on_block is None else lambda done: on_block(done, total)
    if on_merge is None and on_block is not None:
        on_merge = _all_folded(on_block, total)
    tri = qr_streams.fold(n + 1, sizes, owners, fill, report, on_merge)
    tri *= np.where(np.diag(tri) < 0, -1.0, 1.0)[:, None]  # R with a diagonal ≥ 0: unique
    held = list(zip(starts, sizes, kept, strict=True)) if keep_bytes > 0 else None
    return Triangle(np.asfortranarray(tri[:n, :n]), tri[:n, n].copy()), held


def _all_folded(on_block: BlockProgress, total: int) -> MergeProgress:
    """The merge's progress told to `on_block` as all `total` sensors folded after each of its
    panels but the last: a chance to cancel, for a caller that shows no merge (its start and
    end, told as the last block ends and just before the solve, would tell it nothing)."""

    def told(done: int, panels: int, share: float) -> None:
        if 0 < done < panels:
            on_block(total, total)

    return told


def _part_to_keep(model: GreenModel | Any, sensors: np.ndarray, rows: np.ndarray,
                  budget: float, whole: bool, rows_first: bool) -> Kept:
    """The rows when all of Q fits (`whole`), the model's rows cost more to compute again than
    to copy (`keep_rows`: not so for point sources) and either they come first (`rows_first`:
    all of Q within KEEP_ROWS_BYTES, the fitted map then one product with them) or the model
    has no near part smaller than them (cuboid grains, `exact`); else the sparse near part
    where the model has one (cuboid grains), the far fields then computed again; None beyond
    the budget."""
    keep = model.keep_rows and whole and rows.nbytes <= budget
    near_part = getattr(model, "near_part", None)
    if near_part is not None and not (keep and rows_first):
        part = near_part(sensors, rows, min(budget, rows.nbytes))
        if part is not None:
            return part
    return np.array(rows, order="F") if keep else None


def _nbytes(part: Kept) -> int:
    if part is None:
        return 0
    if isinstance(part, np.ndarray):
        return part.nbytes
    return part.data.nbytes + part.indices.nbytes + part.indptr.nbytes


def forward(model: GreenModel | Any, sensors: np.ndarray, m: np.ndarray, *,
            block: int = DEFAULT_BLOCK, rows: list[Held] | None = None) -> np.ndarray:
    """Q M over blocks of sensors (the fitted field at the sensors); `rows` what `accumulate`
    kept of each of its blocks (the block, its sparse near part, or None: the model's
    `field`), else blocks of `block` sensors computed here."""
    flat = m.reshape(-1)
    out = np.empty(sensors.shape[0])
    spans = rows if rows is not None else [
        (s, min(block, sensors.shape[0] - s), None) for s in range(0, sensors.shape[0], block)]
    for s, end in _near_runs(spans):  # the far fields where the near parts were kept
        out[s:end] = model.far_field(sensors[s:end], flat)
    for s, size, kept in spans:
        if isinstance(kept, np.ndarray):
            out[s:s + size] = kept @ flat
        elif kept is not None:  # the near part kept: its far fields computed above
            out[s:s + size] += kept @ flat
        else:
            out[s:s + size] = model.field(sensors[s:s + size], flat)
    return out


def _near_runs(spans: list[Held]) -> list[tuple[int, int]]:
    """(first sensor, end) of each run of consecutive blocks whose near part was kept: their
    far fields (each sensor's own sum over the grains, whatever block it is in) computed in
    one call a run, not one a block. A call a block (14 at the medium sample of
    benchmarks/mmt_scale.py) started each of its kernels' threads anew, and their tiles,
    uneven in work, left one thread waiting at the end of each: 110 against 97 CPU-ms
    (median of 15, 2 cores loaded 6 deep), the same doubles."""
    runs: list[tuple[int, int]] = []
    for s, size, kept in spans:
        if kept is None or isinstance(kept, np.ndarray):
            continue
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], s + size)
        else:
            runs.append((s, s + size))
    return runs


@dataclass
class Solution:
    """x (n,), the 3 × 3 diagonal blocks of its unit-noise covariance (G, 3, 3), the mask of
    unresolved columns, cond(Q), and the directions the fit resolved: n, or the rank the
    pseudo-inverse kept, which the residual's degrees of freedom N − rank are counted with.
    `pseudo_inverse`: W = S V Σ⁺ (n × n, S the column scaling, U Σ Vᵀ the SVD of the scaled
    R, Σ⁺ 0 in the unresolved directions), so that the covariance is W Wᵀ and R's
    pseudo-inverse (in the scaled columns) W Uᵀ, where the solve took the pseudo-inverse and
    was asked to keep it (`solve_triangle`); else None."""

    x: np.ndarray
    covariance_blocks: np.ndarray
    unresolved: np.ndarray
    condition_number: float
    rank: int
    pseudo_inverse: np.ndarray | None = None


def _grain_blocks(w: np.ndarray, per_grain: int = 3) -> np.ndarray:
    """Diagonal k × k blocks of W Wᵀ for W (n, m), n = kG, k = per_grain, from views of W
    (no copy of it)."""
    if w.flags.c_contiguous:
        rows = w.reshape(-1, per_grain, w.shape[1])
        return np.einsum("gik,gjk->gij", rows, rows)
    # Fortran order (R⁻¹ as LAPACK leaves it): one row of each block against the rows after
    # it at a time, summed along W's columns; a single einsum over the 3-d view chose a loop
    # order 4 to 18 times slower (8.2 against 1.4 ms at 600 columns, 214 against 87 ms at
    # 3,000)
    cols = np.asfortranarray(w).T.reshape(w.shape[1], -1, per_grain)
    out = np.empty((cols.shape[1], per_grain, per_grain))
    for i in range(per_grain):
        products = np.einsum("kg,kgj->gj", cols[:, :, i], cols[:, :, i:])
        out[:, i, i:] = products
        out[:, i:, i] = products
    return out


def solve_triangle(tri: Triangle, damping: float = 0.0, per_grain: int = 3, *,
                   keep_pseudo_inverse: bool = False) -> Solution:
    """Least squares from the accumulated triangle, in columns scaled to unit norm.

    cond(Q) is that of Q with its columns scaled to unit norm (LAPACK's 1-norm estimate from
    the scaled R), so that unknowns of different units (a multipole's A/m, A m³, A m⁴) do not
    make it meaningless. When the scaled R is singular to working
    precision a SingularWarning is given and its SVD yields the pseudo-inverse solution, the
    grains touching the null space reported as unresolved. Damping λ adds λ Σ c_j x_j² to
    the misfit, c = `order_weights` (the mean ‖Q[:, j]‖² of each multipole order); the
    covariance is then the sandwich (QᵀQ + Λ)⁻¹ QᵀQ (QᵀQ + Λ)⁻¹, Λ = λ diag(c). per_grain:
    unknowns per grain (3 for a magnetization, 8 or 15 for multipoles), the size of the
    covariance blocks. keep_pseudo_inverse: where the SVD was taken, return its W
    (`Solution.pseudo_inverse`, n² more held) for a caller that needs more of it than the
    covariance blocks (the hat matrix's traces of a joint fit), rather than a second SVD.
    Up to NARROW_SOLVE_COLUMNS unknowns it runs at one BLAS thread.
    """
    if tri.c.size > NARROW_SOLVE_COLUMNS:
        return _solve_triangle(tri, damping, per_grain, keep_pseudo_inverse)
    with qr_streams.blas_limited(1):
        return _solve_triangle(tri, damping, per_grain, keep_pseudo_inverse)


def _solve_triangle(tri: Triangle, damping: float, per_grain: int,
                    keep_pseudo_inverse: bool) -> Solution:
    """`solve_triangle` at the BLAS threads in force."""
    n = tri.c.size
    norms = tri.column_norms
    zero = norms == 0
    scale = np.where(zero, 1.0, 1.0 / np.where(zero, 1.0, norms))
    rs = np.asfortranarray(tri.r * scale[None, :])
    unresolved = np.zeros(n, dtype=bool)
    rcond = _rcond(rs) if n else 1.0
    cond = condition_number(rcond)
    rank = n
    pseudo = False  # whether W is the pseudo-inverse's (the SVD taken)
    if damping > 0:
        stacked = np.zeros((n, n + 1), order="F")
        stacked[np.arange(n), np.arange(n)] = np.sqrt(damping * order_weights(norms, per_grain)) \
            * scale
        aug = np.zeros((n + 1, n + 1), order="F")
        aug[:n, :n] = rs
        aug[:n, n] = tri.c
        QRUpdate(n + 1, n, r=aug).add(stacked)  # the damping's rows folded into aug
        rd = np.asfortranarray(aug[:n, :n])
        y = linalg.solve_triangular(rd, aug[:n, n])
        rd_inv = _triangular_inverse(rd)
        w = rd_inv @ (rs @ rd_inv).T  # covariance W Wᵀ = Rd⁻¹ Rd⁻ᵀ RᵀR Rd⁻¹ Rd⁻ᵀ
    elif rcond > SINGULAR_RCOND and not np.any(zero):
        y = linalg.solve_triangular(rs, tri.c)
        w = _triangular_inverse(rs, overwrite=True)
    else:
        u, sv, vt = singular_svd(rs)
        pseudo = True
        del rs  # overwritten by the SVD
        good = resolved_directions(sv)
        rank = int(np.count_nonzero(good))
        unresolved = np.sum(vt[~good] ** 2, axis=0) > 1e-6
        # W = V Σ⁺ in vt's own memory (n² each at the lab's 12,900 columns)
        vt *= np.divide(1.0, sv, out=np.zeros_like(sv), where=good)[:, None]
        w = vt.T
        y = w @ (u.T @ tri.c)
        del u
        warnings.warn(
            f"Q is singular to working precision ({int(np.sum(~good))} of {n} directions "
            f"unresolved); falling back to the pseudo-inverse: the unknowns of "
            f"{int(np.sum(unresolved.reshape(-1, per_grain).any(axis=1)))} grain(s) are not "
            "determined by this map (their standard deviations are reported as infinite)",
            SingularWarning, stacklevel=4,  # the caller of solve_triangle's caller
        )
    w *= scale[:, None]  # in place: W is n × n (1.3 GB at 12,900 columns)
    blocks = _grain_blocks(w, per_grain)
    return Solution(y * scale, blocks, unresolved, cond, rank,
                    w if keep_pseudo_inverse and pseudo else None)


ORDER_STARTS = (0, 3, 8, 15)  # a grain's dipole, quadrupole and octupole unknowns


def order_weights(norms: np.ndarray, per_grain: int) -> np.ndarray:
    """For each unknown, the mean ‖Q[:, i]‖² over the columns i of its own multipole order.

    One mean over every column would mix units (a dipole's column is in T per A/m, a
    quadrupole's in T per A m³, some 10²³ times larger at µm scales), and damping relative to
    it would crush the dipoles to zero with zero SDs at any damping; within one order the
    weight is the usual one, the same for every grain (a magnetization's is unchanged).
    """
    out = np.zeros(norms.size)
    position = np.arange(norms.size) % per_grain
    for lo, hi in itertools.pairwise(ORDER_STARTS):
        order = (position >= lo) & (position < hi)
        live = order & (norms > 0)
        if np.any(live):
            out[order] = float(np.mean(norms[live] ** 2))
    return out


def resolved_directions(sv: np.ndarray) -> np.ndarray:
    """Which singular values `sv` of a singular scaled R (n × n) the pseudo-inverse keeps:
    those above n ε times the largest; the others' directions are unresolved."""
    return sv > sv.max(initial=0.0) * sv.size * SINGULAR_RCOND


def singular_svd(rs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The SVD of a singular R (overwritten), by LAPACK's dgesdd where its workspace fits in
    the memory available, else by dgesvd, slower but with next to none; InputError when not
    even U and Vᵀ fit (the damped solve needs no SVD)."""
    n = rs.shape[0]
    have = memory.available_bytes()
    driver = "gesdd"
    if have is not None and have < memory.svd_bytes(n, driver):
        driver = "gesvd"
        if have < memory.svd_bytes(n, driver):
            raise InputError(
                f"the least-squares factor of {n} unknowns is singular to working precision, "
                f"and its SVD (the pseudo-inverse that leaves the unresolved grains out) "
                f"needs {memory.svd_bytes(n, driver) / 2**30:.1f} GiB more memory than the "
                f"{have / 2**30:.1f} GiB available; expected more memory, a damping "
                "(--damping, which needs no SVD), or fewer grains (only those the map "
                "resolves)")
    return linalg.svd(rs, overwrite_a=True, check_finite=False, lapack_driver=driver)


def _triangular_inverse(r: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """R⁻¹ (its lower triangle R's), computed with the GIL released: minutes at 12,900
    columns, which another thread (the window's) waited out whole."""
    inv = r if overwrite and r.flags.f_contiguous else np.array(r, order="F")
    info = lapack_nogil.dtrtri_upper(inv)
    if info != 0:
        raise np.linalg.LinAlgError(f"triangular factor is singular at column {info}")
    return inv


def _rcond(r: np.ndarray) -> float:
    """Reciprocal 1-norm condition number estimate of an upper-triangular matrix."""
    rc, info = lapack.dtrcon(r, norm="1", uplo="U", diag="N")
    return float(rc) if info == 0 else 0.0


def condition_number(rcond: float) -> float:
    """The condition number from LAPACK's reciprocal estimate (infinite for a singular R)."""
    return 1.0 / rcond if rcond > 0 else math.inf


def build_model(grains: GrainSet, sensor_size: tuple[float, float], scan_lo: np.ndarray,
                scan_hi: np.ndarray, height: float, *, exact: bool = False) -> GreenModel:
    """`GreenModel.build` at one BLAS thread. Its products are tiny (each grain's moments
    times an order's map): at two threads OpenBLAS woke its second thread for each, which
    then spun on a core the caller's next step needed (2 cores, 3.5 to 5 deep in other work,
    best of 15: the 100 × 100 × 30 µm sample's build 20.4 ms against 3.4, 4.3 CPU-ms against
    3.4; the 200 × 200 × 50 µm one 86 against 38 ms, 33 CPU-ms against 17); the same
    doubles."""
    with qr_streams.blas_limited(1):
        return GreenModel.build(grains, sensor_size, scan_lo, scan_hi, height, exact=exact)


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
    device: str = "auto",
    on_block: BlockProgress | None = None,
    on_merge: MergeProgress | None = None,
    streams: int | None = None,
) -> MMTResult:
    """Per-grain magnetizations with covariances from the Bz map `data` (T; NaN masked).

    height (m) is the sensor plane above the sample top; sensor_size (w, l) in m; sigma (T) the
    noise SD, else estimated from the residual; damping the relative Tikhonov parameter;
    device "cpu", "gpu" or "auto" (the GPU when one is usable, `device`); block is the CPU's
    sensors per block (the GPU sizes its own); `on_block` is told of each block of sensors
    folded into the QR (the inversion's progress; an exception it raises stops it), and
    `on_merge` of the merge of the CPU's streams that follows (`accumulate`); `streams` the
    CPU's (None: as many as the machine's cores and memory allow).
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    # accumulate / solve_triangle / forward: this module's on the CPU, else the GPU's
    check_cuboid_grains(grains)
    used = devices.resolve(device)
    check_grains_below_sensor(grains, height)
    sensors, keep = sensor_positions(data, height)
    n = 3 * grains.n_grains
    if sensors.shape[0] <= n:
        raise InputError(
            f"map '{data.name}' has {sensors.shape[0]} finite pixels for {grains.n_grains} grains;"
            f" expected more than {n} (3 per grain)"
        )
    if used == "gpu":  # its memory asked before the model is built (device_qr imports this)
        from smm_daq.analysis.mmt.solver.device_qr import device_bytes

        arrays = cuboid_model_bytes(grains.n_grains, grains.cuboids.shape[0],
                                    area=sensor_size[0] > 0, exact=exact)
        used = devices.fit_device(used, device, n, device_bytes(n, sensors.shape[0], arrays),
                                  f"{grains.n_grains} grains × 3")
    ops = sys.modules[__name__] if used == "cpu" else devices.gpu_solver()
    notice = first_run_notice("cuboid") if progress and used == "cpu" else None
    if notice:
        progress(notice)
    if used == "cpu":
        memory.check_solve_fits(n, min(block, sensors.shape[0]), f"{grains.n_grains} grains × 3",
                                damping=damping > 0)
    if sigma is None:
        warn_damped_sigma(damping)
    phi = data.bz.ravel()[keep]
    lo, hi = scan_corners(sensors)
    warn_far_grains(grains, lo, hi)
    model = build_model(grains, sensor_size, lo, hi, height, exact=exact)
    if progress:
        progress(f"QR of the Green's matrix: {sensors.shape[0]} sensors × {grains.n_grains} grains")
    tri, rows = ops.accumulate(model, sensors, phi, block=block, keep_bytes=KEEP_Q_BYTES,
                               on_block=on_block, on_merge=on_merge, streams=streams)
    timings["green_and_qr_s"] = time.perf_counter() - t0
    if progress:
        progress(SOLVING)
    t1 = time.perf_counter()
    sol = ops.solve_triangle(tri, damping)
    del tri
    timings["solve_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    x = sol.x
    fitted = ops.forward(model, sensors, x, block=block, rows=rows)
    del rows
    timings["forward_s"] = time.perf_counter() - t2
    resid = phi - fitted
    dof = sensors.shape[0] - sol.rank  # the residual's: a pseudo-inverse fits only its rank
    from_residual = sigma is None
    if sigma is None:
        sigma = math.sqrt(float(resid @ resid) / dof)
    blocks = sigma**2 * sol.covariance_blocks
    unresolved, cond = sol.unresolved, sol.condition_number
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
        device=used,
        rank=sol.rank,
    )
