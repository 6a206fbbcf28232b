"""Run blocking calls (instrument I/O, inversions) off the GUI thread; results come back on it.

One worker thread per `Background`, so the calls it runs are serialised: instrument drivers
are not safe to drive from two threads at once.

The thread is a daemon: the process can end while a call waits on a stalled disk (a read
queued behind a scan's line write that never returns would otherwise hold the application's
exit forever, as Python joins a `ThreadPoolExecutor`'s threads at exit). What must finish
before the process ends (a write in hand) is waited for by `shutdown()` as the window closes.

A call's end is sent to the window's thread through one object of the process's, never
deleted (`gui_caller`), not through a signal of its `Background`: that is deleted with the
widget owning it, which may happen while the call runs (the window freed after its close, a
read left to a slow disk), and a signal of a deleted object emitted from another thread
crashes the whole process (SIGSEGV: nothing of the window's exit code, a test run ended).
The callback of a call whose `Background` has gone is dropped: its widget has gone with it.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PyQt6 import QtCore, sip

_Job = Callable[[], None]


class CallEnded(Exception):
    """A call ended by an exception that is no error (SystemExit, KeyboardInterrupt, its
    `__cause__`): given to the call's `on_error` as an error of the program's own."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the call was ended by {type(cause).__name__}"
                         + (f" ({cause})" if str(cause) else ""))


class _Relay(QtCore.QObject):
    """Carries calls from any thread to the window's thread (`gui_caller`): made once and
    never deleted, so that a worker never signals through an object the window may have
    deleted meanwhile. It lives in the application's thread whichever thread made it: calls
    are delivered in the thread of the relay's own events."""

    called = QtCore.pyqtSignal(object, object, object)  # weakref to the owner, function, args

    @QtCore.pyqtSlot(object, object, object)
    def call(self, owner: weakref.ref[QtCore.QObject], function: Callable[..., None],
             args: tuple[Any, ...]) -> None:
        """A call, in the window's thread: made unless its owner was deleted meanwhile."""
        target = owner()
        if target is not None and not sip.isdeleted(target):
            function(target, *args)


_relay: _Relay | None = None
_relay_made = threading.Lock()


def _the_relay() -> _Relay:
    """The process's `_Relay`, made on first use and moved to the application's thread (one
    made first in another thread would otherwise stay in a thread with no event loop, and
    no call would ever be delivered)."""
    global _relay
    with _relay_made:
        if _relay is None:
            relay = _Relay()
            app = QtCore.QCoreApplication.instance()
            if app is not None and relay.thread() is not app.thread():
                relay.moveToThread(app.thread())
            relay.called.connect(relay.call)  # queued: emitted from the workers' threads
            _relay = relay
        return _relay


def gui_caller(owner: QtCore.QObject, function: Callable[..., None]) -> Callable[..., None]:
    """A function to call from any thread: `function(owner, *args)` then runs in the window's
    thread, unless `owner` has been deleted by then (with the widget owning it), when nothing
    is done. Make it in the window's thread. A signal of `owner` emitted from a worker instead
    crashes the process (SIGSEGV) once `owner` has been deleted."""
    emit, target = _the_relay().called.emit, weakref.ref(owner)

    def call(*args: Any) -> None:
        emit(target, function, args)

    return call


