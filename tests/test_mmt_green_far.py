"""The grain far field of the MMT Green's matrix against independent results: the Taylor
terms of 1/|r − r'| (by contour integration), the largest zero-mean term (by linear
programming), and the field summed over the grain's cuboids, on ordinary and adversarial
grain shapes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import linprog

from smm_daq.analysis.forward import cuboid_bz_kernel
from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.cuboid import (
    GRAIN_ORDERS,
    GRAIN_TOLERANCE,
    HIGHER_ORDERS,
    LANES,
    NEAR_TOLERANCE,
    GreenModel,
    _by_last_order,
    _first_scale,
    _grain_orders,
    _green_block,
    _higher_orders_field,
    _top_order,
    distance_to_scan,
)
from smm_daq.analysis.mmt.models.expansion_terms import (
    OCTUPOLE_CONSTANT,
    ORDER5_CONSTANT,
    even_remainder_bound,
    grain_order_terms,
    remainder_bound,
    switch_distance,
)

UM = 1e-6
MU0_OVER_4PI = 1e-7


def _sphere(n):
    """n nearly uniform unit vectors (Fibonacci sphere)."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * i / n)
    azimuth = math.pi * (1 + 5**0.5) * i
    return np.c_[np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)]


def _taylor_terms(field_dir, j, sources, orders):
    """Order-n terms, in powers of the source position r' (rows of `sources`), of
    ∂z∂j 1/|r − r'| at the unit field point r = field_dir: Taylor coefficients in t of
    g(t) = ∂z∂j 1/|r − t r'| by the trapezoidal rule on the circle |t| = 1/2 (g is analytic
    for |t| < 1/|r'|)."""
    n_nodes = 64
    t = 0.5 * np.exp(2j * math.pi * np.arange(n_nodes) / n_nodes)
    d = field_dir[None, None, :] - t[:, None, None] * sources[None, :, :]
    d2 = np.sum(d * d, axis=-1)
    g = (3 * d[..., 2] * d[..., j] - (j == 2) * d2) / (d2 * d2 * np.sqrt(d2))  # d2**2.5
    coeff = np.fft.fft(g, axis=0) / n_nodes / 0.5 ** np.arange(n_nodes)[:, None]
    return coeff[orders].real


def test_a_unit_source_term_is_at_most_n_plus_1_times_n_plus_2():
    """The pointwise bound behind the tail of `remainder_bound`: |order-n term| ≤ (n+1)(n+2)
    s^n / R^(n+3), attained on the axis through the source."""
    sources = _sphere(2000)
    orders = np.arange(9)
    for field_dir in _sphere(24):
        for j in range(3):
            terms = np.abs(_taylor_terms(field_dir, j, sources, orders)).max(axis=1)
            assert np.all(terms <= (orders + 1) * (orders + 2) * (1 + 1e-9))
    on_axis = _taylor_terms(np.array([0.0, 0, 1]), 2, np.array([[0.0, 0, 1]]), orders)[:, 0]
    np.testing.assert_allclose(on_axis, (orders + 1) * (orders + 2), rtol=1e-9)


LP_ORDERS = (3, 5)


@pytest.fixture(scope="module")
def lp_terms() -> tuple[np.ndarray, dict[int, list[np.ndarray]]]:
    """The linear programs' mass points (a grid in the unit ball) and, for each order of
    LP_ORDERS, the order's term at each point for each (field point above the centre,
    component j): both orders from one contour integral, which costs more than the
    programs. 400 directions find 12.41 and 27.56 (800: 12.45 and 27.90), below 13 and 30."""
    dirs = _sphere(400)
    radii = np.linspace(0.1, 1.0, 10)
    points = (radii[:, None, None] * dirs[None]).reshape(-1, 3)
    terms: dict[int, list[np.ndarray]] = {order: [] for order in LP_ORDERS}
    for field_dir in [np.array([0.0, 0, 1]), *(_sphere(12)[6:])]:
        for j in range(3):
            for order, term in zip(LP_ORDERS, _taylor_terms(field_dir, j, points, list(LP_ORDERS)),
                                   strict=True):
                terms[order].append(term)
    return points, terms


