"""The point-sensor closed form of a whole grain with its logarithms and arctangents taken once
per (sensor, grain) pair (`grain_products`) against the same sums cuboid by cuboid, and
against the closed form of one box cut into many cuboids (whole turns of the Mz column's
argument, products of hundreds of cuboids' lengths)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from smm_daq.analysis.forward import _point_exact, _point_pair, _point_products
from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models import grain_products
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver import inversion
from smm_daq.analysis.mmt.solver.inversion import invert_map

UM = 1e-6
MU0_OVER_4PI = 1e-7


def _grid(size_um: float, step_um: float, height_um: float) -> np.ndarray:
    x = np.arange(0.0, size_um + 0.5 * step_um, step_um) * UM
    X, Y = np.meshgrid(x, x)
    return np.c_[X.ravel(), Y.ravel(), np.full(X.size, height_um * UM)]


def _model(grains, sensors, *, exact=False) -> GreenModel:
    return GreenModel.build(grains, (0.0, 0.0), sensors[:, :2].min(axis=0),
                            sensors[:, :2].max(axis=0), float(sensors[0, 2]), exact=exact)


def _closed_form_pairs(model: GreenModel, sensors: np.ndarray) -> tuple[int, int]:
    """(sensor, cuboid) pairs of grains nearer than their far-field switch: those taking the
    cuboid's closed form, and those taking its quadrupole."""
    g = model.grains
    near = np.sum((sensors[:, None, :] - model.centroid[None]) ** 2, axis=2) < model.far2
    d2 = np.sum((sensors[:, None, :] - g.cuboids[None, :, :3]) ** 2, axis=2)
    in_near_grain = near[:, g.grain]
    closed = in_near_grain & (d2 < model.cub_far2[None])
    return int(closed.sum()), int((in_near_grain & ~closed).sum())


@pytest.mark.parametrize(("seed", "height_um", "exact"), [
    (1, 1.0, False),  # as `benchmarks/mmt_scale.py`
    (4, 0.05, False),  # near contact
    (5, 3.0, True),  # no grain far field: every cuboid of every grain, near and far
])
def test_the_point_sensor_block_agrees_with_the_per_cuboid_closed_form(seed, height_um, exact):
    rng = np.random.default_rng(seed)
    sample = synth.make_sample((60 * UM, 60 * UM), 20 * UM, 1e5, rng)
    sensors = _grid(60.0, 1.0, height_um)
    model = _model(sample.grains, sensors, exact=exact)
    closed, quadrupole = _closed_form_pairs(model, sensors)
    assert closed > 20_000 and quadrupole > 500  # both tiers inside the grains' sums
    new = model.block(sensors)
    old = dataclasses.replace(model, per_grain_logs=False).block(sensors)
    scale = np.abs(old).max(axis=0)
    assert np.all(scale > 0)
    assert np.abs(new - old).max(axis=0).max() <= 1e-11 * scale.max()
    assert np.all(np.abs(new - old).max(axis=0) <= 1e-11 * scale)


@pytest.mark.parametrize(("n", "layers", "thickness_um", "height_um", "past_pi"), [
    (6, 2, 4.0, 0.05, True),  # a thick box just under the sensors: Mz turns past ±π
    (24, 1, 0.25, 0.5, False),  # 576 cuboids: their products leave the double range
])
def test_a_box_cut_into_cuboids_is_the_closed_form_of_the_box(n, layers, thickness_um,
                                                               height_um, past_pi):
    """One grain: a box of 6 × 6 µm cut into n × n × layers cuboids, its top 0.05 µm under the
    sample top; each sensor's columns are the closed form of the whole box."""
    side = 6.0 * UM
    depth = thickness_um * UM
    top = -0.05 * UM
    edge = side / n
    centres = (np.arange(n) + 0.5) * edge
    heights = top - (np.arange(layers) + 0.5) * depth / layers
    X, Y, Z = (a.ravel() for a in np.meshgrid(centres, centres, heights))
    cuboids = np.c_[X, Y, Z, np.full((X.size, 2), edge), np.full(X.size, depth / layers)]
    grains = from_arrays(cuboids, np.zeros(X.size, dtype=int), source="test")
    sensors = _grid(6.0, 0.5, height_um)
    model = _model(grains, sensors, exact=True)
    # every cuboid by its closed form, not its quadrupole
    model = dataclasses.replace(model, cub_far2=np.full_like(model.cub_far2, np.inf))
    assert _closed_form_pairs(model, sensors) == (sensors.shape[0] * X.size, 0)
    block = model.block(sensors) / MU0_OVER_4PI
    box = np.array([_point_exact(sx - 0.5 * side, sy - 0.5 * side, sz - (top - 0.5 * depth),
                                 0.5 * side, 0.5 * side, 0.5 * depth)
                    for sx, sy, sz in sensors])
    assert (np.abs(box[:, 2]).max() > np.pi) == past_pi
    assert np.abs(block - box).max() <= 1e-10 * np.abs(box).max()


def test_the_inversion_agrees_with_the_per_cuboid_closed_form(monkeypatch):
    """M to 1e-9 of its SD and the covariance to 1e-6, as the GPU path is held to."""
    rng = np.random.default_rng(4)
    sample = synth.make_sample((40 * UM, 40 * UM), 20 * UM, 1e5, rng)
    assert sample.grains.n_grains >= 3
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0.0, 0.0),
                      noise=5e-9, rng=rng)
    new = invert_map(data, sample.grains, height=1 * UM, sensor_size=(0.0, 0.0), sigma=5e-9)
    build = GreenModel.build

    def per_cuboid(*args, **kwargs):
        return dataclasses.replace(build(*args, **kwargs), per_grain_logs=False)

    monkeypatch.setattr(inversion.GreenModel, "build", per_cuboid)
    old = invert_map(data, sample.grains, height=1 * UM, sensor_size=(0.0, 0.0), sigma=5e-9)
    sd = np.sqrt(np.diagonal(old.covariance, axis1=1, axis2=2))
    assert np.all(np.isfinite(sd))
    assert np.all(np.abs(new.magnetization - old.magnetization) <= 1e-9 * sd)
    scale = np.abs(old.covariance).max(axis=(1, 2))[:, None, None]  # each grain's block
    assert np.all(np.abs(new.covariance - old.covariance) <= 1e-6 * scale)


def _one_sensor(sensor, first, last, cuboids, half, far2):
    """A grain's columns at one sensor cuboid by cuboid, from the same compiled pieces as
    `point_grain_tile`: its reference, operation for operation."""
    fx = fy = fz = 0.0
    products = grain_products.EMPTY
    for m in range(first, last):
        dx, dy, dz = (sensor[k] - cuboids[m, k] for k in range(3))
        a, b, c = half[m]
        if dx * dx + dy * dy + dz * dz >= far2[m]:
            ex, ey, ez = _point_pair(dx, dy, dz, a, b, c, far2[m])
            fx, fy, fz = fx + ex, fy + ey, fz + ez
        else:
            products = grain_products.times_cuboid(products,
                                                   _point_products(dx, dy, dz, a, b, c))
    ex, ey, ez = grain_products.columns(products)
    return fx + ex, fy + ey, fz + ez


def _box_grain(n: int, thickness_um: float) -> tuple[np.ndarray, np.ndarray]:
    """A 6 × 6 µm box of n × n cuboids, its top 0.05 µm under the sample top: (cuboids, half)."""
    edge = 6.0 * UM / n
    centres = (np.arange(n) + 0.5) * edge
    X, Y = (a.ravel() for a in np.meshgrid(centres, centres))
    depth = thickness_um * UM
    cuboids = np.c_[X, Y, np.full(X.size, -0.05 * UM - 0.5 * depth)]
    half = np.c_[np.full((X.size, 2), 0.5 * edge), np.full(X.size, 0.5 * depth)]
    return np.ascontiguousarray(cuboids), np.ascontiguousarray(half)


@pytest.mark.parametrize("count", [1, 3, 4, 6, 13, 64])
@pytest.mark.parametrize(("n", "thickness_um", "height_um"), [
    (8, 4.0, 0.05),  # Mz past ±π, cuboids past some sensors' switch and not others'
    (24, 0.25, 0.5),  # 576 cuboids: their products leave the double range
])
def test_a_tile_of_sensors_is_each_sensor_on_its_own_to_the_bit(count, n, thickness_um,
                                                                 height_um):
    """`point_grain_tile` across sensors (any count, padded to whole vectors) gives each
    sensor's columns exactly as one sensor at a time would: the cuboids beyond a sensor's
    switch take its quadrupole there while nearer sensors take the closed form."""
    cuboids, half = _box_grain(n, thickness_um)
    rng = np.random.default_rng(count)
    sensors = np.c_[rng.uniform(-3, 9, (count, 2)) * UM, np.full(count, height_um * UM)]
    # each cuboid's switch a few µm out: some sensors beyond it, some not
    far2 = np.full(cuboids.shape[0], (3.0 * UM) ** 2)
    index = rng.permutation(count + 5)[:count]  # the tile's sensors as the kernel lists them
    in_block = np.zeros((count + 5, 3))
    in_block[index] = sensors
    work = np.full((13, 64), np.nan)
    cols = np.full((3, 64), np.nan)
    grain_products.point_grain_tile(in_block, index, count, 0, cuboids.shape[0], cuboids,
                                    half, far2, work, cols)
    expect = np.array([_one_sensor(s, 0, cuboids.shape[0], cuboids, half, far2)
                       for s in sensors]).T
    d2 = np.sum((sensors[:, None, :] - cuboids[None]) ** 2, axis=2)
    if count >= 13:
        assert np.any(d2 >= far2) and np.any(d2 < far2)  # both forms in one call
    assert np.array_equal(cols[:, :count], expect)
