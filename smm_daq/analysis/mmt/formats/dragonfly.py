"""Grains from a Dragonfly "connected components" export: CSV with a header line naming the
columns. The columns used are ``Label Index``, ``Voxel count``, ``Volume (mm³)`` and ``Center Of
Mass X/Y/Z (mm)``; others (surface area, aspect ratios, ...) are ignored, in any order, and a
trailing separator is allowed. A header naming a column read twice (in one unit or two) is
refused: which of them holds the values meant is not known. Lengths are in the unit each header
names, as Dragonfly writes the one its user chose: mm, µm (also ``um``), nm or m, volumes in its
cube (``mm³``, ``mm^3`` or ``mm3``). Cells are separated by ``;`` (Dragonfly's default, and the
only one a decimal-comma locale can use), else by tabs, else by ``,``: the header's separator is
the file's; a cell in double quotes may hold it (pandas and the csv module quote a decimal comma
so in a ','-separated file), and a row of separators alone (a spreadsheet's blank row) is a
blank line. The text is read as UTF-16 (or UTF-32) when it starts with its byte-order mark
(Windows "Unicode" text), as UTF-8 (with or without a byte-order mark) when it is valid UTF-8,
else as latin-1 (Dragonfly's Windows default); one holding NUL characters (UTF-16 without its
mark) is no text. A ``;``-separated export comes from a locale whose decimal mark may be a comma
(``0,008``); a file's numbers are read with the one mark they use. A file that mixes decimal
commas and decimal points is refused at its first cell of the other mark: there ``1,234`` may be
a thousands separator as well as a decimal comma, and either reading could be wrong; so is a
file of decimal commas separated otherwise than by ';' whose every comma could group thousands
(``"1,500"``: 1500 to Excel in a decimal-point locale, 1.5 to pandas with ``decimal=','``). Text
after a cell's closing quote is part of the cell, as the csv module and pandas read it.

The conventions of the micro-CT workflow, each an option:

* ``min_voxels`` (default 1: every component): components with fewer voxels are dropped as
  segmentation noise;
* ``z_top_mm`` (default: the top of the highest grain, taken as its centroid z plus the
  radius of the sphere of its volume, and warned of): the CT z of the sample's top surface; z
  is shifted so that it is 0 there and negative (depth) below. A kept grain whose centroid
  comes out above the top (a wrong z_top or z axis) is refused. The default is a guess: the
  polished surface lies above the highest grain by however much clean matrix covers it, and
  every grain comes out too shallow by that much (its fitted moment too small, the crop's
  reach too short), which nothing in the export can tell;
* ``z_down`` (default False): the CT z axis points down into the sample (slice index order),
  so depth is z − z_top rather than z_top − z;
* ``crop`` (default None: keep all): an (x0, x1, y0, y1) window in m, usually the rectangle
  the scans' sensors cover (`scan_crop`: their centres, grown by half a sensor), with
  ``crop_height`` (m, the lowest sensor's height above the sample top), ``crop_noise`` (T,
  the noise SD of the quietest scan) and ``crop_magnetization`` (A/m, default
  CROP_MAGNETIZATION, magnetite's saturation: the most any grain of the sample could carry,
  so 1,710 kA/m for grains of iron). A grain is kept
  where the largest Bz it could put on any point of the window, at that height,
  magnetized to ``crop_magnetization`` in the worst direction, reaches CROP_FRACTION of the
  noise (`largest_field`): a grain dropped so adds at most a tenth of σ to any pixel even
  at saturation, and real grains lie one to two orders below it (seed 001:
  46.5 kA/m at 1 µm, falling with size). The reach so grows with the grain's volume and
  the magnetization and shrinks with the noise: at 100 µm above the top and σ 250 nT, a
  grain 10 µm deep is kept, at magnetite's saturation, up to 97 µm beyond the edge for
  1 µm³, 263 µm for 10 µm³ and 1.2 mm for 1,000 µm³; a grain of iron (3.6 times the moment)
  reaches about 1.5 times as far. The
  rule it replaces (a centroid beyond the window by no more than its depth plus the height,
  whatever the grain) dropped grains whose largest field on the edge sensors was 28 % of
  their largest anywhere (200 nT for 10 µm³ at saturation), and at twice that reach 5.7 %.
  ``crop_noise`` 0 (results made before it was recorded) keeps that old rule, so they are
  made again as they were; ``crop_magnetization`` plays no part in it.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smm_daq.analysis.grains import GeometryWarning
from smm_daq.analysis.grids import Gridded
from smm_daq.analysis.mmt.models.multipole import (
    MAX_LABEL,
    POSITION_LIMIT_M,
    PointGrains,
    point_grains,
)
from smm_daq.analysis.noise import white_noise_floor
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.text_files import decode_text, require_file, shown, text_lines

MM = 1e-3
UM = 1e-6
MAX_LISTED = 40  # column names a message lists (an export has some 30)
# The columns read, by the name before their unit; Label Index and Voxel count have none.
COLUMNS = ("Label Index", "Voxel count", "Volume", "Center Of Mass X", "Center Of Mass Y",
           "Center Of Mass Z")
LENGTH_UNITS = {"m": 1.0, "mm": MM, "µm": UM, "μm": UM, "um": UM, "nm": 1e-9}  # in m
_CUBED = ("³", "^3", "3")
_HEADER_CELL = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)$")
MU0_4PI = 1e-7  # T m / A
CROP_MAGNETIZATION = 480e3  # A/m: magnetite's saturation, above any grain's remanence
# A/m: above iron's saturation (1,710 kA/m) and iron-cobalt's (1,950 kA/m), the highest of any
# material: a larger value is a typo (A/m for kA/m)
MAX_CROP_MAGNETIZATION = 2.5e6
CROP_FRACTION = 0.1  # of the noise SD: a grain whose largest field falls short is dropped
MAX_FIELD_T = 100.0  # no noise SD reaches this
NOISELESS = 1e-9  # a noise floor under this share of a map's largest |Bz| is rounding


@dataclass(frozen=True)
class Column:
    """One column read: its name in the file, where it stands, and its unit in SI."""

    name: str  # one of COLUMNS
    header: str  # as the file spells it, e.g. "Volume (µm³)"
    index: int
    unit: str  # as the file spells it; "" for the label and the voxel count
    scale: float  # m or m³ per unit of the file; 1 for the label and the voxel count


@dataclass(frozen=True)
class DragonflyOptions:
    min_voxels: int = 1
    z_top_mm: float | None = None
    z_down: bool = False
    crop: tuple[float, float, float, float] | None = None
    crop_height: float = 0.0  # m: the sensor height above the sample top (`scan_crop`)
    crop_noise: float = 0.0  # T: the quietest scan's noise SD; 0: the depth-plus-height reach
    # A/m: the most a grain could be magnetized (its mineral's saturation), for the crop's reach
    crop_magnetization: float = CROP_MAGNETIZATION


def _separator(header: str) -> str:
    """The file's cell separator: the header's ';', else its tab, else ','."""
    return next((sep for sep in (";", "\t") if sep in header), ",")


def _split(line: str, sep: str) -> list[tuple[str, int]]:
    """The cells of a line, unquoted and stripped, each with its 1-based column. A cell in
    double quotes may hold the separator, as the csv module, pandas and spreadsheets quote a
    decimal comma in a ','-separated file ('""' inside is one quote)."""
    cells = []
    i = 0
    while True:
        j = len(line) - len(line[i:].lstrip(" "))  # spaces before an opening quote
        if line.startswith('"', j):
            k, text = j + 1, []
            while k < len(line) and not (line[k] == '"' and not line.startswith('""', k)):
                text.append(line[k])
                k += 2 if line.startswith('""', k) else 1
            end = line.find(sep, k)
            # text between the closing quote and the separator belongs to the cell, as the
            # csv module and pandas read it ('"0,5"x' is '0,5x', no number): never dropped
            cell = "".join(text) + line[k + 1: None if end < 0 else end]
        else:
            end = line.find(sep, i)
            cell = line[i:] if end < 0 else line[i:end]
        cells.append((cell.strip(), i + 1))
        if end < 0:
            return cells
        i = end + len(sep)


def _number(cell: str, comma: bool) -> float:
    """The cell's number, read with a decimal comma where `comma`; NaN when it is none."""
    try:
        return float(cell.replace(",", ".") if comma else cell)
    except ValueError:
        return math.nan


