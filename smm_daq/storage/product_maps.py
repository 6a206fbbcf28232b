"""Reading back the map a product entry shows: χ or magnetization with its SD.

A product entry's `default` names the NXdata group that shows it (`storage.products`); when
that group is a map on the entry's own grid (other than the Bz in `data`), this returns it
with its standard deviation, its unit, its name and its grid (the entry's map as `read_map`
reads it: axes x and y, height, sources), so a viewer can show the product as what it is,
on its axes, rather than the Bz it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from smm_daq.storage.h5file import read_whole, text
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map_in
from smm_daq.storage.virtual import require_sources


@dataclass(frozen=True)
class ProductMap:
    """A product's map (ny, nx), its SD (or None), unit (UDUNITS) and long name, on `grid`:
    the entry's map as `read_map` reads it (its Bz is the model's or the residual, not the
    product), whose axes `x` (nx,) and `y` (ny,) in m are the product's."""

    values: np.ndarray
    errors: np.ndarray | None
    units: str
    long_name: str
    signal: str
    grid: MapData

    @property
    def x(self) -> np.ndarray:
        return self.grid.x

    @property
    def y(self) -> np.ndarray:
        return self.grid.y


def read_product_map(path: str | Path, entry: str) -> ProductMap | None:
    """The entry's default plot when it is a map on the entry's grid other than `data`;
    None for scans, plain map products and entries whose default plot is a table. InputError
    as `read_map` where the entry's grid cannot be read."""
    return read_whole(path, lambda f: _read_product_map_in(f, str(path), entry))


def _read_product_map_in(f: h5py.File, path: str, entry: str) -> ProductMap | None:
    """`read_product_map` of the session file `f`, open already (at `path`)."""
    g = f.get(entry)
    if not isinstance(g, h5py.Group):
        return None
    default = text(g.attrs.get("default", "data"))
    plot = g.get(default)
    bz = g.get("data/Bz")
    if (default == "data" or not isinstance(plot, h5py.Group)
            or not isinstance(bz, h5py.Dataset)):
        return None
    signal = text(plot.attrs.get("signal", ""))
    values = plot.get(signal)
    if not isinstance(values, h5py.Dataset) or values.shape != bz.shape:
        return None
    errors = plot.get("errors")
    if not isinstance(errors, h5py.Dataset) or errors.shape != bz.shape:
        errors = None
    for node in (values, errors):
        if node is not None:
            require_sources(node, f"{path}, entry '{entry}'")
    grid = read_map_in(f, path, entry)
    sd = None if errors is None else np.asarray(errors[()], dtype=float)
    return ProductMap(
        values=np.asarray(values[()], dtype=float),
        errors=sd,
        units=text(values.attrs.get("units", "")),
        long_name=text(values.attrs.get("long_name", signal)),
        signal=signal,
        grid=grid,
    )
