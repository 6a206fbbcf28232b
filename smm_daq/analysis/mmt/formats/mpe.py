"""Files of the multipole library (`mmt_multipole_inversion`): a JSON of the scan geometry and
an NPZ of arrays, as its `MagneticSample.save_data` writes them.

JSON (SI units): "Scan height Hz" (the height of the sensors' centres above the sample top),
"Scan area x-dimension Sx", "Scan area y-dimension Sy", "Scan x-step Sdx", "Scan y-step
Sdy", optional "Sensor origin x"/"Sensor origin y" (the lower-left sensor centre, default 0;
"Scan origin x"/"Scan origin y" in the library's release 1.0, the one on PyPI) and "Sensor
dimensions" (HALF-lengths: [] or absent a point sensor, [hx, hy] an area, [hx, hy, hz] a
volume: the library averages Bz over the box Hz ± hz, x ± hx, y ± hy, so the full sizes
returned are twice these); other keys ("Number of particles", "Time stamp", ...) are not
needed. The sensor
grid is x = origin + Sdx · arange(round(Sx / Sdx)), likewise y, as the library builds it.

NPZ: "particle_positions" (N, 3) in m, z up with the sample top at 0; "volumes" (N,) in m³;
optional "Bz_array" (ny, nx) in T with row j at y_j; optional "identifier" (N,) grain labels.

Results in the library's convention (`write_library_results`): "inv_multipole_moments"
(N, k) with the dipole as the moment in A m², quadrupole and octupole coefficients as they are
(the same basis), their SDs (N, k) under "moments_std", the name the library's
`save_multipole_moments` writes them under, and under "inv_moments_std", its attribute's
name (`MultipoleInversion.inv_moments_std`), "identifier" (N,) the grain labels, as it writes
them with `save_identifier`; and, beyond what the library writes, "covariance" (N, k, k),
each grain's block of its `covariance_matrix`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.formats.community import MAX_M, MAX_SIDE, MAX_T, MIN_M
from smm_daq.analysis.mmt.models.multipole import (
    MAX_LABEL,
    PointGrains,
    point_grains,
    to_library,
)
from smm_daq.errors import InputError
from smm_daq.finite import finite_number
from smm_daq.npy_headers import ARCHIVE_ERRORS, check_npz, load_error_said
from smm_daq.storage.limits import check_map_pixels
from smm_daq.storage.mapdata import MapData
from smm_daq.text_files import load_json, require_file, shown
from smm_daq.whole_files import written_whole

ZIP_SIGNATURE = b"PK"  # how an NPZ (a zip archive) begins
REQUIRED = ("Scan height Hz", "Scan area x-dimension Sx", "Scan area y-dimension Sy",
            "Scan x-step Sdx", "Scan y-step Sdy")


@dataclass(frozen=True)
class ScanGeometry:
    height: float
    x: np.ndarray
    y: np.ndarray
    sensor_size: tuple[float, ...]  # full dimensions (w, l) or (w, l, thickness), m


def _number(params: dict, key: str, source: str, *, positive: bool) -> float:
    """A length (positive: MIN_M .. MAX_M) or a position (within ±MAX_M), in m."""
    value = params[key]
    if not finite_number(value) \
            or not (MIN_M <= value <= MAX_M if positive else abs(value) <= MAX_M):
        raise InputError(f"key '{key}' is {shown(value)}; expected a number in m, "
                         + (f"{MIN_M:g} .. {MAX_M:g}" if positive else f"within ±{MAX_M:g}"),
                         source=source)
    return float(value)


def _refuse_negative_height(value: object, source: str) -> None:
    """A negative "Scan height Hz" refused, saying why it is not read as the cuboid library's
    negative "Scan height" is: the multipole library's frame is right-handed, z up, the sample
    top at z = 0 (it only warns of a negative Hz), so there the sensors lie below the top."""
    if finite_number(value) and value < 0:
        raise InputError(f"key 'Scan height Hz' is {shown(value)}; expected the height of the "
                         f"sensors' centres above the sample top, {MIN_M:g} .. {MAX_M:g} m: "
                         "the multipole library's z points up from the sample top at z = 0, "
                         "so a negative Hz puts the sensors inside the sample (it has no "
                         "z-down frame, unlike the cuboid library's negative 'Scan height')",
                         source=source)


def _origin(params: dict, axis: str, source: str) -> float:
    """The lower-left sensor centre along `axis`: "Sensor origin x", or "Scan origin x" as the
    library's release 1.0 (on PyPI) names it; 0 when neither is given."""
    given = {k: _number(params, k, source, positive=False)
             for k in (f"Sensor origin {axis}", f"Scan origin {axis}") if k in params}
    values = set(given.values())
    if len(values) > 1:
        a, b = given.items()
        raise InputError(f"key '{a[0]}' is {shown(a[1])} and '{b[0]}' {shown(b[1])}; expected "
                         "one origin of the grid (the library's releases name it either way)",
                         source=source)
    return values.pop() if values else 0.0


