"""Recipes: TOML files of steps run in order on one session file.

    [recipe]
    title = "Remanent and induced maps"       # optional
    description = "what it is for"            # optional
    profile = "../simulator.toml"             # optional: the profile it is written for,
                                              # relative to the recipe's folder
    [scan_defaults]                           # optional: keys every scan step inherits
    center_um = [12500.0, 12500.0]
    size_um = [1000.0, 1000.0]
    step_um = 20.0
    [[step]]
    kind = "zero_field"
    [[step]]
    kind = "scan"
    name = "remanent"                         # the entry; plus any scan key below
    [[step]]
    kind = "subtract"
    in_field = "in_field_y"
    remanent = "remanent"
    name = "induced_y"

Step kinds and their keys:
    scan        name; title, center_um (x, y), size_um (w, h), step_um (s or [sx, sy]),
                field_uT (bx, by, bz; default: the field of the last set_field / zero_field),
                height_um (default: the profile's sensor height), raster, settle_tau, dwell_tau,
                fly (true: fly the lines), pixel_time_s (fly, default 0.05), oversample
                (fly, default 8), line_baselines (fly, default false), fly_trigger (fly:
                the buffer started by the stage's trigger, default false)
    set_field   field_uT: set the field now; later scans without field_uT use it (one in
                [scan_defaults] is every scan's own: a set_field before a scan inheriting
                another is refused, `fields_overridden`)
    zero_field  (no keys): the same with zero field (refused the same way before a scan
                inheriting a field other than zero from [scan_defaults])
    wait        seconds (on the rig's clock), at most MAX_WAIT_S; an abort meanwhile is acted
                on within STOP_SLICE_S (`wait_in_slices`); in the field the rig has then: a
                scan before it ended with the field ramped down (`wait_note`)
    prompt      message: the operator does something outside the microscope and confirms
    subtract    in_field, remanent, name; register (default true): in-field − remanent;
                apply_insignificant_shift (default false): apply a registration's shift not
                significantly different from zero (otherwise a zero shift); continued, also
                where the recipe's subtractions written before did (`applies_insignificant_shift`);
                its significance decided by the shift's SDs alone where theirs was
                (`decides_by_sds_alone`)

The whole recipe is checked before the first step runs: every plan against the profile (a
fly plan also against the lock-in and stage the profile names), every entry name against the
file, each subtraction's two entries (in the file or made by earlier steps) against each
other's grid, and its estimated duration (scans, waits and field ramps), at most the plan
limit MAX_DURATION_S (continuing, the duration of the work left). A recipe holds only data:
nothing in it is executed.

A recipe that was cut off (killed, stopped, a scan aborted) is continued on its session file
with `continuing` (`smm-daq run --continue`): entries the recipe makes that the file holds
must be its own (`smm_daq.acquisition.recipe_continue`); then a finished scan or an existing
subtraction is skipped, a cut-off scan resumed, the rest run. Field steps always run, so each
scan is measured in the field the recipe gives it; a wait or prompt step is skipped when the
recipe had passed it (a later step's entry is in the file), and runs when the cut came before
(during the wait, at the prompt, or before the next scan began): a wait in full, from when the
field steps before it have set the field again (the cut made the rig safe, ending the field
it waited in; how long it had waited is kept nowhere). With nothing left, nothing runs.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from smm_daq.acquisition.duration import field_ramp_s, safe_field, safe_ramp_s
from smm_daq.acquisition.fly.checks import check_controller
from smm_daq.acquisition.fly.settings import MAX_OVERSAMPLE, FlySettings
from smm_daq.acquisition.plan import (
    DEFAULT_SETTLE_TAU,
    MAX_DURATION_S,
    MAX_DWELL_TAU,
    MAX_SETTLE_TAU,
    RASTERS,
    ScanPlan,
    check_field,
    format_seconds,
    size_note,
)
from smm_daq.acquisition.recipe_continue import (
    DONE,
    NEW,
    RESUME,
    applied_by_earlier_rule,
    decided_by_sds_alone,
    made_by_recipe,
    own_cut_off,
    scan_state,
    subtract_state,
)
from smm_daq.analysis.registration import ShiftNotDetermined
from smm_daq.analysis.subtract_inputs import (
    FieldTolerance,
    Footprint,
    Measured,
    default_tolerance,
    field_tolerance,
    induced_footprint,
    inherited_tolerance,
    is_induced,
    read_source,
    require_alike,
    require_fields_differ,
    require_registrable,
    require_subtractable,
    require_two_scans,
    tolerance_among,
)
from smm_daq.clock import Clock
from smm_daq.errors import InputError
from smm_daq.finite import finite_number
from smm_daq.instruments.drop_wait import once_dropped
from smm_daq.instruments.interfaces import STOP_SLICE_S
from smm_daq.instruments.profile import HEIGHT_NOT_ZERO, Profile, load_toml
from smm_daq.shell_words import command_line
from smm_daq.storage.field_tolerance import tolerance_in_profile
from smm_daq.storage.names import shown_name
from smm_daq.storage.nexus import (
    EntryInfo,
    check_entry_name,
    entry_held_as,
    list_entries,
    names_held_by_links,
)
from smm_daq.text_files import quoted, read_text_file, shown

UM = 1e-6
UT = 1e-6
MAX_WAIT_S = 2 * 24 * 3600.0  # a wait step: e.g. overnight viscous decay, never a typo's 1e300
# a continued step whose entry the file does not have (or has another's) makes a new
# one: today's rule applies
NOT_HELD = ("; the file has no entry of this name that this recipe began, to continue, so the "
            "step makes a new one: run the steps left as a new recipe, naming it so")
SCAN_KEYS = ("name", "title", "center_um", "size_um", "step_um", "field_uT", "height_um",
             "raster", "settle_tau", "dwell_tau", "fly", "pixel_time_s", "oversample",
             "line_baselines", "fly_trigger")
FLY_KEYS = ("pixel_time_s", "oversample", "line_baselines", "fly_trigger")  # of a fly scan
UNREAD_FLY_KEY = ("; expected it only where a scan flies its lines: fly = true in the step (or "
                  "[scan_defaults]), or no such key (a step without it measures point by point, "
                  "and leaves it unread)")
KIND_NAMES = ("scan", "set_field", "zero_field", "wait", "prompt", "subtract")
KINDS = ", ".join(repr(k) for k in KIND_NAMES)  # as messages say them


@dataclass(frozen=True)
class ScanStep:
    kind: ClassVar[str] = "scan"
    keys: dict[str, Any]  # scan keys as written (defaults merged), checked when parsed

    def plan(self, current_field: tuple[float, float, float], profile: Profile) -> ScanPlan:
        """The plan, with the session's field when the step gives none."""
        k = self.keys
        b = tuple(v * UT for v in k["field_uT"]) if "field_uT" in k else current_field
        step = k["step_um"]
        return ScanPlan.from_center(
            k["name"],
            (k["center_um"][0] * UM, k["center_um"][1] * UM),
            (k["size_um"][0] * UM, k["size_um"][1] * UM),
            step * UM if np.isscalar(step) else (step[0] * UM, step[1] * UM),
            field=b,
            height=k["height_um"] * UM if "height_um" in k else profile.sensor.height,
            raster=k.get("raster", "serpentine"),
            settle_tau=k.get("settle_tau", DEFAULT_SETTLE_TAU),
            dwell_tau=k.get("dwell_tau", 0.0),
            title=k.get("title", ""),
            fly=FlySettings(pixel_time=k.get("pixel_time_s", 0.05),
                            oversample=k.get("oversample", 8),
                            baselines=k.get("line_baselines", False),
                            trigger=k.get("fly_trigger", False)) if k.get("fly") else None,
        )

    def size_note(self, plan: ScanPlan) -> str:
        """`size_note` of its size_um for its `plan`: "" when the grid spans it."""
        w, h = self.keys["size_um"]
        return size_note((w * UM, h * UM), (plan.step_x, plan.step_y), (plan.nx, plan.ny))