class Background(QtCore.QObject):
    """Submit callables to one worker thread; callbacks run in the GUI thread."""

    def __init__(self, name: str, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._name = f"smm-gui-{name}"
        self._jobs: queue.SimpleQueue[tuple[Future, _Job] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started by the first call
        self._queued: list[Future] = []  # not started yet (dropped by shutdown(wait=False))
        self._between: dict[Future, _Job] = {}  # those queued that may run in a call's slices
        self._lock = threading.Lock()
        weakref.finalize(self, self._jobs.put, None)  # an idle thread ends with its object
        # each call's end, sent from the worker, delivered by `_deliver` in the window's thread
        self._send_end = gui_caller(self, Background._deliver)
        self._pending = 0  # under `_lock`: the close's thread drops calls as the GUI's ends them
        self._shut = False

    def submit(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        between: Callable[[], Any] | None = None,
    ) -> Future:
        """Run `fn()` in the worker; then `on_result(value)` or `on_error(exc)` in the GUI
        (`CallEnded` for a call ended by SystemExit or KeyboardInterrupt, which the future
        returned holds). The future returned holds the value (None after an error). After
        `shutdown` (the window closing, while signals queued before it are still delivered)
        nothing runs: the future returned is cancelled. With `between`, a call in hand may run
        this one between its own slices (`run_between`), as `between()` in place of `fn()`,
        rather than it waiting behind the whole of that call."""
        future: Future = Future()
        job = _job(fn, future, on_result, on_error, self._send_end)
        with self._lock:  # after `shutdown`'s stop, nothing queued: it would never run
            if self._shut:
                future.cancel()
                return future
            self._pending += 1
            self._queued.append(future)
            if between is not None:
                self._between[future] = _job(between, future, on_result, on_error,
                                             self._send_end)
            self._jobs.put((future, job))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=_serve, args=(self._jobs, self._lock, self._queued, self._between),
                    name=self._name, daemon=True)
                self._thread.start()
        return future

    def run_between(self) -> bool:
        """In the worker, from the call it runs: the calls queued that may run between that
        call's slices (`submit(between=...)`) run now, in their order, each as its `between`;
        the others keep their turn. Whether any ran."""
        if threading.current_thread() is not self._thread:
            raise RuntimeError("run_between is for the call the worker runs")
        with self._lock:  # taken off the queue: `_serve` passes them by as their turn comes
            taken = [(future, self._between.pop(future)) for future in self._queued
                     if future in self._between]
            for future, _ in taken:
                self._queued.remove(future)
        for future, job in taken:
            if future.set_running_or_notify_cancel():
                job()
        return bool(taken)

    @property
    def pending(self) -> int:
        """Calls submitted whose callback has not run yet (nor will: those dropped)."""
        with self._lock:
            return self._pending

    def _deliver(self, callback: Callable[[Any], None] | None, value: Any) -> None:
        with self._lock:
            self._pending -= 1
        if callback is not None:
            callback(value)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Stop the thread once what was submitted is finished (wait: before returning, for
        `timeout` seconds at most), or, without waiting, once the call in hand is (what has
        not started is dropped, no longer `pending`, and the call in hand does not hold the
        process's exit). Whether the thread has ended (without waiting: True, none ended).
        May be called from a thread other than the GUI's (the window's close's)."""
        dropped: list[Future] = []
        with self._lock:
            if not self._shut:
                self._shut = True
                self._jobs.put(None)
            if not wait:
                dropped, self._queued[:] = list(self._queued), []
                self._between.clear()
                self._pending -= len(dropped)  # never delivered
        for future in dropped:  # its callbacks run here, the lock free
            future.cancel()
        if not wait:
            return True
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait `timeout` seconds at most for the thread, once `shutdown`, to end; whether it
        has (True: none started)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _job(fn: Callable[[], Any], future: Future, on_result: Callable[[Any], None] | None,
         on_error: Callable[[BaseException], None] | None,
         done_emit: Callable[..., None]) -> _Job:
    """`fn` as the worker runs it: its value or error sent to the GUI, and set in `future`."""

    def job() -> None:
        try:
            value = fn()
        except Exception as exc:  # delivered to the GUI, which shows it
            done_emit(on_error, exc)
            future.set_result(None)
            return
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: the caller's future
            # has it; the GUI is told as of an error (never a slot raising SystemExit),
            # so that what waits for the call's end (a flag, a busy button) is undone
            ended = CallEnded(exc)
            ended.__cause__ = exc
            done_emit(on_error, ended)
            future.set_exception(exc)
            return
        done_emit(on_result, value)
        future.set_result(value)  # for a caller that cannot wait for the delivery

    return job


def _serve(jobs: queue.SimpleQueue, lock: threading.Lock, queued: list[Future],
           between: dict[Future, _Job]) -> None:
    """The worker: runs the jobs in turn until told to stop (None); holds no reference to
    its `Background`, so that an idle one can be collected. A job run already between
    another's slices, or dropped by `shutdown`, is no longer `queued`: passed by."""
    while (item := jobs.get()) is not None:
        future, job = item
        with lock:  # taken off here to run, or by `shutdown` to drop: whichever comes first
            taken = future in queued
            if taken:
                queued.remove(future)
                between.pop(future, None)
        if taken and future.set_running_or_notify_cancel():
            job()
        del item, future, job


def error_text(exc: BaseException) -> str:
    """An error as the window shows it: the message, then its notes (how a failure left the
    rig: whether it is safe)."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", ())])