def _found(header: list[str]) -> str:
    """The header's column names for a message, shortened when the line is no header at all."""
    names = [h if len(h) <= 60 else h[:57] + "..." for h in header if h]
    if not names:
        return "none"
    listed = ", ".join(map(repr, names[:MAX_LISTED]))
    return listed + (f", ... ({len(names)} in all)" if len(names) > MAX_LISTED else "")


def _scale(name: str, unit: str | None) -> float | None:
    """SI per unit of column `name` with `unit` (None when the header gave none), or None
    when that unit is not one a length or volume column may have."""
    if name in ("Label Index", "Voxel count"):
        return 1.0 if unit is None else None
    if unit is None:
        return None
    if name == "Volume":
        base = next((unit[: -len(c)] for c in _CUBED if unit.endswith(c)), None)
        return LENGTH_UNITS[base] ** 3 if base in LENGTH_UNITS else None
    return LENGTH_UNITS.get(unit)


def _expected_unit(name: str) -> str:
    if name in ("Label Index", "Voxel count"):
        return f"'{name}' with no unit"
    units = ", ".join(u for u in LENGTH_UNITS if u != "μm")  # µ and μ: one to the eye
    return (f"'Volume (mm³)' with a volume unit ({units} cubed)" if name == "Volume"
            else f"'{name} (mm)' with a length unit ({units})")


