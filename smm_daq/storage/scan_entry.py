"""Writing one scan into its session-file entry, crash-safe, a line at a time.

The whole entry is laid out before the first point (HDF5 SWMR mode allows no new objects
afterwards). Then each finished line is written in SWMR mode and flushed before its
`line_done` flag is set; the file is closed between lines (`smm_daq.storage.h5file`). After a
crash the file opens with every finished line intact, and a line without its flag is simply
measured again on resume.

Beyond the map core of `smm_daq.storage.nexus`, a scan entry holds:

    /<name>   kind "scan"; status ("interrupted" until a final status is written); state
              ("running", "paused" or the final status); writer ("host:pid:token",
              `writer_id`); message (why it paused or ended); end_time (of the last line
              until the scan ends);
              profile (text; attribute path, the file it was read from),
              profile_fingerprint (JSON), plan (JSON), recipe (text, "" for none; attributes
              path, the recipe's file as given, and absolute_path, where a recipe made it)
      data    Bz (ny, nx) T NaN-filled, line_done (ny,), lockin_x, lockin_y (ny, nx) V,
              lockin_range (ny, nx) V full scale, time (ny, nx) s since the scan's start
              (its `start` attribute, the entry's start_time), continued across resumes
              (`runs`); line_run (ny,) the run that measured each line (-1: none yet);
              line_field (ny, 3) T, the field at the sample (x, y, z) the fluxgate read at
              the line's end (NaN: no fluxgate, or not measured), for the ambient field's
              drift over the scan; files of earlier versions have none, and lines resumed
              into them store none.
              Files of earlier versions have no line_run and no runs: their time is each
              run's rig clock, which starts again at every resume
      runs    NXcollection, a row per run (the start, then each resume): run (n,),
              start_time (n,) ISO 8601, start_epoch (n,) s since 1970-01-01T00:00:00Z,
              time_offset (n,) s: the run's start on the scan's clock; a reading's time is
              its run's time_offset plus the rig-clock seconds since that run's start.
              time_offset is the wall-clock time since the scan's start, but never less than
              a time already stored, fly_streams' included (a wall clock set back, a
              simulation faster than real time), so time only increases
              program_version (n,) the smm-daq version that ran it (the start's is the
              entry's program_name version; a resume's may be newer); noise_seed (n,),
              noise_measurement (n,): a simulated run's noise base (its noise seed, or the
              fresh entropy drawn in its place) and its measurement's number on its
              connection (-1, -1: no simulated noise, or not begun), so that the base given
              back as [simulation] noise_seed draws that run's noise again
              (`simulators.noise_seeds`). Entries of earlier versions have none of the three
              until their first resume by this one adds them ("" and -1 for their earlier
              runs: not recorded)
      instrument/sensor      sensitivity (V/T), offset (V), channel
      instrument/field_check NXsensor: value (3,) T measured at the start of the latest run
                             (fluxgate, or the coils' read-back); the requested field is
                             sample/magnetic_field
        value_log            NXlog, a row per run (the start, then each resume): run (n,),
                             value (n, 3) T (NaN: that run stopped before its check), time
                             (n,) s after its `start` (the entry's start_time), on data/time's
                             clock (the rig's: virtual in a simulation); files of earlier
                             versions have none
      instrument/stage_x, _y, _z  NXpositioner: value (the axis; z the height), soft limits
      instrument/calibration coil matrix (3, 3) T/A, ambient field (3,) T
      instrument/snapshot    the rig's snapshot at the start, as JSON and as groups
      rig_clock_duration     s of rig-clock time spent scanning (summed over resumes; a float,
                             so not NeXus' integer `duration`)
      fly_streams            (flown scans) NXcollection of each line's raw streams, NaN-padded:
                             time, lockin_x, lockin_y (ny, samples); position_time (times
                             on data/time's clock, or on the rig clock where it has no runs),
                             position_x (ny, recorder points); lag (ny,) s used to place them;
                             settings (JSON: time constant, poles, rate, velocity, run-up)
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from smm_daq import PROGRAM_NAME, __version__
from smm_daq.errors import InputError, StorageError
from smm_daq.instruments.profile import Profile
from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.h5file import (
    FIXED_TEXT,
    TEXT,
    FileId,
    Replaced,
    file_id,
    fixed_text,
    make_extendable,
    now_iso,
    read_whole,
    require_swmr_format,
    text,
    writer_alive,
    writer_id,
    writer_process,
    writing,
)
from smm_daq.storage.identity import ensure_token, token_of
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.names import check_file_name
from smm_daq.storage.nexus import check_entry_name, create_entry_core
from smm_daq.storage.products import Quantity, put, set_nx
from smm_daq.storage.runs import RunStart, runs_of
from smm_daq.storage.staging import (
    STAGING,
    check_an_entry,
    check_no_lookalike,
    check_staged_name_free,
    clear_unfinished,
    held_as,
    key_after_clearing,
    kind_held,
    link_not_written_over,
    put_in,
    replacements_under_way,
    staged_name,
)
from smm_daq.storage.strings import storable
from smm_daq.storage.units import split_units

MESSAGE_TEXT = fixed_text(512)
STATUSES = ("running", "paused", "finished", "aborted", "failed", "interrupted")
ACTIVE = ("running", "paused", "interrupted")  # not ended: a live writer may hold it


def fingerprint_text(profile: Profile) -> str:
    """The profile fingerprint as canonical JSON (what resume compares)."""
    return json.dumps(profile.fingerprint(), sort_keys=True)


def check_same_profile(stored: str, profile: Profile, where: str, *, hint: str) -> None:
    """InputError when `profile` is not the one whose fingerprint a scan stored (`stored`,
    JSON): the rest of the scan would be taken with other hardware, geometry or lock-in
    excitation. Checked before the rig is connected, and again by the sequencer that
    resumes; `hint` says how the caller's user resumes with the profile it was started with
    (a command-line option, the window's profile)."""
    then, now = json.loads(stored), profile.fingerprint()
    # (a key the stored one lacks was added to the fingerprint after the scan was started)
    keys = sorted(k for k in then if then[k] != now.get(k)
                  and not (k == TRAVEL_KEY and _travel_within(then[k], now.get(k))))
    if not keys:
        return
    changed = "; ".join(f"{k} was {_shown(then.get(k))}, now {_shown(now.get(k))}"
                        for k in keys)
    why = (" (the coil calibration file was rewritten since the scan started: the rest of "
           "the scan would be taken with another field calibration)"
           if "coil_calibration_T_per_A" in keys else
           " (the ambient field the coils null is another since the scan started, its "
           "calibration file rewritten or the profile edited: the rest of the scan would be "
           "taken at a field off by the difference)"
           if "coil_ambient_field_T" in keys else "")
    raise InputError(f"was taken with another instrument profile: {changed}{why}; expected "
                     f"the profile it was started with: {hint}", source=where)


TRAVEL_KEY = "stage_travel_m"
TRAVEL_ROUNDING_M = 1e-9  # below any stage's resolution: a bound rewritten, not moved


def _travel_within(stored: object, now: object) -> bool:
    """Whether the stage travel `now` (m, [min, max] per axis) lies within the `stored` one,
    to rounding: the same stage, its soft limits the same or tightened (a region the sensor
    must keep off). The plan is checked against the new travel on its own, so a tightened
    one that cuts into the scan is refused there; a wider travel is another stage."""
    try:
        then_, now_ = (np.asarray(v, dtype=float).reshape(3, 2) for v in (stored, now))
    except (TypeError, ValueError):
        return False
    return bool(np.all(now_[:, 0] >= then_[:, 0] - TRAVEL_ROUNDING_M)
                and np.all(now_[:, 1] <= then_[:, 1] + TRAVEL_ROUNDING_M))


def _shown(value: object) -> str:
    """A fingerprint value as people read it: 0.0001, not 9.999999999999999e-05."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)


def _snapshot_groups(group: h5py.Group, snapshot: Mapping[str, Any]) -> None:
    """The snapshot as groups; a numeric key's unit suffix goes to its `units` attribute.
    Numbers (one, or a list of some) become numeric datasets, and so does an empty list under
    a key with a unit suffix (`position_m`: a list of numbers, none now), as an empty float64
    dataset with its unit; anything else, an empty list under a key without one included (a
    list of names, as `unreferenced_axes`, may be empty), JSON text, so a key's type does not
    hang on whether its list is empty. (Earlier files hold an empty list as an empty float64
    dataset, and one under a key with a unit suffix as JSON text.)"""
    for key, value in snapshot.items():
        name = str(key).replace("/", "_") or "_"
        if isinstance(value, Mapping):
            sub = group.create_group(name)
            sub.attrs["NX_class"] = "NXcollection"
            _snapshot_groups(sub, value)
        elif isinstance(value, str):
            group.create_dataset(name, data=value, dtype=TEXT)
        else:
            arr = np.asarray(value) if value is not None else None
            stem, units = split_units(name)
            if arr is not None and arr.dtype.kind in "biuf" and (arr.size or units):
                if units is None or stem in group or stem in snapshot:
                    group.create_dataset(name, data=arr)
                else:
                    put(group, stem, Quantity(arr, units))
            else:
                group.create_dataset(name, data=json.dumps(value, default=str), dtype=TEXT)


def _positioners(entry: h5py.Group, profile: Profile) -> None:
    """The stage as NXpositioner groups: the scanned x and y (the map's axes) and z (height)."""
    travel = np.asarray(profile.stage.travel, dtype=float)
    values = {"x": entry["data/x"], "y": entry["data/y"], "z": entry["instrument/sensor/height"]}
    for i, axis in enumerate("xyz"):
        g = set_nx(entry["instrument"].create_group(f"stage_{axis}"), "NXpositioner")
        put(g, "name", f"stage {axis} ({profile.stage.axes[i]} on the controller)")
        g["value"] = values[axis]  # a hard link: the axis itself
        put(g, "soft_limit_min", Quantity(travel[i, 0], "m"))
        put(g, "soft_limit_max", Quantity(travel[i, 1], "m"))
        put(g, "velocity", Quantity(float(profile.stage.velocity), "m/s"))


def _clip(message: str) -> bytes:
    """Messages go into a fixed 512-byte field: keep the start, mark a cut. As UTF-8 bytes:
    h5py encodes a str for a fixed-length field as ASCII, so a path or entry name with an
    accent would fail to write."""
    raw = message.encode("utf-8")
    if len(raw) <= 500:
        return raw
    return raw[:500].decode("utf-8", errors="ignore").encode("utf-8") + b" ..."


def check_new_scan(path: str | Path, name: str) -> None:
    """InputError now, before the rig is connected (a stage may reference itself at connect)
    or any instrument setting changed, when `ScanEntryWriter.create` would refuse the name or
    the file's format."""
    p = Path(path)
    check_file_name("the session file", str(p), p)
    check_entry_name(name, source=str(p), path=p)
    if p.exists():
        read_whole(p, lambda f: _check_name_free(f, p, name))
        require_swmr_format(p)


def _check_name_free(f: h5py.File, p: Path, name: str) -> None:
    """InputError unless the open file `f` (at `p`) has room for a new scan entry `name`."""
    check_no_lookalike(f, name)
    key = key_after_clearing(f, name)
    if key is not None:  # a link to nothing too
        raise _taken(f, p, name, key)
    check_staged_name_free(f, name)


def check_not_cut_off(g: h5py.Group, where: str) -> None:
    """InputError for a scan entry still marked as being written: its writer was killed
    between moving its layout in and taking the mark off, before any line. Listings hide
    it, and the next writer of its name and `repair` delete it, so lines resumed into it
    would go with it. Swapped in over an earlier entry of its name, it is the scan once
    `repair` has finished the swap."""
    if STAGING in g.attrs and g.name.lstrip("/") in replacements_under_way(g.file):
        repair = command_line(["smm-daq", "repair", g.file.filename])
        raise InputError(
            "was cut off while swapped in over an earlier entry of its name (its writer "
            f"killed); expected the swap finished: run `{repair}` first, then resume it",
            source=where)
    if STAGING in g.attrs:
        raise InputError(
            "was cut off while written, before its first line (its writer killed), so it is "
            "not in the file and holds nothing to resume; expected an interrupted scan: run "
            "the scan again (its next write replaces what was left)", source=where)


class EntryTaken(InputError):
    """A scan's name is an entry of its file already: `path` and `name` let a caller word
    its own way to finish that entry, or propose another name. `kind` is what holds the
    name: "scan", which `resume` may finish unless `finished`, else another kind of entry
    (an analysis product, an image, imported data) or "" for what smm-daq did not write,
    which no scan resumes or writes over. `swap_cut_off`: a scan whose writer was killed
    while swapping it in over an earlier entry of its name, which `resume` finishes only
    once `repair` has finished the swap."""

    def __init__(self, path: Path, name: str, kind: str = "scan",
                 finished: bool = False, *, swap_cut_off: bool = False) -> None:
        self.path, self.name, self.kind = path, name, kind
        self.finished = kind == "scan" and finished
        self.swap_cut_off = kind == "scan" and swap_cut_off
        if self.swap_cut_off:
            message = (f"entry '{name}' is a scan whose writer was killed while swapping it "
                       "in over an earlier entry of that name; expected another scan name "
                       f"(or `{command_line(['smm-daq', 'repair', str(path)])}` to finish the "
                       f"swap, then `{resume_command(path, name)}` to finish the scan)")
        elif self.finished:
            message = (f"entry '{name}' already exists and is a finished scan, which nothing "
                       "resumes or writes over; expected another scan name")
        elif kind == "scan":
            message = (f"entry '{name}' already exists; expected another scan name (or "
                       f"`{resume_command(path, name)}` to finish it)")
        else:
            message = (f"entry '{name}' already exists and is {held_as(kind)}, not a scan, "
                       "so there is no scan of that name to resume; expected another scan "
                       "name (a scan never writes over an entry)")
        super().__init__(message, source=str(path))


def _taken(f: h5py.Group, path: Path, name: str, key: str) -> InputError:
    """The refusal of a new scan `name` whose name is held, by what lies under `key` (the
    group `clear_unfinished` leaves as entry `name`, or a link)."""
    link = link_not_written_over(f, name)
    if link is not None:  # no entry to resume there
        return InputError(link, source=str(path))
    kind = kind_held(f, key)
    if kind == "scan" and name in replacements_under_way(f):
        return EntryTaken(path, name, kind, swap_cut_off=True)
    g = f[key]
    status = g.get("status") if kind == "scan" and isinstance(g, h5py.Group) else None
    finished = isinstance(status, h5py.Dataset) and text(status) == "finished"
    return EntryTaken(path, name, kind, finished)


class ScanEntryWriter:
    """A scan entry being written. Create with `create` or `reopen`; `close` when done.

    The file is open only while something is written (`smm_daq.storage.h5file.writing`): each
    call opens it, writes, flushes and closes it again, so between writes every HDF5 reader
    opens it as it is. Until the final status is written, `status` reads "interrupted" (what
    the scan is if its process stops now, which the file cannot otherwise tell), `state` says
    "running" or "paused", and `writer` names the process: smm-daq's readers show that state
    while the writer is alive.
    """

    def __init__(self, path: Path, name: str, line_done: np.ndarray, run: int | None = 0,
                 time_shift: float | None = None, file: FileId | None = None) -> None:
        self.path = path
        # the file `path` named when the scan began or was taken over, as of its last write
        # (`file_id`): every write is to it, never to another put in its place; None:
        # whichever file it names
        self.file = file
        self.name = name
        self.line_done = np.asarray(line_done, dtype=bool)
        self.run = run  # its row in field_check/value_log; None: the entry has no log
        # added to a rig-clock time to put it on the scan's clock (`runs`); None: an entry of
        # an earlier version, whose times stay on the rig clock as it wrote them
        self.time_shift = time_shift
        # (3,) T: the field check of the earliest run whose lines are stored (`reopen`), what
        # a resumed run's lines are to agree with; None: no line stored, or not recorded
        self.stored_lines_check: np.ndarray | None = None

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        name: str,
        title: str,
        x: np.ndarray,
        y: np.ndarray,
        field: np.ndarray,
        height: float,
        plan_text: str,
        profile: Profile,
        snapshot: Mapping[str, Any],
        recipe_text: str = "",
        streams: tuple[int, int, str] | None = None,
        recipe_file: str = "",
        rig_start: float = 0.0,
    ) -> ScanEntryWriter:
        """Lay out a new scan entry (InputError if `name` exists or the file cannot take it).

        `recipe_file`: the file `recipe_text` was read from, as given (the `recipe`'s `path`
        attribute, as the profile's is), and from the root (`absolute_path`: what continues
        the recipe is named thus by `info`, run from any folder). `streams`: for a flown
        scan, (lock-in samples, recorder points) per line and the fly settings as JSON, to lay
        out `fly_streams`. `rig_start`: the rig clock's reading now, the scan's start (the
        times given to `write_line` are on that clock)."""
        p = Path(path)
        epoch = time.time()
        start = _iso(epoch)  # to the second: the scan's clock counts from it
        offset = epoch - datetime.fromisoformat(start).timestamp()
        check_entry_name(name, source=str(p), path=p)
        require_swmr_format(p)
        with writing(p) as f:
            # left by a writer that was killed; an earlier release's whole entry is kept until
            # the new one is whole, and replaced by it then
            superseding = clear_unfinished(f, name, keep_earlier=True)
            if not superseding and f.get(name, getlink=True) is not None:  # a link to nothing
                raise _taken(f, p, name, name)
            sensor = profile.sensor
            core = MapData(  # the layout only: Bz is a zero-stride placeholder, no memory
                bz=np.broadcast_to(0.0, (len(y), len(x))),
                x=x,
                y=y,
                height=height,
                sensor_size=sensor.active_area,
                applied_field=np.asarray(field, dtype=float),
                name=name,
                title=title,
            )
            # Laid out under a temporary name and moved in whole (see write_map_entry).
            staged = staged_name(name)
            try:
                entry = create_entry_core(
                    f, core, kind="scan", status="interrupted", start_time=start,
                    end_time=start, status_dtype=FIXED_TEXT, group=staged,
                )
                entry.attrs[STAGING] = 1
                cls._layout_scan(entry, len(y), len(x), profile, snapshot)
                _layout_runs(entry, start, epoch, offset)
                entry.create_dataset("writer", data=writer_id().encode(), dtype=FIXED_TEXT)
                entry.create_dataset("state", data="running", dtype=FIXED_TEXT)
                entry.create_dataset("message", data=_clip(_in_progress(p, name, "running")),
                                     dtype=MESSAGE_TEXT)
                entry.create_dataset("plan", data=plan_text, dtype=TEXT)
                recipe = entry.create_dataset("recipe", data=recipe_text, dtype=TEXT)
                if recipe_file:
                    recipe.attrs["path"] = storable(recipe_file)
                    with contextlib.suppress(OSError):  # a folder removed under the process
                        recipe.attrs["absolute_path"] = storable(os.path.abspath(recipe_file))
                entry.create_dataset("profile", data=profile.text, dtype=TEXT).attrs["path"] = (
                    storable(str(profile.path)))
                entry.create_dataset("profile_fingerprint", data=fingerprint_text(profile),
                                     dtype=TEXT)
                duration = entry.create_dataset("rig_clock_duration", data=0.0)
                duration.attrs["units"] = "s"
                duration.attrs["long_name"] = "rig-clock time spent scanning (s)"
                if streams is not None:
                    cls._layout_streams(entry, len(y), *streams)
            except BaseException:
                if staged in f:
                    del f[staged]
                raise
            put_in(f, staged, name, replacing=superseding)
            f.attrs["default"] = name
            ensure_token(f)  # an earlier release's file has none
            file = file_id(f)
        return cls(p, name, np.zeros(len(y), dtype=bool), time_shift=offset - rig_start,
                   file=file)

    @staticmethod
    def _layout_streams(entry: h5py.Group, ny: int, samples: int, recorded: int,
                        settings: str) -> None:
        g = set_nx(entry.create_group("fly_streams"), "NXcollection")
        for key, n, units, long_name in (
            ("time", samples, "s", "lock-in sample time since the scan's start (s)"),
            ("lockin_x", samples, "V", "lock-in X (V)"),
            ("lockin_y", samples, "V", "lock-in Y (V)"),
            ("position_time", recorded, "s",
             "recorded position's time since the scan's start (s)"),
            ("position_x", recorded, "m", "recorded stage x (m)"),
        ):
            ds = g.create_dataset(key, shape=(ny, n), dtype="f8", chunks=(1, n),
                                  fillvalue=np.nan)
            ds.attrs["units"] = units
            ds.attrs["long_name"] = long_name
        lag = g.create_dataset("lag", shape=(ny,), dtype="f8", fillvalue=np.nan)
        lag.attrs["units"] = "s"
        lag.attrs["long_name"] = "delay of a reading behind the field, used to place it (s)"
        g.create_dataset("settings", data=settings, dtype=TEXT)

    @staticmethod
    def _layout_scan(entry: h5py.Group, ny: int, nx: int, profile: Profile,
                     snapshot: Mapping[str, Any]) -> None:
        data = entry["data"]
        chunks = (1, nx)
        for key, units, long_name in (
            ("Bz", "T", "Bz (T)"),
            ("lockin_x", "V", "lock-in X (V)"),
            ("lockin_y", "V", "lock-in Y (V)"),
            ("lockin_range", "V", "lock-in full scale (V)"),
            ("time", "s", "time of the reading since the scan's start (s)"),
        ):
            ds = data.create_dataset(key, shape=(ny, nx), dtype="f8", chunks=chunks,
                                     fillvalue=np.nan)
            ds.attrs["units"] = units
            ds.attrs["long_name"] = long_name
        data["time"].attrs["start"] = text(entry["start_time"])
        data["time"].attrs["description"] = (
            "seconds from the scan's start (the `start` attribute, the entry's start_time) to "
            "the reading, one clock across resumes: the reading's run (line_run) began at "
            "runs/time_offset, and the rig clock's seconds since then are added; NaN where "
            "not measured")
        data.create_dataset("line_done", shape=(ny,), dtype=bool, fillvalue=False)
        line_field = data.create_dataset("line_field", shape=(ny, 3), dtype="f8",
                                         fillvalue=np.nan)
        line_field.attrs["units"] = "T"
        line_field.attrs["long_name"] = ("field at the sample (x, y, z) read by the fluxgate at "
                                         "the line's end; NaN: no fluxgate, or not measured")
        run = data.create_dataset("line_run", shape=(ny,), dtype="i4", fillvalue=-1)
        run.attrs["long_name"] = ("run that measured the line: 0 the scan's start, k its k-th "
                                  "resume (runs); -1 not measured")
        sensor_grp = entry["instrument/sensor"]
        s = profile.sensor
        sensor_grp.create_dataset("sensitivity", data=s.sensitivity_V_per_T).attrs["units"] = "V/T"
        sensor_grp.create_dataset("offset", data=s.offset_V).attrs["units"] = "V"
        sensor_grp.create_dataset("channel", data=s.channel, dtype=TEXT)
        check = set_nx(entry["instrument"].create_group("field_check"), "NXsensor")
        put(check, "name", "applied field check (fluxgate, or the coils' read-back)")
        put(check, "measurement", "magnetic_field")
        measured = check.create_dataset("value", shape=(3,), dtype="f8", fillvalue=np.nan)
        measured.attrs["units"] = "T"
        measured.attrs["long_name"] = ("applied magnetic field measured at the start of the "
                                       "latest run (x, y, z)")
        _layout_field_log(check, text(entry["start_time"]))
        _positioners(entry, profile)
        cal = entry["instrument"].create_group("calibration")
        cal.attrs["NX_class"] = "NXcollection"
        cal.create_dataset("coil_matrix", data=profile.coils.calibration).attrs["units"] = "T/A"
        cal.create_dataset("ambient_field", data=profile.coils.ambient_field).attrs["units"] = "T"
        snap = entry["instrument"].create_group("snapshot")
        snap.attrs["NX_class"] = "NXcollection"
        snap.create_dataset("json", data=json.dumps(snapshot, default=str, sort_keys=True),
                            dtype=TEXT)
        _snapshot_groups(snap, snapshot)

    @classmethod
    def reopen(cls, path: str | Path, name: str, rig_start: float = 0.0) -> ScanEntryWriter:
        """Take over an unfinished scan entry to continue it (InputError if it cannot be), a
        new run starting now, when the rig clock reads `rig_start`."""
        p = Path(path)
        require_swmr_format(p)
        def read(f: h5py.File) -> tuple[list[str], np.ndarray | None, bool, list[str]]:
            taken = _taken_over(f, p, name)
            return (_fixed_run_logs(taken), _stored_lines_check(taken), token_of(f) is None,
                    _missing_run_columns(taken))

        fixed, stored_check, tokenless, missing = read_whole(p, read)
        if fixed:  # as a repair by an earlier release left them: made extendable, whole
            make_extendable(p, fixed)  # (which gives the copy a token)
        if missing or (tokenless and not fixed):  # outside SWMR mode, which adds nothing:
            with writing(p, create=False) as f:  # an earlier release's file's token, and
                ensure_token(f)  # the columns of `runs` it lacks, unknown for its runs
                _check_growable(f[name], f"{p}, entry '{name}'")  # refused: nothing added
                runs = f[name]["runs"]
                for key in _missing_run_columns(f[name]):
                    _run_column(runs, key, int(runs["run"].shape[0]))
        with writing(p, create=False, swmr=True) as f:
            where = f"{p}, entry '{name}'"
            g = _taken_over(f, p, name)
            line_done = np.asarray(g["data/line_done"][()], dtype=bool)
            _check_growable(g, where)
            before = _Taken.of(g)
            try:  # all of it or, where a step fails, none: the entry as it was
                g["writer"][()] = writer_id().encode()  # UTF-8 in a fixed field (`_clip`)
                g["status"][()] = "interrupted"
                if "state" in g:  # files of earlier versions have none
                    g["state"][()] = "running"
                g["message"][()] = _clip(_in_progress(p, name, "running"))
                run = _add_run(g)
                offset = _add_run_start(g, run, time.time())
            except BaseException as exc:
                before.put_back(g, exc)
                raise
            file = file_id(f)
        shift = None if offset is None else offset - rig_start
        writer = cls(p, name, line_done, run, shift, file)
        writer.stored_lines_check = stored_check
        return writer

    @contextlib.contextmanager
    def _writing(self, room: int = 0) -> Iterator[h5py.File]:
        """The entry's file opened for one write; StorageError when the file is gone or
        another is in its place (a scan never makes a new file in its place, nor writes
        another: its lines are in the one moved away)."""
        resume = (f"`{command_line(['smm-daq', 'resume', 'NEW-PATH', '--entry', self.name])}` "
                  "finishes the scan where the file is now")
        if not self.path.exists():
            raise StorageError(
                f"{self.path}: is gone: it was deleted, moved or renamed while the scan wrote "
                f"it, and nothing more can be stored; the lines stored before went with it "
                f"({resume})")
        try:
            with writing(self.path, create=False, swmr=True, room=room,
                         same_file=self.file) as f:
                if self.file is None or not self.file.inode_kept:  # else its inode tells
                    self._require_lines_held(f)
                yield f
                # the file written, which a repair on the way may have rebuilt and swapped in
                self.file = file_id(f)
        except Replaced as exc:
            raise Replaced(
                f"{exc}; nothing more of the scan can be stored; the lines stored before are "
                f"in the file that was there ({resume})") from None

    def _require_lines_held(self, f: h5py.File) -> None:
        """`Replaced` unless the open file holds every line this scan stored: a copy of the
        file taken earlier and put in its place holds its identity token too, and counts as
        the file where inode numbers tell nothing (`smm_daq.storage.identity`); the lines
        stored since are not to be lost behind a "finished"."""
        done = f.get(f"{self.name}/data/line_done")
        if isinstance(done, h5py.Dataset) and done.shape == self.line_done.shape:
            lost = np.flatnonzero(self.line_done & ~np.asarray(done[()], dtype=bool))
            if not lost.size:
                return
            shown = ", ".join(str(int(iy)) for iy in lost[:5]) + (", ..." if lost.size > 5
                                                                    else "")
            missing = f"line(s) {shown} of entry '{self.name}'"
        else:
            missing = f"entry '{self.name}' as this scan laid it out"
        raise Replaced(f"{self.path}: the file there lacks {missing}, stored before (an "
                       "earlier copy of it put in its place?); nothing was written to it")

    def write_line(self, iy: int, bz: np.ndarray, x: np.ndarray, y: np.ndarray,
                   full_scale: np.ndarray, t: np.ndarray,
                   streams: Mapping[str, np.ndarray] | None = None,
                   line_field: np.ndarray | None = None) -> None:
        """Store line `iy` (and, flown, its raw `streams`: the `fly_streams` datasets by
        name, each line shorter than the layout NaN-padded; `line_field`, the fluxgate's
        reading at its end, where the entry has room for it) and flush it, then mark it
        done and flush again."""
        room = sum(np.asarray(v).nbytes for v in (bz, x, y, full_scale, t,
                                                    *(streams or {}).values()))
        shift = self.time_shift or 0.0
        with self._writing(room) as f:
            g = f[self.name]
            data = g["data"]
            for key, values in (streams or {}).items():
                ds = g["fly_streams"][key]
                if ds.ndim == 1:
                    ds[iy] = values
                    continue
                row = np.full(ds.shape[1], np.nan)
                n = min(np.size(values), row.size)
                row[:n] = np.asarray(values, dtype=float)[:n]
                ds[iy] = row + shift if key in ("time", "position_time") else row
            data["Bz"][iy] = bz
            data["lockin_x"][iy] = x
            data["lockin_y"][iy] = y
            data["lockin_range"][iy] = full_scale
            data["time"][iy] = np.asarray(t, dtype=float) + shift
            if line_field is not None and "line_field" in data:  # earlier versions: none
                data["line_field"][iy] = np.asarray(line_field, dtype=float)
            if self.time_shift is not None and self.run is not None:
                data["line_run"][iy] = self.run
            f.flush()
            data["line_done"][iy] = True
            g["end_time"][()] = now_iso()  # where an interrupted scan ended
        self.line_done[iy] = True

    def set_noise(self, base: int, measurement: int) -> None:
        """Record where this run's simulated noise came from (`runs/noise_seed`,
        `runs/noise_measurement`), where the entry has room for it (earlier versions: none)."""
        with self._writing() as f:
            runs = f[self.name].get("runs")
            if (isinstance(runs, h5py.Group) and "noise_seed" in runs
                    and self.time_shift is not None):
                row = int(runs["run"].shape[0]) - 1  # this run's, the last added
                runs["noise_seed"][row] = base
                runs["noise_measurement"][row] = measurement

    def add_duration(self, seconds: float) -> None:
        """Add rig-clock seconds spent scanning (files of earlier versions have no record)."""
        with self._writing() as f:
            g = f[self.name]
            if "rig_clock_duration" in g:
                g["rig_clock_duration"][()] = float(g["rig_clock_duration"][()]) + seconds

    def set_measured_field(self, b: np.ndarray, rig_time: float) -> None:
        """Record this run's field check (a later attempt in the same run replaces it), made
        when the rig clock read `rig_time`: its time in `value_log` is on data/time's clock
        (the run's offset plus rig-clock seconds, virtual in a simulation), so the two agree;
        an entry of an earlier version (no runs) has it on the wall clock, as it had."""
        with self._writing() as f:
            check = f[self.name]["instrument/field_check"]
            check["value"][:] = np.asarray(b, dtype=float)
            if self.run is not None:
                log = check["value_log"]
                log["value"][self.run] = np.asarray(b, dtype=float)
                if self.time_shift is not None:
                    log["time"][self.run] = rig_time + self.time_shift
                else:
                    start = datetime.fromisoformat(text(log["time"].attrs["start"]))
                    log["time"][self.run] = (datetime.now(UTC) - start).total_seconds()

    def set_status(self, status: str, message: str = "") -> None:
        """"running" or "paused" while the scan goes on; a final status ends it."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        with self._writing() as f:
            g = f[self.name]
            if status in ("running", "paused"):
                g["status"][()] = "interrupted"
                note = _in_progress(self.path, self.name, status)
                g["message"][()] = _clip(f"{message}; {note}" if message else note)
            else:
                g["status"][()] = status
                g["message"][()] = _clip(message)
                g["end_time"][()] = now_iso()
            if "state" in g:
                g["state"][()] = status

    def close(self) -> None:
        """Nothing to release: the file is open only while it is written."""


def _layout_field_log(check: h5py.Group, start: str) -> None:
    """field_check/value_log: an NXlog with a row per run of the scan, extendable in SWMR
    mode (chunked, unlimited), its first row for the run that lays it out."""
    log = set_nx(check.create_group("value_log"), "NXlog")
    for key, shape, dtype, fill in (("run", (1,), "i4", -1), ("value", (1, 3), "f8", np.nan),
                                    ("time", (1,), "f8", np.nan)):
        log.create_dataset(key, shape=shape, maxshape=(None, *shape[1:]), dtype=dtype,
                           chunks=(16, *shape[1:]), fillvalue=fill)
    log["run"][0] = 0
    log["run"].attrs["long_name"] = "run of the scan: 0 its start, k its k-th resume"
    log["value"].attrs["units"] = "T"
    log["value"].attrs["long_name"] = "applied magnetic field measured before the run (x, y, z)"
    log["time"].attrs["units"] = "s"
    log["time"].attrs["start"] = start
    log["time"].attrs["long_name"] = "time of the field check after the scan's start (s)"


# what taking over a scan to resume it rewrites (`reopen`), and the logs a new run grows
_TAKEOVER_TEXTS = ("writer", "status", "state", "message")
_RUN_COLUMNS = ("run", "start_time", "start_epoch", "time_offset")
# columns of `runs` that entries of earlier versions lack, their values as a run begins
_RUN_EXTRAS = {"program_version": __version__.encode()[:64], "noise_seed": -1,
               "noise_measurement": -1}
_RUN_LOGS = tuple(f"instrument/field_check/value_log/{key}" for key in ("run", "value", "time")
                  ) + tuple(f"runs/{key}" for key in (*_RUN_COLUMNS, *_RUN_EXTRAS))


def _taken_over(f: h5py.File, p: Path, name: str) -> h5py.Group:
    """Scan entry `name` of `f` (at `p`), InputError unless a resume may take it over: a
    scan's whole entry, not finished, its writer not running."""
    where = f"{p}, entry '{name}'"
    if name not in f or text(f[name].attrs.get("kind", "")) != "scan":
        raise InputError("is not a scan entry in this file", source=where)
    g = f[name]
    check_not_cut_off(g, where)
    check_an_entry(f, name, str(p))  # never lines into a link's target
    status = text(g["status"])
    if status == "finished":
        raise InputError("is finished already; nothing to resume", source=where)
    if status in ACTIVE and writer_alive(text(g["writer"])):
        raise InputError("is being written by process "
                         f"{writer_process(text(g['writer']))}", source=where)
    return g


def _fixed_run_logs(entry: h5py.Group) -> list[str]:
    """The paths of the entry's run logs that have one axis but cannot grow along it: the
    text datasets (`runs/start_time`) a repair by an earlier release rewrote contiguous."""
    found = []
    for key in _RUN_LOGS:
        ds = entry.get(key)
        if isinstance(ds, h5py.Dataset) and ds.ndim == 1 and ds.maxshape[0] is not None:
            found.append(ds.name)
    return found


def _check_growable(entry: h5py.Group, where: str) -> None:
    """InputError, nothing written, where a log a resumed run adds a row to cannot grow: one
    value, not a row per run (a damaged entry), or one of a fixed length that `reopen` could
    not make extendable."""
    for key in _RUN_LOGS:
        ds = entry.get(key)
        if isinstance(ds, h5py.Dataset) and (ds.ndim == 0 or ds.maxshape[0] is not None):
            raise InputError(
                f"cannot be resumed: '{key}' has a fixed length (shape {ds.shape}), and a "
                "resumed run adds a row to it; expected one row per run, extendable, as a "
                "scan lays it out: nothing was changed, its lines read as they are, and a new "
                "scan measures the rest", source=where)


@dataclass(frozen=True)
class _Taken:
    """What `reopen` changes in a scan entry, as it was before: each rewritten text's raw
    value and each run log's length."""

    texts: dict[str, object]
    lengths: dict[str, int]

    @classmethod
    def of(cls, entry: h5py.Group) -> _Taken:
        return cls({k: entry[k][()] for k in _TAKEOVER_TEXTS if k in entry},
                   {k: int(entry[k].shape[0]) for k in _RUN_LOGS if k in entry})

    def put_back(self, entry: h5py.Group, failure: BaseException) -> None:
        """Undo a takeover that `failure` cut short; where that fails too, `failure` says so
        in a note."""
        try:
            for key, length in self.lengths.items():
                if entry[key].shape[0] != length:
                    entry[key].resize(length, axis=0)
            for key, value in self.texts.items():
                entry[key][()] = value
        except Exception as exc:
            failure.add_note(f"the entry could not be put back as it was ({exc}): "
                             "`smm-daq info` shows what it holds")


def _add_run(entry: h5py.Group) -> int | None:
    """A new row in the entry's field-check log for the run that resumes it now: its index.
    None for an entry of an earlier version, which has no log (its one value is replaced)."""
    if "instrument/field_check/value_log" not in entry:
        return None
    log = entry["instrument/field_check/value_log"]
    run = int(log["run"].shape[0])
    for key in ("run", "value", "time"):
        log[key].resize(run + 1, axis=0)
    log["run"][run] = run
    return run


def _iso(epoch: float) -> str:
    """`epoch` (s since 1970 UTC) as ISO 8601 with the local offset, as `now_iso` writes."""
    return datetime.fromtimestamp(epoch, UTC).astimezone().isoformat(timespec="seconds")


# each column of `runs`: dtype, fill value, units, long_name
_RUN_SPECS: dict[str, tuple[Any, Any, str | None, str]] = {
    "run": ("i4", -1, None, "run of the scan: 0 its start, k its k-th resume"),
    "start_time": (FIXED_TEXT, b"", None, "the run's start (ISO 8601, wall clock)"),
    "start_epoch": ("f8", np.nan, "s",
                    "the run's start in seconds since 1970-01-01T00:00:00Z (wall clock)"),
    "time_offset": ("f8", np.nan, "s", "the run's start on data/time's clock (s)"),
    "program_version": (FIXED_TEXT, b"", None,
                        f"the {PROGRAM_NAME} version that ran it; '' not recorded"),
    "noise_seed": ("i8", -1, None, "a simulated run's noise base: given back as [simulation] "
                   "noise_seed, it draws the run's noise again; -1 none"),
    "noise_measurement": ("i4", -1, None, "the simulated run's measurement number on its "
                          "connection (1: its first, what a command's run is; k: after k - 1 "
                          "others on the same connection); -1 none"),
}


def _run_column(runs: h5py.Group, key: str, rows: int) -> None:
    """Column `key` of `runs`, `rows` long, its fill value throughout, extendable in SWMR
    mode."""
    dtype, fill, units, long_name = _RUN_SPECS[key]
    ds = runs.create_dataset(key, shape=(rows,), maxshape=(None,), dtype=dtype, chunks=(16,),
                             fillvalue=fill)
    if units:
        ds.attrs["units"] = units
    ds.attrs["long_name"] = long_name


def _layout_runs(entry: h5py.Group, start: str, epoch: float, offset: float) -> None:
    """`runs`: a row per run of the scan, extendable in SWMR mode, its first row the start
    (at `epoch`, `offset` seconds after the scan's start time `start`)."""
    runs = set_nx(entry.create_group("runs"), "NXcollection")
    for key in _RUN_SPECS:
        _run_column(runs, key, 1)
    runs["time_offset"].attrs["description"] = (
        "seconds from the scan's start (the entry's start_time) to the run's: a reading's "
        "data/time is its run's time_offset plus the rig-clock seconds since that run's start. "
        "The wall-clock time since the scan's start (start_epoch), but never less than a time "
        "stored before (a wall clock set back, a simulation faster than real time), so time "
        "only increases")
    runs["run"][0] = 0
    runs["start_time"][0] = start.encode()
    runs["start_epoch"][0] = epoch
    runs["time_offset"][0] = offset
    runs["program_version"][0] = _RUN_EXTRAS["program_version"]


def _missing_run_columns(entry: h5py.Group) -> list[str]:
    """The columns of `runs` that an entry of an earlier version lacks (`_RUN_EXTRAS`), added
    by a resume before it takes the entry over (SWMR mode adds nothing); none where the entry
    keeps no runs."""
    runs = entry.get("runs")
    data = entry.get("data")
    if not isinstance(runs, h5py.Group) or not isinstance(data, h5py.Group) \
            or "line_run" not in data or not isinstance(runs.get("run"), h5py.Dataset):
        return []
    return [key for key in _RUN_EXTRAS if key not in runs]


def _add_run_start(entry: h5py.Group, run: int | None, epoch: float) -> float | None:
    """A row in `runs` for the run that resumes the entry now (`run`, or the next row): its
    offset on the scan's clock (see `_layout_runs`). None for an entry of an earlier version,
    which has no `runs` (its times stay on the rig clock)."""
    runs = entry.get("runs")
    if not isinstance(runs, h5py.Group) or "line_run" not in entry["data"]:
        return None
    row = int(runs["run"].shape[0])
    earlier = np.concatenate([*_stored_times(entry),
                              np.asarray(runs["time_offset"][()], dtype=float).reshape(-1),
                              [0.0]])
    origin = float(runs["start_epoch"][0]) - float(runs["time_offset"][0])
    offset = max(epoch - origin if np.isfinite(origin) else 0.0, float(np.nanmax(earlier)))
    extras = {k: v for k, v in _RUN_EXTRAS.items() if k in runs}  # earlier versions: none
    for key in (*_RUN_COLUMNS, *extras):
        runs[key].resize(row + 1, axis=0)
    for key, value in extras.items():
        runs[key][row] = value
    runs["run"][row] = row if run is None else run
    runs["start_time"][row] = _iso(epoch).encode()
    runs["start_epoch"][row] = epoch
    runs["time_offset"][row] = offset
    return offset


def _stored_times(entry: h5py.Group) -> list[np.ndarray]:
    """Every time the entry holds on its scan's clock (finite ones, flat): each pixel's, and
    a flown scan's raw stream times, which run past its last pixel (the run-out, the lock-in
    buffer's tail), so a resumed run starts after all of them."""
    found = []
    for key in ("data/time", "fly_streams/time", "fly_streams/position_time"):
        ds = entry.get(key)
        if isinstance(ds, h5py.Dataset):
            values = np.asarray(ds[()], dtype=float).reshape(-1)
            found.append(values[np.isfinite(values)])
    return found


def read_runs(path: str | Path, name: str) -> list[RunStart]:
    """The runs of scan entry `name` (`smm_daq.storage.runs.runs_of`)."""
    def read(f: h5py.File) -> list[RunStart]:
        check_an_entry(f, name, str(path))
        g = f.get(name)
        if not isinstance(g, h5py.Group):
            raise InputError("is not a scan entry in this file", source=f"{path}, entry '{name}'")
        return runs_of(g, f"{path}, entry '{name}'")

    return read_whole(path, read)


@dataclass(frozen=True)
class FieldCheck:
    """The applied field measured before one run of a scan (its start, or a resume)."""

    run: int | None  # 0 the start, k the k-th resume; None: not recorded (an earlier version)
    seconds: float  # after the scan's start, wall clock; NaN: not recorded
    field: np.ndarray  # (3,) T; NaN: that run stopped before its check


def read_field_checks(path: str | Path, name: str) -> list[FieldCheck]:
    """The field checks of scan entry `name`, one per run; of an entry of an earlier version,
    its one (the latest run's). InputError naming the dataset when one is malformed."""
    where = f"{path}, entry '{name}'"

    def read(f: h5py.File) -> list[FieldCheck]:
        check_an_entry(f, name, str(path))
        if name not in f or text(f[name].attrs.get("kind", "")) != "scan":
            raise InputError("is not a scan entry in this file", source=where)
        check = f[name].get("instrument/field_check")
        if not isinstance(check, h5py.Group) or "value" not in check:
            return []
        log = check.get("value_log")
        try:
            if log is None:
                field = np.asarray(check["value"][()], dtype=float).reshape(3)
                return [FieldCheck(None, float("nan"), field)]
            runs = np.asarray(log["run"][()], dtype=int).reshape(-1)
            fields = np.asarray(log["value"][()], dtype=float).reshape(len(runs), 3)
            times = np.asarray(log["time"][()], dtype=float).reshape(len(runs))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"instrument/field_check is malformed ({exc}); expected value "
                             "(3,) and value_log with run (n,), value (n, 3), time (n,)",
                             source=where) from None
        return [FieldCheck(int(r), float(t), v)
                for r, v, t in zip(runs, fields, times, strict=True)]

    return read_whole(path, read)


