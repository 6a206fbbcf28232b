"""Grain outlines: the boundary of the union of a cuboid grain's footprints; a point
grain's circle of its volume-equivalent sphere."""

from __future__ import annotations

import numpy as np
import pytest

from gui.grain_outlines import (
    CIRCLE_SIDES,
    footprint_segments,
    grain_segments,
    polygon_segments,
)
from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.models.multipole import point_grains

UM = 1e-6


def cuboid(x0, y0, x1, y1):
    """A cuboid with footprint x0..x1, y0..y1 (µm), 2 µm deep below the surface."""
    return [(x0 + x1) / 2 * UM, (y0 + y1) / 2 * UM, -3 * UM, (x1 - x0) * UM, (y1 - y0) * UM, 2 * UM]


def inside(rects, x, y):
    return any(
        r[0] - r[3] / 2 < x < r[0] + r[3] / 2 and r[1] - r[4] / 2 < y < r[1] + r[4] / 2
        for r in rects
    )


def total_length(segments):
    return float(np.sum(np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1)))


def test_an_l_shape_of_two_cuboids_has_the_l_perimeter():
    rects = np.array([cuboid(0, 0, 4, 1), cuboid(0, 1, 1, 3)])  # shares the edge y = 1, x 0..1
    segments = footprint_segments(rects, np.array([7, 7]))
    assert total_length(segments) == pytest.approx((4 + 3) * 2 * UM)
    a, b = segments[:, 0], segments[:, 1]
    assert np.all((a[:, 0] == b[:, 0]) | (a[:, 1] == b[:, 1]))  # axis-aligned


def test_every_segment_separates_inside_from_outside():
    rng = np.random.default_rng(3)
    rects = []
    for _ in range(12):
        x0, y0 = rng.uniform(0, 10, 2)
        w, h = rng.uniform(0.5, 4, 2)
        rects.append(cuboid(x0, y0, x0 + w, y0 + h))
    rects = np.array(rects)
    segments = footprint_segments(rects, np.zeros(len(rects), int))
    eps = 1e-9
    for (xa, ya), (xb, yb) in segments:
        mx, my = (xa + xb) / 2, (ya + yb) / 2
        normal = np.array([yb - ya, xa - xb]) / np.hypot(xb - xa, yb - ya) * eps
        assert inside(rects, mx + normal[0], my + normal[1]) != inside(
            rects, mx - normal[0], my - normal[1]
        )


def test_two_grains_keep_their_own_outlines():
    rects = np.array([cuboid(0, 0, 2, 2), cuboid(2, 0, 4, 2)])  # touching, different grains
    segments = footprint_segments(rects, np.array([1, 2]))
    assert total_length(segments) == pytest.approx(2 * 8 * UM)


def test_polygon_sides():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    sides = polygon_segments(square)
    assert sides.shape == (4, 2, 2)
    assert total_length(sides) == pytest.approx(4.0)


def test_a_point_grain_is_the_circle_of_its_volume_equivalent_sphere():
    volumes = np.array([4 / 3 * np.pi * (2 * UM) ** 3, 1e-18])  # a sphere of radius 2 µm
    grains = point_grains(np.array([[10, 20, -5], [40, 0, -8]]) * UM, volumes,
                          np.array([7, 9]))
    segments = grain_segments(grains)
    assert segments.shape == (2 * CIRCLE_SIDES, 2, 2)
    d = np.cbrt(6 * volumes / np.pi)
    assert d[0] == pytest.approx(4 * UM)
    for g, (centre, diameter) in enumerate(zip(grains.positions[:, :2], d, strict=True)):
        own = segments[g * CIRCLE_SIDES:(g + 1) * CIRCLE_SIDES].reshape(-1, 2)
        np.testing.assert_allclose(np.linalg.norm(own - centre, axis=1), diameter / 2,
                                   rtol=1e-12)
        # a closed ring round the centroid: each side starts where the last one ended
        sides = segments[g * CIRCLE_SIDES:(g + 1) * CIRCLE_SIDES]
        np.testing.assert_array_equal(sides[1:, 0], sides[:-1, 1])
        np.testing.assert_array_equal(sides[0, 0], sides[-1, 1])
        assert total_length(sides) == pytest.approx(np.pi * diameter, rel=0.01)
    np.testing.assert_array_equal(grain_segments(grains, only=1),
                                  segments[CIRCLE_SIDES:])


def test_one_cuboid_grain_alone_is_its_own_footprint():
    rects = np.array([cuboid(0, 0, 2, 2), cuboid(5, 5, 6, 9), cuboid(6, 5, 8, 6)])
    grains = GrainSet(rects, np.array([0, 1, 1]), np.array([3, 4]))
    assert total_length(grain_segments(grains)) == pytest.approx((8 + 14) * UM)
    assert total_length(grain_segments(grains, only=1)) == pytest.approx(14 * UM)
    np.testing.assert_array_equal(grain_segments(grains, only=0),
                                  footprint_segments(rects[:1], np.array([0])))
