"""One entry point for every grain file MMT reads: cuboid grains (the DESIGN.md CSV, the cuboid
library's text) and point grains (point lists, the multipole library's NPZ, Dragonfly
exports).

A file read in the wrong format gives the reader's message about the first thing it could not
read, which rarely says why; `guess_grain_format` looks at the file's first bytes, and when it
recognises another format, the message ends with the ``--grain-format`` that reads it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from smm_daq.analysis.grains import CSV_COLUMNS, GrainSet, read_grains
from smm_daq.analysis.mmt.formats import dragonfly, mpe, points
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.articles import with_article
from smm_daq.errors import InputError
from smm_daq.npy_headers import ARCHIVE_ERRORS
from smm_daq.text_files import decode_text, is_number, text_lines

GRAIN_FORMATS = ("cuboids", "csv", "mmt", "points", "mpe", "dragonfly")  # csv = cuboids
CUBOID_FORMATS = ("cuboids", "csv", "mmt")
POINT_FORMATS = ("points", "mpe", "dragonfly")  # those a crop to the scans applies to
SNIFF_BYTES = 65536
FIELDS = {5: "points", 7: "mmt"}  # numbers on a line: x y z volume label; x y z hx hy hz grain


def _first_lines(head: bytes, whole: bool) -> list[str]:
    """The first two lines that are neither blank nor a '#' comment (fewer if there are none,
    or they may be cut short by the sniffing limit)."""
    # as a Dragonfly export is read; a cut head loses its odd byte (UTF-16 comes in pairs),
    # and with it only the last line, which is dropped as possibly cut anyway
    lines = text_lines(decode_text(head if whole else head[: len(head) // 2 * 2]))
    complete = lines if whole else lines[:-1]
    return [ln.strip() for ln in complete if ln.strip() and not ln.lstrip().startswith("#")][:2]


def _zip_format(path: str | Path) -> str | None:
    """"mpe" for a zip archive of numpy arrays (an NPZ), None for another or a damaged one
    (one zipfile cannot read: a version it lacks raises NotImplementedError)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except ARCHIVE_ERRORS:
        return None
    return "mpe" if any(name.endswith(".npy") for name in names) else None


def guess_grain_format(path: str | Path) -> str | None:
    """The grain format a file looks like from its first bytes: "mpe" (an NPZ archive),
    "dragonfly", "cuboids", "points" or "mmt"; None when unsure or unreadable."""
    if not Path(path).is_file():  # a pipe or device would block the read
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return None
    if head.startswith(b"PK"):
        return _zip_format(path)
    lines = _first_lines(head, len(head) < SNIFF_BYTES)
    if not lines:
        return None
    line = lines[0]
    if "Label Index" in line and "Center Of Mass" in line:
        return "dragonfly"
    if set(CSV_COLUMNS) <= {cell.strip() for cell in line.split(",")}:
        return "cuboids"
    fields = line.replace(",", " ").split()
    if not any(map(is_number, fields)) and len(lines) > 1:  # a header naming the columns
        fields = lines[1].replace(",", " ").split()
    return FIELDS.get(len(fields)) if all(map(is_number, fields)) else None


def _hinted(exc: InputError, path: str | Path, fmt: str) -> InputError:
    """`exc` with the --grain-format the file looks like appended, when that is another."""
    guess = guess_grain_format(path)
    if guess is None or guess == ("cuboids" if fmt == "csv" else fmt):
        return exc
    message = str(exc).removeprefix(f"{exc.source}: ") if exc.source else str(exc)
    return InputError(f"{message}; it looks like {with_article(guess)} file (--grain-format "
                      f"{guess})", source=exc.source)


def _read(path: str | Path, fmt: str, options: dragonfly.DragonflyOptions | None
          ) -> GrainSet | PointGrains:
    if fmt in CUBOID_FORMATS:
        return read_grains(path, "mmt" if fmt == "mmt" else "csv")
    if fmt == "points":
        return points.read_points(path)
    if fmt == "mpe":
        return mpe.read_particles(path)
    return dragonfly.read_dragonfly(path, options)


def read_grain_file(path: str | Path, fmt: str = "cuboids",
                    options: dragonfly.DragonflyOptions | None = None
                    ) -> GrainSet | PointGrains:
    """The grains of a file in format `fmt` (`options` for Dragonfly exports)."""
    if fmt not in GRAIN_FORMATS:
        raise InputError(f"grain format {fmt!r} is unknown; expected one of "
                         f"{', '.join(GRAIN_FORMATS)}")
    try:
        return _read(path, fmt, options)
    except InputError as exc:
        raise _hinted(exc, path, fmt) from None
