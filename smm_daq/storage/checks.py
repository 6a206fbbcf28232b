"""Checks on what a session file holds, so a malformed or corrupt file ends in one clear
InputError naming the file, entry and dataset, and never in a traceback from deep inside an
analysis.

HDF5 reports damaged metadata (checksum errors, broken object headers) as OSError,
RuntimeError, KeyError or ValueError from whichever call first touches it; `corrupt_guard`
turns those into InputError. `numeric` and `string` read one node, checking its kind and
shape; `check_map` bounds a map's values by what a scanning magnetometer can record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from smm_daq.articles import with_article
from smm_daq.errors import InputError
from smm_daq.storage.h5file import read_whole
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.units import si_factor, spellings
from smm_daq.storage.virtual import require_sources

MAX_FIELD_T = 100.0  # no map, applied field or magnet reading reaches this
MAX_LENGTH_M = 1e3  # far beyond any stage, sensor or height; keeps squares of lengths finite
# The most values any dataset read whole may hold (2 GiB of float64): a damaged or foreign
# file may state any shape (see `limits.MAX_MAP_PIXELS`).
MAX_VALUES = 1 << 28
_UNEVEN = 1e-3  # relative deviation of an axis step from the mean step


@contextlib.contextmanager
def corrupt_guard(where: str) -> Iterator[None]:
    """HDF5 errors while reading `where` as InputError: the file is damaged."""
    try:
        yield
    except (OSError, RuntimeError, KeyError) as exc:
        raise InputError(
            f"cannot be read ({type(exc).__name__}: {exc}): the file is corrupt; expected an "
            "intact smm-daq session file (a copy from before the damage)",
            source=where,
        ) from None


def numeric(group: h5py.Group, name: str, where: str, *, ndim: int | None = None,
            length: int | None = None, kinds: str = "iuf", si: str | None = None,
            max_size: int = MAX_VALUES) -> np.ndarray:
    """Dataset `name` of `group` as a float array, or InputError saying what it is instead.
    `si` ("T" or "m"): its values in that unit, converted from the one its `units` attribute
    names (none: taken as `si`). Its shape is checked before it is read: more than `max_size`
    values are refused."""
    node = group.get(name)
    what = "missing" if node is None else ("a group" if isinstance(node, h5py.Group)
                                           else None)
    if what is None:
        if not isinstance(node, h5py.Dataset) or node.dtype.kind not in kinds:
            what = f"of type {node.dtype}" if isinstance(node, h5py.Dataset) else "not a dataset"
        elif node.shape is None:  # HDF5's null dataspace: a type but no value
            what = "empty (a null dataspace, no value)"
        elif ndim is not None and node.ndim != ndim:
            what = f"{node.ndim}-D of shape {node.shape}"
        elif length is not None and node.shape != (length,):
            what = f"of shape {node.shape}"
        elif node.size > max_size:
            raise InputError(f"'{name}' is of shape {node.shape} ({node.size:,} values); "
                             f"expected at most {max_size:,} values", source=where)
    if what is not None:
        shape = "a scalar" if ndim == 0 else (f"{length} values" if length is not None
                                               else f"a {ndim}-D array" if ndim else "an array")
        raise InputError(f"'{name}' is {what}; expected {shape} of numbers", source=where)
    require_sources(node, where)
    values = np.asarray(node[()], dtype=float)
    if si is None or "units" not in node.attrs:
        return values
    units = string(node.attrs["units"], f"{name}'s units", where)
    factor = si_factor(units, si)
    if factor is None:
        raise InputError(f"'{name}' has units {units!r}; expected {si} (or one of "
                         f"{spellings(si)})", source=where)
    return values if factor == 1.0 else values * factor


def optional_numeric(group: h5py.Group, name: str, where: str, **kwargs: object
                     ) -> np.ndarray | None:
    return numeric(group, name, where, **kwargs) if name in group else None  # type: ignore[arg-type]


def string(node: object, name: str, where: str) -> str:
    """A text dataset's or attribute's value; InputError when it is something else (an array
    dataset said so by its shape, unread: it may state 10^12 values)."""
    if isinstance(node, h5py.Dataset) and node.shape:
        raise InputError(f"'{name}' is an array of {node.dtype} of shape {node.shape}; "
                         "expected text", source=where)
    value = node[()] if isinstance(node, h5py.Dataset) else node
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    if isinstance(value, str):
        return value
    raise InputError(f"'{name}' is {_what(node, value)}; expected text", source=where)


def _what(node: object, value: object) -> str:
    """What a node that should hold text holds instead, in a few words (an array's repr
    would fill the screen)."""
    if isinstance(node, h5py.Group):
        return "a group"
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def strings(value: object, name: str, where: str) -> tuple[str, ...]:
    """A text attribute holding one name or a list of names."""
    items = value if isinstance(value, np.ndarray) and value.ndim == 1 else [value]
    return tuple(string(v, name, where) for v in items)


def check_axis(values: np.ndarray, name: str, where: str) -> None:
    """InputError unless `values` are finite, increasing, evenly spaced positions (m)."""
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > MAX_LENGTH_M):
        raise InputError(f"axis '{name}' holds {_sample(values)}; expected finite positions in "
                         f"m within ±{MAX_LENGTH_M:g} m", source=where)
    if values.size < 2:
        return
    steps = np.diff(values)
    if not np.all(steps > 0):
        raise InputError(f"axis '{name}' is not increasing ({_sample(values)}); expected "
                         "evenly spaced positions in increasing order", source=where)
    if np.ptp(steps) > _UNEVEN * steps.mean():
        raise InputError(f"axis '{name}' is unevenly spaced (steps {steps.min():.6g} .. "
                         f"{steps.max():.6g} m); expected a regular grid", source=where)


def _sample(values: np.ndarray) -> str:
    head = ", ".join(f"{v:.6g}" for v in values.ravel()[:4])
    return f"[{head}{', ...' if values.size > 4 else ''}]"


def check_map(m: MapData, where: str) -> None:
    """InputError unless the map is a regular grid with values a magnetometer can record."""
    ny, nx = m.shape
    if ny == 0 or nx == 0:
        raise InputError(f"'data/Bz' has shape {m.shape}; expected at least one row and one "
                         "column", source=where)
    check_axis(m.x, "x", where)
    check_axis(m.y, "y", where)
    finite = np.isfinite(m.bz)
    if np.any(np.isinf(m.bz)) or np.any(np.abs(m.bz[finite]) > MAX_FIELD_T):
        bad = m.bz[~np.isnan(m.bz)]
        worst = float(bad[np.argmax(np.abs(bad))])
        raise InputError(f"'data/Bz' holds {worst:g} T; expected fields in T below "
                         f"{MAX_FIELD_T:g} T in magnitude (NaN where not measured)", source=where)
    if m.height is not None and not (0 < m.height <= MAX_LENGTH_M):
        raise InputError(f"the sensor height is {m.height!r} m; expected a number in "
                         f"(0, {MAX_LENGTH_M:g}] m", source=where)
    if m.sensor_size is not None and not all(0 <= s <= MAX_LENGTH_M for s in m.sensor_size):
        raise InputError(f"the sensor size is {list(m.sensor_size)!r} m; expected two sizes in "
                         f"[0, {MAX_LENGTH_M:g}] m", source=where)
    b = m.applied_field
    if b is not None and not (np.all(np.abs(b) <= MAX_FIELD_T)  # no overflow in the norm
                              and np.linalg.norm(b) <= MAX_FIELD_T):
        raise InputError(f"the applied field is {b.tolist()!r} T; expected three finite "
                         f"components below {MAX_FIELD_T:g} T", source=where)


def usable_map(m: MapData, where: str, *, min_size: int = 2) -> None:
    """InputError unless the map has measured pixels on a grid of at least min_size² points
    (what every analysis needs: a step along each axis)."""
    if min(m.shape) < min_size:
        ny, nx = m.shape
        raise InputError(f"holds {with_article(nx)} × {ny} map; expected at least {min_size} "
                         f"× {min_size} points for this analysis", source=where)
    if not np.any(np.isfinite(m.bz)):
        raise InputError("holds no measured pixel (Bz is NaN everywhere); expected a measured "
                         "map", source=where)


def check_intact(path: str | Path) -> None:
    """InputError unless every object and attribute of an existing file reads back: a file
    whose metadata is damaged is never written into."""
    p = Path(path)
    if not p.exists():
        return
    read_whole(p, lambda f: check_headers(f, str(p)))


def check_headers(f: h5py.File, source: str) -> None:
    """InputError unless the root's attributes and every object's header of an open file
    read back (HDF5 checks each header's checksum: about 1 ms for a session of a few scans;
    h5py's visititems with every attribute takes 100 times longer)."""
    with corrupt_guard(source):
        for key in f.attrs:
            f.attrs[key]
        h5py.h5o.visit(f.id, lambda _name, _info: None, info=True)
