"""The sweep line that checks first whether a mask polygon's edges keep apart, where testing
pairs of edges near each other is quadratic (a star of thousands of long spikes converging on
one region, 8,000 vertices: 10 s): it says "apart" exactly when no two edges that share no
vertex meet, at any scale, and otherwise leaves the polygon to the pairs of edges, so that
every polygon is refused or read as before, naming the same edges."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smm_daq.analysis.mmt import masks
from smm_daq.analysis.polygon_sweep import _distinct_in_turn, edges_apart, turn
from smm_daq.errors import InputError


def _star(spikes: int, inner: float = 0.01) -> np.ndarray:
    """Spikes from radius `inner` out to 1 and back, all their long edges passing near the
    centre: no two cross."""
    t = np.arange(2 * spikes) * np.pi / spikes
    r = np.where(np.arange(2 * spikes) % 2 == 0, 1.0, inner)
    return np.c_[r * np.cos(t), r * np.sin(t)]


def _meet(p: tuple, q: tuple, r: tuple, s: tuple) -> bool:
    """Whether closed segments p-q and r-s share a point (exact turns)."""
    t1, t2, t3, t4 = turn(p, q, r), turn(p, q, s), turn(r, s, p), turn(r, s, q)
    if t1 == t2 == t3 == t4 == 0:
        return max(min(p, q), min(r, s)) <= min(max(p, q), max(r, s))
    return t1 * t2 <= 0 and t3 * t4 <= 0


def _apart_by_every_pair(vertices: np.ndarray) -> bool:
    """What edges_apart says, found by testing every pair of the distinct vertices' edges."""
    points = _distinct_in_turn(vertices)
    n = len(points)
    if n < 3 or len(set(points)) < n:
        return False
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for a in range(n):
        p, q, r = points[a - 1], points[a], points[(a + 1) % n]
        if turn(p, q, r) == 0 and (p[0] - q[0]) * (r[0] - q[0]) + (p[1] - q[1]) * (r[1] - q[1]) > 0:
            return False  # back along the way it came
        for b in range(a + 2, n - (a == 0)):
            if _meet(*edges[a], *edges[b]):
                return False
    return True


LATTICE = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=3, max_size=12)
FLOATS = st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=3,
                  max_size=12)
SCALES = st.sampled_from([1e-300, 1e-6, 1.0, 1e300])


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(LATTICE)
def test_the_sweep_finds_what_every_pair_finds_on_a_small_lattice(polygon: list) -> None:
    """Vertices on a 5 × 5 lattice: edges meeting at vertices, along lines, through other
    vertices, vertical, repeated."""
    v = np.asarray(polygon, dtype=float)
    assert edges_apart(v) == _apart_by_every_pair(v)


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(FLOATS, SCALES)
def test_the_sweep_finds_what_every_pair_finds_at_any_scale(polygon: list, scale: float
                                                            ) -> None:
    v = masks._unit_scaled(np.asarray(polygon) * scale)
    assert edges_apart(v) == _apart_by_every_pair(v)