@dataclass(frozen=True)
class SetFieldStep:
    kind: ClassVar[str] = "set_field"
    field: tuple[float, float, float]  # T


@dataclass(frozen=True)
class ZeroFieldStep:
    kind: ClassVar[str] = "zero_field"


@dataclass(frozen=True)
class WaitStep:
    kind: ClassVar[str] = "wait"
    seconds: float


@dataclass(frozen=True)
class PromptStep:
    kind: ClassVar[str] = "prompt"
    message: str


@dataclass(frozen=True)
class SubtractStep:
    kind: ClassVar[str] = "subtract"
    in_field: str
    remanent: str
    name: str
    register: bool = True
    apply_insignificant_shift: bool = False


Step = ScanStep | SetFieldStep | ZeroFieldStep | WaitStep | PromptStep | SubtractStep


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its text (stored with every scan), title and steps."""

    source: str
    text: str
    title: str
    steps: tuple[Step, ...]
    plans: tuple[ScanPlan | None, ...] = field(default=())  # per step, after `check`
    duration_s: float = 0.0  # estimated, after `check`: scans, waits and field ramps
    # per step, after `check`: NEW, DONE or RESUME for a step writing an entry, else ""
    states: tuple[str, ...] = field(default=())
    duration_left_s: float = 0.0  # estimated, after `check`: of the steps left to run
    # after `check`: the step from which every step runs (waits and prompts before it are
    # skipped: only when continuing); None when a continued recipe has nothing left to run
    start: int | None = 0
    # the fly keys it would leave unread, where and why (`unread_fly_keys`): refused by
    # `check` unless the recipe is continued on a file holding its own entries
    unread: tuple[str, ...] = ()
    profile: str = ""  # [recipe] profile as written (relative to the recipe's folder), or ""
    # after `check`, continuing: its subtractions in the file that applied a shift not
    # significantly different from zero, as the release it was begun with did: its
    # subtractions left to run apply one too (`applies_as_begun`)
    shift_as_begun: tuple[str, ...] = ()
    # after `check`, continuing: its subtractions in the file whose shift's significance was
    # decided by its SDs alone, as the release it was begun with did (no correlation
    # recorded): its subtractions left to run decide so too (`decides_by_sds_alone`)
    sds_as_begun: tuple[str, ...] = ()
    # set_field and zero_field steps whose field a scan after them does not take,
    # [scan_defaults] giving it another (`fields_overridden`): refused by `check` unless
    # continued as begun
    overridden: tuple[str, ...] = ()
    file: str = ""  # the file its text was read from, as given; "" for text given alone

    def entries(self) -> tuple[str, ...]:
        """The names of the entries its scan and subtract steps write."""
        return tuple(s.keys["name"] if isinstance(s, ScanStep) else s.name
                     for s in self.steps if isinstance(s, ScanStep | SubtractStep))

    def wait_note(self, i: int) -> str:
        """For a wait step that waits in zero field although a set_field step set another
        before it: a scan between them ended with the field ramped down, as every scan does
        (a rig left safe), and nothing set it again. What to write instead; "" otherwise."""
        if not isinstance(self.steps[i], WaitStep):
            return ""
        scan = None
        for j in range(i - 1, -1, -1):
            earlier = self.steps[j]
            if isinstance(earlier, ScanStep) and scan is None:
                scan = j
            elif isinstance(earlier, ZeroFieldStep):
                return ""
            elif isinstance(earlier, SetFieldStep):
                if scan is None or not any(earlier.field):
                    return ""
                return (f"waits in zero field, not in the {_ut(earlier.field)} µT that step "
                        f"{j + 1} set: step {scan + 1}, a scan, ended with the field ramped "
                        "down, as every scan does; to wait in that field, set it again in a "
                        "set_field step just before the wait (a zero_field step there says "
                        "that zero field is meant; a scan after it that takes its field from "
                        "[scan_defaults] then needs a field_uT of its own)")
        return ""

    def describe(self, i: int) -> str:
        """One line saying what step `i` does."""
        step = self.steps[i]
        if isinstance(step, ScanStep):
            plan = self.plans[i] if self.plans else None
            extra = (f" {plan.nx} × {plan.ny} points at {_ut(plan.field)} µT" if plan else "")
            note = step.size_note(plan) if plan else ""
            return f"scan '{step.keys['name']}'{extra}" + (f"; {note}" if note else "")
        if isinstance(step, SetFieldStep):
            return f"set field {_ut(step.field)} µT"
        if isinstance(step, ZeroFieldStep):
            return "zero field"
        if isinstance(step, WaitStep):
            return f"wait {step.seconds:g} s"
        if isinstance(step, PromptStep):
            return f"prompt: {step.message}"
        return f"subtract '{step.in_field}' − '{step.remanent}' -> '{step.name}'"


def _ut(b: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v / UT:g}" for v in b) + ")"


class _Table:
    """Typed access to one TOML table, each error naming the file, the place and the key."""

    def __init__(self, source: str, where: str, table: Mapping[str, Any]) -> None:
        self.source = source
        self.where = where
        self.table = table

    def fail(self, key: str, expected: str) -> InputError:
        return InputError(f"{self.where}: '{key}' is {quoted(self.table.get(key))}; expected "
                          f"{expected}", source=self.source)

    def only(self, allowed: tuple[str, ...]) -> None:
        for key in self.table:
            if key not in allowed:
                raise InputError(
                    f"{self.where}: unknown key {shown(key)}; expected one of "
                    + ", ".join(repr(a) for a in allowed),
                    source=self.source,
                )

    def require(self, key: str, expected: str = "it: the step cannot run without it") -> Any:
        if key not in self.table:
            raise InputError(f"{self.where}: key '{key}' is missing; expected {expected}",
                             source=self.source)
        return self.table[key]

    def string(self, key: str) -> str:
        value = self.require(key)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string")
        return value

    def number(self, key: str, *, lo: float | None = None, hi: float | None = None) -> float:
        value = self.require(key)
        expected = (f"a number from {lo:g} to {hi:g}" if lo is not None and hi is not None
                    else f"a number >= {lo:g}" if lo is not None
                    else f"a number <= {hi:g}" if hi is not None else "a finite number")
        if not finite_number(value):  # a word or NaN: told the range too, where there is one
            raise self.fail(key, expected)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(key, expected)
        return float(value)

    def numbers(self, key: str, n: int, *, positive: bool = False, lo: float | None = None
                ) -> tuple[float, ...]:
        value = self.require(key)
        ok = (
            isinstance(value, list)
            and len(value) == n
            and all(finite_number(v) for v in value)
        )
        if ok and positive:
            ok = all(v > 0 for v in value)
        if ok and lo is not None:
            ok = all(v >= lo for v in value)
        if not ok:
            what = "numbers > 0" if positive else (f"numbers >= {lo:g}" if lo is not None
                                                  else "numbers")
            raise self.fail(key, f"a list of {n} {what}")
        return tuple(float(v) for v in value)


def _scan_keys(t: _Table) -> dict[str, Any]:
    """Check the scan keys present in `t` (defaults or a step) and return them typed."""
    out: dict[str, Any] = {}
    tab = t.table
    if "name" in tab:
        out["name"] = t.string("name")
    if "title" in tab:
        value = tab["title"]
        if not isinstance(value, str):
            raise t.fail("title", "a string")
        out["title"] = value
    if "center_um" in tab:
        out["center_um"] = t.numbers("center_um", 2)
    if "size_um" in tab:
        out["size_um"] = t.numbers("size_um", 2, lo=0.0)
    if "step_um" in tab:
        if isinstance(tab["step_um"], list):
            out["step_um"] = t.numbers("step_um", 2, positive=True)
        else:
            step = t.number("step_um")
            if step <= 0:
                raise t.fail("step_um", "a step > 0 µm, or [sx, sy]")
            out["step_um"] = step
    if "field_uT" in tab:
        out["field_uT"] = t.numbers("field_uT", 3)
    if "height_um" in tab:
        height = t.number("height_um")
        if height <= 0:
            raise t.fail("height_um", f"a height above the sample top, > 0 µm ({HEIGHT_NOT_ZERO})")
        out["height_um"] = height
    if "raster" in tab:
        if tab["raster"] not in RASTERS:
            raise t.fail("raster", "one of " + ", ".join(repr(r) for r in RASTERS))
        out["raster"] = tab["raster"]
    for key, most in (("settle_tau", MAX_SETTLE_TAU), ("dwell_tau", MAX_DWELL_TAU)):
        if key in tab:
            out[key] = t.number(key, lo=0.0, hi=most)
    for key in ("fly", "line_baselines", "fly_trigger"):
        if key in tab:
            if not isinstance(tab[key], bool):
                raise t.fail(key, "true or false")
            out[key] = tab[key]
    if "pixel_time_s" in tab:
        out["pixel_time_s"] = t.number("pixel_time_s", lo=0.0)
        if out["pixel_time_s"] <= 0:
            raise t.fail("pixel_time_s", "a time > 0 s")
    if "oversample" in tab:
        n = tab["oversample"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_OVERSAMPLE:
            raise t.fail("oversample", "a whole number of samples per pixel from 1 to "
                         f"{MAX_OVERSAMPLE:,}")
        out["oversample"] = n
    return out


def _parse_step(source: str, i: int, raw: object, defaults: dict[str, Any]) -> Step:
    where = f"step {i + 1}"
    if not isinstance(raw, dict):
        raise InputError(f"{where} is not a table; expected [[step]] with a 'kind'", source=source)
    t = _Table(source, where, raw)
    t.require("kind", f"a kind, one of {KINDS}")
    kind = t.string("kind")
    if kind in KIND_NAMES:  # (another is refused below, quoted as any value is)
        t.where = f"step {i + 1} ({kind})"
    if kind == "scan":
        t.only(("kind", *SCAN_KEYS))
        keys = {**defaults, **_scan_keys(t)}
        for key in ("name", "center_um", "size_um", "step_um"):
            if key not in keys:
                where = "in the step" if key == "name" else "in the step or [scan_defaults]"
                raise InputError(f"{t.where}: key '{key}' is missing (and not in "
                                 f"[scan_defaults]); expected it {where}", source=source)
        return ScanStep(keys)
    if kind == "set_field":
        t.only(("kind", "field_uT"))
        return SetFieldStep(tuple(v * UT for v in t.numbers("field_uT", 3)))  # type: ignore[arg-type]
    if kind == "zero_field":
        t.only(("kind",))
        return ZeroFieldStep()
    if kind == "wait":
        t.only(("kind", "seconds"))
        return WaitStep(t.number("seconds", lo=0.0, hi=MAX_WAIT_S))
    if kind == "prompt":
        t.only(("kind", "message"))
        return PromptStep(t.string("message"))
    if kind == "subtract":
        t.only(("kind", "in_field", "remanent", "name", "register", "apply_insignificant_shift"))
        flags = {key: raw.get(key, default) for key, default in
                 (("register", True), ("apply_insignificant_shift", False))}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise t.fail(key, "true or false")
        return SubtractStep(t.string("in_field"), t.string("remanent"), t.string("name"),
                            flags["register"], flags["apply_insignificant_shift"])
    raise t.fail("kind", f"one of {KINDS}")


TEXT_GIVEN = "the recipe text given"  # what messages name a recipe read from no file


def parse_recipe(text: str, file: str | None = None) -> Recipe:
    """Parse recipe text (syntax and keys only; `check` validates it against a rig). `file`:
    the file it was read from, which its messages name and its scans record; None for text
    given alone (a program's, a test's), which its messages call `TEXT_GIVEN` (a file named
    'recipe' was neither given nor recorded)."""
    source = TEXT_GIVEN if file is None else file
    data = load_toml(text, source)
    top = _Table(source, "recipe file", data)
    top.only(("recipe", "scan_defaults", "step"))
    title = profile = ""
    if "recipe" in data:
        head = data["recipe"]
        if not isinstance(head, dict):
            raise top.fail("recipe", "a table")
        ht = _Table(source, "[recipe]", head)
        ht.only(("title", "description", "profile"))
        for key in ("title", "description"):
            if key in head and not isinstance(head[key], str):
                raise ht.fail(key, "a string")
        title = head.get("title", "")
        if "profile" in head:
            profile = head["profile"]
            # a control character (C0 or C1: U+0085 is a line break to Python) or a line or
            # paragraph separator names no file anyone typed, and would split the messages
            # that quote the path
            if (not isinstance(profile, str) or not profile.strip()
                    or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in profile)):
                raise ht.fail("profile", "the path of an instrument profile (a TOML file), "
                                         "relative to the recipe's folder, with no control "
                                         "character or line break")
    defaults: dict[str, Any] = {}
    if "scan_defaults" in data:
        raw = data["scan_defaults"]
        if not isinstance(raw, dict):
            raise top.fail("scan_defaults", "a table")
        dt = _Table(source, "[scan_defaults]", raw)
        dt.only(tuple(k for k in SCAN_KEYS if k != "name"))
        defaults = _scan_keys(dt)
    steps_raw = data.get("step")
    if isinstance(steps_raw, dict):  # [step] with one bracket: a table, not a list of them
        raise InputError("'step' is one table ([step]); expected [[step]], with two brackets, "
                         "heading each step", source=source)
    if not isinstance(steps_raw, list) or not steps_raw:
        raise InputError("no steps; expected one or more [[step]] tables", source=source)
    steps = tuple(_parse_step(source, i, raw, defaults) for i, raw in enumerate(steps_raw))
    return Recipe(source=source, text=text, title=title, steps=steps, profile=profile,
                  unread=unread_fly_keys(steps_raw, steps, defaults),
                  overridden=fields_overridden(steps_raw, steps, defaults), file=file or "")


def fields_overridden(steps_raw: list[Any], steps: tuple[Step, ...],
                      defaults: Mapping[str, Any]) -> tuple[str, ...]:
    """Where a set_field or zero_field step's field is not the field of a scan after it that
    gives none of its own: [scan_defaults] field_uT is every scan step's own key, so such a
    scan is taken in that field, ramped to from the one the step set (its wait, if any, held):
    after a zero_field step, an in-field scan where zero field was written."""
    if "field_uT" not in defaults:
        return ()
    inherited = tuple(v * UT for v in defaults["field_uT"])
    found, setting = [], None
    for i, step in enumerate(steps):
        if isinstance(step, SetFieldStep | ZeroFieldStep):
            setting = i
        elif isinstance(step, ScanStep) and setting is not None and "field_uT" not in steps_raw[i]:
            problem = _field_overridden(setting, steps[setting], i, step, inherited)
            if problem:
                found.append(problem)
    return tuple(found)


def _field_overridden(j: int, setter: Step, i: int, scan: ScanStep,
                      inherited: tuple[float, ...]) -> str:
    """The refusal of field step `j` whose field scan step `i` would not be taken in, the
    field_uT of [scan_defaults] (`inherited`) being its own; "" where the two agree."""
    field = setter.field if isinstance(setter, SetFieldStep) else (0.0, 0.0, 0.0)
    if field == inherited:
        return ""
    said = (f"sets {_ut(field)} µT" if isinstance(setter, SetFieldStep) else "sets zero field")
    instead = ("field_uT in the scan steps that need a field of their own, not in "
               "[scan_defaults], or no set_field step before a scan that inherits it"
               if isinstance(setter, SetFieldStep) else
               "field_uT = [0, 0, 0] in the scan steps to be taken in zero field, or "
               "field_uT in the scan steps that need a field, not in [scan_defaults]")
    return (f"step {j + 1} ({setter.kind}) {said} for the scans after it that give no "
            f"field_uT, but step {i + 1} (scan {shown_name(scan.keys['name'])}) would be taken "
            f"in {_ut(inherited)} µT, the field_uT of [scan_defaults], which every scan step "
            f"inherits; expected {instead}")


def unread_fly_keys(steps_raw: list[Any], steps: tuple[Step, ...],
                    defaults: Mapping[str, Any]) -> tuple[str, ...]:
    """The fly keys the recipe would leave unread, where and why: a scan step's own where it
    does not fly, and [scan_defaults]' where none of its scan steps flies (there they serve
    the steps that fly): a step measuring point by point reads none. `check` refuses them, as
    `smm-daq scan` refuses a fly option without --fly."""
    unread = []
    for i, step in enumerate(steps):
        if isinstance(step, ScanStep) and not step.keys.get("fly"):
            key = next((k for k in FLY_KEYS if k in steps_raw[i]), None)
            if key is not None:
                unread.append(f"step {i + 1} (scan): key '{key}' is given, but the step does "
                              "not fly")
    flown = any(isinstance(step, ScanStep) and step.keys.get("fly") for step in steps)
    key = next((k for k in FLY_KEYS if k in defaults), None)
    if key is not None and not flown:
        unread.append(f"[scan_defaults]: key '{key}' is given, but no scan step of the recipe "
                      "flies")
    return tuple(unread)


def load_recipe(path: str | Path) -> Recipe:
    p = Path(path)
    return parse_recipe(read_text_file(p, "recipe", "a TOML recipe"), str(p))


def check_recipe(recipe: Recipe, profile: Profile, out: str | Path, *, can_prompt: bool,
                 continuing: bool = False) -> Recipe:
    """Validate every step against the profile and the session file; nothing runs.

    Returns the recipe with each scan step's plan and what each step has left (`states`).
    `can_prompt`: whether a prompt step can be answered (an interactive terminal, or --yes).
    `continuing`: entries the recipe makes may be in the file already when they are its own
    (see the module), else every entry it makes must be new.
    """
    infos = {e.name: e for e in list_entries(out)} if Path(out).exists() else {}
    existing = set(infos)
    held = names_held_by_links(out) if Path(out).exists() else {}  # never written over
    # names the file has, entries and what this recipe's killed writers left: continued
    # whatever today's rule for new names says (an earlier release's recipe)
    kept = existing | (own_cut_off(out, recipe.text, _entries_made(recipe))
                       if continuing and Path(out).exists() else set())
    _refuse_unread_fly_keys(recipe, out, infos, continuing)
    if recipe.overridden and not (continuing and _begun(recipe, out, infos)):
        raise InputError(recipe.overridden[0], source=recipe.source)
    states: list[str] = []
    made: dict[str, Footprint] = {}  # entries earlier steps will write, by name
    current: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the field a scan takes by default
    # the field the coils are at as each step begins: the safe state's at the start and after
    # a scan (which makes the rig safe as it ends) or a zero_field step, else set_field's
    at = safe_field(profile)
    # and as the steps left run when continued: a finished scan is skipped, so nothing
    # makes the rig safe after it (the field its set_field step set again stays on)
    at_left = at
    plans: list[ScanPlan | None] = []
    costs: list[float] = []  # each step's estimated seconds
    costs_left: list[float] = []  # the same, run as continued
    left: list[float] = []  # the part of each step left to run (of a scan, of its lines)
    for i, step in enumerate(recipe.steps):
        where = _where(i, step)
        plan = None
        if isinstance(step, ScanStep | SubtractStep):
            name = step.keys["name"] if isinstance(step, ScanStep) else step.name
            if not (continuing and name in kept):  # (an earlier release's name is kept)
                check_entry_name(name, source=f"{recipe.source}, {where}",
                                 hint=NOT_HELD if continuing else "")
            if name in held:
                raise InputError(f"{where}: in {out}, {held[name]}", source=recipe.source)
            if name in made:
                raise InputError(f"{where}: entry '{name}' already exists earlier in the "
                                 "recipe; expected a new name", source=recipe.source)
            if name in existing and not continuing:
                sources = ((step.in_field, step.remanent) if isinstance(step, SubtractStep)
                           else None)
                hint = ("or `smm-daq run --continue` to continue this recipe, which made it"
                        if made_by_recipe(recipe.text, infos[name], out, sources) else
                        "or --out another file (this recipe did not make it, so --continue "
                        "would refuse it too)")
                raise InputError(f"{where}: entry '{name}' already exists in {out} and is "
                                 f"{entry_held_as(out, name)}; expected a new name, {hint}",
                                 source=recipe.source)
        state, cost, cost_left, part = "", 0.0, 0.0, 1.0
        try:
            if isinstance(step, ScanStep):
                plan = step.plan(current, profile)
                plan.validate(profile)
                state, part = (scan_state(recipe.text, plan, infos[plan.name], out, profile)
                               if plan.name in infos else (NEW, 1.0))
                cost = plan.estimate_duration(profile, start=tuple(at))
                cost_left = plan.estimate_duration(profile, start=tuple(at_left))
                at = safe_field(profile)
                if state != DONE:
                    at_left = at
                # a scan in the file already (continued) keeps the profile it stored
                rig = (tolerance_among(infos, plan.name) if plan.name in infos
                       else _scan_tolerance(plan.name, profile))
                made[plan.name] = Footprint(plan.name, plan.x, plan.y, plan.height,
                                            profile.sensor.active_area, np.array(plan.field),
                                            field_tolerance=rig)
            elif isinstance(step, SetFieldStep):
                check_field(step.field, profile, label="field_uT")
                cost, cost_left = (field_ramp_s(profile, step.field, a) for a in (at, at_left))
                current, at = step.field, np.array(step.field)
                at_left = at
            elif isinstance(step, ZeroFieldStep):
                cost, cost_left = (safe_ramp_s(profile, a) for a in (at, at_left))
                current, at = (0.0, 0.0, 0.0), safe_field(profile)
                at_left = at
            elif isinstance(step, WaitStep):
                cost = cost_left = step.seconds
            elif isinstance(step, SubtractStep):
                made[step.name] = _subtract_footprint(step, made, existing - {step.name}, out)
                state = (subtract_state(step.in_field, step.remanent, infos[step.name], out)
                         if step.name in infos else NEW)
                part = 0.0 if state == DONE else 1.0
        except InputError as exc:
            raise InputError(f"{where}: {exc}", source=recipe.source) from None
        plans.append(plan)
        states.append(state)
        costs.append(cost)
        costs_left.append(cost_left)
        left.append(part)
    first = (next((i for i, s in enumerate(states) if s in (NEW, RESUME)), len(states))
             if continuing else 0)
    duration = sum(costs)
    duration_left = sum(c * p for i, (c, p) in enumerate(zip(costs_left, left, strict=True))
                        if not _passed(recipe.steps, states, first, i))
    # a prompt skipped when continuing needs nobody, nor one with nothing left to run (none
    # runs: `start` None), as after the recipe's last entry
    for i, step in enumerate(recipe.steps):
        if isinstance(step, PromptStep) and not can_prompt and first < len(states) \
                and not _passed(recipe.steps, states, first, i):
            raise InputError(f"{_where(i, step)}: needs an operator, but input is not a "
                             "terminal; run it interactively or pass --yes to continue past "
                             "prompts", source=recipe.source)
    # continuing, the limit is on the work left: what was done is not run again
    if continuing and not duration_left <= MAX_DURATION_S:
        raise InputError(
            f"the steps left to run are estimated to take {format_seconds(duration_left)} "
            f"(their scans, waits and field ramps; the whole recipe {format_seconds(duration)})"
            f"; expected at most {format_seconds(MAX_DURATION_S)}: split them into several "
            "recipes", source=recipe.source)
    if not continuing and not duration <= MAX_DURATION_S:
        raise InputError(
            f"the recipe is estimated to take {format_seconds(duration)} (its scans, waits and "
            f"field ramps); expected at most {format_seconds(MAX_DURATION_S)}: split it into "
            "several recipes", source=recipe.source)
    done = tuple(s.name for s, state in zip(recipe.steps, states, strict=True)
                 if isinstance(s, SubtractStep) and state == DONE)
    return Recipe(recipe.source, recipe.text, recipe.title, recipe.steps, tuple(plans),
                  duration, tuple(states), duration_left,
                  first if first < len(states) else None, recipe.unread, recipe.profile,
                  applied_by_earlier_rule(out, done) if continuing else (),
                  decided_by_sds_alone(out, done) if continuing else (), recipe.overridden,
                  recipe.file)


def applies_insignificant_shift(checked: Recipe, i: int) -> bool:
    """Whether subtract step `i` of a checked recipe applies a registration's shift not
    significantly different from zero: its key asks, or the recipe, continued, wrote
    subtractions that did under the rule of the release it was begun with (which applied
    every shift): one recipe's subtractions are made alike (`applies_as_begun`)."""
    step = checked.steps[i]
    return isinstance(step, SubtractStep) and (
        step.apply_insignificant_shift or bool(applies_as_begun(checked, i)))


