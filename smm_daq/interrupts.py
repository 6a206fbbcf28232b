"""Ctrl-C and termination signals: the first stops what runs; none cuts the ramp-down short.

`installed()` (the command line runs in it) routes SIGINT, SIGTERM and SIGHUP here (on Windows,
which has no SIGHUP: SIGINT, SIGTERM and Ctrl-Break's SIGBREAK). The first signal raises
`KeyboardInterrupt` in the main thread, which aborts a scan or a recipe; every later one is
only acknowledged on stderr ("making the rig safe, about N s left"), so pressing
Ctrl-C again, or a supervisor sending SIGTERM again, never interrupts the ramp-down that makes
the rig safe. A signal that arrives while the main thread is inside an instrument exchange
(`atomic`: a command and its reply) is held until the exchange ends, so no reply is left
unread on a link to be taken for the answer to the next command; one that arrives while the
rig is being made safe (`making_safe`) is only acknowledged, and, where it is the first, stops
what runs once the rig is safe (a kill that lands in the ramp-down a scan ends with is not
lost, the recipe or script going on).

The state is per process; `reset()` is for tests.
"""

from __future__ import annotations

import _thread
import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Iterator

# SIGHUP is POSIX's, SIGBREAK Windows': each is left out where the system has no such signal.
SIGNALS = tuple(sig for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None),
                                getattr(signal, "SIGBREAK", None)) if sig is not None)


class _State:
    def __init__(self) -> None:
        self.received = 0  # signals received since install/reset
        self.first = ""  # the name of the first of them
        self.held = ""  # the name of a first signal waiting for the end of an exchange
        # a first signal that came while the rig was being made safe: it stops what runs
        # once that ends (`making_safe`), in the main thread; 0 when none
        self.put_off = 0
        # a first signal routed for sessions (`route_termination`) that came while a close
        # made the rig safe (`making_safe` with `stopping`): passed on to its handler before
        # once no session holds the routing (`unroute_termination`); 0 when none
        self.dropped = 0
        self.depth = 0  # the main thread's nesting of `atomic`
        self.safe_by: list[float] = []  # monotonic deadlines of the ramp-downs under way
        self.recovery = ""  # how to make the rig safe by hand, e.g. "smm-daq safe --profile F"
        self.connect_began = False  # a rig's connect has begun (`set_recovery`)


_state = _State()


@contextlib.contextmanager
def installed(*, restore: bool = True) -> Iterator[None]:
    """Route `SIGNALS` here (from the main thread); the previous handlers
    come back afterwards unless `restore` is false (a program that ends there: a late signal
    is then still only acknowledged, never a traceback or a death by signal)."""
    reset()
    previous = {sig: signal.signal(sig, _handle) for sig in SIGNALS}
    try:
        yield
    finally:
        if restore:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        else:  # the program ends: a signal from now on would only kill it at its last step
            _state.put_off = 0  # nor one put off raise there
            _ignore_from_now_on()


def _ignore_from_now_on() -> None:
    """Block `SIGNALS` (POSIX), or ignore them where signals cannot be blocked (Windows)."""
    block = getattr(signal, "pthread_sigmask", None)
    if block is not None:
        block(signal.SIG_BLOCK, SIGNALS)
        return
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


# A script's sessions (`Session.open`): the signals they route here, with the handlers before
# (`route_termination`), and how many sessions open hold them. `_routes_lock` guards the count
# (a session may be closed from any thread); `_handle`, which runs in the main thread between
# any two of its bytecodes, only reads it.
_routed: dict[signal.Signals, object] = {}
_routes_held = 0
_routes_lock = threading.Lock()


def route_termination() -> bool:
    """For a script's session: SIGTERM and SIGHUP (SIGBREAK on Windows), where the script
    left them at the system's default, which ends the process at once (a field left on, a
    stage moving), stop what runs as Ctrl-C does (`_handle`: the rig is made safe, a later
    signal only acknowledged). Ctrl-C keeps the script's own handler, and a handler the
    script set is kept. From the main thread only (elsewhere nothing is routed: False); a
    True is undone by `unroute_termination` as that session is closed, the handlers put back
    once every session that routed them is."""
    global _routes_held
    if threading.current_thread() is not threading.main_thread():
        return False
    with _routes_lock:
        if _routes_held == 0:
            # a signal still routed for sessions closed off the main thread stays routed, its
            # handler before kept (`unroute_termination`): this session holds it now
            for sig in SIGNALS:
                if sig != signal.SIGINT and signal.getsignal(sig) == signal.SIG_DFL:
                    _routed[sig] = signal.signal(sig, _handle)
            if _routed:  # a signal received before (caught by the script) stops this one too
                _state.received, _state.held, _state.put_off = 0, "", 0
        _routes_held += 1
    return True