def _columns(lines: list[str], source: str) -> tuple[int, str, list[Column]]:
    """The header's line index, the file's separator and each of COLUMNS in the header."""
    header_no = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if header_no is None:
        raise InputError("is empty; expected a Dragonfly connected-components CSV", source=source)
    sep = _separator(lines[header_no])
    cells = _split(lines[header_no], sep)
    header = [text for text, _ in cells]
    where = f"{source}, line {header_no + 1}"
    named: dict[str, tuple[int, str | None]] = {}
    for k, cell in enumerate(header):
        m = _HEADER_CELL.match(cell)
        name, unit = (m["name"], m["unit"].strip()) if m else (cell, None)
        if name in named and name in COLUMNS:  # which of them holds the values is unknown
            first = named[name][0]
            raise InputError(f"names column '{name}' twice: '{header[first]}' at column "
                             f"{cells[first][1]} and '{cell}'; expected each column read "
                             f"({', '.join(repr(c) for c in COLUMNS)}) once: export it again "
                             "or delete the column that does not belong",
                             source=f"{where}, column {cells[k][1]}")
        named.setdefault(name, (k, unit))
    columns = []
    for name in COLUMNS:
        if name not in named:
            raise InputError(f"lacks column '{name}' (found {_found(header)}); expected a "
                             f"header line with {', '.join(repr(c) for c in COLUMNS)}, lengths "
                             "with their unit: 'Volume (mm³)', 'Center Of Mass X (mm)', ...",
                             source=where)
        k, unit = named[name]
        scale = _scale(name, unit)
        if scale is None:
            has = "no unit" if unit is None else f"unit {unit!r}"
            raise InputError(f"column '{header[k]}' has {has}; expected {_expected_unit(name)}",
                             source=where)
        columns.append(Column(name, header[k], k, unit or "", scale))
    return header_no, sep, columns


def _bad(column: Column, v: float) -> bool:
    """Whether cell value `v` cannot be the column's: a centroid beyond ±POSITION_LIMIT_M is
    refused here, by line and column, before the sample top is taken from it (its height in µm
    overflowed)."""
    name = column.name
    if not math.isfinite(v):
        return True
    if name in ("Label Index", "Voxel count"):
        return v != round(v) or v < (1 if name == "Voxel count" else 0) or v > MAX_LABEL
    if name == "Volume":
        return v <= 0
    return not abs(v) * column.scale <= POSITION_LIMIT_M


