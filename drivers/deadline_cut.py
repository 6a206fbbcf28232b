"""Cutting a VISA LAN instrument's connection at a deadline (`Cut`), for the calls that
pyvisa-py does not bound by their timeout.

pyvisa-py's VXI-11 write sends its RPC call with a blocking `sendall` (a message larger than
the room the connection's buffers have left waits for an instrument that stopped reading
without end), then waits for the reply the link's timeout and one second more; its HiSLIP
write gives each packet of a long message the whole timeout. Neither can be told to stop at
a deadline, so at the deadline the connection's sockets are shut down and closed from a
watchdog thread: a send or a wait blocked on them then ends at once, with whatever error the
protocol code makes of it, and the session is dead (the transport opens a new one).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

from pyvisa import constants
from pyvisa.resources import MessageBasedResource

_LOG = logging.getLogger(__name__)


def lan_instrument_sockets(resource: MessageBasedResource) -> tuple[socket.socket, ...]:
    """The TCP sockets under a pyvisa-py `TCPIP::…::INSTR` session (VXI-11's RPC connection,
    HiSLIP's synchronous and asynchronous channels); none with another VISA library or
    another interface (a raw socket is read and written by the transport itself)."""
    if resource.interface_type != constants.InterfaceType.tcpip:
        return ()
    session = getattr(resource.visalib, "sessions", {}).get(resource.session)
    interface = getattr(session, "interface", None)
    if interface is None or isinstance(interface, socket.socket):
        return ()
    return tuple(v for v in vars(interface).values() if isinstance(v, socket.socket))


class Cut:
    """A context in which `resource`'s connection is shut down and closed at `deadline`
    (time.monotonic()), where it is a pyvisa-py LAN instrument's (`lan_instrument_sockets`;
    nothing is done elsewhere). Once cut, the resource is closed on leaving, and an error the
    block ends in becomes `TimeoutError`; `fired` says whether it was, the block done or not
    (a call that came back just as it was cut leaves the connection dead too)."""

    def __init__(self, resource: MessageBasedResource, deadline: float) -> None:
        self._resource = resource
        self._sockets = lan_instrument_sockets(resource)
        self.deadline = deadline
        self._lock = threading.Lock()  # the block's end and the cut never overlap
        self._over = False
        self.fired = False

    def cut(self) -> None:
        """Shut the connection down and close it, unless the block has ended."""
        with self._lock:
            if self._over:
                return
            self.fired = True
            _shut(self._sockets)

    def __enter__(self) -> Cut:
        if self._sockets:
            _WATCHDOG.arm(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self._over = True
        if self._sockets:
            _WATCHDOG.disarm(self)
        if not self.fired:
            return
        _close_cut(self._resource)
        if isinstance(exc, Exception):
            raise TimeoutError("the connection was cut at the deadline") from exc


class _Watchdog:
    """One daemon thread that cuts the armed `Cut`s whose deadline has come (a thread started
    for each call would cost more than a LAN instrument's exchange). It is woken by an arm
    only when that deadline is earlier than the one it waits for. A cut that fails does not
    end the thread, and a thread that ended all the same (or one not carried into a forked
    child) is started again by the next arm, and cuts every cut still armed."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._armed: dict[int, Cut] = {}
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def forked(self) -> None:
        """In a child just forked: the parent's thread is not in it (nor its armed cuts),
        and may have held the lock; the child's first arm starts a thread of its own."""
        self.__init__()  # type: ignore[misc]

    def arm(self, cut: Cut) -> None:
        with self._ready:
            self._armed[id(cut)] = cut
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="deadline cut",
                                                daemon=True)
                self._thread.start()
            if cut.deadline < self._wake_at:
                self._ready.notify()

    def disarm(self, cut: Cut) -> None:
        with self._ready:
            self._armed.pop(id(cut), None)

    def _run(self) -> None:
        while True:
            with self._ready:
                now = time.monotonic()
                due = [cut for cut in self._armed.values() if cut.deadline <= now]
                for cut in due:
                    del self._armed[id(cut)]
                if not due:
                    self._wake_at = min((c.deadline for c in self._armed.values()),
                                        default=math.inf)
                    left = self._wake_at - now
                    self._ready.wait(None if math.isinf(left) else left)
                    continue
            for cut in due:  # outside the lock: a cut waits for its block's end to be seen
                _cut_anyway(cut)


def _cut_anyway(cut: Cut) -> None:
    """Cut `cut`; a failure is logged, never raised into the watchdog's loop (it would end
    the thread, and with it every later cut)."""
    try:
        cut.cut()
    except Exception:
        _LOG.exception("cutting a connection at its deadline failed")


_WATCHDOG = _Watchdog()


def _shut(sockets: tuple[socket.socket, ...]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):  # not connected any more
            sock.shutdown(socket.SHUT_RDWR)
        # closed too: pyvisa-py's RPC wait takes a connection's end for no data yet and
        # would go on polling it until its own timeout
        with contextlib.suppress(OSError):  # closed meanwhile by its session
            sock.close()


