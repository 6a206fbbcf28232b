"""MMT inversion of a scan too large for one machine, as overlapping tiles on a Dask cluster.

Each tile is an MMT least-squares problem over the sensors of its window (`layout`) for the
grains near it, and each grain's result comes from the tile where it lies farthest from an
interior window edge. Cutting the data alone is not enough: the field of the grains left out
of a tile leaks into its window and biases its grains by far more than their standard
deviations (at 20 nT noise, hundreds of σ in a 240 µm test case), and a nuisance band wide
enough to soak that up would be most of the sample. So the tiles are solved in passes,
block-Jacobi fashion: in every pass after the first, each tile's window map has the field of
the grains that are not its unknowns removed, at the previous pass's estimates. The first
``BAND_PASSES`` passes also solve the grains within the nuisance band beyond the window, which
makes the first estimates close; the later passes solve only the window's grains, whose fixed
point differs from the whole inversion only by the information the owned grains lose to
sensors beyond the margin (`margin`: about √0.005 σ). Passes stop when no owned magnetization
moves by more than ``TOLERANCE`` of its standard deviation.

Each tile is factored once (`factor`): the QR of its window's [Q of its grains | Q of the
outside grains near enough to matter | φ], which serves both unknown sets and every pass, so a
pass after the factoring only changes the right-hand side (no Green's matrix, no pass over the
sensors). The first pass removes no outside field and needs no outside columns, so it factors
only the band's grains; the second factors again with the outside grains that `cutoff` cannot
prove negligible at the first pass's estimates (with half its budget). A later pass factors a
tile again only when, at its estimates, the grains that tile's factor leaves out no longer
satisfy the cut-off's bound (they would move an unknown by more than ``cutoff.SKIP_SHIFT`` σ).
The factors stay in the workers' memory between passes (as futures).

A factor holds N² doubles for N of its columns, so the outside grains it takes are capped by
``FACTOR_BYTES`` (the strongest by the cut-off's bound first). Outside grains beyond that cap
that the cut-off cannot skip (on a scan of 1e5 grains at seed 001's moments, almost all of
them: the bound is conservative by orders of magnitude) have their field removed from the
window's map at the estimate of the pass that factors, and a tile is factored again when the
change of their estimates since then, added to the skipped grains' bound, may move an unknown
by more than ``cutoff.SKIP_SHIFT`` σ. Memory per tile then stays bounded whatever the number
of grains; such tiles go back over their sensors only while the estimates still move.

All the tiles' factors are held at once, so before any tile is factored the run's peak
(`budget`: the factors and the work of as many tiles as run at once) is checked against the
memory this machine has available where the tiles run on it, or against the sum of the Dask
workers' memory limits where they run elsewhere; and each worker's limit against the factors
and work of the largest tiles it may work on at once (any tile may run on any worker): over
any of these, the cap is lowered until the run fits (more outside grains subtracted, more
passes over the sensors), and where not even factors of the band's grains alone fit, the run
is refused, naming the worker with too little where that is what does not fit (`fit_memory`).

Noise σ: the given one, else each tile's estimate from its own residual (the cut-off then uses
the smallest of them).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.solver.inversion import MMTResult, check_grains_below_sensor, forward
from smm_daq.analysis.mmt.tiles.budget import (
    FORWARD_BYTES,
    TileCounts,
    largest_room,
    tiled_need,
    worker_need,
)
from smm_daq.analysis.mmt.tiles.cluster import Progress, run_tasks, submit, worker_memory
from smm_daq.analysis.mmt.tiles.cutoff import SKIP_SHIFT, field_bounds, shift_bound, skippable
from smm_daq.analysis.mmt.tiles.factor import TileSolution, factor_tile, solve_factor
from smm_daq.analysis.mmt.tiles.layout import Tile, TileLayout, plan_tiles
from smm_daq.analysis.mmt.tiles.margin import band_for, margin_for
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

BAND_PASSES = 2
TOLERANCE = 0.02  # of each owned grain's standard deviation
MAX_PASSES = 12
FACTOR_BYTES = 512 * 2**20  # the largest factor (R of a tile's columns) kept per tile


class ConvergenceWarning(UserWarning):
    """The tile passes stopped before the estimates settled to the tolerance."""


@dataclass
class _Job:
    """A tile with owned grains: its grain sets, the outside grains its factor leaves out, and
    the factor (a `TileFactor`, or its future on the cluster)."""

    tile: Tile
    window: np.ndarray  # the window's grains
    band: np.ndarray  # the window's and the band's
    owned: np.ndarray
    outside: np.ndarray  # every other grain
    n_sensors: int
    skipped: np.ndarray  # outside grains left out as negligible
    near: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # columns
    far: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # subtracted
    far_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # ... at these M
    factor: Any = None


class _Bounds:
    """`cutoff.field_bounds` of any grains over a tile's window at given magnetizations."""

    def __init__(self, grains: GrainSet, height: float, sensor_size: tuple[float, float]):
        self.centroid = grains.centroids()
        self.radius = grains.radii()
        self.volume = grains.volumes()
        self.height = height
        self.sensor_size = sensor_size

    def __call__(self, tile: Tile, which: np.ndarray, m: np.ndarray) -> np.ndarray:
        return self.rows(tile, which, m[which])

    def rows(self, tile: Tile, which: np.ndarray, m_rows: np.ndarray) -> np.ndarray:
        """The bounds for grains `which` at magnetizations `m_rows` (one row each)."""
        moment = np.linalg.norm(m_rows, axis=1) * self.volume[which]
        return field_bounds(self.centroid[which], self.radius[which], moment, tile.window,
                            self.height, self.sensor_size)


