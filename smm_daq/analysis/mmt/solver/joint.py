"""MMT from one or several scans of the same grains, with any grain model, in one least-squares
system built the same streamed way as `inversion` (blocks of sensors folded into the R factor
of [Q | φ]).

Scans may differ in height, sensor (point, area, volume) and noise; each has its own σ and
mask of bad pixels. Scan s's rows of Q and φ are weighted by 1/σ_s, so the solution is the
maximum-likelihood one for independent Gaussian noise and (QᵀWQ)⁻¹ is its covariance. A σ
not given is estimated from that scan's residual after a first fit with every given σ used
and the unknown ones set to 1 (one scan: exactly the unweighted fit of `invert_map`); with
several scans the system is then solved again with the estimates, and again with each pass's
new estimates until none moves by more than SIGMA_RTOL (an unweighted first fit of a scan
with 1 nT of noise beside one with 300 nT gave the quiet scan's σ 15 times too large, and a
second pass still twice). The σ reported are those the last solve, and so the covariance, was
weighted by. The degrees of freedom of scan s are N_s − h_s, h_s the trace of its block of the
hat matrix (`_settle_sigmas`); one scan's are N − n.

Unknowns per grain: the magnetization (A/m) for cuboid grains; for point sources the
magnetization of the dipole, then the quadrupole and octupole coefficients of
`models.multipole`. Each grain's full k × k covariance is kept.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import linalg, sparse

from smm_daq.analysis.grains import GeometryWarning, GrainSet
from smm_daq.analysis.mmt.models.compiled import first_run_notice
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.models.multipole import (
    MODELS,
    MultipoleModel,
    PointGrains,
    Sensor,
    check_below_sensor,
    coefficient_column,
    point_grains,
)
from smm_daq.analysis.mmt.models.sizes import cuboid_model_bytes, multipole_model_bytes
from smm_daq.analysis.mmt.scan_names import check_each_scan_once
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver import higher_order, inversion
from smm_daq.analysis.mmt.solver.device_qr import DeviceTriangle, device_bytes
from smm_daq.analysis.mmt.solver.inversion import (
    DEFAULT_BLOCK,
    KEEP_Q_BYTES,
    SOLVING,
    BlockProgress,
    MergeProgress,
    MMTResult,
    build_model,
    check_cuboid_grains,
    check_grains_below_sensor,
    scan_corners,
    warn_far_grains,
)
from smm_daq.analysis.mmt.solver.memory import check_solve_fits
from smm_daq.analysis.mmt.solver.qr_update import QRUpdate
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.thread_warnings import recorded

UM = 1e-6
GRAIN_MODELS = ("cuboid", *MODELS)
SIGMA_RTOL = 1e-3  # the σ estimated from the residuals are iterated until they move less:
# 5 % stopped a pass short, the σ reported 1 % to 2 % from where they settle (passes after the
# first are cheap, `_settle_sigmas`, and 0.1 % takes one more at most)
MAX_PASSES = 8  # solves of a joint inversion of unknown σ, at most


class UnsettledSigmaWarning(UserWarning):
    """The noise σ estimated from a scan's residuals still moved after MAX_PASSES solves: the
    σ reported, and every SD scaled by it, are those of the last pass."""


@dataclass(frozen=True)
class Scan:
    """One scan of the grains: Bz (T; NaN not measured), the sensor plane's height above the
    sample top (m), the sensor's full size (w, l) or (w, l, thickness) in m, the noise SD σ (T;
    None: from the residual) and a mask of bad pixels (True = excluded) of the map's shape."""

    data: MapData
    height: float
    sensor_size: tuple[float, ...] = (0.0, 0.0)
    sigma: float | None = None
    mask: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.data.name

    def usable(self) -> np.ndarray:
        """Flat indices of the pixels used: finite and not masked."""
        ok = np.isfinite(self.data.bz)
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool)
            if mask.shape != ok.shape:
                raise InputError(f"the mask of scan '{self.name}' has shape {mask.shape}; "
                                 f"expected the map's {ok.shape}")
            ok &= ~mask
        return np.flatnonzero(ok.ravel())


