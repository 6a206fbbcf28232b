"""Map entries in session files, laid out in NeXus classes (DESIGN.md §7).

Every entry, a scan or an analysis product, has the same core so that one reader serves all
and general viewers (silx, h5web, NeXpy) plot it as it is:

    /<name>                 NXentry, attrs kind, sources, default; title, start_time, end_time,
                            status, program_name (attr version)
      data                  NXdata, signal "Bz", axes ["y", "x"]: Bz (ny, nx) T, x (nx) m, y (ny) m
      instrument            NXinstrument
        sensor              NXsensor: measurement, height (m), size (2,) (m)
      sample                NXsample: name [, magnetic_field (3,) T, the applied field]
      process               NXprocess (analysis entries): program, version, date, sources,
                            parameters (NXparameters)

Analysis products add the NXdata groups that show them (`smm_daq.storage.products`); the
entry's `default` names the one to plot. The file's root `default` names the entry made
last: a scan from its start (`scan_entry`: a viewer opened during it shows it filling in), a
product or an import once whole; an optical image (`optical_entry`), a picture to place the
maps on, and a scan's resume leave it as it was. Scan entries add more
(`smm_daq.storage.scan_entry`).
Files of earlier versions kept the applied field in instrument/field/requested (and a scan's
measured field in instrument/field/measured); they are still read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from smm_daq import PROGRAM_NAME, __version__
from smm_daq.analysis.noise import bends_at_pixel_scale, white_noise_floor
from smm_daq.errors import InputError
from smm_daq.storage.checks import (
    check_headers,
    check_intact,
    check_map,
    corrupt_guard,
    numeric,
    optional_numeric,
    string,
    strings,
)
from smm_daq.storage.field_tolerance import stored_field_tolerance
from smm_daq.storage.h5file import (
    TEXT,
    now_iso,
    read_whole,
    require_ours,
    text,
    writer_alive,
    writer_id,
    writing,
)
from smm_daq.storage.induced_field import corrected_field, stored_field
from smm_daq.storage.limits import MAX_MAP_PIXELS, check_map_pixels
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.names import NEW_ENTRY_NAME_RULE, new_entry_name_problem, shown_name
from smm_daq.storage.products import (
    MapPlot,
    TablePlot,
    bare,
    put,
    set_nx,
    write_map_plot,
    write_process,
    write_table_plot,
)
from smm_daq.storage.runs import RunStart, runs_of
from smm_daq.storage.staging import (
    ACQUIRED_KINDS,
    REPLACED,
    STAGING,
    CutOff,
    aside_name,
    check_an_entry,
    check_no_lookalike,
    check_staged_name_free,
    clear_unfinished,
    cut_off_entries,
    entry_listed,
    held_as,
    key_after_clearing,
    kind_held,
    left_by_a_writer,
    link_in_the_way,
    link_not_written_over,
    no_entry,
    put_in,
    replacements_under_way,
    resolves,
    settle_conflict,
    staged_name,
    unstaged_name,
    written_by_us,
)

KINDS_HINT = "scan, induced, background, susceptibility, mmt, import, ..."


@dataclass(frozen=True)
class EntryInfo:
    """A summary of one entry, read without loading its map."""

    name: str
    kind: str  # "scan", "induced", "background", ...
    status: str  # scans: "running", "paused", "finished", "aborted", "failed", "interrupted";
    # analysis products: "finished"
    title: str
    shape: tuple[int, int] | None  # (ny, nx); None when the entry holds no map
    applied_field: np.ndarray | None  # (3,) T requested
    measured_field: np.ndarray | None  # (3,) T measured at the start of a scan
    lines_done: int | None  # finished lines of a scan
    start_time: str
    end_time: str
    sources: tuple[str, ...]
    height: float | None  # m
    step: tuple[float, float] | None  # (dx, dy) m
    problem: str = ""  # why the entry could not be summarised (status "unreadable"), else ""
    runs: tuple[RunStart, ...] = ()  # a scan's runs (`runs_of`); () for other kinds
    runs_problem: str = ""  # why a scan's runs could not be read (malformed), else ""
    # the map's white-noise floor (T, NaN where it has too few pixels), read where the listing
    # was asked for it (`list_entries`), else None; and why its map could not be read, else ""
    noise_floor: float | None = None
    noise_problem: str = ""
    # the map's field bends at the pixel scale: `noise_floor` is an upper bound
    noise_floor_bound: bool = False
    # T: coils.field_tolerance_nT of the profile stored with a scan (`stored_field_tolerance`);
    # None where the entry stores none (an import, a processed map)
    field_tolerance: float | None = None
    # why the tolerance that profile holds was set aside (out of the loader's bounds), else ""
    field_tolerance_problem: str = ""


def check_entry_name(name: str, *, source: str, path: str | Path | None = None,
                     hint: str = "") -> str:
    """InputError unless `name` may name a new entry (`new_entry_name_problem`), or, `path`
    given, the file there holds that name already (`holds_name`): an entry of that name is
    not a new one, whatever today's rule says (an earlier release's, written again by `run
    --continue`). `hint`: what to do, said after the rule."""
    problem = new_entry_name_problem(name)
    if problem is not None and not (path is not None and holds_name(path, name)):
        raise InputError(f"entry name {shown_name(name)} is not usable: it {problem}; expected "
                         f"{NEW_ENTRY_NAME_RULE}{hint}: nothing was written", source=source)
    return name


def holds_name(path: str | Path, name: str) -> bool:
    """Whether the file at `path` holds entry `name`: an entry (any, listed or not) or what a
    writer of it killed part-way left (`cut_off_entries`: written again under the name). A
    file that cannot be read holds none (its writer says what is wrong with it)."""
    if not Path(path).exists() or "/" in name or name in (".", "..") or not name:
        return False
    try:
        return read_whole(path, lambda f: any(
            f.get(key, getlink=True) is not None
            for key in (name, staged_name(name), aside_name(name))))
    except (InputError, OSError):
        return False


def _dataset(group: h5py.Group, name: str, value: object, units: str | None = None,
             **attrs: object) -> h5py.Dataset:
    ds = group.create_dataset(name, data=value)
    if units is not None:
        ds.attrs["units"] = units
    for key, val in attrs.items():
        ds.attrs[key] = val
    return ds


def create_entry_core(
    f: h5py.File,
    data: MapData,
    *,
    kind: str,
    status: str,
    start_time: str,
    end_time: str,
    status_dtype: object = TEXT,
    group: str | None = None,
) -> h5py.Group:
    """The part of the layout every entry shares; returns the NXentry group.

    `group` is where it is made when not at `data.name` (an entry staged under another name).

    `status_dtype` lets a scan writer give status and end_time fixed lengths, so they can be
    rewritten while the file is in SWMR mode.
    """
    entry = set_nx(f.create_group(group or data.name), "NXentry")
    entry.attrs["kind"] = kind
    entry.attrs["sources"] = np.array(list(data.sources), dtype=TEXT)
    entry.attrs["default"] = "data"
    _dataset(entry, "title", data.title)
    entry.create_dataset("start_time", data=start_time, dtype=status_dtype)
    entry.create_dataset("end_time", data=end_time, dtype=status_dtype)
    entry.create_dataset("status", data=status, dtype=status_dtype)
    _dataset(entry, "program_name", PROGRAM_NAME, version=__version__)

    nxdata = set_nx(entry.create_group("data"), "NXdata")
    nxdata.attrs["signal"] = "Bz"
    nxdata.attrs["axes"] = np.array(["y", "x"], dtype=TEXT)
    nxdata.attrs["y_indices"] = 0
    nxdata.attrs["x_indices"] = 1
    _dataset(nxdata, "x", data.x, "m", long_name="x (m)")
    _dataset(nxdata, "y", data.y, "m", long_name="y (m)")

    instrument = set_nx(entry.create_group("instrument"), "NXinstrument")
    sensor = set_nx(instrument.create_group("sensor"), "NXsensor")
    _dataset(sensor, "measurement", "magnetic_field")
    if data.height is not None:
        _dataset(sensor, "height", float(data.height), "m")
    if data.sensor_size is not None:
        _dataset(sensor, "size", np.asarray(data.sensor_size, dtype=float), "m")
    sample = set_nx(entry.create_group("sample"), "NXsample")
    _dataset(sample, "name", data.title or data.name)
    if data.applied_field is not None:
        _dataset(sample, "magnetic_field", data.applied_field, "T",
                 long_name="applied magnetic field (x, y, z)")
    return entry


def _store_extra(entry: h5py.Group, extra: Mapping[str, object], source: str) -> None:
    for key, value in extra.items():
        parts = [p for p in str(key).split("/") if p]
        if not parts:
            raise InputError(f"extra key {key!r} is empty", source=source)
        group = entry
        for part in parts[:-1]:
            group = group[part] if part in group else set_nx(group.create_group(part),
                                                             "NXcollection")
        inner = bare(value)
        if not isinstance(inner, str) and np.asarray(inner).dtype.kind not in "biuf":
            raise InputError(
                f"extra '{key}' is of type {type(inner).__name__}; expected a string, a number "
                "or a numeric array",
                source=source,
            )
        put(group, parts[-1], value)


def write_map_entry(
    path: str | Path,
    data: MapData,
    *,
    kind: str,
    extra: Mapping[str, object] | None = None,
    overwrite: bool = False,
    plots: Sequence[MapPlot | TablePlot] = (),
    parameters: Mapping[str, object] | None = None,
    default: str = "data",
    processes: Mapping[str, Mapping[str, object]] | None = None,
    attrs: Mapping[str, object] | None = None,
    long_name: str = "Bz (T)",
) -> str:
    """Write `data` as a new NXentry named `data.name`; returns the entry name.

    An existing entry of that name raises InputError unless `overwrite`, which replaces an
    analysis product, and imported data where `kind` is "import" too (`_check_replaceable`).
    `extra` maps paths under the entry (e.g. "results/offset") to strings, numbers, numeric
    arrays or `Quantity`s, each possibly `Compressed`. `plots` are NXdata groups that show the
    product; `default` names the one a viewer opens. `parameters` (values or `Quantity`s) go to
    the entry's NXprocess with the program, its version and the entry's sources; `processes` are
    further NXprocess groups (name -> fields, e.g. "registration" -> its shift), each with the
    same record; `attrs` are attributes of the NXentry (e.g. a product's layout version);
    `long_name` labels `data/Bz` in viewers (a product's map says what it is: a residual). The
    file is created when missing; entries already in it are never touched, and the root's
    `default` names this entry.
    """
    source = str(path)
    # a name the file holds is not a new one, but the entry `overwrite` replaces is new
    check_entry_name(data.name, source=source, path=None if overwrite else path)
    if not kind:
        raise InputError(f"entry kind is empty; expected one of {KINDS_HINT}", source=source)
    check_map_pixels(*data.shape, f"the map of entry '{data.name}'", source)  # else unreadable
    check_intact(path)
    with writing(path, room=_payload_bytes(data, plots, extra)) as f:
        # left by a writer that was killed; an earlier release's whole entry is kept until
        # the new one is whole, and replaced by it then
        superseding = clear_unfinished(f, data.name, keep_earlier=True)
        replacing = _present(f, data.name)
        if replacing and not superseding:
            _check_replaceable(f, data.name, data.name, data.sources, overwrite, source,
                               writer=kind)
            _check_aside_free(f, data.name, source)
        # Written under another name first and moved in whole: a writer killed part-way
        # leaves the entry as it was (one that raises is undone by `writing`).
        staged = staged_name(data.name)
        stamp = now_iso()
        entry = create_entry_core(f, data, kind=kind, status="finished", start_time=stamp,
                                  end_time=stamp, group=staged)
        entry.attrs[STAGING] = 1
        _dataset(entry["data"], "Bz", data.bz, "T", long_name=long_name)
        for plot in plots:
            if isinstance(plot, MapPlot):
                write_map_plot(entry, plot)
            else:
                write_table_plot(entry, plot)
        entry.attrs["default"] = default
        for key, value in (attrs or {}).items():
            entry.attrs[key] = value
        write_process(entry, sources=data.sources, parameters=parameters or {})
        for step, fields in (processes or {}).items():
            write_process(entry, sources=data.sources, parameters={}, name=step,
                          fields=fields)
        if extra:
            _store_extra(entry, extra, f"{source}, entry '{data.name}'")
        put_in(f, staged, data.name, replacing=replacing)
        f.attrs["default"] = data.name
    return data.name


def _payload_bytes(data: MapData, plots: Sequence[MapPlot | TablePlot],
                   extra: Mapping[str, object] | None) -> int:
    """About the bytes an entry's arrays take in the file (its metadata is in HEADROOM)."""
    arrays: list[object] = [data.bz, data.x, data.y]
    for plot in plots:
        if isinstance(plot, MapPlot):
            arrays += [plot.values, plot.errors if plot.errors is not None else 0]
        else:
            arrays += list(plot.columns.values())
    for value in (extra or {}).values():
        arrays.append(bare(value))
    return sum(np.asarray(a).nbytes for a in arrays if not isinstance(a, str))


def check_new_entry(path: str | Path, name: str, sources: Sequence[str], *,
                    overwrite: bool) -> None:
    """InputError now, before any long work, when `write_map_entry` would refuse to write
    entry `name` computed from `sources` into the existing file `path`."""
    source = str(path)
    check_entry_name(name, source=source)
    if not Path(path).exists():
        return
    require_ours(path)
    read_whole(path, lambda f: _check_new_entry_in(f, source, name, sources, overwrite))


def _check_new_entry_in(f: h5py.File, source: str, name: str, sources: Sequence[str],
                        overwrite: bool) -> None:
    """`check_new_entry` in the session file `f`, open already (at `source`)."""
    conflict = settle_conflict(f, name) if name in replacements_under_way(f) else None
    if conflict is not None:
        raise InputError(conflict, source=source)
    check_no_lookalike(f, name)
    check_staged_name_free(f, name)
    key = key_after_clearing(f, name)  # as the writer finds the name once it is cleared
    if key is not None:
        _check_replaceable(f, name, key, sources, overwrite, source)
        _check_aside_free(f, name, source)


def _present(f: h5py.File, name: str) -> bool:
    """Anything of that name, a link to nothing included (`name in f` is False for one)."""
    return f.get(name, getlink=True) is not None


def _check_aside_free(f: h5py.File, name: str, source: str) -> None:
    """InputError when the name an entry waits under while it is replaced is taken (by
    something not smm-daq's: a replacement of its own left there is settled first)."""
    aside = aside_name(name)
    if _present(f, aside) and not (isinstance(f.get(aside, getlink=True), h5py.HardLink)
                                   and REPLACED in f[aside].attrs):
        raise InputError(
            f"'{aside}', the name smm-daq keeps entry '{name}' under while replacing it, "
            "holds something smm-daq did not put there (another program's?); expected it "
            "gone: rename or delete it with an HDF5 tool (h5py, HDFView), or choose another "
            "entry name", source=source)


def _reimport(held: str, writer: str) -> bool:
    """An import written over an import: imported data is a copy of files kept elsewhere
    (a scan, made again, would take hours; an image is the only record of the surface), so
    an import may replace it, as a file imported again with its parameters put right."""
    return held == writer == "import"


def _check_replaceable(f: h5py.File, name: str, key: str, sources: Sequence[str],
                       overwrite: bool, source: str, *, writer: str = "") -> None:
    """Overwriting is for analysis products only (and, by an import, imported data:
    `_reimport`): never an acquired scan, never a source, never what another tool wrote.
    `key`: where the entry `name` lies (`key_after_clearing`); `writer`: the kind of the
    entry that would replace it."""
    link = link_not_written_over(f, key)
    if link is not None:  # said as what it is: a link is no entry, whatever --overwrite says
        raise InputError(link, source=source)
    if not overwrite:
        kind = kind_held(f, key)
        never = not kind or (kind in ACQUIRED_KINDS and not _reimport(kind, writer))
        raise InputError(
            f"entry '{name}' already exists and is {held_as(kind)}; expected a new entry "
            "name" + (", as it is never overwritten" if never
                      else " (or --overwrite to replace it)"),
            source=source,
        )
    if not written_by_us(f, key):
        raise InputError(
            f"'{name}' is not an entry smm-daq wrote (another program's data, or a link) and "
            "is never overwritten; expected another name",
            source=source,
        )
    kind = text(f[key].attrs.get("kind", ""))
    if kind in ACQUIRED_KINDS and not _reimport(kind, writer):
        raise InputError(
            f"entry '{name}' holds acquired data (kind '{kind}') and is never "
            "overwritten" + (" but by an import" if kind == "import" else "")
            + "; expected another name",
            source=source,
        )
    if name in sources:
        raise InputError(
            f"entry '{name}' is one of the entries the new one is computed from; "
            "expected another name",
            source=source,
        )
    dependents = computed_from(f, name)
    if dependents:
        raise InputError(
            f"entry '{name}' is what {', '.join(repr(d) for d in dependents)} "
            f"{'was' if len(dependents) == 1 else 'were'} computed from: replaced, it would "
            "leave them naming a map they were not computed from; expected another name",
            source=source,
        )


def computed_from(f: h5py.File, name: str) -> list[str]:
    """The entries of an open session file whose recorded sources name entry `name`."""
    found = []
    for key in f:
        if key == name or not entry_listed(f, key):
            continue
        raw = f[key].attrs.get("sources")
        if raw is not None and name in {text(v) for v in np.ravel(raw)}:
            found.append(key)
    return found


def _not_an_entry_name(entry: str) -> str:
    """Why a name that HDF5 resolves to a group (the file's root, a group inside an entry) is
    no entry's name; "" for a name an entry may have."""
    if entry and entry.strip("/") in ("", "."):
        return " (the file's root, not an entry)"
    if "/" in entry:
        return " (a path inside the file; an entry's name holds no '/')"
    return ""


def _entry_group(f: h5py.File, entry: str, source: str) -> h5py.Group:
    """The top-level group `entry`. Never the root or a group inside an entry, which HDF5
    resolves '/', '.' or 'scan/data' to, nor '/scan': an entry is looked up by its name
    elsewhere (its kind, in `list_entries`), which such a path would slip past."""
    why = _not_an_entry_name(entry)
    if not why:
        check_an_entry(f, entry, source)
    group = f.get(entry) if not why and resolves(f, entry) else None  # a link to nothing
    if not isinstance(group, h5py.Group):
        raise InputError(no_entry(f, entry, why), source=source)
    return group


def read_map(path: str | Path, entry: str) -> MapData:
    """The Bz map stored in `entry` of a session file (NaN where not measured): its `data`,
    which for a χ or magnetization entry is the Bz its model predicts and for an MMT entry the
    residual, as the entry's title says (χ or M itself: `product_maps.read_product_map`).

    InputError naming the file and entry when the entry is missing, holds no usable map
    (datasets of the wrong kind or shape, axes that are not a regular grid, values no
    magnetometer records) or cannot be read (a corrupt file).
    """
    def read(f: h5py.File) -> MapData:
        with corrupt_guard(f"{path}, entry '{entry}'"):
            return read_map_in(f, str(path), entry)

    return read_whole(path, read)


def read_map_in(f: h5py.File, source: str, entry: str) -> MapData:
    """`read_map` of the session file `f`, open already (at `source`)."""
    where = f"{source}, entry '{entry}'"
    with corrupt_guard(where):
        check_headers(f, source)
        g = _entry_group(f, entry, source)
        info = _info(entry, g, source)  # the entry's record is well formed too
        return _map_of(g, entry, info.kind, where)


def _map_of(g: h5py.Group, entry: str, kind: str, where: str) -> MapData:
    """The map of entry group `g` of kind `kind`, checked as `read_map` says."""
    if kind == "optical":  # its data is an RGB image: no Bz to miss
        raise InputError("is an optical image of the sample, not a map; expected an entry "
                         "holding a map of Bz", source=where)
    data = g.get("data")
    if not isinstance(data, h5py.Group):
        raise InputError("holds no map; expected a group 'data' with Bz, x and y",
                         source=where)
    bz = numeric(data, "Bz", f"{where}, data", ndim=2, si="T", max_size=MAX_MAP_PIXELS)
    x = numeric(data, "x", f"{where}, data", ndim=1, si="m")
    y = numeric(data, "y", f"{where}, data", ndim=1, si="m")
    if bz.shape != (y.size, x.size):
        raise InputError(
            f"data/Bz has shape {bz.shape} but the axes have y {y.shape} and x {x.shape}; "
            "expected Bz of shape (ny, nx)",
            source=where,
        )
    height = optional_numeric(g, "instrument/sensor/height", where, ndim=0, si="m")
    size = optional_numeric(g, "instrument/sensor/size", where, length=2, si="m")
    applied = _applied_field(g, where)
    sources = strings(g.attrs.get("sources", []), "sources", where) \
        if "sources" in g.attrs and np.size(g.attrs["sources"]) else ()
    title = string(g["title"], "title", where) if "title" in g else ""
    m = MapData(
        bz=bz,
        x=x,
        y=y,
        height=float(height) if height is not None else None,
        sensor_size=(float(size[0]), float(size[1])) if size is not None else None,
        applied_field=applied,
        name=entry,
        title=title,
        sources=sources,
    )
    check_map(m, where)
    return m


def read_sensor_thickness(path: str | Path, entry: str) -> float:
    """The thickness (m) of the sensor that measured `entry`: > 0 for a volume sensor (as the
    multipole library's scans record it), else 0. InputError as `read_map`."""
    return read_whole(path, lambda f: read_sensor_thickness_in(f, str(path), entry))


def read_sensor_thickness_in(f: h5py.File, source: str, entry: str) -> float:
    """`read_sensor_thickness` of the session file `f`, open already (at `source`)."""
    where = f"{source}, entry '{entry}'"
    with corrupt_guard(where):
        g = _entry_group(f, entry, source)
        thickness = optional_numeric(g, "instrument/sensor/thickness", where, ndim=0,
                                     si="m")
    value = float(thickness) if thickness is not None else 0.0
    if not (value >= 0 and np.isfinite(value)):
        raise InputError(f"instrument/sensor/thickness is {value!r}; expected a length >= 0 "
                         "in m", source=where)
    return value


def _applied_field(g: h5py.Group, where: str) -> np.ndarray | None:
    """The entry's applied field, an induced map's written by an earlier release corrected
    to its scans' difference (`corrected_field`)."""
    stored = stored_field(g, where)
    corrected = corrected_field(g, stored)
    return stored if corrected is None else corrected.field


def _measured_field(g: h5py.Group, where: str) -> np.ndarray | None:
    found = optional_numeric(g, "instrument/field_check/value", where, length=3, si="T")
    return (found if found is not None
            else optional_numeric(g, "instrument/field/measured", where, length=3, si="T"))


def _entry_status(g: h5py.Group, where: str) -> str:
    """A scan's status as the user should see it: a live writer's state, else the file's."""
    status = string(g["status"], "status", where) if "status" in g else "finished"
    if status in ("running", "paused", "interrupted") and "writer" in g:
        writer = string(g["writer"], "writer", where)
        if writer == writer_id() or writer_alive(writer):
            return string(g["state"], "state", where) if "state" in g else status
        return "interrupted"  # its writer was killed or crashed; `resume` can finish it
    return status


def _info(name: str, g: h5py.Group, source: str) -> EntryInfo:
    where = f"{source}, entry '{name}'"
    for part in ("data", "instrument", "sample"):
        if part in g and not isinstance(g[part], h5py.Group):
            raise InputError(f"'{part}' is a dataset; expected a group (NeXus layout)",
                             source=where)
    shape = None
    step = None
    data = g.get("data")
    if isinstance(data, h5py.Group) and "Bz" in data:
        bz = data["Bz"]
        if not isinstance(bz, h5py.Dataset) or bz.ndim != 2:
            numeric(data, "Bz", f"{where}, data", ndim=2)  # raises, saying what it is
        shape = tuple(int(n) for n in bz.shape)
        x = numeric(data, "x", f"{where}, data", ndim=1)
        y = numeric(data, "y", f"{where}, data", ndim=1)
        if (y.size, x.size) != shape:  # either side may be what was cut short
            raise InputError(f"'Bz' has shape {shape} (rows, columns) but 'y' holds {y.size} "
                             f"and 'x' {x.size} values; expected one y per row and one x per "
                             "column of 'Bz'", source=f"{where}, data")
        # in Python floats: axes of infinities or near the float limit give NaN or inf, unwarned
        step = (float(x[1]) - float(x[0]) if x.size > 1 else 0.0,
                float(y[1]) - float(y[0]) if y.size > 1 else 0.0)
    lines = None
    if isinstance(data, h5py.Group) and "line_done" in data:
        done = numeric(data, "line_done", f"{where}, data", kinds="biu",
                       length=shape[0] if shape else None)
        lines = int(np.count_nonzero(done))
    height = optional_numeric(g, "instrument/sensor/height", where, ndim=0, si="m")
    sources = g.attrs.get("sources", [])
    kind = string(g.attrs.get("kind", "unknown"), "kind", where)
    runs, runs_problem = _runs_or_problem(g, where) if kind == "scan" else ((), "")
    tolerance = stored_field_tolerance(g)
    return EntryInfo(
        name=name,
        kind=kind,
        status=_entry_status(g, where),
        title=string(g["title"], "title", where) if "title" in g else "",
        shape=shape,  # type: ignore[arg-type]
        applied_field=_applied_field(g, where),
        measured_field=_measured_field(g, where),
        lines_done=lines,
        start_time=string(g["start_time"], "start_time", where) if "start_time" in g else "",
        end_time=string(g["end_time"], "end_time", where) if "end_time" in g else "",
        sources=strings(sources, "sources", where) if np.size(sources) else (),
        height=float(height) if height is not None else None,
        step=step,
        runs=runs,
        runs_problem=runs_problem,
        field_tolerance=tolerance.value,
        field_tolerance_problem=tolerance.problem,
    )


def _runs_or_problem(g: h5py.Group, where: str) -> tuple[tuple[RunStart, ...], str]:
    """A scan's runs, or why they cannot be read: malformed runs do not make the scan's map
    unreadable to a listing, only its runs unknown."""
    try:
        return tuple(runs_of(g, where)), ""
    except InputError as exc:
        return (), str(exc)


def list_entries(path: str | Path, *, noise_floors: bool = False) -> list[EntryInfo]:
    """Every NXentry in a session file, in creation order where the file tracks it.

    A malformed entry is listed with status "unreadable" and the reason in `problem` (naming
    the entry and dataset), so that one bad entry does not hide the others; InputError when
    the file itself is corrupt. `noise_floors`: each entry holding a map has its map read as
    `read_map` reads it and its white-noise floor in `noise_floor` (or why the map cannot
    be read in `noise_problem`), in this one open of the file."""
    return read_whole(path, lambda f: list_entries_in(f, str(path), noise_floors=noise_floors))


def list_entries_in(f: h5py.File, source: str, *, noise_floors: bool = False
                    ) -> list[EntryInfo]:
    """`list_entries` of the session file `f`, open already (at `source`): for a caller that
    reads more of its entries in the same open."""
    with corrupt_guard(source):
        check_headers(f, source)
        infos = [_info_or_problem(name, f[name], source) for name in f
                 if entry_listed(f, name)]  # never through a link (one in a loop included)
        if not noise_floors:
            return infos
        return [_with_noise_floor(f[e.name], e, source)
                if e.shape is not None and not e.problem else e for e in infos]


def _with_noise_floor(g: h5py.Group, e: EntryInfo, source: str) -> EntryInfo:
    """`e` with its map's noise floor, or why its map cannot be read (as `read_map` says)."""
    where = f"{source}, entry '{e.name}'"
    try:
        with corrupt_guard(where):
            m = _map_of(g, e.name, e.kind, where)
    except InputError as exc:
        return replace(e, noise_problem=str(exc))
    return replace(e, noise_floor=white_noise_floor(m.bz),
                   noise_floor_bound=bends_at_pixel_scale(m.bz))


def links_and_strays(path: str | Path) -> list[str]:
    """What `list_entries` leaves out that is neither an entry nor what a killed writer left
    (`unfinished_entries`, `cut_off_replacements`): links at the file's top level (another
    name of their target, or of nothing) and objects of another program's under the names
    smm-daq writes an entry under before it is whole; each said as a sentence."""
    return read_whole(path, lambda f: _links_and_strays_in(f, str(path)))


def _links_and_strays_in(f: h5py.File, source: str) -> list[str]:
    """`links_and_strays` of the session file `f`, open already (at `source`)."""
    with corrupt_guard(source):
        found = []
        for key in f:
            link = link_in_the_way(f, key)
            target = f.get(key, getlink=True)
            if isinstance(target, h5py.SoftLink) and entry_listed(f, target.path.lstrip("/")):
                found.append(f"'{key}' is {link}: entry '{target.path.lstrip('/')}' under "
                             "another name, not an entry of its own")
            elif link is not None:
                found.append(f"'{key}' is {link}, not an entry")
            elif unstaged_name(key) != key and left_by_a_writer(f, key) is None:
                found.append(f"'{key}' lies under a name smm-daq keeps entry "
                             f"'{unstaged_name(key)}' under while writing it, and smm-daq did "
                             "not put it there")
        return found


def names_held_by_links(path: str | Path) -> dict[str, str]:
    """The file's top-level names a link holds, each with why no entry is written there
    (`link_not_written_over`): for a check of every name before anything runs (a recipe's)."""
    def read(f: h5py.File) -> dict[str, str]:
        with corrupt_guard(str(path)):
            held = {key: link_not_written_over(f, key) for key in f}
            return {key: why for key, why in held.items() if why is not None}

    return read_whole(path, read)


def entry_held_as(path: str | Path, name: str) -> str:
    """What holds the entry `name` of the file `path` (an entry `list_entries` lists), said
    as the writers' refusals say it (`held_as`): for a refusal of the name made before any
    of them is called (a recipe's check)."""
    def read(f: h5py.File) -> str:
        with corrupt_guard(f"{path}, entry '{name}'"):
            return held_as(kind_held(f, name))

    return read_whole(path, read)


def unfinished_entries(path: str | Path) -> list[CutOff]:
    """What writers killed part-way left (`cut_off_entries`): groups still marked STAGING,
    under the temporary name (`staged_name`) or their own, but for those of a replacement
    cut off (`cut_off_replacements`), and earlier releases' unmarked staged entries.
    `list_entries` leaves them out (none is an entry); the next write of the name clears
    them (an earlier one holding acquired data refused), and `repair` removes them (an
    earlier one holding acquired data moved in or kept); a live writer's are never seen, as
    it holds the file."""
    def read(f: h5py.File) -> list[CutOff]:
        with corrupt_guard(str(path)):
            return cut_off_entries(f)

    return read_whole(path, read)


def cut_off_replacements(path: str | Path) -> list[tuple[str, str | None, str | None]]:
    """The entries whose replacement (an overwrite) a killed writer left part-way, in a file
    no smm-daq writer has touched since (one left marked open for write is settled by the
    read), each with the link under its name that keeps it from being settled, else None,
    and what else keeps it from being settled (`settle_conflict`), else None.
    `list_entries` leaves out their groups; the next write of the name, or `repair`,
    finishes the replacement, or puts the old entry back where the new one was not whole."""
    def read(f: h5py.File) -> list[tuple[str, str | None, str | None]]:
        with corrupt_guard(str(path)):
            return [(name, link_in_the_way(f, name), settle_conflict(f, name))
                    for name in replacements_under_way(f)]

    return read_whole(path, read)


def _info_or_problem(name: str, g: h5py.Group, source: str) -> EntryInfo:
    try:
        return _info(name, g, source)
    except InputError as exc:
        return EntryInfo(name=name, kind="?", status="unreadable", title="", shape=None,
                         applied_field=None, measured_field=None, lines_done=None,
                         start_time="", end_time="", sources=(), height=None, step=None,
                         problem=str(exc))
