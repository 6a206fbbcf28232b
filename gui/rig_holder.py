"""The window's one rig: opened, called and closed off the GUI thread.

While a scan runs the sequencer owns the rig; the holder is then `busy` and refuses other
instrument calls, so two threads never talk to one instrument at once. While a recipe runs
(`recipe_running`), its steps alone drive the rig: the window's manual controls and its own
Start are refused, though the recipe's calls go through.

`rig` is set in the window's thread only, but for the close (in a thread of its own, under
the holder's lock), which sets it to None: the window's code reads it once, into a local,
and uses that, never reads it twice expecting the same rig. Every change of what the holder
holds (a connect begun or ended, a scan or a recipe begun or ended) is told by `changed`, so
that what the window offers follows it: between a connect's start and its end `rig` is None.

The window's readings (`read`) are calls of their own kind: a recipe's wait runs them between
its slices, and a field's ramp in the pauses between its steps (`ramp_field`), so the readouts
stay live through either; a stop or a making safe asked for (`call_first`, `hold_readings`)
has them skipped until it has run, so that no reading's instrument I/O (seconds on a slow bus)
comes before it. A reading runs inside a wait or a ramp only where it ends before the wait does
or the ramp's next step is due, judged by the longest of the last `TIMED_READINGS` readings
that ended well, on the rig's clock; before any has been timed (in its own turn, on
connecting) none does, so that the first cannot carry a wait past its end. A reconnect starts
that count afresh, and so does a reading that failed (raised, or an instrument's reading an
error, a timeout): an instrument lost may take a timeout's length again, so none runs inside a
wait or a ramp until a reading has ended well again; one slow reading that ended well sets the
bound for the next `TIMED_READINGS` only, not for the window's life.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PyQt6 import QtCore

from gui.background import Background, error_text
from smm_daq.acquisition import safe_close
from smm_daq.clock import Clock, VirtualClock
from smm_daq.errors import ConnectStopped, SafetyError
from smm_daq.instruments.connect_stop import ConnectStop
from smm_daq.instruments.interfaces import STOP_SLICE_S
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.ramp_pauses import lent_to
from smm_daq.instruments.ramp_stop import RampStop, ramp_field

INSTRUMENTS = ("lockin", "stage", "coils", "fluxgate")
NOT_CONNECTED = "Connect the rig first (Instruments tab)."
# the readings that ended well whose longest decides where one fits in a wait or a ramp
TIMED_READINGS = 8


class RigHolder(QtCore.QObject):
    """Opens the rig from a profile and runs instrument calls in its own worker thread."""

    opened = QtCore.pyqtSignal(object)  # the Rig
    failed = QtCore.pyqtSignal(str)  # why it could not be opened
    identities = QtCore.pyqtSignal(dict)  # instrument name -> Identity or the exception
    busyChanged = QtCore.pyqtSignal(bool)
    recipeChanged = QtCore.pyqtSignal(bool)  # a recipe started (True) or ended
    # the rig, a connect, a scan or a recipe began or ended: read the holder's state again
    changed = QtCore.pyqtSignal()

    def __init__(self, profile: Profile, *, time_scale: float | None = None, world_options=None):
        super().__init__()
        self.profile = profile
        self.time_scale = time_scale
        self.world_options = world_options
        self.rig: Any = None
        self.busy = False
        self.recipe_running = False
        self.connecting = False
        self.reconnecting = False  # the connect under way closes a rig open before
        # what making the rig safe before a reconnect could not do (set by the connect's
        # worker before it opens the new rig, so kept whatever follows)
        self.reconnect_problems: list[str] = []
        self._connect: Future | None = None  # the connect under way
        self._connect_stop = ConnectStop()  # the stop of the connect under way (`stop_connect`)
        self._closed = False
        # `close` runs in a thread of the window's close while the window's thread takes a
        # connect's end: each takes the rig (or leaves it to the other) under this lock
        self._lock = threading.Lock()
        self.background = Background("rig", self)
        # who holds the readings back (`hold_readings`); read in the rig's thread
        self._holds: set[object] = set()
        self._holds_lock = threading.Lock()
        # what the last readings that ended well took on the rig's clock (`read`); read and
        # changed in the rig's thread only
        self._timed_s: deque[float] = deque(maxlen=TIMED_READINGS)

    def open(self) -> bool:
        """Open the rig, or open it again (the rig open now made safe and closed first, e.g.
        after an instrument was power-cycled); `opened` or `failed` follows. False, nothing
        done, while a scan or a recipe drives the rig, a connect is under way, or after
        `close`."""
        if self.connecting or self.busy or self.recipe_running or self._closed:
            return False
        profile, time_scale, options = self.profile, self.time_scale, self.world_options
        old, self.rig = self.rig, None
        self.reconnect_problems = []
        stop = self._connect_stop = ConnectStop()

        def job() -> Any:
            from smm_daq.instruments.rig import open_rig

            # the old rig's locks go before the new rig takes them
            ended, problems = (safe_close.make_safe_and_close(old, "before reconnecting")
                               if old is not None else (True, []))
            self.reconnect_problems = problems
            self._timed_s.clear()  # the new rig's readings are timed afresh
            try:
                if not ended:  # its instruments' links are still in use: left to it
                    raise SafetyError("not reconnected: the rig open before is still being "
                                      "made safe; connect again once it is")
                return open_rig(profile, time_scale=time_scale, world_options=options,
                                stop=stop)
            except Exception as exc:  # what the old rig was left as goes with the failure
                for problem in problems:
                    exc.add_note(f"making the rig open before safe: {problem}")
                raise

        self.connecting, self.reconnecting = True, old is not None
        self._connect = self.background.submit(job, self._opened, self._failed)
        self.changed.emit()
        return True

    def stop_connect(self) -> bool:
        """Stop the connect under way: the connect then fails, saying so, the rig made safe.
        False, nothing done, when no connect is under way. The stop is sent by the connect
        itself (the rig's thread is busy with it): within a poll of the stage's reference move,
        or, where none runs, once every instrument has connected (`open_rig`); pressed after
        that, before the window has taken the rig, the rig is made safe and closed then."""
        if not self.connecting:
            return False
        self._connect_stop.request()
        return True

    def unconnected_text(self) -> str:
        """Why no rig can be used now: a connect under way, or none open ("" when one is)."""
        if self.rig is not None:
            return ""
        if self.connecting:
            return (f"{'Reconnecting' if self.reconnecting else 'Connecting'} the rig… "
                    "(Instruments tab); it can be used once connected.")
        return NOT_CONNECTED

    def _opened(self, rig: Any) -> None:
        with self._lock:
            if self._closed:  # `close` makes this rig safe and closes it (its `_connect`)
                self.connecting = False
                return
            if self._connect_stop.requested:  # a Stop after the connect last looked for one
                profile = self.profile  # the rig made safe and closed, the connect failed:
                self._connect = self.background.submit(  # still a connect until then
                    lambda: _fail_stopped(rig, profile), None, self._failed)
                return
            self.connecting = False
            self._connect, self.rig = None, rig
        # `rig`, not `self.rig`: a close from now on sets that to None in its own thread
        self.call(_identify_all(rig), self.identities.emit)  # before any reading polled
        self.changed.emit()
        self.opened.emit(rig)

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.connecting = False
            if self._closed:  # `close` has told what the connect left (its `_connect`)
                return
            self._connect = None
        self.changed.emit()
        self.failed.emit(error_text(exc))

    def call(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> bool:
        """Run an instrument call in the rig's thread; False (nothing run) if busy or closed."""
        if self.rig is None or self.busy:
            return False
        self.background.submit(fn, on_result, on_error)
        return True

    def call_first(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        key: object = None,
    ) -> bool:
        """`call` for a stop or a making safe: the readings queued before it are skipped as
        their turn comes, until it has run. `key`: a hold asked for before (`hold_readings`),
        released too once `fn` has run. Without one, the readings run between the slices of
        a wait in hand still run: `fn` is queued behind that wait, which they do not delay."""
        key = _Queued() if key is None else key
        self.hold_readings(key)

        def job() -> Any:
            try:
                return fn()
            finally:
                self.release_readings(key)

        if self.call(job, on_result, on_error):
            return True
        self.release_readings(key)
        return False

    def hold_readings(self, key: object) -> None:
        """Skip the readings whose turn comes from now until `release_readings(key)`: a stop
        or a making safe has been asked for, and is on its way to the rig's thread."""
        with self._holds_lock:
            self._holds.add(key)

    def release_readings(self, key: object) -> None:
        """End the hold `key` (nothing if it has ended)."""
        with self._holds_lock:
            self._holds.discard(key)

    def readings_held(self, between: bool) -> bool:
        """Whether a reading (run between a wait's slices: `between`) is to be skipped, or cut
        short (`read`)."""
        with self._holds_lock:
            return self._closed or any(not (between and isinstance(key, _Queued))
                                       for key in self._holds)

    def read(
        self,
        fn: Callable[[bool], Any],
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        *,
        idle_s: float = 0.0,
        failed: Callable[[Any], bool] = lambda _value: False,
    ) -> bool:
        """A reading of the rig's (the Instruments tab's poll): run in the rig's thread as
        `call` runs calls, but a recipe's wait or a field's ramp under way runs it between its
        slices (`read_between`) or steps (`ramp_field`), as `fn(True)`, rather than it waiting
        for the whole wait or ramp; in its own turn it is `fn(False)`, a simulated rig's
        virtual clock first moved on by `idle_s` (the time between polls, which nothing else
        waits out while the window is idle; a wait's or a ramp's own sleeping passes it
        there). When its turn comes while a stop or a making safe asked for has not run yet
        (`hold_readings`), or once the holder is closing, it is skipped: nothing asked of the
        instruments, `on_result(None)`; `fn` asks `readings_held(between)` between its
        instrument calls, and returns None once it is, asking nothing more. What `fn` takes on
        the rig's clock, where it returns a reading that did not fail (`failed(value)`: an
        instrument's error or timeout in it), is timed: the longest of the last
        `TIMED_READINGS` decides where one fits in a wait or a ramp; one that raised or failed
        forgets those timed before (none runs in a wait or a ramp until one ends well again).
        False (nothing run) if busy or closed."""
        rig = self.rig
        if rig is None or self.busy:
            return False
        clock: Clock = rig.clock

        def reading(between: bool) -> Callable[[], Any]:
            def run() -> Any:
                if self.readings_held(between):
                    return None
                if not between and idle_s > 0 and isinstance(clock, VirtualClock):
                    clock.advance(idle_s)
                began = clock.now()
                try:
                    value = fn(between)
                except BaseException:
                    self._timed_s.clear()
                    raise
                if value is not None and failed(value):
                    self._timed_s.clear()
                elif value is not None:
                    self._timed_s.append(clock.now() - began)
                return value
            return run

        self.background.submit(reading(False), on_result, on_error, between=reading(True))
        return True

    def read_between(self, clock: Clock, left: float) -> None:
        """In the rig's thread, between the slices of a recipe's wait on `clock`, `left`
        seconds of it left: the readings queued run now. Not in the wait's last stretch, the
        longest of the last readings timed and a slice, nor while none is timed: what a
        reading takes on the clock is the wait's, and it must not carry the wait past its
        end."""
        self._read_within(left - STOP_SLICE_S)

    def ramp_field(self, rig: Any, b: Any, stop: RampStop) -> None:
        """`ramp_field(rig, b, stop)`, in the rig's thread: the readings queued run in the
        pauses between the ramp's steps (`ramp_pauses`), each pause's where a reading ends
        before the next step is due (the longest of the last readings timed), so the ramp keeps its
        pace; none once `stop` is set (Stop, Zero, the window's close: the making safe from
        there comes first)."""
        def pause(free: float) -> None:
            if not stop.is_set():
                self._read_within(free)

        with lent_to(pause):
            ramp_field(rig, b, stop)

    def _read_within(self, room: float) -> None:
        """The readings queued run now, in the rig's thread, if the longest of the last
        readings that ended well fits in `room` seconds of the rig's clock (none timed since
        the connect or the last failed reading: none run)."""
        if self._timed_s and room >= max(self._timed_s):
            self.background.run_between()

    def set_busy(self, busy: bool) -> None:
        """Mark the rig as owned by a scan (True) or free again (False)."""
        if busy != self.busy:
            self.busy = busy
            self.busyChanged.emit(busy)
            self.changed.emit()

    def set_recipe_running(self, running: bool) -> None:
        """Mark the rig as driven by a recipe (True) or by the operator again (False)."""
        if running != self.recipe_running:
            self.recipe_running = running
            self.recipeChanged.emit(running)
            self.changed.emit()

    def close(self, *, wait: bool = True) -> list[str]:
        """Make the rig safe and close it; returns problems (also those of making the rig
        open before a reconnect safe); none from a second close.

        Calls in flight are waited for first (unless not `wait`: a scan's start left to a
        stalled disk, which touches the rig no more), and a connect under way, whose rig is
        then made safe and closed here too, its locks released. Each wait, and the making safe
        after it, lasts at most as long as making the rig safe may take (`safe_close.wait_s`:
        an instrument not answering, or the scan's thread still making the rig safe, must not
        hold the window open for good): past it the rig is made safe all the same (a call in
        flight, cut off as the rig closes, may have changed it after), or the connect is left
        to make safe and close the rig it opens; a problem says so. A Set field that the
        window's close stopped first ends within that wait, made safe from where its ramp got
        to (`Rig.safe_from`: its step under way is in the make-safe path the stop began)."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
        limit = self._wait_s()
        ended = self.background.shutdown(wait=wait, timeout=limit)
        with self._lock:  # a connect's end delivered meanwhile has left its rig to this
            rig, self.rig = self.rig, None
            connect, self._connect = self._connect, None
        problems: list[str] = []
        if rig is None and connect is not None:  # opened or failed, not yet delivered
            if not connect.done():
                connect.add_done_callback(_close_when_opened)
                return [*self.reconnect_problems,
                        f"connecting the rig had not ended {limit:.0f} s after the close (an "
                        "instrument not answering); the rig is made safe and closed once it "
                        "opens, if the program still runs"]
            rig = None if connect.cancelled() else connect.result()  # None: it failed
            problems = list(self.reconnect_problems)
        elif not ended:
            problems.append(f"an instrument call had not ended {limit:.0f} s after the close "
                            "(an instrument not answering); the rig was made safe and closed "
                            "under it, which it may have changed after")
        if rig is None:
            return problems
        return problems + safe_close.make_safe_and_close(rig)[1]

    def longest_close_s(self, *, wait: bool = True) -> float:
        """The most `close(wait=wait)` may take: its wait for calls in flight (with `wait`),
        then its making safe."""
        return self._wait_s() * (2 if wait else 1)

    def _wait_s(self) -> float:
        """How long the close waits for calls in flight or a connect: as long as making the
        rig safe may take (`safe_close.safe_wait_s` of the rig it opens)."""
        scale = (self.time_scale or 0.0) if self.profile.simulated else 0.0
        return safe_close.wait_s(self.profile, scale)


class _Queued:
    """The hold of a `call_first` given no key: its call is on its way in the rig's queue."""


def _fail_stopped(rig: Any, profile: Profile) -> None:
    """A connect the operator stopped once it had opened `rig`, before the rig was taken:
    the rig made safe and closed, as a connect stopped earlier leaves it; `ConnectStopped`,
    saying whether it is safe."""
    from smm_daq.instruments.rig import CONNECT_STOPPED, safety_statement

    problems = safe_close.make_safe_and_close(rig, "after the connect was stopped")[1]
    error = ConnectStopped(CONNECT_STOPPED)
    error.add_note(safety_statement(profile, problems))
    raise error


def _close_when_opened(connect: Future) -> None:
    """A connect that a close waited no longer for: the rig it opened made safe and closed
    (in the rig's thread, as it ends)."""
    rig = None if connect.cancelled() else connect.result()
    if rig is not None:
        safe_close.make_safe_and_close(rig)


def _identify_all(rig: Any) -> Callable[[], dict[str, object]]:
    def job() -> dict[str, object]:
        found: dict[str, object] = {}
        for name in INSTRUMENTS:
            instrument = getattr(rig, name, None)
            if instrument is None:
                continue
            try:
                found[name] = instrument.identify()
            except Exception as exc:  # shown per instrument in the panel
                found[name] = exc
        return found

    return job
