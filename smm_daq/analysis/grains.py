"""Grain geometry from micro-CT: each grain a union of axis-aligned cuboids.

Two file formats (DESIGN.md §8):

* CSV with the header ``grain,x_um,y_um,z_um,dx_um,dy_um,dz_um``: cuboid centre and FULL
  edge lengths in µm, z up (grains at z < 0). Columns may come in any order; '#' starts a
  comment line.
* the MMT community's text format (``--grain-format mmt``): whitespace-separated
  ``x y z hx hy hz grain`` in µm with HALF edge lengths and z as DEPTH (positive down). Lines
  of words above the first line of numbers are a header, as ``mmt_dipole_cuboid_inversion``'s
  ``CuboidDecomposition`` writes one (``x,y,z,dx,dy,dz,i``) and its readers skip it
  (``skiprows``); the columns are read by position, as there, so a header naming the grain
  first (its earlier ``i,x,y,z,dx,dy,dz``, full edges) is refused.

Both are read as UTF-8 (a byte-order mark dropped), as UTF-16 or UTF-32 after its byte-order
mark, else as latin-1 (a Windows editor's comment with ``µ``); a file with NUL bytes is no
text.

Cuboids of one grain may be spread over the file; they are grouped by label. Overlapping
cuboids of one grain (which would count volume twice) and cuboids above the sample top are
refused with a message naming the file and line(s); cuboids of different grains that overlap
(micro-CT segmentations do this) are kept, with a GeometryWarning. Grains above the sensor are
refused by the inversion, which knows the sensor height.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smm_daq.errors import InputError
from smm_daq.text_files import (
    UNICODE_BOMS,
    decode_text,
    empty_field_column,
    is_number,
    require_file,
    shown,
    text_lines,
)
from smm_daq.whole_files import written_whole

UM = 1e-6
CSV_COLUMNS = ("grain", "x_um", "y_um", "z_um", "dx_um", "dy_um", "dz_um")
FORMATS = ("csv", "mmt")
# Cuboids may touch: an overlap thinner than this fraction of the smaller edge is rounding.
_OVERLAP_TOLERANCE = 1e-6


@dataclass(frozen=True)
class GrainSet:
    """Cuboids (C, 6) in m (centre x, y, z; full edges dx, dy, dz; z up), grouped by grain.

    Cuboids are sorted by grain: those of grain g are ``cuboids[start[g]:start[g + 1]]``.
    ``labels[g]`` is the grain's label in the file, ``lines[c]`` the file line of cuboid c.
    """

    cuboids: np.ndarray
    grain: np.ndarray  # (C,) grain index 0..G-1 of each cuboid (non-decreasing)
    labels: np.ndarray  # (G,) int labels from the file
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source: str = ""

    @property
    def n_grains(self) -> int:
        return int(self.labels.size)

    @property
    def start(self) -> np.ndarray:
        """(G + 1,) offsets of each grain's cuboids."""
        return np.searchsorted(self.grain, np.arange(self.n_grains + 1))

    def cuboid_volumes(self) -> np.ndarray:
        return np.prod(self.cuboids[:, 3:], axis=1)

    def volumes(self) -> np.ndarray:
        """(G,) grain volumes in m³."""
        return np.bincount(self.grain, self.cuboid_volumes(), minlength=self.n_grains)

    def centroids(self) -> np.ndarray:
        """(G, 3) volume centroids in m."""
        v = self.cuboid_volumes()
        vol = self.volumes()
        return np.stack(
            [np.bincount(self.grain, v * self.cuboids[:, k], self.n_grains) / vol
             for k in range(3)],
            axis=1,
        )

    def radii(self) -> np.ndarray:
        """(G,) the largest distance from a grain's centroid to any of its cuboids' corners."""
        c = self.centroids()[self.grain]
        far = np.abs(self.cuboids[:, :3] - c) + self.cuboids[:, 3:] / 2
        return np.maximum.reduceat(np.linalg.norm(far, axis=1), self.start[:-1]) \
            if self.cuboids.size else np.zeros(0)

    def tops(self) -> np.ndarray:
        """(G,) the highest z of each grain in m."""
        top = self.cuboids[:, 2] + self.cuboids[:, 5] / 2
        return np.maximum.reduceat(top, self.start[:-1]) if top.size else np.zeros(0)

    def subset(self, grains: np.ndarray) -> GrainSet:
        """The grains with the given indices (in that order), renumbered 0..len-1."""
        grains = np.asarray(grains, dtype=np.int64)
        start = self.start
        idx = np.concatenate([np.arange(start[g], start[g + 1]) for g in grains]) \
            if grains.size else np.zeros(0, dtype=np.int64)
        counts = start[grains + 1] - start[grains]
        return GrainSet(
            cuboids=self.cuboids[idx],
            grain=np.repeat(np.arange(grains.size), counts),
            labels=self.labels[grains],
            lines=self.lines[idx] if self.lines.size else self.lines,
            source=self.source,
        )


