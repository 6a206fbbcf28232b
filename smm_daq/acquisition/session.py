"""The Python API for scripted acquisition: one session file, one rig, steps as methods.

    with Session.open("sample.h5") as s:               # the simulator profile by default
        s.zero_field()
        rem = s.scan("remanent", center_um=(12500, 12500), size_um=(500, 500), step_um=20)
        inf = s.scan("in_field", center_um=(12500, 12500), size_um=(500, 500), step_um=20,
                     field_uT=(0, 40, 0))
        induced = s.subtract("in_field", "remanent", "induced")
        induced.bz                                     # (ny, nx) T

Every scan ends with the rig made safe (the field ramped down); `set_field` sets the field
now and becomes the default of later scans that give none. Leaving the `with` block, however
it is left, makes the rig safe and closes it: one owner at a time makes the rig safe (a scan
still running is stopped and its own ramp-down waited for, never run beside a second one).
A session that `open` opened routes SIGTERM and SIGHUP, where the script left them at the
system's default (the process ended at once, the field left on), to stop what runs as Ctrl-C
does, until it is closed: `kill` or a batch system's time limit makes the rig safe too.
Closed from another thread (where Python sets no handler), a later signal goes to the
handler the script left, the main thread putting it back then (`unroute_termination`).
A session opened without `with` and never closed (a script that fails before its `close()`)
is closed as the program ends, the rig made safe and said so on stderr; a notebook's kernel
that goes on running keeps it open, field and all, until `close()`. `Session.open` on the
instruments of a session still open (a cell that opens one run again) is refused on a real
rig and warned of on a simulated one, naming it (`open_sessions`); `Session.close_all()`
closes every session `open` opened, whatever names the script has left for them.

An `on_event` callback that raises (a live plot's bug) does not stop the scan: the scan
goes on without that event, and once it ends an `EventCallbackWarning` says how many
events raised, the first exception and where it was raised.

A write of a scan's that has not returned once the rig was made safe (a stalled disk: on an
abort, or at the scan's end; "made_safe") is not waited for: the scan raises `WriteStalled`
(what is left unwritten), the rig is handed back, and `close` makes no scan wait. A write
stalled inside HDF5 holds h5py's lock for good: a program should end without Python's
finalization then (the command line does, with its own exit code).
"""

from __future__ import annotations

import atexit
import contextlib
import numbers
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smm_daq import interrupts
from smm_daq.acquisition import open_sessions, safe_close, sequencer
from smm_daq.acquisition.events import ScanEvent
from smm_daq.acquisition.field_aside import ramp_stopped_by_signal
from smm_daq.acquisition.fly.settings import (
    DEFAULT_OVERSAMPLE,
    DEFAULT_PIXEL_TIME_S,
    FlySettings,
)
from smm_daq.acquisition.plan import (
    DEFAULT_SETTLE_TAU,
    GridSizeWarning,
    ScanPlan,
    check_field,
    size_note,
)
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.acquisition.sequencer import Sequencer, wait_aside, wait_awake
from smm_daq.errors import InputError, SafetyError, SmmError, WriteStalled
from smm_daq.instruments.profile import Profile, load_profile
from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map
from smm_daq.storage.strings import storable
from smm_daq.thread_warnings import recorded

if TYPE_CHECKING:
    from smm_daq.analysis.subtraction import SubtractionResult

UM = 1e-6
UT = 1e-6
TERMINAL = ("finished", "failed", "aborted")

PauseHandler = Callable[[str], bool]  # reason -> True to resume, False to abort


class ScanNotFinished(SmmError):
    """A scan ended "failed" or "aborted"; its file holds the lines finished before."""

    def __init__(self, entry: str, status: str, message: str, *,
                 go_on_options: tuple[str, ...] = ()) -> None:
        self.entry = entry
        self.status = status
        # command-line options the command that goes on needs ("--auto-range": a reading
        # out of range paused the scan with nobody to raise the range)
        self.go_on_options = go_on_options
        super().__init__(f"scan '{entry}' {status}: {message}")


class EventCallbackWarning(UserWarning):
    """A scan's `on_event` callback raised; the scan went on without it."""