def read_geometry(path: str | Path) -> ScanGeometry:
    """The scan geometry of a library JSON; InputError naming the file and key (or line and
    column of a JSON syntax error)."""
    source = str(path)
    require_file(Path(path), "parameter", "the library's JSON of scan parameters")
    raw = Path(path).read_bytes()
    if raw.startswith(ZIP_SIGNATURE):
        raise InputError("is an NPZ (zip) archive, not the library's JSON of scan parameters; "
                         "expected the JSON metadata first, then the NPZ of arrays (the two "
                         "given the other way round?)", source=source)
    try:
        params = load_json(raw.decode("utf-8-sig"), unique_keys=True)
    except json.JSONDecodeError as exc:
        raise InputError(f"is not JSON: {exc.msg}; expected the library's JSON of scan "
                         "parameters", source=f"{source}, line {exc.lineno}, column {exc.colno}"
                         ) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text ({exc.reason}); expected the library's JSON of "
                         "scan parameters", source=source) from None
    if not isinstance(params, dict):
        raise InputError("expected a JSON object of scan parameters", source=source)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise InputError(f"lacks key(s) {', '.join(map(repr, missing))}; expected "
                         f"{', '.join(map(repr, REQUIRED))} (m)", source=source)
    _refuse_negative_height(params["Scan height Hz"], source)
    hz, sx, sy, sdx, sdy = (_number(params, k, source, positive=True) for k in REQUIRED)
    ox, oy = (_origin(params, axis, source) for axis in "xy")
    dims = params.get("Sensor dimensions", [])
    if (not isinstance(dims, list) or len(dims) not in (0, 2, 3)
            or not all(finite_number(v) and MIN_M <= v <= MAX_M for v in dims)):
        raise InputError(f"key 'Sensor dimensions' is {shown(dims)}; expected [] (a point), "
                         f"[hx, hy] or [hx, hy, hz]: half-lengths {MIN_M:g} .. {MAX_M:g} m",
                         source=source)
    if len(dims) == 3 and dims[2] > hz:  # a volume sensor's lowest face below the sample top
        raise InputError(f"key 'Sensor dimensions' gives a half-thickness hz of {dims[2]!r} m, "
                         f"more than 'Scan height Hz', {hz!r} m, the height of the sensor's "
                         f"centre: its lowest face would lie {dims[2] - hz:.3g} m inside the "
                         "sample; expected hz at most Hz (half-lengths, not full ones)",
                         source=source)
    for side, step, key in ((sx, sdx, "Scan x-step Sdx"), (sy, sdy, "Scan y-step Sdy")):
        if not 1 <= round(side / step) <= MAX_SIDE:  # the library's count of sensors a side
            raise InputError(f"key '{key}' is {step} m for a scan area side of {side} m; "
                             f"expected 1 to {MAX_SIDE:,} steps a side", source=source)
    nx, ny = round(sx / sdx), round(sy / sdy)
    check_map_pixels(ny, nx, "the scan its area and steps give", source)
    size = tuple(2.0 * float(v) for v in dims) if dims else (0.0, 0.0)
    return ScanGeometry(hz, ox + sdx * np.arange(nx), oy + sdy * np.arange(ny), size)


