"""`grain_order_terms`' moments computed in one compiled pass (`_grain_moments_sums`)
against the NumPy formulation it replaced: each cuboid's one-axis moments, the moments summed
over each grain's cuboids (a sparse product), then each order's dense map."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.models.cuboid import HIGHER_ORDERS
from smm_daq.analysis.mmt.models.expansion_terms import (
    _grain_moments_sums,
    _monomials,
    _order_terms_map,
    _own_moments,
    grain_order_terms,
)

UM = 1e-6
TOP = max(HIGHER_ORDERS)


def _sample_grains():
    return synth.make_sample((60 * UM, 60 * UM), 20 * UM, 1e5,
                             np.random.default_rng(3)).grains


def _reference_moments(grains, sensor_half):
    """(G, M) Σ V E u^e over each grain's cuboids for every order's monomials, as the NumPy
    formulation computed them, and the cuboids' own moments it started from."""
    cub = grains.cuboids
    offset = cub[:, :3] - grains.centroids()[grains.grain]
    half = cub[:, 3:] / 2.0
    sensor = np.array([sensor_half[0], sensor_half[1], 0.0])
    own = np.zeros((cub.shape[0], 3, TOP + 1))
    for j in range(0, TOP + 1, 2):
        own[:, :, j] = sum(math.comb(j, i) * half**i / (i + 1) * sensor ** (j - i)
                           / (j - i + 1) for i in range(0, j + 1, 2))
    powers = np.cumprod(np.concatenate(
        [np.ones((*offset.shape, 1)), np.repeat(offset[:, :, None], TOP, axis=2)], axis=2),
        axis=2)
    axis = np.zeros_like(own)
    for j in range(0, TOP + 1, 2):
        binomials = np.array([math.comb(k, j) for k in range(j, TOP + 1)], dtype=float)
        axis[:, :, j:] += binomials * powers[:, :, :TOP + 1 - j] * own[:, :, j:j + 1]
    axis = axis.transpose(1, 2, 0)
    per_grain = sparse.csr_matrix(
        (grains.cuboid_volumes(), (grains.grain, np.arange(cub.shape[0]))),
        shape=(grains.n_grains, cub.shape[0]))
    e = np.concatenate([_monomials(n) for n in HIGHER_ORDERS])
    moments = per_grain @ (axis[0, e[:, 0]] * axis[1, e[:, 1]] * axis[2, e[:, 2]]).T
    return moments, offset, own, e


@pytest.mark.parametrize("sensor_half", [(0.0, 0.0), (0.3 * UM, 0.2 * UM)])
def test_each_grains_moments_are_its_cuboids_summed_in_order_to_the_bit(sensor_half):
    """The compiled pass gives the grains' moments exactly as the sparse sum over their
    cuboids did (same products, same order of the sums)."""
    grains = _sample_grains()
    want, offset, own, e = _reference_moments(grains, sensor_half)
    binomials = np.array([[math.comb(k, j) for j in range(TOP + 1)] for k in range(TOP + 1)],
                         dtype=float)
    got = _grain_moments_sums(offset, own, binomials, grains.grain, grains.cuboid_volumes(),
                              e, grains.n_grains)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("sensor_half", [(0.0, 0.0), (0.3 * UM, 0.2 * UM)])
def test_grain_order_terms_are_each_orders_dense_map_of_the_moments_to_the_bit(sensor_half):
    grains = _sample_grains()
    moments, *_ = _reference_moments(grains, sensor_half)
    cuts = np.cumsum([0] + [_monomials(n).shape[0] for n in HIGHER_ORDERS])
    blocks = list(zip(HIGHER_ORDERS, cuts[:-1], cuts[1:], strict=True))
    want = np.concatenate([np.ascontiguousarray(moments[:, a:b]) @ _order_terms_map(n).T
                           for n, a, b in blocks],
                          axis=1)
    got = grain_order_terms(grains, sensor_half, HIGHER_ORDERS)
    assert got.flags.c_contiguous
    assert np.array_equal(got, want)


def test_point_sensors_own_moments_are_the_general_sum_to_the_bit():
    half = np.random.default_rng(5).uniform(0.1, 2.0, (50, 3)) * UM
    sensor = np.zeros(3)
    want = np.zeros((50, 3, TOP + 1))
    for j in range(0, TOP + 1, 2):
        want[:, :, j] = sum(math.comb(j, i) * half**i / (i + 1) * sensor ** (j - i)
                            / (j - i + 1) for i in range(0, j + 1, 2))
    assert np.array_equal(_own_moments(half, sensor, TOP), want)

