"""What a subtraction asks of its two maps, one set of checks wherever it is asked: when the
subtraction runs, and before a recipe's first step, where one or both maps are scans the
recipe has yet to take (known then by their plans' footprints).

Light on purpose (no registration, so no SciPy): a recipe is checked before anything
connects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np

from smm_daq.analysis.grids import (
    MIN_PIXELS_PER_PARAMETER,
    SHIFT_PARAMETERS,
    Gridded,
    require_same_grid,
)
from smm_daq.articles import with_article
from smm_daq.errors import InputError
from smm_daq.instruments.profile import DEFAULT_TOLERANCE_NT
from smm_daq.storage.checks import usable_map
from smm_daq.storage.h5file import read_whole
from smm_daq.storage.induced_field import difference_field
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import EntryInfo, list_entries, list_entries_in, read_map
from smm_daq.storage.scan_rest import rest_command

UM = 1e-6
UT = 1e-6
NT = 1e-9
# T: the profile's default coils.field_tolerance_nT, for a map whose entry stores no profile
# (an import, an induced map): how far the field at the sample may lie from the one asked for
FIELD_TOLERANCE = DEFAULT_TOLERANCE_NT * NT


@dataclass(frozen=True)
class FieldTolerance:
    """How far (T) the field at the sample may lie from the one asked for when map `entry`
    was scanned, and where that figure comes from, for messages to say."""

    value: float  # T
    entry: str
    # the profile it was read from, as messages name it ("the profile stored with 'a'");
    # None: none stored one (an import), and the profile's default applies
    profile: str | None = None
    # a tolerance a stored profile gives that this one stands in for, and why ("of the
    # profile stored with 'a', 1e+300, not a number in ..."), else "": the default's, or a
    # source's where the map's own was set aside
    set_aside: str = ""

    @property
    def words(self) -> str:
        """Where the figure comes from, e.g. "coils.field_tolerance_nT of the profile stored
        with 'a'"."""
        if self.profile is not None:
            instead = (f", in place of the coils.field_tolerance_nT {self.set_aside}"
                       if self.set_aside else "")
            return f"coils.field_tolerance_nT of {self.profile}{instead}"
        if self.set_aside:
            return ("the profile's default, in place of the coils.field_tolerance_nT "
                    f"{self.set_aside}")
        return (f"the profile's default, as neither '{self.entry}' nor an entry it was made "
                "from stores a coils.field_tolerance_nT")


def default_tolerance(entry: str, set_aside: str = "") -> FieldTolerance:
    """FIELD_TOLERANCE, for map `entry`, of which no profile's tolerance is known (or none
    usable: `set_aside` says why)."""
    return FieldTolerance(FIELD_TOLERANCE, entry, set_aside=set_aside)


def inherited_tolerance(entry: str, a: FieldTolerance, b: FieldTolerance) -> FieldTolerance:
    """The tolerance of map `entry` made from maps of tolerances `a` and `b` (an induced
    map), as `tolerance_among` finds it once the map is in the file: the larger of those
    read from a profile, the default where neither was."""
    read = [t for t in (a, b) if t.profile is not None]
    if not read:
        return default_tolerance(entry, a.set_aside or b.set_aside)
    largest = max(read, key=lambda t: t.value)
    return FieldTolerance(largest.value, entry, largest.profile,
                          largest.set_aside or a.set_aside or b.set_aside)


# kinds of entry whose data/Bz is a model's field or a fit's residual, not a measured map
MODEL_KINDS = ("susceptibility", "magnetization", "mmt")


def holds_measured_map(info: EntryInfo) -> bool:
    """Whether a listed entry is one `read_source` takes: a readable map whose Bz was
    measured (not a model's, not an image); for the lists a window offers."""
    return info.shape is not None and info.kind not in MODEL_KINDS  # unreadable: no shape