def _jobs(data: MapData, layout: TileLayout, xy: np.ndarray) -> list[_Job]:
    owners = layout.owners(xy)
    everyone = np.arange(xy.shape[0])
    finite = np.isfinite(data.bz)
    jobs = []
    for k, t in enumerate(layout.tiles):
        owned = np.flatnonzero(owners == k)
        if owned.size:
            band = t.unknowns(xy, layout.band)
            outside = np.setdiff1d(everyone, band)
            jobs.append(_Job(t, t.unknowns(xy, 0.0), band, owned, outside,
                             int(np.count_nonzero(finite[t.rows, t.cols])), outside))
    return jobs


def _refactor(jobs: list[_Job], bounds: _Bounds, estimate: np.ndarray | None,
              noise: float, room: int) -> list[_Job]:
    """The jobs whose factor must be (re)built at `estimate`, their `skipped` set anew: all
    of them at the first pass (no outside field: no outside columns), later those whose left-out
    grains may move an unknown by more than SKIP_SHIFT σ at noise `noise`; a factor holds at
    most `room` grains, its band's first."""
    if estimate is None:
        return [j for j in jobs if j.factor is None]
    stale = []
    for j in jobs:
        left_out = np.r_[bounds(j.tile, j.skipped, estimate),
                         bounds.rows(j.tile, j.far, estimate[j.far] - j.far_m)]
        if shift_bound(left_out, j.n_sensors, noise) > SKIP_SHIFT:
            strength = bounds(j.tile, j.outside, estimate)
            skip = skippable(strength, j.n_sensors, noise, SKIP_SHIFT / 2)
            j.skipped = j.outside[skip]
            kept = np.flatnonzero(~skip)
            kept = kept[np.argsort(-strength[kept], kind="stable")]
            cap = max(0, room - j.band.size)
            j.near = np.sort(j.outside[kept[:cap]])
            j.far = np.sort(j.outside[kept[cap:]])
            j.far_m = estimate[j.far].copy()
            stale.append(j)
    return stale