class SessionStillOpenWarning(UserWarning):
    """`Session.open` of a simulated rig while a session this process opened on the same
    instruments is still open (a notebook's cell run again): opened beside it, its own world."""


def no_operator(reason: str) -> bool:
    """Default pause handler of scripted use: nobody can resume, so abort."""
    return False


class Session:
    """A session file and an open rig. Use `Session.open` as a context manager."""

    def __init__(self, path: str | Path, rig: Any, *, on_pause: PauseHandler = no_operator
                 ) -> None:
        self.path = Path(path)
        self.rig = rig
        self.on_pause = on_pause
        # The field later scans apply when they give none, in T (SI, as `MapData` holds
        # fields), not in µT as `set_field` takes it: `field_uT` is it in µT. Not a reading:
        # every scan ends with the field ramped down.
        self.field: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.last_sequencer: Sequencer | None = None
        # What the last make_safe could not do, while nothing has touched the rig since it;
        # None: the rig may have been changed since (or a making safe had not ended), close()
        # makes it safe again.
        self._safe_problems: list[str] | None = None
        self._left = False  # the last scan was left to a write that has not returned
        # ... and its thread was still making the rig safe then: what was known of the rig
        # (said when the making safe of close's, after that one, does not end either)
        self._left_safing: list[str] = []
        self._routes_signals = False  # opened by `open`: SIGTERM and SIGHUP routed until closed

    @classmethod
    def open(
        cls,
        path: str | Path,
        profile: Profile | str | Path | None = None,
        *,
        time_scale: float = 0.0,
        world_options: dict[str, Any] | None = None,
        on_pause: PauseHandler = no_operator,
    ) -> Session:
        """Open the rig of `profile` (a Profile, a profile file, or None: the simulator).

        `time_scale` (simulated seconds per real second, 0 = as fast as possible) and
        `world_options` (e.g. {"sample": VirtualSample(...)}) apply to simulated rigs.
        `on_pause(reason)` decides whether a paused scan resumes (True) or aborts. A `path`
        no scan could write (in a folder that does not exist, a file that is not smm-daq's
        session file) is refused (InputError) before the rig is connected.
        """
        from smm_daq.cli.args import session_file
        from smm_daq.instruments.rig import open_rig

        # as the command line checks --out: a folder that does not exist, or a file that is
        # no session file, is refused before the rig connects (its stage referenced)
        session_file("Session.open's path", str(path))
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        _check_none_open_on(prof)
        # a connect's reference move is stopped by SIGTERM too (not routed from a thread)
        routed = interrupts.route_termination()
        try:
            rig = open_rig(prof, time_scale=time_scale, world_options=world_options)
        except BaseException:
            if routed:
                interrupts.unroute_termination()
            raise
        session = cls(path, rig, on_pause=on_pause)
        session._routes_signals = routed  # `close` undoes it
        atexit.register(session._close_at_exit)  # `close` unregisters it
        open_sessions.add(session)  # ... and takes it off
        return session

    @staticmethod
    def open_sessions() -> tuple[Session, ...]:
        """The sessions `open` opened in this process and nobody has closed, the earliest
        first: a notebook's cell `s = Session.open(...)` run twice leaves the first open with
        no name for it."""
        return open_sessions.listed()

    @staticmethod
    def close_all() -> list[str]:
        """Close every session of `open_sessions()`, each rig made safe; returns what could
        not be made safe, each prefixed with its session's path. An error closing one (its
        rig made safe before) is raised once every other is closed, with what could not be
        made safe as a note."""
        problems: list[str] = []
        failed: BaseException | None = None
        for session in open_sessions.listed():
            try:
                problems += [f"{session.path}: {p}" for p in session.close()]
            except Exception as exc:  # its rig made safe before; the others' are still on
                failed = failed or exc
        if failed is not None:
            if problems:  # never lost with the error
                failed.add_note("rig NOT safe: " + "; ".join(problems))
            raise failed
        return problems

    def __repr__(self) -> str:
        opened = open_sessions.opened_at(self)
        since = f", open since {opened}" if opened else ""
        return f"<Session on {str(self.path)!r}{since}, field_uT={self.field_uT} for later scans>"

    def _close_at_exit(self) -> None:
        """Close a session the program never closed (no `with`, or a script that failed
        before its `close()`): the rig is made safe as the program ends, and that is said."""
        from smm_daq.instruments.rig import safety_statement

        # said, but never in the way of the making safe: a stderr gone with the terminal (the
        # SIGHUP of a closed ssh session) or a reader that ended raises OSError on a write
        with contextlib.suppress(OSError):
            print(f"smm-daq: the session on {self.path} was not closed; making the rig safe "
                  "as the program ends", file=sys.stderr)
        problems = self.close()
        with contextlib.suppress(OSError):
            print(f"smm-daq: {safety_statement(self.profile, problems)}", file=sys.stderr)

    @classmethod
    def open_for_resume(
        cls,
        path: str | Path,
        entry: str,
        *,
        time_scale: float = 0.0,
        world_options: dict[str, Any] | None = None,
        on_pause: PauseHandler = no_operator,
    ) -> Session:
        """Open the rig of the profile stored with the interrupted scan `entry` of `path`.

        The entry is checked whole first (InputError when it cannot be resumed), so a
        damaged or finished entry never opens the rig. Then `resume(entry)` finishes it.
        """
        profile = load_resumable(path, entry).stored_profile()
        return cls.open(path, profile, time_scale=time_scale, world_options=world_options,
                        on_pause=on_pause)

    @property
    def profile(self) -> Profile:
        return self.rig.profile

    @property
    def field_uT(self) -> tuple[float, float, float]:
        """`field` (T) in µT, the unit `set_field` and `scan(field_uT=...)` take: the field
        later scans apply when they give none (the last `set_field`'s; zero initially and
        after `zero_field`), not a reading. Rounded to 1e-9 µT, so that 40 reads back as 40,
        not 40.00000000000001."""
        bx, by, bz = (round(b / UT, 9) for b in self.field)
        return (bx, by, bz)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> list[str]:
        """Make the rig safe and close it; returns what make_safe could not do.

        A scan still running is aborted and waited for: its worker makes the rig safe, and
        that result stands unless the rig was touched after it (what a making safe that ended
        could not do is said, not tried at once again: that would double the time the
        command may take to end). One left to a stalled write (`WriteStalled`) is not waited
        for: it touches the rig no more; if its thread was still making the rig safe then,
        the rig is made safe here, after that (which holds the rig's lock). One whose write
        is told stalled once aborted here is left to it alike. A scan still
        preparing (its start setting the lock-in, creating the entry) is aborted at its next
        step alike; a start that raises instead leaves the rig to be made safe here. The
        making safe here is waited for `safe_close.safe_wait_s` at most, and Ctrl-C meanwhile
        is raised once it has ended (a script ending at once would kill it, the field on),
        with a note where it had not ended that the rig may not be safe. A close made as a
        first Ctrl-C is handled (a `with` block's exit, an `except KeyboardInterrupt:`) only
        acknowledges a Ctrl-C meanwhile: the first goes on, and what the making safe could
        not do is returned. Ctrl-C in the wait for a scan closes the rig (handed back from a
        scan left to its stalled write) and is re-raised.
        """
        atexit.unregister(self._close_at_exit)
        # of two threads closing it at once (close_all beside a background close), only the
        # one that took it off gives back the signals its open took
        routed = open_sessions.remove(self) and self._routes_signals
        self._routes_signals = False
        try:
            return self._close()
        finally:
            if routed:
                interrupts.unroute_termination()

    def _close(self) -> list[str]:
        seq = self.last_sequencer
        try:
            if seq is not None and seq.state not in TERMINAL and not self._left:
                seq.abort("the session was closed")
                if not seq.wait_or_stalled():  # made safe; its write is not waited for
                    if seq.hand_back_rig():
                        self._safe_problems = list(seq.safety_problems)
                elif seq.state in TERMINAL:
                    self._safe_problems = list(seq.safety_problems)
        except BaseException:  # Ctrl-C: a scan left to its stalled write touches it no more
            try:
                if seq is not None and seq.stalled_write is not None:
                    seq.hand_back_rig()
            finally:
                self.rig.close()
            raise
        if self._safe_problems is not None:
            self.rig.close()
            return list(self._safe_problems)
        ended, problems = safe_close.make_safe_and_close(self.rig)
        self._safe_problems = problems if ended else [*self._left_safing, *problems]
        return list(self._safe_problems)

    # -- steps ------------------------------------------------------------------------------

    def scan(
        self,
        name: str,
        *,
        center_um: tuple[float, float],
        size_um: tuple[float, float],
        step_um: float | tuple[float, float],
        field_uT: tuple[float, float, float] | None = None,
        height_um: float | None = None,
        raster: str = "serpentine",
        settle_tau: float = DEFAULT_SETTLE_TAU,
        dwell_tau: float = 0.0,
        title: str = "",
        on_event: Callable[[ScanEvent], None] | None = None,
        auto_range: bool = False,
        fly: bool = False,
        pixel_time_s: float | None = None,
        oversample: int | None = None,
        line_baselines: bool | None = None,
        fly_trigger: bool | None = None,
    ) -> MapData:
        """Scan a grid centred on `center_um` into entry `name`; returns the map.

        Without `field_uT` the session's field (last `set_field`, initially zero) is applied.
        `fly` flies the lines, with `pixel_time_s` (default 0.05 s), `oversample` (default 8),
        `line_baselines` and `fly_trigger`, as the `scan` command's options of those names; one
        of these given without `fly` is refused, as there.
        A size that is no whole number of steps is warned of (GridSizeWarning, naming the area
        the grid covers instead), as the command line warns of it. Raises InputError before
        anything moves when the plan does not fit the profile, and ScanNotFinished when the
        scan fails or is aborted.
        """
        center = _numbers(center_um, "center_um", (2,), "x, y in µm") * UM
        size = _numbers(size_um, "size_um", (2,), "width, height in µm") * UM
        steps = _numbers(step_um, "step_um", (0, 2), "µm: one step, or x and y") * UM
        field = (self.field if field_uT is None else tuple(
            float(b) for b in _numbers(field_uT, "field_uT", (3,), "bx, by, bz in µT") * UT))
        flown = _fly_settings(fly, pixel_time_s=pixel_time_s, oversample=oversample,
                              line_baselines=line_baselines, fly_trigger=fly_trigger)
        plan = ScanPlan.from_center(
            name,
            (float(center[0]), float(center[1])),
            (float(size[0]), float(size[1])),
            float(steps) if steps.ndim == 0 else (float(steps[0]), float(steps[1])),
            field=field,  # type: ignore[arg-type]
            height=self.profile.sensor.height if height_um is None else height_um * UM,
            raster=raster,
            settle_tau=settle_tau,
            dwell_tau=dwell_tau,
            title=title,
            fly=flown,
        )
        note = size_note((float(size[0]), float(size[1])), (plan.step_x, plan.step_y),
                         (plan.nx, plan.ny))
        if note:
            warnings.warn(f"scan {name!r}: {note}", GridSizeWarning, stacklevel=2)
        return self.scan_plan(plan, on_event=on_event, auto_range=auto_range)

    def scan_plan(
        self,
        plan: ScanPlan,
        *,
        recipe_text: str = "",
        on_event: Callable[[ScanEvent], None] | None = None,
        auto_range: bool = False,
        resume: bool = False,
        recipe_file: str = "",
    ) -> MapData:
        """Run `plan` (or, with `resume`, finish its unfinished entry); returns the map. A
        recipe's scan stores its `recipe_text` and the `recipe_file` it was read from.

        Ctrl-C (or a signal) once the scan's worker has begun, its start included, aborts
        the scan and waits for the rig to be made safe before it goes on."""
        hint = (f"open the session with Session.open_for_resume({str(self.path)!r}, "
                f"{plan.name!r}) to use the profile stored with the scan, or with the profile "
                f"it was started with")
        seq = Sequencer(self.rig, self.path, plan, recipe_text=recipe_text, resume=resume,
                        resume_hint=hint, auto_range=auto_range, recipe_file=recipe_file)
        wake, stalled = threading.Event(), threading.Event()
        seq.subscribe(lambda e: (e.kind == "paused" or e.kind in TERMINAL) and wake.set())
        seq.subscribe(lambda e: e.kind == "made_safe" and (stalled.set(), wake.set()))
        if on_event is not None:
            seq.subscribe(on_event)
        # published before its worker can act: a close from another thread once it has
        # started aborts this scan (one before it left to a stalled write is no longer the
        # last); a start that fails before its worker began puts back what is known of the
        # earlier scan's thread
        earlier = self.last_sequencer, self._left, self._left_safing
        go_on_options: tuple[str, ...] = ()
        try:
            try:  # a Ctrl-C as it is published leaves no scan never started as the last
                self.last_sequencer = seq
                self._safe_problems, self._left, self._left_safing = None, False, []
                seq.start()
            except BaseException:  # a setting may have changed (then made safe by the start)
                if seq.cut_off("the start was cut off"):  # no worker of its runs
                    self.last_sequencer, self._left, self._left_safing = earlier
                    self._safe_problems = None
                raise  # once its worker began (a Ctrl-C): that scan is aborted below
            while seq.state not in TERMINAL:
                wait_awake(wake)
                wake.clear()
                if seq.state not in TERMINAL and stalled.is_set():
                    self._leave(seq)
                if seq.state == "paused":
                    if self.on_pause(seq.message):
                        seq.resume()
                    else:
                        if seq.paused_for_range:
                            go_on_options = ("--auto-range",)
                        seq.abort(self._unanswered(plan.name, seq.paused_for_range,
                                                   auto_range))
        except WriteStalled:
            raise
        except BaseException as exc:  # Ctrl-C, a signal, or a failing pause handler
            if not seq.started:
                raise
            seq.abort("interrupted (Ctrl-C or a termination signal)"
                      if isinstance(exc, KeyboardInterrupt) else f"aborted: {exc}")
            while seq.state not in TERMINAL and not stalled.is_set():
                try:
                    wait_awake(wake)
                except KeyboardInterrupt as again:  # a script's (Python's own handler): a
                    # scan left making the rig safe would die with the program (a daemon)
                    interrupts.acknowledge(str(again) or "SIGINT")
                    continue
                wake.clear()
            if seq.state not in TERMINAL:
                self._leave(seq)  # WriteStalled instead: the program ends without the write
            seq.wait()
            self._safe_problems = list(seq.safety_problems)
            raise
        status = seq.wait()
        self._safe_problems = list(seq.safety_problems)
        _warn_of_callback_errors(seq, on_event)
        if seq.error is not None:
            raise seq.error
        if status != "finished":
            raise ScanNotFinished(plan.name, status, seq.message, go_on_options=go_on_options)
        return read_map(self.path, plan.name)

    def _unanswered(self, entry: str, for_range: bool, auto_range: bool) -> str:
        """Why a paused scan is aborted with nobody to resume it, and how it goes on. A
        reading out of range pauses a resume again at the same point unless its range is
        raised: connecting sets the profile's sensitivity again, whatever was set at the
        lock-in's front panel meanwhile, so the way on is `--auto-range`."""
        if not for_range:
            return (f"aborted with no operator to resume it; "
                    f"`{resume_command(self.path, entry)}` continues the scan")
        go_on = resume_command(self.path, entry, "--auto-range")
        if auto_range:
            return (f"aborted with no operator to resume it; once the reading is within the "
                    f"lock-in's largest range, `{go_on}` continues the scan")
        return (f"aborted with no operator to resume it; `{go_on}` continues the "
                "scan, raising the lock-in's range where needed (connecting sets the "
                "profile's lockin.sensitivity_V again, so without --auto-range it pauses "
                "here again)")

    def _leave(self, seq: Sequencer) -> None:
        """Leave `seq` to its write that has not returned (the rig was made safe): it touches
        the rig no more; raises `WriteStalled`. A making safe of its still under way once
        `hand_back_rig` waits no longer leaves the rig's state unknown: `close` makes the rig
        safe again, after it, rather than close the rig under it."""
        handed_back = seq.hand_back_rig()
        self._left = True
        self._safe_problems = list(seq.safety_problems)
        if not handed_back:
            waited = sequencer.hand_back_wait_s(self.rig)
            self._left_safing = [*self._safe_problems, (
                f"the scan's thread was still making it safe {waited:.0f} s after the program "
                "stopped waiting for the write, as long as making it safe may take (an "
                "instrument not answering, or another making safe under way holding the rig)")]
            self._safe_problems = None
        raise seq.stall_error()

    def resume(self, entry: str, *, on_event: Callable[[ScanEvent], None] | None = None,
               auto_range: bool = False) -> MapData:
        """Finish an interrupted scan entry from its first unfinished line.

        The rig must be the one the scan was started with (same profile and lock-in time
        constant), else InputError before any setting: `open_for_resume` opens that one.
        """
        stored = load_resumable(self.path, entry)
        return self.scan_plan(stored.plan, recipe_text=stored.recipe, on_event=on_event,
                              auto_range=auto_range, resume=True)

    def set_field(self, field_uT: tuple[float, float, float]) -> None:
        """Ramp to `field_uT` (µT) now (checked against the profile); later scans default
        to it (`field_uT` in µT, `field` in T).

        Ctrl-C or a termination signal meanwhile stops the ramp at its next step and makes
        the rig safe from there within the make-safe bound of the signal
        (`ramp_stopped_by_signal`); `close` then does not make it safe again."""
        b = tuple(float(v) for v in _numbers(field_uT, "field_uT", (3,), "µT") * UT)
        check_field(b, self.profile, label="field_uT")
        self._safe_problems = None
        ramp_stopped_by_signal(self.rig, np.array(b), self._made_safe)
        self.field = b  # type: ignore[assignment]

    def _made_safe(self, problems: list[str]) -> None:
        """The rig was made safe (a stopped ramp), with `problems` left; `close` need not."""
        self._safe_problems = list(problems)

    def zero_field(self) -> None:
        """Ramp to zero applied field (the profile's safe state) by the bounded make-safe
        path (`Rig.zero_coils`: a slow or dead supply cannot hold it past the limit `smm-daq
        safe` prints, one still energised at its deadline switched off); later scans default
        to zero field. A script's Ctrl-C meanwhile does not cut the ramp-down short: it is
        raised once that has ended (`sequencer.past_signals`)."""
        self._safe_problems = None
        within = sequencer.hand_back_wait_s(self.rig)
        zeroed, put_off = sequencer.past_signals(self.rig.zero_coils, within)
        failed = zeroed.raised() if zeroed.done.is_set() else SafetyError(
            f"the field's ramp-down did not end within {within:.0f} s (a supply not "
            "answering, or a making safe under way in another thread that has not ended); "
            "the program does not wait for it any longer")
        if put_off is not None:  # the Ctrl-C stops the script, whatever the ramp-down did
            raise put_off from failed
        if failed is not None:
            raise failed
        self.field = (0.0, 0.0, 0.0)

    def subtract(self, in_field: str, remanent: str, name: str, *, register: bool = True,
                 on_warning: Callable[[Warning], None] | None = None,
                 apply_insignificant: bool = False, shift_as_begun: tuple[str, ...] = (),
                 by_sds_alone: bool = False, recipe_text: str = "", recipe_file: str = "",
                 command: str = "") -> MapData:
        """In-field minus (registered) remanent into a new entry `name`; returns the map. A shift
        not significantly different from zero is applied only with `apply_insignificant`
        (forced: InputError where no shift was determined), or as the subtractions
        `shift_as_begun` of a recipe begun by an earlier release applied theirs (where none was
        determined, none is applied, as by default); `by_sds_alone` decides that by its SDs
        alone, as a release before the correlation of its errors was counted did
        (`subtract_maps`). The entry's `apply_insignificant_shift` records the force as given,
        and the recipe's way only where it applied such a shift (not where none was
        determined, nor where the shift found was significant: the default's subtraction). A
        recipe's subtraction records the recipe's text (`recipe_text`, and the `recipe_file` it
        was read from), as its scans do; `command`, the command line that made it (the demo's,
        a recipe's `run`), is recorded as `smm-daq subtract` records its own.

        Its warnings (a registration's shift that may be an artefact, or a note of one left
        out; recorded in the entry too) are warned again in the caller's thread, at the
        caller's line: raised in the thread doing the file work, a caller's `catch_warnings`
        would not meet them. With `on_warning`, each the filters would show goes to it
        instead, one Warning each, its category telling a note from a warning (-W ignore drops
        it). The filters decide in the caller's thread before anything is written: -W error
        raises the first warning and writes no entry, as `smm-daq subtract`.

        The file work waits in a thread of its own (`wait_aside`), as a scan's start does: a
        field set before (a recipe's `set_field` step) must not stay on past Ctrl-C while a
        stalled disk holds the file; the rig is made safe, and WriteStalled follows when the
        file has not answered `WRITE_STALLED_S` later.
        """
        # Imported here: registration pulls in scipy.signal (~2 s), which every `smm-daq`
        # command would otherwise pay at start-up.
        from smm_daq.analysis.induced_entry import subtraction_of_entries, write_subtraction
        from smm_daq.analysis.subtraction import insignificant_shift_applied

        def stalled() -> WriteStalled:
            info, repair = (command_line(["smm-daq", verb, self.path])
                            for verb in ("info", "repair"))
            run = command_line(["smm-daq", "run", "RECIPE", "--out", self.path, "--continue"])
            return WriteStalled(
                f"the subtraction '{name}' into {self.path} has not returned (the disk "
                "stalled?); the program ends without waiting for it. Once the disk answers, "
                f"`{info}` shows whether entry '{name}' is there (a recipe: `{run}` runs the "
                f"steps left); `{repair}` makes a file left open for writing openable")

        def work() -> tuple[SubtractionResult, list[warnings.WarningMessage]]:
            with recorded(whatever_the_filters=True) as caught:
                made = subtraction_of_entries(self.path, in_field, remanent, name,
                                              register=register,
                                              apply_insignificant=apply_insignificant,
                                              shift_as_begun=shift_as_begun,
                                              by_sds_alone=by_sds_alone)
            return made, caught

        what = f"subtraction {name!r} into {self.path.name}"
        made, caught = wait_aside(work, what, make_safe=self._make_safe, stalled=stalled)
        shown: list[warnings.WarningMessage] = []
        for w in caught:  # what the filters say of each here: told, dropped or raised
            with recorded() as told:
                warnings.warn(w.message, stacklevel=2)
            shown += told
        as_begun = bool(shift_as_begun) and insignificant_shift_applied(made)
        recorded_too: dict[str, object] = {
            "apply_insignificant_shift": np.uint8(apply_insignificant or as_begun)}
        if recipe_text:
            recorded_too["recipe"] = recipe_text
        if recipe_file:
            recorded_too["recipe_file"] = storable(recipe_file)
        if command:
            recorded_too["command"] = command
        wait_aside(lambda: write_subtraction(self.path, made, register=register,
                                             parameters=recorded_too), what,
                   make_safe=self._make_safe, stalled=stalled)
        for w in shown:
            if on_warning is None:
                warnings.warn(w.message, stacklevel=2)
            else:
                on_warning(w.message)
        return made.map

    def _make_safe(self) -> None:
        """Make the rig safe now (a signal during file work); `close` need not again, unless
        its thread was left running: `close` then makes it safe after that thread (which
        holds the rig's own lock) rather than close the rig's links under it."""
        # a Ctrl-C meanwhile is the one being handled's
        problems, _, left = sequencer.made_safe_past_signals(self.rig)
        if left is None:
            self._safe_problems = problems
        else:
            self._safe_problems, self._left_safing = None, problems

    def read(self, entry: str) -> MapData:
        """The Bz map of any entry of the session file (`read_map`: of a χ or magnetization
        entry the Bz its model predicts, of an MMT entry its residual; χ or M itself, with its
        SD, is `smm_daq.storage.product_maps.read_product_map`)."""
        return read_map(self.path, entry)


