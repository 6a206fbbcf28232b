"""Whether a closed polygon's edges keep apart, by a sweep line (Shamos and Hoey, 1976):
O(K log K) comparisons for K vertices where testing pairs of edges near each other can take
K² (a star of long spikes converging on one region, whose edges all pass near each other).

The sweep answers only "apart" (no two edges that share no vertex meet, not even at a point,
and no two consecutive edges run back along each other) or "maybe not": an outline that
touches or crosses itself, or one whose vertices repeat other than consecutively, is left to
the test of pairs of edges, which says which two edges meet and how; it says which two
edges it found that may meet, where it found two, for an outline with too many pairs of
edges near each other to test them all. Its turns are exact:
each sign is taken from floating point where the rounding cannot change it (the error bound
of Shewchuk's orientation filter, three times over), else from whole numbers, exactly, so
"apart" holds at any scale.
"""

from __future__ import annotations

import math

import numpy as np

Point = tuple[float, float]
# the relative rounding of a turn computed in floating point, three times Shewchuk's bound
# (3 + 16ε)ε for the products of rounded differences
TURN_ROUNDING = 1e-15
# below this a turn's products may have lost digits to underflow: taken exactly
TURN_TINY = 1e-250
MANTISSA = float(1 << 53)


def edges_apart(vertices: np.ndarray) -> bool:
    """True where no two edges of the closed polygon (K, 2) that share no vertex meet, and no
    two consecutive edges overlap along a stretch; False where some may (then test pairs).
    Repeated consecutive vertices are read as one."""
    return sweep(vertices)[0]


def sweep(vertices: np.ndarray) -> tuple[bool, tuple[int, int] | None]:
    """Whether the edges keep apart (`edges_apart`), and, where they may not, two edges (by
    their first vertex, the lower first) that the sweep found may meet; None where it found
    the outline meeting itself otherwise (a vertex met twice, an edge through a vertex)."""
    points, first = _distinct_in_turn(vertices), _run_ends(vertices)
    n = len(points)
    if n < 3 or len(set(points)) < n:  # a vertex met twice: the outline touches itself there
        return False, None
    if any(_runs_back(points[i - 1], points[i], points[(i + 1) % n]) for i in range(n)):
        return False, None
    apart, pair = _sweep(points)
    if pair is None:
        return apart, None
    a, b = sorted(int(first[i]) for i in pair)
    return apart, (a, b)


def _same_as_next(vertices: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=float)
    return (v == np.roll(v, -1, axis=0)).all(axis=1)


def _distinct_in_turn(vertices: np.ndarray) -> list[Point]:
    """The vertices as (x, y) tuples, each one repeated right after itself once only (the
    first not repeated at the end)."""
    v = np.asarray(vertices, dtype=float)
    same = _same_as_next(v)
    if same.all():
        return [tuple(v[0])]
    return [(float(x), float(y)) for x, y in v[~same]]


def _run_ends(vertices: np.ndarray) -> np.ndarray:
    """Where each of `_distinct_in_turn`'s vertices is in `vertices`: the last of its repeats,
    so that its edge there is the one its edge among them is."""
    same = _same_as_next(vertices)
    return np.array([0]) if same.all() else np.flatnonzero(~same)


def _runs_back(before: Point, at: Point, after: Point) -> bool:
    """Whether the outline, coming from `before` to `at`, goes on to `after` back along the
    way it came (a spike's tip): `after` on that line, on the side of `before`."""
    return turn(before, at, after) == 0 and (
        (before[0] - at[0]) * (after[0] - at[0]) + (before[1] - at[1]) * (after[1] - at[1]) > 0)


def turn(p: Point, q: Point, r: Point) -> int:
    """The sign of the turn p -> q -> r (1 counterclockwise, -1 clockwise, 0 straight on),
    exact."""
    left = (q[0] - p[0]) * (r[1] - p[1])
    right = (q[1] - p[1]) * (r[0] - p[0])
    det = left - right
    bound = TURN_ROUNDING * (abs(left) + abs(right))
    if det > bound and det > TURN_TINY:
        return 1
    if det < -bound and det < -TURN_TINY:
        return -1
    px, py, qx, qy, rx, ry = _whole_numbers((*p, *q, *r))
    exact = (qx - px) * (ry - py) - (qy - py) * (rx - px)
    return (exact > 0) - (exact < 0)