def applies_as_begun(checked: Recipe, i: int) -> tuple[str, ...]:
    """The recipe's subtractions in the file, written by the release it was begun with
    (which applied every shift found), as which subtract step `i` of a checked recipe,
    continued, applies a shift not significantly different from zero. () where it does not,
    or where its own key forces the shift: that is the user's force, which refuses a shift
    not determined; applied only as those were, one not determined is left out as by default
    (`Session.subtract`'s `shift_as_begun`)."""
    step = checked.steps[i]
    if not isinstance(step, SubtractStep) or not step.register or step.apply_insignificant_shift:
        return ()
    return checked.shift_as_begun


def decides_by_sds_alone(checked: Recipe, i: int) -> bool:
    """Whether subtract step `i` of a checked recipe decides whether its shift is significant
    by the shift's SDs alone, not counting the correlation of its x and y errors: the recipe,
    continued, wrote subtractions that did, under the rule of the release it was begun with.
    Not one that applies its shift whatever its significance (`applies_insignificant_shift`):
    nothing is decided, and its correlation is recorded as estimated."""
    step = checked.steps[i]
    return (isinstance(step, SubtractStep) and step.register and bool(checked.sds_as_begun)
            and not applies_insignificant_shift(checked, i))


def _sds_as_begun_note(checked: Recipe) -> str:
    """Said of a subtract step deciding its shift's significance by its SDs alone."""
    names = ", ".join(repr(n) for n in checked.sds_as_begun)
    return (f": decides whether its shift is significant by the shift's SDs alone, as this "
            f"recipe's {names} in the file did (written by a release that did not count the "
            "correlation of its x and y errors), so that the recipe's subtractions are made "
            "alike")