def _expected(column: Column) -> str:
    if column.name in ("Label Index", "Voxel count"):
        return f"a whole number of at most {MAX_LABEL:g}"
    if column.name == "Volume":
        return f"a volume > 0 in {column.unit}"
    return f"a number in {column.unit} within ±{POSITION_LIMIT_M / column.scale:g} {column.unit}"


Cell = tuple[Column, str, str]  # (its column, text, where it stands: "line n, column m")


def _cells(line: str, sep: str, columns: list[Column], line_no: int) -> list[Cell]:
    """The cells of COLUMNS in data line `line_no`, each with where it stands."""
    cells = _split(line, sep)
    out = []
    for c in columns:
        text, col = cells[c.index] if c.index < len(cells) else ("", len(line) + 1)
        out.append((c, text, f"line {line_no}, column {col}"))
    return out


def _width(line: str, sep: str) -> int:
    """How many cells `line` holds, a trailing separator's empty one not counted."""
    cells = _split(line, sep)
    return len(cells) - (len(cells) > 1 and not cells[-1][0])


def _refuse_extra_cells(line: str, sep: str, width: int, line_no: int, source: str) -> None:
    """A data line with more cells than the header has had a separator inside a cell (a
    decimal comma in a ','-separated file): every cell after it would be read from the
    wrong column."""
    n = _width(line, sep)
    if n > width:
        inside = (" (a decimal comma in a ','-separated file splits a number in two)"
                  if sep == "," else "")
        raise InputError(f"holds {n} cells where the header names {width}{inside}; expected "
                         "one cell per column: export it again with ';' as the separator or "
                         "decimal points", source=f"{source}, line {line_no}")


_GROUPED = re.compile(r"[+-]?[1-9]\d{0,2}(?:,\d{3})+")  # 1,500 or 12,345,678: thousands?


def _refuse_grouping(commas: list[Cell], sep: str, source: str) -> None:
    """A file whose decimal mark is a comma by count, not separated by ';' (the separator
    of decimal-comma locales alone), may hold '1,500' as a thousand and a half (Excel in a
    decimal-point locale reads it so) or as 1.5 (pandas with decimal=','); a comma that no
    thousands separator makes ('0,5', '12,3456', '0,008') settles it as a decimal comma."""
    if sep == ";" or any(not _GROUPED.fullmatch(text) for _, text, _ in commas):
        return
    column, text, where = commas[0]
    raise InputError(f"'{column.header}' is {shown(text)}, in a {sep!r}-separated file with "
                     "no decimal comma that could not be a thousands separator: it may be "
                     f"{text.replace(',', '')} or {text.replace(',', '.')}; expected numbers "
                     "without thousands separators: export it again with ';' as the separator "
                     "or with decimal points", source=f"{source}, {where}")


def _decimal_comma(rows: list[list[Cell]], sep: str, source: str) -> bool:
    """Whether the file's numbers have decimal commas: the mark most of its cells with one
    have. InputError at the first cell with the other mark, or with both, and where commas
    may group thousands instead (`_refuse_grouping`)."""
    marked = [(cell, [m for m in ",." if m in cell[1]]) for row in rows for cell in row]
    commas = [cell for cell, marks in marked if marks == [","]]
    points = [cell for cell, marks in marked if marks == ["."]]
    mark, usual = (",", commas) if len(commas) > len(points) else (".", points)
    if mark == ",":
        _refuse_grouping(commas, sep, source)
    for (column, text, where), marks in marked:
        if marks and marks != [mark]:
            seen = (f", but {shown(usual[0][1])} on {usual[0][2]} and "
                    f"{len(usual) - 1} other cell(s) have a decimal "
                    f"{'comma' if mark == ',' else 'point'}" if usual else "")
            raise InputError(
                f"'{column.header}' is {shown(text)}{seen}; expected one decimal mark throughout "
                "the file "
                "(a ',' among decimal points may be a thousands separator, a '.' among "
                "decimal commas likewise): export it again with one",
                source=f"{source}, {where}")
    return mark == ","


def _row(cells: list[Cell], comma: bool, source: str) -> list[float]:
    """The numbers of one data line; InputError naming the column of a bad cell."""
    row = []
    for column, cell, where in cells:
        v = _number(cell, comma)
        if _bad(column, v):
            raise InputError(f"'{column.header}' is {shown(cell)}; expected {_expected(column)}",
                             source=f"{source}, {where}")
        row.append(v)
    return row


