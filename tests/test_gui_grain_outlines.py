"""Grain outlines: the boundary of the union of a grain's cuboid footprints."""

from __future__ import annotations

import numpy as np
import pytest

from gui.grain_outlines import footprint_segments, polygon_segments

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
