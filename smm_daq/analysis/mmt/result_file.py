"""Writing an MMT result: the per-grain CSV and a new entry in the session file.

The command line and the window both save through here, so a result saved from either is
the same: the CSV's columns (unit-suffixed, one row a grain) and an entry of kind "mmt"
whose `data` is the residual map, `fitted` the fitted grains' Bz and `grains` (its default
plot) the per-grain table, with the covariances, the device that computed it and how the
result was made; for point-source models and joint inversions also the model's coefficients
and every scan's σ, fit and mask (`model_datasets`).

The entry is whole without the files it was made from, so that it can be shown again on
another machine years later. Its layout has a version, the entry's integer attribute
`mmt_result_version` (`RESULT_VERSION`); a reader refuses a version newer than it knows.

* version 1 (no attribute): the first layout, every CSV column under `results/<column>`;
* version 2 (no attribute): the NeXus layout, the table in the NXdata group `grains`;
* version 3: version 2 and, in `process/parameters`, `grain_format` (cuboids, mmt, points,
  mpe or dragonfly) and `grains_absolute` (the grain file's absolute path; `grains` stays
  as typed, relative to the folder the command ran in, and so does the recorded command);
  for cuboid grains `grain_cuboids` (x, y, z, dx, dy, dz in m: centres and full edges, z
  up; `grain`: each cuboid's label; gzip-compressed), so that their outlines and own fields
  need no grain file; `instrument/sensor/thickness` (m; 0 for a point or area sensor), the
  thickness of the shown scan's sensor; and in each `scans/<entry>` of a joint or point-model
  result its grid (`x`, `y`, m), `sensor_size` (w, l, m) and `sensor_thickness` (m).
  Optional additions of version 3 (`result_params`): the options that shaped the result,
  each a parameter of its own (Dragonfly's `min_voxels`, `z_top`, `z_down`, `crop_to_scan`,
  `crop`; each scan's `mask`, `mask_absolute`, `mask_shapes`; `tile`).
* version 4: version 3 with `declination_deg` clockwise from +y (north up the map) towards
  +x, as palaeomagnetists give it; versions 1 to 3 hold it counter-clockwise from +x, which
  the reader turns into today's (its standard deviation is the same in both). Written from
  now on, `grains/declination` and `grains/inclination` state their conventions in a
  `long_name` (optional: entries of version 4 written before have none).
* version 5: version 4 with `grains/higher_order_p` NaN (not available) for an unresolved
  grain, as its `higher_order_chi2` is; version 4 held 1 there, which a reader still takes.
  Written for every result, whether or not it has that column or such a grain: a reader that
  knows only version 4 refuses a NaN p-value as damage, and a version tied to the values held
  would let one save of a result be read by that reader and the next not; with it, that reader
  lists the entry as newer than it reads, as it lists any later layout.

Results of point models and joint inversions written from now on add `results/volume` (m³,
each grain's volume as inverted; the table's `volume_um3` is it rounded through µm³), so that
the multipole library's moments exported later are those exported at inversion time, bit for
bit; a reader without it takes the table's.

`process/parameters/height` is the height the table's SSR is computed with: the sensor's,
and of a joint inversion the lowest scan's (its `long_name` says so); each scan's own is in
`scans/<entry>/height`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.result_values import COLUMN_NAMES, CSV_HEADERS
from smm_daq.analysis.mmt.scan_fits import fits_of
from smm_daq.analysis.mmt.solver.inversion import MMTResult
from smm_daq.analysis.mmt.solver.joint import MultipoleResult
from smm_daq.storage.nexus import write_map_entry
from smm_daq.storage.products import Compressed, MapPlot, Quantity, TablePlot
from smm_daq.storage.strings import storable
from smm_daq.whole_files import written_whole

RESULT_VERSION = 5  # the layout this module writes (the entry's `VERSION_ATTRIBUTE`)
VERSION_ATTRIBUTE = "mmt_result_version"
# the entry's maps as viewers (silx, NeXpy) label them: `data/Bz` is not the measured map that a
# scan entry's `data/Bz` is, though found at the same path
RESIDUAL_LONG_NAME = "residual Bz, measured minus fitted (T)"
FITTED_LONG_NAME = "Bz of the fitted grains (T)"


def write_result_csv(path: str | Path, table: dict[str, np.ndarray]) -> None:
    names = list(table)
    with written_whole(path) as part, part.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([CSV_HEADERS.get(k, k) for k in names])
        for i in range(len(table["grain"])):
            out.writerow([int(table[k][i]) if k == "grain" else f"{float(table[k][i]):.9g}"
                          for k in names])


def result_layout(result: MMTResult, table: dict[str, np.ndarray]) -> dict[str, object]:
    """How the result entry shows the inversion (keyword arguments of `write_map_entry`).

    `data` holds the residual map (its `long_name` says so); `fitted` the fitted grains' Bz;
    `grains` (the entry's
    default plot) the per-grain table as columns against the grain label: every CSV column,
    stored under its name without the unit (`units` attribute), SDs as `<column>_errors`, so
    a column added to the table appears here as it is.
    """
    return {
        "plots": [
            TablePlot("grains", table, axis="grain", signal="mx_A_per_m",
                      auxiliary=("my_A_per_m", "mz_A_per_m"), long_names=COLUMN_NAMES),
            MapPlot("fitted", "Bz", result.fitted.bz, "T", FITTED_LONG_NAME),
        ],
        "default": "grains",
        "long_name": RESIDUAL_LONG_NAME,
        "extra": {
            "results/covariance": Quantity(result.covariance, "A2/m2",
                                           "per-grain covariance of (mx, my, mz)"),
            "results/sigma": Quantity(result.sigma, "T", "noise σ of the map"),
            "results/sigma_from_residual": np.uint8(result.sigma_from_residual),
            "results/condition_number": Quantity(result.condition_number, "1"),
            "results/n_sensors": result.n_sensors,
            "results/device": result.device,
        },
    }


def coefficient_units(n: int) -> list[str]:
    """The UDUNITS unit of each of a grain's first `n` coefficients (3, 8 or 15): M, then the
    quadrupole's and octupole's (see `models.multipole`); entry (i, j) of their covariance is
    in unit i times unit j."""
    return (["A/m"] * 3 + ["A m3"] * 5 + ["A m4"] * 7)[:n]


def model_datasets(result: MultipoleResult) -> dict[str, object]:
    """What a result of `joint.invert_scans` adds to the entry: the grain model, its full
    coefficients and their covariances (basis and units: docs/mmt-models.md), the scans used
    and, per scan, its σ, height, fitted and residual Bz, mask (1 = excluded), grid and
    sensor (area and thickness)."""
    units = coefficient_units(result.coefficients.shape[1])
    coefficients: object = result.coefficients
    covariance: object = result.coefficient_covariance
    if len(set(units)) == 1:  # a dipole's, all A/m: one unit for the dataset
        coefficients = Quantity(coefficients, "A/m", "magnetization M of each grain")
        covariance = Quantity(covariance, "A2/m2", "covariance of each grain's M")
    extra: dict[str, object] = {
        "results/model": result.model,
        "results/coefficients": coefficients,
        "results/coefficient_units": ",".join(units),  # each column's, in order
        "results/coefficient_covariance": covariance,
        "results/scans": ",".join(result.scans),
        # exact, for the multipole library's moments (M V): the table's µm³ are rounded
        "results/volume": Quantity(result.grains.volumes(), "m3", "each grain's volume"),
    }
    for entry, sigma, (fitted, resid), mask in zip(result.scans, result.sigmas, result.fits,
                                                   result.masks, strict=True):
        extra[f"scans/{entry}/sigma"] = Quantity(sigma, "T", "noise σ of the scan")
        extra[f"scans/{entry}/height"] = Quantity(fitted.height, "m", "sensor height")
        extra[f"scans/{entry}/fitted_Bz"] = Quantity(fitted.bz, "T", FITTED_LONG_NAME)
        extra[f"scans/{entry}/residual_Bz"] = Quantity(resid.bz, "T", RESIDUAL_LONG_NAME)
        if mask is not None:
            extra[f"scans/{entry}/mask"] = np.asarray(mask, dtype=np.uint8)
    for fit in fits_of(result):
        extra[f"scans/{fit.name}/x"] = Quantity(fit.fitted.x, "m", "x of the scan's grid")
        extra[f"scans/{fit.name}/y"] = Quantity(fit.fitted.y, "m", "y of the scan's grid")
        extra[f"scans/{fit.name}/sensor_size"] = Quantity(
            np.array(fit.sensor_size[:2], dtype=float), "m", "sensor's active area (w, l)")
        extra[f"scans/{fit.name}/sensor_thickness"] = Quantity(
            _thickness(fit.sensor_size), "m", "sensor's thickness")
    return extra


def _thickness(size: tuple[float, ...]) -> float:
    """A sensor's thickness from its full size (w, l) or (w, l, thickness): 0 without one."""
    return float(size[2]) if len(size) > 2 else 0.0


