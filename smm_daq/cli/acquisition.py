"""`smm-daq` acquisition commands: scan, run, resume, info, demo, safe.

Scans show a progress bar with the remaining time on stderr. A scan that pauses (lock-in
overload, a reading out of range) asks the operator on an interactive terminal and otherwise
aborts cleanly, leaving a file that `smm-daq resume` finishes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np
from tqdm import tqdm

from smm_daq.acquisition.duration import run_on_unsaid
from smm_daq.acquisition.fly.settings import (
    DEFAULT_OVERSAMPLE,
    DEFAULT_PIXEL_TIME_S,
    FlySettings,
)
from smm_daq.acquisition.plan import (
    DEFAULT_SETTLE_TAU,
    MAX_DWELL_TAU,
    MAX_SETTLE_TAU,
    ScanPlan,
    size_note,
)
from smm_daq.cli.args import (
    SESSION_OUT_HELP,
    entry_name,
    entry_to_read,
    floats,
    invoked_command,
    positive,
    session_file,
    within,
)
from smm_daq.cli.args import time_scale as time_scale_option
from smm_daq.cli.warning_text import said_as
from smm_daq.errors import InputError, InstrumentError
from smm_daq.instruments.profile import Profile, load_profile
from smm_daq.shell_words import command_line, file_shown
from smm_daq.storage.names import listed_name
from smm_daq.text_files import path_shown

if TYPE_CHECKING:  # the session, recipes, rig and storage are imported by the commands
    import h5py

    from smm_daq.acquisition.events import ScanEvent
    from smm_daq.acquisition.resumable import ResumableEntry
    from smm_daq.acquisition.session import ScanNotFinished, Session
    from smm_daq.storage.nexus import EntryInfo
    from smm_daq.storage.staging import CutOff

UM = 1e-6
UT = 1e-6
NT = 1e-9
DEMO_SIZE_UM = 2200.0  # the built-in sample fills a 2 mm square centred at (12.5, 12.5) mm
DEMO_STEP_UM = 50.0
DEMO_CENTER_UM = (12500.0, 12500.0)
DEMO_FIELD_UT = (0.0, 40.0, 0.0)


# -- progress ---------------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--"
    s = round(float(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ProgressBar:
    """A scan subscriber showing a tqdm bar on a terminal (or a line per 10 % elsewhere, so
    logs stay readable).

    The remaining time is tqdm's, from the wall-clock rate since the bar started, so it is
    right for real instruments and for simulators at any time scale; a resumed scan starts
    the bar at the lines already measured.
    """

    STEPS = 1000  # the bar counts tenths of a percent of the grid's points
    FORMAT = "{desc}: {percentage:5.1f}%|{bar}| ETA {remaining}"

    def __init__(self, stream: TextIO | None = None, *, min_interval: float = 0.1) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval
        self._bar: tqdm | None = None
        self._t0 = 0.0
        self._p0 = 0
        self._last_decile = -1

    def __call__(self, event: ScanEvent) -> None:
        done = round(event.progress * self.STEPS)
        if event.kind == "started":
            self._close()
            self.stream.write(f"scan '{event.entry}': {event.message}\n")
            self._t0, self._p0 = time.monotonic(), done
            self._last_decile = done * 10 // self.STEPS
            if self.tty:
                self._bar = tqdm(total=self.STEPS, initial=done, file=self.stream, leave=True,
                                 desc=event.entry, bar_format=self.FORMAT,
                                 mininterval=self.min_interval, dynamic_ncols=True)
        elif event.kind in ("point", "line_done"):
            if event.message:  # a warning at a line's end (the ambient field's drift)
                said = f"scan '{event.entry}': warning: {event.message}"
                if self._bar is not None:
                    self._bar.write(said, file=self.stream)
                else:
                    self.stream.write(said + "\n")
            if self._bar is not None:
                self._bar.set_description_str(f"{event.entry} line {event.line + 1}",
                                              refresh=False)
                self._bar.update(done - self._bar.n)
            elif not self.tty and done * 10 // self.STEPS > self._last_decile:
                self._last_decile = done * 10 // self.STEPS
                self.stream.write(self._line(event, done) + "\n")
        elif event.kind == "paused":
            self._close()
            self.stream.write(f"scan '{event.entry}' paused: {event.message}\n")
        elif event.kind == "resumed":
            self.stream.write(f"scan '{event.entry}' resumed\n")
        elif event.kind == "made_safe":  # the command then ends without the write
            from smm_daq.acquisition.sequencer import ENDS_WHEN_IT_RETURNS

            self._close()
            said = event.message.removesuffix(ENDS_WHEN_IT_RETURNS)
            self.stream.write(f"scan '{event.entry}': {said}\n")
        else:
            if self._bar is not None:
                self._bar.update(done - self._bar.n)
            self._close()
            # a scan that did not finish raises, and its message is printed once, with it
            tail = f": {event.message}" if event.message and event.kind == "finished" else ""
            self.stream.write(f"scan '{event.entry}' {event.kind}{tail}\n")
        self.stream.flush()

    def _line(self, event: ScanEvent, done: int) -> str:
        return tqdm.format_meter(done, self.STEPS, time.monotonic() - self._t0, ncols=70,
                                 prefix=f"{event.entry} line {event.line + 1}",
                                 initial=self._p0, bar_format=self.FORMAT, ascii=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def ask_operator(reason: str) -> bool:
    """Pause handler: ask on an interactive terminal, otherwise abort (resume later)."""
    if not (sys.stdin is not None and sys.stdin.isatty()):
        return False
    try:
        input(f"paused: {reason}. At the instrument: an overload, raise the lock-in's range "
              "(sensitivity); then Enter to resume (its range and time constant are read "
              "again), Ctrl-C to abort: ")
    except EOFError:  # Ctrl-D, or the terminal went away: nobody can resume it
        return False
    return True


# -- helpers ----------------------------------------------------------------------------------


def _open_session(out: str, profile: Profile | str | None, time_scale: float | None
                  ) -> Session:
    from smm_daq.acquisition.session import Session
    from smm_daq.storage.checks import check_intact

    check_intact(out)  # a damaged session file is reported, never written into
    simulated = not isinstance(profile, Profile) or profile.simulated  # None: the simulator
    return Session.open(out, profile, time_scale=time_scale_option(time_scale,
                                                                     simulated=simulated),
                        on_pause=ask_operator)


def _finish(session: Session) -> int:
    """Close the session (the rig made safe once, by one owner) and say plainly how it is."""
    from smm_daq.instruments.rig import safety_statement

    problems = session.close()
    print(f"smm-daq: {safety_statement(session.profile, problems)}", file=sys.stderr)
    return 1 if problems else 0


def _warn_if_uncalibrated(profile: Profile) -> None:
    """A rig.calibration_file that does not exist leaves the profile's nominal coil matrix and
    ambient field in use: no error (the first calibration goes there), but a scan in "zero
    field" would then be in whatever the nominal ambient field misses, so say so before it."""
    path = profile.calibration_file
    if path is not None and not path.exists():
        calibrate = command_line(["smm-daq", "calibrate-coils", "--profile", str(profile.path)])
        print(f"smm-daq: warning: rig.calibration_file {path} does not exist: the coils use "
              "the profile's own coils.calibration_T_per_A and ambient_field_uT, not a fitted "
              f"calibration (`{calibrate}` writes it; a "
              "misspelt name?)", file=sys.stderr)


