"""What a tiled inversion holds in memory at its peak, and the factor size that makes it fit.

Every tile's factor (R of its N columns, N² doubles) is kept from the pass that makes it to the
last pass (`tiled`), so all of them are held at once, whichever worker made them. On top of
them, each tile in hand (as many as run at once) holds its work, the largest of:

- the field of its far grains removed from its window's map: their model's arrays and one
  block of their rows of Q (`factor.FACTOR_BLOCK_BYTES`);
- its factoring: its model's arrays, the triangle of N + 1 columns, one block of rows and
  the QR's workspace, then the triangle and its copy, the factor (`solver.memory`'s fold);
- its solve: the unknowns' triangle and its inverse (2 k² for k unknowns).

After the passes the factors are freed, and each tile in hand computes its core's fitted map
from the model of all the grains. Model arrays are counted as `models.sizes` does (the
host's model holds the same arrays as the GPU's), and a model being built holds its far-field
orders twice (before its work starts).

A factor's columns are its band's grains and, after the first pass, outside grains until it
holds ``room`` grains (as many as fit `tiled.FACTOR_BYTES`, or fewer to fit the memory); the
rest that the cut-off cannot leave out are the far grains. Which the cut-off leaves out is known
only at the estimates, so the need counts every outside grain as a column or a far grain: the
cut-off's bound is conservative and leaves out only grains some millimetres away at seed 001's
moments (`cutoff`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.mmt.models.sizes import HIGHER_PER_GRAIN, cuboid_model_bytes
from smm_daq.analysis.mmt.solver.qr_update import panel_width
from smm_daq.analysis.mmt.tiles.factor import FACTOR_BLOCK_BYTES

FORWARD_BYTES = 64 * 2**20  # memory for one block of Q rows for the fitted map (`tiled`)


@dataclass(frozen=True)
class TileCounts:
    """What a tile's memory depends on: its band's grains and their cuboids, the cuboids of
    each outside grain (most first), its window's sensors and its core's."""

    band: int
    band_cuboids: int
    outside_cuboids: np.ndarray  # (outside grains,) sorted in decreasing order
    sensors: int
    core_sensors: int


@dataclass(frozen=True)
class TiledNeed:
    """Bytes at the peak, and what part of it the factors held between passes are."""

    total: int
    factors: int


def _with_model(grains: int, cuboids: int, area: bool, work: int) -> int:
    """A cuboid model's arrays and, beyond them, the larger of `work` done with the model
    and the copy of its far-field orders made while it is built."""
    return cuboid_model_bytes(grains, cuboids, area=area, exact=False) \
        + max(work, 8 * HIGHER_PER_GRAIN * grains)


def _rows_bytes(sensors: int, columns: int, block_bytes: int) -> int:
    """One block of Q rows of `columns` columns, as `factor` and `tiled` size them."""
    rows = min(sensors, max(16, block_bytes // (8 * max(columns, 1))))
    return 8 * rows * columns


def _fold_bytes(columns: int, sensors: int) -> int:
    """The factoring of `columns` columns (and φ) beyond the factor it leaves: the triangle,
    the QR's workspace and the larger of one block of rows and the factor's copy of the
    triangle (counted with the factors)."""
    c = columns + 1
    rows = min(sensors, max(16, FACTOR_BLOCK_BYTES // (8 * c)))
    panel = min(panel_width(c), c)
    work = (panel + rows) * panel + panel * panel + panel * c
    return 8 * (c * c + work + max(rows * c - columns * columns, 0))


def tile_work(t: TileCounts, room: int, area: bool) -> tuple[int, int]:
    """(its factor's bytes, its work's largest bytes beyond the factors) for a tile whose
    factor may hold `room` grains."""
    near = min(t.outside_cuboids.size, max(0, room - t.band))
    far = t.outside_cuboids.size - near
    n = 3 * (t.band + near)
    near_cuboids = int(t.outside_cuboids[:near].sum())
    far_cuboids = int(t.outside_cuboids[near:].sum())
    far_rows = _rows_bytes(t.sensors, 3 * far, FACTOR_BLOCK_BYTES)
    removing = _with_model(far, far_cuboids, area, far_rows) if far else 0
    folding = _with_model(t.band + near, t.band_cuboids + near_cuboids, area,
                          _fold_bytes(n, t.sensors))
    solving = 16 * (3 * t.band) ** 2
    return 8 * n * n, max(removing, folding, solving)


def tiled_need(tiles: list[TileCounts], room: int, at_once: int, grains: int, cuboids: int,
               area: bool) -> TiledNeed:
    """The peak of a tiled inversion of `grains` grains (`cuboids` cuboids) with factors of
    at most `room` grains (their band's first) and `at_once` tiles in hand at a time."""
    sizes = [tile_work(t, room, area) for t in tiles]
    factors = sum(f for f, _ in sizes)
    work = sorted((w for _, w in sizes), reverse=True)
    passes = factors + sum(work[:at_once])
    fitted = _fitted_bytes(tiles, grains, cuboids, area)
    return TiledNeed(max(passes, min(at_once, len(tiles)) * fitted), factors)


def worker_need(tiles: list[TileCounts], room: int, threads: int, grains: int, cuboids: int,
                area: bool) -> int:
    """The least one Dask worker of `threads` threads holds at its peak, wherever the tiles
    run: the factors and the work of as many of the largest tiles as it works on at once, or
    as many fitted-map blocks."""
    sizes = sorted((f + w for f, w in (tile_work(t, room, area) for t in tiles)), reverse=True)
    fitted = _fitted_bytes(tiles, grains, cuboids, area)
    return max(sum(sizes[:threads]), min(threads, len(tiles)) * fitted)


def _fitted_bytes(tiles: list[TileCounts], grains: int, cuboids: int, area: bool) -> int:
    """A tile's fitted-map block: the model of all grains and one block of their rows."""
    return _with_model(grains, cuboids, area, max(
        (_rows_bytes(t.core_sensors, 3 * grains, FORWARD_BYTES) for t in tiles), default=0))


def largest_room(room: int, fits: Callable[[int], bool]) -> int | None:
    """The most grains (at most `room`) a factor may hold for `fits(room)` to hold (the need
    grows with the room); None when not even factors of their band's grains alone fit."""
    if fits(room):
        return room
    if not fits(0):
        return None
    lo, hi = 0, room  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo
