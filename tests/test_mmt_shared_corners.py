"""Area sensors on a lattice whose pitch is the sensor's size share their corners: each
corner's value is computed once per cuboid instead of once per sensor. The rows of Q must be
those of the per-sensor exact form (the same sums, regrouped), also with holes in the map,
part rows and several grains, and against an independent quadrature of the point field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import sparse

from smm_daq.analysis.forward import cuboid_bz_kernel
from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt.models.cuboid import GreenModel, sensor_lattice
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver import inversion
from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.analysis.mmt.solver.inversion import accumulate, forward
from smm_daq.analysis.mmt.solver.joint import StackedModel

UM = 1e-6


def _grains():
    """Two grains of several cuboids (one shallow, one deep), and a single-cuboid grain."""
    cub = np.array([
        [0.0, 0.0, -1.5, 2.0, 1.5, 2.0], [2.0, 0.0, -1.5, 2.0, 1.5, 2.0],
        [1.0, 1.5, -2.0, 3.0, 1.5, 3.0],
        [9.0, -6.0, -9.0, 3.0, 4.0, 2.0], [9.0, -6.0, -12.0, 5.0, 2.0, 4.0],
        [-7.0, 8.0, -4.0, 1.0, 1.0, 1.0],
    ]) * UM
    return from_arrays(cub, np.array([1, 1, 1, 2, 2, 3]))


def _lattice_sensors(step: float, *, holes: bool = True) -> np.ndarray:
    x = np.arange(-15, 19) * step + 0.3 * UM
    y = np.arange(-14, 17) * step - 0.2 * UM
    X, Y = np.meshgrid(x, y)
    pts = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]
    if holes:  # masked pixels, and a block that ends part way along a row
        keep = np.ones(len(pts), bool)
        keep[[5, 40, 41, 42, 300, 301, 333]] = False
        pts = pts[keep][: len(pts) - 50]
    return pts


@pytest.mark.parametrize("size_um", [1.0, 1.2])
def test_shared_corners_give_the_per_sensor_exact_rows(size_um):
    size = size_um * UM
    grains = _grains()
    sensors = _lattice_sensors(size)
    assert sensor_lattice(sensors, (size, size)) is not None  # the shared path is taken
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    for exact in (False, True):
        shared = GreenModel.build(grains, (size, size), lo, hi, 1.0 * UM, exact=exact)
        alone = dataclasses.replace(shared, share_corners=False)
        q_shared, q_alone = shared.block(sensors), alone.block(sensors)
        col_max = np.abs(q_alone).max(axis=0)
        assert np.all(np.abs(q_shared - q_alone) <= 1e-9 * col_max)


def test_shared_corners_agree_with_quadrature_of_the_point_field():
    """Independent of the area closed form: a 24 × 24 Gauss-Legendre average of the
    point-sensor field over each sensor (cuboids summed), exact form everywhere."""
    size = 1.0 * UM
    grains = _grains()
    sensors = _lattice_sensors(size, holes=False)[::7]
    every = _lattice_sensors(size, holes=False)
    lo, hi = every[:, :2].min(axis=0), every[:, :2].max(axis=0)
    model = GreenModel.build(grains, (size, size), lo, hi, 1.0 * UM, exact=True)
    rows = model.block(every)
    index = np.flatnonzero(np.isin(every[:, 0] + 1e3 * every[:, 1],
                                   sensors[:, 0] + 1e3 * sensors[:, 1]))
    nodes, weights = np.polynomial.legendre.leggauss(24)
    offsets = np.array([(u, v) for u in nodes for v in nodes])
    w2 = np.outer(weights, weights).ravel() / 4
    pts = (sensors[:, None, :2] + 0.5 * size * offsets[None]).reshape(-1, 2)
    pts = np.c_[pts, np.full(len(pts), 1.0 * UM)]
    point = cuboid_bz_kernel(pts, grains.cuboids).reshape(len(sensors), len(w2), -1, 3)
    avg = np.einsum("k,skmj->smj", w2, point)
    expected = np.stack([avg[:, grains.grain == g].sum(axis=1) for g in range(3)], axis=1)
    expected = expected.reshape(len(sensors), -1)
    col_max = np.abs(rows).max(axis=0)
    assert np.all(np.abs(rows[index] - expected) <= 1e-6 * col_max)


def test_no_lattice_for_other_pitches_or_scattered_sensors():
    size = 1.0 * UM
    on_grid = _lattice_sensors(size)
    assert sensor_lattice(on_grid, (size, size)) is not None
    # sensors half their pitch in size sit on every other place of a finer lattice: nothing
    # to share
    assert sensor_lattice(on_grid, (0.5 * size, 0.5 * size)) is None
    assert sensor_lattice(on_grid, (0.0, 0.0)) is None  # point sensors
    tilted = on_grid.copy()
    tilted[:, 2] += 1e-3 * tilted[:, 0]
    assert sensor_lattice(tilted, (size, size)) is None  # not in one plane
    scattered = on_grid[[0, -1]] * [1, 1, 1] + [[0, 0, 0], [500 * UM, 0, 0]]
    assert sensor_lattice(scattered, (size, size)) is None
    assert sensor_lattice(np.vstack([on_grid, on_grid[:1]]), (size, size)) is None  # twice


def _parts(held):
    """What `accumulate` kept of each block, without the block's span of sensors."""
    return [part for _, _, part in held]


@pytest.mark.parametrize("size_um", [0.0, 1.0])
def test_the_fitted_map_needs_only_the_sparse_near_part_of_q(size_um):
    """Where not all of Q fits its budget, `accumulate` keeps of each block only the sparse
    part of the (sensor, grain) pairs nearer than the grain's far-field switch; the fitted
    field from it and the far fields computed again equals Q M, for point sensors and for
    area sensors sharing corners."""
    size = size_um * UM
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-60, 60) * UM, np.arange(-50, 50) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    model = GreenModel.build(grains, (size, size), lo, hi, 1.0 * UM)
    m = np.array([[3e4, -1e4, 2e4], [-2e4, 4e4, 1e4], [5e3, 5e3, -4e4]])
    q = model.block(sensors)
    phi = q @ m.ravel()
    _, spans = accumulate(model, sensors, phi, block=4000, keep_bytes=q.nbytes - 1,
                          streams=1)  # not all of Q
    kept = _parts(spans)
    assert len(kept) == 3 and all(sparse.issparse(k) for k in kept)
    near = np.vstack([k.toarray() for k in kept])
    assert 0 < np.count_nonzero(near) < 0.5 * q.size
    held = near != 0  # the kept entries are Q's own (to rounding: blocks share fewer corners)
    np.testing.assert_allclose(near[held], q[held], rtol=0, atol=1e-9 * np.abs(q).max())
    fitted = forward(model, sensors, m, block=4000, rows=spans)
    assert np.all(np.abs(fitted - phi) <= 1e-9 * np.abs(phi).max())
    # every tier is used: the grain's far field to each of its orders, and the cuboid sums
    d2 = np.sum((sensors[:, None, :] - model.centroid[None]) ** 2, axis=-1)
    switches = np.c_[model.coarse2, model.fine2, model.far2]  # each order's, nearer each
    tier = np.sum(d2[:, :, None] < switches[None], axis=-1)  # 0: order 2, …, last: sums
    assert set(np.unique(tier)) == set(range(switches.shape[1] + 1))
    # the far fields dotted with M are Q's entries that were not kept, times M
    np.testing.assert_allclose(model.far_field(sensors, m.ravel()),
                               np.where(held, 0.0, q) @ m.ravel(),
                               rtol=0, atol=1e-12 * np.abs(phi).max())
    far = forward(model, sensors, m, block=4000,  # two blocks beyond the budget
                  rows=[(s, n, k if b == 1 else None) for b, (s, n, k) in enumerate(spans)])
    assert np.all(np.abs(far - phi) <= 1e-9 * np.abs(phi).max())