def from_arrays(
    cuboids: np.ndarray, grain_labels: np.ndarray, *, lines: np.ndarray | None = None,
    source: str = "",
) -> GrainSet:
    """Group cuboids (C, 6) m by their grain labels (C,) (stable: file order within a grain)."""
    cuboids = np.asarray(cuboids, dtype=float).reshape(-1, 6)
    labels_in = np.asarray(grain_labels, dtype=np.int64).reshape(-1)
    if labels_in.size != cuboids.shape[0]:
        raise ValueError(f"{labels_in.size} labels for {cuboids.shape[0]} cuboids")
    order = np.argsort(labels_in, kind="stable")
    labels, grain = np.unique(labels_in[order], return_inverse=True)
    line_arr = np.arange(1, cuboids.shape[0] + 1) if lines is None else np.asarray(lines)
    return GrainSet(
        cuboids=cuboids[order], grain=grain.astype(np.int64), labels=labels,
        lines=line_arr[order].astype(np.int64), source=source,
    )


MAX_UM = 1e6  # a metre: no micro-CT volume is larger
MIN_EDGE_UM = 1e-6  # a picometre: far below any voxel, yet a volume that stays finite
MAX_LABEL = 2**53  # labels stay exact as float64 and fit int64


def _number(text: str, where: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and abs(value) <= MAX_UM):
        raise InputError(f"{what} is {shown(text)}; expected a finite number of µm within "
                         f"±{MAX_UM:g}", source=where)
    return value


