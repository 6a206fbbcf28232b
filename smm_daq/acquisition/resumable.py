"""What `resume` checks in a scan entry, whole, before anything touches the rig.

An entry is resumable when it is a scan entry with every part a scan writes (plan, profile
and its fingerprint, status, the data arrays), its plan parses, every array has the plan's
shape (line_done one flag per grid line, Bz and the raw readings one value per point, x and y
the plan's grid), and it is not finished. Anything else is one `InputError` naming the file,
the entry and the part, so a damaged entry never reaches the rig nor ends in a traceback.

The rest of a scan is taken with the lock-in time constant of its first lines
(`check_same_time_constant`): a step scan's settle and dwell count in it, and it sets each
point's noise and filter lag; a flown line's τ sets its lag and blur.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from smm_daq.acquisition.fly.checks import check_fly_plan, profile_fly_limits
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.errors import InputError
from smm_daq.instruments.profile import Profile, parse_profile
from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.checks import corrupt_guard
from smm_daq.storage.h5file import _opened_to_judge, not_ours, read_whole, text
from smm_daq.storage.names import listed_name, other_form_note
from smm_daq.storage.scan_entry import STATUSES, check_not_cut_off, check_same_profile
from smm_daq.storage.staging import (
    aside_name,
    check_an_entry,
    entry_listed,
    link_in_the_way,
    no_entry,
    replacements_under_way,
    resolves,
    staged_name,
)
from smm_daq.storage.strings import stored_path
from smm_daq.text_files import load_json

TEXTS = ("plan", "profile", "profile_fingerprint", "recipe", "status")
GRIDS = ("data/Bz", "data/lockin_x", "data/lockin_y", "data/lockin_range", "data/time")


@dataclass(frozen=True)
class ResumableEntry:
    plan: ScanPlan
    status: str
    line_done: np.ndarray  # (ny,) bool
    fingerprint: str  # JSON
    profile_text: str
    profile_path: str
    recipe: str
    time_constant: float  # s, the lock-in τ its lines were taken with
    stored_in: tuple[str, str] | None = None  # the session file and the entry's name

    @property
    def lines_left(self) -> int:
        return int(np.count_nonzero(~self.line_done))

    def stored_profile(self) -> Profile:
        """The profile the scan was started with, as stored in the entry.

        Relative paths in it are anchored where the profile file was when the scan started.
        """
        return _stored(self.profile_text, self.profile_path, self.stored_in)


def stored_scan_profile(path: str | Path, name: str) -> Profile:
    """The profile stored with scan `name` of `path`, finished or not: the rig a scan or its
    resume opened with it, for `smm-daq safe --from-file` to make safe.

    Only the profile is read (an entry damaged elsewhere, or of an earlier version, still
    gives it), first without waiting for a writer at work: `safe` is the way out, also while
    the scan that writes the file is stalled amid a write (a stalled disk), which a read that
    takes its turn would wait for, then refuse. Read so, the file may be half written: where
    that read fails, the file is read as every reader does (`read_whole`), which says what is
    wrong with it."""
    where = f"{path}, entry '{name}'"

    def read(f: h5py.File) -> tuple[str, str]:
        with corrupt_guard(where):
            if not_ours(f) is not None:
                raise InputError("is another program's HDF5 file, not an smm-daq session file; "
                                 "expected the session file the scan was written to",
                                 source=str(path))
            key = name
            if f.get(name, getlink=True) is None and name in replacements_under_way(f):
                # its writer killed mid-swap (`_mid_swap`): the new entry, else the earlier
                key = next((k for k in (staged_name(name), aside_name(name)) if k in f), name)
            else:
                check_an_entry(f, name, str(path))
            if key not in f:
                raise InputError(no_entry(f, name), source=str(path))
            g = f[key]
            if text(g.attrs.get("kind", "")) != "scan":
                raise InputError("is not a scan entry in this file; expected a scan, whose "
                                 "profile is stored with it", source=where)
            node = g.get("profile")
            if not isinstance(node, h5py.Dataset) or node.shape != () \
                    or node.dtype.kind not in "OSU":
                raise InputError("has no 'profile' text; expected the profile the scan "
                                 "started with: make the rig safe with `smm-daq safe "
                                 "--profile PROFILE` on the rig's profile file", source=where)
            return text(node), text(node.attrs.get("path", ""))

    try:
        with _opened_to_judge(Path(path)) as f:
            stored = None if f is None else read(f)
    except (InputError, OSError, RuntimeError, KeyError, ValueError):
        stored = None
    profile_text, profile_path = stored or read_whole(path, read)
    try:
        return _stored(profile_text, profile_path, (str(path), name))
    except InputError as exc:
        raise InputError(f"the profile stored with it cannot be used: {exc}; make the rig "
                         "safe with `smm-daq safe --profile PROFILE` on the rig's profile "
                         "file", source=where) from None


def _stored(text: str, path: str, stored_in: tuple[str, str] | None) -> Profile:
    """A profile stored with a scan: `path`, where its file was when the scan started (as
    `storable` stored it: `stored_path`), anchors its relative paths and names it in errors."""
    return replace(parse_profile(text, Path(stored_path(path) or "stored-profile.toml")),
                   stored_in=stored_in)


def load_resumable(path: str | Path, name: str) -> ResumableEntry:
    """The entry `name` of `path`, checked whole (see the module); InputError otherwise.
    Read again where a write in another process overlapped the read (`read_whole`)."""
    return read_whole(path, lambda f: _load_resumable_in(f, path, name))


def _load_resumable_in(f: h5py.File, path: str | Path, name: str) -> ResumableEntry:
    where = f"{path}, entry '{name}'"
    with corrupt_guard(where):
        if f.get(name, getlink=True) is None and name in replacements_under_way(f):
            raise InputError(_mid_swap(f, path, name), source=where)
        if not resolves(f, name) or not isinstance(f[name], h5py.Group):
            scans = [k for k in f if entry_listed(f, k)  # never through a link
                     and text(f[k].attrs.get("kind", "")) == "scan"]
            link = link_in_the_way(f, name)  # one leading nowhere
            raise InputError(f"no such entry{f' ({name!r} is {link})' if link else ''}"
                             f"{other_form_note(scans, name)}; "
                             "expected a scan of this file "
                             f"({', '.join(map(listed_name, scans)) or 'it holds none'})",
                             source=where)
        kind = text(f[name].attrs.get("kind", ""))
        g = f[name]
        if kind == "scan":
            check_not_cut_off(g, where)
        check_an_entry(f, name, str(path))  # never lines into a link's target
        if kind != "scan":
            raise InputError(f"is not a scan (kind '{kind}'); only scans are resumed",
                             source=where)
        values: dict[str, str] = {}
        for key in TEXTS:
            node = g.get(key)
            if not isinstance(node, h5py.Dataset) or node.shape != () \
                    or node.dtype.kind not in "OSU":
                raise InputError(f"has no '{key}' text; expected the text every scan entry "
                                 "holds: the entry is damaged and cannot be resumed (start a "
                                 "new scan)", source=where)
            values[key] = text(node)
        if values["status"] not in STATUSES:
            raise InputError(f"'status' is {_quoted(values['status'])}; expected one of "
                             f"{', '.join(STATUSES)}: the entry is damaged and cannot be resumed "
                             "(start a new scan)", source=where)
        plan = ScanPlan.from_text(values["plan"], source=f"{where}, 'plan'")
        if plan.name != name:
            raise InputError(f"its plan is of entry {plan.name!r}; expected '{name}': the entry "
                             "is damaged and cannot be resumed (start a new scan)", source=where)
        try:
            fingerprint = load_json(values["profile_fingerprint"])
        except json.JSONDecodeError:
            fingerprint = None
        if not isinstance(fingerprint, dict):
            raise InputError(f"'profile_fingerprint' is {_quoted(values['profile_fingerprint'])}; "
                             "expected the JSON fingerprint of the profile the scan started "
                             "with: the entry cannot be resumed (start a new scan)", source=where)
        expected = {"data/line_done": (plan.ny,), "data/x": (plan.nx,), "data/y": (plan.ny,)}
        expected.update({key: (plan.ny, plan.nx) for key in GRIDS})
        arrays: dict[str, np.ndarray] = {}
        for key, shape in expected.items():
            node = g.get(key)
            if not isinstance(node, h5py.Dataset):
                raise InputError(f"has no '{key}' dataset; expected the dataset every scan "
                                 "entry holds: the entry is damaged and cannot be resumed "
                                 "(start a new scan)", source=where)
            if node.shape != shape:
                raise InputError(
                    f"'{key}' has shape {node.shape}; expected {shape} for its plan of "
                    f"{plan.nx} × {plan.ny} points: the entry cannot be resumed (start a new "
                    "scan)", source=where)
            kind, wanted = ("b", "booleans") if key == "data/line_done" else ("f", "real numbers")
            if node.dtype.kind != kind:
                raise InputError(f"'{key}' holds {node.dtype}; expected {wanted}: the entry "
                                 "cannot be resumed (start a new scan)", source=where)
            if key in ("data/line_done", "data/x", "data/y"):
                arrays[key] = node[()]
        line_run = g.get("data/line_run")  # entries of earlier versions have none
        if line_run is not None and (not isinstance(line_run, h5py.Dataset)
                                     or line_run.shape != (plan.ny,)
                                     or line_run.dtype.kind not in "iu"):
            raise InputError(f"'data/line_run' is not one integer per line; expected {plan.ny} "
                             "(the run that measured each line): the entry cannot be resumed "
                             "(start a new scan)", source=where)
        line_field = g.get("data/line_field")  # entries of earlier versions have none
        if line_field is not None and (not isinstance(line_field, h5py.Dataset)
                                       or line_field.shape != (plan.ny, 3)
                                       or line_field.dtype.kind != "f"):
            shown = (f"has shape {line_field.shape} of {line_field.dtype}"
                     if isinstance(line_field, h5py.Dataset) else "is not a dataset")
            raise InputError(f"'data/line_field' {shown}; expected ({plan.ny}, 3) real "
                             "numbers (the fluxgate's field at each line's end): the entry "
                             "cannot be resumed (start a new scan)", source=where)
        for axis, grid in (("x", plan.x), ("y", plan.y)):
            stored = np.asarray(arrays[f"data/{axis}"], dtype=float)
            if not np.allclose(stored, grid, rtol=0.0, atol=1e-9):
                raise InputError(f"'data/{axis}' is not the grid of its plan; expected the "
                                 "grid the plan gives: the entry cannot be resumed (start a new "
                                 "scan)", source=where)
        tau = _time_constant(g, plan, values["profile"], where)
        status = values["status"]
        if status == "finished":
            raise InputError(f"entry '{name}' is finished already; nothing to resume (expected "
                             "an interrupted, aborted or failed scan)", source=str(path))
        return ResumableEntry(
            plan=plan,
            status=status,
            line_done=np.asarray(arrays["data/line_done"], dtype=bool),
            fingerprint=values["profile_fingerprint"],
            profile_text=values["profile"],
            profile_path=text(g["profile"].attrs.get("path", "")),
            recipe=values["recipe"],
            time_constant=tau,
            stored_in=(str(path), name),
        )


def _mid_swap(f: h5py.File, path: str | Path, name: str) -> str:
    """Why entry `name` is under no name of its own, where its writer was killed while
    swapping it in over an earlier entry of that name (`staging.replace_entry`), between
    moving the earlier one aside and moving the new one in: what to run. Where the new one
    is gone too, `repair` puts the earlier one back, and there is no scan to resume."""
    new = staged_name(name)
    repair = command_line(["smm-daq", "repair", str(path)])
    said = (f"is mid-swap: its writer was killed while swapping it in over an earlier entry "
            f"of that name, so no entry is under '{name}' for now (the earlier one waits at "
            f"'{aside_name(name)}'")
    if f.get(new, getlink=True) is None:
        return (f"{said}, and the new one is gone); expected the scan in the file: it is not, "
                f"so there is nothing to resume; `{repair}` puts the earlier entry back under "
                f"'{name}'")
    return (f"{said}, the new one at '{new}'); expected the entry under its name: run "
            f"`{repair}` first (it finishes the swap), then `{resume_command(path, name)}`")


def _quoted(text: str) -> str:
    """A stored text as a message quotes it: whole when short, else its start and length (a
    damaged copy's 100 kB would bury the message)."""
    shown = repr(text)
    return shown if len(shown) <= 80 else f"{shown[:60]}... ({len(text):,} characters)"


def _time_constant(g: h5py.Group, plan: ScanPlan, profile_text: str, where: str) -> float:
    """The τ the entry's lines were taken with: a flown scan's from its fly settings, a step
    scan's that of the profile it started with (the sequencer sets the lock-in to it)."""
    try:
        if plan.fly is not None:
            tau = load_json(text(g["fly_streams/settings"]))["time_constant_s"]
        else:
            tau = tomllib.loads(profile_text)["lockin"]["time_constant_s"]
    except (KeyError, TypeError, ValueError, RecursionError):  # (JSON and TOML errors are
        # ValueErrors; TOML nested deeper than tomllib follows, a RecursionError)
        tau = None
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not tau > 0:
        part = "'fly_streams/settings'" if plan.fly is not None else "'profile'"
        raise InputError(f"its {part} gives no lock-in time constant; expected the one its "
                         "lines were taken with: the entry is damaged and cannot be resumed "
                         "(start a new scan)", source=where)
    return float(tau)


def time_constant_for(plan: ScanPlan, profile: Profile) -> float:
    """The τ `profile` would take the rest of `plan` with, known before connecting."""
    if plan.fly is None:
        return profile.lockin.time_constant
    return check_fly_plan(plan, profile, profile_fly_limits(profile)).time_constant


def check_same_time_constant(entry: ResumableEntry, tau: float, where: str, *,
                             hint: str) -> None:
    """InputError unless the rest of the scan, taken with lock-in time constant `tau`, matches
    its first lines: a map whose lines differ in τ differs line by line in noise, lag and
    blur, and no later step can tell.

    A step scan's τ is the profile's; `hint` says how the caller's user resumes with a
    profile of the stored τ (a command-line option, the window's profile), after the words
    "expected the same τ ([lockin] time_constant_s = ... in the profile): "."""
    if math.isclose(tau, entry.time_constant, rel_tol=1e-6):
        return
    if entry.plan.fly is not None:
        how = ("expected the lock-in and fly settings the scan started with (start a new "
               "scan)")
    else:
        how = (f"expected the same τ ([lockin] time_constant_s = {entry.time_constant:g} in "
               f"the profile): {hint}")
    raise InputError(f"was taken with lock-in time constant {entry.time_constant:g} s, and the "
                     f"rest of it would be taken with {tau:g} s; {how}", source=where)


def check_resume(path: str | Path, name: str, profile: Profile, *, hint: str
                 ) -> ResumableEntry:
    """Everything checked before the rig is connected to finish entry `name` of `path` with
    `profile`: the entry whole (`load_resumable`), the profile it was started with (its
    fingerprint), its plan against the profile, and the lock-in time constant of its first
    lines. `hint` says how the caller's user resumes with the profile it was started with."""
    entry = load_resumable(path, name)
    where = f"{path}, entry '{name}'"
    check_same_profile(entry.fingerprint, profile, where, hint=hint)
    try:
        entry.plan.validate(profile)
    except InputError as exc:
        raise InputError(str(exc), source=where) from None
    check_same_time_constant(entry, time_constant_for(entry.plan, profile), where, hint=hint)
    return entry