def test_what_the_fitted_map_keeps_stays_within_its_budget():
    """Blocks whose near part would pass the budget keep nothing (the fitted map computes
    them again); the kept bytes never pass it."""
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-60, 60) * UM, np.arange(-50, 50) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    model = GreenModel.build(grains, (UM, UM), lo, hi, 1.0 * UM)
    phi = np.zeros(len(sensors))
    whole = len(sensors) * model.n_columns * 8  # all of Q would be kept as rows
    _, everything = accumulate(model, sensors, phi, block=4000, keep_bytes=whole - 1,
                               streams=1)
    sizes = [k.data.nbytes + k.indices.nbytes + k.indptr.nbytes for k in _parts(everything)]
    budget = sizes[0] + sizes[1] // 2
    _, held = accumulate(model, sensors, phi, block=4000, keep_bytes=budget, streams=1)
    kept = _parts(held)
    assert kept[0] is not None and kept[1] is None
    assert sum(k.data.nbytes + k.indices.nbytes + k.indptr.nbytes
               for k in kept if k is not None) <= budget
    _, none = accumulate(model, sensors, phi, block=4000, streams=1)
    assert none is None


# numba's workqueue layer aborts on kernels from two threads at once (`streams.stream_count`)
@pytest.mark.parametrize("streams", [1, pytest.param(2, marks=pytest.mark.skipif(
    not qr_streams._threadsafe_layer(), reason="numba's layer takes one thread at a time"))])
def test_the_rows_are_kept_where_all_of_q_fits_though_a_near_part_is_smaller(streams):
    """All of Q within its budget and KEEP_ROWS_BYTES: the fitted map is then one product with
    the rows, no far fields computed again."""
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-30, 30) * UM, np.arange(-25, 25) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]  # 3,000
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    model = GreenModel.build(grains, (0.0, 0.0), lo, hi, 1.0 * UM)
    q = model.block(sensors)
    m = np.linspace(-3e4, 4e4, model.n_columns)
    phi = q @ m
    _, held = accumulate(model, sensors, phi, block=1000, keep_bytes=q.nbytes, streams=streams)
    parts = _parts(held)
    assert all(isinstance(k, np.ndarray) for k in parts)
    np.testing.assert_allclose(np.vstack(parts), q, rtol=0, atol=1e-12 * np.abs(q).max())
    fitted = forward(model, sensors, m, block=1000, rows=held)
    np.testing.assert_allclose(fitted, phi, rtol=0, atol=1e-12 * np.abs(phi).max())


def test_a_q_over_keep_rows_bytes_keeps_its_near_part_though_all_of_it_fits(monkeypatch):
    """Where all of Q fits the budget but not KEEP_ROWS_BYTES, the cuboid model's blocks keep
    their sparse near part (copying a large Q's rows into fresh memory cost more than its far
    fields computed again), the exact model's still their rows (its near part is no smaller);
    the fitted field is Q M either way."""
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-30, 30) * UM, np.arange(-25, 25) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]  # 3,000
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    for exact, kind in ((False, sparse.bsr_matrix), (True, np.ndarray)):
        model = GreenModel.build(grains, (0.0, 0.0), lo, hi, 1.0 * UM, exact=exact)
        q = model.block(sensors)
        m = np.linspace(-3e4, 4e4, model.n_columns)
        phi = q @ m
        monkeypatch.setattr(inversion, "KEEP_ROWS_BYTES", q.nbytes - 1, raising=False)
        _, held = accumulate(model, sensors, phi, block=1000, keep_bytes=q.nbytes, streams=1)
        assert [type(k) for k in _parts(held)] == [kind] * 3
        fitted = forward(model, sensors, m, block=1000, rows=held)
        np.testing.assert_allclose(fitted, phi, rtol=0, atol=1e-12 * np.abs(phi).max())