def unroute_termination() -> None:
    """A session that routed signals (`route_termination`) is closed, from any thread: with
    none left, the signals still routed here get their handlers back.

    Python lets only the main thread set a handler, so a session closed from another thread
    (a notebook's background thread, a window's worker) as the last puts none back itself:
    the handlers stay routed here, but with no session holding them `_handle` no longer stops
    anything as Ctrl-C does (a closed session's scan is not running); the main thread puts
    them back at the first such signal, which then goes to its handler before (the system's
    default ends the process, as it would have without any session), or as it next opens
    or closes a session. Left routed as a session still open, the process would treat every
    SIGTERM as Ctrl-C for good, long after the last session was closed."""
    global _routes_held
    with _routes_lock:
        if _routes_held == 0:
            return
        _routes_held -= 1
        if _routes_held:
            return
        if threading.current_thread() is threading.main_thread():
            _put_back()
    dropped, _state.dropped = _state.dropped, 0
    if dropped:  # a kill during the close: the script does not go on (the default ends it)
        signal.raise_signal(dropped)  # off the main thread: `_handle` passes it on


def _put_back() -> None:
    """The signals routed for sessions get their handlers before back (the main thread, no
    session holding them)."""
    for sig, handler in _routed.items():
        if signal.getsignal(sig) is _handle:
            signal.signal(sig, handler)  # type: ignore[arg-type]
    _routed.clear()


def reset(recovery: str = "") -> None:
    global _state
    _state = _State()
    _state.recovery = recovery


def set_recovery(command: str) -> None:
    """A rig's connect begins (`open_rig`): `command` makes it safe by hand, named when a
    later signal is acknowledged ("" where the rig ends with the process: a simulated one).
    From now on the rig may have been touched (`connect_began`)."""
    _state.recovery = command
    _state.connect_began = True


def recovery() -> str:
    return _state.recovery


def connect_began() -> bool:
    """Whether a rig's connect has begun since install/reset: until then a command that
    drives the rig has touched no instrument."""
    return _state.connect_began


def sigint_held() -> bool:
    """Whether Ctrl-C comes here (`installed`: acknowledged while the rig is made safe);
    else the script's own handler (Python's raises `KeyboardInterrupt` anywhere, a ramp-down
    cut short)."""
    return signal.getsignal(signal.SIGINT) is _handle


def interrupted() -> bool:
    """Whether a signal has been received."""
    return _state.received > 0


def first_signal() -> str:
    """The name of the first signal received ("SIGINT"; "" where none has been)."""
    return _state.first


def _handle(signum: int, _frame: object) -> None:
    if _routes_held == 0 and signum in _routed:  # its sessions closed off the main thread
        _put_back()
        signal.raise_signal(signum)  # to the handler before: the default ends the process
        return
    name = signal.Signals(signum).name
    if signum == _state.put_off and not _state.safe_by:  # sent again by `making_safe`
        _state.put_off = 0
    else:
        _state.received += 1
        _state.first = _state.first or name
        if _state.received > 1 or _state.safe_by:
            if _state.received == 1:  # the rig made safe at a scan's end, say: not lost
                _state.put_off = signum
            acknowledge(name)
            return
    if _state.depth > 0:
        _state.held = name
        return
    raise KeyboardInterrupt(name)


def acknowledge(name: str) -> None:
    """Say on stderr that signal `name` was received and the rig is made safe regardless."""
    if _state.safe_by:
        left = max(0, math.ceil(max(_state.safe_by) - time.monotonic()))
        text = (f"smm-daq: {name}: making the rig safe, at most {left} s left; the ramp-down "
                "is not cut short")
    else:
        text = f"smm-daq: {name}: stopping; the rig is made safe before the program ends"
    if _state.recovery:
        text += f" (if the process is killed, run `{_state.recovery}`)"
    with contextlib.suppress(OSError):  # os.write: print() is not safe inside a handler
        os.write(2, (text + "\n").encode())


@contextlib.contextmanager
def atomic() -> Iterator[None]:
    """One instrument exchange: a first signal in the main thread waits for its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
    if _state.depth == 0 and _state.held:
        name, _state.held = _state.held, ""
        raise KeyboardInterrupt(name)


@contextlib.contextmanager
def making_safe(seconds: float, *, stopping: bool = False) -> Iterator[None]:
    """The rig is being made safe, in at most `seconds`: signals meanwhile are acknowledged;
    the first of them, where none came before, then stops what runs as it would have (a
    KeyboardInterrupt in the main thread), not lost with the making safe of a scan's end.
    With `stopping` (the rig's close, or a stop already under way) there is nothing more
    for it to stop."""
    deadline = time.monotonic() + seconds
    _state.safe_by.append(deadline)
    try:
        yield
    finally:
        _state.safe_by.remove(deadline)
        if stopping:
            if _state.put_off in _routed:
                _state.dropped = _state.put_off
            _state.put_off = 0
        elif _state.put_off and not _state.safe_by:  # a first signal meanwhile: it stops
            _thread.interrupt_main(_state.put_off)
