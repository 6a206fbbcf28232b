"""Which mask polygons cross themselves: also those whose outline crosses at a vertex (a bow
tie with its middle listed, a vertex on another edge that the outline passes through), while
one that only touches itself there, one given closed (its first vertex repeated last), one with
a vertex repeated or in the middle of a straight side is read; one whose outline runs back
along itself (a spike, a slit) is refused; the pairs of edges tested are made a block at a
time, not all at once, and only of edges near each other (a comb's K² pairs would fill the
memory and take minutes), finding the same edges as testing every pair does."""

from __future__ import annotations

import json
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smm_daq.analysis.mmt import masks
from smm_daq.analysis.mmt.masks import read_mask
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

N = 12
X = np.arange(N) * 10e-6


def _read(tmp_path: Path, polygon: list[list[float]]) -> np.ndarray:
    mask = tmp_path / "mask.json"
    mask.write_text(json.dumps({"polygons_um": [polygon]}))
    data = MapData(np.zeros((N, N)), X, X, height=20e-6, sensor_size=(0.0, 0.0), name="ok")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a polygon over no pixel centre
        return read_mask(mask, data)


@pytest.mark.parametrize(("polygon", "edges"), [
    # a rectangle's corners listed across, its middle listed as a vertex of both diagonals
    ([[0, 0], [50, 50], [100, 100], [100, 0], [50, 50], [0, 100]], "from vertex 0 to 1 "
     "crosses the one from 3 to 4"),
    # the same, the middle listed twice on the first diagonal
    ([[0, 0], [50, 50], [50, 50], [100, 100], [100, 0], [50, 50], [0, 100]], "from vertex 0 "
     "to 1 crosses the one from 4 to 5"),
    # the middle a vertex of one diagonal only, the other passing through it
    ([[50, 50], [0, 0], [100, 0], [0, 100], [100, 100]], "from vertex 0 to 1 crosses the one "
     "from 2 to 3"),
    # a vertex on another edge, the outline coming from below it and going on above
    ([[0, 50], [100, 50], [50, 0], [50, 50], [30, 100]], "from vertex 0 to 1 crosses the one "
     "from 2 to 3"),
])
def test_an_outline_crossing_itself_at_a_vertex_is_refused(
        tmp_path: Path, polygon: list[list[float]], edges: str) -> None:
    with pytest.raises(InputError) as caught:
        _read(tmp_path, polygon)
    assert f"polygons_um[0] crosses itself: its edge {edges}" in str(caught.value)


@pytest.mark.parametrize("polygon", [
    [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]],  # given closed
    [[0, 0], [50, 0], [100, 0], [100, 100], [0, 100]],  # a vertex in a straight side
    [[0, 0], [100, 0], [100, 0], [100, 100], [0, 100]],  # a vertex repeated
    [[0, 0], [50, 50], [100, 0], [100, 100], [50, 50], [0, 100]],  # touching at its middle
    [[0, 50], [100, 50], [100, 0], [50, 50], [30, 0]],  # a vertex touching an edge from below
])
def test_an_outline_that_only_touches_itself_is_read(tmp_path: Path,
                                                     polygon: list[list[float]]) -> None:
    assert _read(tmp_path, polygon).any()


def _comb(teeth: int) -> np.ndarray:
    """A comb of `teeth` long horizontal teeth: no edge crosses another, and each tooth's
    edges span the x range of all the others'."""
    outline = [[-1.0, 2.0 * teeth], [-1.0, 0.0]]
    for i in range(teeth):
        outline += [[0.0, 2.0 * i], [100.0, 2.0 * i], [100.0, 2.0 * i + 1], [1.0, 2.0 * i + 1]]
    return np.asarray(outline)


def test_the_pairs_of_edges_are_tested_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    comb = _comb(150)  # 600 teeth edges: about 180,000 pairs
    monkeypatch.setattr(masks, "CROSSING_PAIRS", 4096)
    tracemalloc.start()
    try:
        assert masks._crossing(comb) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak:,} bytes for blocks of 4,096 pairs"
    crossed = comb.copy()
    crossed[[11, 12]] = crossed[[12, 11]]  # a tooth's tip listed across: a small bow tie
    assert masks._crossing(crossed) == (10, 12)


def test_a_comb_of_many_teeth_is_checked_a_few_pairs_of_edges_an_edge() -> None:
    """Its teeth all span one x range: K²/2 pairs had each been tested (20,000 vertices took
    over two minutes), where a grid pairs each edge with those near it only."""
    comb = _comb(5000)  # 20,002 vertices
    tested = sum(len(a) for a, _ in masks._near_pairs(comb))
    assert tested < 10 * len(comb), f"{tested:,} pairs of {len(comb):,} edges"
    assert masks._crossing(comb) is None