def _z_top(opt: DragonflyOptions, pos: np.ndarray, vol: np.ndarray, labels: np.ndarray,
           lines: np.ndarray, source: str) -> float:
    """The CT z of the sample top in m: the option's, else the top of the highest grain,
    warned of (every depth measured from it is too shallow by the matrix above that grain)."""
    if opt.z_top_mm is not None:
        return opt.z_top_mm * MM
    radius = np.cbrt(3.0 * vol / (4.0 * math.pi))
    tops = (pos[:, 2] - radius) if opt.z_down else (pos[:, 2] + radius)
    g = int(np.argmin(tops) if opt.z_down else np.argmax(tops))
    warnings.warn(
        f"{source}: no sample top given (z_top, --z-top-um): the top of the highest grain, "
        f"grain {int(labels[g])} (line {int(lines[g])}), at CT z {tops[g] / UM:.6g} µm, was "
        "taken as the sample surface, so every grain lies deeper than read by the matrix "
        "above that grain, and its fitted moment comes out too small; expected "
        "--z-top-um with the CT z of the polished surface the scans' heights are measured "
        "from", GeometryWarning, stacklevel=3)
    return float(tops[g])


def scan_window(maps: Sequence[Gridded]) -> tuple[float, float, float, float]:
    """The (x0, x1, y0, y1) rectangle in m spanning the sensor centres of every map: the crop
    window of a joint inversion, whose grains under any of its scans are fitted."""
    return (min(float(m.x.min()) for m in maps), max(float(m.x.max()) for m in maps),
            min(float(m.y.min()) for m in maps), max(float(m.y.max()) for m in maps))


def scan_crop(maps: Sequence[MapData], sigmas: Sequence[float | None] | None = None,
              heights: Sequence[float | None] | None = None,
              sizes: Sequence[Sequence[float] | None] | None = None) -> dict[str, object]:
    """The crop options (`crop`, `crop_height`, `crop_noise`) of grains under `maps`, the
    scans of one inversion: the least noise SD, each scan's `sigmas` entry (T) where given,
    else its map's white-noise floor (`noise.white_noise_floor`, which reads high over a dense
    sample: so a given σ is the better); the window and height the sensors could reach.

    A sensor reads Bz averaged over its active area, or volume, and an average can exceed
    the field at its centre (beyond a grain's peak the field is convex: for a 30 µm area 10 µm
    above the top, by 5 to 10 % at the reach of a 1 µm³ grain). So the window spans every
    scan's sensors whole (its sensor centres, each side grown by half the sensor's `sizes`
    entry, (w, l) or (w, l, thickness) in m, else its map's `sensor_size`) and the height is
    the lowest any sensor reaches (the lowest face of a volume sensor; `heights`, m, where
    the inversion overrides the maps'): the largest field there bounds every sensor's reading.
    Where no noise is known (maps too small for the floor, or noiseless), `crop_noise` 0, the
    sensor-centre window and the highest height: the depth-plus-height reach."""
    given = list(sigmas) if sigmas is not None else [None] * len(maps)
    noises = [s if s is not None else _floor(m) for m, s in zip(maps, given, strict=True)]
    known = [float(v) for v in noises if math.isfinite(v) and v > 0]
    at = list(heights) if heights is not None else [m.height for m in maps]
    if not known:
        return {"crop": scan_window(maps),
                "crop_height": max((float(h) for h in at if h is not None), default=0.0),
                "crop_noise": 0.0}
    shapes = list(sizes) if sizes is not None else [m.sensor_size for m in maps]
    half = [_half_extent(size) for size in shapes]
    window = (min(float(m.x.min()) - p for m, (p, _, _) in zip(maps, half, strict=True)),
              max(float(m.x.max()) + p for m, (p, _, _) in zip(maps, half, strict=True)),
              min(float(m.y.min()) - q for m, (_, q, _) in zip(maps, half, strict=True)),
              max(float(m.y.max()) + q for m, (_, q, _) in zip(maps, half, strict=True)))
    lowest = min((float(h) - t for h, (_, _, t) in zip(at, half, strict=True) if h is not None),
                 default=0.0)
    return {"crop": window, "crop_height": max(lowest, 0.0), "crop_noise": min(known)}


