"""Tiled MMT inversion against the whole inversion of a case small enough to invert whole."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt.solver.inversion import invert_map
from smm_daq.analysis.mmt.tiles.cluster import open_client
from smm_daq.analysis.mmt.tiles.tiled import invert_tiled
from smm_daq.storage.mapdata import MapData

UM = 1e-6
HEIGHT = 1 * UM
SENSOR = (1 * UM, 1 * UM)
SIGMA = 20e-9


def _case(seed: int, size_um: float, n: int, thickness_um: float = 10.0):
    """Non-touching box grains with the seed's magnetization law, a 2 µm map with noise."""
    rng = np.random.default_rng(seed)
    boxes: list[np.ndarray] = []
    while len(boxes) < n:
        e = rng.uniform(2, 5, 3)
        c = np.array([rng.uniform(0, size_um), rng.uniform(0, size_um),
                      -rng.uniform(e[2] / 2, thickness_um - e[2] / 2)])
        if all(np.any(np.abs(c - b[:3]) > (e + b[3:]) / 2 + 0.5) for b in boxes):
            boxes.append(np.r_[c, e])
    cub = np.array(boxes) * UM
    vol = cub[:, 3:].prod(axis=1)
    norm = 46.5e3 * (vol / (np.pi / 6 * UM**3)) ** -0.355 * 10 ** rng.normal(0, 0.5, n)
    u = rng.normal(size=(n, 3))
    m = norm[:, None] * u / np.linalg.norm(u, axis=1)[:, None]
    x = np.arange(0, size_um + 1e-9, 2.0) * UM
    X, Y = np.meshgrid(x, x)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, HEIGHT)]
    bz = cuboid_bz(sensors, cub, m, sensor_size=SENSOR).reshape(X.shape)
    bz += rng.normal(0, SIGMA, X.shape)
    data = MapData(bz=bz, x=x, y=x, height=HEIGHT, sensor_size=SENSOR, name="scan")
    return data, from_arrays(cub, np.arange(1, n + 1)), m


@pytest.mark.slow
def test_tiles_match_the_whole_inversion_within_a_tenth_of_a_standard_deviation() -> None:
    data, grains, _ = _case(0, 120.0, 60)
    whole = invert_map(data, grains, height=HEIGHT, sensor_size=SENSOR, sigma=SIGMA)
    events: list[tuple[str, int, int]] = []
    tiled = invert_tiled(data, grains, tile=60 * UM, height=HEIGHT, sensor_size=SENSOR,
                         sigma=SIGMA, progress=lambda *e: events.append(e))
    assert sum(1 for s, d, t in events if s == "tiles, pass 1" and d == t == 4) == 1
    z = (tiled.magnetization - whole.magnetization) / whole.sd
    assert np.sqrt(np.mean(z**2)) < 0.1  # the margin rule's target (rms over all grains)
    assert np.max(np.abs(z)) < 0.3
    # each grain's covariance is its own tile's: within a few % of the whole inversion's
    np.testing.assert_allclose(tiled.sd, whole.sd, rtol=0.05)
    np.testing.assert_allclose(tiled.residual.bz, whole.residual.bz, atol=0.1 * SIGMA)


@pytest.mark.slow
def test_one_pass_without_the_outside_field_is_far_off_so_passes_are_needed() -> None:
    """The reason for the passes: the field of grains left out leaks into a tile."""
    from smm_daq.analysis.mmt.tiles import tiled as tiled_module
    from smm_daq.analysis.mmt.tiles.factor import factor_tile, solve_factor

    data, grains, _ = _case(1, 80.0, 24, thickness_um=6.0)
    whole = invert_map(data, grains, height=HEIGHT, sensor_size=SENSOR, sigma=SIGMA)
    layout = tiled_module.default_layout(data, grains, 40 * UM, HEIGHT)
    assert len(layout.tiles) == 4
    xy = grains.centroids()[:, :2]
    owners = layout.owners(xy)
    worst = 0.0
    for k, t in enumerate(layout.tiles):
        own = np.flatnonzero(owners == k)
        band = t.unknowns(xy, layout.band)
        factor = factor_tile(data, grains, t, t.unknowns(xy, 0.0), band,
                             np.zeros(0, dtype=np.int64), HEIGHT, SENSOR)
        s = solve_factor(factor, None, True, own, SIGMA)
        worst = max(worst, float(np.max(np.abs(s.magnetization - whole.magnetization[own])
                                        / whole.sd[own])))
    assert worst > 1.0
    with open_client(processes=False, n_workers=1) as client:
        tiled = invert_tiled(data, grains, tile=40 * UM, height=HEIGHT, sensor_size=SENSOR,
                             sigma=SIGMA, client=client)
    z = (tiled.magnetization - whole.magnetization) / whole.sd
    assert np.sqrt(np.mean(z**2)) < 0.1