def _as_begun_note(checked: Recipe, i: int) -> str:
    """Said of a subtract step applying an insignificant shift only as the recipe was begun."""
    names = ", ".join(repr(n) for n in checked.shift_as_begun)
    return (f": applies a shift not significantly different from zero, as this recipe's "
            f"{names} in the file did (written by a release that applied every shift found; "
            "today one is left out unless apply_insignificant_shift = true), so that the "
            "recipe's subtractions are made alike")


def _refuse_unread_fly_keys(recipe: Recipe, out: str | Path, infos: Mapping[str, EntryInfo],
                            continuing: bool) -> None:
    """InputError for the first fly key the recipe would leave unread (`Recipe.unread`),
    unless it is continued on a file holding its own entries: begun before such keys were
    refused, it is continued as begun (the key unread, as it was for the scans done), its
    stored text unchanged."""
    if not recipe.unread:
        return
    begun = _begun(recipe, out, infos)
    if continuing and begun:
        return
    hint = (f"; or, to continue this recipe as begun in {out} (its entries there store its "
            "text as it is), `smm-daq run --continue`" if begun else "")
    raise InputError(recipe.unread[0] + UNREAD_FLY_KEY + hint, source=recipe.source)


def _begun(recipe: Recipe, out: str | Path, infos: Mapping[str, EntryInfo]) -> bool:
    """Whether `out` holds entries this recipe made (or began and was cut off in)."""
    made = _entries_made(recipe)
    return any(name in infos and made_by_recipe(recipe.text, infos[name], out, sources)
               for name, sources in made.items()) or (
        Path(out).exists() and bool(own_cut_off(out, recipe.text, made)))