class Measured(Gridded, Protocol):
    """A grid, the sensor geometry that measured it and the field applied: a map, or a
    `Footprint`."""

    @property
    def height(self) -> float | None: ...
    @property
    def sensor_size(self) -> tuple[float, float] | None: ...
    @property
    def applied_field(self) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Footprint:
    """A map's grid (axes in m) and sensor geometry (height and active area, m) without its
    values: all the checks need. A scan's is known from its plan before the scan runs."""

    name: str
    x: np.ndarray
    y: np.ndarray
    height: float | None = None
    sensor_size: tuple[float, float] | None = None
    applied_field: np.ndarray | None = None  # T
    induced: bool = False  # an induced map (a subtraction's), not a scan's
    # the rig's (its coils.field_tolerance_nT); None: the default, of no profile
    field_tolerance: FieldTolerance | None = None

    @property
    def tolerance(self) -> FieldTolerance:
        """The map's field tolerance, the default where none is known."""
        return self.field_tolerance or default_tolerance(self.name)


def read_source(path: str | Path, entry: str) -> MapData:
    """Entry `entry` of a session file as a subtraction or a map command reads it; InputError
    naming the file and entry unless it holds a measured map (not a model's Bz) on a grid with
    some measured pixels."""
    kinds = {e.name: e.kind for e in list_entries(path)}
    if kinds.get(entry) in MODEL_KINDS:
        raise InputError(f"entry '{entry}' is {with_article(kinds[entry])} result: its Bz is a "
                         "model's or a fit's residual, not a measurement; expected a scanned or "
                         "imported map, or one made from such a map", source=str(path))
    m = read_map(path, entry)
    usable_map(m, f"{path}, entry '{entry}'")
    return m


def field_tolerance(path: str | Path, entry: str) -> FieldTolerance:
    """How far (T) the field at the sample may have been from the one asked for when `entry`
    was scanned (`tolerance_among`)."""
    return tolerance_among({e.name: e for e in list_entries(path)}, entry)


def tolerance_among(infos: Mapping[str, EntryInfo], entry: str) -> FieldTolerance:
    """`field_tolerance` for a file's entries as listed (`list_entries`), by name: that of
    the profile stored with the scan (coils.field_tolerance_nT, to which the fluxgate held the
    field; a scan fails beyond it). A map made from scans (a crop, levelling or background of
    one, which keeps its field) stores no profile: the largest of its sources' tolerances,
    followed through the entries' recorded sources; FIELD_TOLERANCE, the profile's default,
    where none is found (an import)."""
    lineage = list(_lineage(infos, entry))
    read = [(info.field_tolerance, info.name) for info in lineage
            if info.field_tolerance is not None]
    odd = next((i for i in lineage if i.field_tolerance_problem), None)
    set_aside = "" if odd is None else (f"of the profile stored with '{odd.name}', "
                                        f"{odd.field_tolerance_problem}")
    if not read:
        return default_tolerance(entry, set_aside)
    value, name = read[0] if read[0][1] == entry else max(read)  # its own, where it has one
    if name == entry:  # a source's set aside is no matter then
        return FieldTolerance(value, entry, f"the profile stored with '{name}'")
    return FieldTolerance(value, entry,
                          f"the profile stored with '{name}', which '{entry}' was made from",
                          set_aside)


def _lineage(infos: Mapping[str, EntryInfo], entry: str) -> Iterator[EntryInfo]:
    """`entry` and every entry it was made from, followed through the recorded sources of
    the file's entries as listed (each once; a source no longer listed is passed over)."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        info = infos.get(name)
        if name in seen or info is None:
            continue
        seen.add(name)
        yield info
        todo.extend(info.sources)


def unfinished_scan(path: str | Path, entry: str) -> str:
    """"" unless `entry` is a scan not finished (still running, or cut off): then a note
    saying that a result from it holds only the lines measured, and how to get the rest."""
    def read(f: h5py.File) -> tuple[EntryInfo | None, str]:
        info = next((e for e in list_entries_in(f, str(path)) if e.name == entry), None)
        return info, rest_command(f, path, entry) if info is not None else ""

    info, rest = read_whole(path, read)
    if info is None or info.kind != "scan" or info.status == "finished" or info.shape is None:
        return ""
    lines = f"{info.lines_done} of {info.shape[0]} lines"
    if info.status in ("running", "paused"):
        return (f"'{entry}' is a scan still being measured ({lines} so far): a result from "
                "it holds those lines only; work it out again once the scan has finished")
    return (f"'{entry}' is a scan {info.status} with {lines} measured: a result from it holds "
            f"those lines only ({rest}; then work it out again)")


def is_induced(path: str | Path, entry: str) -> bool:
    """Whether `entry` is an induced map: a subtraction's, or made from one (a crop, levelling
    or background of it), followed through the entries' recorded sources."""
    return induced_among({e.name: e for e in list_entries(path)}, entry)