def cuboid_datasets(grains: GrainSet) -> dict[str, object]:
    """The grains' cuboids (m, centres and full edges, z up) and each cuboid's grain label,
    compressed: a micro-CT sample's tens of thousands of cuboids take a few hundred kB."""
    columns = dict(zip(("x", "y", "z", "dx", "dy", "dz"), grains.cuboids.T, strict=True))
    extra: dict[str, object] = {
        f"grain_cuboids/{k}": Compressed(Quantity(np.ascontiguousarray(v), "m"))
        for k, v in columns.items()}
    extra["grain_cuboids/grain"] = Compressed(np.asarray(grains.labels[grains.grain],
                                                         dtype=np.int64))
    return extra


def grain_parameters(typed: str | Path, fmt: str) -> dict[str, str]:
    """How a result's grain file is recorded: as typed (`grains`; a relative path depends on
    the folder the inversion ran in, which is now), its absolute path and its format; a byte
    that is not UTF-8 in them escaped (`storable`)."""
    return {"grains": storable(str(typed)), "grains_absolute": storable(str(Path(typed).resolve())),
            "grain_format": "cuboids" if fmt == "csv" else fmt}


def write_result_entry(path: str | Path, name: str, source: str, result: MMTResult,
                       table: dict[str, np.ndarray], parameters: Mapping[str, object], *,
                       overwrite: bool = False) -> str:
    """The result as entry `name` of the session file, its map the residual of the entry
    `source` that was inverted (the first scan of a joint inversion, whose other scans the
    entry lists too); `parameters` (how it was made: the command, the grain file as typed
    (`grains`), its absolute path (`grains_absolute`) and format (`grain_format`), and the
    options of `result_params`) go to the entry's NXprocess with the sensor geometry, the
    damping and the grain model used."""
    joint = isinstance(result, MultipoleResult)
    sources = result.scans if joint and result.scans else (source,)
    residual = result.residual.with_bz(result.residual.bz, name=name, sources=tuple(sources),
                                       title=f"MMT residual of {source}")
    recorded = {
        **parameters,
        "model": result.model if joint else "cuboid",
        # the SSR's height: of a joint inversion the lowest scan's (each scan's own is in
        # scans/ENTRY/height); the name stays for the readers of earlier entries
        "height": Quantity(result.height, "m", "lowest scan's sensor height, the SSR's"
                           if joint else "sensor height"),
        "sensor_size": Quantity(np.array(result.residual.sensor_size or (0.0, 0.0)), "m"),
        "damping": result.damping,
    }
    layout = result_layout(result, table)
    thickness = _thickness(fits_of(result)[0].sensor_size)
    more: dict[str, object] = {
        "instrument/sensor/thickness": Quantity(thickness, "m", "the sensor's thickness")}
    if joint:
        more.update(model_datasets(result))
    if isinstance(result.grains, GrainSet):
        more.update(cuboid_datasets(result.grains))
    layout["extra"] = {**layout["extra"], **more}  # type: ignore[dict-item]
    return write_map_entry(path, residual, kind="mmt", overwrite=overwrite,
                           parameters=recorded, attrs={VERSION_ATTRIBUTE: RESULT_VERSION},
                           **layout)  # type: ignore[arg-type]