def _entries_made(recipe: Recipe) -> dict[str, tuple[str, str] | None]:
    """The entries the recipe's steps make, by name: a subtraction's in-field and remanent
    entries, None for a scan."""
    made: dict[str, tuple[str, str] | None] = {}
    for step in recipe.steps:
        if isinstance(step, ScanStep):
            made[step.keys["name"]] = None
        elif isinstance(step, SubtractStep):
            made[step.name] = (step.in_field, step.remanent)
    return made


def _where(i: int, step: Step) -> str:
    """A step as messages name it: its number and kind, and the entry it writes."""
    if isinstance(step, ScanStep):  # (a name, shown escaped and cut short: not yet checked)
        return f"step {i + 1} (scan {shown_name(step.keys['name'])})"
    if isinstance(step, SubtractStep):
        return f"step {i + 1} (subtract {shown_name(step.name)})"
    return f"step {i + 1} ({step.kind})"


def _subtract_footprint(step: SubtractStep, made: Mapping[str, Footprint],
                        existing: set[str], out: str | Path) -> Footprint:
    """The footprint of the map a subtract step will write, its two entries checked as the
    subtraction will check them: each in the file or made by an earlier step, on one grid."""
    sources: list[Measured] = []
    induced: list[bool] = []
    tolerances: list[FieldTolerance] = []  # each map's, as its subtraction will find it
    for key, ref in (("in_field", step.in_field), ("remanent", step.remanent)):
        if ref in made:
            sources.append(made[ref])
            induced.append(made[ref].induced)
            tolerances.append(made[ref].tolerance)
        elif ref in existing:
            sources.append(read_source(out, ref))
            induced.append(is_induced(out, ref))
            tolerances.append(field_tolerance(out, ref))
        else:
            raise InputError(f"{key} '{ref}' is neither in {out} nor made by an earlier step; "
                             "expected an entry of the file or of an earlier scan step")
    in_field, remanent = sources
    pair = (tolerances[0], tolerances[1])
    require_two_scans(in_field, remanent, tolerances=pair)
    require_alike(step.in_field, induced[0], step.remanent, induced[1])
    require_subtractable(in_field, remanent)
    if step.register:
        require_registrable(in_field)
    require_fields_differ(in_field, remanent, induced=any(induced), tolerances=pair)
    # as the map, once made, finds it in its scans' profiles (`tolerance_among`)
    return induced_footprint(step.name, in_field, remanent,
                             inherited_tolerance(step.name, *pair), induced=any(induced))