@dataclass
class MultipoleResult(MMTResult):
    """An MMTResult with the grain model's full coefficients and covariances, and the scans.

    `magnetization`/`covariance` are the dipole part (the first three unknowns), so today's
    columns mean the same for every model; `fits` holds (fitted, residual) for every scan,
    `fitted`/`residual` those of the first; `sensors` every scan's sensor as `Scan` has it,
    a volume sensor's thickness included (the maps keep only its area); `height` is the
    lowest scan's (the SSR's), `sigma` the first scan's σ and `sigmas` every scan's."""

    model: str = "cuboid"
    coefficients: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    coefficient_covariance: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    scans: tuple[str, ...] = ()
    sigmas: tuple[float, ...] = ()
    fits: list[tuple[MapData, MapData]] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)
    sensors: list[tuple[float, ...]] = field(default_factory=list)

    def higher_orders(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(χ², p-value, resolved) of each grain's higher orders; None for 3 unknowns. One
        scan's σ estimated from its residual: p from F with the residual's degrees of
        freedom (`higher_order`)."""
        if self.coefficients.shape[1] <= 3:
            return None
        own = (self.sigma_from_residual and len(self.sigmas) <= 1 and self.rank is not None
               and self.damping == 0)
        return higher_order.higher_order_test(
            self.coefficients, self.coefficient_covariance,
            residual_dof=self.n_sensors - self.rank if own else None)

    def table(self) -> dict[str, np.ndarray]:
        """Today's columns, then the higher-order coefficients, their SDs and the test."""
        out = super().table()
        k = self.coefficients.shape[1]
        if k <= 3:
            return out
        sd = np.sqrt(np.einsum("gii->gi", self.coefficient_covariance))
        for j in range(3, k):
            out[coefficient_column(j)] = self.coefficients[:, j]
            out[f"sd_{coefficient_column(j)}"] = sd[:, j]
        chi2, p, resolved = self.higher_orders()  # type: ignore[misc]
        out["higher_order_chi2"] = chi2
        out["higher_order_p"] = p
        out["higher_order_resolved"] = resolved.astype(float)
        return out


class StackedModel:
    """All scans' sensors as one list (x, y, z, scan index) with rows weighted by 1/σ_s (the
    device solver's kernels stack the same way: `arrays`)."""

    def __init__(self, models: list, weights: np.ndarray, n_columns: int) -> None:
        self.models = models
        self.weights = weights
        self.n_columns = n_columns
        self.grains = models[0].grains
        self.keep_rows = all(m.keep_rows for m in models)
        self._cuboids = all(isinstance(m, GreenModel) for m in models)

    def _scans(self, sensors: np.ndarray) -> Iterator[tuple[int, int, int]]:
        """(scan, first, end) of each run of one scan's sensors in `sensors`."""
        index = sensors[:, 3].astype(np.int64)
        cuts = np.flatnonzero(np.diff(index)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, index.size], strict=True):
            yield int(index[lo]), int(lo), int(hi)

    def block(self, sensors: np.ndarray, out: np.ndarray) -> np.ndarray:
        for s, lo, hi in self._scans(sensors):
            rows = out[lo:hi]
            self.models[s].block(np.ascontiguousarray(sensors[lo:hi, :3]), rows)
            rows *= self.weights[s]
        return out

    def field(self, sensors: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Weighted Q·m of each scan's sensors (each model's `field`)."""
        out = np.empty(sensors.shape[0])
        for s, lo, hi in self._scans(sensors):
            out[lo:hi] = self.weights[s] * self.models[s].field(sensors[lo:hi, :3], m)
        return out

    def far_field(self, sensors: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Weighted `GreenModel.far_field` of each scan's sensors (cuboid grains)."""
        out = np.empty(sensors.shape[0])
        for s, lo, hi in self._scans(sensors):
            out[lo:hi] = self.weights[s] * self.models[s].far_field(sensors[lo:hi, :3], m)
        return out

    def near_part(self, sensors: np.ndarray, rows: np.ndarray, max_bytes: float = math.inf
                  ) -> sparse.bsr_matrix | None:
        """Each scan's `GreenModel.near_part` of these weighted rows, joined into one BSR
        matrix of 1 × 3 blocks (what the fitted map keeps, `accumulate`); None beyond
        `max_bytes`, or for point-source grains."""
        if not self._cuboids:
            return None
        parts = []
        for s, lo, hi in self._scans(sensors):
            part = self.models[s].near_part(np.ascontiguousarray(sensors[lo:hi, :3]),
                                            rows[lo:hi], max_bytes)
            if part is None:
                return None
            max_bytes -= part.data.nbytes + part.indices.nbytes + part.indptr.nbytes
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [p.indices.size for p in parts[:-1]])
        indptr = np.concatenate([parts[0].indptr[:1]]
                                + [p.indptr[1:] + o for p, o in zip(parts, offsets, strict=True)])
        return sparse.bsr_matrix((np.concatenate([p.data for p in parts]),
                                  np.concatenate([p.indices for p in parts]), indptr),
                                 shape=(sensors.shape[0], self.n_columns))