def induced_among(infos: Mapping[str, EntryInfo], entry: str) -> bool:
    """`is_induced` for a file's entries as listed (`list_entries`), by name."""
    return any(info.kind == "induced" for info in _lineage(infos, entry))


def shared_sources(path: str | Path, first: str, second: str) -> list[str]:
    """The entries that `first` and `second` were both made from (either one itself
    included), in the file's order: two maps made from one measurement differ by what was
    done to them, not by noise."""
    infos = {e.name: e for e in list_entries(path)}
    one = {info.name for info in _lineage(infos, first)}
    other = {info.name for info in _lineage(infos, second)}
    return [name for name in infos if name in one and name in other]


def subtracted_scans(path: str | Path, entries: list[str]) -> list[tuple[str, str] | None]:
    """For each of `entries`, an induced map (or made from one), the two scans its one
    subtraction took (in-field, remanent), each named by the measurement it was made from
    (the entries without recorded sources it was made from: a crop of a scan is that scan);
    None where that is not one subtraction of two scans (two induced maps subtracted, an
    import), whose noise is then not known to be shared. For `field_series.noise_ratio`."""
    infos = {e.name: e for e in list_entries(path)}

    def measurement(name: str) -> str:
        lineage = list(_lineage(infos, name))
        if any(info.kind == "induced" for info in lineage):
            raise LookupError(name)  # an induced map's subtraction: not a scan
        roots = sorted(info.name for info in lineage if not info.sources)
        if not roots:
            raise LookupError(name)  # made from nothing listed: not known
        return "+".join(roots)

    found: list[tuple[str, str] | None] = []
    for entry in entries:
        pairs = [info.sources for info in _lineage(infos, entry)
                 if info.kind == "induced" and len(info.sources) == 2]
        try:
            found.append((measurement(pairs[0][0]), measurement(pairs[0][1]))
                         if len(pairs) == 1 else None)
        except LookupError:
            found.append(None)
    return found


def one_side_shared(path: str | Path, first: str, second: str
                    ) -> tuple[str, tuple[str, str], tuple[str, str]] | None:
    """Where `first` and `second` are subtractions, or made from ones, in-field − remanent
    (A − R and B − R, or A − R and A − S) that share what is on one side only: which side
    ("remanent" or "in-field") and each one's (in-field, remanent) entries; else None. What
    they share cancels from their difference, which is then that of the other side's scans
    (A − B, or S − R): the noise of one scan, not of an induced map."""
    infos = {e.name: e for e in list_entries(path)}

    def made(name: str) -> set[str]:
        return {info.name for info in _lineage(infos, name)}

    subtractions = [[info.sources for info in _lineage(infos, entry)
                     if info.kind == "induced" and len(info.sources) == 2]
                    for entry in (first, second)]
    for one in subtractions[0]:
        for other in subtractions[1]:
            in_field, remanent = (bool(made(a) & made(b)) for a, b in zip(one, other,
                                                                           strict=True))
            if in_field != remanent:
                return ("in-field" if in_field else "remanent"), one, other
    return None


def require_alike(in_field: str, in_field_induced: bool, remanent: str, remanent_induced: bool,
                  source: str | None = None) -> None:
    """InputError for an induced map subtracted from a scan or a scan from one: an induced
    map has its remanence removed already, so the difference would hold the remanence once
    more, negated or not, under the name of an induced map. Two scans (in fields that
    differ, `require_fields_differ`), or two induced maps (e.g. before and after a
    treatment), are the user's choice."""
    if in_field_induced == remanent_induced:
        return
    induced, scan = (in_field, remanent) if in_field_induced else (remanent, in_field)
    raise InputError(
        f"'{induced}' is an induced map (in-field − remanent already) and '{scan}' is not: "
        "their difference would count the remanence again; expected two scans, one in field "
        "and one in zero field (or two induced maps)", source=source)