@contextmanager
def _saying_how_to_go_on(path: str, names: tuple[str, ...], command: list[str], *,
                         unfinished_only: bool = True) -> Iterator[None]:
    """On Ctrl-C or a signal (KeyboardInterrupt), or a scan that ended unfinished (an
    instrument lost, a supply tripped, a pause nobody could answer: `ScanNotFinished`), once
    the rig was made safe inside: when `path` holds an entry of `names` (not finished, with
    `unfinished_only`), say that its lines are kept and the `command` that goes on from them
    (after a failure, once its cause is mended). Never in the way of the exit."""
    try:
        yield
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt)
        unfinished = _scan_not_finished(exc)
        if unfinished is not None:  # with what the rest needs (--auto-range after a pause)
            command = [*command, *(option for option in unfinished.go_on_options
                                   if option not in command)]
        said = command_line(command) in str(exc)  # the scan's own message names it already
        if stopped or (unfinished is not None and not said):
            with contextlib.suppress(Exception):
                from smm_daq.storage.nexus import list_entries

                held = [e.name for e in list_entries(path) if e.name in names
                        and not (unfinished_only and e.status == "finished")]
                if held:
                    when = "" if stopped else "once what ended the scan is mended, "
                    print(f"smm-daq: what was measured is kept in {path}; {when}"
                          f"`{command_line(command)}` goes on from there", file=sys.stderr)
        raise


def _scan_not_finished(exc: BaseException) -> ScanNotFinished | None:
    """`exc` where it is a scan that ended "failed" or "aborted" (its lines kept in the file)."""
    from smm_daq.acquisition.session import ScanNotFinished

    return exc if isinstance(exc, ScanNotFinished) else None


def _say_if_nothing_to_continue(recipe: str, out: str, names: tuple[str, ...]) -> None:
    """`run --continue` where the file holds nothing the recipe writes (no file at all, a
    misspelt name?): the whole recipe runs, and that is said before it starts. A recipe cut
    off before its first entry leaves no more than that, so it is no error."""
    from smm_daq.storage.nexus import list_entries

    if not Path(out).exists():
        found = f"{out} does not exist"
    elif not {e.name for e in list_entries(out)} & set(names):
        found = f"{out} holds no entry of it"
    else:
        return
    print(f"smm-daq: note: recipe {recipe}, --continue: {found}, so nothing of it was done "
          "before (a misspelt file name? or it was cut off before its first entry): it runs "
          "from its first step", file=sys.stderr)


def _profile_again(args: argparse.Namespace) -> list[str]:
    """The --profile given, for the command that goes on (`resume` after `scan` has the
    profile stored with the scan)."""
    return ["--profile", args.profile] if args.profile is not None else []


def _run_again(args: argparse.Namespace) -> list[str]:
    """The options that change how the rest is measured, for the command that goes on: a
    scan run with --auto-range would otherwise pause at the next overload."""
    return ["--auto-range"] if args.auto_range else []


def _vec_ut(b: np.ndarray | None) -> str:
    if b is None or not np.all(np.isfinite(b)):
        return "-"
    with np.errstate(over="ignore"):  # a damaged file's 1e308 T is shown as inf µT
        return "(" + ", ".join(f"{v / UT:.3g}" for v in b) + ") µT"