def _model(grains: GrainSet | PointGrains, scan: Scan, model: str, sensors: np.ndarray,
           exact: bool) -> GreenModel | MultipoleModel:
    if model == "cuboid":
        assert isinstance(grains, GrainSet)  # point grains refused by `invert_scans`
        if len(scan.sensor_size) > 2 and scan.sensor_size[2] > 0:
            raise InputError(f"entry '{scan.name}' was measured by a sensor "
                             f"{scan.sensor_size[2] / UM:g} µm thick, and the cuboid model has "
                             "point and area sensors only; expected the model dipole, "
                             "quadrupole or octupole")
        check_grains_below_sensor(grains, scan.height)
        lo, hi = scan_corners(sensors)
        return build_model(grains, tuple(scan.sensor_size[:2]), lo, hi, scan.height,
                           exact=exact)
    points = grains if isinstance(grains, PointGrains) else as_points(grains)
    sensor = Sensor.from_size(tuple(scan.sensor_size))
    check_below_sensor(points, scan.height, sensor)
    return MultipoleModel.build(points, sensor, model)


def as_points(grains: GrainSet) -> PointGrains:
    """Cuboid grains as point sources at their centroids (for multipole models)."""
    return point_grains(grains.centroids(), grains.volumes(), grains.labels,
                        source=grains.source)


def warn_points_above_top(grains: PointGrains) -> None:
    """Point grains whose centroid lies above the sample top (z > 0) are inverted as given,
    and warned of: positions written with z as depth (the cuboid library's convention)
    read so, placing every grain nearer the sensor than it is and its fitted M wrong,
    with nothing else to say so (cuboid grains above the top are refused when read)."""
    z = grains.positions[:, 2]
    above = np.flatnonzero(z > 0)
    if above.size:
        g = int(above[np.argmax(z[above])])
        line = f", line {int(grains.lines[g])}" if grains.lines.size and grains.lines[g] else ""
        warnings.warn(
            f"{grains.source or 'grain list'}: {above.size} of {z.size} grains lie above the "
            f"sample top (z > 0), e.g. grain {grains.labels[g]}{line} at z = {z[g] / UM:.4g} "
            "µm; expected z up "
            "with the sample top at 0 and grains below it (depths written as positive z?): "
            "inverted as given", GeometryWarning, stacklevel=3)