def require_two_scans(in_field: Measured, remanent: Measured, source: str | None = None, *,
                      tolerances: tuple[FieldTolerance, FieldTolerance]) -> None:
    """InputError for one entry given as both maps, or for the two given the wrong way round:
    the "in-field" one scanned in zero field and the "remanent" one in a field (the induced
    map would come out negated). Zero field is a field within the scan's `tolerances` entry
    (`field_tolerance`) of zero: the rig cannot tell it from zero. Two scans in fields (e.g.
    +B and −B) are the user's choice; `require_fields_differ` refuses two in one field."""
    if in_field.name == remanent.name:
        raise InputError(f"the in-field and the remanent entries are both '{in_field.name}'; "
                         "expected two scans of the sample, one in field, one in zero field",
                         source=source)
    a, b = in_field.applied_field, remanent.applied_field
    ta, tb = tolerances
    if a is not None and b is not None and _zero(a, ta) and not _zero(b, tb):
        raise InputError(
            f"the in-field entry '{in_field.name}' was scanned in zero field and the remanent "
            f"entry '{remanent.name}' in {_field_ut(b)} µT; expected them the other way round "
            f"(the in-field one's {_field_ut(a)} µT is within its field tolerance, "
            f"{ta.value / NT:g} nT, of zero: {ta.words})", source=source)


def require_fields_differ(in_field: Measured, remanent: Measured, *, induced: bool,
                          source: str | None = None,
                          tolerances: tuple[FieldTolerance, FieldTolerance]) -> None:
    """InputError for two scans (`induced` false) taken in one field, zero included: their
    difference holds no induced response, yet would be stored as an induced map (and a
    susceptibility made from it). One field is what the rig cannot tell apart: each scan's
    field lies within its `tolerances` entry (`field_tolerance`) of the one asked for, so
    two fields no further apart than both tolerances together may have been the same, and a
    field within its tolerance of zero is zero field. In one field that is not zero it is a
    recipe that set the field before its remanent scan (or an in-field scan asked for a field
    too weak to induce anything the rig can set apart); in zero field, one that never set it,
    or two remanence maps (repeats, or before and after a treatment), whose difference is
    noise or a change of remanence, not a response to a field: `smm-daq noise --repeat`
    measures the noise of two repeats. Two induced maps in one field (before and after a
    treatment) are the user's choice."""
    a, b = in_field.applied_field, remanent.applied_field
    if induced or a is None or b is None:
        return
    ta, tb = tolerances
    fields = (f"'{in_field.name}' and the remanent entry '{remanent.name}' were both scanned in"
              f" {_field_ut(a)} µT" if np.array_equal(a, b) else
              f"'{in_field.name}' was scanned in {_field_ut(a)} µT and the remanent entry "
              f"'{remanent.name}' in {_field_ut(b)} µT")
    if _zero(a, ta) and _zero(b, tb):
        raise InputError(
            f"the in-field entry '{in_field.name}' and the remanent entry '{remanent.name}' "
            f"were both scanned in zero field ({_field_ut(a)} µT and {_field_ut(b)} µT, each "
            f"within its field tolerance of zero, {_tolerances(tolerances)}): their "
            "difference is a change of remanence (or noise), not an induced response, and "
            "would be stored as an induced map; expected the in-field one scanned in a field "
            "(in a recipe, a set_field step before its scan); `smm-daq noise --repeat` "
            "compares two repeated scans", source=source)
    apart = float(np.linalg.norm(np.subtract(a, b)))
    together = ta.value + tb.value
    if apart <= together:
        differ = ("" if apart == 0 else
                  f"; they differ by {apart / NT:.3g} nT, no more than their field tolerances "
                  f"together ({_tolerances(tolerances)}), so the rig may have set one field")
        raise InputError(
            f"the in-field entry {fields}{differ}: their difference holds no induced response; "
            f"expected the in-field one in a field more than {together / NT:g} nT from "
            "the remanent one's, the remanent one in zero field (in a recipe, a zero_field "
            "step before its scan); `smm-daq noise --repeat` compares two scans in one field",
            source=source)