@pytest.mark.parametrize(("order", "constant"), [(3, OCTUPOLE_CONSTANT), (5, ORDER5_CONSTANT)])
def test_the_first_neglected_term_of_a_zero_mean_distribution_is_within_its_constant(
        lp_terms, order, constant):
    """The largest order-n term over distributions of unit mass with zero mean inside the unit
    ball (a linear program over masses on a grid of points), for field points above the
    centre: below the constant, and far above the two-point (line) extreme, which a constant
    derived from two points on a line would miss."""
    points, terms = lp_terms
    a_eq = np.vstack([np.ones(points.shape[0]), points.T])
    b_eq = np.array([1.0, 0, 0, 0])
    largest = 0.0
    for term in terms[order]:
        for sign in (1.0, -1.0):
            res = linprog(-sign * term, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
            largest = max(largest, -res.fun)
    assert largest <= constant
    w = np.linspace(0.01, 0.5, 500)  # mass w at 1, 1 − w at −w/(1 − w): zero mean
    line = np.max(w * (1 - (w / (1 - w)) ** (order - 1))) * (order + 1) * (order + 2)
    assert largest > 1.5 * line


def _grain_set(shapes):
    """Grains (cuboids (K, 6) in m each) placed far apart along x."""
    cub = np.concatenate([s + np.array([200 * UM * i, 0, -30 * UM, 0, 0, 0])
                          for i, s in enumerate(shapes)])
    labels = np.concatenate([np.full(s.shape[0], i + 1) for i, s in enumerate(shapes)])
    return from_arrays(cub, labels)


def _cube(centre, edge):
    return np.array([[*centre, edge, edge, edge]]) * UM


def _shapes():
    rng = np.random.default_rng(7)
    ring = [_cube((4 * math.cos(a), 4 * math.sin(a), -2.2), 0.6)
            for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    return [
        *(synth.random_grain(rng, d * UM) for d in (2.0, 6.0, 14.0)),
        np.concatenate([_cube((0, 0, 0), 3.0), _cube((5, 1, 2), 1.0)]),  # lopsided dumbbell
        np.array([[0, 0, 0, 9, 1.5, 1.5], [3.75, 3.75, 0, 1.5, 6, 1.5]]) * UM,  # an L
        np.array([[0, 0, 0, 10, 8, 0.75]]) * UM,  # a flat plate
        np.concatenate([_cube((0, 0, 5), 1.2), *ring]),  # a point above a ring: the extreme
    ]


def _up_to(model: GreenModel, order: int) -> GreenModel:
    """The model with every grain's far field to `order` (one of GRAIN_ORDERS) at every
    distance."""
    G = model.grains.n_grains
    inf, zero = np.full(G, np.inf), np.zeros(G)
    return dataclasses.replace(
        model, far2=zero, coarse2=inf if order > 2 else zero,
        fine2=np.stack([inf if order > top else zero for top in GRAIN_ORDERS[1:-1]], axis=1))


@pytest.mark.parametrize("size_um", [(0.0, 0.0), (2.0, 1.5)])
def test_grain_expansions_stay_within_their_bounds_and_higher_orders_converge_faster(size_um):
    """The grain far fields to each of GRAIN_ORDERS (2 to 12) against the field summed over
    the grain's cuboids (the forward model's own accurate kernel), from ρ/R = 0.45 to 0.05
    (orders from 6: to 0.2, beyond which their bounds fall to the reference's own error) and
    in all directions above: every error within `remainder_bound`; and each order much
    closer than the one before where that error is well above the reference's (about 2e-8
    of the scale at most), so the moments are right."""
    grains = _grain_set(_shapes())
    size = (size_um[0] * UM, size_um[1] * UM)
    model = GreenModel.build(grains, size, np.zeros(2), np.zeros(2), 1 * UM)
    G = grains.n_grains
    orders = {n: _up_to(model, n) for n in GRAIN_ORDERS}
    rho = grains.radii() + math.hypot(*size) / 2
    dirs = _sphere(60)
    dirs = dirs[dirs[:, 2] > 0.3]
    start = grains.start
    compared = set()  # the orders compared with the one before
    for g in range(G):
        cuboids = grains.cuboids[start[g]:start[g + 1]]
        top = np.max(cuboids[:, 2] + cuboids[:, 5] / 2)
        for x in (0.45, 0.3, 0.2, 0.1, 0.05):
            R = rho[g] / x
            sensors = model.centroid[g] + R * dirs
            sensors = sensors[sensors[:, 2] > top + 0.2 * UM]
            ref = cuboid_bz_kernel(sensors, cuboids, sensor_size=size).sum(axis=1)
            scale = MU0_OVER_4PI * model.volume[g] / R**3
            err = {n: np.abs(m.block(sensors)[:, 3 * g:3 * g + 3] - ref).max()
                   for n, m in orders.items() if n <= 4 or x >= 0.2}
            for n, e in err.items():
                assert e <= remainder_bound(np.array(x), n) * scale, (g, x, n)
            if x == 0.2:
                assert err[4] < 0.3 * err[2], (g, x)
            for n in GRAIN_ORDERS[2:]:
                if x == 0.3 and err[n - 2] > 3e-7 * scale:  # 15× the reference's error
                    assert err[n] < 0.5 * err[n - 2], (g, x, n, err)
                    compared.add(n)
    assert compared == set(GRAIN_ORDERS[2:])


def test_the_switch_uses_each_order_nearer_than_the_one_before_and_exact_uses_none():
    grains = _grain_set(_shapes()[:3])
    model = GreenModel.build(grains, (0, 0), np.zeros(2), np.array([300, 50]) * UM, 1 * UM)
    nearer_each = np.c_[model.coarse2, model.fine2, model.far2]  # each order's switch
    assert nearer_each.shape[1] == len(GRAIN_ORDERS)
    assert np.all(np.diff(nearer_each, axis=1) < 0)
    exact = GreenModel.build(grains, (0, 0), np.zeros(2), np.array([300, 50]) * UM, 1 * UM,
                             exact=True)
    assert np.all(np.isinf(exact.far2))


def _sixty_halvings(rho, r_ref, bound, tol):
    """The switching distance by a bisection on log R of a fixed 60 halvings, one order at a
    time: the reference for the model's, which finds all orders at once and stops early."""
    def excess(r):
        return bound(rho / r) * (r_ref / r) ** 3 - tol

    lo, hi = rho.copy(), 2.0 * rho
    while np.any(excess(hi) > 0):
        hi = np.where(excess(hi) > 0, 2.0 * hi, hi)
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        above = excess(mid) > 0
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return hi


@pytest.mark.parametrize("size_um", [0.0, 1.0])
def test_the_switches_found_at_once_are_those_of_each_order_on_its_own(size_um):
    """The model finds the switching distances of all grain orders (and of both cuboid
    expansions) in one bisection that stops once no bracket moves: the same doubles as 60
    halvings for each order on its own, bounds given an array of orders the same values as
    given each order."""
    x = np.linspace(0.01, 0.95, 40)
    orders = np.array(GRAIN_ORDERS)[:, None]
    for n in GRAIN_ORDERS:
        np.testing.assert_array_equal(remainder_bound(x, orders)[GRAIN_ORDERS.index(n)],
                                      remainder_bound(x, n))
    np.testing.assert_array_equal(even_remainder_bound(x, np.array([[6], [10]])),
                                  [even_remainder_bound(x, 6), even_remainder_bound(x, 10)])
    grains = _grain_set(_shapes())
    p = 0.5 * size_um * UM
    lo, hi = np.zeros(2), np.array([300, 50]) * UM
    model = GreenModel.build(grains, (2 * p, 2 * p), lo, hi, 1 * UM)
    rho = grains.radii() + math.hypot(p, p)
    r_ref = distance_to_scan(grains.centroids(), lo, hi, 1 * UM)
    want = np.minimum.accumulate([_sixty_halvings(
        rho, r_ref, lambda x, n=n: remainder_bound(x, n), GRAIN_TOLERANCE) ** 2
        for n in GRAIN_ORDERS], axis=0)
    np.testing.assert_array_equal(np.c_[model.coarse2, model.fine2, model.far2], want.T)
    if p > 0:
        reach = np.sqrt(np.sum((model.half + np.array([p, p, 0.0])) ** 2, axis=1))
        cub_ref = distance_to_scan(grains.cuboids[:, :3], lo, hi, 1 * UM)
        mid2, inner2 = (_sixty_halvings(reach, cub_ref, lambda x, n=n: even_remainder_bound(
            x, n), NEAR_TOLERANCE) ** 2 for n in (6, 10))
        np.testing.assert_array_equal(model.cub_mid2, mid2)
        np.testing.assert_array_equal(model.cub_inner2, np.minimum(inner2, mid2))


@pytest.mark.parametrize("even", [False, True])
def test_compiled_switches_are_numpys_bisection_to_the_bit(even):
    """The compiled bisection evaluates the bounds as NumPy does (`remainder_bound`,
    `even_remainder_bound`, powers through pow) and stops where a bracket stops moving: the
    same doubles as 60 halvings in NumPy, over grains from far inside to far outside reach."""
    rng = np.random.default_rng(9)
    rho = rng.uniform(0.05, 20.0, 3000) * UM
    r_ref = rng.uniform(0.2, 400.0, 3000) * UM
    orders = np.array([6, 10]) if even else np.array(GRAIN_ORDERS)
    tol = NEAR_TOLERANCE if even else GRAIN_TOLERANCE
    bound = even_remainder_bound if even else remainder_bound
    got = switch_distance(rho, r_ref, orders, tol, even=even)
    for i, n in enumerate(orders):
        np.testing.assert_array_equal(
            got[i], _sixty_halvings(rho, r_ref, lambda x, n=n: bound(x, n), tol))


def test_each_pair_takes_the_last_order_its_distance_needs():
    """Between the switches of orders 4, 6, 8 and 10 (fine2) and order 12's (far2), a pair
    takes orders 6, 8, 10 and 12 in turn: each nearer switch passed adds two."""
    fine2 = np.array([[100.0, 50.0, 20.0, 10.0]])  # orders 4, 6, 8, 10 suffice beyond these
    for d2, top in ((99.0, 6), (50.0, 6), (49.0, 8), (20.0, 8), (19.0, 10), (10.0, 10),
                    (9.0, 12), (0.5, 12)):
        assert _top_order(d2, fine2, 0) == top, d2


def test_each_tile_takes_every_sensors_own_orders_from_5():
    """The block and fitted-map kernels evaluate orders from 5 over a tile's sensors at once:
    each pair between a grain's far-field switch and its order-4 one gets exactly the
    per-pair `_grain_orders` to its own last order (6 to 12, all present in one tile), and
    the fitted map the same dotted with M; pairs beyond get none of it."""
    grains = _grain_set(_shapes())
    X, Y = np.meshgrid(np.arange(-40, 1300, 4) * UM, np.arange(-40, 44, 4) * UM)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, 1 * UM)]
    model = GreenModel.build(grains, (0, 0), sensors[:, :2].min(axis=0),
                             sensors[:, :2].max(axis=0), 1 * UM)
    out = np.zeros((len(sensors), model.n_columns), order="F")
    _green_block(sensors, 0.0, 0.0, model.centroid, model.far2, model.higher, model.fine2,
                 grains.start, np.ascontiguousarray(grains.cuboids), model.half,
                 model.cub_far2, model.cub_scale, model.cub_terms, model.cub_mid2,
                 model.cub_inner2, 1e-5, False, True, out)
    m = np.random.default_rng(3).standard_normal(model.n_columns) * 1e4
    G, K = model.higher.shape
    dotted = np.einsum("gkj,gj->gk", model.higher.reshape(G, K // 3, 3), m.reshape(G, 3))
    field = np.zeros(len(sensors))
    _higher_orders_field(sensors, model.centroid, model.far2, dotted, model.fine2, field)
    want = np.zeros(len(sensors))
    tops = set()
    for g in range(G):
        d = sensors - model.centroid[g]
        d2 = np.sum(d * d, axis=1)
        for i in np.flatnonzero((d2 >= model.far2[g]) & (d2 < model.fine2[g, 0])):
            top = _top_order(d2[i], model.fine2, g)
            tops.add(top)
            columns = MU0_OVER_4PI * np.array(_grain_orders(*d[i], model.higher, g,
                                                            HIGHER_ORDERS[0], top))
            np.testing.assert_array_equal(out[i, 3 * g:3 * g + 3], columns)
            want[i] += columns @ m[3 * g:3 * g + 3]
        np.testing.assert_array_equal(out[d2 >= model.fine2[g, 0], 3 * g:3 * g + 3], 0.0)
    assert tops == {6, 8, 10, 12}
    np.testing.assert_allclose(field, want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_orders_from_5_step_their_scale_by_products_to_rounding():
    """Each order's scale dz^N / r^(2n+5) (N = n + 2), the first by repeated products and
    each next one times dz/r² (no pow): within a few roundings of it, orders 5 to 12, at
    sensors straight above, at grazing angles, near and far."""
    for dz, lateral in ((1e-6, 0.0), (3e-6, 4e-5), (2e-5, 7e-6), (5e-7, 1.2e-4)):
        dx, dy = 0.6 * lateral, -0.8 * lateral
        r = math.sqrt(dx * dx + dy * dy + dz * dz)
        scale = _first_scale(dz, r, HIGHER_ORDERS[0])
        for n in HIGHER_ORDERS:
            want = math.exp((n + 2) * math.log(dz) - (2 * n + 5) * math.log(r))
            assert scale == pytest.approx(want, rel=1e-13), (dz, lateral, n)
            assert _first_scale(dz, r, n) == pytest.approx(want, rel=1e-13)
            scale *= dz / r / r


def test_a_tiles_sensors_come_by_decreasing_last_order_then_zeros():
    """`_by_last_order` hands `_orders_over_tile` the gathered sensors by decreasing last
    order (each order then runs over a leading run of them), in gathering order within one,
    with their indices; then zeros up to a multiple of LANES columns (workspace lanes)."""
    tops = np.array([6, 12, 8, 6, 10, 12, 8, 6, 6, 10, 6])
    cnt = tops.size
    held = np.full((5, 64), np.nan)
    held[:4, :cnt] = np.arange(4 * cnt, dtype=float).reshape(4, cnt) + 1.0
    held[4, :cnt] = tops
    index = np.arange(100, 164)
    into = np.full((5, 64), np.nan)
    into_index = np.full(64, -1)
    _by_last_order(cnt, 12, held, index, into, into_index)
    order = np.array([1, 5, 4, 9, 2, 6, 0, 3, 7, 8, 10])
    np.testing.assert_array_equal(into_index[:cnt], 100 + order)
    np.testing.assert_array_equal(into[:, :cnt], held[:, order])
    padded = -(-cnt // LANES) * LANES
    np.testing.assert_array_equal(into[:4, cnt:padded], 0.0)
    assert np.isnan(into[:, padded:]).all()  # nothing written past the lanes


def test_orders_from_5_are_the_taylor_terms_of_the_grain_potential():
    """Each order's Bz columns from `grain_order_terms` (polynomial algebra: moments,
    harmonic projection, derivatives) against the Taylor coefficients of Σ V ∂z∂j 1/|r − u|
    over the grain's sources (contour integration, `_taylor_terms`), for a grain of cuboids
    small enough (1e-4 of their spread) to be those point sources, at field points at unit
    distance above the centroid."""
    rng = np.random.default_rng(11)
    points = rng.uniform(-0.3, 0.3, (10, 3))
    edge = 1e-4
    grains = from_arrays(np.c_[points, np.full((10, 3), edge)], np.ones(10))
    sources = points - points.mean(axis=0)  # equal volumes: the centroid is the mean
    volume = edge**3
    dirs = _sphere(40)
    dirs = dirs[dirs[:, 2] > 0.2]  # the sensor is above the grain
    for n in HIGHER_ORDERS:
        t = grain_order_terms(grains, (0.0, 0.0), (n,))
        got = np.array([_grain_orders(*d, t, 0, n, n) for d in dirs])
        want = np.array([[volume * _taylor_terms(d, j, sources, [n])[0].sum() for j in range(3)]
                         for d in dirs])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())
        assert np.abs(want).max() > 0