def invert_scans(
    scans: list[Scan],
    grains: GrainSet | PointGrains,
    *,
    model: str = "dipole",
    damping: float = 0.0,
    block: int = DEFAULT_BLOCK,
    exact: bool = False,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    on_block: BlockProgress | None = None,
    on_merge: MergeProgress | None = None,
) -> MultipoleResult:
    """Joint least squares of all `scans` for the grains' unknowns under `model`, on `device`
    ("cpu", "gpu" or "auto": the GPU when one is usable, `solver.device`); `on_block` and
    `on_merge` as `inversion.invert_map`'s (where each scan's triangle is accumulated apart,
    `on_block` is told the sensors of all the scans, and `on_merge` of each scan's merge)."""
    # accumulate / solve_triangle / forward: the CPU's (`inversion`), else the GPU's
    used = devices.resolve(device)
    if model not in GRAIN_MODELS:
        raise InputError(f"model {model!r}; expected one of {', '.join(GRAIN_MODELS)}")
    if not scans:
        raise InputError("no scans to invert")
    check_each_scan_once([scan.name for scan in scans])
    if model == "cuboid":
        check_cuboid_grains(grains)
    t0 = time.perf_counter()
    k = 3 if model == "cuboid" else MODELS[model]
    points = grains if model == "cuboid" or isinstance(grains, PointGrains) \
        else as_points(grains)
    n = k * grains.n_grains
    keeps = [scan.usable() for scan in scans]
    for scan, keep in zip(scans, keeps, strict=True):
        if keep.size == 0:
            raise InputError(f"scan '{scan.name}' has no usable pixel (its mask and NaNs "
                             "leave none); expected some measured pixels to fit")
    n_sensors = sum(keep.size for keep in keeps)
    if n_sensors <= n:
        raise InputError(
            f"{n_sensors} usable pixels in {len(scans)} scan(s) for {grains.n_grains} "
            f"grains; expected more than {n} ({k} per grain)")
    unknowns = f"{grains.n_grains} grains × {k} ({model})"
    arrays = sum(cuboid_model_bytes(grains.n_grains, grains.cuboids.shape[0],
                                    area=scan.sensor_size[0] > 0, exact=exact)
                 if model == "cuboid" else multipole_model_bytes(grains.n_grains)
                 for scan in scans)  # each scan's model: its own arrays on the device
    used = devices.fit_device(used, device, n,
                              device_bytes(n, n_sensors, arrays, sensor_columns=4), unknowns)
    ops = inversion if used == "cpu" else devices.gpu_solver()
    notice = first_run_notice(model) if progress and used == "cpu" else None
    if notice:  # before the grains' models are built: that compiles kernels too
        progress(notice)
    parts, phis, models = [], [], []
    for s, (scan, keep) in enumerate(zip(scans, keeps, strict=True)):
        X, Y = np.meshgrid(scan.data.x, scan.data.y)
        pts = np.c_[X.ravel()[keep], Y.ravel()[keep], np.full(keep.size, scan.height),
                    np.full(keep.size, float(s))]
        models.append(_model(points, scan, model, pts, exact))
        parts.append(pts)
        phis.append(scan.data.bz.ravel()[keep])
    sensors = np.concatenate(parts)
    warn_far_grains(grains, *scan_corners(sensors))
    if isinstance(grains, PointGrains):
        warn_points_above_top(grains)
    counts = np.array([p.shape[0] for p in parts])
    given = [scan.sigma for scan in scans]
    sigmas = np.array([1.0 if sg is None else sg for sg in given])
    settle = len(scans) > 1 and any(sg is None for sg in given)
    if any(sg is None for sg in given):
        inversion.warn_damped_sigma(damping)
    if used == "cpu":
        check_solve_fits(n, min(block, sensors.shape[0]), unknowns, damping=damping > 0,
                         triangles=len(scans) + 2 if settle else 0)  # `_settle_sigmas`
    timings = dict.fromkeys(("green_and_qr_s", "solve_s", "forward_s"), 0.0)
    phi = np.concatenate(phis)
    if progress:
        progress(f"QR of the Green's matrix: {sensors.shape[0]} sensors × "
                 f"{grains.n_grains} grains × {k}")
    if settle:
        sol, fitted = _settle_sigmas(ops, models, sensors, phi, counts, given, sigmas,
                                     names=[scan.name for scan in scans],
                                     damping=damping, per_grain=k, block=block,
                                     on_block=on_block, on_merge=on_merge,
                                     progress=progress, timings=timings)
    else:
        weights = 1.0 / sigmas
        row_w = np.repeat(weights, counts)
        stacked = StackedModel(models, weights, n)
        t1 = time.perf_counter()
        tri, rows = ops.accumulate(stacked, sensors, phi * row_w, block=block,
                                   keep_bytes=KEEP_Q_BYTES, on_block=on_block,
                                   on_merge=on_merge)
        if progress:
            progress(SOLVING)
        t2 = time.perf_counter()
        sol = ops.solve_triangle(tri, damping, per_grain=k)
        del tri
        t3 = time.perf_counter()
        fitted = ops.forward(stacked, sensors, sol.x, block=block, rows=rows) / row_w
        del rows
        timings.update(green_and_qr_s=t2 - t1, solve_s=t3 - t2,
                       forward_s=time.perf_counter() - t3)
        if given[0] is None:  # one scan of unknown σ, fitted with weight 1
            resid = phi - fitted
            sigmas[0] = math.sqrt(float(resid @ resid) / (sensors.shape[0] - sol.rank))
    resid = phi - fitted
    # the unit-weight covariance of the weighted system is the covariance itself, except for
    # a single scan of unknown σ (fitted with weight 1): scale by its estimate
    blocks = sol.covariance_blocks * (sigmas[0] ** 2 if len(scans) == 1 and given[0] is None
                                      else 1.0)
    bad = sol.unresolved.reshape(-1, k).any(axis=1)
    blocks[bad] = np.inf
    fits = []
    offset = 0
    for scan, keep, cnt in zip(scans, keeps, counts, strict=True):
        fits.append(_maps(scan, keep, fitted[offset:offset + cnt], resid[offset:offset + cnt]))
        offset += cnt
    x = sol.x.reshape(-1, k)
    return MultipoleResult(
        grains=grains, magnetization=x[:, :3].copy(), covariance=blocks[:, :3, :3].copy(),
        sigma=float(sigmas[0]), sigma_from_residual=given[0] is None,
        fitted=fits[0][0], residual=fits[0][1], condition_number=sol.condition_number,
        n_sensors=int(sensors.shape[0]), damping=damping,
        timings={**timings, "total_s": time.perf_counter() - t0},
        height=min(scan.height for scan in scans), device=used, rank=sol.rank,
        model=model, coefficients=x, coefficient_covariance=blocks,
        scans=tuple(scan.name for scan in scans), sigmas=tuple(float(v) for v in sigmas),
        fits=fits, masks=[scan.mask for scan in scans],
        sensors=[tuple(float(v) for v in scan.sensor_size) for scan in scans],
    )


