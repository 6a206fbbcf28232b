"""The applied field an induced map records: that of the difference of its two scans.

An in-field scan in field a minus a remanent scan in field b holds the sample's response to
a − b (the remanence cancels, and the induced magnetization is linear in the field), whatever
b is: zero, −a (the difference then doubles the response), or a field along another axis
(the response to the vector a − b, along neither scan's field). So the induced map records
a − b as its applied field (sample/magnetic_field, T), and both scans' fields as parameters
of its NXprocess (`field_parameters`). Two induced maps subtracted (before and after a
treatment, in one field) keep the in-field one's field: their difference is a change of the
response in that field, not a response to a − b.

Entries written before this rule hold the in-field scan's field a. Read (`corrected_field`),
such an entry whose remanent scan's field b is in the file, through its sources, reads a − b:
its Bz is that of a − b by construction, so the corrected field is exact where the stored one
is not, and every reader (χ, the field series, the field's own Bz removed, `info`, the
window) gets it without the file being rewritten. A map made from such an entry that copied
its field (a crop, a levelling, a background: one source), or subtracted from another
induced map as the in-field one, is corrected alike; a χ or M entry
made from one is not (its χ was worked out with the stored field: `info` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import h5py
import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.checks import optional_numeric
from smm_daq.storage.strings import text

# the NXprocess parameter saying how an induced entry's field was made: its presence marks
# an entry written under this rule
FIELD_FROM = "applied_field_from"
DIFFERENCE = "in-field − remanent"
IN_FIELD = "the in-field map's (two induced maps: a change of response in its field)"
NO_REMANENT_FIELD = "the in-field map's (the remanent map records no field)"
MODEL_KINDS = ("susceptibility", "magnetization", "mmt")
# what a damaged dataset or another program's value raises on reading
_UNREADABLE = (InputError, KeyError, TypeError, ValueError, OSError, RuntimeError,
               OverflowError)


def difference_field(in_field: np.ndarray | None, remanent: np.ndarray | None, *,
                     induced: bool) -> np.ndarray | None:
    """The applied field of in-field − remanent (T): a − b for two scans; the in-field one's
    for two induced maps (`induced`), or where the remanent one records none."""
    if in_field is None:
        return None
    a = np.asarray(in_field, dtype=float)
    if induced or remanent is None:
        return a
    return a - np.asarray(remanent, dtype=float)


def field_rule(remanent: np.ndarray | None, *, induced: bool) -> str:
    """How `difference_field` made the field, as the entry records it (`FIELD_FROM`)."""
    if induced:
        return IN_FIELD
    return NO_REMANENT_FIELD if remanent is None else DIFFERENCE


@dataclass(frozen=True)
class Correction:
    """The field an entry written before the difference rule reads as (`corrected_field`)."""

    field: np.ndarray  # T: the stored field minus the remanent scan's
    stored: np.ndarray  # T: what the entry holds, the in-field scan's
    remanent: str  # the remanent entry whose field was subtracted
    remanent_field: np.ndarray  # T
    via: str = ""  # the induced entry this one was made from ("": itself)


def stored_field(g: h5py.Group, where: str) -> np.ndarray | None:
    """The applied field entry group `g` stores (T), where this and earlier versions kept
    it; None where it stores none."""
    found = optional_numeric(g, "sample/magnetic_field", where, length=3, si="T")
    return (found if found is not None
            else optional_numeric(g, "instrument/field/requested", where, length=3, si="T"))


def corrected_field(g: h5py.Group, stored: np.ndarray | None) -> Correction | None:
    """The field entry group `g` (storing `stored`) reads as where it is an induced map
    written before the difference rule (or made from one, its field copied), its remanent
    scan's field read in the file; None where it reads as stored."""
    try:
        return _corrected(g, stored, set())
    except _UNREADABLE:  # a source unreadable: the entry reads as stored, its own problems
        return None      # told by its own reading


def _corrected(g: h5py.Group, stored: np.ndarray | None, seen: set[str]) -> Correction | None:
    if stored is None or g.name in seen:
        return None
    seen.add(str(g.name))
    kind = _kind(g)
    if kind == "scan" or kind in MODEL_KINDS:  # a scan is made from nothing
        return None
    sources = _sources(g)
    if kind == "induced":
        return _earlier_subtraction(g, stored, sources, seen)
    if len(sources) != 1:
        return None
    source = _entry(g.file, sources[0])
    if source is None or not np.array_equal(_field(source), stored):
        return None
    found = _corrected(source, stored, seen)
    return None if found is None else replace(found, via=found.via or sources[0])


def _earlier_subtraction(g: h5py.Group, stored: np.ndarray, sources: tuple[str, ...],
                         seen: set[str]) -> Correction | None:
    """`Correction` of induced entry `g`, written before the rule (no `FIELD_FROM`), of two
    scans (no induced map among what they were made from), holding the in-field one's field,
    the remanent one's field read and not zero; of two induced maps, holding the in-field
    one's field as stored, that one's correction; else None."""
    parameters = g.get("process/parameters")
    if isinstance(parameters, h5py.Group) and FIELD_FROM in parameters:
        return None
    if len(sources) != 2:
        return None
    groups = [_entry(g.file, name) for name in sources]
    if groups[0] is None or groups[1] is None:
        return None
    if any(_made_from_induced(g.file, name) for name in sources):
        # two induced maps: the in-field one's field, copied as then read, corrected alike
        if not np.array_equal(_field(groups[0]), stored):
            return None
        found = _corrected(groups[0], stored, seen)
        return None if found is None else replace(found, via=found.via or sources[0])
    a, b = _field(groups[0]), _field(groups[1])
    if a is None or b is None or not np.array_equal(a, stored) or not np.any(b):
        return None
    return Correction(stored - b, stored, sources[1], b)


def _made_from_induced(f: h5py.File, name: str) -> bool:
    """Whether entry `name` is an induced map or made from one, through recorded sources."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        one = todo.pop()
        g = _entry(f, one)
        if one in seen or g is None:
            continue
        seen.add(one)
        if _kind(g) == "induced":
            return True
        todo.extend(_sources(g))
    return False


def _entry(f: h5py.File, name: str) -> h5py.Group | None:
    if not name or "/" in name or name in (".", ".."):
        return None
    g = f.get(name)
    return g if isinstance(g, h5py.Group) else None


def _field(g: h5py.Group) -> np.ndarray | None:
    return stored_field(g, str(g.name))


def _kind(g: h5py.Group) -> str:
    return text(g.attrs.get("kind", ""))


def _sources(g: h5py.Group) -> tuple[str, ...]:
    value = g.attrs.get("sources", [])
    return tuple(text(v) for v in np.atleast_1d(value)) if np.size(value) else ()