def _scan_tolerance(name: str, profile: Profile) -> FieldTolerance:
    """The field tolerance of scan `name` taken with `profile`, as `tolerance_among` will
    find it in the profile stored with the scan: its coils.field_tolerance_nT, the default
    where it gives none (which the rig holds the field to then)."""
    stored = tolerance_in_profile(profile.text).value
    if stored is None:
        return default_tolerance(name)
    return FieldTolerance(stored, name,
                          f"the profile {profile.path.name}, which the recipe's scans store")


def check_fly_steps(checked: Recipe, stage: Any) -> None:
    """The fly steps of a checked recipe against the connected stage controller
    (`check_controller`: what no profile says), before the first step runs."""
    for i, (step, plan) in enumerate(zip(checked.steps, checked.plans, strict=True)):
        if plan is not None and plan.fly is not None:
            try:
                check_controller(plan, stage)
            except InputError as exc:
                raise InputError(f"{_where(i, step)}: {exc}", source=checked.source) from None


def run_recipe(
    recipe: Recipe,
    session: Any,
    *,
    yes: bool = False,
    ask: Callable[[str], object] = input,
    on_step: Callable[[int, str], None] | None = None,
    on_event: Callable[[Any], None] | None = None,
    auto_range: bool = False,
    continuing: bool = False,
    on_warning: Callable[[Warning], None] | None = None,
    command: str = "",
) -> list[str]:
    """Check the recipe (`check_recipe`), then run its steps on a `Session`.

    Returns the names of the entries written (resumed ones too). Stops at the first scan that
    does not finish (the session makes the rig safe). `continuing`: continue the recipe cut
    off on this file (see the module); `on_step` is told of each step skipped too. A
    subtraction's warnings go to `on_warning` (see `Session.subtract`), and its entry records
    `command`, the command line that ran the recipe, where one did. With nothing left to
    do, no step runs and the rig is not touched.
    """
    checked = check_recipe(recipe, session.profile, session.path,
                           can_prompt=yes or _interactive(ask), continuing=continuing)
    if checked.start is None:
        return []
    # a link dropping the rest of a reply cut short refuses a step's exchanges meanwhile:
    # the step waits for it and is made again, as a scan's calls are (`once_dropped`)
    once_dropped(lambda: check_fly_steps(checked, session.rig.stage))
    written: list[str] = []
    for i, step in enumerate(checked.steps):
        skipped = skip_reason(checked, i, session.path)
        if on_step is not None:
            on_step(i, checked.describe(i) + step_note(checked, i, session.path))
        if skipped:
            continue
        if isinstance(step, ScanStep):
            plan = checked.plans[i]
            assert plan is not None
            session.scan_plan(plan, recipe_text=recipe.text, recipe_file=recipe.file,
                              on_event=on_event,
                              auto_range=auto_range, resume=checked.states[i] == RESUME)
            written.append(plan.name)
        elif isinstance(step, SetFieldStep):
            field = tuple(b / UT for b in step.field)
            once_dropped(lambda field=field: session.set_field(field))
        elif isinstance(step, ZeroFieldStep):
            once_dropped(session.zero_field)
        elif isinstance(step, WaitStep):
            wait_in_slices(session.rig.clock, step.seconds)
        elif isinstance(step, PromptStep):
            if not yes:
                ask(f"{step.message} [Enter to continue, Ctrl-C to stop] ")
        elif isinstance(step, SubtractStep):
            subtract_step(checked, i, session, on_warning, command)
            written.append(step.name)
    return written