def _label(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value == round(value) and abs(value) <= MAX_LABEL):
        raise InputError(f"grain label is {shown(text)}; expected a whole number within "
                         f"±{MAX_LABEL:g}", source=where)
    return round(value)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    source = str(path)
    rows: list[list[float]] = []
    labels: list[int] = []
    lines: list[int] = []
    header: list[str] | None = None
    text = _text(path, f"the header {','.join(CSV_COLUMNS)} and lines of numbers")
    for lineno, raw in enumerate(text_lines(text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(",")]
        where = f"{source}, line {lineno}"
        if header is None:
            header = cells
            unknown = [c for c in cells if c not in CSV_COLUMNS]
            missing = [c for c in CSV_COLUMNS if c not in cells]
            if unknown or missing or len(set(cells)) != len(cells):
                problem = (f"unknown column(s) {', '.join(map(repr, unknown))}" if unknown
                           else f"missing column(s) {', '.join(map(repr, missing))}" if missing
                           else "repeated columns")
                # the --grain-format the file looks like is said by `read_grain_file`
                raise InputError(
                    f"header has {problem}; expected the columns {','.join(CSV_COLUMNS)}",
                    source=where,
                )
            index = [cells.index(c) for c in CSV_COLUMNS]
            continue
        if len(cells) != len(header):
            raise InputError(
                f"has {len(cells)} values; expected {len(header)} ({','.join(header)})",
                source=where,
            )
        values = [cells[i] for i in index]
        labels.append(_label(values[0], where))
        rows.append([_number(v, where, name) for v, name in zip(values[1:], CSV_COLUMNS[1:],
                                                                   strict=True)])
        lines.append(lineno)
    if header is None:
        raise InputError(f"is empty; expected the header {','.join(CSV_COLUMNS)}", source=source)
    arr = np.array(rows, dtype=float).reshape(-1, 6) * UM
    return arr, np.array(labels, dtype=np.int64), np.array(lines, dtype=np.int64)


def _text(path: Path, expected: str) -> str:
    """The file's text (see the module); InputError when it holds NUL bytes."""
    data = path.read_bytes()
    if b"\0" in data and not data.startswith(UNICODE_BOMS):
        raise InputError(f"is not a text file (it holds NUL bytes); expected {expected}",
                         source=str(path))
    return decode_text(data)


def _fields(line: str) -> list[tuple[str, int]]:
    """(text, 1-based column) of each field of a line split on spaces, tabs and commas."""
    return [(m.group(), m.start() + 1) for m in re.finditer(r"[^\s,]+", line)]


def _is_header(fields: list[tuple[str, int]], where: str) -> bool:
    """Whether a line above the first line of numbers is a header: every field a word.
    InputError for the DESIGN.md CSV's header, whose columns read by position would be wrong."""
    words = [text for text, _ in fields]
    if not all(text[0].isalpha() and not is_number(text) for text in words):
        return False
    if set(CSV_COLUMNS) <= set(words):
        raise InputError(f"is the grain CSV's header ({','.join(words)}), whose columns "
                         "differ; expected lines of x y z hx hy hz grain", source=where)
    if words[0].lower() in _LABEL_NAMES:  # an earlier CuboidDecomposition's i,x,y,z,dx,dy,dz
        raise InputError(f"is a header naming the grain first ({','.join(words)}); expected "
                         "the columns x y z hx hy hz grain, read by position (half edges, the "
                         "grain last)", source=where)
    return True


_MMT_NAMES = ("x", "y", "z", "hx", "hy", "hz")
_LABEL_NAMES = ("i", "id", "ind", "index", "grain", "label", "particle")


def _read_mmt(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    source = str(path)
    rows: list[list[float]] = []
    labels: list[int] = []
    lines: list[int] = []
    for lineno, raw in enumerate(text_lines(_text(path, "lines of x y z hx hy hz grain")),
                                 start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {lineno}"
        fields = _fields(raw)
        if not rows and _is_header(fields, where):
            continue
        empty = empty_field_column(raw)
        if empty is not None:
            raise InputError("holds an empty field between commas; expected 7 values (x y z "
                             "hx hy hz grain)", source=f"{where}, column {empty}")
        if len(fields) != 7:
            raise InputError(
                f"has {len(fields)} values; expected 7 (x y z hx hy hz grain, µm, half edges, "
                "z as depth)",
                source=where,
            )
        x, y, depth, hx, hy, hz = (_number(text, f"{where}, column {col}", name)
                                   for (text, col), name in zip(fields, _MMT_NAMES, strict=False))
        labels.append(_label(fields[6][0], f"{where}, column {fields[6][1]}"))
        rows.append([x, y, -depth, 2 * hx, 2 * hy, 2 * hz])
        lines.append(lineno)
    arr = np.array(rows, dtype=float).reshape(-1, 6) * UM
    return arr, np.array(labels, dtype=np.int64), np.array(lines, dtype=np.int64)


def _overlaps(lo, hi, order, tol):
    """Sweep along x over cuboids sorted by their lower x: all overlapping pairs (i, j)."""
    n = order.size
    pairs = []
    for a in range(n):
        i = order[a]
        for b in range(a + 1, n):
            j = order[b]
            if lo[j, 0] >= hi[i, 0] - tol[i]:
                break
            t = min(tol[i], tol[j])
            if (min(hi[i, 0], hi[j, 0]) - max(lo[i, 0], lo[j, 0]) > t
                    and min(hi[i, 1], hi[j, 1]) - max(lo[i, 1], lo[j, 1]) > t
                    and min(hi[i, 2], hi[j, 2]) - max(lo[i, 2], lo[j, 2]) > t):
                pairs.append((min(i, j), max(i, j)))
    return pairs


@functools.cache
def _overlap_kernel() -> Callable[..., list[tuple[int, int]]]:
    """`_overlaps` compiled by numba, imported on first use: the command line imports this
    module to build its parser, and numba takes longer to import than the rest together."""
    from numba import njit

    return njit(cache=True)(_overlaps)


class GeometryWarning(UserWarning):
    """A grain file that is usable but suspicious (e.g. cuboids of two grains overlap)."""


def check_geometry(grains: GrainSet, fmt: str = "csv") -> None:
    """Refuse non-positive edges, cuboids above the sample top (z > 0) and overlapping cuboids
    of one grain; warn (GeometryWarning) when cuboids of different grains overlap. `fmt` (of
    FORMATS) is the file's, for what a cuboid above the top suggests."""
    cub = grains.cuboids
    src = grains.source or "grain file"

    def where(c: int) -> str:
        return f"{src}, line {grains.lines[c]}" if grains.lines.size else f"{src}, cuboid {c}"

    if cub.shape[0] == 0:
        raise InputError("holds no cuboids; expected at least one grain", source=src)
    bad = np.flatnonzero(np.any(cub[:, 3:] < MIN_EDGE_UM * UM, axis=1))
    if bad.size:
        edges = ", ".join(f"{v / UM:g}" for v in cub[bad[0], 3:])
        raise InputError(f"has edges {edges} µm; expected edges of at least {MIN_EDGE_UM:g} µm",
                         source=where(bad[0]))
    top = cub[:, 2] + cub[:, 5] / 2
    tol = _OVERLAP_TOLERANCE * cub[:, 3:].min(axis=1)
    above = np.flatnonzero(top > tol)
    if above.size:
        c = above[0]
        raise InputError(
            f"grain {grains.labels[grains.grain[c]]} reaches z = {top[c] / UM:.4g} µm, above the "
            "sample top (z = 0); expected grains inside the sample "
            + ("(depths positive down, the top at 0)" if fmt == "mmt"
               else "(z up, or use --grain-format mmt for depths)"),
            source=where(c),
        )
    lo = cub[:, :3] - cub[:, 3:] / 2
    hi = cub[:, :3] + cub[:, 3:] / 2
    pairs = _overlap_kernel()(lo, hi, np.argsort(lo[:, 0], kind="stable"), tol)
    if not pairs:
        return
    pairs.sort()
    label = grains.labels[grains.grain]

    def lines(i: int, j: int) -> str:
        if not grains.lines.size:
            return f"cuboids {i} and {j}"
        a, b = sorted((int(grains.lines[i]), int(grains.lines[j])))
        return f"lines {a} and {b}"

    same = [(i, j) for i, j in pairs if label[i] == label[j]]
    if same:
        i, j = same[0]
        raise InputError(
            f"cuboids of grain {label[i]} overlap ({lines(i, j)}), which would count their "
            "common volume twice; expected the cuboids of a grain to be disjoint",
            source=src,
        )
    i, j = pairs[0]
    warnings.warn(
        f"{src}: {len(pairs)} pair(s) of cuboids of different grains overlap (first: grains "
        f"{label[i]} and {label[j]}, {lines(i, j)}); each grain keeps its own cuboids",
        GeometryWarning,
        stacklevel=3,
    )


def read_grains(path: str | Path, fmt: str = "csv") -> GrainSet:
    """Read and check a grain file; InputError naming the file and line on bad input."""
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"grain format {fmt!r} is unknown; expected one of {', '.join(FORMATS)}")
    require_file(path, "grain", f"a grain file ({fmt})")
    cuboids, labels, lines = _read_csv(path) if fmt == "csv" else _read_mmt(path)
    grains = from_arrays(cuboids, labels, lines=lines, source=str(path))
    check_geometry(grains, fmt)
    return grains


def write_grains_csv(path: str | Path, grains: GrainSet) -> None:
    """Write the DESIGN.md §8 CSV (µm, full edges, z up), each number in the shortest form
    that reads back to the same double, so touching cuboids never come back overlapping."""
    with written_whole(path) as part, part.open("w", encoding="utf-8") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        for label, row in zip(grains.labels[grains.grain], grains.cuboids / UM, strict=True):
            f.write(f"{int(label)}," + ",".join(repr(float(v)) for v in row) + "\n")