def _stored_lines_check(g: h5py.Group) -> np.ndarray | None:
    """The field check (3,) T of the earliest run that stored a line of entry `g` (its
    `line_run`, its row of field_check/value_log); None where no line is stored, or where an
    entry of an earlier version (or a malformed one) does not record it."""
    runs = g.get("data/line_run")
    log = g.get("instrument/field_check/value_log")
    if not isinstance(runs, h5py.Dataset) or not isinstance(log, h5py.Group):
        return None
    try:
        stored = np.asarray(runs[()], dtype=int)
        stored = stored[stored >= 0]
        if not stored.size:
            return None
        rows = np.flatnonzero(np.asarray(log["run"][()], dtype=int) == stored.min())
        if not rows.size:
            return None
        field = np.asarray(log["value"][int(rows[0])], dtype=float)
    except (KeyError, ValueError, TypeError, IndexError):
        return None
    return field if field.shape == (3,) and np.isfinite(field).all() else None


def _in_progress(path: Path, name: str, state: str) -> str:
    return (f"{state}, written by {writer_process(writer_id())}: if that process has "
            f"stopped, the scan was interrupted; `{resume_command(path, name)}` "
            "finishes it")


def read_scan_record(path: str | Path, name: str) -> dict[str, Any]:
    """What resume needs from a scan entry: plan text, fingerprint, profile, status, lines."""
    where = f"{path}, entry '{name}'"

    def read(f: h5py.File) -> dict[str, Any]:
        check_an_entry(f, name, str(path))
        if name not in f or text(f[name].attrs.get("kind", "")) != "scan":
            raise InputError("is not a scan entry in this file", source=where)
        g = f[name]
        return {
            "plan": text(g["plan"]),
            "fingerprint": text(g["profile_fingerprint"]),
            "profile_text": text(g["profile"]),
            "profile_path": text(g["profile"].attrs.get("path", "")),
            "recipe": text(g["recipe"]),
            "status": text(g["status"]),
            "line_done": np.asarray(g["data/line_done"][()], dtype=bool),
        }

    return read_whole(path, read)