# -- commands ---------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    from smm_daq.storage.scan_entry import check_new_scan

    session_file("--out", args.out)
    time_scale_option(args.time_scale)
    cx, cy = floats("--center-um", args.center_um, 2)
    w, h = floats("--size-um", args.size_um, 2)
    step = floats("--step-um", args.step_um, 2 if "," in args.step_um else 1)
    for s in step:
        positive("--step-um", s)
    if w < 0 or h < 0:
        raise InputError(f"--size-um is {args.size_um!r}; expected sizes >= 0 µm")
    field = floats("--field-uT", args.field_uT, 3)
    within("--settle-tau", args.settle_tau, 0.0, MAX_SETTLE_TAU, " lock-in time constants")
    within("--dwell-tau", args.dwell_tau, 0.0, MAX_DWELL_TAU, " lock-in time constants")
    fly = None
    unflown = [o for o, given in (("--pixel-time-s", args.pixel_time_s is not None),
                                  ("--oversample", args.oversample is not None),
                                  ("--fly-trigger", args.fly_trigger),
                                  ("--line-baselines", args.line_baselines)) if given]
    if unflown and not args.fly:  # a step scan would leave them unread
        raise InputError(f"{', '.join(unflown)} given without --fly; expected --fly with "
                         f"{'them' if len(unflown) > 1 else 'it'} (a flown scan), or no "
                         f"{'such option' if len(unflown) > 1 else unflown[0]} (a step scan)")
    if args.fly:
        args.pixel_time_s = DEFAULT_PIXEL_TIME_S if args.pixel_time_s is None else \
            args.pixel_time_s
        args.oversample = DEFAULT_OVERSAMPLE if args.oversample is None else args.oversample
        positive("--pixel-time-s", args.pixel_time_s)
        if args.oversample < 1:
            raise InputError(f"--oversample is {args.oversample!r}; expected a whole number "
                             ">= 1 of lock-in samples per pixel")
        fly = FlySettings(pixel_time=args.pixel_time_s, oversample=args.oversample,
                          baselines=args.line_baselines, trigger=args.fly_trigger)
    profile = load_profile(args.profile)
    # refused before the plan is said: nothing is started for real instruments
    time_scale_option(args.time_scale, simulated=profile.simulated)
    # without --height-um the height is the profile's: a refusal of it names the profile key
    height = ({} if args.height_um is not None else
              {"height": f"{profile.path}: sensor.height_um (no --height-um given)"})
    with _plan_options(height):
        plan = _scan_plan(args, cx, cy, w, h, step, field, profile, fly)
        plan.validate(profile)
    check_new_scan(args.out, plan.name)
    _warn_if_uncalibrated(profile)
    note = size_note((w * UM, h * UM), (plan.step_x, plan.step_y), (plan.nx, plan.ny))
    if note:
        print(f"smm-daq: warning: --size-um {args.size_um}, --step-um {args.step_um}: {note}",
              file=sys.stderr)
    unsaid = run_on_unsaid(plan, profile)
    print(f"scan '{plan.name}': {plan.nx} × {plan.ny} points, field {_vec_ut(np.array(plan.field))}"
          f", estimated {format_duration(plan.estimate_duration(profile))} of instrument time"
          + (f" ({unsaid})" if unsaid else ""), file=sys.stderr)
    go_on = ["smm-daq", "resume", args.out, "--entry", plan.name, *_run_again(args)]
    with _saying_how_to_go_on(args.out, (plan.name,), go_on):
        session = _open_session(args.out, profile, args.time_scale)
        try:
            session.scan_plan(plan, on_event=ProgressBar(), auto_range=args.auto_range)
        finally:
            code = _finish(session)
    return code


# Which options set the plan field a plan's message names (the title first: it may hold any
# word below; then the fly ones: a fly message may also name step_x).
_PLAN_OPTIONS = {"plan title": "--title", "fly trigger": "--fly-trigger",
                 "fly pixel_time_s": "--pixel-time-s",
                 "fly oversample": "--oversample, --pixel-time-s",
                 "fly speed": "--step-um, --pixel-time-s",
                 "fly line runs": "--center-um, --size-um",
                 "fly line of": "--size-um, --step-um, --pixel-time-s",
                 "x range": "--center-um, --size-um", "y range": "--center-um, --size-um",
                 "plan x:": "--size-um, --step-um", "plan y:": "--size-um, --step-um",
                 "grid": "--size-um, --step-um", "step_": "--step-um", "height": "--height-um",
                 "field": "--field-uT", "settle_tau": "--settle-tau", "dwell_tau": "--dwell-tau"}


@contextmanager
def _plan_options(instead: dict[str, str] | None = None) -> Iterator[None]:
    """A plan's InputError names the command-line options that set what it refuses (or, by
    the same keys, what `instead` names)."""
    try:
        yield
    except InputError as exc:
        text = str(exc)
        named = {**_PLAN_OPTIONS, **(instead or {})}
        options = next((o for k, o in named.items() if k in text), None)
        if options is None:
            raise
        raise InputError(f"{options}: {text}") from None