def _whole_numbers(values: tuple[float, ...]) -> list[int]:
    """The floats as whole numbers, each times one power of 2 (so exactly in proportion)."""
    parts = [math.frexp(v) for v in values]  # v = m·2^e, m·2^53 a whole number
    least = min(e for _, e in parts)
    return [int(m * MANTISSA) << (e - least) for m, e in parts]


def _sweep(points: list[Point]) -> tuple[bool, tuple[int, int] | None]:
    """Shamos–Hoey over distinct vertices: a vertical line swept from left to right (then
    upward) holds the edges it crosses in their order from below; only edges next to each
    other in that order, at some time, can be the first two to meet. True where none meet;
    else False and the two edges found meeting, where two were (None: an edge out of
    order)."""
    n = len(points)
    ends = [(points[i], points[(i + 1) % n]) for i in range(n)]
    left = [min(a, b) for a, b in ends]
    right = [max(a, b) for a, b in ends]
    crossed: list[int] = []  # the edges the line crosses, from below

    def side(edge: int, point: Point) -> int:
        """turn(left[edge], right[edge], point), its floating-point part inline (most of
        the sweep's time)."""
        (px, py), (qx, qy) = left[edge], right[edge]
        ahead = (qx - px) * (point[1] - py)
        across = (qy - py) * (point[0] - px)
        det = ahead - across
        bound = TURN_ROUNDING * (abs(ahead) + abs(across))
        if det > bound and det > TURN_TINY:
            return 1
        if det < -bound and det < -TURN_TINY:
            return -1
        return turn(left[edge], right[edge], point)

    def adjacent(a: int, b: int) -> bool:
        return (a - b) % n in (1, n - 1)

    def meet(a: int, b: int) -> bool:
        """Whether edges a and b may meet (consecutive ones: beyond their common vertex)."""
        if adjacent(a, b):
            return False  # consecutive edges that run back were refused before the sweep
        p, q, r, s = left[a], right[a], left[b], right[b]
        t1, t2, t3, t4 = turn(p, q, r), turn(p, q, s), turn(r, s, p), turn(r, s, q)
        if t1 * t2 > 0 or t3 * t4 > 0:
            return False
        if t1 == t2 == t3 == t4 == 0:  # on one line: whether their stretches overlap
            return max(p, r) <= min(q, s)
        return True

    def above(edge: int, point: Point, other: Point) -> bool | None:
        """Whether `point` (the left end of an edge going on to `other`) lies above `edge`,
        in the line's order; None where it lies on it (the edges meet)."""
        sign = side(edge, point)
        if sign == 0 and left[edge] == point:  # consecutive edges leaving one vertex
            sign = side(edge, other)
        return None if sign == 0 else sign > 0

    def leaving(edge: int, point: Point) -> int | tuple[int, int] | None:
        """Where `edge`, ending at `point`, is in the line's order; the two edges where
        another passes through `point` (they meet); None where it is not in order (the
        edges met before here)."""
        lo, hi = 0, len(crossed)
        while lo < hi:
            mid = (lo + hi) // 2
            other = crossed[mid]
            if other == edge:
                return mid
            sign = side(other, point)
            if sign == 0 and right[other] == point:  # consecutive edges ending here
                sign = side(other, left[edge])
            if sign == 0:
                return other, edge
            lo, hi = (mid + 1, hi) if sign > 0 else (lo, mid)
        return None

    for i in sorted(range(n), key=points.__getitem__):
        point = points[i]
        for edge in ((i - 1) % n, i):  # the edges ending here leave the line first
            if right[edge] == point:
                at = leaving(edge, point)
                if not isinstance(at, int):
                    return False, at
                del crossed[at]
                if 0 < at < len(crossed) and meet(crossed[at - 1], crossed[at]):
                    return False, (crossed[at - 1], crossed[at])
        for edge in ((i - 1) % n, i):
            if left[edge] != point:
                continue
            lo, hi = 0, len(crossed)
            while lo < hi:  # the first edge above the point
                mid = (lo + hi) // 2
                over = above(crossed[mid], point, right[edge])
                if over is None:
                    return False, (crossed[mid], edge)
                lo, hi = (mid + 1, hi) if over else (lo, mid)
            crossed.insert(lo, edge)
            if lo > 0 and meet(crossed[lo - 1], edge):
                return False, (crossed[lo - 1], edge)
            if lo + 1 < len(crossed) and meet(edge, crossed[lo + 1]):
                return False, (edge, crossed[lo + 1])
    return True, None