def test_rows_are_kept_whole_where_no_near_part_is_smaller():
    """The exact model (no grain far field) has no cheap far part: its blocks are kept as rows
    when all of Q fits the budget, else none is (a share of Q would save only its share of a
    cheap recomputation). Point-source models keep none: their rows are computed again faster
    than copied. The fitted field is Q M either way."""
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-30, 30) * UM, np.arange(-25, 25) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]  # 3,000
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    exact = GreenModel.build(grains, (0.0, 0.0), lo, hi, 1.0 * UM, exact=True)
    points = MultipoleModel.build(point_grains(grains.centroids(), grains.volumes()),
                                  Sensor.from_size((0.0, 0.0)), "quadrupole")
    for model, fits in ((exact, np.ndarray), (points, type(None))):
        m = np.linspace(-3e4, 4e4, model.n_columns)
        q = model.block(sensors, np.empty((len(sensors), model.n_columns)))
        phi = q @ m
        for budget, kind in ((q.nbytes, fits), (q.nbytes - 1, type(None))):
            _, held = accumulate(model, sensors, phi, block=1000, keep_bytes=budget, streams=1)
            assert [type(k) for k in _parts(held)] == [kind] * 3
            fitted = forward(model, sensors, m, block=1000, rows=held)
            np.testing.assert_allclose(fitted, phi, rtol=0, atol=1e-9 * np.abs(phi).max())


@pytest.mark.parametrize("size_um", [0.0, 1.0])
def test_blocks_with_a_short_last_one_give_the_triangle_of_one_block(size_um):
    """R and Uᵀφ accumulated over blocks of 1,000 sensors, the last one short, against the
    QR of the whole [Q | φ] at once (numpy's, with R's diagonal made ≥ 0)."""
    size = size_um * UM
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-30, 30) * UM, np.arange(-25, 20) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]  # 2,700 sensors
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    model = GreenModel.build(grains, (size, size), lo, hi, 1.0 * UM)
    q = model.block(sensors)
    phi = q @ np.array([3e4, -1e4, 2e4, -2e4, 4e4, 1e4, 5e3, 5e3, -4e4]) + 1e-9 * np.sin(
        np.arange(len(sensors)))
    tri, kept = accumulate(model, sensors, phi, block=1000, keep_bytes=2**30, streams=1)
    r = np.linalg.qr(np.c_[q, phi], mode="r")
    r *= np.where(np.diag(r) < 0, -1.0, 1.0)[:, None]
    n = model.n_columns
    np.testing.assert_allclose(tri.r, r[:n, :n], atol=1e-9 * np.abs(r).max())
    np.testing.assert_allclose(tri.c, r[:n, n], atol=1e-9 * np.abs(r[:n, n]).max())
    fitted = forward(model, sensors, np.reshape(np.linalg.lstsq(q, phi)[0], (-1, 3)),
                     block=1000, rows=kept)
    np.testing.assert_allclose(fitted, q @ np.linalg.lstsq(q, phi)[0],
                               atol=1e-9 * np.abs(phi).max())


def test_a_joint_cuboid_inversion_keeps_each_scans_sparse_near_part():
    """Two scans of cuboid grains (point sensors at 1 µm, area sensors at 3 µm) stacked with
    their weights: a block that spans both keeps the near parts of both, and the fitted field
    from them is the weighted Q M, as computed again without them."""
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-40, 40) * UM, np.arange(-30, 30) * UM)
    xy = np.c_[X.ravel(), Y.ravel()]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    models = [GreenModel.build(grains, (0.0, 0.0), lo, hi, 1.0 * UM),
              GreenModel.build(grains, (UM, UM), lo, hi, 3.0 * UM)]
    stacked = StackedModel(models, np.array([2.0, 0.5]), 9)
    sensors = np.r_[np.c_[xy, np.full(len(xy), 1.0 * UM), np.zeros(len(xy))],
                    np.c_[xy, np.full(len(xy), 3.0 * UM), np.ones(len(xy))]]
    m = np.array([3e4, -1e4, 2e4, -2e4, 4e4, 1e4, 5e3, 5e3, -4e4])
    phi = stacked.block(sensors, np.empty((len(sensors), 9))) @ m
    _, held = accumulate(stacked, sensors, phi, block=3000, keep_bytes=phi.size * 9 * 8 - 1,
                         streams=1)  # not all of Q
    kept = _parts(held)
    assert len(kept) == 4 and all(isinstance(k, sparse.bsr_matrix) for k in kept)
    assert sum(k.nnz for k in kept) < 0.5 * phi.size * 9  # the 2nd block spans both scans
    size = sum(k.data.nbytes + k.indices.nbytes + k.indptr.nbytes for k in kept)
    _, within = accumulate(stacked, sensors, phi, block=3000, keep_bytes=size,
                           streams=1)  # just enough
    assert all(k is not None for k in _parts(within))
    assert sum(k.data.nbytes + k.indices.nbytes + k.indptr.nbytes
               for k in _parts(within)) <= size
    for rows in (held, None):
        fitted = forward(stacked, sensors, m, block=3000, rows=rows)
        assert np.all(np.abs(fitted - phi) <= 1e-9 * np.abs(phi).max())
    points = StackedModel([MultipoleModel.build(point_grains(grains.centroids(),
                                                             grains.volumes()),
                                                Sensor.from_size((0.0, 0.0)), "dipole")],
                          np.array([1.0]), 9)
    _, none = accumulate(points, sensors[:4800], phi[:4800], block=3000, keep_bytes=2**30,
                         streams=1)
    assert _parts(none) == [None, None]  # point sources: computed again, never kept