def with_magnetization(crop: dict[str, object], magnetization: float | None
                       ) -> dict[str, object]:
    """`crop` (as `scan_crop` gives it) with the saturation magnetization chosen (A/m, as
    `--crop-magnetization-kA-per-m` gives it; None: none chosen, magnetite's). InputError
    where no noise is known (`crop_noise` 0): the crop then goes by distance alone, so a
    magnetization chosen would be recorded and do nothing."""
    if magnetization is None:
        return crop
    if not crop["crop_noise"]:
        raise InputError(
            f"--crop-magnetization-kA-per-m is {magnetization / 1e3:g} and no noise is known "
            "for the scans (no --sigma-nT, and no map shows a noise floor: too small or "
            "noiseless), so --crop-to-scan keeps the grains within their depth plus the "
            "sensor's height of the scan window, whatever their magnetization; expected "
            "--sigma-nT, for the crop to keep the grains whose field at that magnetization "
            "could reach a tenth of it, or no --crop-magnetization-kA-per-m")
    return {**crop, "crop_magnetization": magnetization}


def _half_extent(size: Sequence[float] | None) -> tuple[float, float, float]:
    """Half the sensor's (w, l, thickness) in m from (w, l) or (w, l, thickness); a point's
    (or an unknown size's) 0."""
    dims = [float(v) for v in (size or ())] + [0.0] * 3
    return dims[0] / 2, dims[1] / 2, dims[2] / 2


def _floor(m: MapData) -> float:
    """The map's white-noise floor (T), NaN where it shows none: too small a map, or a floor
    under NOISELESS of its largest |Bz| (a model's field, its differences rounding alone)."""
    floor = white_noise_floor(np.asarray(m.bz))
    finite = np.abs(m.bz[np.isfinite(m.bz)])
    if not finite.size or not floor > NOISELESS * float(finite.max()):
        return math.nan
    return floor


def largest_field(pos: np.ndarray, vol: np.ndarray, window: tuple[float, float, float, float],
                  height: float, magnetization: float = CROP_MAGNETIZATION) -> np.ndarray:
    """The largest |Bz| (T) each grain (centroid `pos`, z up with the top at 0; volume `vol`)
    can put on a sensor centre in the (x0, x1, y0, y1) window at `height`, as a dipole of
    moment `magnetization` × volume in the worst direction: at lateral offset d and vertical
    distance z (r² = d² + z²), Bz = μ0/(4π r³) m·(3 ẑ·r̂ r̂ − ẑ), whose largest over the
    moment's direction is μ0 |m| √(1 + 3 z²/r²) / (4π r³), falling with d: so at the window
    point nearest the grain. A uniformly magnetized sphere's field outside it is this dipole's
    exactly; a grain of another shape nearer than its size is kept by a wide margin anyway."""
    x0, x1, y0, y1 = window
    dx = np.maximum(np.maximum(x0 - pos[:, 0], pos[:, 0] - x1), 0.0)
    dy = np.maximum(np.maximum(y0 - pos[:, 1], pos[:, 1] - y1), 0.0)
    z = height - pos[:, 2]
    r2 = dx**2 + dy**2 + z**2
    return MU0_4PI * magnetization * vol * np.sqrt(1.0 + 3.0 * z**2 / r2) / r2**1.5


def _kept(pos: np.ndarray, vol: np.ndarray, opt: DragonflyOptions) -> np.ndarray:
    """Which grains a crop keeps (`DragonflyOptions`): those whose largest field on the window
    reaches CROP_FRACTION of the noise; with no noise recorded, those whose centroid lies in
    the window or outside it by no more than its distance below the sensor."""
    assert opt.crop is not None
    if opt.crop_noise > 0:
        return (largest_field(pos, vol, opt.crop, opt.crop_height, opt.crop_magnetization)
                >= CROP_FRACTION * opt.crop_noise)
    x0, x1, y0, y1 = opt.crop
    dx = np.maximum(np.maximum(x0 - pos[:, 0], pos[:, 0] - x1), 0.0)
    dy = np.maximum(np.maximum(y0 - pos[:, 1], pos[:, 1] - y1), 0.0)
    return np.hypot(dx, dy) <= np.maximum(-pos[:, 2], 0.0) + opt.crop_height