def _settle_sigmas(ops: Any, models: list, sensors: np.ndarray, phi: np.ndarray,
                   counts: np.ndarray, given: list[float | None], sigmas: np.ndarray, *,
                   names: list[str], damping: float, per_grain: int, block: int,
                   on_block: BlockProgress | None, on_merge: MergeProgress | None,
                   progress: Callable[[str], None] | None, timings: dict[str, float]
                   ) -> tuple[Any, np.ndarray]:
    """The joint solve of scans some of whose σ are estimated, and its fitted field
    (unweighted); `sigmas` (given ones, 1 for the others) is updated in place to the σ the
    solve returned was weighted by.

    Each scan's R of [Q_s | φ_s] is accumulated once, unweighted; a pass stacks them weighted
    by 1/σ_s (a QR of n rows each, not of the sensors), solves, and estimates each unknown σ_s
    as √(r_sᵀr_s / (N_s − h_s)), h_s = tr(H_ss) the sum of scan s's leverages, until no σ
    moves by more than SIGMA_RTOL: Förstner's iterated estimate of variance components. A
    scan's share N_s (1 − n/N) of the degrees of freedom instead would hold only where the
    scans' leverages are spread as their sensors are: the quiet scan carries most of them, its
    σ came out too small and the noisy one's too large (with 32 unknowns on 121 sensors per
    scan, 1 nT beside 300 nT: σ² 0.85 and 1.15 times the truth, the 95 % sphere holding 92 %).
    """
    n = per_grain * models[0].grains.n_grains
    unit = StackedModel(models, np.ones(len(models)), n)
    bounds = np.r_[0, np.cumsum(counts)]
    total = int(bounds[-1])
    triangles, kept = [], []
    t1 = time.perf_counter()
    for s in range(len(models)):
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        told = None if on_block is None else _offset(on_block, lo, total)
        tri, rows = ops.accumulate(unit, sensors[lo:hi], phi[lo:hi], block=block,
                                   keep_bytes=KEEP_Q_BYTES / len(models), on_block=told,
                                   on_merge=on_merge)
        triangles.append(_augmented(ops, tri, n))
        kept.append(rows)
        del tri
    timings["green_and_qr_s"] += time.perf_counter() - t1
    if progress:
        progress(SOLVING)
    told: set[str] = set()  # the warnings said by the passes' solves
    for attempt in range(MAX_PASSES):
        weighted_by = sigmas.copy()
        t2 = time.perf_counter()
        full = _stack(triangles, 1.0 / weighted_by)
        with recorded() as said:  # each pass's solve warns alike ("Q is singular"): once
            sol = ops.solve_triangle(_triangle(ops, full, n), damping, per_grain=per_grain,
                                     keep_pseudo_inverse=True)
        for w in said:
            if str(w.message) not in told:
                told.add(str(w.message))
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        dof = _redundancies(triangles, full[:n, :n], 1.0 / weighted_by, counts, damping,
                            per_grain, sol.pseudo_inverse)
        sol.pseudo_inverse = None  # W and the stacked triangle (n² each) freed before the
        del full  # forward model, which holds its blocks of Q
        t3 = time.perf_counter()
        timings["solve_s"] += t3 - t2
        _require_redundancy(dof, counts, [sg is None for sg in given], names)
        fitted = np.concatenate([
            ops.forward(unit, sensors[bounds[s]:bounds[s + 1]], sol.x, block=block,
                        rows=kept[s]) for s in range(len(models))])
        timings["forward_s"] += time.perf_counter() - t3
        for s, sg in enumerate(given):
            if sg is None:
                part = phi[bounds[s]:bounds[s + 1]] - fitted[bounds[s]:bounds[s + 1]]
                sigmas[s] = math.sqrt(float(part @ part) / dof[s])
        if attempt > 0 and np.all(np.abs(sigmas - weighted_by) <= SIGMA_RTOL * weighted_by):
            break
        if attempt + 1 < MAX_PASSES and progress:
            progress(f"pass {attempt + 2} with the estimated noise of each scan")
    else:
        moving = np.abs(sigmas - weighted_by) > SIGMA_RTOL * weighted_by
        warnings.warn(
            "the noise estimated from the residuals of "
            + ", ".join(f"scan '{names[s]}' ({int(counts[s])} usable pixels, σ "
                        f"{weighted_by[s] / 1e-9:.4g} nT)" for s in np.flatnonzero(moving))
            + f" still moved by more than {SIGMA_RTOL:.1%} after {MAX_PASSES} passes (a scan "
            "of few pixels fits them ever more closely as its σ shrinks); expected --sigma-nT "
            "for the scans whose noise is known, or more of their pixels unmasked",
            UnsettledSigmaWarning, stacklevel=3)
    sigmas[:] = weighted_by  # the σ the solve, and so its covariance, was weighted by
    return sol, fitted