def _check_none_open_on(profile: Profile) -> None:
    """Before a session's rig connects: a session this process opened on any of its
    instruments and nobody closed (a notebook's cell run again) refuses a real rig
    (`RigInUse`: two sessions would drive one coil supply; the rig lock would refuse it too,
    without naming the session) and is warned of on a simulated one (a world of its own,
    `SessionStillOpenWarning`), naming that session and how to close it."""
    earlier = open_sessions.on_the_rig_of(profile)
    if not profile.simulated:  # a simulated session holds none of the instruments it names
        earlier = [s for s in earlier if not s.profile.simulated]
    if not earlier:
        return
    them = "; ".join(open_sessions.described(s) for s in earlier)
    verb = "is" if len(earlier) == 1 else "are"
    if not profile.simulated:
        from smm_daq.instruments.rig_lock import RigInUse

        raise RigInUse(f"Session.open: {them} {verb} still open on this rig's instruments; "
                       "expected the rig free: "
                       + open_sessions.still_open_advice(earlier, first=True))
    warnings.warn(f"Session.open: {them} {verb} still open on this simulated rig's "
                  "instruments; this session opens a simulated world of its own beside it (on "
                  "a real rig it would be refused): "
                  + open_sessions.still_open_advice(earlier, first=False),
                  SessionStillOpenWarning, stacklevel=_outside_this_module())


