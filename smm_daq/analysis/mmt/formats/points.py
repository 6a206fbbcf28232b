"""Point-source grain lists as plain text: one grain a line, ``x y z volume label``, whitespace
(tabs, or commas) separated, in metres and m³, z up with the sample top at 0 (grains at z < 0),
as the multipole workflow writes them with ``numpy.savetxt``. Blank lines and '#' comments
(whole lines, or the rest of a line, as ``numpy.loadtxt`` skips them) are skipped; so is a
first line naming the columns ``x y z volume label`` in that order (units in brackets allowed),
as ``savetxt(header=..., comments="")`` or a spreadsheet writes it, while a header naming them
otherwise is refused: the columns are read by position. Between commas a field may not be empty
(a missing number would shift the rest one column along); a trailing comma is allowed; a ';' (a
decimal-comma spreadsheet's separator) is refused where it stands. A label that is a whole
number in float notation (``3.000000000000000000e+00``, numpy's default) is accepted. The text
is read as UTF-8 (a byte-order mark dropped), as UTF-16 or UTF-32 after its byte-order mark
(Windows "Unicode" text), else as latin-1 (a Windows editor's comment with ``³`` or ``µ``); a
file with NUL bytes is no text."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.models.multipole import MAX_LABEL, PointGrains, point_grains
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

FIELDS = ("x", "y", "z", "volume", "label")
_UNIT = re.compile(r"[(\[][^)\]]*[)\]]")  # "(m)", "[m^3]" in a header


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


def _is_header(line: str, source: str, lineno: int) -> bool:
    """Whether the first line read names the columns (every field of it a word, units in
    brackets aside); InputError when it names them in another order or other columns."""
    words = [text for text, _ in _fields(_UNIT.sub(" ", line))]
    if not words or any(is_number(w) or not w[0].isalpha() for w in words):
        return False
    if [w.lower() for w in words] != list(FIELDS):
        raise InputError(f"is a header naming {', '.join(map(repr, words))}; expected no "
                         "header, or one naming x y z volume label in that order (the columns "
                         "are read by position)", source=f"{source}, line {lineno}")
    return True


def read_points(path: str | Path) -> PointGrains:
    """The grains of a point list; InputError naming the file, line and column."""
    path = Path(path)
    source = str(path)
    require_file(path, "grain", "a grain file (a point list, text)")
    data = path.read_bytes()
    if b"\0" in data and not data.startswith(UNICODE_BOMS):
        raise InputError("is not a text file (it holds NUL bytes); expected lines of x y z "
                         "volume label", source=source)
    rows: list[list[float]] = []
    lines: list[int] = []
    first = True  # only the first line read may be a header
    for lineno, line in enumerate(text_lines(decode_text(data)), start=1):
        line = line.split("#", 1)[0]
        if not line.strip():
            continue
        if ";" in line:  # a spreadsheet's export in a decimal-comma locale
            raise InputError("holds a ';'; expected x y z volume label separated by spaces, "
                             "tabs or commas, with decimal points: export it again so",
                             source=f"{source}, line {lineno}, column {line.index(';') + 1}")
        if first:
            first = False
            if _is_header(line, source, lineno):
                continue
        fields = _fields(line)
        empty = empty_field_column(line)
        if empty is not None:
            raise InputError("holds an empty field between commas; expected 5 numbers: x y z "
                             "volume label (m, m³)",
                             source=f"{source}, line {lineno}, column {empty}")
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
                raise InputError(f"{name} is {shown(value)}; expected {want}",
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
    with written_whole(path) as part, part.open("w", encoding="utf-8") as f:
        f.write("# x y z volume label (m, m^3; z up, sample top at 0)\n")
        for p, v, label in zip(grains.positions, grains.volume, grains.labels, strict=True):
            f.write(" ".join(repr(float(c)) for c in (*p, v)) + f" {int(label)}\n")