def _zero(field: np.ndarray, tolerance: FieldTolerance) -> bool:
    """Whether an applied field is zero field to a rig that sets it within `tolerance`."""
    return float(np.linalg.norm(field)) <= tolerance.value


def _tolerances(tolerances: tuple[FieldTolerance, FieldTolerance]) -> str:
    """The two maps' field tolerances as a message gives them, with where each comes from
    (a profile stored with the scan, or the default where none is)."""
    a, b = tolerances
    each = (f"{a.value / NT:g} nT each" if a.value == b.value
            else f"{a.value / NT:g} nT and {b.value / NT:g} nT")
    if a.profile is not None and b.profile is not None and not (a.set_aside or b.set_aside):
        profiles = a.profile if a.profile == b.profile else f"{a.profile} and {b.profile}"
        return f"{each}: coils.field_tolerance_nT of {profiles}"
    if a.profile is None and b.profile is None and not (a.set_aside or b.set_aside):
        return (f"{each}: the profile's default, as neither '{a.entry}' nor '{b.entry}' nor "
                "an entry they were made from stores a coils.field_tolerance_nT")
    return f"{each}: {a.words}; {b.words}"


def require_subtractable(in_field: Measured, remanent: Measured) -> None:
    """InputError unless the two lie on the same grid and were measured with the same sensor
    geometry (where both record it), on a grid of at least 2 × 2 points (as `read_source`
    asks of a map in the file: a recipe's scans not yet taken are checked here)."""
    for m in (in_field, remanent):
        if min(m.x.size, m.y.size) < 2:
            raise InputError(f"'{m.name}' is {with_article(m.x.size)} × {m.y.size} grid; "
                             "expected at least 2 × 2 points to subtract")
    require_same_grid(in_field, remanent)
    for what, a, b in (
        ("height", in_field.height, remanent.height),
        ("sensor size", in_field.sensor_size, remanent.sensor_size),
    ):
        if a is not None and b is not None and not np.allclose(a, b, rtol=1e-6, atol=1e-12):
            raise InputError(
                f"the {what} of '{in_field.name}' ({_um(a)}) and '{remanent.name}' ({_um(b)}) "
                "differ; expected two scans taken with the same sensor geometry"
            )


def require_registrable(in_field: Measured) -> None:
    """InputError for a grid too small for the registration's fit, which would refuse it for
    too few overlapping pixels after the scans were taken. A shift by a fraction of a pixel
    (what two measured maps always give) leaves at most (nx − 1) × (ny − 1) pixels whose
    neighbours all overlap: a necessary condition, not a sufficient one."""
    least = MIN_PIXELS_PER_PARAMETER * SHIFT_PARAMETERS
    nx, ny = in_field.x.size, in_field.y.size
    if (nx - 1) * (ny - 1) < least:
        raise InputError(f"'{in_field.name}' is {with_article(nx)} × {ny} grid: a sub-pixel "
                         f"shift leaves {(nx - 1) * (ny - 1)} pixels overlapping; expected at "
                         f"least {least} to register the two scans (a larger grid, or "
                         "register = false to subtract them as they lie)")


def _field_ut(b: np.ndarray) -> str:
    return "(" + ", ".join(f"{v / UT:g}" for v in b) + ")"


def _um(value: float | tuple[float, float]) -> str:
    return " × ".join(f"{v / UM:g}" for v in np.atleast_1d(value)) + " µm"


def induced_footprint(name: str, in_field: Measured, remanent: Measured,
                      tolerance: FieldTolerance | None = None, *,
                      induced: bool = False) -> Footprint:
    """The footprint of the induced map `name`: the in-field grid, and the sensor geometry
    of the in-field map where it records one, else the remanent map's; its field tolerance
    `tolerance` (`inherited_tolerance`: None, the default); its applied field as
    `difference_field` gives it (`induced`: the two are induced maps)."""
    return Footprint(
        name, in_field.x, in_field.y,
        height=in_field.height if in_field.height is not None else remanent.height,
        sensor_size=(in_field.sensor_size if in_field.sensor_size is not None
                     else remanent.sensor_size),
        applied_field=difference_field(in_field.applied_field, remanent.applied_field,
                                       induced=induced),
        induced=True,
        field_tolerance=tolerance,
    )