@pytest.mark.parametrize("polygon", [
    # a saw of 500 long, thin teeth: every edge as long as a cell, 2 teeth a unit of x
    [[0.0, -1.0]] + [[i + j / 2, 500.0 * j] for i in range(500) for j in (0, 1)]
    + [[500.0, 0.0], [500.0, -1.0]],
    # a zigzag of 1,000 tiny edges closed by two sides a million times longer: one cell
    [[i * 1e-3, 1e-3 * (i % 2)] for i in range(1000)] + [[0.999, 1e6], [0.0, 1e6]],
])
def test_edges_that_share_a_cell_by_the_thousand_are_paired_by_their_x_ranges(
        monkeypatch: pytest.MonkeyPatch, polygon: list[list[float]]) -> None:
    """A grid of cells an edge long gathers a thousand edges in each cell here, a million
    pairs (20,000 vertices took over a minute), where each edge's x range overlaps a few
    others' only, as the pairs were found before the grid."""
    monkeypatch.setattr(masks, "CROSSING_PAIRS", 1024)
    vertices = np.asarray(polygon)
    blocks = sum(1 for _ in masks._near_pairs(vertices))
    assert blocks <= 3, f"{blocks} blocks of 1,024 pairs for {len(vertices)} edges"
    assert masks._crossing(vertices) is None


def _every_pair(vertices: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All the pairs of edges that share no vertex: what the grid's pairs stand in for."""
    k = len(vertices)
    a, b = np.triu_indices(k, 1)
    apart = (b - a > 1) & (b - a < k - 1)
    yield a[apart], b[apart]


def _same_as_every_pair(polygon: list[tuple[float, float]]) -> None:
    """The grid's pairs, and the x ranges', each find what every pair finds: the other way
    is made to offer more pairs than any polygon has, so that each is tested alone."""
    vertices = np.asarray(polygon, dtype=float)
    with mock.patch.object(masks, "_near_pairs", _every_pair):
        expected = masks._crossing(vertices)
    never = np.zeros(1, dtype=np.int64), np.array([1 << 62])
    for other in ("_by_x_range", "_by_cell"):
        with mock.patch.object(masks, other, lambda *_: never):
            assert masks._crossing(vertices) == expected, f"found without {other}"


@settings(max_examples=250, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=3, max_size=12))
def test_the_grid_finds_the_edges_every_pair_finds_on_a_small_lattice(
        polygon: list[tuple[float, float]]) -> None:
    """Vertices on a 5 × 5 lattice: edges meeting at vertices, along lines, repeated and of
    length 0 at every turn."""
    _same_as_every_pair(polygon)


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=3,
                max_size=12),
       st.sampled_from([1e-300, 1e-6, 1.0, 1e300]))
def test_the_grid_finds_the_edges_every_pair_finds_at_any_scale(
        polygon: list[tuple[float, float]], scale: float) -> None:
    _same_as_every_pair([(x * scale, y * scale) for x, y in polygon])


@pytest.mark.parametrize(("polygon", "edges"), [
    # a spike out of the top side and back along itself
    ([[0, 0], [100, 0], [100, 100], [50, 100], [50, 150], [50, 100], [0, 100]],
     "from vertex 3 to 4 runs along the one from 4 to 5"),
    # the same spike with its tip listed twice
    ([[0, 0], [100, 0], [100, 100], [50, 100], [50, 150], [50, 150], [50, 100], [0, 100]],
     "from vertex 3 to 4 runs along the one from 5 to 6"),
    # a slit in to a hole and back out along it (a keyhole)
    ([[0, 0], [100, 0], [100, 100], [50, 100], [50, 70], [30, 70], [30, 30], [70, 30],
      [70, 70], [50, 70], [50, 100], [0, 100]], "from vertex 3 to 4 runs along the one from 9 "
     "to 10"),
    # two sides on one line overlapping by part of their length
    ([[0, 0], [100, 0], [100, 50], [60, 50], [60, 0], [40, 0], [40, 100], [0, 100]],
     "from vertex 0 to 1 runs along the one from 4 to 5"),
])
def test_an_outline_running_back_along_itself_is_refused(
        tmp_path: Path, polygon: list[list[float]], edges: str) -> None:
    with pytest.raises(InputError) as caught:
        _read(tmp_path, polygon)
    assert f"polygons_um[0] runs back along itself: its edge {edges}" in str(caught.value)


def test_where_edges_of_numbers_near_the_float_limit_meet_no_overflow_is_warned_of() -> None:
    big = 1.7e308  # a bow tie whose middle, (0, 0), is a vertex of one diagonal
    polygon = np.asarray([[0, 0], [big, big], [big, -big], [-big, big], [-big, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert masks._crossing(polygon) == (0, 2)
