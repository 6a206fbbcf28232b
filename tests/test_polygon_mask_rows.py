"""`polygon_mask` counts each row's sorted edge crossings past each pixel centre, where it
looped over every edge across the whole map (10,000 vertices on 200 × 200 pixels: 2.3 s):
the masks are the same as the loop's, pixel for pixel, also for centres exactly on an edge or
at a vertex, whose rule (in or out by the crossing's rounding) must not change."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smm_daq.analysis import masks
from smm_daq.analysis.masks import polygon_mask
from smm_daq.storage.mapdata import MapData


def _every_edge(m: MapData, vertices: np.ndarray) -> np.ndarray:
    """The mask as polygon_mask made it before: every edge tested at every pixel; beyond
    masks.OVERFLOW_FREE, on the polygon and centres scaled alike by a power of 2 (as
    polygon_mask scales them: unscaled, their products overflowed)."""
    v = np.asarray(vertices, dtype=float)
    px, py = np.meshgrid(m.x, m.y)
    top = max(float(np.abs(v).max()), float(np.abs(px).max()), float(np.abs(py).max()))
    if top > masks.OVERFLOW_FREE:
        exponent = -int(np.frexp(top)[1])
        v, px, py = np.ldexp(v, exponent), np.ldexp(px, exponent), np.ldexp(py, exponent)
    inside = np.zeros(m.shape, bool)
    for (xa, ya), (xb, yb) in zip(v, np.roll(v, -1, axis=0), strict=True):
        crosses = (ya > py) != (yb > py)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x_cross = xa + (py - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (px < x_cross)
    return inside


def _grid(nx: int, ny: int, step: float, origin: tuple[float, float] = (0.0, 0.0)) -> MapData:
    return MapData(np.zeros((ny, nx)), origin[0] + step * np.arange(nx),
                   origin[1] + step * np.arange(ny), height=1e-6, sensor_size=(0.0, 0.0))


LATTICE = _grid(9, 7, 1.0, (-1.0, -1.0))  # centres on whole numbers, as the vertices


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(-2, 8), st.integers(-2, 6)), min_size=3, max_size=14))
def test_centres_on_edges_and_vertices_are_masked_as_before(
        polygon: list[tuple[int, int]]) -> None:
    """Vertices on the pixel centres' lattice: centres at vertices, on horizontal, vertical
    and slanted edges, edges along a row, repeated vertices, crossing outlines."""
    v = np.asarray(polygon, dtype=float)
    np.testing.assert_array_equal(polygon_mask(LATTICE, v), _every_edge(LATTICE, v))


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)), min_size=3,
                max_size=30),
       st.sampled_from([1e-300, 1e-6, 1.0, 1e300]))
def test_random_polygons_at_any_scale_are_masked_as_before(
        polygon: list[tuple[float, float]], scale: float) -> None:
    m = _grid(23, 17, 0.1 * scale, (-1.1 * scale, -0.8 * scale))
    v = np.asarray(polygon) * scale
    np.testing.assert_array_equal(polygon_mask(m, v), _every_edge(m, v))


def test_crossings_computed_in_blocks_give_the_same_mask(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    rng = np.random.default_rng(3)
    v = rng.integers(-2, 9, (40, 2)).astype(float)
    monkeypatch.setattr(masks, "CROSSINGS", 7)
    np.testing.assert_array_equal(polygon_mask(LATTICE, v), _every_edge(LATTICE, v))


def test_a_map_with_its_rows_listed_downward_is_masked_as_before() -> None:
    m = MapData(np.zeros((5, 6)), np.arange(6.0), np.arange(5.0)[::-1].copy(), height=1e-6,
                sensor_size=(0.0, 0.0))
    v = np.array([[0.0, 0.0], [4.0, 1.0], [2.0, 4.0]])
    np.testing.assert_array_equal(polygon_mask(m, v), _every_edge(m, v))


def test_a_long_traced_outline_computes_each_crossing_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 vertices on a circle over 200 × 200 pixels: about 2 crossings a row, where the
    loop computed 10,000 × 40,000 of them."""
    t = np.linspace(0, 2 * np.pi, 10_000, endpoint=False)
    v = np.c_[100 + 90 * np.cos(t), 100 + 90 * np.sin(t)]
    m = _grid(200, 200, 1.0)
    computed = []
    crossings = masks._row_crossings

    def counted(*args: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for row, x in crossings(*args):
            computed.append(row.size)
            yield row, x

    monkeypatch.setattr(masks, "_row_crossings", counted)
    mask = polygon_mask(m, v)
    assert len(computed) == 1 and computed[0] <= 2 * 200, computed  # at most two a row
    yy, xx = np.mgrid[:200, :200]
    assert mask[(xx - 100) ** 2 + (yy - 100) ** 2 < 89**2].all()
    assert not mask[(xx - 100) ** 2 + (yy - 100) ** 2 > 91**2].any()