def _none_kept(opt: DragonflyOptions, source: str) -> InputError:
    """Why a crop kept no grain, naming its window, height and noise."""
    assert opt.crop is not None
    x0, x1, y0, y1 = opt.crop
    near = (f"puts {CROP_FRACTION:g} of the noise ({opt.crop_noise / 1e-9:.4g} nT) on "
            f"it, magnetized to {opt.crop_magnetization / 1e3:g} kA/m, with the sensor "
            f"{opt.crop_height / UM:.6g} µm above the top" if opt.crop_noise > 0 else
            "lies under the scan window "
            f"x {x0 / UM:.6g}..{x1 / UM:.6g} µm, y {y0 / UM:.6g}..{y1 / UM:.6g} µm, "
            f"nor within its distance below the sensor ({opt.crop_height / UM:.6g} µm "
            "above the top) of it")
    if opt.crop_noise > 0:
        near = ("could put a field on the scan window "
                f"x {x0 / UM:.6g}..{x1 / UM:.6g} µm, y {y0 / UM:.6g}..{y1 / UM:.6g} "
                f"µm that " + near)
    return InputError(f"no grain {near}; expected grains under the scans, in their frame (a "
                      "grain file of the area scanned, its positions in its format's unit, "
                      "--grains-shift-um and --grains-rotation-deg bringing them there)",
                      source=source)


def _left_out(why: str, labels: np.ndarray) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """`PointGrains.left_out`'s entry for the grains `labels` left out for `why`, or none."""
    return ((why, tuple(int(v) for v in labels)),) if labels.size else ()


def crop_points(grains: PointGrains, crop: tuple[float, float, float, float],
                crop_height: float, crop_noise: float,
                crop_magnetization: float = CROP_MAGNETIZATION) -> PointGrains:
    """The point grains (a point list's, the multipole library's NPZ's) that the crop of a
    Dragonfly export (`DragonflyOptions`: `crop`, `crop_height`, `crop_noise`, as `scan_crop`
    gives them, and `crop_magnetization`) keeps, by the same rule; InputError when it keeps
    none."""
    opt = DragonflyOptions(crop=crop, crop_height=crop_height, crop_noise=crop_noise,
                           crop_magnetization=crop_magnetization)
    _check_options(opt)
    inside = _kept(grains.positions, grains.volume, opt)
    if not inside.any():
        raise _none_kept(opt, grains.source or "grain list")
    lines = grains.lines[inside] if grains.lines.size else grains.lines
    return PointGrains(grains.positions[inside], grains.volume[inside], grains.labels[inside],
                       grains.source, lines,
                       grains.left_out + _left_out("crop", grains.labels[~inside]))


def _refuse_above_top(z: np.ndarray, labels: np.ndarray, lines: np.ndarray,
                      opt: DragonflyOptions, source: str) -> None:
    """A centroid above the given sample top means a wrong z_top or z axis, so every depth
    would be wrong (the default top lies above every grain)."""
    above = np.flatnonzero(z > 0)
    if opt.z_top_mm is None or not above.size:
        return
    g = above[0]
    axis = ("taken as pointing down into the sample (z_down, --z-down, is set)" if opt.z_down
            else "taken as pointing up (set z_down, --z-down, if it points down into the sample)")
    height_um = float(z[g]) / UM  # a Python float: an absurd height reads inf, unwarned
    raise InputError(f"grain {labels[g]}: its centroid lies {height_um:.6g} µm above the sample "
                     f"top given (z_top {opt.z_top_mm * MM / UM:.6g} µm); expected every "
                     f"centroid at or below it: check z_top (--z-top-um) and the CT z axis, "
                     f"{axis}", source=f"{source}, line {lines[g]}")