def _factor_room() -> int:
    """The grains a factor may hold: as many as fit ``FACTOR_BYTES``."""
    return max(0, math.isqrt(FACTOR_BYTES // 8) // 3)


def _here(address: str) -> bool:
    """Whether a Dask worker's address is on this machine: in this process or on loopback."""
    scheme, _, rest = address.partition("://")
    host = rest.rsplit(":", 1)[0].strip("[]")
    return scheme == "inproc" or host in ("localhost", "::1") or host.startswith("127.")


def tiles_at_once(client: Any) -> int | None:
    """Tiles worked on at once in this machine's memory: 1 in this process, the threads of a
    cluster whose workers all run here (in process or on loopback); None when some run
    elsewhere (in memory this machine cannot see)."""
    if client is None:
        return 1
    threads = client.nthreads()
    if not threads or not all(_here(a) for a in threads):
        return None
    return int(sum(threads.values()))


def _counts(data: MapData, grains: GrainSet, layout: TileLayout,
            jobs: list[_Job]) -> list[TileCounts]:
    per_grain = np.diff(grains.start)
    out = []
    for j in jobs:
        rows, cols = _core_block(data, j.tile)
        core = (rows.stop - rows.start) * (cols.stop - cols.start)
        out.append(TileCounts(j.band.size, int(per_grain[j.band].sum()),
                              np.sort(per_grain[j.outside])[::-1], j.n_sensors, core))
    return out


def fit_memory(data: MapData, grains: GrainSet, layout: TileLayout, jobs: list[_Job],
               sensor_size: tuple[float, float], client: Any,
               info: Callable[[str], None] | None) -> int:
    """The grains a factor may hold (`_factor_room`, or fewer where that makes the inversion
    fit, said through `info`), checked before any work (`budget`): against this machine's
    available memory where the tiles run on it (in this process, or on workers on loopback),
    against the sum of the workers' memory limits where they run elsewhere, and against each
    worker's own limit (the tiles it works on at once, with their factors). InputError when
    not even factors of the band's grains alone fit, naming the need and the memory, and
    the worker with too little where that is what does not fit. Not checked where neither
    this machine's available memory nor any worker's limit is known."""
    room = _factor_room()
    at_once = tiles_at_once(client)
    local = at_once is not None
    say = (lambda text: info(f"warning: {text}")) if info else None
    workers = worker_memory(client, say) if client is not None else {}
    limits = {a: (limit, threads) for a, (limit, threads) in workers.items()
              if limit is not None}
    if at_once is not None:
        total = memory.available_bytes()
    else:
        at_once = sum(threads for _, threads in workers.values())
        total = sum(limit for limit, _ in limits.values()) \
            if limits and len(limits) == len(workers) else None
    if total is None and not limits:
        return room
    counts = _counts(data, grains, layout, jobs)
    area = sensor_size[0] > 0
    args = (grains.n_grains, grains.cuboids.shape[0], area)

    def fits_in_all(r: int) -> bool:
        return total is None or tiled_need(counts, r, at_once, *args).total <= total

    def short_worker(r: int) -> str | None:
        """The worker (the one with the smallest limit) whose limit the tiles it works on at
        once would exceed; None when every worker's limit holds them."""
        over = [(limit, a) for a, (limit, threads) in limits.items()
                if worker_need(counts, r, threads, *args) > limit]
        return min(over)[1] if over else None

    fitting = largest_room(room, lambda r: fits_in_all(r) and short_worker(r) is None)
    if fitting == room:
        return room
    if fitting is not None:
        where = f"the {total / 2**30:.1f} GiB of memory available" \
            if local and total is not None and short_worker(fitting + 1) is None \
            else "the Dask workers' memory limits"
        if info:
            info(f"factors limited to {fitting} grains each (from {room}) to fit {where}: "
                 "the field of the outside grains beyond them is subtracted at their "
                 "estimates (more passes over the sensors)")
        return fitting
    what = f"the tiled inversion of {grains.n_grains} grains in {len(jobs)} tiles with grains"
    if not fits_in_all(0):
        raise InputError(_refusal_in_all(counts, args, what, at_once, total, local))
    short = short_worker(0)
    assert short is not None  # neither the total nor any worker short: it fitted
    limit, threads = limits[short]
    need = worker_need(counts, 0, threads, *args)
    tiles = f"the {threads} largest tiles" if threads > 1 else "the largest tile"
    raise InputError(
        f"{what} needs at least {need / 2**30:.2f} GiB of memory on the Dask worker {short} "
        f"(the factors and the work of {tiles}, as many as it works on at once), and "
        f"its memory limit is {limit / 2**30:.2f} GiB; expected Dask workers with a memory "
        f"limit of at least {need / 2**30:.2f} GiB (dask worker --memory-limit) or fewer "
        "threads each, or fewer grains")


def _refusal_in_all(counts: list[TileCounts], args: tuple[int, int, bool], what: str,
                    at_once: int, total: int, local: bool) -> str:
    """Why an inversion that does not fit `total` bytes, the memory of all its workers, even
    with factors of their band's grains alone is refused."""
    need = tiled_need(counts, 0, at_once, *args)
    stated = (f"{what}, {at_once} at once, needs at least {need.total / 2**30:.1f} GiB of "
              f"memory (the tiles' factors, {need.factors / 2**30:.1f} GiB, held from pass to "
              f"pass, and the work of the tiles in hand), and ")
    if not local:
        return stated + (f"the Dask workers' memory limits come to {total / 2**30:.1f} GiB in "
                         "all; expected more workers or larger limits, or fewer grains")
    fewer = next((k for k in range(at_once - 1, 0, -1)
                  if tiled_need(counts, 0, k, *args).total <= total), None)
    hint = f"--workers {fewer} or fewer (tiles at once), " if fewer else ""
    return stated + (f"this machine has {total / 2**30:.1f} GiB available; expected {hint}"
                     "a Dask cluster of several machines (--scheduler), or fewer grains")


def _field_of(grains: GrainSet, magnetization: np.ndarray, sensors: np.ndarray,
              sensor_size: tuple[float, float], height: float) -> np.ndarray:
    """Bz (P,) of `grains` with the given magnetizations at sensor centres (P, 3)."""
    model = GreenModel.build(grains, sensor_size, sensors[:, :2].min(axis=0),
                             sensors[:, :2].max(axis=0), height)
    block = max(16, FORWARD_BYTES // (8 * model.n_columns))
    return forward(model, sensors, magnetization, block=block)


def _core_block(data: MapData, tile: Tile) -> tuple[slice, slice]:
    """(rows, cols) of the map's sensors in the tile's core."""
    x0, x1, y0, y1 = tile.core
    cols = np.flatnonzero((data.x >= x0 - 1e-12) & (data.x <= x1 + 1e-12))
    rows = np.flatnonzero((data.y >= y0 - 1e-12) & (data.y <= y1 + 1e-12))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def fitted_core(data: MapData, grains: GrainSet, tile: Tile, magnetization: np.ndarray,
                height: float, sensor_size: tuple[float, float]) -> np.ndarray:
    """Bz of all grains at the sensors of the tile's core (its block of the map)."""
    rows, cols = _core_block(data, tile)
    X, Y = np.meshgrid(data.x[cols], data.y[rows])
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    return _field_of(grains, magnetization, sensors, sensor_size, height).reshape(X.shape)


def _scatter(client: Any, estimate: np.ndarray) -> Any:
    """`estimate` on every worker, under a key of its own: scattered by its content's hash,
    an estimate that did not change from the last pass (one tile's, say) gets the last one's
    key, and releasing the last pass's future then takes the data from under the new one
    (its tasks cancelled for "lost dependencies")."""
    return client.scatter(estimate, broadcast=True, hash=False)


def default_layout(data: MapData, grains: GrainSet, tile: float, height: float) -> TileLayout:
    """Tiles of about `tile` m with the margin rule and nuisance band of `margin`."""
    deepest = float(np.max(-grains.centroids()[:, 2])) if grains.n_grains else 0.0
    return plan_tiles(data.x, data.y, tile, margin_for(deepest, height),
                      band_for(deepest, height))


def invert_tiled(
    data: MapData,
    grains: GrainSet,
    *,
    tile: float,
    height: float,
    sensor_size: tuple[float, float],
    sigma: float | None = None,
    client: object | None = None,
    layout: TileLayout | None = None,
    progress: Progress | None = None,
    info: Callable[[str], None] | None = None,
) -> MMTResult:
    """Tiled MMT inversion of `data` (Bz, T) for `grains`, tiles of about `tile` m (with the
    margin rule unless `layout` is given), on the Dask `client` (in this process when None).
    Returns the whole map's result; covariances are those of each grain's own tile, the
    fitted and residual maps those of the assembled magnetizations."""
    t0 = time.perf_counter()
    check_grains_below_sensor(grains, height)
    layout = layout or default_layout(data, grains, tile, height)
    jobs = _jobs(data, layout, grains.centroids()[:, :2])
    bounds = _Bounds(grains, height, sensor_size)
    if info:
        info(f"{len(layout.tiles)} tiles, margin {layout.margin * 1e6:.1f} µm, band "
             f"{layout.band * 1e6:.1f} µm, {grains.n_grains} grains")
    room = fit_memory(data, grains, layout, jobs, sensor_size, client, info)
    shared_data, shared_grains = data, grains
    if client is not None:
        shared_data = client.scatter(data, broadcast=True)  # type: ignore[attr-defined]
        shared_grains = client.scatter(grains, broadcast=True)  # type: ignore[attr-defined]
    G = grains.n_grains
    m = np.zeros((G, 3))
    cov = np.full((G, 3, 3), np.nan)
    sig = np.full(G, np.nan)
    estimate: np.ndarray | None = None
    solutions: list[TileSolution] = []
    passes = 1 if len(layout.tiles) == 1 else MAX_PASSES
    change = math.inf
    for p in range(passes):
        with_band = p < BAND_PASSES
        noise = sigma if sigma is not None else min((s.sigma for s in solutions), default=0.0)
        stale = _refactor(jobs, bounds, estimate, noise, room)
        for j in stale:
            j.factor = None  # the old factor freed before the new one is made
            j.factor = submit(client, factor_tile, shared_data, shared_grains, j.tile,
                              j.window, j.band, j.near, height, sensor_size, j.far, j.far_m)
        shared_m = estimate
        if client is not None and estimate is not None:
            shared_m = _scatter(client, estimate)
        # the items go with the call: kept after it, they would hold this pass's factors
        # (their futures, on a cluster) through the next pass's factoring
        solutions = run_tasks(client, solve_factor,  # type: ignore[arg-type]
                              [(j.factor, shared_m, with_band, j.owned, sigma) for j in jobs],
                              stage=f"tiles, pass {p + 1}", progress=progress)
        new = m.copy()
        for s in solutions:
            new[s.owned] = s.magnetization
            cov[s.owned] = s.covariance
            sig[s.owned] = s.sigma
        sd = np.sqrt(np.einsum("gii->gi", cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            change = float(np.nanmax(np.abs(new - m) / sd)) if estimate is not None else math.inf
        m = new
        if info and estimate is not None:
            info(f"pass {p + 1}: largest change {change:.3g} standard deviations; "
                 f"{len(stale)} of {len(jobs)} tiles factored")
        estimate = m
        if not with_band and change <= TOLERANCE:
            break
    else:
        if passes > 1:
            warnings.warn(f"tiled inversion stopped after {passes} passes with estimates still "
                          f"moving by {change:.3g} standard deviations (tolerance {TOLERANCE})",
                          ConvergenceWarning, stacklevel=2)
    for j in jobs:
        j.factor = None  # frees the factors on the workers
    fitted = np.full(data.bz.shape, np.nan)
    shared_m = _scatter(client, m) if client is not None else m
    blocks = run_tasks(client, fitted_core,  # type: ignore[arg-type]
                       [(shared_data, shared_grains, t, shared_m, height, sensor_size)
                        for t in layout.tiles], stage="fitted map", progress=progress)
    for t, block in zip(layout.tiles, blocks, strict=True):
        fitted[_core_block(data, t)] = block
    fitted[~np.isfinite(data.bz)] = np.nan
    common = {"height": height, "sensor_size": tuple(sensor_size),
              "applied_field": data.applied_field, "sources": (data.name,)}
    n_sensors = int(np.count_nonzero(np.isfinite(data.bz)))
    return MMTResult(
        grains=grains, magnetization=m, covariance=cov,
        sigma=float(sigma) if sigma is not None else float(np.nanmedian(sig)),
        sigma_from_residual=sigma is None,
        fitted=MapData(bz=fitted, x=data.x, y=data.y, name=f"{data.name}_mmt_fitted",
                       title="MMT fitted Bz (tiled)", **common),
        residual=MapData(bz=data.bz - fitted, x=data.x, y=data.y,
                         name=f"{data.name}_mmt_residual", title="MMT residual Bz (tiled)",
                         **common),
        condition_number=max((s.condition_number for s in solutions), default=math.nan),
        n_sensors=n_sensors, damping=0.0,
        timings={"total_s": time.perf_counter() - t0}, height=height,
    )
