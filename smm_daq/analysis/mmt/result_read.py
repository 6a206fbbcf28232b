"""Reading a saved MMT result entry back (`result_file` writes it): the per-grain table as the
CSV has it, the fitted and residual maps, the grain model's coefficients, every scan's σ and
mask, and how the result was made. This module finds each value in the entry's layout;
`result_values` says whether the value found is one a result can hold, and `result_agree`
whether the values it holds twice (or by formula from others) agree.

The layouts read (`result_file` numbers them 1 to 5; 1 and 2 carry no version attribute):

* today's (2, and 3 with the additions below): the table in the NXdata group `grains` (each
  CSV column under its name without the unit, in a `units` attribute; SDs as
  `<column>_errors`), the fitted map in `fitted`, the covariances, σ, cond(Q) and the device
  under `results` (entries written before the grain models were added hold neither
  `results/device` nor `results/model`: the cuboid model, device not recorded), the point
  models' and joint inversions' coefficients and scans beside them;
* the first (1, before the NeXus layout): every CSV column under `results/<column>`, unit in the
  name, the labels in `results/grain`, the fitted map in `fitted/Bz`, `results/sigma_T`,
  `results/covariance_A2_per_m2`, `results/damping` and `results/command`; point models and
  joint inversions add the model, coefficients, scans and device under `results` as today,
  and each scan's `sigma_T` and mask under `scans/<entry>`.

Entries of layout version 3 (the entry's `mmt_result_version` attribute, `result_file`) add
the grain format, the grain file's absolute path, cuboid grains' cuboids (`grain_cuboids`),
the sensor's thickness and each scan's grid and sensor, and may add the options that shaped the
result (`result_params`: Dragonfly's, each scan's mask source, the tile size; `options`).
Version 4 gives the declination clockwise from north (+y) towards +x; the earlier versions'
counter-clockwise from +x is read as today's (`declination_from_north`). Version 5 holds an
unresolved grain's higher-order p-value NaN, where version 4 held 1 (both read as written:
neither is resolved, `check_resolved`). A version newer than
`RESULT_VERSION` is refused, naming both.

Point grains are rebuilt from the table's centroids and volumes. Cuboid grains come from the
entry's `grain_cuboids`; an entry written before they were stored records only the grain file,
looked up (its absolute path, then as typed beside the session file or here) and taken when it
holds the result's grains (`grains_from_file`). A scan's grid not stored (before version 3) is
its entry's in the file, where that still fits the scan's maps; its sensor's thickness is the
one it was fitted with: the recorded command's --sensor-thickness-um, else its entry's (0 where
that entry is gone).
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from smm_daq.analysis.grains import GrainSet, from_arrays
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.analysis.mmt.result_agree import (
    check_coefficients,
    check_covariance_columns,
    check_directions,
    check_resolved,
    check_ssr,
)
from smm_daq.analysis.mmt.result_file import RESULT_VERSION, VERSION_ATTRIBUTE
from smm_daq.analysis.mmt.result_params import ResultOptions, read_options
from smm_daq.analysis.mmt.result_values import (
    HIGHER_ORDER_COLUMNS,
    check_damping,
    check_finite,
    check_masks,
    check_model,
    check_same_map,
    check_table,
    known_columns,
    read_coefficients,
    read_condition_number,
    read_covariances,
    read_field,
    read_length,
    read_scalar,
    read_sensor_count,
    read_sensor_size,
    read_sigma,
)
from smm_daq.analysis.mmt.scan_fits import ScanFit
from smm_daq.errors import InputError
from smm_daq.shell_words import file_shown
from smm_daq.storage.checks import check_axis, corrupt_guard, numeric, string
from smm_daq.storage.h5file import read_whole, text
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map_in, read_sensor_thickness_in
from smm_daq.storage.strings import unescaped
from smm_daq.storage.units import join_units

UM = 1e-6
NT = 1e-9
DECLINATION_FROM_NORTH = 4  # the first layout whose declination is clockwise from +y


@dataclass(frozen=True)
class SavedResult:
    """An MMT result as its entry holds it; arrays indexed by grain (the table's rows).

    It offers what the window shows of a fresh result under the same names (`grains`,
    `magnetization`, `fitted`, `residual`, `sigma`, `scans`, `higher_orders()`...); `table`
    holds the CSV's columns, in its order, with the values stored."""

    path: Path
    name: str
    table: dict[str, np.ndarray]
    model: str
    scans: tuple[str, ...]  # the inverted entries, the first the one `fitted`/`residual` show
    grains: object  # GrainSet stored or from a matching grain file, else PointGrains
    magnetization: np.ndarray  # (G, 3) A/m
    covariance: np.ndarray  # (G, 3, 3) (A/m)²
    fitted: MapData
    residual: MapData
    sigma: float  # T, the first scan's
    sigmas: tuple[float, ...]
    sigma_from_residual: bool
    condition_number: float
    n_sensors: int
    height: float  # m, the SSR's (of a joint inversion the lowest scan's)
    damping: float
    device: str  # "cpu", "gpu" or "" (not recorded)
    coefficients: np.ndarray | None = None  # (G, K) of a point model
    coefficient_covariance: np.ndarray | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # per scan, True = excluded
    command: str = ""
    grain_file: str = ""  # as the process records it (as typed)
    grain_format: str = "cuboids"
    shapes: bool = False  # `grains` holds the grains' cuboids (stored, or from the grain file)
    grain_file_absolute: str = ""  # "" before version 3
    scan_fits: tuple[ScanFit, ...] = ()  # each scan's maps and sensor (`scan_fits.fits_of`)
    version: int = 2  # the layout read (1 and 2 carry no attribute)
    options: ResultOptions = field(default_factory=ResultOptions)  # Dragonfly's, masks, tiles
    # the noise σ (T) of each scan the command gave apart from the SDs' σ, which the misfit
    # sets the residual against (`solver.misfit`); () where none (the σ given is the SDs')
    noise: tuple[float, ...] = ()

    def higher_orders(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(χ², p-value, resolved) of each grain's higher orders as stored; None without."""
        if not all(k in self.table for k in HIGHER_ORDER_COLUMNS):
            return None
        chi2, p, resolved = (self.table[k] for k in HIGHER_ORDER_COLUMNS)
        return chi2, p, resolved.astype(bool)


class NewerLayout(InputError):
    """A result entry of a layout version newer than this reader knows: not damaged, but
    for a newer smm-daq to read."""


def column_name(stem: str, units: str | None, where: str, stored: str = "") -> str:
    """A CSV column's name from the name stored and its `units` attribute: ('mx', 'A/m') ->
    'mx_A_per_m'. `stored`: the dataset's own name, for the message (an SD's `mx_errors`)."""
    name = join_units(stem, units)
    if name is None:
        raise InputError(f"column '{stored or stem}' has units {units!r}, which no result "
                         "column has; expected an MMT result's table", source=where)
    return name


def column_order(names: list[str]) -> list[str]:
    """`names` in the CSV's order (`known_columns`); any other column after them, by name."""
    rank = {k: i for i, k in enumerate(known_columns())}
    return sorted(names, key=lambda k: (rank.get(k, len(rank)), k))


def _table_nexus(group: h5py.Group, where: str) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for stem, node in group.items():
        if not isinstance(node, h5py.Dataset) or (node.dtype.kind in "SOU"
                                                  and "units" not in node.attrs
                                                  and not _is_column(stem)):
            continue  # not a column (a title, say): every column is numeric, most have units
        units = string(node.attrs["units"], f"{stem}'s units", where) \
            if "units" in node.attrs else None
        errors = stem.endswith("_errors")
        name = column_name(stem[:-len("_errors")] if errors else stem, units, where, stem)
        columns[f"sd_{name}" if errors else name] = numeric(group, stem, where, ndim=1)
    return _labels(columns, where)


# columns of earlier versions, stored without units, -> their names now (the SSR is in µm⁻¹)
_EARLIER_COLUMNS = {"ssr": "ssr_per_um"}


def _is_column(stem: str) -> bool:
    """Whether `stem` (a dataset's name in `grains`) names a result column, or its SD."""
    stem = stem.removesuffix("_errors")
    return any(k == stem or k.startswith(f"{stem}_") for k in known_columns())


def _table_first(results: h5py.Group, where: str) -> dict[str, np.ndarray]:
    """The first layout's columns: every 1-D dataset of `results`, named as in the CSV."""
    columns = {name: numeric(results, name, where, ndim=1) for name, node in results.items()
               if isinstance(node, h5py.Dataset) and node.ndim == 1}
    return _labels(columns, where)


def _labels(columns: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """The grain labels as integers (as the CSV writes them); earlier versions' columns
    under their names now."""
    columns = {_EARLIER_COLUMNS.get(k, k): v for k, v in columns.items()}
    if "grain" in columns:
        labels = columns["grain"]
        if not np.array_equal(labels, np.round(labels)):
            raise InputError("'grain' holds labels that are not whole numbers; expected "
                             "integer grain labels", source=where)
        columns["grain"] = labels.astype(np.int64)
    return columns


def _checked(table: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """The table checked (`check_table`), its columns in the CSV's order."""
    check_table(table, where)
    return {k: table[k] for k in column_order(list(table))}


def _text(g: h5py.Group, name: str, where: str, default: str = "") -> str:
    return string(g[name], name, where) if name in g else default


def _option(command: str, option: str, default: str) -> str:
    """The value of `option` in a recorded command line, else `default`."""
    try:
        words = shlex.split(command)
    except ValueError:
        return default
    for i, w in enumerate(words):
        if w == option and i + 1 < len(words):
            return words[i + 1]
        if w.startswith(f"{option}="):
            return w.split("=", 1)[1]
    return default


def declination_from_north(counter_clockwise_from_x: np.ndarray) -> np.ndarray:
    """Degrees clockwise from +y towards +x of the declinations layouts before version 4
    stored, counter-clockwise from +x; in [0, 360)."""
    return (90.0 - counter_clockwise_from_x) % 360.0


def _version(g: h5py.Group, where: str) -> int | None:
    """The entry's layout version (None: none recorded, version 1 or 2); InputError for one
    this reader does not know."""
    if VERSION_ATTRIBUTE not in g.attrs:
        return None
    raw = g.attrs[VERSION_ATTRIBUTE]
    value = text(raw) if isinstance(raw, (bytes, str)) else raw
    try:
        version = int(value)  # type: ignore[call-overload]
        whole = float(value) == version  # type: ignore[arg-type]
    except (TypeError, ValueError):
        version, whole = 0, False
    if not whole or version < 1:
        raise InputError(f"attribute '{VERSION_ATTRIBUTE}' is {value!r}; expected a whole "
                         f"number from 1 to {RESULT_VERSION}", source=where)
    if version > RESULT_VERSION:
        raise NewerLayout(f"is an MMT result of layout version {version} (attribute "
                         f"'{VERSION_ATTRIBUTE}'), newer than this "
                         f"smm-daq reads (version {RESULT_VERSION} and older); expected "
                         f"version {RESULT_VERSION} or older: open it with a newer smm-daq",
                         source=where)
    return version


def _stored_cuboids(g: h5py.Group, table: dict[str, np.ndarray], where: str
                    ) -> GrainSet | None:
    """The grains' cuboids the entry stores (`grain_cuboids`), in the table's order; None
    when it stores none."""
    group = g.get("grain_cuboids")
    if group is None:
        return None
    inside = f"{where}, grain_cuboids"
    if not isinstance(group, h5py.Group):
        raise InputError("'grain_cuboids' is not a group; expected the grains' cuboids",
                         source=where)
    labels = numeric(group, "grain", inside, ndim=1, kinds="iu")
    columns = [numeric(group, k, inside, length=labels.size, si="m")
               for k in ("x", "y", "z", "dx", "dy", "dz")]
    for k, values in zip(("x", "y", "z", "dx", "dy", "dz"), columns, strict=True):
        check_finite(values, k, inside, positive=k.startswith("d"))
    cuboids = np.column_stack(columns)
    grains = from_arrays(cuboids, labels.astype(np.int64), source=where)
    index = {int(label): i for i, label in enumerate(grains.labels)}
    if set(index) != {int(label) for label in table["grain"]}:
        raise InputError("holds the cuboids of other grains than the table's; expected the "
                         "cuboids of each grain of the table", source=inside)
    return grains.subset(np.array([index[int(label)] for label in table["grain"]]))


@dataclass
class _Scan:
    """A scan's maps as stored, its grid when stored too (before version 3 it may not be)."""

    name: str
    fitted: np.ndarray
    residual: np.ndarray
    height: float
    size: tuple[float, ...] | None
    thickness: float | None  # None: not stored (before version 3)
    x: np.ndarray | None = None
    y: np.ndarray | None = None


def _stored_scans(g: h5py.Group, scans: tuple[str, ...], where: str) -> list[_Scan]:
    """The scans of `scans` whose maps the entry's `scans/<entry>` holds (a joint or point
    model's result of the NeXus layout)."""
    out = []
    for scan in scans:
        s = g.get(f"scans/{scan}")
        if not (isinstance(s, h5py.Group) and "fitted_Bz" in s and "residual_Bz" in s):
            continue
        inside = f"{where}, scans/{scan}"
        fitted = read_field(s, "fitted_Bz", inside)
        residual = read_field(s, "residual_Bz", inside)
        if residual.shape != fitted.shape:
            raise InputError(f"'fitted_Bz' has shape {fitted.shape} and 'residual_Bz' "
                             f"{residual.shape}; expected both of the scan's shape",
                             source=inside)
        size = read_sensor_size(s, inside) if "sensor_size" in s else None
        found = _Scan(scan, fitted, residual, read_length(s, "height", inside, positive=True), size,
                      read_length(s, "sensor_thickness", inside) if "sensor_thickness" in s
                      else None)
        if "x" in s and "y" in s:
            found.x = numeric(s, "x", inside, length=fitted.shape[1], si="m")
            found.y = numeric(s, "y", inside, length=fitted.shape[0], si="m")
            check_axis(found.x, "x", inside)
            check_axis(found.y, "y", inside)
        out.append(found)
    return out


def _scan_fits(f: h5py.File, path: Path, first: ScanFit, stored: list[_Scan], command: str
               ) -> tuple[ScanFit, ...]:
    """Every scan's ScanFit: the first from the entry's maps, the others from `scans/`, on
    their stored grid, else their entry's in the file (before version 3), where it fits."""
    fits = [first]
    for s in stored:
        if s.name == first.name:
            continue
        if s.x is None or s.y is None or s.size is None:
            try:
                scan = read_map_in(f, str(path), s.name)
            except InputError:
                continue  # its grid is known nowhere: only its σ is shown
            if scan.shape != s.fitted.shape:
                continue
            s.x = scan.x if s.x is None else s.x
            s.y = scan.y if s.y is None else s.y
            s.size = s.size if s.size is not None else tuple(scan.sensor_size or (0.0, 0.0))
        size = tuple(s.size or (0.0, 0.0))
        thickness = (s.thickness if s.thickness is not None
                     else _recorded_thickness(f, path, s.name, command))
        fitted = MapData(bz=s.fitted, x=np.asarray(s.x), y=np.asarray(s.y), height=s.height,
                         sensor_size=(size[0], size[1]), sources=(s.name,),
                         name=f"{s.name}_mmt_fitted", title="MMT fitted Bz")
        fits.append(ScanFit(s.name, fitted, fitted.with_bz(s.residual, title="MMT residual Bz",
                                                            name=f"{s.name}_mmt_residual"),
                            s.height, (*size, thickness) if thickness > 0 else size))
    return tuple(fits)


def _recorded_thickness(f: h5py.File, path: Path, scan: str, command: str) -> float:
    """The sensor thickness scan `scan` was fitted with, for a result entry written before it
    stored one: the recorded command's --sensor-thickness-um, which the fit took instead of
    the scan's, else the thickness the scan's own entry records; 0 where that entry is gone or
    unreadable."""
    given = _option(command, "--sensor-thickness-um", "")
    try:
        um = float(given) if given else math.nan
    except ValueError:
        um = math.nan
    if math.isfinite(um) and um >= 0:
        return um * UM
    try:
        return read_sensor_thickness_in(f, str(path), scan)
    except InputError:
        return 0.0


def read_result_entry(path: str | Path, entry: str) -> SavedResult:
    """The MMT result saved as `entry` of a session file. InputError naming the file, entry and
    dataset when the entry is missing, is not an MMT result (another kind, another program's),
    is of a newer layout version than this reader knows, or is damaged; the file is only
    read."""
    return read_whole(path, lambda f: read_result_entry_in(f, Path(path), entry))


def read_result_entry_in(f: h5py.File, path: Path, entry: str) -> SavedResult:
    """`read_result_entry` of the session file `f`, open already (at `path`): for a caller
    that reads more of the file in the same open (`info`, every result of a file)."""
    where = f"{path}, entry '{entry}'"
    residual = read_map_in(f, str(path), entry)  # the entry's map, checked as every map is
    with corrupt_guard(where):
        g = f[entry]
        kind = text(g.attrs.get("kind", ""))
        if kind != "mmt":
            raise InputError(f"is {'of kind ' + repr(kind) if kind else 'of no kind'}, not "
                             "an MMT result; expected an entry of kind 'mmt' (written by "
                             "`smm-daq mmt invert` or the MMT tab)", source=where)
        version = _version(g, where)
        results = g.get("results")
        if not isinstance(results, h5py.Group):
            raise InputError("holds no 'results' group; expected an MMT result's",
                             source=where)
        params = g.get("process/parameters")
        params = params if isinstance(params, h5py.Group) else None
        if isinstance(g.get("grains"), h5py.Group):
            table = _checked(_table_nexus(g["grains"], f"{where}, grains"), f"{where}, grains")
            fitted_bz = read_field(g, "fitted/Bz", where)
            cov_name, sigma_name = "covariance", "sigma"
            damping = read_scalar(params, "damping", f"{where}, process", 0.0) if params else 0.0
            command = _text(params, "command", where) if params is not None else ""
            grain_file = _text(params, "grains", where) if params is not None else ""
            version = version or 2
        elif isinstance(results.get("grain"), h5py.Dataset):
            table = _checked(_table_first(results, f"{where}, results"), f"{where}, results")
            fitted_bz = read_field(g, "fitted/Bz", where)
            cov_name, sigma_name = "covariance_A2_per_m2", "sigma_T"
            damping = read_scalar(results, "damping", f"{where}, results", 0.0)
            command = _text(results, "command", where)
            grain_file = _option(command, "--grains", "")
            version = version or 1
        else:
            raise InputError("holds no per-grain table; expected a group 'grains' (or, as "
                             "written by the first versions, 'results/grain')", source=where)
        check_damping(damping, where)
        if version < DECLINATION_FROM_NORTH and "declination_deg" in table:
            table["declination_deg"] = declination_from_north(table["declination_deg"])
        n = int(table["grain"].shape[0])
        inside = f"{where}, results"
        if fitted_bz.shape != residual.bz.shape:
            raise InputError(f"'fitted/Bz' has shape {fitted_bz.shape}; expected the map's "
                             f"{residual.bz.shape}", source=where)
        covariance = read_covariances(results, cov_name, inside, table["grain"], 3)
        check_covariance_columns(table, covariance, cov_name, inside)
        check_resolved(table, where)
        model = _text(results, "model", where, "cuboid")
        check_model(model, where)
        scans = residual.sources
        listed = "scans" in results
        if listed:
            scans = tuple(s for s in _text(results, "scans", where).split(",") if s)
        coefficients = covariances = None
        if "coefficients" in results:
            coefficients = read_coefficients(results, inside, n, model)
            covariances = read_covariances(results, "coefficient_covariance", inside,
                                           table["grain"], coefficients.shape[1])
            check_coefficients(table, coefficients, covariances, covariance, inside)
        check_directions(table, where)  # of M, which the coefficients hold too
        volume = _volumes(results, inside, table) if "volume" in results else None
        sigma = read_sigma(results, sigma_name, f"{where}, results")
        sigmas, masks = [], {}
        for scan in scans:
            s = g.get(f"scans/{scan}")
            if not isinstance(s, h5py.Group):
                if listed:  # the writer stores every scan it lists
                    raise InputError(f"lists scan '{scan}' in 'results/scans' but holds no group "
                                     f"'scans/{scan}'; expected each listed scan's σ and maps "
                                     "there", source=where)
                continue
            sigmas.append(read_sigma(s, sigma_name, f"{where}, scans/{scan}"))
            if "mask" in s:
                masks[scan] = numeric(s, "mask", f"{where}, scans/{scan}", ndim=2,
                                      kinds="biu") != 0
        height_node = params is not None and "height" in params
        height = (read_length(params, "height", f"{where}, process", positive=True)
                  if height_node else residual.height)
        if height is None:
            raise InputError("records no sensor height; expected process/parameters/height "
                             "or instrument/sensor/height", source=where)
        if height_node:  # the SSR's height (a first layout's may be another scan's)
            check_ssr(table, height, where)
        cuboids = _stored_cuboids(g, table, where)
        stored = _stored_scans(g, scans, where)
        check_masks(masks, {**{s.name: s.fitted.shape for s in stored},
                             **({scans[0]: residual.bz.shape} if scans else {})}, where)
        first = stored[0] if stored and stored[0].name == (scans or ("",))[0] else None
        if first is not None:  # the writer stores the first scan's maps twice
            check_same_map(first.fitted, f"scans/{first.name}/fitted_Bz", fitted_bz,
                           "fitted/Bz", where)
            check_same_map(first.residual, f"scans/{first.name}/residual_Bz", residual.bz,
                           "data/Bz", where)
        thickness = (read_length(g, "instrument/sensor/thickness", where)
                     if "instrument/sensor/thickness" in g
                     else first.thickness if first is not None else None)
        fmt = (_text(params, "grain_format", where) if params is not None
               and "grain_format" in params else _option(command, "--grain-format", "cuboids"))
        absolute = (_text(params, "grains_absolute", where) if params is not None else "")
        from_residual = bool(read_scalar(results, "sigma_from_residual", inside, 0.0))
        condition = read_condition_number(results, inside)
        n_sensors = read_sensor_count(results, inside, int(np.sum(np.isfinite(residual.bz))))
        device = _text(results, "device", where)
        options = read_options(params, scans or (entry,), where)
    if thickness is None:  # written before the thickness was stored: the scan's own
        thickness = _recorded_thickness(f, path, scans[0], command) if scans else 0.0
    fitted = residual.with_bz(fitted_bz, title=f"fitted Bz of {entry}")
    area = tuple(residual.sensor_size or (0.0, 0.0))
    first_fit = ScanFit(scans[0] if scans else entry, fitted, residual,
                        float(residual.height if residual.height is not None else height),
                        (*area, thickness) if thickness > 0 else area)
    if cuboids is not None and not _same_grains(cuboids, table_grains(table)):
        raise InputError("'grain_cuboids' holds grains of other volumes or centroids than the "
                         "table's; expected the cuboids of the table's grains", source=where)
    return SavedResult(
        path=path, name=entry, table=table, model=model, scans=scans,
        grains=cuboids if cuboids is not None else table_grains(table, volume),
        magnetization=np.column_stack([table[f"m{a}_A_per_m"] for a in "xyz"]),
        covariance=covariance, fitted=fitted, residual=residual,
        sigma=sigma, sigmas=tuple(sigmas) or (sigma,), sigma_from_residual=from_residual,
        condition_number=condition, n_sensors=n_sensors, height=height, damping=damping,
        device=device,
        coefficients=coefficients, coefficient_covariance=covariances, masks=masks,
        command=command, grain_file=grain_file,
        grain_format="cuboids" if fmt == "csv" else fmt,
        shapes=cuboids is not None, grain_file_absolute=absolute,
        scan_fits=_scan_fits(f, path, first_fit, stored, command), version=version,
        options=options,
        noise=_noise_given(command, len(scans) or 1) if from_residual else (),
    )


def _noise_given(command: str, n: int) -> tuple[float, ...]:
    """The `--sigma-nT` of a recorded command whose SDs took σ from the residual (`--sd-from
    residual`): the noise of each of its `n` scans, T; () where it gave none readable."""
    given = _option(command, "--sigma-nT", "")
    try:
        values = [float(v) * NT for v in given.split(",")] if given else []
    except ValueError:
        return ()
    if len(values) not in (1, n) or not all(math.isfinite(v) and v > 0 for v in values):
        return ()
    return tuple(values * n if len(values) == 1 else values)


def table_grains(table: dict[str, np.ndarray], volume: np.ndarray | None = None
                 ) -> PointGrains:
    """The grains as points, from the table's centroids (µm) and volumes (µm³), or the
    volumes (m³) given (`results/volume`, as inverted)."""
    positions = np.column_stack([table[k] for k in ("x_um", "y_um", "z_um")]) * UM
    return PointGrains(positions, table["volume_um3"] * UM**3 if volume is None else volume,
                       np.asarray(table["grain"], dtype=np.int64))


def _volumes(results: h5py.Group, where: str, table: dict[str, np.ndarray]) -> np.ndarray:
    """`results/volume`: each grain's volume in m³, the table's `volume_um3` to rounding."""
    node = results["volume"]
    units = string(node.attrs["units"], "volume's units", where) if isinstance(
        node, h5py.Dataset) and "units" in node.attrs else "m3"
    if units != "m3":
        raise InputError(f"'volume' has units {units!r}; expected m3", source=where)
    volume = numeric(results, "volume", where, length=table["grain"].size)
    check_finite(volume, "volume", where, positive=True, labels=table["grain"])
    if not np.allclose(volume / UM**3, table["volume_um3"], rtol=1e-9, atol=0):
        raise InputError("'volume' holds other volumes than the table's 'volume_um3'; "
                         "expected each grain's volume in m3", source=where)
    return volume


def grains_from_file(saved: SavedResult, candidates: list[str]) -> tuple[SavedResult, str]:
    """The result with its grains' cuboids from the first of `candidates` (grain files; a
    relative one beside the session file or here) that holds the result's grains (same labels,
    centroids and volumes), and a note on what is drawn: "" when one was found. The grain
    file the entry records by its absolute path is tried first; an entry that stores its
    grains' cuboids needs none. A name stored with a byte that is not UTF-8 escaped is
    tried as that byte's file, then as written (an earlier version's name, escape-like)."""
    from smm_daq.analysis.mmt.formats.grains import CUBOID_FORMATS, read_grain_file

    if saved.shapes or saved.grain_format not in CUBOID_FORMATS:  # the entry holds them
        return saved, ""
    candidates = [saved.grain_file_absolute, *candidates]
    tried = []
    # a name the entry stores has a byte that is not UTF-8 escaped (`storable`); one an
    # earlier version stored, a backslash typed in it, reads the same: both are tried
    for name in dict.fromkeys(n for c in candidates if c for n in (unescaped(c), c)):
        for p in ([Path(name)] if Path(name).is_absolute()
                  else [saved.path.parent / name, Path(name)]):
            if not p.is_file():
                continue
            tried.append(file_shown(p))
            try:
                grains = read_grain_file(p, saved.grain_format)
            except InputError:
                continue
            if _same_grains(grains, saved.grains):
                return replace(saved, grains=grains, shapes=True), ""
            break
    why = (f"{', '.join(tried)} does not hold the result's grains" if tried
           else f"the grain file {saved.grain_file or '(not recorded)'} is not found")
    if saved.model != "cuboid":
        return saved, (f"The grains' outlines are drawn as circles of their volumes: {why}; "
                       "choose it and show the result again for their shapes")
    return saved, (f"Not shown: the grains' outlines and their own fields, which need the "
                   f"grain file ({why}); choose it and show the result again")


def _same_grains(grains: object, points: PointGrains) -> bool:
    labels = np.asarray(getattr(grains, "labels", []))
    if labels.shape != points.labels.shape or not np.array_equal(labels, points.labels):
        return False
    volumes = grains.volumes()  # type: ignore[attr-defined]
    centroids = grains.centroids()  # type: ignore[attr-defined]
    return bool(np.allclose(volumes, points.volume, rtol=1e-6, atol=0)
                and np.allclose(centroids, points.positions, rtol=0, atol=1e-9))