def _fly_settings(fly: bool, *, pixel_time_s: float | None, oversample: int | None,
                  line_baselines: bool | None, fly_trigger: bool | None) -> FlySettings | None:
    """`scan`'s fly keywords as the plan's settings; one given to a scan that does not fly
    would be left unread, and is refused (as the command line refuses --pixel-time-s without
    --fly)."""
    if not fly:
        given = {"pixel_time_s": pixel_time_s, "oversample": oversample,
                 "line_baselines": line_baselines, "fly_trigger": fly_trigger}
        unread = next((key for key, value in given.items() if value is not None), None)
        if unread is not None:
            raise InputError(f"{unread} is given, but fly is False; expected fly=True to fly "
                             "the lines, or no fly keyword (a scan measured point by point "
                             "leaves it unread)")
        return None
    # of the kinds the plan stores (a resume reads 8.0 samples, or "no" for false, as damage)
    pixel = DEFAULT_PIXEL_TIME_S if pixel_time_s is None else pixel_time_s
    if isinstance(pixel, bool) or not isinstance(pixel, numbers.Real):
        raise InputError(f"pixel_time_s is {pixel!r}; expected a time in s")
    samples = DEFAULT_OVERSAMPLE if oversample is None else oversample
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral):
        raise InputError(f"oversample is {samples!r}; expected a whole number of lock-in "
                         "samples per pixel")
    flags = {"line_baselines": line_baselines, "fly_trigger": fly_trigger}
    for key, flag in flags.items():
        if flag is not None and not isinstance(flag, bool):
            raise InputError(f"{key} is {flag!r}; expected True or False")
    return FlySettings(pixel_time=float(pixel), oversample=int(samples),
                       baselines=bool(line_baselines), trigger=bool(fly_trigger))


