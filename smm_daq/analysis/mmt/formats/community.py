"""Scans in the MMT community's format: a matrix of Bz (T, whitespace- or comma-separated; row
j is y_j, row 0 the lowest y) and a JSON file of scan parameters in m, as
`mmt_dipole_cuboid_inversion` uses: "Sensor center domain LL-x-y", "Sensor center domain
UR-x-y", "Scan spacing", "Scan delta-x"/"Scan delta-y" (sensor HALF-widths, both or neither),
"Scan area" (optional: the sensor's area, 2 Δx × 2 Δy, checked against them) and "Scan height"
(negative in the library's z-down frame: the same height)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.limits import check_map_pixels
from smm_daq.storage.mapdata import MapData
from smm_daq.text_files import (
    empty_field_column,
    load_json,
    require_file,
    shown,
    text_lines,
)

MAX_M = 1e3  # positions: far beyond any scan, and their squares stay finite
MIN_M = 1e-9  # spacing, height and sensor half-widths: a nanometre at least
MAX_SIDE = 100_000  # points along one side of a map
MAP_FORM = "a matrix of Bz in T, whitespace- or comma-separated"  # as the reader takes it
MAX_T = 100.0  # no magnetometer map holds a field this strong
_KEYS = ("Sensor center domain LL-x-y", "Sensor center domain UR-x-y", "Scan spacing",
         "Scan height")


def _number(params: dict, key: str, source: str, lo: float, hi: float, *,
            zero: bool = False) -> float:
    """A length in m within [lo, hi] (or exactly 0 when `zero`)."""
    value = params.get(key)
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not (lo <= value <= hi or (zero and value == 0))):
        allowed = f"0 or a number in [{lo:g}, {hi:g}]" if zero else f"a number in [{lo:g}, {hi:g}]"
        raise InputError(f"key '{key}' is {shown(value)}; expected {allowed} m", source=source)
    return float(value)


def _pair(params: dict, key: str, source: str) -> tuple[float, float]:
    value = params.get(key)
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool)
                       and abs(v) <= MAX_M for v in value)):
        raise InputError(f"key '{key}' is {shown(value)}; expected [x, y] in m within ±{MAX_M:g}",
                         source=source)
    return float(value[0]), float(value[1])


def _scan_height(params: dict, source: str) -> float:
    """The sensor's height above the sample top in m. A negative "Scan height" is the cuboid
    library's left-handed frame, z pointing down into the sample (its cuboid file's z as
    depth, as the `mmt` grain format reads it): the same height, given as the sensor's z."""
    value = params.get("Scan height")
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not MIN_M <= abs(value) <= 1.0):
        raise InputError(f"key 'Scan height' is {shown(value)}; expected a number in "
                         f"[{MIN_M:g}, 1] m, the sensor above the sample top (negative in the "
                         "cuboid library's z-down frame)", source=source)
    return abs(float(value))


def _half_widths(params: dict, source: str) -> tuple[float, float]:
    """The sensor's half-widths along x and y in m: both > 0 (an area sensor) or both absent
    or 0 (a point). One alone would make a sensor of no width along the other axis, a line
    that no magnetometer is, which the cuboid model would average the field along."""
    keys = ("Scan delta-x", "Scan delta-y")
    hx, hy = (_number(params, k, source, MIN_M, 1.0, zero=True) if k in params else 0.0
              for k in keys)
    if (hx > 0) != (hy > 0):
        said = " and ".join(f"'{k}' is {shown(params[k])}" if k in params else f"'{k}' is absent"
                            for k in keys)
        raise InputError(f"key {said}; expected both sensor half-widths > 0 (an area sensor) "
                         "or neither (a point sensor)", source=source)
    return hx, hy


AREA_RTOL = 1e-3  # "Scan area" against 2 Δx × 2 Δy: an area written to 4 digits agrees
# the cuboid library's own check, |4 Δx Δy − area| > (1e-7 m)², only warns: a µm sensor's area
# written to 3 digits (0.5 % off) passes it, and a file the library reads silently is read here
LIBRARY_AREA_ATOL = 1e-14  # m²


