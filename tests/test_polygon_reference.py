"""A mask polygon's verdict (crossing itself, touching itself only, or clean) checked against
a reference written apart from `masks`: exact whole-number geometry over every pair of edges,
and, where edges meet at one point, whether any two passages of the outline through it
interleave around it (one passing from one side of the other to its other side). The test
of pairs of edges must agree with it; so must the sweep line and the bound on tangled
outlines, forced here on small polygons: a crossing refused, a clean outline read, one
touching itself only refused as too tangled to check; and the sweep says the edges keep apart
exactly where the outline is clean, naming two edges that do meet where it finds them."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smm_daq.analysis.mmt import masks
from smm_daq.analysis.polygon_sweep import sweep
from smm_daq.errors import InputError

Point = tuple[int, int]
Vector = tuple[Fraction, Fraction]


def _orient(p: Point, q: Point, r: Point) -> int:
    v = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    return (v > 0) - (v < 0)


def _meeting(a: Point, b: Point, c: Point, d: Point) -> str | tuple[Fraction, Fraction] | None:
    """Where segments a-b and c-d meet: "overlap" (a stretch), the point, or None."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if o1 == o2 == o3 == o4 == 0:  # on one line: compared along it
        dx, dy = b[0] - a[0], b[1] - a[1]

        def along(p: Point) -> int:
            return (p[0] - a[0]) * dx + (p[1] - a[1]) * dy

        lo = max(min(along(a), along(b)), min(along(c), along(d)))
        hi = min(max(along(a), along(b)), max(along(c), along(d)))
        if lo > hi:
            return None
        if lo < hi:
            return "overlap"
        p = next(p for p in (a, b, c, d) if along(p) == lo)
        return Fraction(p[0]), Fraction(p[1])
    if o1 * o2 > 0 or o3 * o4 > 0:
        return None
    den = (b[0] - a[0]) * (d[1] - c[1]) - (b[1] - a[1]) * (d[0] - c[0])
    t = Fraction((c[0] - a[0]) * (d[1] - c[1]) - (c[1] - a[1]) * (d[0] - c[0]), den)
    return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])


def _angle(u: Vector, w: Vector) -> tuple[int, Fraction, Fraction]:
    """The counterclockwise angle from u to w, as a key that compares exactly."""
    x, y = u[0] * w[0] + u[1] * w[1], u[0] * w[1] - u[1] * w[0]
    return (0 if y > 0 or (y == 0 and x > 0) else 1), x, y


def _before(u: Vector, a: Vector, b: Vector) -> bool:
    """Whether a comes before b turning counterclockwise from u."""
    (ha, xa, ya), (hb, xb, yb) = _angle(u, a), _angle(u, b)
    return ha < hb if ha != hb else xa * yb - ya * xb > 0


def _same_way(a: Vector, b: Vector) -> bool:
    return a[0] * b[1] == a[1] * b[0] and a[0] * b[0] + a[1] * b[1] > 0


def _interleave(one: tuple[Vector, Vector], other: tuple[Vector, Vector]) -> bool:
    """Whether passage `other` (its ways back and on) goes from one side of `one` to the
    other: its two ways strictly in the two turns between `one`'s ways."""
    (u, v), (w1, w2) = one, other
    if _same_way(u, v) or any(_same_way(w, x) for w in (w1, w2) for x in (u, v)):
        return False
    return _before(u, w1, v) != _before(u, w2, v)


def reference(vertices: list[Point]) -> str | None:
    """"crossing", "touching" or "clean"; None for fewer than 3 distinct vertices."""
    pts: list[Point] = []
    for p in vertices:
        if not pts or pts[-1] != p:
            pts.append(p)
    while len(pts) > 1 and pts[0] == pts[-1]:
        pts.pop()
    n = len(pts)
    if n < 3:
        return None
    edges = [(pts[i], pts[(i + 1) % n]) for i in range(n)]
    touching, points = False, set()
    for i, j in combinations(range(n), 2):
        met = _meeting(*edges[i], *edges[j])
        if met == "overlap":
            return "crossing"
        if met is None or (j - i) in (1, n - 1):
            continue
        touching = True
        if met not in {(Fraction(x), Fraction(y)) for x, y in (*edges[i], *edges[j])}:
            return "crossing"  # inside both
        points.add(met)
    for px, py in points:
        passages = [((a[0] - px, a[1] - py), (b[0] - px, b[1] - py))
                    for m in range(n) if pts[m] == (px, py)
                    for a, b in [(pts[m - 1], pts[(m + 1) % n])]]
        passages += [((a[0] - px, a[1] - py), (b[0] - px, b[1] - py)) for a, b in edges
                     if (px, py) not in (a, b) and _meeting(a, b, (px, py), (px, py))]
        if any(_interleave(*pair) for pair in combinations(passages, 2)):
            return "crossing"
    return "touching" if touching else "clean"