def _check_options(opt: DragonflyOptions) -> None:
    if opt.z_top_mm is not None and not abs(opt.z_top_mm * MM) <= POSITION_LIMIT_M:
        raise InputError(f"z_top (--z-top-um) is {opt.z_top_mm * MM / UM:g} µm; expected a "
                         f"finite z of the sample top, within ±{POSITION_LIMIT_M:g} m")
    if not 0 <= opt.crop_noise <= MAX_FIELD_T:
        raise InputError(f"crop_noise is {opt.crop_noise!r} T; expected the scans' noise SD, "
                         f"0 to {MAX_FIELD_T:g} T (0: the depth-plus-height reach)")
    if not 0 < opt.crop_magnetization <= MAX_CROP_MAGNETIZATION:
        raise InputError(f"the crop's saturation magnetization (--crop-magnetization-kA-per-m) "
                         f"is {opt.crop_magnetization / 1e3:g} kA/m; expected the most a grain "
                         "could be magnetized, above 0 and at most "
                         f"{MAX_CROP_MAGNETIZATION / 1e3:g} kA/m (magnetite "
                         f"{CROP_MAGNETIZATION / 1e3:g}, iron 1710)")
    if not 0 <= opt.crop_height <= POSITION_LIMIT_M:
        raise InputError(f"crop_height is {opt.crop_height / UM:g} µm; expected the sensor's "
                         f"height above the sample top, 0 to {POSITION_LIMIT_M:g} m")


def read_dragonfly(path: str | Path, options: DragonflyOptions | None = None) -> PointGrains:
    """The grains of an export, shifted and filtered by `options`; InputError naming the file,
    line and column on bad input."""
    opt = options or DragonflyOptions()
    _check_options(opt)
    path = Path(path)
    source = str(path)
    require_file(path, "grain", "a grain file (a Dragonfly export, CSV)")
    text = decode_text(path.read_bytes())
    if "\0" in text:  # UTF-16 or UTF-32 without its byte-order mark; or no text at all
        raise InputError("is not a text file (it holds NUL characters); expected a Dragonfly "
                         "connected-components CSV, as UTF-8, latin-1 or UTF-16 with its "
                         "byte-order mark", source=source)
    lines = text_lines(text)
    header_no, sep, columns = _columns(lines, source)
    cells, line_numbers = [], []
    width = _width(lines[header_no], sep)
    for i in range(header_no + 1, len(lines)):
        if any(text for text, _ in _split(lines[i], sep)):  # a spreadsheet's ";;;;" is blank
            _refuse_extra_cells(lines[i], sep, width, i + 1, source)
            cells.append(_cells(lines[i], sep, columns, i + 1))
            line_numbers.append(i + 1)
    if not cells:
        raise InputError("holds no components; expected a line per component below the "
                         "header", source=source)
    comma = _decimal_comma(cells, sep, source)  # in a ','-separated file, only in quoted cells
    arr = np.array([_row(row, comma, source) for row in cells])
    keep = arr[:, 1] >= opt.min_voxels
    left_out = _left_out("min_voxels", arr[~keep, 0])
    arr, lines_kept = arr[keep], np.array(line_numbers)[keep]
    if arr.shape[0] == 0:
        raise InputError(f"holds no component of at least {opt.min_voxels} voxels (min_voxels, "
                         "--min-voxels); expected a smaller minimum", source=source)
    vol = arr[:, 2] * columns[2].scale
    pos = arr[:, 3:6] * np.array([c.scale for c in columns[3:6]])
    top = _z_top(opt, pos, vol, arr[:, 0], lines_kept, source)
    pos[:, 2] = (top - pos[:, 2]) if opt.z_down else (pos[:, 2] - top)
    if opt.crop is not None:
        inside = _kept(pos, vol, opt)
        if not inside.any():
            raise _none_kept(opt, source)
        left_out += _left_out("crop", arr[~inside, 0])
        pos, vol, arr, lines_kept = pos[inside], vol[inside], arr[inside], lines_kept[inside]
    labels = arr[:, 0].astype(np.int64)
    _refuse_above_top(pos[:, 2], labels, lines_kept, opt, source)
    return point_grains(pos, vol, labels, source=source, lines=lines_kept, left_out=left_out)