def _offset(on_block: BlockProgress, first: int, total: int) -> BlockProgress:
    """`on_block` of one scan's accumulation told as the share of all scans' sensors."""
    return lambda done, _: on_block(first + done, total)


def _augmented(ops: Any, tri: Any, n: int) -> np.ndarray:
    """[R | c] of an accumulated triangle (the CPU's or the device's) as an (n + 1)²
    upper-triangular array on the host, its last row 0 (the residual's norm is not kept)."""
    if isinstance(tri, inversion.Triangle):
        out = np.zeros((n + 1, n + 1), order="F")
        out[:n, :n] = tri.r
        out[:n, n] = tri.c
        return out
    out = np.asfortranarray(ops.arrays.to_host(tri.full))
    out[n] = 0.0
    return out


def _stack(triangles: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The triangle of [w_s R_s | w_s c_s] over all scans s: that of the rows weighted so,
    its diagonal made ≥ 0 as `accumulate` makes it."""
    qr = QRUpdate(triangles[0].shape[0], triangles[0].shape[0],
                  r=np.asfortranarray(triangles[0] * weights[0]))
    for tri, w in zip(triangles[1:], weights[1:], strict=True):
        qr.add(np.asfortranarray(tri * w))
    full = qr.r
    full *= np.where(np.diag(full) < 0, -1.0, 1.0)[:, None]
    return full


def _triangle(ops: Any, full: np.ndarray, n: int) -> Any:
    """The stacked triangle as `ops.solve_triangle` takes it."""
    if ops is inversion:
        return inversion.Triangle(np.asfortranarray(full[:n, :n]), full[:n, n].copy())
    return DeviceTriangle(ops.arrays.to_device(full))


def _redundancies(triangles: list[np.ndarray], r: np.ndarray, weights: np.ndarray,
                  counts: np.ndarray, damping: float, per_grain: int,
                  pseudo_inverse: np.ndarray | None) -> np.ndarray:
    """Each scan's degrees of freedom N_s − h_s, h_s = w_s² ‖R_s W‖²_F the trace of its block
    of the hat matrix of the solve, in columns scaled to unit norm as the solve's: W = R⁻¹,
    R then the damped triangle where damped (of [R; √Λ], the hat matrix Q (QᵀQ + Λ)⁻¹ Qᵀ);
    where the solve took the pseudo-inverse (R singular, or a column of Q all 0: a grain the
    scans carry no information about), W = V Σ⁺ over the directions it resolved, so the h_s
    sum to the rank of Q, not to n, as the fit's residual does; that W is the solve's own,
    `pseudo_inverse` (`Solution.pseudo_inverse`, the scaling folded in), not a second SVD of
    the same R. NaN for a scan whose trace is no number, and N_s − h_s as it comes out (≤ 0
    included) where its leverages reach its pixel count: `_require_redundancy` refuses those
    for a scan whose σ is to be estimated."""
    n = r.shape[0]
    h = []
    if pseudo_inverse is not None:  # S V Σ⁺: R_s S V Σ⁺ is the scaled columns' R_s V Σ⁺
        for tri, w in zip(triangles, weights, strict=True):
            h.append(float(np.sum((w * tri[:n, :n] @ pseudo_inverse) ** 2)))
        return np.where(np.isfinite(h), counts - np.array(h), np.nan)
    norms = np.sqrt(np.einsum("ij,ij->j", r, r))
    scale = np.where(norms > 0, norms, 1.0)  # a column of zeros left as it is, as the solve
    rs = np.asfortranarray(r / scale)
    if damping > 0:
        QRUpdate(n, n, r=rs).add(np.asfortranarray(
            np.diag(np.sqrt(damping * inversion.order_weights(norms, per_grain)) / scale)))
    for tri, w in zip(triangles, weights, strict=True):
        block = w * tri[:n, :n] / scale  # the scan's weighted triangle, in the scaled columns
        part = linalg.solve_triangular(rs, block.T, trans="T", check_finite=False)
        h.append(float(np.sum(part ** 2)))
    return np.where(np.isfinite(h), counts - np.array(h), np.nan)


MIN_REDUNDANCY = 1.0  # degrees of freedom a scan's σ is estimated from, at least


def _require_redundancy(dof: np.ndarray, counts: np.ndarray, estimated: list[bool],
                        names: list[str]) -> None:
    """InputError for a scan whose σ is to be estimated from its residual when its pixels
    leave fewer than MIN_REDUNDANCY degrees of freedom once the grains are fitted (their
    leverages sum to nearly their number, or the sum is no number): its residual says next to
    nothing of its noise, and over the passes its σ shrinks as its pixels are fitted ever more
    closely (one pixel over the grains: σ 20 times too small after 8 passes, still falling).
    A single scan has N − n ≥ 1 by `invert_scans`' own check."""
    for s, wanted in enumerate(estimated):
        if wanted and not dof[s] >= MIN_REDUNDANCY:
            left = "no number" if not np.isfinite(dof[s]) else f"{max(dof[s], 0.0):.3g}"
            raise InputError(
                f"scan '{names[s]}': its noise is to be estimated from its residual, and its "
                f"{int(counts[s])} usable pixels leave {left} degrees of freedom once the "
                "grains are fitted (the joint fit follows them almost exactly); expected its "
                "σ given (--sigma-nT, or Scan.sigma), or more of its pixels usable (fewer "
                "masked, or a larger scan)")

def _maps(scan: Scan, keep: np.ndarray, fitted: np.ndarray, resid: np.ndarray
          ) -> tuple[MapData, MapData]:
    data = scan.data
    common = {"height": scan.height, "sensor_size": tuple(scan.sensor_size[:2]),
              "applied_field": data.applied_field, "sources": (data.name,)}
    out = []
    for values, what in ((fitted, "fitted"), (resid, "residual")):
        flat = np.full(data.bz.size, np.nan)
        flat[keep] = values
        out.append(MapData(bz=flat.reshape(data.bz.shape), x=data.x, y=data.y,
                           name=f"{data.name}_mmt_{what}", title=f"MMT {what} Bz", **common))
    return out[0], out[1]
