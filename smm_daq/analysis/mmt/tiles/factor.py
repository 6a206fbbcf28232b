"""One tile's factorization, computed once and solved for any outside estimate.

The tile's window gives the R factor (`inversion.accumulate`, Householder QR over blocks of
sensors) of [Q_w | Q_b | Q_n | φ]: Q_w the columns of the window's grains, Q_b those of the
band's other grains, Q_n those of the outside grains near enough to matter (`cutoff`). QR works
column after column, so the leading blocks of R are the factors of the leading columns alone:

    R = [[R11, R12, c1],      R11 of the unknowns (the window's grains, or the window's and
         [0,   R22, c2],      the band's), R12 = U1ᵀ[their outside columns], c1 = U1ᵀφ,
         [0,   0,   ρ ]]

so for outside magnetizations v the tile's least squares is R11 x = c1 − R12 v, its squared
residual ‖c2 − R22 v‖² + ρ² (ρ² = ‖φ‖² − ‖c‖²). One factorization thus serves both unknown
sets and every pass; a pass costs a product with R12 and a triangular solve, no Green's matrix
and no pass over the sensors. Everything stays in Householder form, so the stability of the
whole-map solver is kept (no normal equations: they square cond(Q)).

Trade: the factor holds N² doubles for N = 3 × (the tile's grains + its near outside grains)
(2.3 MB for 540 columns, 800 MB for 10,000), and building it costs P N² flops once instead of
P n² per pass (n the unknowns' columns) plus a Green's matrix of all outside grains per pass.
Keeping the window's rows of Q instead would hold P n doubles (P ~ 1e4 to 5e4 sensors) and
still need a pass over them and the outside grains' fields every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver.inversion import (
    Triangle,
    accumulate,
    forward,
    sensor_positions,
    solve_triangle,
)
from smm_daq.analysis.mmt.tiles.layout import Tile
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

FACTOR_BLOCK_BYTES = 64 * 2**20  # memory for one block of [Q | φ] rows while factoring


@dataclass
class TileFactor:
    """R and c of [Q_w | Q_b | Q_n | φ] over a tile's window; `columns` the grains (indices into
    the whole set) in column order, the first `n_window` the window's, the first `n_band` the
    window's and the band's."""

    columns: np.ndarray
    n_window: int
    n_band: int
    r: np.ndarray  # (3K, 3K) upper triangular
    c: np.ndarray  # (3K,)
    rho2: float  # ‖φ‖² − ‖c‖²: the squared residual with every column free
    n_sensors: int


@dataclass
class TileSolution:
    owned: np.ndarray  # (n,) grain indices into the whole grain set
    magnetization: np.ndarray  # (n, 3) A/m
    covariance: np.ndarray  # (n, 3, 3)
    sigma: float
    condition_number: float
    n_sensors: int


def window_map(data: MapData, tile: Tile) -> MapData:
    return data.with_bz(data.bz[tile.rows, tile.cols], x=data.x[tile.cols], y=data.y[tile.rows])


def factor_tile(data: MapData, grains: GrainSet, tile: Tile, window: np.ndarray,
                band: np.ndarray, near: np.ndarray, height: float,
                sensor_size: tuple[float, float],
                far: np.ndarray | None = None, far_m: np.ndarray | None = None) -> TileFactor:
    """The factor of the tile's window for its `window` grains, the `band` grains (a superset)
    and the `near` outside grains (index arrays into `grains`); the field of the `far` grains
    at magnetizations `far_m` (k, 3) is removed from the window's map first (those that do
    not fit the factor's memory budget, see `tiled`)."""
    win = window_map(data, tile)
    if far is not None and far.size:
        win = _less_field_of(win, grains.subset(far), far_m, height, sensor_size)
    sensors, keep = sensor_positions(win, height)
    if sensors.shape[0] <= 3 * band.size:
        um = tuple(round(v * 1e6, 3) for v in tile.window)
        raise InputError(f"tile {tile.index} (window x0, x1, y0, y1 = {um} µm): "
                         f"{sensors.shape[0]} finite pixels for {band.size} grains; expected "
                         f"more than {3 * band.size} (3 per grain): make the tile larger "
                         "(--tile-um)")
    columns = np.concatenate([window, np.setdiff1d(band, window), near]).astype(np.int64)
    phi = win.bz.ravel()[keep]
    model = GreenModel.build(grains.subset(columns), sensor_size, sensors[:, :2].min(axis=0),
                             sensors[:, :2].max(axis=0), height)
    block = max(16, FACTOR_BLOCK_BYTES // (8 * (model.n_columns + 1)))
    # one stream: the tiles run side by side already, each within the memory counted for it
    tri, _ = accumulate(model, sensors, phi, block=block, streams=1)
    rho2 = max(float(phi @ phi) - float(tri.c @ tri.c), 0.0)
    return TileFactor(columns, window.size, band.size, tri.r, tri.c, rho2,
                      int(sensors.shape[0]))


def _less_field_of(win: MapData, grains: GrainSet, m: np.ndarray, height: float,
                   sensor_size: tuple[float, float]) -> MapData:
    """The window's map less the field of `grains` at magnetizations m (their model freed on
    return, before the factor's is built)."""
    sensors, keep = sensor_positions(win, height)
    model = GreenModel.build(grains, sensor_size, sensors[:, :2].min(axis=0),
                             sensors[:, :2].max(axis=0), height)
    block = max(16, FACTOR_BLOCK_BYTES // (8 * model.n_columns))
    bz = win.bz.copy().ravel()
    bz[keep] -= forward(model, sensors, m, block=block)
    return win.with_bz(bz.reshape(win.bz.shape))


def solve_factor(factor: TileFactor, estimate: np.ndarray | None, with_band: bool,
                 owned: np.ndarray, sigma: float | None) -> TileSolution:
    """The tile's solution for its band's grains (`with_band`) or its window's, the other
    columns' grains held at `estimate` (G, 3) (at zero when None: no outside field removed);
    results for the grains `owned` (among the unknowns). σ is the given one, else the residual
    estimate over the window's sensors."""
    k = 3 * (factor.n_band if with_band else factor.n_window)
    rest = factor.columns[k // 3:]
    v = estimate[rest].ravel() if estimate is not None else np.zeros(3 * rest.size)
    rhs = factor.c[:k] - factor.r[:k, k:] @ v
    sol = solve_triangle(Triangle(np.asfortranarray(factor.r[:k, :k]), rhs))
    if sigma is None:
        tail = factor.c[k:] - factor.r[k:, k:] @ v
        sigma = math.sqrt((float(tail @ tail) + factor.rho2) / (factor.n_sensors - k))
    blocks = sigma**2 * sol.covariance_blocks
    blocks[sol.unresolved.reshape(-1, 3).any(axis=1)] = np.inf
    where = _positions(factor.columns[:k // 3], owned)
    return TileSolution(owned, sol.x.reshape(-1, 3)[where], blocks[where], float(sigma),
                        sol.condition_number, factor.n_sensors)


def _positions(columns: np.ndarray, grains: np.ndarray) -> np.ndarray:
    """Positions of `grains` in `columns` (every one present)."""
    order = np.argsort(columns)
    return order[np.searchsorted(columns, grains, sorter=order)]
