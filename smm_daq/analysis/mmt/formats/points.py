"""Point-source grain lists as plain text: one grain a line, ``x y z volume label``, whitespace
(or comma) separated, in metres and m³, z up with the sample top at 0 (grains at z < 0), as
the multipole workflow writes them with ``numpy.savetxt``. Lines starting with '#' and blank
lines are skipped; a label that is a whole number in float notation (``3.000000000000000000e+00``,
numpy's default) is accepted."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.models.multipole import MAX_LABEL, PointGrains, point_grains
from smm_daq.errors import InputError

FIELDS = ("x", "y", "z", "volume", "label")


def _fields(line: str) -> list[tuple[str, int]]:
    """(text, 1-based column) of each field of a line."""
    out = []
    i = 0
    text = line.replace(",", " ").replace("\t", " ")
    while i < len(text):
        if text[i] == " ":
            i += 1
            continue
        j = text.find(" ", i)
        j = len(text) if j < 0 else j
        out.append((text[i:j], i + 1))
        i = j
    return out


def read_points(path: str | Path) -> PointGrains:
    """The grains of a point list; InputError naming the file, line and column."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError("is a directory; expected a grain file" if path.is_dir()
                         else "no such grain file", source=source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not a text file ({exc.reason})", source=source) from None
    rows: list[list[float]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = _fields(line)
        if len(fields) != len(FIELDS):
            raise InputError(f"has {len(fields)} fields; expected 5: x y z volume label (m, m³)",
                             source=f"{source}, line {lineno}")
        row = []
        for (value, col), name in zip(fields, FIELDS, strict=True):
            try:
                v = float(value)
            except ValueError:
                v = math.nan
            if not math.isfinite(v) or (name == "label" and (v != round(v)
                                                               or abs(v) > MAX_LABEL)) \
                    or (name == "volume" and v <= 0):
                want = {"label": f"a whole number of at most {MAX_LABEL:g} in size",
                        "volume": "a volume > 0 in m³"}.get(name, "a finite number in m")
                raise InputError(f"{name} is {value!r}; expected {want}",
                                 source=f"{source}, line {lineno}, column {col}")
            row.append(v)
        rows.append(row)
        lines.append(lineno)
    if not rows:
        raise InputError("holds no grains; expected lines of x y z volume label", source=source)
    arr = np.array(rows)
    return point_grains(arr[:, :3], arr[:, 3], arr[:, 4].astype(np.int64), source=source,
                        lines=np.array(lines))


def write_points(path: str | Path, grains: PointGrains) -> None:
    """The list in the same format, each number in the shortest form that reads back exactly."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("# x y z volume label (m, m^3; z up, sample top at 0)\n")
        for p, v, label in zip(grains.positions, grains.volume, grains.labels, strict=True):
            f.write(" ".join(repr(float(c)) for c in (*p, v)) + f" {int(label)}\n")