def subtract_step(recipe: Recipe, i: int, session: Any,
                  on_warning: Callable[[Warning], None] | None, command: str = "") -> None:
    """Subtract step `i` of a checked `recipe` into `session`'s file, as `run` (recording its
    `command`) and the window's Recipes tab run it. A step that forces its shift where the
    registration determined none is refused, and would be at every `--continue`: editing its
    key changes the recipe text its scans store (they would no longer be the recipe's own),
    so the refusal says the way on, the subtraction written by hand, which the recipe then
    takes as its step's own (the same two entries)."""
    step = recipe.steps[i]
    assert isinstance(step, SubtractStep)
    try:
        session.subtract(step.in_field, step.remanent, step.name, register=step.register,
                         on_warning=on_warning,
                         apply_insignificant=step.apply_insignificant_shift,
                         shift_as_begun=applies_as_begun(recipe, i),
                         by_sds_alone=decides_by_sds_alone(recipe, i), recipe_text=recipe.text,
                         recipe_file=recipe.file, command=command)
    except ShiftNotDetermined as exc:
        by_hand = command_line(["smm-daq", "subtract", session.path, "--in-field",
                                step.in_field, "--remanent", step.remanent, "--name",
                                step.name])
        raise ShiftNotDetermined(
            f"step {i + 1} (subtract {shown_name(step.name)}) forces its shift "
            f"(apply_insignificant_shift = true): {exc}. The recipe's scans store its text, "
            "so it cannot be edited and continued; to go on, write this subtraction without "
            f"forcing it, `{by_hand}` (the maps subtracted as they lie), then continue the "
            "recipe (`smm-daq run --continue`): a subtraction of the same two entries is "
            "taken as the step's own") from None


