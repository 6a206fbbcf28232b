"""The scan sequencer: runs one `ScanPlan` on a rig, a line at a time, into a session file.

Per scan: set the field (ramped) and verify it with the fluxgate when the rig has one; then per
point: move, wait `settle_tau` lock-in time constants on the rig's clock, read X/Y (averaged
over `dwell_tau` time constants when > 0), check for overload and over-range, convert volts to
tesla through the profile's sensor (Bz = (V - offset_V) / sensitivity_V_per_T, V = X or R);
per line: write and flush (`smm_daq.storage.scan_entry`).

Faults: a timeout or garbled reply is retried (`retries` more times); a lost instrument, or a
fault that persists, ends the scan as "failed". A lock-in overload (still there after settling
and reading once more: the latch also catches transients while moving) or a reading above
`overrange_fraction` of full scale pauses the scan with the reason, unless `auto_range` is on:
then the sensitivity is raised one range and the point re-read (the full scale of every point
is stored, so the data stay consistent); only at the largest range does it pause.

A plan with `fly` settings is flown instead, a line at a time (`smm_daq.acquisition.fly.scan`),
with the same field handling, pausing at line boundaries, resuming and ending. Every scan
adds the rig-clock seconds it ran to its entry's `rig_clock_duration`.

Whatever ends the scan (finished, abort, an instrument failure, an unexpected exception,
Ctrl-C) runs `rig.make_safe()` and then writes the scan's duration and final status to the
file, in that order, before the terminal event is published.

Every write of the worker to the file (`_writing`: a line, the duration, the measured field,
a status) touches no instrument, and a slow or stalled disk can hold it for minutes. An abort
that comes during one (or before one begins) makes the rig safe at once, in a thread of its
own, without waiting for the write. Once the rig is safe, by such an abort or at the scan's
end, a write that has not returned `WRITE_STALLED_S` later is told by a "made_safe" event
(how the rig is, which write the file holds), so that a window can let its user go; its owner
then hands the rig back (`hand_back_rig`) and ends without the write (`stall_error` says what
is left unwritten).

Before the worker starts, the file is read and the entry created (or reopened) on the caller's
thread; each of these waits for a thread of its own (`_aside`), so that a signal still reaches
a command line's main thread while a stalled disk holds the file: the rig (with any field set
before the scan) is made safe, and a file still not answering `WRITE_STALLED_S` later ends the
start with `WriteStalled`. An abort meanwhile (a window's Abort) is one during a write: the
rig made safe at once and a stall told by "made_safe"; once the file work returns, the start
ends the scan "aborted" without touching an instrument again. An abort while the lock-in is
set up (a session closed from another thread) ends the start before the entry is created.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from smm_daq import interrupts
from smm_daq.acquisition.ambient_drift import DriftWatch
from smm_daq.acquisition.aside import Aside
from smm_daq.acquisition.duration import ScanDuration, scan_duration
from smm_daq.acquisition.events import ScanEvent
from smm_daq.acquisition.field_held import coils_off, expected_currents, held_allowed
from smm_daq.acquisition.fly.scan import FlyScan
from smm_daq.acquisition.notes import told
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import check_same_time_constant, load_resumable
from smm_daq.errors import (
    InputError,
    InstrumentError,
    InstrumentLost,
    InstrumentTimeout,
    MoveStopped,
    ProtocolError,
    RampStopped,
    RangeError,
    ReadStopped,
    ReplyUnknown,
    SafetyError,
    StorageError,
    WriteStalled,
)
from smm_daq.instruments import driver_calls, ramp_pieces
from smm_daq.instruments.drop_wait import once_dropped
from smm_daq.instruments.interfaces import STOP_SLICE_S
from smm_daq.instruments.profile import DRIFT_TOLERANCE_NT
from smm_daq.instruments.ramp_stop import RampStop
from smm_daq.instruments.rig import safe_command_hint, safe_from
from smm_daq.instruments.safe_bound import real_time_bound
from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.h5file import Replaced
from smm_daq.storage.scan_entry import ScanEntryWriter, check_new_scan, check_same_profile

T = TypeVar("T")
TRANSIENT = (InstrumentTimeout, ProtocolError)
FIELD_READINGS = 4  # fluxgate readings averaged to verify the field
FIELD_ATTEMPTS = 3  # verification attempts, FIELD_RECHECK_S apart (a ramp may still settle)
FIELD_RECHECK_S = 1.0
OVERLOAD = "lock-in overload"
SIGNAL_POLL_S = 0.05  # real seconds: how soon a waiting main thread runs a signal's handler
# real seconds (the disk's time, not the rig's): a write not returned this long after the rig
# was made safe (by an abort, or at the scan's end) is reported as stalled ("made_safe"); a
# write that is merely slower than the ramp-down is not
WRITE_STALLED_S = 5.0
STATES = ("idle", "running", "paused", "finished", "aborted", "failed")
# how "made_safe" ends: a window goes on (a command line ends at once and drops it)
ENDS_WHEN_IT_RETURNS = ": the scan ends when it does"
# a subscriber's errors kept (the first ones, each with its traceback); one that fails at every
# point of a long scan would otherwise hold millions
SUBSCRIBER_ERRORS_KEPT = 10


class _Aborted(Exception):
    """Raised inside the worker to unwind at once when abort() was called."""


class Sequencer(FlyScan):
    """Runs one scan in a worker thread (`start`) or in the caller's thread (`run`).

    `rig`: an open `smm_daq.instruments.rig.Rig`. `path`: the session file (created if missing).
    `plan`: what to scan; the entry is `plan.name`. `recipe_text`: stored with the scan, and
    `recipe_file`, the file it was read from. `resume`: continue the unfinished entry
    `plan.name` from its first unfinished line (the stored plan and profile fingerprint must
    match); `resume_hint`: how the user resumes with the profile (and lock-in time constant) the
    scan was started with, where the rig's differs (said in the refusal; the caller knows how
    its user chose the profile). `auto_range`: raise the lock-in sensitivity instead of pausing
    when a reading is out of range. `retries`: extra attempts for a transient instrument error.

    Subscribers (`subscribe`) receive `ScanEvent`s from the worker thread; keep them quick.
    """

    def __init__(
        self,
        rig: Any,
        path: str | Path,
        plan: ScanPlan,
        *,
        recipe_text: str = "",
        recipe_file: str = "",
        resume: bool = False,
        resume_hint: str = "open the rig with the profile the scan was started with",
        auto_range: bool = False,
        retries: int = 2,
    ) -> None:
        self.rig = rig
        self.path = Path(path)
        self.plan = plan
        self.recipe_text = recipe_text
        self.recipe_file = recipe_file
        self.resume_entry = resume
        self.resume_hint = resume_hint
        self.auto_range = auto_range
        self.retries = retries
        self.message = ""  # why the scan paused or ended
        # range changes and other things worth telling the user, every one (the final
        # message tells a few of each kind: `told`)
        self.notes: list[str] = []
        self.safety_problems: list[str] = []  # what make_safe could not do
        self.error: BaseException | None = None  # an unexpected exception that ended the scan
        # the instrument lost that ended the scan, or that failed the call under way at an abort
        self.lost: InstrumentLost | None = None
        # paused for a reading out of the lock-in's range (its remedy is a larger range)
        self.paused_for_range = False
        self.subscriber_errors: list[BaseException] = []  # the first SUBSCRIBER_ERRORS_KEPT
        self.subscriber_error_count = 0  # all of them
        self._subscribers: list[Callable[[ScanEvent], None]] = []
        self._cond = threading.Condition()
        self._state = "idle"
        self._pause_requested = False
        self._abort_requested = False
        self._aborted = RampStop(rig.clock)  # set with `_abort_requested`: when, on its clock
        self._thread: threading.Thread | None = None
        self._ends_it: str | None = None  # who ends the scan: "worker" (`_work`) or "cut_off"
        self._writer: ScanEntryWriter | None = None
        self._done = threading.Event()
        self._line = 0  # index iy of the line measured; messages count lines from 1
        self._points_done = 0
        self._run_start: float | None = None
        self._run_points = 0
        self._run_paced = False  # the run's first point done: the pace counts from it
        self._estimate: ScanDuration | None = None  # `_duration`
        self._full_scale = math.nan
        self._tau = math.nan  # s, the lock-in time constant the scan is taken with
        self._reference = (math.nan, math.nan)  # Hz, V: the lock-in's reference, as at the start
        self._z_pending = True
        self._overload_unknown = False  # the last overload query's reply was lost
        self._drift: DriftWatch | None = None  # the ambient field watched, with a fluxgate
        self._time_mark: float | None = None  # rig clock of the last `rig_clock_duration` update
        self._storing: str | None = None  # what the worker is writing (touching no instrument)
        self._writes = 0  # the worker's writes begun
        self._watched = 0  # the last write watched (`_watch_write`)
        self._watchers: list[threading.Thread] = []  # each joined before the final event
        # one making the rig safe at a time, taken and given back in the making safe's own
        # thread (`_make_safe_once`)
        self._safing = threading.Lock()
        # the `done` of the last making safe's thread: one given up on holds `_safing`
        self._safing_held_for: threading.Event | None = None
        self._rig_safe_now = False  # made safe after an abort or at the end: it stays so
        # the worker made the rig safe itself, in the path an abort during the field's ramp
        # or the lines began, touching it no more since: `_finish` has nothing to make safe
        # again
        self._safe_from_abort = False
        self._emitting = threading.Lock()  # events from the worker and the watchers
        self._rig_handed_back = False  # its owner has made the rig safe and closed it
        self.stalled_write: str | None = None  # the write last told by "made_safe"

    # -- control (any thread) -------------------------------------------------------------

    @property
    def state(self) -> str:
        """"idle", "running", "paused", "finished", "aborted" or "failed"."""
        with self._cond:
            return self._state

    @property
    def entry(self) -> str:
        return self.plan.name

    @property
    def started(self) -> bool:
        """Whether the worker began: it then ends the scan itself (at once when aborted);
        otherwise nothing runs this scan."""
        with self._cond:
            return self._ends_it == "worker"

    def cut_off(self, reason: str) -> bool:
        """After a start that raised: whether this scan is cut off, no worker of its to run
        (else one runs it: abort it). A start cut off once prepared (Ctrl-C as its worker was
        launched) ends here as "aborted", the rig made safe and the entry closed; a worker
        launched in the instant before, its thread not yet running, then touches nothing."""
        with self._cond:
            if self._ends_it == "worker":
                return False
            self._ends_it = "cut_off"
            prepared = self._state == "running"
        if prepared:
            self.abort(reason)
            self._finish("aborted", self.message)
        return True

    @property
    def entry_opened(self) -> bool:
        """Whether the start created (or reopened) the entry: an abort while the file was
        read before leaves none."""
        return self._writer is not None

    def subscribe(self, callback: Callable[[ScanEvent], None]) -> None:
        """Call `callback(event)` for every event, from the worker thread."""
        self._subscribers.append(callback)

    def start(self) -> None:
        """Check everything and create (or reopen) the entry, then scan in a worker thread.

        Raises InputError (nothing moved, nothing written) when the plan does not fit the
        profile, the entry exists (or, resuming, does not match). A failure once an
        instrument setting has changed (a capture rate the lock-in refuses, a file that
        cannot be written) leaves the rig made safe, and what could not be made safe noted
        on the error.
        """
        if not self._prepared():
            return
        self._thread = threading.Thread(target=self._work, name=f"scan {self.entry}",
                                        daemon=True)
        self._thread.start()

    def run(self) -> str:
        """Scan in the calling thread; returns the final status. Ctrl-C makes the rig safe,
        marks the scan "aborted", and is re-raised."""
        if self._prepared():
            self._work()
        if self.error is not None:
            raise self.error
        return self.state

    def pause(self) -> None:
        """Pause at the next point boundary (the field stays on)."""
        with self._cond:
            self._pause_requested = True

    def resume(self) -> None:
        """Continue a paused scan (re-settling and re-reading the point it paused on)."""
        with self._cond:
            self._pause_requested = False
            self._cond.notify_all()

    def abort(self, reason: str = "aborted by the operator") -> None:
        """Stop within a slice of the wait under way (a point's move, settling or dwell: the
        stage stopped where it is), else after the instrument exchange under way; the rig is
        then made safe (at once, when the worker is writing to the file)."""
        with self._cond:
            if not self._abort_requested:
                self._aborted.set()
                self._abort_requested = True
                paused_for = self.message if self._state == "paused" else ""
                self.message = f"paused ({paused_for}), then {reason}" if paused_for else reason
            self._cond.notify_all()
            if self._storing is not None and self._watched != self._writes:
                self._watch_write()  # the worker sees the abort after the write, or at the end

    def hand_back_rig(self) -> bool:
        """The rig's owner makes it safe and closes it now, without waiting for the scan's
        end (a window closing while a write told by "made_safe" has not returned): the
        worker touches the rig no more; the safety it reports is what the last safing found.

        A making safe under way (the worker's at the scan's end, its write having returned
        just now) is waited for, up to `hand_back_wait_s` (a rig that hangs must not hold
        the owner's own making safe for good), so that it does not run on beside the owner's
        or after the rig is closed. Returns whether it ended in that time: False, the
        worker's thread may still be making the rig safe (the owner is to say so).

        `_safing` is taken and given back in a thread of its own, which this one waits for:
        a Ctrl-C in the main thread as it was taken would leave it held for good."""
        wait = hand_back_wait_s(self.rig)

        def handed_back() -> bool:
            ended = self._safing.acquire(timeout=wait)
            try:
                with self._cond:
                    self._rig_handed_back = True
            finally:
                if ended:
                    self._safing.release()
            return ended

        aside = Aside(handed_back, f"handing back the rig of {self.entry}")
        aside.start()
        wait_awake(aside.done)
        return aside.result()

    def wait(self, timeout: float | None = None) -> str:
        """Wait (real seconds) for the worker to end, or a start that raised; returns the
        state ("idle" after such a start).

        Ctrl-C while waiting aborts the scan, waits for the rig to be safe, and re-raises.
        """
        try:
            wait_awake(self._done, timeout)
        except KeyboardInterrupt:
            self.abort("interrupted (Ctrl-C or a termination signal)")
            wait_awake(self._done)
            raise
        return self.state

    def wait_or_stalled(self) -> bool:
        """Wait for the worker's end (or a start that raised), or for a write it waits on to
        be told stalled ("made_safe": the rig was made safe); returns whether it ended. The
        owner of a scan told stalled hands the rig back (`hand_back_rig`) rather than wait
        for a disk that may never answer. Ctrl-C meanwhile is re-raised once either came."""
        try:
            return self._ended_or_stalled()
        except KeyboardInterrupt:
            self.abort("interrupted (Ctrl-C or a termination signal)")
            self._ended_or_stalled()
            raise

    def _ended_or_stalled(self) -> bool:
        while not wait_awake(self._done, SIGNAL_POLL_S):
            with self._cond:
                if self.stalled_write is not None:
                    return False
        return True

    # -- preparation (caller's thread) ----------------------------------------------------

    def _prepared(self) -> bool:
        """`_prepare`, or False once an abort during it has ended the scan as "aborted" (the
        rig made safe, its final event published), no instrument touched after the abort.
        A start that raises ends `wait` too (the state stays "idle"): one who aborted it
        from another thread (a session's close) is not left waiting for a worker that never
        runs."""
        try:
            self._prepare()
        except _Aborted:
            self._finish("aborted", self.message or "aborted")
            return False
        except BaseException:
            self._done.set()
            raise
        return True

    def _prepare(self) -> None:
        if self.state != "idle":
            raise RuntimeError("a Sequencer runs one scan once")
        profile = self.rig.profile
        self.plan.validate(profile)
        self._checkpoint(pausable=False)  # aborted before it began
        # what only asks the instruments and reads the file: a refusal changes neither (an
        # instrument that fails to answer is made safe all the same)
        try:
            if self.plan.fly is not None:
                self._plan_fly()
        except InstrumentError as exc:
            self._make_safe_after(exc)
            raise
        if self.resume_entry:
            self._aside(self._check_resumable, "reading the entry to resume from")
        else:
            self._aside(lambda: check_new_scan(self.path, self.entry), "reading")
        self._checkpoint(pausable=False)  # aborted while the file was read
        # from the first setting changed on an instrument, any failure ends with the rig safe
        try:
            if self.plan.fly is not None:
                self._set_up_fly_lockin()
            else:
                self._use_profile_time_constant()
            snapshot = (None if self.resume_entry  # on this thread
                        else self._once_dropped(self.rig.snapshot))
            self._checkpoint(pausable=False)  # aborted while the lock-in was set: no entry
            self._writer = self._aside(lambda: self._open_writer(snapshot),
                                       "reopening the entry in" if self.resume_entry
                                       else "creating the entry in")
        except (WriteStalled, _Aborted):  # the rig made safe already, or by `_finish`
            raise
        except KeyboardInterrupt:  # in the caller's thread: a lock-in's wait (an SR860's
            self._make_safe_once()  # capture stop, minutes) with a field set before it
            raise
        except Exception as exc:
            self._make_safe_after(exc)
            raise
        self._checkpoint(pausable=False)  # aborted while the entry was created
        with self._cond:
            self._state = "running"

    def _aside(self, work: Callable[[], T], what: str) -> T:
        """`work()` (the file's, before the worker starts) in a thread of its own
        (`wait_aside`): Ctrl-C meanwhile makes the rig safe (a field set before the scan
        would stay on else), and a file not answering `WRITE_STALLED_S` after ends the start
        with WriteStalled (`what` is the write not returned). The wait is one of the
        sequencer's writes (`_writing`): an abort from another thread (a window's) makes the
        rig safe at once and tells a stall by "made_safe".
        """
        def stalled() -> WriteStalled:
            self.stalled_write = what
            return self.stall_error()

        with self._writing(what):
            return wait_aside(work, f"{what} of {self.entry}", make_safe=self._make_safe_once,
                              stalled=stalled)

    def stall_error(self) -> WriteStalled:
        """The error its owner ends with, past the write told by "made_safe" (or the file
        work of the start that did not return): what is left unwritten, how the file is left,
        what to run once the disk answers. Says nothing of the rig: whoever closes it does."""
        what = self.stalled_write or "the scan"
        where, entry = self.path, self.entry
        resume = resume_command(where, entry)
        info, repair = (command_line(["smm-daq", verb, where]) for verb in ("info", "repair"))
        run = command_line(["smm-daq", "run", self.recipe_file or "RECIPE", "--out", where,
                            "--continue"])
        recipe = (f" (a recipe's scan: `{run}` does it and runs the steps after it)"
                  if self.recipe_text else "")
        ends = "has not returned (the disk stalled?); the program ends without waiting for it"
        if self._writer is None:  # still starting: nothing was measured
            head = f"scan '{entry}': {what} {where} {ends}"
            return WriteStalled(
                f"{head}. Nothing was measured in this run. Once the disk answers, "
                f"`{info}` shows whether the entry is there: if it is, `{resume}` runs the "
                f"scan (else start it again){recipe}; an entry whose creation was cut off is "
                f"left out by `{repair}`")
        head = f"scan '{entry}': the write of {what} to {where} {ends}"
        if what.startswith("the scan's final status"):
            left = what
        elif what == "the scan's duration":
            left = "the scan's duration and its final status"
        else:
            left = f"{what}, the scan's duration and its final status"
        return WriteStalled(
            f"{head}. Left unwritten: {left}. The file is as a crash leaves it: every line "
            "stored before is kept (a line cut off is not marked done) and the scan reads "
            f"\"interrupted\". Once the disk answers, `{resume}` "
            "measures the lines not stored (with none left, it sets the field, checks it and "
            f"writes the final status){recipe}; a write cut off inside HDF5 leaves the file "
            f"marked open for writing, which smm-daq clears itself and `{repair}` clears "
            "for other HDF5 readers")

    def _open_writer(self, snapshot: dict[str, Any] | None) -> ScanEntryWriter:
        """The entry resumed, or a new one laid out for the plan with the rig's `snapshot`
        (touches no instrument)."""
        rig_start = self.rig.clock.now()  # the run's start: its times count from here
        if self.resume_entry:
            return ScanEntryWriter.reopen(self.path, self.entry, rig_start)
        return ScanEntryWriter.create(
            self.path,
            name=self.entry,
            title=self.plan.title,
            x=self.plan.x,
            y=self.plan.y,
            field=np.array(self.plan.field),
            height=self.plan.height,
            plan_text=self.plan.to_text(),
            profile=self.rig.profile,
            snapshot=snapshot or {},
            recipe_text=self.recipe_text,
            recipe_file=self.recipe_file,
            streams=self._fly_layout() if self.plan.fly is not None else None,
            rig_start=rig_start,
        )

    def _make_safe_after(self, exc: BaseException) -> None:
        """Make the rig safe after `exc` ended the start; what could not be done goes with
        it as a note, for whoever shows the error (the window has no other way to learn it)."""
        try:
            # as every making safe, holding `_safing`: never beside one given up on and still
            # running, nor once the rig was handed back (a close past a stalled write)
            self._make_safe_once(again=True)
        except KeyboardInterrupt as put_off:  # a Ctrl-C meanwhile: it is told too
            self._note_not_safe(put_off)
            raise
        finally:
            self._note_not_safe(exc)

    def _note_not_safe(self, exc: BaseException) -> None:
        if self.safety_problems:
            exc.add_note("rig NOT safe: " + "; ".join(self.safety_problems) + ". "
                         + safe_command_hint(self.rig.profile))

    def _use_profile_time_constant(self) -> None:
        """A step scan settles and dwells in units of the profile's lock-in τ, with which its
        plan was checked and timed: the lock-in is set to it, whatever a fly scan or the
        window's controls left on it (a fresh connection from the command line does the
        same)."""
        tau = self.rig.profile.lockin.time_constant
        if not math.isclose(self._call(self.rig.lockin.time_constant), tau, rel_tol=1e-6):
            self._call(self.rig.lockin.set_time_constant, tau)

    def _check_resumable(self) -> None:
        record = load_resumable(self.path, self.entry)
        where = f"{self.path}, entry '{self.entry}'"
        diff = record.plan.difference(self.plan)
        if diff is not None:
            raise InputError(f"the plan does not match the stored plan: {diff}", source=where)
        check_same_profile(record.fingerprint, self.rig.profile, where, hint=self.resume_hint)
        tau = (self.rig.profile.lockin.time_constant if self._fly is None
               else self._fly.time_constant)
        check_same_time_constant(record, tau, where, hint=self.resume_hint)

    # -- the worker -------------------------------------------------------------------------

    def _work(self) -> None:
        with self._cond:
            if self._ends_it is not None:  # cut off before its thread ran (`cut_off`)
                return
            self._ends_it = "worker"
        status, message = "failed", ""
        try:
            self._execute()
            status = "finished"
            message = self._lines_missing()
            if message:
                status = "failed"
        except _Aborted:
            status, message = "aborted", self.message or "aborted"
        except KeyboardInterrupt:
            status, message = "aborted", "interrupted (Ctrl-C or a termination signal)"
            raise
        except InstrumentLost as exc:
            status, message = "failed", f"instrument lost: {exc}"
            self.lost = exc
        except (InstrumentError, SafetyError) as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
        except StorageError as exc:
            status, message = "failed", str(exc)
            if Path(self.path).exists() and not isinstance(exc, Replaced):  # another file
                message += (f"; the lines stored before are kept: "
                            f"`{resume_command(self.path, self.entry)}` finishes the scan "
                            "once the file can be written")
        except BaseException as exc:
            status, message = "failed", f"unexpected {type(exc).__name__}: {exc}"
            self.error = exc
        finally:
            self._finish(status, message)

    def _execute(self) -> None:
        rig = self.rig
        assert self._writer is not None
        noise = rig.begin_measurement(self.entry, self._writer.run)
        if noise is not None:  # a simulated rig's: recorded, so that it can be drawn again
            with self._writing("the run's noise base"):
                self._writer.set_noise(*noise)
        self._time_mark = rig.clock.now()  # the duration counts the field's ramp too
        self._tau = self._call(rig.lockin.time_constant)
        self._reference = self._call(rig.lockin.reference)
        self._full_scale = self._call(rig.lockin.sensitivity)
        self._set_field()
        # an abort from here on is acted on within a slice of the wait under way (a move, a
        # point's settling or dwell); the exchange under way then and the making safe after it
        # are one bounded path from the abort (`safe_from`), as for the field's ramp
        with safe_from(rig.profile, rig.clock, self._aborted):
            try:
                self._scan_lines()
            except Exception as exc:
                if not self._aborted.is_set():
                    raise
                # made safe already by an abort during a write (a thread of its own, a path of
                # its own, maybe long before this): `_finish` makes it safe again, as it did
                self._safe_from_abort = self._make_safe_once()
                if isinstance(exc, InstrumentError):
                    self.notes.append(f"at line {self._line + 1}, the instrument call under "
                                      f"way as the scan was aborted failed: {exc}")
                    if isinstance(exc, InstrumentLost):  # aborted, but its link is gone
                        self.lost = exc
                elif not isinstance(exc, _Aborted):
                    raise  # a write that failed: said as such, the rig made safe
                raise _Aborted from None

    def _scan_lines(self) -> None:
        """Measure the lines the entry has not done yet, step by step or flown."""
        plan, rig = self.plan, self.rig
        writer = self._writer
        assert writer is not None
        tau = self._tau
        todo = np.flatnonzero(~writer.line_done)
        self._points_done = (plan.ny - todo.size) * plan.nx
        self._emit("started", line=int(todo[0]) if todo.size else 0,
                   message=f"{todo.size} of {plan.ny} lines to measure")
        self._run_start, self._run_paced = rig.clock.now(), False
        if plan.fly is not None:
            self._execute_fly(todo.tolist())
            return
        sensor = rig.profile.sensor
        xs, ys = plan.x, plan.y
        bz = np.empty(plan.nx)
        lx = np.empty(plan.nx)
        ly = np.empty(plan.nx)
        fs = np.empty(plan.nx)
        t = np.empty(plan.nx)
        for iy in todo.tolist():
            self._line = iy
            for ix in plan.line_order(iy):
                self._checkpoint()
                x_v, y_v = self._measure_point(float(xs[ix]), float(ys[iy]), tau)
                v = x_v if sensor.channel == "X" else math.hypot(x_v, y_v)
                b = (v - sensor.offset_V) / sensor.sensitivity_V_per_T
                bz[ix], lx[ix], ly[ix], fs[ix], t[ix] = (b, x_v, y_v, self._full_scale,
                                                         rig.clock.now())
                self._points_done += 1
                self._run_points += 1
                if not self._run_paced:
                    # the run's first point came from wherever the stage was (down from its
                    # reference to the scan height, seconds): no rate for the points after it
                    self._run_paced = True
                    self._run_start, self._run_points = rig.clock.now(), 0
                self._emit("point", line=iy, index=(iy, int(ix)), bz=b)
            self._check_field_held()
            self._check_lockin_held()
            said = self._store_line(iy, bz, lx, ly, fs, t)
            self._account_time()
            self._emit("line_done", line=iy, message=said)

    def _store_line(self, iy: int, *values: np.ndarray, **kw: Any) -> str:
        """`ScanEntryWriter.write_line`, during which an abort makes the rig safe at once,
        with the fluxgate's reading at the line's end where the rig has one. Returns what
        that reading tells of the ambient field's drift ("": nothing), also kept as a note."""
        writer = self._writer
        assert writer is not None
        field, said = self._line_field(iy)
        with self._writing(f"line {iy + 1}"):
            writer.write_line(iy, *values, line_field=field, **kw)  # type: ignore[arg-type]
        if said:
            self.notes.append(said)
        return said

    def _line_field(self, iy: int) -> tuple[np.ndarray | None, str]:
        """One fluxgate reading at the end of line `iy` (None without a fluxgate) and what
        it tells of the drift (`DriftWatch`). A fluxgate that fails to answer ends the
        watch, said once, not the scan: the map does not depend on it. One that answers
        with no field (its output beyond the multimeter's range: a field far from the
        start's) is said as such and read again at the next line's end."""
        watch = self._drift
        if watch is None:
            return None, ""
        try:
            field = np.asarray(self._call(self.rig.fluxgate.read_field), dtype=float)
        except (*TRANSIENT, InstrumentLost) as exc:
            self._drift = None
            return None, (f"the fluxgate did not answer at the end of line {iy + 1} ({exc}): the "
                          "ambient field's drift is not watched for the rest of this run")
        except InstrumentError as exc:
            return None, watch.unread(iy + 1, str(exc))
        return field, watch.check(iy + 1, field)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """The worker writes `what` to the file, touching no instrument meanwhile: an abort
        during the write, or before it, makes the rig safe at once, and once the rig is safe
        (also at the scan's end) the write is watched (`_watch_write`)."""
        with self._cond:
            self._writes += 1
            self._storing = what
            if self._abort_requested or self._rig_safe_now:
                self._watch_write()
        try:
            yield
        finally:
            with self._cond:
                self._storing = None
                self._cond.notify_all()  # a watcher waiting to see the write return

    def _lines_missing(self) -> str:
        """Why the scan is not finished although its loop ended ("" when every line is)."""
        done = self._writer.line_done if self._writer is not None else np.zeros(0, bool)
        if done.shape == (self.plan.ny,) and bool(done.all()):
            return ""
        return (f"{int(np.count_nonzero(done))} of {self.plan.ny} lines are stored; the scan "
                "is not finished")

    def _account_time(self) -> None:
        """Add the rig-clock time since the last mark to the entry's `rig_clock_duration`."""
        if self._time_mark is None or self._writer is None:
            return
        now = self.rig.clock.now()
        with self._writing("the scan's duration"):
            self._writer.add_duration(now - self._time_mark)
        self._time_mark = now

    def _check_field_held(self) -> None:
        """Before a line is stored: the coils still make the plan's field.

        A supply that tripped or a coil that lost its current mid-line would otherwise leave a
        map that mixes fields under a "finished" status. The check reads the coil currents
        (cheap, once a line) and allows for their read-back accuracy, its offset at zero field
        too (`field_held.held_allowed`): it catches a lost axis, not calibration drift, which
        the fluxgate check at the start of the scan covers. When it fails, the currents are
        read again to name the coils off, by how much, and whether that may be a trip (a
        current far above its setpoint is not one).

        An abort asked before it, or during its read, ends it (`_Aborted`): the line is not
        stored, and neither the currents nor the lock-in (`_check_lockin_held`, after it) are
        asked anything more, so that the rig is made safe after the exchange under way; a
        field found off is said all the same (a note: the scan ends "aborted"). (One
        asked during the line's last exchange, the fluxgate's reading at its end, lets the
        line be written: that touches no instrument, and the rig is made safe at once.)
        """
        rig = self.rig
        requested = np.array(self.plan.field)
        self._checkpoint(pausable=False)
        held = np.asarray(self._call(rig.coils.field), dtype=float)
        allowed = held_allowed(rig.profile.coils, requested)
        error = float(np.linalg.norm(held - requested))
        if error > allowed and self._abort_pending():  # what was found is said all the same
            self.notes.append(
                f"the coils no longer held the field at the end of line {self._line + 1}: "
                f"their currents made {_ut(held)} µT for {_ut(requested)} µT requested (off "
                f"by {error * 1e9:.0f} nT, allowed {allowed * 1e9:.0f} nT); not read again, "
                "the scan being aborted")
        self._checkpoint(pausable=False)
        if error > allowed:
            coils = rig.profile.coils
            try:
                measured = np.asarray(self._call(rig.coils.currents), dtype=float)
            except InstrumentLost:  # its link gone: said as such, with how to reconnect
                raise
            except InstrumentError as exc:  # a supply that tripped may not answer: the
                # failure found is said all the same
                off = [f"the currents did not read again to name the coils off ({exc})"]
            else:
                expected = expected_currents(requested, coils.calibration, coils.ambient_field)
                off = coils_off(measured, expected, coils.calibration, allowed)
            raise SafetyError(
                f"the coils no longer hold the field during line {self._line + 1}: "
                f"{'; '.join(off)}. Their currents make {_ut(held)} µT for {_ut(requested)} µT "
                f"requested (off by {error * 1e9:.0f} nT, allowed {allowed * 1e9:.0f} nT). "
                "The line was not stored"
            )

    def _check_lockin_held(self) -> None:
        """Before a line is stored: the lock-in still has the scan's time constant and
        reference (frequency, amplitude: the sensor's excitation).

        A lock-in restarted mid-scan (a power cut; over TCP its link is reopened by the next
        exchange) comes back with its defaults, as does one changed at its front panel: the
        line would be stored as settled and filtered with the scan's τ and excited as at its
        start, silently. Once a line, it costs three queries. An abort asked meanwhile ends
        it after the query under way (`_Aborted`, the line not stored; a change found is
        said all the same), as in `_check_field_held`: also between the reference's two.
        """
        tau = self._call(self.rig.lockin.time_constant)
        changed = []
        if not math.isclose(tau, self._tau, rel_tol=1e-6):
            changed.append(f"time constant {tau:g} s (the scan's {self._tau:g} s)")
        if not self._abort_pending():
            with contextlib.suppress(_Aborted):  # raised below, once what was found is said
                changed += self._reference_differences()
        if changed and self._abort_pending():  # what was found is said all the same
            self.notes.append(f"the lock-in's settings changed during line {self._line + 1}: "
                              f"{', '.join(changed)}")
        self._checkpoint(pausable=False)
        if changed:
            raise InstrumentError(
                f"the lock-in's settings changed during line {self._line + 1}: "
                f"{', '.join(changed)}; was it restarted (a power cut) or set at its front "
                f"panel? The line was not stored. `{resume_command(self.path, self.entry)}` "
                "connects it anew, setting the profile's settings again, and measures the "
                "lines left")

    def _reference_differences(self) -> list[str]:
        """How the lock-in's reference (frequency, amplitude: the sensor's excitation) now
        differs from the scan's, each as 'reference ... (the scan's ...)'; none: []. An
        abort between its frequency and its amplitude asks no more (`_Aborted`)."""
        try:
            frequency, amplitude = self._call(driver_calls.reference, self.rig.lockin,
                                              stop=self._abort_pending)
        except ReadStopped:  # an abort between its queries: `_Aborted`, as at a checkpoint
            self._checkpoint(pausable=False)
            raise
        changed = []
        if not math.isclose(frequency, self._reference[0], rel_tol=1e-6):
            changed.append(f"reference frequency {frequency:g} Hz (the scan's "
                           f"{self._reference[0]:g} Hz)")
        if not math.isclose(amplitude, self._reference[1], rel_tol=1e-6):
            changed.append(f"reference amplitude {amplitude:g} V (the scan's "
                           f"{self._reference[1]:g} V)")
        return changed

    def _set_field(self) -> None:
        """Ramp to the plan's field and verify it; record what was measured."""
        rig = self.rig
        b = np.array(self.plan.field)
        # an abort ends the ramp at its next step, and the rig is made safe from where it got
        # to: the step under way and that making safe are one bounded path from the abort
        # (`safe_from`), so that it ends within the limit `smm-daq safe` prints, what a
        # supervisor waits between SIGTERM and SIGKILL
        with safe_from(rig.profile, rig.clock, self._aborted):
            try:
                # in pieces where the driver does not say it honours the stop
                self._call(ramp_pieces.set_field, rig.coils, rig.profile, b,
                           self._abort_pending)
            except Exception as exc:
                if not self._aborted.is_set():
                    raise
                stopped = str(exc) if isinstance(exc, RampStopped) else (
                    f"{rig.coils.name}: the ramp was stopped during its step, which failed"
                    + (f": {exc}" if str(exc) else ""))
                self._make_safe_once()
                self._safe_from_abort = True
                self.notes.append(f"{stopped}; the field was made safe from there")
                if isinstance(exc, InstrumentLost):  # aborted, but its link is gone
                    self.lost = exc
                raise _Aborted from None
        tolerance = rig.profile.coils.field_tolerance
        for attempt in range(FIELD_ATTEMPTS):
            self._checkpoint(pausable=False)
            if rig.fluxgate is not None:
                measured = np.mean(
                    [self._call(rig.fluxgate.read_field) for _ in range(FIELD_READINGS)], axis=0
                )
            else:
                measured = np.asarray(self._call(rig.coils.field), dtype=float)
            with self._writing("the measured field"):
                self._writer.set_measured_field(  # type: ignore[union-attr]
                    measured, rig.clock.now())
            error = float(np.linalg.norm(measured - b))
            if rig.fluxgate is None:
                return
            if error <= tolerance:
                self._drift = self._drift_watch(measured)
                return
            if attempt < FIELD_ATTEMPTS - 1:
                self._wait(FIELD_RECHECK_S)
        raise SafetyError(
            f"field verification failed: the fluxgate reads {_ut(measured)} µT for "
            f"{_ut(b)} µT requested, off by {error * 1e9:.0f} nT (tolerance "
            f"{tolerance * 1e9:.0f} nT); check the coil calibration (`smm-daq calibrate-coils`)"
        )

    def _drift_watch(self, measured: np.ndarray) -> DriftWatch:
        """What each line's fluxgate reading is compared with: this run's field check, or,
        resuming, the check of the run that stored the scan's first lines (the map's lines
        must agree with those, and each run's check may be off the field asked for by up to
        the field tolerance, the other way)."""
        fluxgate = self.rig.profile.fluxgate
        drift = fluxgate.drift_tolerance if fluxgate is not None else DRIFT_TOLERANCE_NT * 1e-9
        stored = self._writer.stored_lines_check if self._writer is not None else None
        if stored is None:
            return DriftWatch(measured, drift)
        return DriftWatch(stored, drift,
                          since="the scan's start (the run that stored its first lines)")

    def _measure_point(self, x: float, y: float, tau: float) -> tuple[float, float]:
        if self._z_pending:
            self._move(x, y, self.plan.height)
            self._z_pending = False
        else:
            self._move(x, y)
        settle = self.plan.settle_tau * tau
        reread = False
        while True:
            self._wait(settle)
            x_v, y_v = self._read(tau)
            self._checkpoint(pausable=False)  # an abort during the read: no overload query
            problem = self._range_problem(x_v, y_v)
            if problem is None:
                return x_v, y_v
            if problem == OVERLOAD and (not reread or self._overload_unknown):
                # latched by a transient while moving? settle and read again; its latch's
                # reply lost, no overload is known: read again, not ranged up or paused
                reread = True
                continue
            if self.auto_range and self._raise_range(problem):
                continue
            self._pause_for_range(problem)

    def _read(self, tau: float) -> tuple[float, float]:
        lockin = self.rig.lockin
        n = int(self.plan.dwell_tau) + 1
        if n == 1:
            return self._call(lockin.read_xy)
        readings = []
        for i in range(n):
            if i:
                self._wait(tau)
            readings.append(self._call(lockin.read_xy))
        mx, my = np.mean(readings, axis=0)
        return float(mx), float(my)

    def _wait(self, seconds: float) -> None:
        """Wait `seconds` on the rig's clock (a point's settling or dwell, the field check's
        pause before it looks again), in slices of `STOP_SLICE_S`: an abort meanwhile ends it
        at the next slice (`_Aborted`), so that the rig is made safe within that of the abort,
        however many time constants it waits."""
        clock = self.rig.clock
        end = clock.now() + seconds
        while (left := end - clock.now()) > 0:
            self._checkpoint(pausable=False)
            clock.sleep(min(STOP_SLICE_S, left))

    def _move(self, *target: float) -> None:
        """Move the stage to `target` (absolute: sent again, it moves nowhere new); an abort
        meanwhile stops it where it is, within `STOP_SLICE_S` (`Stage.move_to`). The error
        check after the move having its reply lost (`ReplyUnknown`: the error is cleared by
        reading it, so it is not asked again), whether the move was refused is unknown: it
        is sent once more, and its own check tells; lost again, the stage is taken as lost."""
        move = self.rig.stage.move_to
        try:
            try:
                self._call(move, *target, stop=self._abort_pending)
            except ReplyUnknown as exc:
                self.notes.append(f"at line {self._line + 1}, {exc}: the move sent again")
                self._call(move, *target, stop=self._abort_pending)
        except MoveStopped as exc:
            self.notes.append(f"at line {self._line + 1}, {exc}")
            raise _Aborted from None

    def _lockin_overloaded(self) -> bool:
        """The lock-in's overload latch. Its reply lost once (`ReplyUnknown`: the latch is
        cleared by reading it, so it is not asked again) counts as an overload, so the point
        is read or the line flown again (not paused, nor the sensitivity raised: no overload
        is known) rather than the scan ended; lost twice in a row, the lock-in is taken as
        lost."""
        try:
            overloaded = self._call(self.rig.lockin.overloaded)
        except ReplyUnknown as exc:
            if self._overload_unknown:
                raise
            self._overload_unknown = True
            self.notes.append(f"at line {self._line + 1}, {exc}: taken as an overload, measured "
                              "again (the point read, the line flown again)")
            return True
        self._overload_unknown = False
        return bool(overloaded)

    def _range_problem(self, x_v: float, y_v: float) -> str | None:
        if self._lockin_overloaded():
            return OVERLOAD
        limit = self.rig.profile.lockin.overrange_fraction * self._full_scale
        worst = max(abs(x_v), abs(y_v))
        if worst > limit:
            return (f"lock-in reading {worst:.4g} V is beyond "
                    f"{self.rig.profile.lockin.overrange_fraction:.0%} of the "
                    f"{self._full_scale:.4g} V full scale")
        return None

    def _raise_range(self, problem: str) -> bool:
        lockin = self.rig.lockin
        before = self._full_scale
        try:
            self._call(lockin.set_sensitivity, before * 2.0)
        except RangeError:  # at the lock-in's largest range already (nothing was sent)
            return False
        self._full_scale = self._call(lockin.sensitivity)
        if self._full_scale <= before:
            return False
        self.notes.append(f"{problem} at line {self._line + 1}: lock-in full scale raised from "
                          f"{before:.4g} V to {self._full_scale:.4g} V")
        return True

    def _pause_for_range(self, problem: str) -> None:
        """Pause for a reading out of range (`paused_for_range` meanwhile); with
        `auto_range`, saying that the lock-in has no larger range to raise it to."""
        if self.auto_range:
            problem = (f"{problem}, at the lock-in's largest range ({self._full_scale:.4g} V "
                       "full scale): auto-range can raise it no further")
        self.paused_for_range = True
        try:
            self._pause_and_wait(problem)
        finally:
            self.paused_for_range = False

    def _abort_pending(self) -> bool:
        """Whether an abort was asked for (a long instrument call, the field's ramp, asks)."""
        with self._cond:
            return self._abort_requested

    def _checkpoint(self, *, pausable: bool = True) -> None:
        with self._cond:
            if self._abort_requested:
                raise _Aborted
            pause = pausable and self._pause_requested
        if pause:
            self._pause_and_wait("paused by the operator")

    def _pause_and_wait(self, reason: str) -> None:
        writer = self._writer
        assert writer is not None
        while True:
            with self._cond:
                if self._abort_requested:
                    raise _Aborted
                self._state = "paused"
                self._pause_requested = True
                self.message = reason
            with self._writing("the paused status"):
                writer.set_status("paused", reason)
            self._emit("paused", line=self._line, message=reason)
            with self._cond:
                while self._pause_requested and not self._abort_requested:
                    self._cond.wait()
                if self._abort_requested:
                    raise _Aborted
            changed = self._time_constant_changed() or self._reference_changed()
            if changed is None:
                break
            reason = changed
        with self._cond:
            self._state = "running"
            self.message = ""
        with self._writing("the running status"):
            writer.set_status("running")
        self._checkpoint(pausable=False)  # an abort during that write: no instrument again
        # The remedy for an overload is a larger range, set at the lock-in while paused: its
        # full scale is read again, for the range check and the range stored with each reading.
        before = self._full_scale
        self._full_scale = self._call(self.rig.lockin.sensitivity)
        if self._full_scale != before:
            self.notes.append(f"lock-in full scale {before:.4g} V -> {self._full_scale:.4g} V "
                              f"while paused at line {self._line + 1}")
        self._run_start, self._run_points = self.rig.clock.now(), 0  # pause time is not rate
        # a lost check at a line's start is failed on only when the retry straight after it
        # loses one too; a pause between them (the stage stopped, the line flown again from
        # its start) makes the next start a first try
        self._start_unknown = False
        self._emit("resumed", line=self._line)

    def _time_constant_changed(self) -> str | None:
        """Why the scan cannot go on after a pause: the lock-in's time constant changed (at
        its front panel) while paused; None when it is the scan's.

        Every line of the entry is settled, read (and, flown, reconstructed) with one τ, the
        one the entry records and a resume is checked against: lines taken with another
        would be recorded wrongly, so the scan stays paused until it is set back."""
        tau = self._call(self.rig.lockin.time_constant)
        if math.isclose(tau, self._tau, rel_tol=1e-6):
            return None
        return (f"the lock-in time constant was changed to {tau:g} s while paused; this scan "
                f"is taken and recorded with {self._tau:g} s: set it back to {self._tau:g} s "
                "at the lock-in and resume, or abort and start a new scan with the new one")

    def _reference_changed(self) -> str | None:
        """As `_time_constant_changed`, for the lock-in's reference: one changed while paused
        (its excitation lowered against an overload, say) keeps the scan paused until it is
        set back, rather than failing it once the next line is measured."""
        changed = self._reference_differences()
        if not changed:
            return None
        return (f"the lock-in's reference was changed while paused: {', '.join(changed)}; "
                "this scan is excited and recorded with the scan's: set it back at the "
                "lock-in and resume, or abort and start a new scan with the new one")

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Call an instrument, retrying transient errors; abort wins between attempts."""
        for attempt in range(self.retries + 1):
            try:
                return self._once_dropped(fn, *args, **kw)
            except TRANSIENT:
                if attempt == self.retries:
                    raise
                with self._cond:
                    if self._abort_requested:
                        raise _Aborted from None
        raise AssertionError("unreachable")

    def _once_dropped(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """`fn(*args, **kw)`, asked again once a link has dropped the rest of a reply an
        earlier making safe cut short (`StillDropping`: refused, nothing sent; a scan started
        again from the window while its poll has that drop under way), rather than the scan
        failing on it; an abort meanwhile is seen within `STOP_SLICE_S` (`_Aborted`)."""
        return once_dropped(lambda: fn(*args, **kw), lambda: self._checkpoint(pausable=False))

    def _watch_write(self) -> None:
        """Watch the write in hand, in a thread of its own (call with `_cond` held)."""
        self._watched = self._writes
        watcher = threading.Thread(target=self._watching, args=(self._writes,), daemon=True,
                                   name=f"watch the write of {self.entry}")
        self._watchers.append(watcher)
        watcher.start()

    def _watching(self, write: int) -> None:
        """A watcher of write number `write`: the rig made safe unless it is already (an abort
        during the write), then, if the write has not returned `WRITE_STALLED_S` after,
        "made_safe" published naming it (before the final event: `_finish` waits for this
        thread)."""
        self._make_safe_once()
        with self._cond:
            stalled = not self._cond.wait_for(
                lambda: self._writes != write or self._storing is None, WRITE_STALLED_S)
            what = self._storing
            if stalled:
                self.stalled_write = what
        if not stalled:
            return
        if self.safety_problems:
            said = ("rig NOT safe: " + "; ".join(self.safety_problems) + ". "
                    + safe_command_hint(self.rig.profile))
        else:
            said = "the rig is safe (stage stopped, field at its safe state)"
        # still starting (`_aside`): `what` is the file work, e.g. "creating the entry in"
        write = (f"{str(what)[:1].upper()}{str(what)[1:]} {self.path.name}"
                 if self._writer is None else f"The write of {what} to {self.path.name}")
        self._emit("made_safe", line=self._line, rig_safe=not self.safety_problems,
                   message=f"{said}. {write} has not returned (disk stalled?)"
                           f"{ENDS_WHEN_IT_RETURNS}")

    def _make_safe_once(self, *, again: bool = False) -> bool:
        """Make the rig safe, unless it was since the abort or the end (`again`: even so),
        or its owner has taken it back; from then on it stays safe (nothing moves it).
        Returns whether this call made it safe (or began to, given up on past its limit).

        `_safing` is taken and given back by one thread, the making safe's own (`locked`):
        a making safe given up on past its limit keeps it until that thread has ended, so
        that `hand_back_rig` does not take the rig back from under it, and no Ctrl-C in the
        caller's wait (nor between taking it and giving it back) can leave it held for good.
        One still under way from before is waited for as long as `hand_back_rig` would
        (past that, it is what is reported), unless there is nothing to do: the rig was made
        safe (given up on: said so) and that thread is not waited for again. A Ctrl-C that
        came meanwhile is raised once the rig is safe (`past_signals`)."""
        with self._cond:
            skip = self._rig_handed_back or (self._rig_safe_now and not again)
        held_for = self._safing_held_for
        if skip and held_for is not None and not held_for.is_set():
            return False
        wait = hand_back_wait_s(self.rig)
        took = threading.Event()
        made: list[list[str] | None] = []  # what the making safe left; [None]: nothing to do

        def locked() -> None:
            # where Ctrl-C comes to `interrupts` (the main thread of a command line, which
            # runs this here): acknowledged until `_safing` is given back, then raised. Told
            # the time left of the making safe under way, at most `wait` (the rig's own path
            # says its deadline once it begins), not of the hold and it together
            with interrupts.making_safe(wait):
                if not self._safing.acquire(timeout=wait):
                    return
                try:
                    took.set()
                    with self._cond:
                        nothing = self._rig_handed_back or (self._rig_safe_now and not again)
                    made.append(None if nothing else rig_made_safe(self.rig))
                finally:
                    self._safing.release()

        aside, put_off = past_signals(locked, 2 * wait)
        self._safing_held_for = aside.done
        did = took.is_set() and made != [None]
        if made and made[0] is not None:
            self.safety_problems = made[0]
        elif not made:  # `_safing` not taken, or its making safe not ended, in time
            # what was waited for: the hold alone (`wait`), or it and the making safe
            self.safety_problems = [_not_ended(2 * wait if took.is_set() else wait)]
        if took.is_set():  # made safe, though a Ctrl-C that came meanwhile is raised
            with self._cond:
                self._rig_safe_now = True
        if put_off is not None:
            raise put_off
        failed = aside.raised()  # a Ctrl-C put off by `interrupts.making_safe` (above)
        if failed is not None:
            raise failed
        return did

    def _finish(self, status: str, message: str) -> None:
        # made safe on an abort during a write already: again here (cheap), for what is
        # reported; not after the worker's own making safe from an abort during the field's
        # ramp or the lines (a second path, its deadline counted afresh, would outlast the
        # abort's bound)
        self._make_safe_once(again=not self._safe_from_abort)
        try:
            self._account_time()
        except Exception as exc:  # the final status below matters more
            self.notes.append(f"the scan's duration could not be written: {exc}")
        if self.safety_problems:
            message = (message + "; " if message else "") + "rig NOT safe: " + "; ".join(
                self.safety_problems) + ". " + safe_command_hint(self.rig.profile)
        if self.notes:
            message = (message + "; " if message else "") + told(self.notes)
        writer = self._writer
        if writer is not None:
            # Each step on its own: a full disk must neither hide the end of the scan from
            # its subscribers nor leave wait() blocked.
            try:
                with self._writing(f"the scan's final status ({status})"):
                    writer.set_status(status, message)
            except Exception as exc:
                status = "failed"
                message += f"; the final status could not be written: {exc}"
            try:
                writer.close()
            except Exception as exc:
                status = "failed"
                message += f"; the file could not be closed cleanly: {exc}"
        with self._cond:
            watchers = list(self._watchers)
        for watcher in watchers:  # each ends once its write returned ("made_safe" first)
            watcher.join()
        with self._cond:
            self._state = status
            self.message = message
        try:
            self._emit(status, line=self._line, message=message,
                       rig_safe=not self.safety_problems)
        finally:
            self._done.set()

    # -- events -----------------------------------------------------------------------------

    def _emit(self, kind: str, *, line: int, index: tuple[int, int] | None = None,
              bz: float | None = None, message: str = "", rig_safe: bool | None = None) -> None:
        if not self._subscribers:
            return
        total = self.plan.points
        progress = self._points_done / total if total else 1.0
        now = self.rig.clock.now()
        event = ScanEvent(kind=kind, entry=self.entry, line=line, index=index, bz=bz,
                          message=message, progress=progress, eta_s=self._eta(now), time=now,
                          rig_safe=rig_safe)
        with self._emitting:  # a subscriber is called by one thread at a time
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception as exc:  # a broken display must not break the scan
                    self.subscriber_error_count += 1
                    if len(self.subscriber_errors) < SUBSCRIBER_ERRORS_KEPT:
                        self.subscriber_errors.append(exc)

    def _eta(self, now: float) -> float | None:
        """The time left: the lines left at the run's own pace once it is known (else at the
        plan's estimate, the way to the first point too until the run's first point or line
        has come from it), then the field's ramp down after the last line, unless the rig is
        safe already. None where the plan has no estimate (a flown plan the instruments
        refused)."""
        remaining = self.plan.points - self._points_done
        parts = self._duration()
        if parts is None:
            return 0.0 if remaining <= 0 else None
        after = 0.0 if self._rig_safe_now else parts.ramp_down_s
        if remaining <= 0:
            return after
        if self._run_points and self._run_start is not None:
            return (now - self._run_start) / self._run_points * remaining + after
        way_down = 0.0 if self._run_paced else parts.way_down_s
        return way_down + parts.lines_s * remaining / self.plan.points + after

    def _duration(self) -> ScanDuration | None:
        """The plan's estimate in parts (`scan_duration`, a flown plan's with the line the
        connected instruments fly), worked out once."""
        if self._estimate is None:
            try:
                self._estimate = scan_duration(self.plan, self.rig.profile, fly_line=self._fly)
            except InputError:
                return None
        return self._estimate


def hand_back_wait_s(rig: Any) -> float:
    """Real seconds `Sequencer.hand_back_rig` waits for the worker's making safe under way:
    the most making `rig` safe may take (`safe_time_bound`, the limit `smm-daq safe` prints),
    longer for a simulated rig run slower than real time (`real_time_bound`). A shorter wait
    would give up on a making safe still within its bound, a slow link's ramp-down."""
    return real_time_bound(rig.profile, getattr(rig.clock, "time_scale", 0.0))