def close_at_once(resource: MessageBasedResource) -> None:
    """Close `resource`, a pyvisa-py LAN instrument's connection shut down first: its VXI-11
    close asks the instrument to destroy its link and waits 5 s for the answer, which a
    connection that failed (an instrument that hung) never brings."""
    _shut(lan_instrument_sockets(resource))
    _close_cut(resource)


def _close_cut(resource: MessageBasedResource) -> None:
    """Close a resource whose connection was cut. pyvisa-py's VXI-11 close first asks the
    instrument, over the closed socket, to destroy its link, and fails (ValueError) with the
    session left open: it is then dropped from the library's sessions, so that nothing tries
    again (pyvisa's own close on garbage collection would, and log the failure)."""
    try:
        resource.close()
    except Exception:
        with contextlib.suppress(Exception):
            getattr(resource.visalib, "sessions", {}).pop(resource.session, None)
        resource.session = None


class _Opening:
    """The connections one opening's thread makes (`seen`), shut down and closed once the
    opening is given up (`give_up`), so that a wait of pyvisa-py's or pyserial's on one of
    them ends at once; a connection it tries after that is refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a connection seen and the give-up never overlap
        self._sockets: list[socket.socket] = []
        self._given_up = False

    def seen(self, sock: socket.socket) -> None:
        """`sock` is about to connect, in the opening's thread."""
        with self._lock:
            if self._given_up:
                raise ConnectionAbortedError("the opening was given up")
            self._sockets.append(sock)

    def give_up(self) -> None:
        with self._lock:
            self._given_up = True
            sockets = tuple(self._sockets)
        _shut(sockets)


# the openings under way (`opened_within`), by their thread's identity
_OPENINGS: dict[int, _Opening] = {}
_HOOKED = threading.Lock()  # held while the audit hook is added, once
_hooked = False


def _audit(event: str, args: tuple[object, ...]) -> None:
    """An audit hook (`sys.addaudithook`): a socket about to connect in an opening's thread
    is that opening's (`_Opening.seen`). Only a dictionary's emptiness is asked of every other
    event in the process."""
    if not _OPENINGS or event != "socket.connect":
        return
    opening = _OPENINGS.get(threading.get_ident())
    if opening is not None and isinstance(args[0], socket.SocketType):
        opening.seen(args[0])


def _hook_once() -> None:
    global _hooked
    with _HOOKED:
        if not _hooked:
            sys.addaudithook(_audit)  # for good: an audit hook cannot be removed
            _hooked = True


def opened_within(open_resource: Callable[[], MessageBasedResource],
                  seconds: float) -> MessageBasedResource:
    """The resource `open_resource` opens, if within `seconds`, else `TimeoutError`.
    pyvisa-py's VXI-11 and HiSLIP opening waits for the instrument's answers seconds whatever
    the link's timeout (VXI-11's create_link and portmapper calls 5 s each; HiSLIP's
    Initialize 5 s), on a connection not yet there to cut: so it is made in a thread of its
    own, and given up at `seconds`: the connections that thread made are shut down and closed
    then (`_Opening`: each is seen as it connects), so that its wait ends at once and the
    thread with it, rather than holding a connection to the instrument for seconds; what it
    opens all the same is closed (so too when the wait is interrupted, a KeyboardInterrupt).
    A host name's lookup in it cannot be cut, and ends by itself. With no time left nothing
    is started."""
    if not seconds > 0:
        raise TimeoutError(f"not opened within {seconds:g} s: no time left")
    _hook_once()
    lock = threading.Lock()  # the wait's end and the opening's never overlap
    done = threading.Event()
    out: dict[str, object] = {}
    opening = _Opening()

    def run() -> None:
        _OPENINGS[threading.get_ident()] = opening
        try:
            resource = open_resource()
        except BaseException as exc:  # handed to the waiting call
            with lock:
                out["error"] = exc
                done.set()
            return
        finally:
            del _OPENINGS[threading.get_ident()]
        with lock:
            if "gave up" not in out:
                out["resource"] = resource
                done.set()
                return
        _close_cut(resource)  # nobody waits for it any more

    threading.Thread(target=run, name="opening within", daemon=True).start()
    try:
        done.wait(seconds)
    except BaseException:  # interrupted: what is opened, now or later, is closed
        with lock:
            out["gave up"] = True
            late = out.pop("resource", None)
        opening.give_up()
        if late is not None:
            _close_cut(late)  # type: ignore[arg-type]
        raise
    with lock:
        given_up = not done.is_set()
        if given_up:
            out["gave up"] = True
    if given_up:
        opening.give_up()
        raise TimeoutError(f"not opened within {seconds:g} s")
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["resource"]  # type: ignore[return-value]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.forked)
    # the parent's openings' threads are not in the child, whose threads may reuse their ids
    os.register_at_fork(after_in_child=_OPENINGS.clear)