def _every_pair(vertices: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    k = len(vertices)
    a, b = np.triu_indices(k, 1)
    apart = (b - a > 1) & (b - a < k - 1)
    yield a[apart], b[apart]


def _same_with_the_sweep_first(polygon: list) -> None:
    """`_crossing` with the sweep going first finds what testing every pair finds."""
    v = np.asarray(polygon, dtype=float)
    with mock.patch.object(masks, "_near_pairs", _every_pair), \
            mock.patch.object(masks, "SWEEP_PAIRS", 1 << 62):
        expected = masks._crossing(v)
    with mock.patch.object(masks, "SWEEP_PAIRS", -1):
        assert masks._crossing(v) == expected


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(LATTICE)
def test_a_polygon_is_read_or_refused_as_before_with_the_sweep_first(polygon: list) -> None:
    _same_with_the_sweep_first(polygon)


@settings(max_examples=100, derandomize=True, deadline=None, database=None)
@given(FLOATS, SCALES)
def test_so_at_any_scale(polygon: list, scale: float) -> None:
    _same_with_the_sweep_first([(x * scale, y * scale) for x, y in polygon])


def test_a_star_of_long_spikes_is_read_without_testing_pairs_of_edges() -> None:
    """8,000 vertices: millions of pairs of edges pass near each other (10 s to test them);
    the sweep takes O(K log K) turns."""
    star = masks._unit_scaled(_star(4000))
    tested = sum(len(a) for a, _ in masks._near_pairs(star))
    assert tested == 0, f"{tested:,} pairs of {len(star):,} edges"
    assert masks._crossing(star) is None


def test_a_star_crossing_itself_is_refused_naming_the_edges_testing_every_pair_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    star = _star(100)
    star[[40, 140]] = star[[140, 40]]  # two opposite tips swapped: their spikes cross
    with mock.patch.object(masks, "_near_pairs", _every_pair):
        expected = masks._crossing(star)
    assert expected is not None
    monkeypatch.setattr(masks, "SWEEP_PAIRS", -1)  # the sweep first, at this size too
    assert masks._crossing(star) == expected


def _fan(triangles: int) -> np.ndarray:
    """Triangles all touching at the origin, the outline passing through it between each:
    edges meet there in pairs by the thousand, and none crosses."""
    t = np.linspace(0.0, 2 * np.pi, 2 * triangles, endpoint=False).reshape(-1, 2)
    tips = np.stack([np.cos(t), np.sin(t)], axis=-1)  # (triangles, 2 tips, x y)
    return np.concatenate([np.zeros((triangles, 1, 2)), tips], axis=1).reshape(-1, 2)


def test_edges_meeting_at_one_point_are_judged_together(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """Whether the outline crosses where edges meet at a point was told one pair at a time
    in Python (a fan of 200 triangles, 80,000 such pairs: 6 s; of 500, 36 s)."""
    fan = _fan(200)
    passages = []
    passage = masks._passage
    monkeypatch.setattr(masks, "_passage", lambda v, e, p: passages.append(1) or passage(v, e, p))
    assert masks._crossing(fan) is None
    assert len(passages) <= 8, f"{len(passages):,} passages looked up one by one"
    crossed = fan.copy()
    # the second triangle's tips swapped: the outline passes through the origin from inside
    # the first triangle's turn there to outside it (as told one pair at a time too)
    crossed[[4, 5]] = crossed[[5, 4]]
    assert masks._crossing(crossed) == (2, 5)


def test_a_star_of_ten_thousand_vertices_crossing_itself_names_a_crossing_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its 17 million pairs of edges near each other were tested one by one for the first
    crossing (4 to 9 s); past MAX_TANGLED_PAIRS the crossing the sweep finds is named."""
    star = _star(5000)
    star[[40, 5040]] = star[[5040, 40]]  # two opposite tips swapped: their spikes cross
    tested = []
    contacts = masks._contacts
    monkeypatch.setattr(masks, "_contacts", lambda v, a, b, **kw: tested.append(len(a))
                        or contacts(v, a, b, **kw))
    a, b = masks._crossing(star)
    assert sum(tested) <= len(star) + 1, f"{sum(tested):,} pairs tested"
    assert {a, b} & {39, 40, 5039, 5040} and abs(a - b) > 1, (a, b)  # at the swapped tips
    with pytest.raises(InputError, match=rf"polygons_um\[0\] crosses itself: its edge from "
                                         rf"vertex {a} to {a + 1} crosses the one from {b} to"):
        masks.refuse_crossing("polygons_um[0]", star)


def test_an_outline_touching_itself_past_the_pairs_tested_is_refused_saying_so() -> None:
    """1,000 triangles touching at one point (3,000 vertices, 2.5 million pairs of edges near
    each other) took minutes to be read; the sweep cannot tell where they meet, so rather
    than test them one by one the outline is refused, naming its size and what is read."""
    fan = _fan(1000)
    with pytest.raises(InputError) as refused:
        masks.refuse_crossing("polygons_um[0]", fan, "m.json")
    message = str(refused.value)
    assert message.startswith("m.json: polygons_um[0] touches or crosses itself among its "
                              "3,000 vertices, but where cannot be found in time"), message
    assert "expected an outline that neither touches nor crosses itself" in message
    assert masks._crossing(_fan(300)) is None  # under the bound: read, as it is