def _grid_case(size_um: float):
    """The three grains under 60 × 50 sensors (47 tiles of the kernels), with Q's rows."""
    grains = _grains()
    X, Y = np.meshgrid(np.arange(-30, 30) * UM, np.arange(-25, 25) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1.0 * UM)]
    lo, hi = sensors[:, :2].min(axis=0), sensors[:, :2].max(axis=0)
    model = GreenModel.build(grains, (size_um * UM, size_um * UM), lo, hi, 1.0 * UM)
    return model, sensors, model.block(sensors)


def test_the_near_part_holds_each_pair_nearer_than_its_grains_switch_and_no_other():
    """The near part's kernels test a grain's sensors only in the tiles its switch reaches:
    the pairs kept are still exactly those nearer than it, with Q's own entries."""
    model, sensors, q = _grid_case(0.0)
    part = model.near_part(sensors, q)
    d2 = np.sum((sensors[:, None, :] - model.centroid[None]) ** 2, axis=-1)
    near = d2 < model.far2[None]
    assert 0 < np.count_nonzero(near) < near.size // 10  # some tiles reached, most not
    sensor = np.repeat(np.arange(len(sensors)), np.diff(part.indptr))
    assert np.array_equal(np.c_[sensor, part.indices], np.argwhere(near))  # by sensor, grain
    columns = 3 * part.indices[:, None] + np.arange(3)
    assert np.array_equal(part.data[:, 0, :], q[sensor[:, None], columns])


def test_the_fitted_map_takes_the_far_fields_once_for_each_run_of_near_parts():
    """The far fields of consecutive blocks whose near part was kept are one call over their
    sensors (not one a block: each call starts its kernels' threads anew), and the fitted
    map is Q M."""
    model, sensors, q = _grid_case(0.0)
    m = np.linspace(-3e4, 4e4, model.n_columns)
    _, held = accumulate(model, sensors, q @ m, block=700, keep_bytes=q.nbytes - 1,
                         streams=1)  # 5 blocks, each its near part
    assert len(held) == 5 and all(sparse.issparse(part) for part in _parts(held))
    calls = []

    class Spy:
        n_columns = model.n_columns

        def far_field(self, s, flat):
            calls.append(len(s))
            return model.far_field(s, flat)

        def field(self, s, flat):
            calls.append(-len(s))
            return model.field(s, flat)

    fitted = forward(Spy(), sensors, m, rows=held)
    assert calls == [len(sensors)]
    np.testing.assert_allclose(fitted, q @ m, rtol=0, atol=1e-12 * np.abs(q @ m).max())
    calls.clear()  # a block not kept splits the runs
    gap = [(s, n, None if b == 2 else part) for b, (s, n, part) in enumerate(held)]
    fitted = forward(Spy(), sensors, m, rows=gap)
    assert calls == [1400, 900, -700]
    np.testing.assert_allclose(fitted, q @ m, rtol=0, atol=1e-12 * np.abs(q @ m).max())
