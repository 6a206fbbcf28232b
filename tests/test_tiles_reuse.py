"""A tile's factor reused across passes, and the cut-off for the outside grains' field."""

from __future__ import annotations

import numpy as np
from test_tiles_inversion import HEIGHT, SENSOR, SIGMA, UM, _case

from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver.inversion import forward, invert_map, sensor_positions
from smm_daq.analysis.mmt.tiles import tiled as tiled_module
from smm_daq.analysis.mmt.tiles.cutoff import (
    SKIP_SHIFT,
    field_bounds,
    shift_bound,
    skippable,
)
from smm_daq.analysis.mmt.tiles.factor import factor_tile, solve_factor, window_map
from smm_daq.analysis.mmt.tiles.layout import plan_tiles
from smm_daq.storage.mapdata import MapData


def _strip(noise: float):
    """A 160 × 40 µm map: magnetized grains at x < 60 µm, weak 1 µm grains beyond 120 µm."""
    rng = np.random.default_rng(5)
    strong = np.c_[rng.uniform(4, 56, 10), np.linspace(4, 36, 10), -rng.uniform(2, 4, 10),
                   np.full((10, 3), 3.0)]
    weak = np.c_[np.linspace(124, 156, 8), rng.uniform(4, 36, 8), np.full(8, -1.0),
                 np.ones((8, 3))]
    cub = np.r_[strong, weak] * UM
    m = np.r_[rng.normal(0, 2e4, (10, 3)), rng.normal(0, 100, (8, 3))]
    x = np.arange(0, 160 + 1e-9, 2.0) * UM
    y = np.arange(0, 40 + 1e-9, 2.0) * UM
    X, Y = np.meshgrid(x, y)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, HEIGHT)]
    bz = cuboid_bz(sensors, cub, m, sensor_size=SENSOR).reshape(X.shape)
    bz += rng.normal(0, noise, X.shape)
    data = MapData(bz=bz, x=x, y=y, height=HEIGHT, sensor_size=SENSOR, name="strip")
    return data, from_arrays(cub, np.arange(1, 19)), m


def test_the_field_bound_holds_at_every_sensor_of_the_window() -> None:
    """B_g against the closed-form field of boxes and of a two-box grain, over the window."""
    rng = np.random.default_rng(3)
    cub = np.array([[70, 10, -3, 4, 2, 3], [30, 90, -8, 6, 6, 6], [-20, -20, -1, 1, 1, 1],
                    [75, 60, -2, 3, 3, 2], [78, 60, -2, 3, 3, 2]]) * UM
    grains = from_arrays(cub, np.array([1, 2, 3, 4, 4]))
    m = rng.normal(0, 1e4, (4, 3))
    window = (0.0, 50 * UM, 0.0, 50 * UM)
    x = np.arange(0, 50 + 1e-9, 1.0) * UM
    X, Y = np.meshgrid(x, x)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, HEIGHT)]
    moment = np.linalg.norm(m, axis=1) * grains.volumes()
    bound = field_bounds(grains.centroids(), grains.radii(), moment, window, HEIGHT, SENSOR)
    for g in range(4):
        mine = grains.subset(np.array([g]))
        bz = cuboid_bz(sensors, mine.cuboids, np.repeat(m[g:g + 1], mine.cuboids.shape[0], 0),
                       sensor_size=SENSOR)
        assert np.max(np.abs(bz)) <= bound[g]
        assert np.max(np.abs(bz)) > 0.02 * bound[g]  # a bound, not a blanket


def test_skipping_far_grains_moves_no_unknown_by_more_than_the_stated_bound() -> None:
    noise = 1e-6
    data, grains, m = _strip(noise)
    layout = plan_tiles(data.x, data.y, 40 * UM, 10 * UM, 4 * UM)
    t = layout.tiles[0]
    xy = grains.centroids()[:, :2]
    window, band = t.unknowns(xy, 0.0), t.unknowns(xy, layout.band)
    outside = np.setdiff1d(np.arange(grains.n_grains), band)
    n_sensors = int(np.count_nonzero(np.isfinite(data.bz[t.rows, t.cols])))
    bounds = field_bounds(grains.centroids()[outside], grains.radii()[outside],
                          np.linalg.norm(m[outside], axis=1) * grains.volumes()[outside],
                          t.window, HEIGHT, SENSOR)
    skip = skippable(bounds, n_sensors, noise)
    assert set(outside[skip]) == set(range(10, 18))  # the weak grains, and only they
    stated = shift_bound(bounds[skip], n_sensors, noise)
    assert stated <= SKIP_SHIFT
    full = factor_tile(data, grains, t, window, band, outside, HEIGHT, SENSOR)
    cut = factor_tile(data, grains, t, window, band, outside[~skip], HEIGHT, SENSOR)
    a = solve_factor(full, m, False, window, noise)
    b = solve_factor(cut, m, False, window, noise)
    sd = np.sqrt(np.einsum("gii->gi", a.covariance))
    moved = np.abs(a.magnetization - b.magnetization) / sd
    assert np.max(moved) <= stated
    assert np.max(moved) > 0  # the skipped grains' field did reach the window