def wait_in_slices(clock: Clock, seconds: float,
                   stopped: Callable[[], bool] = lambda: False,
                   between: Callable[[float], None] = lambda left: None) -> float:
    """A wait step: `seconds` on the rig's `clock`, in slices of `STOP_SLICE_S`, so that an
    abort is acted on within one and the rig made safe then, not once a wait of minutes has
    run out: `stopped()` (a window's Stop) is asked before each slice, and a signal's handler
    (Ctrl-C, SIGTERM: `KeyboardInterrupt`) runs between them where the sleep under way does
    not wake for it (on Windows only Ctrl-C wakes one, not Ctrl-Break). Before that ask,
    `between(left)` runs, given the seconds left (the window's readings: what time it takes
    on the clock is the wait's, neither added to it nor taken off). Returns the seconds of it
    not waited: 0 when it ran out, more when `stopped()` ended it."""
    end = clock.now() + seconds
    while end - clock.now() > 0:
        between(end - clock.now())
        if (left := end - clock.now()) <= 0:
            break
        if stopped():
            return left
        clock.sleep(min(STOP_SLICE_S, left))
    return 0.0


WAIT_AGAIN_WHY = ("the field was ramped down when the recipe was cut off: the wait counts "
                  "anew from when the field steps before it have set the field again")


def step_note(checked: Recipe, i: int, out: str | Path) -> str:
    """What a continued recipe does with step `i`, after its description: ": skipped (why)",
    ": resumed from its first unfinished line", for a wait it runs although it lies before
    the work left (the recipe was cut off during it or before the next scan began) that it
    waits again in full, or "" (it runs)."""
    skipped = skip_reason(checked, i, out)
    if skipped:
        return f": skipped ({skipped})"
    if checked.states[i] == RESUME:
        return ": resumed from its first unfinished line"
    if isinstance(checked.steps[i], WaitStep) and checked.start is not None and i < checked.start:
        return f": waits again in full ({WAIT_AGAIN_WHY})"
    if applies_as_begun(checked, i):
        return _as_begun_note(checked, i)
    return _sds_as_begun_note(checked) if decides_by_sds_alone(checked, i) else ""


def skip_reason(checked: Recipe, i: int, out: str | Path) -> str:
    """Why step `i` of a checked recipe is skipped (continued from step `checked.start` on
    `out`), or "" to run it. With nothing left to run (`start` None) no step runs: one after
    the last entry (a wait cut off there) is skipped too, as `run --continue` says."""
    first = checked.start if checked.start is not None else len(checked.steps)
    if checked.states[i] == DONE:
        return f"finished in {out} already" if isinstance(checked.steps[i], ScanStep) \
            else f"in {out} already"
    if _passed(checked.steps, checked.states, first, i):
        return "it belongs to the steps done already"
    if checked.start is None:
        return f"every entry of the recipe is in {out} already: nothing is left to continue"
    return ""


def _passed(steps: tuple[Step, ...], states: tuple[str, ...] | list[str], first: int,
            i: int) -> bool:
    """Whether wait or prompt step `i` of a recipe continued from step `first` was passed
    when it was cut off: a later step's entry is in the file. One the cut came before (killed
    during the wait, stopped at the prompt, or before the next scan's entry was made) was
    not, and runs: the sample may not have been treated, nor the decay waited for."""
    return (isinstance(steps[i], WaitStep | PromptStep) and i < first
            and any(s in (DONE, RESUME) for s in states[i + 1:]))


def _interactive(ask: Callable[[str], object]) -> bool:
    """Prompts need a terminal when they go to input(); a custom `ask` is taken as able."""
    if ask is input:
        return sys.stdin is not None and sys.stdin.isatty()
    return True
