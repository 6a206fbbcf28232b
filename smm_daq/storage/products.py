"""How analysis products are laid out so that general viewers plot each as what it is.

An entry's `default` names the NXdata group that shows the product: a χ map with its
standard deviation as `errors`, a magnetization map likewise, a per-grain table as columns
against the grain label with their SDs as `<column>_errors`. Every analysis entry also has a
`process` group (NXprocess: program, version, date, the entries it came from and its
parameters, each with its unit). Quantities carry their unit in a `units` attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np

from smm_daq import PROGRAM_NAME, __version__
from smm_daq.storage.h5file import TEXT, now_iso
from smm_daq.storage.units import split_units


@dataclass(frozen=True)
class Quantity:
    """A value with its UDUNITS unit ("1" for dimensionless) and, optionally, a long name."""

    value: object
    units: str
    long_name: str = ""


@dataclass(frozen=True)
class Compressed:
    """A large array, or a `Quantity` of one, stored gzip-compressed (for tables of thousands
    of rows that compress well, e.g. a result's grain cuboids)."""

    value: object


def bare(value: object) -> object:
    """The stored value inside a `Compressed` and/or `Quantity`."""
    if isinstance(value, Compressed):
        value = value.value
    return value.value if isinstance(value, Quantity) else value


@dataclass(frozen=True)
class MapPlot:
    """An NXdata group of a map on the entry's grid (axes shared with `data`)."""

    group: str  # e.g. "chi"
    signal: str  # the dataset's name, e.g. "chi"
    values: np.ndarray  # (ny, nx)
    units: str
    long_name: str
    errors: np.ndarray | None = None  # (ny, nx) standard deviations, same unit


@dataclass(frozen=True)
class TablePlot:
    """An NXdata group of table columns against one axis column (e.g. per grain).

    `columns` maps people's column names (unit in the name, as in the CSV) to values; each is
    stored under its name without the unit, with a `units` attribute, and a column
    `sd_<name>` becomes `<name>_errors`. `signal` and `auxiliary` are column names too;
    `long_names` gives a column (by its people's name) a `long_name` attribute, for what its
    name and unit do not say (an angle's zero and sense).
    """

    group: str
    columns: Mapping[str, np.ndarray]
    axis: str
    signal: str
    auxiliary: Sequence[str] = field(default=())
    long_names: Mapping[str, str] = field(default_factory=dict)


def set_nx(group: h5py.Group, nx_class: str) -> h5py.Group:
    group.attrs["NX_class"] = nx_class
    return group


def put(group: h5py.Group, name: str, value: object) -> h5py.Dataset:
    """Store a string, number, array or `Quantity` (with its units and long name), compressed
    when wrapped in `Compressed`."""
    units, long_name = None, ""
    compress = isinstance(value, Compressed)
    if isinstance(value, Compressed):
        value = value.value
    if isinstance(value, Quantity):
        units, long_name, value = value.units, value.long_name, value.value
    if isinstance(value, str):
        ds = group.create_dataset(name, data=value, dtype=TEXT)
    else:
        array = np.asarray(value)
        packed = compress and array.ndim > 0 and array.size > 0  # chunks need a shape
        ds = group.create_dataset(name, data=array, **({"compression": "gzip", "shuffle": True}
                                                       if packed else {}))
    if units is not None:
        ds.attrs["units"] = units
    if long_name:
        ds.attrs["long_name"] = long_name
    return ds


def write_map_plot(entry: h5py.Group, plot: MapPlot) -> h5py.Group:
    g = set_nx(entry.create_group(plot.group), "NXdata")
    g.attrs["signal"] = plot.signal
    g.attrs["axes"] = np.array(["y", "x"], dtype=TEXT)
    g.attrs["y_indices"] = 0
    g.attrs["x_indices"] = 1
    g["x"] = entry["data/x"]  # hard links: one copy of each axis
    g["y"] = entry["data/y"]
    put(g, plot.signal, Quantity(np.asarray(plot.values, dtype=float), plot.units,
                                 plot.long_name))
    if plot.errors is not None:
        put(g, "errors", Quantity(np.asarray(plot.errors, dtype=float), plot.units,
                                  f"standard deviation of {plot.long_name}"))
    return g


def write_table_plot(entry: h5py.Group, plot: TablePlot) -> h5py.Group:
    g = set_nx(entry.create_group(plot.group), "NXdata")
    names = {key: split_units(key) for key in plot.columns}
    sds = {key[3:]: key for key in plot.columns if key.startswith("sd_")
           and key[3:] in plot.columns}
    for key, values in plot.columns.items():
        if key in sds.values():
            continue
        stem, units = names[key]
        arr = np.asarray(values)
        ds = put(g, stem, Quantity(arr, units) if units else arr)
        if key in plot.long_names:
            ds.attrs["long_name"] = plot.long_names[key]
        if key in sds:
            sd_units = names[sds[key]][1]
            sd = np.asarray(plot.columns[sds[key]])
            put(g, f"{stem}_errors", Quantity(sd, sd_units) if sd_units else sd)
    g.attrs["signal"] = names[plot.signal][0]
    if plot.auxiliary:
        g.attrs["auxiliary_signals"] = np.array([names[k][0] for k in plot.auxiliary],
                                                dtype=TEXT)
    axis = names[plot.axis][0]
    g.attrs["axes"] = np.array([axis], dtype=TEXT)
    g.attrs[f"{axis}_indices"] = 0
    return g


def write_process(entry: h5py.Group, *, sources: Sequence[str],
                  parameters: Mapping[str, object], name: str = "process",
                  fields: Mapping[str, object] | None = None) -> h5py.Group:
    """NXprocess: program, version, date, sources, parameters (values or Quantities) in
    NXparameters, and `fields`: what the step found (e.g. a registration's shift)."""
    p = set_nx(entry.create_group(name), "NXprocess")
    put(p, "program", PROGRAM_NAME)
    put(p, "version", __version__)
    put(p, "date", now_iso())
    p.create_dataset("sources", data=np.array(list(sources), dtype=TEXT), dtype=TEXT)
    if parameters:
        params = set_nx(p.create_group("parameters"), "NXparameters")
        for key, value in parameters.items():
            put(params, key, value)
    for key, value in (fields or {}).items():
        put(p, key, value)
    return p