def _verdict(vertices: np.ndarray) -> str:
    try:
        masks.refuse_crossing("p", vertices)
    except InputError as exc:
        text = str(exc)
        if "cannot be found in time" in text:
            return "tangled"
        assert "crosses itself" in text or "runs back along itself" in text, text
        return "crossing"
    return "clean"


LATTICE = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=3, max_size=9)


# the lattice points on a square ring about the origin, in turn around it
RING = sorted(((x, y) for x in range(-3, 4) for y in range(-3, 4) if max(abs(x), abs(y)) == 3),
              key=lambda p: math.atan2(p[1], p[0]))


@st.composite
def _rings(draw: st.DrawFn) -> list[Point]:
    """Points of the ring in turn (an outline that keeps apart), one perhaps moved inside
    (onto another edge, or across one), or two swapped."""
    ring = draw(st.lists(st.sampled_from(RING), min_size=3, max_size=10, unique=True))
    ring.sort(key=RING.index)
    i = draw(st.integers(0, len(ring) - 1))
    change = draw(st.sampled_from(["none", "inside", "swap"]))
    if change == "inside":
        ring[i] = draw(st.tuples(st.integers(-3, 3), st.integers(-3, 3)))
    elif change == "swap":
        j = draw(st.integers(0, len(ring) - 1))
        ring[i], ring[j] = ring[j], ring[i]
    return ring


@st.composite
def _fans(draw: st.DrawFn) -> list[Point]:
    """Triangles in turn around the origin, each with a vertex there: the outline touches
    itself there; with two vertices swapped, it may cross itself."""
    tips = draw(st.lists(st.sampled_from(RING), min_size=4, max_size=10, unique=True))
    tips.sort(key=RING.index)
    fan = [p for i in range(0, len(tips) - 1, 2) for p in ((0, 0), tips[i], tips[i + 1])]
    if draw(st.booleans()):
        i, j = draw(st.integers(0, len(fan) - 1)), draw(st.integers(0, len(fan) - 1))
        fan[i], fan[j] = fan[j], fan[i]
    return fan


POLYGONS = st.one_of(LATTICE, _rings(), _fans())


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(polygon=POLYGONS, scale=st.sampled_from([1.0, 2.0 ** -60, 2.0 ** 70]),
       repeat=st.integers(-1, 8))
def test_a_polygon_is_refused_exactly_where_it_crosses_itself_sweep_or_not(
        polygon: list[Point], scale: float, repeat: int) -> None:
    """Whole numbers, scaled by a power of 2, with perhaps a vertex repeated: every turn in
    floating point is exact, so the verdict is the reference's, not the rounding's."""
    expected = reference(polygon)
    if expected is None:
        return
    vertices = np.array(polygon, dtype=float) * scale
    if 0 <= repeat < len(vertices):
        vertices = np.insert(vertices, repeat, vertices[repeat], axis=0)
    want = "crossing" if expected == "crossing" else "clean"
    assert _verdict(vertices) == want, (polygon, expected)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(masks, "SWEEP_PAIRS", -1)  # the sweep first
        assert _verdict(vertices) == want, (polygon, expected)
        patch.setattr(masks, "MAX_TANGLED_PAIRS", -1)  # and past the pairs tested one by one
        got = _verdict(vertices)
    assert got == {"crossing": got if got in ("crossing", "tangled") else "crossing",
                   "touching": "tangled", "clean": "clean"}[expected], (polygon, expected)
    apart, met = sweep(vertices)  # the edges it names, as numbered in the polygon given
    assert apart == (expected == "clean"), (polygon, expected)
    if met is not None:
        corners = [tuple(round(c / scale) for c in v) for v in vertices]
        a, b = ((corners[e], corners[(e + 1) % len(corners)]) for e in met)
        assert met[0] < met[1] and _meeting(*a, *b) is not None, (polygon, met)