def test_a_factor_solves_like_a_fresh_inversion_of_the_corrected_window() -> None:
    """RHS correction from the factor against invert_map of the window less the outside
    field (computed anew), with σ from the residual as well."""
    data, grains, m = _case(1, 80.0, 24, thickness_um=6.0)
    layout = tiled_module.default_layout(data, grains, 40 * UM, HEIGHT)
    t = layout.tiles[3]
    xy = grains.centroids()[:, :2]
    window, band = t.unknowns(xy, 0.0), t.unknowns(xy, layout.band)
    others = np.setdiff1d(np.arange(grains.n_grains), window)
    estimate = m * np.random.default_rng(0).uniform(0.9, 1.1, m.shape)
    factor = factor_tile(data, grains, t, window, band,
                         np.setdiff1d(np.arange(grains.n_grains), band), HEIGHT, SENSOR)
    got = solve_factor(factor, estimate, False, window, None)
    win = window_map(data, t)
    sensors, keep = sensor_positions(win, HEIGHT)
    model = GreenModel.build(grains.subset(others), SENSOR, sensors[:, :2].min(axis=0),
                             sensors[:, :2].max(axis=0), HEIGHT)
    bz = win.bz.copy().ravel()
    bz[keep] -= forward(model, sensors, estimate[others])
    ref = invert_map(win.with_bz(bz.reshape(win.bz.shape)), grains.subset(window),
                     height=HEIGHT, sensor_size=SENSOR)
    np.testing.assert_allclose(got.magnetization, ref.magnetization, atol=1e-6 * ref.sd.min())
    np.testing.assert_allclose(got.sigma, ref.sigma, rtol=1e-6)
    np.testing.assert_allclose(got.covariance, ref.covariance, rtol=1e-6)


def test_passes_after_the_second_compute_no_greens_matrix(monkeypatch) -> None:
    calls = {"n": 0}
    block = GreenModel.block

    def counted(self, sensors, out=None):
        calls["n"] += 1
        return block(self, sensors, out)

    monkeypatch.setattr(GreenModel, "block", counted)
    per_stage: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:  # calls since the last stage
        if done == total:
            per_stage[stage] = calls["n"]
            calls["n"] = 0

    data, grains, _ = _case(1, 80.0, 24, thickness_um=6.0)
    tiled_module.invert_tiled(data, grains, tile=40 * UM, height=HEIGHT, sensor_size=SENSOR,
                              sigma=SIGMA, progress=progress)
    passes = [per_stage[f"tiles, pass {p}"] for p in range(1, len(per_stage))]
    assert len(passes) >= 4 and "fitted map" in per_stage
    assert passes[0] > 0 and passes[1] > 0  # the band's factor, then the full one
    assert passes[2:] == [0] * (len(passes) - 2)


def test_a_tile_is_factored_again_only_when_its_left_out_grains_break_the_bound() -> None:
    noise = 1e-6
    data, grains, m = _strip(noise)
    layout = plan_tiles(data.x, data.y, 40 * UM, 10 * UM, 4 * UM)
    jobs = tiled_module._jobs(data, layout, grains.centroids()[:, :2])
    bounds = tiled_module._Bounds(grains, HEIGHT, SENSOR)
    first = jobs[0]
    room = tiled_module._factor_room()
    assert tiled_module._refactor(jobs, bounds, None, noise, room) == jobs  # none factored yet
    for j in jobs:
        j.factor = "factored"
    stale = tiled_module._refactor(jobs, bounds, m, noise, room)  # all outside grains were left out
    assert first in stale and first.skipped.size > 0 and set(first.skipped) <= set(range(10, 18))
    left_out = first.skipped.size
    assert tiled_module._refactor(jobs, bounds, m, noise, room) == []  # the same estimate: kept
    louder = m.copy()
    louder[10:] *= 100  # the left-out grains now too strong to leave out
    assert first in tiled_module._refactor(jobs, bounds, louder, noise, room)
    assert first.skipped.size < left_out


def test_a_factor_over_its_memory_budget_subtracts_the_rest_and_still_matches_whole(
        monkeypatch) -> None:
    """With room for only 12 grains per factor, outside grains that cannot be skipped have
    their field subtracted at the factoring pass's estimate instead of becoming columns; the
    tiles still match the whole inversion within a tenth of a standard deviation."""
    data, grains, _ = _case(1, 80.0, 24, thickness_um=6.0)
    monkeypatch.setattr(tiled_module, "FACTOR_BYTES", 8 * 36**2)  # 36 columns: 12 grains
    columns: list[tuple[int, int]] = []  # (band grains, outside grains taken as columns)
    subtracted: list[int] = []
    real = tiled_module.factor_tile

    def spy(data, grains, tile, window, band, near, *rest):
        far = rest[2]
        columns.append((band.size, near.size))
        subtracted.append(0 if far is None else far.size)
        return real(data, grains, tile, window, band, near, *rest)

    monkeypatch.setattr(tiled_module, "factor_tile", spy)
    whole = invert_map(data, grains, height=HEIGHT, sensor_size=SENSOR, sigma=SIGMA)
    tiled = tiled_module.invert_tiled(data, grains, tile=40 * UM, height=HEIGHT,
                                      sensor_size=SENSOR, sigma=SIGMA)
    assert max(subtracted) > 0  # the budget was binding
    assert all(near <= max(0, 12 - band) for band, near in columns)
    z = (tiled.magnetization - whole.magnetization) / whole.sd
    assert np.sqrt(np.mean(z**2)) < 0.1 and np.max(np.abs(z)) < 0.3