def _arrays(npz: np.lib.npyio.NpzFile, source: str) -> dict[str, np.ndarray]:
    out = {}
    for key in npz.files:
        try:
            value = npz[key]
        except ARCHIVE_ERRORS as exc:
            reason = ("it holds Python objects" if "allow_pickle" in str(exc)
                      else load_error_said(exc))
            raise InputError(f"array '{key}' cannot be read ({reason}); expected numeric arrays",
                             source=source) from None
        if not isinstance(value, np.ndarray):
            raise InputError(f"member '{key}' is not a numpy array; expected numeric arrays",
                             source=source)
        out[key] = value
    return out


def _load(path: str | Path, expected: str) -> dict[str, np.ndarray]:
    """The arrays of an NPZ; InputError saying `expected` when the file is not one (checked
    by its zip signature first, so that numpy never answers with its pickle advice)."""
    source = str(path)
    require_file(Path(path), "NPZ", expected)
    try:
        with open(path, "rb") as f:
            signature = f.read(2)
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror}); expected {expected}",
                         source=source) from None
    if signature != ZIP_SIGNATURE:
        raise InputError(f"is not an NPZ archive (expected {expected})", source=source)
    check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return _arrays(npz, source)
    except ARCHIVE_ERRORS as exc:
        raise InputError(f"is not a readable NPZ archive ({load_error_said(exc)}); expected "
                         f"{expected}",
                         source=source) from None


def read_scan(params: str | Path, arrays: str | Path, *, name: str = "mpe_scan"
              ) -> tuple[MapData, ScanGeometry]:
    """The NPZ's Bz_array on the JSON's grid (MapData with the area sensor's size; a volume
    sensor's thickness is in the returned geometry)."""
    geo = read_geometry(params)
    data = _load(arrays, "the multipole library's sample file: Bz_array")
    source = str(arrays)
    if "Bz_array" not in data:
        raise InputError("lacks array 'Bz_array'; expected Bz (ny, nx) in T", source=source)
    raw = data["Bz_array"]
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise InputError(f"array 'Bz_array' holds {raw.dtype}; expected real numbers, Bz in T",
                         source=source)
    with np.errstate(over="ignore"):  # a long double beyond any float: inf, refused below
        bz = np.asarray(raw, dtype=float)
    if bz.shape != (geo.y.size, geo.x.size):
        raise InputError(f"array 'Bz_array' has shape {bz.shape}; expected the grid {params} "
                         f"describes, {geo.y.size} × {geo.x.size} (ny, nx)", source=source)
    big = np.abs(bz) > MAX_T  # NaN (a masked pixel) passes
    if big.any():
        j, i = np.argwhere(big)[0]
        raise InputError(f"array 'Bz_array' holds {bz[j, i].item()!r} at row {j}, column {i}; "
                         f"expected Bz in T, below {MAX_T:g} T in size (NaN: a masked pixel)",
                         source=source)
    return MapData(bz=bz, x=geo.x, y=geo.y, height=geo.height,
                   sensor_size=(geo.sensor_size[0], geo.sensor_size[1]), name=name,
                   title=f"multipole-library scan {Path(arrays).name}",
                   sources=(Path(arrays).name,)), geo