def wait_awake(event: threading.Event, timeout: float | None = None) -> bool:
    """`event.wait(timeout)` in short slices, so that a signal reaches the main thread's
    handler at once: a signal the kernel hands to another thread (the worker) does not wake
    an untimed wait, and its Python handler would run only when the wait ended."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not event.is_set():
        left = SIGNAL_POLL_S if deadline is None else min(SIGNAL_POLL_S,
                                                           deadline - time.monotonic())
        if left <= 0:
            break
        event.wait(left)
    return event.is_set()


def wait_past_signals(done: threading.Event, within: float) -> bool:
    """`wait_awake(done, within)` that no later signal cuts short: a `KeyboardInterrupt` it
    raises (Python's own SIGINT handler, where `interrupts.installed` is not in force) is
    acknowledged, and the wait goes on. Whether `done` was set."""
    deadline = time.monotonic() + within
    while True:
        try:
            return wait_awake(done, max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt as again:
            interrupts.acknowledge(str(again) or "SIGINT")


def ended_past_signals(aside: Aside[Any], deadline: float) -> bool:
    """After a signal in `aside`'s start or in the wait for it: started again where the
    signal cut its start short before any thread was created (else nothing would run its
    work: the rig not made safe, the wait lasting to its limit), then waited for until
    `deadline` (`time.monotonic`) past later signals, each acknowledged. Whether it ended.
    The deadline is the first wait's: a signal does not make the wait begin again."""
    while not aside.launched:
        try:
            aside.start()
        except KeyboardInterrupt as again:
            interrupts.acknowledge(str(again) or "SIGINT")
    return wait_past_signals(aside.done, max(0.0, deadline - time.monotonic()))


MAKING_SAFE = "making the rig safe"  # the name of `past_signals`' thread


def past_signals(work: Callable[[], T], within: float
                 ) -> tuple[Aside[T], KeyboardInterrupt | None]:
    """`work()` (a making safe, a ramp-down) that no Ctrl-C cuts short: its `Aside`, `done`
    unless it had not ended `within` real seconds, and a Ctrl-C that came meanwhile, to be
    raised now (None: none, or only later ones while one was being handled already).

    In the main thread of a script (Python's own SIGINT handler, not `interrupts.installed`)
    a Ctrl-C would raise inside the ramp-down, the field left part-way (a second Ctrl-C as a
    scan's start makes the rig safe after the first): there the work runs in a thread of its
    own (in this thread's context: a path's deadline and loss budget, `safe_from`), waited
    for past every Ctrl-C, each acknowledged. Elsewhere it runs here."""
    context = contextvars.copy_context()
    aside = Aside(lambda: context.run(work), MAKING_SAFE)
    if threading.current_thread() is not threading.main_thread() or interrupts.sigint_held():
        aside.run_here()
        return aside, None
    handling = isinstance(sys.exception(), KeyboardInterrupt)  # the work is its
    came: list[KeyboardInterrupt] = []
    deadline = time.monotonic() + within
    try:  # a signal may come as soon as the thread runs, before start() returns
        aside.start()
        wait_awake(aside.done, within)
    except KeyboardInterrupt as exc:
        came.append(exc)
        interrupts.acknowledge(str(exc) or "SIGINT")
        ended_past_signals(aside, deadline)
    return aside, came[0] if came and not handling else None


def rig_made_safe(rig: Any) -> list[str]:
    """`rig.make_safe()`'s problems; an error it raised is one of them (make_safe should not
    raise: never let it hide the rest)."""
    try:
        return list(rig.make_safe())
    except Exception as exc:
        return [f"make_safe raised {type(exc).__name__}: {exc}"]


def made_safe_past_signals(rig: Any) -> tuple[list[str], KeyboardInterrupt | None,
                                              threading.Event | None]:
    """`rig.make_safe()`'s problems (an error it raised among them), waited for
    `hand_back_wait_s` at most; a Ctrl-C that came meanwhile, to be raised now that the rig
    is safe (`past_signals`); and, where the making safe had not ended in time, the `done`
    of its thread, still running (else None)."""
    within = hand_back_wait_s(rig)
    aside, put_off = past_signals(lambda: rig_made_safe(rig), within)
    if not aside.done.is_set():
        return [_not_ended(within)], put_off, aside.done
    return aside.result(), put_off, None


def _not_ended(within: float) -> str:
    return (f"making it safe did not end within {within:.0f} s (an instrument not "
            "answering, or a making safe under way in another thread that has not "
            "ended); the program does not wait for it any longer")


def wait_aside(work: Callable[[], T], name: str, *, make_safe: Callable[[], None],
               stalled: Callable[[], WriteStalled]) -> T:
    """`work()` (file work, touching no instrument) in a thread of its own (`name`), waited
    for awake (`wait_awake`), so that a signal reaches the caller's handler though a stalled
    disk holds the work inside HDF5, where no signal gets in; returns or raises what it does.

    Ctrl-C (or a termination signal) meanwhile calls `make_safe()` at once (a field set before
    stays on else) and is re-raised once the work returns; if it has not returned
    `WRITE_STALLED_S` after, `stalled()` is raised instead (the program is to end without it).
    Work no thread has begun yet (the signal cut its start short) never runs, and is not
    waited for.
    """
    aside = Aside(work, name)
    try:  # a signal may come as soon as the thread runs, before start() returns
        aside.start()
        wait_awake(aside.done)
    except KeyboardInterrupt:
        withheld = aside.withhold()
        make_safe()
        if not withheld and not wait_awake(aside.done, WRITE_STALLED_S):
            raise stalled() from None
        raise
    return aside.result()


def _ut(b: np.ndarray) -> str:
    return "(" + ", ".join(f"{v * 1e6:.3f}" for v in b) + ")"