def _scan_plan(args: argparse.Namespace, cx: float, cy: float, w: float, h: float,
               step: tuple[float, ...], field: tuple[float, ...], profile: Profile,
               fly: FlySettings | None) -> ScanPlan:
    return ScanPlan.from_center(
        args.name,
        (cx * UM, cy * UM),
        (w * UM, h * UM),
        step[0] * UM if len(step) == 1 else (step[0] * UM, step[1] * UM),
        field=tuple(b * UT for b in field),
        height=profile.sensor.height if args.height_um is None else args.height_um * UM,
        raster=args.raster,
        settle_tau=args.settle_tau,
        dwell_tau=args.dwell_tau,
        title=args.title,
        fly=fly,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from smm_daq.acquisition.recipe import ScanStep, check_recipe, load_recipe, run_recipe
    from smm_daq.cli.run_profile import run_profile

    session_file("--out", args.out)
    time_scale_option(args.time_scale)
    recipe = load_recipe(args.recipe)
    profile, said = run_profile(recipe, args.recipe, args.profile)
    time_scale_option(args.time_scale, simulated=profile.simulated)  # before the recipe is said
    interactive = sys.stdin is not None and sys.stdin.isatty()
    checked = check_recipe(recipe, profile, args.out, can_prompt=args.yes or interactive,
                           continuing=args.continue_recipe)
    # said once the recipe is taken (a refusal stays one message), before anything runs
    print(f"recipe {args.recipe}: {said[0]}", file=sys.stderr)
    for note in said[1:]:
        print(f"smm-daq: {note}", file=sys.stderr)
    if checked.start is None:  # only when continuing: the rig is not even connected
        print(f"recipe {args.recipe}: every step is done in {args.out} already; nothing to "
              "continue", file=sys.stderr)
        return 0
    if args.continue_recipe:
        _say_if_nothing_to_continue(args.recipe, args.out, recipe.entries())
    _warn_if_uncalibrated(profile)
    for unread in checked.unread:  # taken only continuing a recipe begun before its refusal
        print(f"smm-daq: warning: {args.recipe}, {unread}: left unread, as when the recipe was "
              "begun", file=sys.stderr)
    for overridden in checked.overridden:  # as for unread keys: a new recipe is refused
        print(f"smm-daq: warning: {args.recipe}, {overridden}; continued as begun, the scan "
              "taken in the field of [scan_defaults]", file=sys.stderr)
    for i, step in enumerate(checked.steps):
        plan = checked.plans[i]
        if isinstance(step, ScanStep) and plan is not None and step.size_note(plan):
            print(f"smm-daq: warning: {args.recipe}, step {i + 1} (scan '{plan.name}'): "
                  f"{step.size_note(plan)}", file=sys.stderr)
        if checked.wait_note(i):
            print(f"smm-daq: warning: {args.recipe}, step {i + 1} (wait): "
                  f"{checked.wait_note(i)}", file=sys.stderr)
    left = (f" ({format_duration(checked.duration_left_s)} left to run)"
            if args.continue_recipe else "")
    unsaid = next((n for n in (run_on_unsaid(p, profile) for p in checked.plans
                               if p is not None) if n), "")
    print(f"recipe {args.recipe}: {len(checked.steps)} steps, estimated "
          f"{format_duration(checked.duration_s)} of instrument time (scans, waits and field "
          f"ramps{'; ' + unsaid if unsaid else ''}){left}", file=sys.stderr)
    go_on = ["smm-daq", "run", args.recipe, "--out", args.out, "--continue",
             *_profile_again(args), *_run_again(args),
             *(["--yes"] if args.yes else [])]  # a prompt not yet passed runs again
    with _saying_how_to_go_on(args.out, recipe.entries(), go_on, unfinished_only=False):
        session = _open_session(args.out, profile, args.time_scale)
        try:
            written = run_recipe(
                recipe, session, yes=args.yes,
                on_step=lambda i, text: print(f"step {i + 1}/{len(checked.steps)}: {text}",
                                              file=sys.stderr),
                on_event=ProgressBar(), auto_range=args.auto_range,
                continuing=args.continue_recipe,
                on_warning=lambda w: print(f"smm-daq: {said_as(type(w))}: {w}", file=sys.stderr),
                command=invoked_command(),
            )
        finally:
            code = _finish(session)
    print(f"wrote {', '.join(written) or 'no entries'} to {args.out}", file=sys.stderr)
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    from smm_daq.acquisition.resumable import check_resume, load_resumable

    time_scale_option(args.time_scale)
    entry = load_resumable(args.file, args.entry)  # checked whole before the rig is touched
    session_file("FILE.h5", args.file)  # and writable: the rest of the scan goes into it
    profile = (load_profile(args.profile) if args.profile is not None
               else _stored_profile(entry, args.file, args.entry))
    time_scale_option(args.time_scale, simulated=profile.simulated)  # before "resuming" is said
    hint = ("leave --profile out to use the profile stored with the scan, or give --profile "
            "with the one it was started with")
    check_resume(args.file, args.entry, profile, hint=hint)
    # how many lines are left is said once, as the scan starts (`ProgressBar`)
    print(f"resuming '{args.entry}' of {args.file}", file=sys.stderr)
    go_on = ["smm-daq", "resume", args.file, "--entry", args.entry, *_profile_again(args),
             *_run_again(args)]
    with _saying_how_to_go_on(args.file, (args.entry,), go_on):
        with _stored_addresses_unanswered(args.profile is None, profile):
            session = _open_session(args.file, profile, args.time_scale)
        try:
            session.resume(args.entry, on_event=ProgressBar(), auto_range=args.auto_range)
        finally:
            code = _finish(session)
    return code


@contextmanager
def _stored_addresses_unanswered(stored: bool, profile: Profile) -> Iterator[None]:
    """An instrument that does not answer at connect, where the profile is the one stored
    with the scan: its addresses are those of the day the scan began (serve-sim serves on
    new ports at each start; an instrument may have moved since), so the error says to give
    --profile, first among its notes, and so must `smm-daq safe`: the `safe --from-file` that
    the rig's closing names tries the stored addresses too. The exit stays that of an
    instrument not answering."""
    try:
        yield
    except InstrumentError as exc:
        if stored:
            exc.__notes__ = [
                f"the addresses tried are those of the profile stored with the scan "
                f"('{profile.name}'); where the instruments answer elsewhere now (serve-sim "
                "serves on new ports each time it starts), give `--profile PROFILE` to point "
                "the resume at them (for serve-sim, the file its --profile-out wrote), and "
                "make them safe with `smm-daq safe --profile PROFILE` (`safe --from-file` "
                "tries the stored addresses too)",
                *getattr(exc, "__notes__", ())]
        raise


def _stored_profile(entry: ResumableEntry, file: str, name: str) -> Profile:
    """The profile stored with scan `name` of `file`; refused by today's loader (a value its
    bounds, added since the scan was started, refuse), InputError saying to give --profile:
    the stored text cannot be corrected, and a resume compares the hardware, geometry and
    lock-in excitation, not such settings."""
    try:
        return entry.stored_profile()
    except InputError as exc:
        raise InputError(f"the profile stored with the scan, taken when it was started, is "
                         f"refused now: {exc}; give --profile with that profile, the value "
                         "corrected (a resume compares the hardware, geometry and lock-in "
                         "excitation, not such a setting)", source=f"{file}, entry '{name}'"
                         ) from None


def _info_line(e: EntryInfo, result: str = "", made: str = "") -> str:
    """An entry as `info` lists it, its noise floor as the listing read it (`list_entries`
    with noise floors): InputError where its map could not be read. `made`: what wrote it
    (`provenance_summary`), said before when."""
    from smm_daq.analysis.subtract_inputs import MODEL_KINDS

    parts = [listed_name(e.name), f"[{e.kind}, {e.status}]"]
    if e.shape is not None:
        ny, nx = e.shape
        step = f" step {e.step[0] / UM:g} × {e.step[1] / UM:g} µm" if e.step else ""
        parts.append(f"{nx} × {ny}{step}")
    if e.lines_done is not None and e.shape is not None:
        parts.append(f"lines {e.lines_done}/{e.shape[0]}")
    if e.kind == "scan":
        parts.append(_runs_part(e))
    if e.applied_field is not None:
        parts.append(f"field {_vec_ut(e.applied_field)}")
    if e.measured_field is not None and np.all(np.isfinite(e.measured_field)):
        parts.append(f"measured {_vec_ut(e.measured_field)}")
    if e.shape is not None and e.kind not in MODEL_KINDS:  # a model's Bz has no noise
        if e.noise_problem:
            raise InputError(e.noise_problem)
        sigma = e.noise_floor if e.noise_floor is not None else math.nan
        parts.append(noise_floor_text(sigma, bound=e.noise_floor_bound))
    if result:
        parts.append(result)
    if e.sources:
        parts.append("from " + ", ".join(e.sources))
    if e.title:
        parts.append(repr(e.title))
    if made:
        parts.append(made)
    if e.start_time:  # when it was taken or made: a month of session files is told by it
        # quoted where another program wrote a line break or a control character into it
        parts.append(e.start_time if e.start_time.isprintable() else repr(e.start_time))
    return "  ".join(p for p in parts if p)


def _runs_part(e: EntryInfo) -> str:
    """A scan's runs when it was resumed ("" when it ran once): how many, and when each
    began where the entry records it (an entry of an earlier version does not). InputError
    where they are malformed."""
    if e.runs_problem:
        raise InputError(e.runs_problem)
    runs = e.runs
    if len(runs) < 2:
        return ""
    starts = [r.start_time for r in runs if r.start_time]
    when = f" (started {starts[0]}, resumed {', '.join(starts[1:])})" if len(starts) > 1 else ""
    return f"runs {len(runs)}{when}"


def _result_summary(f: h5py.File, path: str, entry: str) -> tuple[str, str, str]:
    """An MMT result entry of the open file `f` as `info` lists it, read as every command
    reads one (`read_result_entry`): (its grains, model, σ and cond(Q), "", ""), or ("", its
    status, why it is not read): "damaged", or "newer" for a result of a layout newer than
    this smm-daq reads (nothing wrong with it). A joint result's σ is each scan's, in the
    order inverted, as `mmt invert` says them."""
    from smm_daq.analysis.mmt.result_read import NewerLayout, read_result_entry_in

    try:
        saved = read_result_entry_in(f, Path(path), entry)
    except NewerLayout as exc:
        return "", "newer", str(exc)
    except InputError as exc:
        return "", "damaged", str(exc)
    n = saved.magnetization.shape[0]
    unresolved = int(np.sum(~np.all(np.isfinite(saved.covariance), axis=(1, 2))))
    each = [f"{s / NT:.4g}" if math.isfinite(s) else "-" for s in saved.sigmas]  # by scan
    sigma = f"σ {', '.join(each)} nT" if any(math.isfinite(s) for s in saved.sigmas) else "σ -"
    cond = (f"cond(Q) {saved.condition_number:.3g}" if not math.isnan(saved.condition_number)
            else "cond(Q) -")
    return (f"{n} grain{'s' if n != 1 else ''} ({saved.model}"
            f"{f', {unresolved} unresolved' if unresolved else ''}), {sigma}, {cond}"), "", ""


def _how_made(f: h5py.File, name: str) -> str:
    """How the entry was made: an induced entry's registration (`registration_summary`), so
    that two subtractions of the same scans with other options are told apart, and the
    fields its own was made from (`field_summary`); a flown scan's "flown" with its pixel
    time (`flown_summary`); "" for other entries."""
    import h5py

    from smm_daq.storage.entry_summary import (
        field_summary,
        flown_summary,
        registration_summary,
    )

    g = f.get(name)
    if not isinstance(g, h5py.Group):
        return ""
    return "  ".join(p for p in (registration_summary(g) or flown_summary(g),
                                 field_summary(g)) if p)


def _made_by(f: h5py.File, name: str) -> str:
    """What wrote entry `name` of the open file `f`, for citing it: program and version,
    a scan's profile, the recipe that made it (`provenance_summary`)."""
    import h5py

    from smm_daq.storage.entry_summary import provenance_summary

    g = f.get(name)
    return provenance_summary(g) if isinstance(g, h5py.Group) else ""


def _cut_off_note(c: CutOff, path: str) -> str:
    """What `info` says of what a writer killed part-way through entry `c.name` left, true
    for each state (`CutOff`)."""
    writer = ("its writer, an earlier smm-daq, killed before moving it in" if c.earlier
              else "its writer killed")
    repair = command_line(["smm-daq", "repair", path])
    run = command_line(["smm-daq", "run", "RECIPE", "--out", path, "--continue"])
    if c.acquired and c.kept:
        return (f"entry '{c.name}' as an earlier smm-daq wrote it, acquired data (kind "
                f"'{c.acquired}'), was cut off before it was moved in: it is kept under "
                f"'{c.key}', as '{c.name}' is another entry; rename it with an HDF5 tool "
                "(h5py, HDFView) to keep it under a name of its own")
    if c.acquired:
        return (f"entry '{c.name}' as an earlier smm-daq wrote it, acquired data (kind "
                f"'{c.acquired}'), was cut off before it was moved in: it is kept under "
                f"'{c.key}'; `{repair}` moves it in as '{c.name}'")
    if c.fixed:
        return (f"a write of entry '{c.name}' was cut off while written ({writer}): "
                f"'{c.name}' is another entry, {c.fixed}, as it was, whole, and "
                f"{c.kept_rule}; `{repair}` removes what was left")
    if c.kept:
        return (f"an overwrite of entry '{c.name}' was cut off while written ({writer}): "
                f"'{c.name}' is as it was before it, whole; writing it again with "
                f"--overwrite replaces it and what was left; `{repair}` "
                "removes what was left")
    return (f"entry '{c.name}' was cut off while written ({writer}), so it is not in the "
            f"file: writing it again (a recipe's: `{run}`) replaces what was left; "
            f"`{repair}` removes it")


def cmd_info(args: argparse.Namespace) -> int:
    """List the file's entries, each MMT result read whole: an entry that cannot be read, a
    damaged result or one of a newer layout is listed as such (a result with why) beside the
    others, and the first of them is the error (exit 2). A file whose global heap HDF5
    would never return from reading is refused first, whatever its size: the listing reads
    every map whole (for its noise floor), so the one pass over the file's bytes that finds
    the damage adds about a tenth to what it reads."""
    from smm_daq.storage.h5file import check_heaps, read_whole
    from smm_daq.storage.nexus import (
        cut_off_replacements,
        links_and_strays,
        unfinished_entries,
    )
    from smm_daq.storage.staging import aside_name

    check_heaps(args.file)
    # the entries, their noise floors and MMT results, of the file as one write left it
    listed, problems, failed = read_whole(args.file, partial(_listing, args.file))
    for line in listed:
        print(line)
    if failed is not None:
        raise failed
    for cut in unfinished_entries(args.file):
        print(f"  unfinished: {_cut_off_note(cut, args.file)}")
    repair = command_line(["smm-daq", "repair", args.file])
    for name, link, conflict in cut_off_replacements(args.file):
        if conflict is not None and link is None:
            print(f"  unfinished: entry '{name}' was cut off while replaced (its writer "
                  f"killed), so it is not listed, and cannot be settled as it is: {conflict}")
            continue
        if link is not None:
            print(f"  unfinished: entry '{name}' was cut off while replaced (its writer "
                  f"killed), so it is not listed: the old entry waits, whole, at "
                  f"'{aside_name(name)}', and '{name}' is {link}; delete or rename "
                  f"the link with an HDF5 tool (h5py, HDFView), then `{repair}` finishes "
                  "the replacement or puts the old entry back")
            continue
        print(f"  unfinished: entry '{name}' was cut off while replaced (its writer killed), "
              f"so it is not listed: writing it again, or `{repair}`, puts the new entry in "
              "place (the old one back where the new one was not whole)")
    for line in links_and_strays(args.file):
        print(f"  not an entry: {line}")
    if problems:  # every entry was listed; the first unreadable or damaged one is the error
        others = (f" (and {len(problems) - 1} more entries not read: unreadable, damaged "
                  "or newer)"
                  if len(problems) > 1 else "")
        raise InputError(problems[0] + others)
    return 0


def _resume_note(path: str, e: EntryInfo, f: h5py.File) -> str:
    """For a scan cut off (a kill -9 says nothing as it ends), the line under it that names
    the command measuring the rest (`scan_rest.rest_command`, the entry read in the open
    file `f`); "" for any other entry."""
    from smm_daq.storage.scan_rest import rest_command

    if e.kind != "scan" or e.status not in ("interrupted", "aborted", "failed"):
        return ""
    return f"\n    cut off: {rest_command(f, path, e.name)}"


def _listing(path: str, f: h5py.File) -> tuple[list[str], list[str], InputError | None]:
    """`info`'s lines for the entries of the open file `f` (at `path`), the problems among
    them, and the error that cut the listing short (said after the lines before it)."""
    from smm_daq.storage.nexus import list_entries_in

    entries = list_entries_in(f, path, noise_floors=True)
    lines = [f"{file_shown(path)}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"]
    problems: list[str] = []
    try:
        for e in entries:
            if e.problem:
                lines.append(f"  {listed_name(e.name)}  [unreadable]")
                problems.append(e.problem)
                continue
            result, status, why = (_result_summary(f, path, e.name) if e.kind == "mmt"
                                   else (_how_made(f, e.name), "", ""))
            made = _made_by(f, e.name)
            if why:
                lines.append(f"  {_info_line(replace(e, status=status), made=made)}\n"
                             f"    {'damaged' if status == 'damaged' else 'not read'}: {why}")
                problems.append(why)
            else:
                lines.append(f"  {_info_line(e, result, made)}{_resume_note(path, e, f)}"
                             f"{_bound_note(path, e)}")
    except InputError as exc:
        return lines, problems, exc
    return lines, problems, None


def noise_floor_text(sigma: float, *, bound: bool) -> str:
    """A map's single-map noise floor (T) as `info` and the demo print it: "≤" where the
    field bends at the pixel scale (`noise.bends_at_pixel_scale`), "-" where it has none."""
    if not math.isfinite(sigma):
        return "noise floor -"
    if bound:
        # "may": a strong field smooth at the pixel scale (one grain at 10³–10⁵ times the
        # noise) shows the same sign, its floor right; no one map tells the two apart
        return (f"noise floor ≤ {sigma / UT:.3g} µT (may read high: the field bends at the "
                "pixel scale)")
    return f"noise floor {sigma / UT:.3g} µT"


def _bound_note(path: str, e: EntryInfo) -> str:
    """Under an entry whose noise floor is an upper bound, what measures it."""
    from smm_daq.analysis.subtract_inputs import MODEL_KINDS

    if not e.noise_floor_bound or e.kind in MODEL_KINDS:  # a model's Bz has no noise
        return ""
    command = command_line(["smm-daq", "noise", path, "--entry", e.name, "--repeat"])
    return f"\n    a repeated scan measures its noise: {command} REPEAT"


def cmd_demo(args: argparse.Namespace) -> int:
    from smm_daq.analysis.noise import bends_at_pixel_scale, white_noise_floor

    time_scale_option(args.time_scale)
    out = session_file("--out", args.out)
    if out.exists():
        raise InputError("exists already; the demo writes a new file (choose another --out)",
                         source=str(out))
    size = (DEMO_SIZE_UM, DEMO_SIZE_UM)
    session = _open_session(str(out), None, args.time_scale)
    bar = ProgressBar()
    try:
        session.zero_field()
        rem = session.scan("remanent", center_um=DEMO_CENTER_UM, size_um=size,
                           step_um=DEMO_STEP_UM, title="demo: zero field (remanence)",
                           on_event=bar)
        session.set_field(DEMO_FIELD_UT)
        inf = session.scan("in_field", center_um=DEMO_CENTER_UM, size_um=size,
                           step_um=DEMO_STEP_UM, title="demo: 40 µT along +Y", on_event=bar)
        induced = session.subtract("in_field", "remanent", "induced",
                                   command=invoked_command())
    finally:
        code = _finish(session)
    print(f"\ndemo written to {out}")
    for m in (rem, inf, induced):
        finite = m.bz[np.isfinite(m.bz)]
        peak = float(np.max(np.abs(finite))) if finite.size else math.nan
        print(f"  {m.name:9s} {m.shape[1]} × {m.shape[0]} points  field "
              f"{_vec_ut(m.applied_field)}  peak |Bz| {peak / UT:.3g} µT  "
              f"{noise_floor_text(white_noise_floor(m.bz), bound=bends_at_pixel_scale(m.bz))}")
    # silx, which the line named, comes with the test extras only: not with the README's install
    print(f"view it: {command_line(['smm-daq', 'gui', out])} (its Session tab), or list it: "
          f"{command_line(['smm-daq', 'info', out])}")
    return code


def cmd_safe(args: argparse.Namespace) -> int:
    from smm_daq.instruments.rig import make_rig_safe
    from smm_daq.instruments.safe_bound import (
        close_wait_s,
        safe_deadline,
        safe_time_bound,
        switch_off_tail_s,
    )

    profile = _safe_profile(args)
    deadline, tail = safe_deadline(profile), switch_off_tail_s(profile)
    print(f"making rig '{profile.name}' safe: coils to their safe state "
          f"({profile.coils.safe_state}), stage stopped; at most "
          f"{math.ceil(safe_time_bound(profile))} s (a supervisor must allow at least this "
          f"between SIGTERM and SIGKILL): a deadline of {deadline:.0f} s (the ramps at their "
          "rate, the settling and room for lost replies), past which each supply still "
          f"energised is switched off where it stands, in {tail:.0f} s more at most, then "
          f"{close_wait_s(profile):.0f} s for a scan's close to wait for an exchange under way "
          "with the lock-in or the fluxgate, and to send the stage's stop once more where it "
          "went amid a drop not ended",
          file=sys.stderr)
    _note_other_holder(profile)
    states = make_rig_safe(profile)
    for s in states:
        print(f"{s.role}: {'safe' if s.safe else 'NOT SAFE'}: {s.state}")
    if all(s.safe for s in states):
        print("the rig is safe", file=sys.stderr)
        return 0
    print("smm-daq: the rig may NOT be safe (see above): check the instruments named, then run "
          "this command again, or make them safe by hand at the supplies", file=sys.stderr)
    return 1


def _safe_profile(args: argparse.Namespace) -> Profile:
    """The profile `safe` makes the rig of safe: --profile's, or the one stored with scan
    --entry of --from-file."""
    from smm_daq.acquisition.resumable import stored_scan_profile

    if args.from_file is None:
        if args.entry is not None:
            raise InputError("--entry is given without --from-file; expected both (the scan "
                             "whose stored profile is used) or --profile alone")
        return load_profile(args.profile)
    if args.entry is None:
        raise InputError(f"--from-file is {path_shown(args.from_file)} without --entry; "
                         "expected the scan whose stored profile is used (smm-daq info lists them)")
    return stored_scan_profile(args.from_file, args.entry)


def _note_other_holder(profile: Profile) -> None:
    """`safe` never waits for the rig lock (it is the way out); it says who else holds it."""
    from smm_daq.instruments.rig import rig_addresses
    from smm_daq.instruments.rig_lock import holders, in_use_message

    if profile.simulated:  # each process has its own simulated rig
        return
    try:
        held = holders(rig_addresses(profile))
    except InputError as exc:  # an unusable lock directory must not stop `safe` either
        print(f"smm-daq: note: cannot tell whether another process holds the rig: {exc}",
              file=sys.stderr)
        return
    if held:
        print(f"smm-daq: note: {in_use_message(held)}; making the rig safe anyway: stop that "
              "process too, or it may go on driving the rig", file=sys.stderr)


# -- registration ------------------------------------------------------------------------------


def _add_run_options(p: argparse.ArgumentParser, *, profile: bool = True,
                     profile_default: str = "the simulator") -> None:
    if profile:
        p.add_argument("--profile", metavar="FILE",
                       help=f"instrument profile (default: {profile_default})")
    p.add_argument("--time-scale", type=float, default=None, metavar="S",
                   help="simulated seconds per real second on a simulator (default 0: as "
                        "fast as possible)")
    p.add_argument("--auto-range", action="store_true",
                   help="raise the lock-in sensitivity instead of pausing on out-of-range "
                        "readings")


def register(sub: argparse._SubParsersAction) -> None:
    """Add scan, run, resume, info, demo and safe."""
    p = sub.add_parser("scan", help="raster-scan Bz into a session file",
                       description="Raster-scan Bz on a grid at a fixed applied field.")
    p.add_argument("--center-um", required=True, metavar="X,Y",
                   help="the grid's centre in the stage's coordinates, µm")
    p.add_argument("--size-um", required=True, metavar="W,H",
                   help="the grid's width and height, µm (rounded to whole steps about the "
                        "centre, said when it is)")
    p.add_argument("--step-um", required=True, metavar="S[,SY]",
                   help="the step between points, µm: one for x and y, or SX,SY")
    p.add_argument("--field-uT", default="0,0,0", metavar="BX,BY,BZ",
                   help="the field applied during the scan, µT (default 0,0,0: zero field)")
    p.add_argument("--name", required=True, type=entry_name,
                   help="entry name in the session file")
    p.add_argument("--out", required=True, metavar="FILE.h5", help=SESSION_OUT_HELP)
    p.add_argument("--title", default="", help="a description stored with the entry")
    p.add_argument("--height-um", type=float, default=None,
                   help="scan height (default: the profile's sensor height)")
    p.add_argument("--raster", choices=("serpentine", "unidirectional"), default="serpentine",
                   help="line order: serpentine (the default: every other line backwards) or "
                        "unidirectional (every line the same way)")
    p.add_argument("--settle-tau", type=float, default=DEFAULT_SETTLE_TAU,
                   help=f"lock-in time constants to wait at each point (default "
                        f"{DEFAULT_SETTLE_TAU:g})")
    p.add_argument("--dwell-tau", type=float, default=0.0,
                   help="time constants to average over at each point (default 0: one reading)")
    p.add_argument("--fly", action="store_true",
                   help="fly the lines at constant velocity, the lock-in buffered in time "
                        "(settle and dwell then play no part)")
    p.add_argument("--pixel-time-s", type=float, metavar="S",
                   help=f"fly: seconds per pixel (default {DEFAULT_PIXEL_TIME_S:g}); the "
                        "lock-in time constant is set to at most a fifth of it")
    p.add_argument("--oversample", type=int, metavar="N",
                   help=f"fly: lock-in samples per pixel at least (default "
                        f"{DEFAULT_OVERSAMPLE})")
    p.add_argument("--fly-trigger", action="store_true",
                   help="fly: start the lock-in's buffer on the stage's trigger edge (needs "
                        "the profile's [fly] trigger_wired = true); else by software")
    p.add_argument("--line-baselines", action="store_true",
                   help="fly: subtract each line's median (slow drift between lines)")
    _add_run_options(p)
    p.set_defaults(func=cmd_scan, drives_rig=True)

    p = sub.add_parser("run", help="run a recipe of scans and steps",
                       description="Run a TOML recipe on one session file; the whole recipe "
                                   "is checked before its first step.")
    p.add_argument("recipe", metavar="RECIPE.toml",
                   help="the recipe (TOML; configs/recipes/ holds examples)")
    p.add_argument("--out", required=True, metavar="FILE.h5", help=SESSION_OUT_HELP)
    p.add_argument("--yes", action="store_true", help="continue past prompts without asking")
    p.add_argument("--continue", dest="continue_recipe", action="store_true",
                   help="continue this recipe cut off on FILE.h5: its finished scans are "
                        "skipped, a cut-off scan is resumed, the rest run (the file's entries of "
                        "the recipe's names must be its own)")
    _add_run_options(p, profile_default="the one the recipe names in [recipe] profile, else "
                                        "the simulator")
    p.set_defaults(func=cmd_run, drives_rig=True)

    p = sub.add_parser("resume", help="finish an interrupted scan",
                       description="Finish an interrupted scan from its first unfinished "
                                   "line (the profile and plan must match).")
    p.add_argument("file", metavar="FILE.h5", help="session file")
    p.add_argument("--entry", required=True, type=entry_to_read,
                   help="the scan to finish (`smm-daq info FILE.h5` names it)")
    _add_run_options(p, profile_default="the one stored with the scan")
    p.set_defaults(func=cmd_resume, drives_rig=True)

    p = sub.add_parser(
        "safe", help="ramp every coil to its safe state and stop the stage",
        description="Connect to the coils and the stage of a profile, ramp the coils to the "
                    "profile's safe state, stop the stage and print each one's final state. "
                    "For after a program was killed (kill -9) or could not make the rig safe. "
                    "Exit 0 when the rig is safe, 1 when not.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--profile", metavar="FILE", help="instrument profile")
    which.add_argument("--from-file", metavar="FILE.h5",
                       help="use the profile stored with the scan --entry of this session "
                            "file (the rig a resume opened with it)")
    p.add_argument("--entry", type=entry_to_read, help="the scan, with --from-file")
    p.set_defaults(func=cmd_safe, drives_rig=True)

    p = sub.add_parser("info", help="list a session file's entries")
    p.add_argument("file", metavar="FILE.h5", help="session file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="simulated remanent + in-field scans and the induced map",
                       description="On the simulator: a remanent and an in-field scan of the "
                                   "built-in virtual sample, the induced map and a summary.")
    p.add_argument("--out", required=True, metavar="FILE.h5",
                   help="session file to write: a new one (one that exists is refused)")
    _add_run_options(p, profile=False)
    p.set_defaults(func=cmd_demo, drives_rig=True)
