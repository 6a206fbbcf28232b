"""Files of the multipole library (`mmt_multipole_inversion`): a JSON of the scan geometry and
an NPZ of arrays, as its `MagneticSample.save_data` writes them.

JSON (SI units): "Scan height Hz" (sensor plane above the sample top), "Scan area
x-dimension Sx", "Scan area y-dimension Sy", "Scan x-step Sdx", "Scan y-step Sdy", optional
"Sensor origin x"/"Sensor origin y" (the lower-left sensor centre, default 0) and "Sensor
dimensions" (HALF-lengths: [] or absent a point sensor, [hx, hy] an area, [hx, hy, hz] a
volume); other keys ("Number of particles", "Time stamp", ...) are not needed. The sensor
grid is x = origin + Sdx · arange(round(Sx / Sdx)), likewise y, as the library builds it.

NPZ: "particle_positions" (N, 3) in m, z up with the sample top at 0; "volumes" (N,) in m³;
optional "Bz_array" (ny, nx) in T with row j at y_j; optional "identifier" (N,) grain labels.

Results in the library's convention (`write_library_results`): "inv_multipole_moments"
(N, k) with the dipole as the moment in A m², quadrupole and octupole coefficients as they are
(the same basis), "moments_std" (N, k), and, beyond what the library writes,
"covariance" (N, k, k) and "identifier".
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.models.multipole import PointGrains, point_grains, to_library
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

REQUIRED = ("Scan height Hz", "Scan area x-dimension Sx", "Scan area y-dimension Sy",
            "Scan x-step Sdx", "Scan y-step Sdy")


@dataclass(frozen=True)
class ScanGeometry:
    height: float
    x: np.ndarray
    y: np.ndarray
    sensor_size: tuple[float, ...]  # full dimensions (w, l) or (w, l, thickness), m


def _number(params: dict, key: str, source: str, *, positive: bool) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise InputError(f"key '{key}' is {value!r}; expected a finite number in m"
                         + (" > 0" if positive else ""), source=source)
    return float(value)


def read_geometry(path: str | Path) -> ScanGeometry:
    """The scan geometry of a library JSON; InputError naming the file and key (or line and
    column of a JSON syntax error)."""
    source = str(path)
    try:
        params = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such parameter file", source=source) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"is not JSON: {exc.msg}",
                         source=f"{source}, line {exc.lineno}, column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text ({exc.reason})", source=source) from None
    if not isinstance(params, dict):
        raise InputError("expected a JSON object of scan parameters", source=source)
    missing = [k for k in REQUIRED if k not in params]
    if missing:
        raise InputError(f"lacks key(s) {', '.join(map(repr, missing))}", source=source)
    hz, sx, sy, sdx, sdy = (_number(params, k, source, positive=True) for k in REQUIRED)
    ox, oy = (_number(params, k, source, positive=False) if k in params else 0.0
              for k in ("Sensor origin x", "Sensor origin y"))
    dims = params.get("Sensor dimensions", [])
    if (not isinstance(dims, list) or len(dims) not in (0, 2, 3)
            or not all(isinstance(v, int | float) and not isinstance(v, bool)
                       and math.isfinite(v) and v > 0 for v in dims)):
        raise InputError(f"key 'Sensor dimensions' is {dims!r}; expected [] (a point), "
                         "[hx, hy] or [hx, hy, hz]: half-lengths > 0 in m", source=source)
    nx, ny = round(sx / sdx), round(sy / sdy)
    if nx < 1 or ny < 1:
        raise InputError(f"the scan area {sx} × {sy} m holds no step of {sdx} × {sdy} m",
                         source=source)
    size = tuple(2.0 * float(v) for v in dims) if dims else (0.0, 0.0)
    return ScanGeometry(hz, ox + sdx * np.arange(nx), oy + sdy * np.arange(ny), size)


def _load(path: str | Path) -> dict[str, np.ndarray]:
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise InputError("no such NPZ file", source=source) from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"is not a numpy NPZ file ({exc})", source=source) from None


def read_scan(params: str | Path, arrays: str | Path, *, name: str = "mpe_scan"
              ) -> tuple[MapData, ScanGeometry]:
    """The NPZ's Bz_array on the JSON's grid (MapData with the area sensor's size; a volume
    sensor's thickness is in the returned geometry)."""
    geo = read_geometry(params)
    data = _load(arrays)
    source = str(arrays)
    if "Bz_array" not in data:
        raise InputError("lacks array 'Bz_array'; expected Bz (ny, nx) in T", source=source)
    bz = np.asarray(data["Bz_array"], dtype=float)
    if bz.shape != (geo.y.size, geo.x.size):
        raise InputError(f"array 'Bz_array' has shape {bz.shape}; {params} describes a grid of "
                         f"{geo.y.size} × {geo.x.size} (ny, nx)", source=source)
    return MapData(bz=bz, x=geo.x, y=geo.y, height=geo.height,
                   sensor_size=(geo.sensor_size[0], geo.sensor_size[1]), name=name,
                   title=f"multipole-library scan {Path(arrays).name}",
                   sources=(Path(arrays).name,)), geo


def read_particles(arrays: str | Path) -> PointGrains:
    """Point grains from the NPZ's particle_positions and volumes (labels from `identifier`
    when it holds unique whole numbers, else 1..N)."""
    data = _load(arrays)
    source = str(arrays)
    for key, want in (("particle_positions", "(N, 3) in m"), ("volumes", "(N,) in m³")):
        if key not in data:
            raise InputError(f"lacks array '{key}'; expected {want}", source=source)
    pos = np.asarray(data["particle_positions"], dtype=float)
    vol = np.asarray(data["volumes"], dtype=float).reshape(-1)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise InputError(f"array 'particle_positions' has shape {pos.shape}; expected (N, 3)",
                         source=source)
    if vol.size != pos.shape[0]:
        raise InputError(f"array 'volumes' has {vol.size} values for {pos.shape[0]} particles",
                         source=source)
    labels = None
    ident = data.get("identifier")
    if ident is not None and ident.size == pos.shape[0] and np.issubdtype(ident.dtype, np.number):
        ident = ident.reshape(-1)
        if np.all(ident == np.round(ident)) and np.unique(ident).size == ident.size:
            labels = ident.astype(np.int64)
    for row in range(pos.shape[0]):
        if not np.all(np.isfinite(pos[row])) or not (vol[row] > 0 and math.isfinite(vol[row])):
            raise InputError(f"particle {row} (row {row} of 'particle_positions'/'volumes') has "
                             f"position {pos[row].tolist()} and volume {vol[row]!r}; expected "
                             "finite numbers and a volume > 0", source=source)
    return point_grains(pos, vol, labels, source=source)


def write_library_results(path: str | Path, coefficients: np.ndarray, covariance: np.ndarray,
                          grains: PointGrains) -> None:
    """Results as the library's `save_multipole_moments` writes them (see the docstring)."""
    vol = grains.volumes()
    k = coefficients.shape[1]
    scale = np.ones((vol.size, k))
    scale[:, :3] = vol[:, None]
    cov = covariance * scale[:, :, None] * scale[:, None, :]
    np.savez(path, inv_multipole_moments=to_library(coefficients, vol),
             moments_std=np.sqrt(np.einsum("gii->gi", cov)), covariance=cov,
             identifier=np.asarray(grains.labels))