def _labels(data: dict[str, np.ndarray], n: int, source: str) -> np.ndarray | None:
    """The grain labels of `identifier`, None without one (labels 1..N); InputError unless it
    holds n distinct whole numbers (a label that repeats, or labels that are not numbers,
    would pair results with the wrong grains)."""
    ident = data.get("identifier")
    if ident is None:
        return None
    numeric = np.issubdtype(ident.dtype, np.integer) or np.issubdtype(ident.dtype, np.floating)
    flat = ident.reshape(-1)
    # floats compared as float64 (MAX_LABEL overflows a float16), whole numbers without abs
    # (the most negative int64 is its own abs)
    values = flat.astype(np.float64) if np.issubdtype(flat.dtype, np.floating) else flat
    if not (numeric and ident.shape == (n,) and np.all(
            np.isfinite(values) & (values == np.round(values)) & (values >= -MAX_LABEL)
            & (values <= MAX_LABEL))):
        raise InputError(f"array 'identifier' holds {ident.size} values of type {ident.dtype} "
                         f"in shape {ident.shape};"
                         f" expected {n} whole numbers, one label per particle (at most "
                         f"{MAX_LABEL:g} in size)", source=source)
    first_row: dict[float, int] = {}
    for row, value in enumerate(flat.tolist()):
        if value in first_row:
            raise InputError(f"array 'identifier' holds {int(value)} more than once (rows "
                             f"{first_row[value]} and {row}); expected one label per particle",
                             source=source)
        first_row[value] = row
    return flat.astype(np.int64)


def _numbers(values: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in values.tolist())


def read_particles(arrays: str | Path) -> PointGrains:
    """Point grains from the NPZ's particle_positions and volumes (labels from `identifier`
    when there is one, else 1..N)."""
    data = _load(arrays, "the multipole library's particle file: particle_positions, volumes")
    source = str(arrays)
    for key, want in (("particle_positions", "(N, 3) in m"), ("volumes", "(N,) in m³")):
        if key not in data:
            raise InputError(f"lacks array '{key}'; expected {want}", source=source)
        if not (np.issubdtype(data[key].dtype, np.integer)
                or np.issubdtype(data[key].dtype, np.floating)):
            raise InputError(f"array '{key}' holds {data[key].dtype}; expected real numbers "
                             f"{want}", source=source)
    with np.errstate(over="ignore"):  # a long double beyond any float: inf, refused below
        pos = np.asarray(data["particle_positions"], dtype=float)
        vol = np.asarray(data["volumes"], dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise InputError(f"array 'particle_positions' has shape {pos.shape}; expected (N, 3), "
                         "N > 0", source=source)
    if vol.shape != (pos.shape[0],):
        raise InputError(f"array 'volumes' has shape {vol.shape} for {pos.shape[0]} particles; "
                         f"expected ({pos.shape[0]},), one volume per particle", source=source)
    labels = _labels(data, pos.shape[0], source)
    for row in range(pos.shape[0]):
        if not np.all(np.isfinite(pos[row])) or not (vol[row] > 0 and math.isfinite(vol[row])):
            raise InputError(f"particle {row} (row {row} of 'particle_positions'/'volumes') has "
                             f"position ({_numbers(pos[row])}) and volume {vol[row]:g}; "
                             "expected finite numbers and a volume > 0", source=source)
    return point_grains(pos, vol, labels, source=source)


def write_library_results(path: str | Path, coefficients: np.ndarray, covariance: np.ndarray,
                          grains: PointGrains) -> None:
    """Results as the library's `save_multipole_moments` writes them (see the docstring), to
    `path` as named: the name the caller checked (not replaced unless asked, not an input),
    with no ".npz" added as `np.savez` adds it. Written whole or not at all: an export cut
    short leaves no partial archive and the file it was to replace as it was."""
    vol = grains.volumes()
    k = coefficients.shape[1]
    scale = np.ones((vol.size, k))
    scale[:, :3] = vol[:, None]
    cov = covariance * scale[:, :, None] * scale[:, None, :]
    std = np.sqrt(np.einsum("gii->gi", cov))
    with written_whole(path) as part, open(part, "wb") as out:
        np.savez(out, inv_multipole_moments=to_library(coefficients, vol), inv_moments_std=std,
                 moments_std=std, covariance=cov, identifier=np.asarray(grains.labels))