def _check_scan_area(params: dict, half: tuple[float, float], source: str) -> None:
    """"Scan area", where given, must be the area the half-widths make, (2 Δx)(2 Δy) in m²,
    0 for a point sensor: a file whose keys disagree describes two sensors, and either the
    area or the widths could be the one meant (the library scales the field by the area
    given, the model here averages over the widths)."""
    if "Scan area" not in params:
        return
    value = params["Scan area"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1.0:
        raise InputError(f"key 'Scan area' is {shown(value)}; expected the sensor's area in m², "
                         "0 to 1 ((2 × 'Scan delta-x') × (2 × 'Scan delta-y'), 0 for a "
                         "point sensor)", source=source)
    made = 4 * half[0] * half[1]
    if abs(value - made) <= (max(AREA_RTOL * made, LIBRARY_AREA_ATOL) if made else 0.0):
        return
    if made == 0:
        raise InputError(f"key 'Scan area' is {shown(value)} m², and 'Scan delta-x' and "
                         "'Scan delta-y' are absent or 0: a point sensor; expected 'Scan area' "
                         "0 (or absent) for a point sensor, or the sensor's half-widths",
                         source=source)
    raise InputError(f"key 'Scan area' is {shown(value)} m², and 'Scan delta-x' {half[0]!r} and "
                     f"'Scan delta-y' {half[1]!r} m (half-widths) make a sensor of "
                     f"{made:.6g} m²; expected them to agree, 'Scan area' = (2 × 'Scan "
                     "delta-x') × (2 × 'Scan delta-y')", source=source)


def _map_row(line: str, where: str) -> list[float]:
    """The Bz values of one line of the map; InputError naming the column of a value that is
    no number, beyond MAX_T, or missing between two commas (as pandas writes a NaN: read
    past, every later value would shift one pixel along)."""
    empty = empty_field_column(line)
    if empty is not None:
        raise InputError("holds an empty field between commas; expected Bz in T (NaN for a "
                         "masked pixel)", source=f"{where}, column {empty}")
    row = []
    for cell in re.finditer(r"[^\s,]+", line):
        try:
            value = float(cell.group())
        except ValueError:
            value = math.inf
        if abs(value) > MAX_T:  # NaN (a masked pixel) passes
            raise InputError(f"holds {shown(cell.group())}; expected Bz in T, a number below "
                             f"{MAX_T:g} T in magnitude (NaN for a masked pixel)",
                             source=f"{where}, column {cell.start() + 1}")
        row.append(value)
    return row


def read_mmt_scan(map_path: str | Path, params_path: str | Path, *, name: str = "mmt_scan"
                  ) -> MapData:
    """The scan as MapData (T, m); InputError naming the file and key or line on bad input."""
    psrc = str(params_path)
    require_file(Path(params_path), "parameter", "the scan's JSON parameters")
    try:
        params = load_json(Path(params_path).read_text(encoding="utf-8-sig"), unique_keys=True)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"is not JSON ({exc}); expected the scan's JSON parameters",
                         source=psrc) from None
    if not isinstance(params, dict):
        raise InputError("holds no JSON object; expected an object of scan parameters",
                         source=psrc)
    missing = [k for k in _KEYS if k not in params]
    if missing:
        raise InputError(f"lacks key(s) {', '.join(map(repr, missing))}; expected "
                         + ", ".join(map(repr, _KEYS)), source=psrc)
    (x0, y0), (x1, y1) = _pair(params, _KEYS[0], psrc), _pair(params, _KEYS[1], psrc)
    step = _number(params, "Scan spacing", psrc, MIN_M, 1.0)
    height = _scan_height(params, psrc)
    half = _half_widths(params, psrc)
    _check_scan_area(params, half, psrc)
    if (x1 - x0) / step > MAX_SIDE or (y1 - y0) / step > MAX_SIDE:
        raise InputError(f"the corners ({x0}, {y0}) and ({x1}, {y1}) m are more than "
                         f"{MAX_SIDE:,} 'Scan spacing' ({step} m) apart; expected a map of at "
                         f"most {MAX_SIDE:,} points a side", source=psrc)

    spans = ((x1 - x0) / step, (y1 - y0) / step)
    if any(v < 0 or abs(v - round(v)) > 1e-3 for v in spans):
        raise InputError(
            f"the corners ({x0}, {y0}) and ({x1}, {y1}) m are not a whole number of 'Scan "
            f"spacing' ({step} m) apart; expected the lower-left corner first and a whole "
            "number of steps between them",
            source=psrc,
        )
    check_map_pixels(round(spans[1]) + 1, round(spans[0]) + 1, "the map its corners give", psrc)
    msrc = str(map_path)
    rows: list[list[float]] = []
    require_file(Path(map_path), "map", MAP_FORM)
    try:
        text = Path(map_path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not a text file ({exc.reason} at byte {exc.start}); expected "
                         f"{MAP_FORM}", source=msrc) from None
    for lineno, line in enumerate(text_lines(text), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rows.append(_map_row(line, f"{msrc}, line {lineno}"))
        if rows and len(rows[-1]) != len(rows[0]):
            raise InputError(f"has {len(rows[-1])} values; expected {len(rows[0])} like the first",
                             source=f"{msrc}, line {lineno}")
    bz = np.array(rows, dtype=float)
    if bz.ndim != 2 or bz.size == 0:
        raise InputError(f"holds no map; expected {MAP_FORM}", source=msrc)
    ny, nx = bz.shape
    x = x0 + step * np.arange(nx)
    y = y0 + step * np.arange(ny)
    tol = 1e-3 * step
    if abs(x[-1] - x1) > tol or abs(y[-1] - y1) > tol:
        raise InputError(
            f"the map is {ny} × {nx} but {psrc} puts its corners at ({x0}, {y0}) and "
            f"({x1}, {y1}) m with spacing {step} m; expected "
            f"{round((y1 - y0) / step) + 1} × {round((x1 - x0) / step) + 1} values",
            source=msrc,
        )
    return MapData(bz=bz, x=x, y=y, height=height, sensor_size=(2 * half[0], 2 * half[1]),
                   name=name, title=f"MMT scan {Path(map_path).name}",
                   sources=(Path(map_path).name,))