def _numbers(value: object, keyword: str, sizes: tuple[int, ...], unit: str) -> np.ndarray:
    """`value` as floats: a single number (size 0 in `sizes`) or a sequence of one of
    `sizes`; else InputError naming the keyword, not a TypeError from deep in the plan."""
    try:
        arr = None if isinstance(value, str | bytes) else np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim > 1 or (arr.size if arr.ndim else 0) not in sizes:
        want = " or ".join("a number" if n == 0 else f"{n} numbers" for n in sizes)
        raise InputError(f"{keyword} is {value!r}; expected {want} ({unit})")
    return arr


def _warn_of_callback_errors(seq: Sequencer, on_event: Callable[[ScanEvent], None] | None
                             ) -> None:
    """Say that the script's `on_event` raised (the sequencer drops a subscriber's exception,
    so that a broken display never breaks a scan): otherwise a live plot's bug goes unseen."""
    if on_event is None or not seq.subscriber_errors:
        return
    first = seq.subscriber_errors[0]
    frames = traceback.extract_tb(first.__traceback__)
    at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    count = seq.subscriber_error_count
    warnings.warn(
        f"scan '{seq.plan.name}': on_event raised for {count} event{'' if count == 1 else 's'}"
        f" (the scan went on); the first: {type(first).__name__}: {first}{at}",
        EventCallbackWarning, stacklevel=_outside_this_module())


def _outside_this_module() -> int:
    """The stack level of the script's call into this module (`scan`, `scan_plan`, `resume`),
    for a warning that points at the script's line."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    return level
