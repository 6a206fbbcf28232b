"""How an entry was made, in a few words for a listing: an induced entry's registration, a
scan's flight, and what a user cites: the program and version that wrote it, the profile
(the rig or simulator) a scan was taken with, the recipe that made it.

Two subtractions of the same scans made with other options (`--no-register`, `--rotation`,
`--apply-insignificant-shift`) carry the same title and sources; what tells them apart is
their `registration` NXprocess, which this reads back. A flown scan and a stepped one of the
same grid differ only in their stored plan.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import PurePath

import h5py
import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.checks import numeric
from smm_daq.storage.induced_field import (
    DIFFERENCE,
    FIELD_FROM,
    MODEL_KINDS,
    corrected_field,
    stored_field,
)
from smm_daq.storage.strings import text

UM = 1e-6
# what a damaged dataset (a chunk that no longer decompresses: OSError, RuntimeError) or
# another program's value (an integer past float's range: OverflowError) raises on reading
_UNREADABLE = (KeyError, TypeError, ValueError, OSError, RuntimeError, OverflowError)


def registration_summary(entry: h5py.Group) -> str:
    """"not registered", "registered: shift (dx, dy) µm applied[, rotation r°]", "registered:
    shift (dx, dy) µm found, not applied" or "registered: no shift determined"; "" where the
    entry records no registration (not an induced map) or one this cannot read."""
    g = entry.get("registration")
    if not isinstance(g, h5py.Group) or "registered" not in g:
        return ""
    try:
        if not int(g["registered"][()]):
            return "not registered"
        shift = _pair(g, "shift")
        found = _pair(g, "shift_found") if "shift_found" in g else shift
        errors = _pair(g, "shift_errors") if "shift_errors" in g else (0.0, 0.0)
        rotation = float(g["rotation"][()]) if "rotation" in g else 0.0
    except _UNREADABLE:
        return ""
    if not all(math.isfinite(v) for v in (*found, *errors)):
        said = "no shift determined"
    elif shift == (0.0, 0.0) and found != (0.0, 0.0):
        said = f"shift {_um(found)} found, not applied"
    else:
        said = f"shift {_um(shift)} applied"
    if rotation and math.isfinite(rotation):
        said += f", rotation {math.degrees(rotation):.3g}°"
    return f"registered: {said}"


def _pair(g: h5py.Group, key: str) -> tuple[float, float]:
    values = np.asarray(g[key][()], dtype=float).reshape(-1)
    if values.size != 2:
        raise ValueError(key)
    return float(values[0]), float(values[1])


def _um(pair: tuple[float, float]) -> str:
    return f"({pair[0] / UM:.3g}, {pair[1] / UM:.3g}) µm"


def flown_summary(entry: h5py.Group) -> str:
    """"flown, 0.02 s a pixel" for a scan whose stored plan flew its lines; "" for a stepped
    scan, another entry, or a plan this cannot read."""
    plan = entry.get("plan")
    if not isinstance(plan, h5py.Dataset):
        return ""
    try:
        raw = plan[()]
        fly = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)).get("fly")
        seconds = float(fly["pixel_time_s"]) if isinstance(fly, dict) else None
    except (*_UNREADABLE, AttributeError, RecursionError):  # RecursionError: JSON nested deep
        return ""
    if seconds is None:
        return ""
    return f"flown, {seconds:g} s a pixel" if math.isfinite(seconds) else "flown"


def provenance_summary(entry: h5py.Group) -> str:
    """"smm-daq 1.2, profile 'smm-daq simulator' (simulator.toml), recipe 'Remanent and
    induced maps' (its text stored)": the program and version that wrote the entry (and
    ", resumed by smm-daq 1.3" where a later version resumed a scan), the
    profile a scan stored (its `[rig] name` and file), the recipe a scan or subtraction
    stored (its `[recipe] title`, or "untitled"); each left out where the entry records none
    or one this cannot read."""
    return ", ".join(p for p in (_program(entry), _profile(entry), _recipe(entry)) if p)


def _program(entry: h5py.Group) -> str:
    """The entry's `program_name` and its `version` attribute, else its process's program
    and version."""
    node = entry.get("program_name")
    process = entry.get("process")
    try:
        if _is_text(node):
            name, version = text(node), _attribute(node, "version")
        elif isinstance(process, h5py.Group) and _is_text(process.get("program")):
            version_node = process.get("version")
            name = text(process["program"])
            version = text(version_node) if _is_text(version_node) else ""
        else:
            return ""
    except _UNREADABLE:
        return ""
    if not name:
        return ""
    return _shown(f"{name} {version}".strip(), quoted=False) + _resumed_by(entry, name, version)


def _resumed_by(entry: h5py.Group, name: str, version: str) -> str:
    """", resumed by smm-daq 1.3" where a scan's later runs (`runs/program_version`) were
    run by other versions than the one that began it, each named once in order; "" where
    none was, or the entry records none (an earlier version's) or one this cannot read. A
    row whose run was never written (-1: a resume killed as it added its row) resumed
    nothing."""
    try:
        node, numbers = entry.get("runs/program_version"), entry.get("runs/run")
        if not (isinstance(node, h5py.Dataset) and node.ndim == 1
                and h5py.check_string_dtype(node.dtype) is not None
                and isinstance(numbers, h5py.Dataset) and numbers.ndim == 1):
            return ""
        later = dict.fromkeys(text(v) for v, n in zip(node[()], numbers[()], strict=False)
                              if n > 0)
    except _UNREADABLE:
        return ""
    others = [v for v in later if v and v != version]
    return (", resumed by " + " and ".join(_shown(f"{name} {v}", quoted=False) for v in others)
            if others else "")


def _profile(entry: h5py.Group) -> str:
    """"profile 'NAME' (FILE)" of the profile text a scan stored; "" where none is."""
    node = entry.get("profile")
    if not _is_text(node):
        return ""
    try:
        rig = _toml(text(node)).get("rig")
        name = rig.get("name") if isinstance(rig, dict) else None
        file = PurePath(_attribute(node, "path")).name
    except _UNREADABLE:
        return ""
    said = f"profile {_shown(name)}" if isinstance(name, str) and name else "profile"
    return f"{said} ({_shown(file, quoted=False)})" if file else said


def _recipe(entry: h5py.Group) -> str:
    """"recipe 'TITLE' (FILE, its text stored)" where a scan (`recipe`, its file in attribute
    `path`) or a subtraction (`process/parameters/recipe`, its file in `recipe_file`) stored
    a recipe's text; "" where none did."""
    for key, file_key in (("recipe", None), ("process/parameters/recipe", "recipe_file")):
        node = entry.get(key)
        if not _is_text(node):
            continue
        try:
            stored = text(node)
            file_node = node.parent.get(file_key) if file_key else None
            file = (_attribute(node, "path") if file_key is None
                    else text(file_node) if _is_text(file_node) else "")
        except _UNREADABLE:
            return ""
        if not stored.strip():  # a scan run without a recipe stores ""
            return ""
        head = _toml(stored).get("recipe")
        title = head.get("title") if isinstance(head, dict) else None
        named = _shown(title) if isinstance(title, str) and title.strip() else "untitled"
        name = PurePath(file).name
        where = f"{_shown(name, quoted=False)}, " if name else ""
        return f"recipe {named} ({where}its text stored)"
    return ""


def _is_text(node: object) -> bool:
    """One string (not another program's number, reference, array or empty dataset stored
    under the name)."""
    return (isinstance(node, h5py.Dataset) and node.shape == ()
            and h5py.check_string_dtype(node.dtype) is not None)


def _attribute(node: h5py.Dataset, name: str) -> str:
    """The string attribute `name` of `node`; "" where it has none, or another value there."""
    value = node.attrs.get(name, "")
    return text(value) if isinstance(value, (str, bytes)) else ""


def _toml(stored: str) -> dict:
    """The stored text's TOML, {} where it is not TOML (another program's text)."""
    try:
        return tomllib.loads(stored)
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError
        return {}


def _shown(value: str, *, quoted: bool = True) -> str:
    """A name as a listing line shows it: quoted, or as Python writes it where it holds a
    quote, a line break or a control character (another program's)."""
    if value.isprintable() and "'" not in value:
        return f"'{value}'" if quoted else value
    return repr(value)


def field_summary(entry: h5py.Group) -> str:
    """What the field an induced map reads as was made from (`induced_field`): "in-field
    (a) − remanent (b) µT" where b is not zero (with a note where they lie along different
    axes), or that an
    earlier release stored the in-field scan's, read as corrected; for a χ or M entry made
    from such an entry, that its χ was worked out with the stored field. "" for others."""
    try:
        stored = stored_field(entry, str(entry.name))
        fixed = corrected_field(entry, stored)
        if fixed is not None:
            made = f" (made from '{fixed.via}')" if fixed.via else ""
            return (f"field: an earlier release stored the in-field scan's {_ut(fixed.stored)}"
                    f"{made}; read as it minus the remanent '{fixed.remanent}' "
                    f"{_ut(fixed.remanent_field)}")
        kind = text(entry.attrs.get("kind", ""))
        if kind == "induced":
            return _recorded_difference(entry)
        if kind in MODEL_KINDS:
            return _worked_with_stored(entry, stored)
    except (*_UNREADABLE, InputError):  # a field or a parameter malformed: nothing said
        pass
    return ""


def _recorded_difference(entry: h5py.Group) -> str:
    """An induced entry's "field: in-field (a) − remanent (b) µT" as it records them."""
    g = entry.get("process/parameters")
    if not isinstance(g, h5py.Group) or FIELD_FROM not in g or text(g[FIELD_FROM]) != DIFFERENCE:
        return ""
    a, b = (numeric(g, key, str(g.name), length=3, si="T")
            for key in ("in_field_applied_field", "remanent_applied_field"))
    if not np.any(b):  # the in-field scan's own field: nothing more to say
        return ""
    said = f"field: in-field {_ut(a)} − remanent {_ut(b)}"
    if np.linalg.norm(np.cross(a, b)) > 1e-3 * np.linalg.norm(a) * np.linalg.norm(b):
        said += (" (along different axes: the response to their difference, along neither "
                 "scan's field)")
    return said


def _worked_with_stored(entry: h5py.Group, stored: np.ndarray | None) -> str:
    """For a χ or M entry made from an induced map written before the difference rule,
    holding its stored field: that it was worked out with that field, not the map's."""
    value = entry.attrs.get("sources", [])
    sources = [text(v) for v in np.atleast_1d(value)] if np.size(value) else []
    source = entry.file.get(sources[0]) if len(sources) == 1 and "/" not in sources[0] else None
    if stored is None or not isinstance(source, h5py.Group):
        return ""
    fixed = corrected_field(source, stored_field(source, str(source.name)))
    if fixed is None or not np.array_equal(fixed.stored, stored):
        return ""
    return (f"worked out with the field an earlier release stored with '{sources[0]}', "
            f"{_ut(stored)}, not the {_ut(fixed.field)} it holds the response to: work it "
            "out again")


def _ut(b: np.ndarray) -> str:
    return "(" + ", ".join(f"{v / 1e-6:.3g}" for v in b) + ") µT"