def test_a_tile_too_small_for_its_grains_is_refused_with_the_tile_named() -> None:
    from smm_daq.analysis.mmt.tiles.layout import plan_tiles
    from smm_daq.errors import InputError

    data, grains, _ = _case(2, 40.0, 12, thickness_um=6.0)
    layout = plan_tiles(data.x, data.y, 6 * UM, 0.0, 200 * UM)  # every grain in every tile
    with pytest.raises(InputError, match=r"tile \(0, 0\).*make the tile larger"):
        invert_tiled(data, grains, tile=6 * UM, height=HEIGHT, sensor_size=SENSOR,
                     sigma=SIGMA, layout=layout)


@pytest.mark.parametrize("pixels", [6, 7])
def test_a_tile_with_no_more_sensors_than_unknowns_is_refused_as_the_whole_inversion_is(
        pixels: int) -> None:
    """σ from the residual divides by the sensors less the unknowns: a tile of exactly as
    many sensors as unknowns (2 grains, 6 pixels) is refused naming the tile, as `invert_map`
    refuses such a map, and one sensor more gives a defined σ."""
    from smm_daq.analysis.mmt.tiles.layout import plan_tiles
    from smm_daq.errors import InputError

    cub = np.array([[4, 4, -2, 2, 2, 2], [10, 10, -3, 2, 2, 2]]) * UM
    x = np.linspace(0, 14, pixels) * UM
    y = np.array([7.0]) * UM
    X, Y = np.meshgrid(x, y)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, HEIGHT)]
    bz = cuboid_bz(sensors, cub, np.array([[1e4, 0, 0], [0, 1e4, 5e3]]),
                   sensor_size=(0, 0)).reshape(X.shape)
    bz += np.random.default_rng(0).normal(0, SIGMA, X.shape)
    data = MapData(bz=bz, x=x, y=y, height=HEIGHT, sensor_size=(0, 0), name="scan")
    grains = from_arrays(cub, np.array([1, 2]))
    layout = plan_tiles(x, y, 100 * UM, 0.0, 0.0)  # one tile: the whole map
    if pixels == 6:
        with pytest.raises(InputError, match=r"tile \(0, 0\).*6 finite pixels for 2 grains"):
            invert_tiled(data, grains, tile=100 * UM, height=HEIGHT, sensor_size=(0, 0),
                         layout=layout)
        with pytest.raises(InputError, match="6 finite pixels for 2 grains"):
            invert_map(data, grains, height=HEIGHT, sensor_size=(0, 0))
        return
    tiled = invert_tiled(data, grains, tile=100 * UM, height=HEIGHT, sensor_size=(0, 0),
                         layout=layout)
    assert tiled.sigma_from_residual and math.isfinite(tiled.sigma) and tiled.sigma > 0
    whole = invert_map(data, grains, height=HEIGHT, sensor_size=(0, 0))
    assert tiled.sigma == pytest.approx(whole.sigma, rel=1e-6)


def test_passes_on_a_cluster_go_on_when_the_estimate_does_not_change() -> None:
    """Many tiles, one of them holding every grain: each pass after the bands' leaves the
    estimate as it was, and the passes and the fitted map still run on the cluster (an
    estimate shared again under the last pass's key lost its data when that was released)."""
    data, grains, _ = _case(0, 40.0, 4)
    whole = invert_map(data, grains, height=HEIGHT, sensor_size=SENSOR, sigma=SIGMA)
    said: list[str] = []
    with open_client(processes=False, n_workers=1) as client:
        tiled = invert_tiled(data, grains, tile=10 * UM, height=HEIGHT, sensor_size=SENSOR,
                             sigma=SIGMA, client=client, info=said.append)
    assert said[0].startswith("16 tiles") and any("0 standard deviations" in s for s in said)
    z = (tiled.magnetization - whole.magnetization) / whole.sd
    assert np.max(np.abs(z)) < 0.1
