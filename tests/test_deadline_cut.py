"""The deadline cut's watchdog (`drivers.deadline_cut`) keeps cutting: in a process forked from
one that had started it, after its thread ended, and past a cut that failed. Over socket pairs
standing for a pyvisa-py LAN session's connection: a peer sees the connection's end once it
is cut."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import types

import pytest
from pyvisa import constants

from drivers import deadline_cut
from drivers.deadline_cut import Cut

GUARD_S = 10.0  # the longest a cut is waited for


class LanSession:
    """What `lan_instrument_sockets` reads of a pyvisa-py VXI-11 session: its socket."""

    interface_type = constants.InterfaceType.tcpip
    session = 1

    def __init__(self, sock: socket.socket) -> None:
        interface = types.SimpleNamespace(sock=sock)
        self.visalib = types.SimpleNamespace(sessions={1: types.SimpleNamespace(
            interface=interface)})

    def close(self) -> None:
        pass


def cut_seen(deadline: float) -> bool:
    """Whether a connection armed to be cut at `deadline` is cut (its peer sees its end)."""
    sock, peer = socket.socketpair()
    peer.settimeout(GUARD_S)
    try:
        with Cut(LanSession(sock), deadline):  # type: ignore[arg-type]
            return peer.recv(1) == b""
    except TimeoutError:  # the guard ran out
        return False
    finally:
        peer.close()


def test_a_process_forked_after_the_watchdog_started_cuts_at_its_deadlines() -> None:
    """Unfixed, the child took the parent's watchdog for started (a thread fork does not
    copy): its cuts never fired, and a write to a LAN instrument that stopped taking input
    waited without end."""
    now = time.monotonic()
    assert cut_seen(now)  # the watchdog's thread runs in this process
    child = os.fork()
    if child == 0:
        code = 1
        try:
            now = time.monotonic()
            code = 0 if cut_seen(now) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def watchdog(monkeypatch: pytest.MonkeyPatch) -> deadline_cut._Watchdog:
    """A watchdog of the test's own, in place of the process's."""
    dog = deadline_cut._Watchdog()
    monkeypatch.setattr(deadline_cut, "_WATCHDOG", dog)
    return dog


def test_a_watchdog_whose_thread_ended_is_started_again_by_the_next_cut(
        watchdog: deadline_cut._Watchdog) -> None:
    """Unfixed, a watchdog whose thread had ended (an error that escaped its loop) was taken
    for running: no cut fired again in the process."""
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    watchdog._thread = ended
    now = time.monotonic()
    assert cut_seen(now)


def test_a_cut_that_fails_does_not_keep_the_others_due_with_it_from_being_cut(
        watchdog: deadline_cut._Watchdog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cuts due at once, the first failing to shut its connection: the second is cut
    all the same. Unfixed, the failure ended the watchdog's thread before it came to the
    second, which stayed open."""
    failing, failing_peer = socket.socketpair()
    sock, peer = socket.socketpair()
    shut = deadline_cut._shut

    def shut_or_fail(sockets: tuple[socket.socket, ...]) -> None:
        if failing in sockets:
            raise RuntimeError("cannot shut down")
        shut(sockets)

    monkeypatch.setattr(deadline_cut, "_shut", shut_or_fail)
    peer.settimeout(GUARD_S)
    now = time.monotonic()
    with contextlib.ExitStack() as armed:
        with watchdog._ready:  # both armed before the watchdog looks: due together
            armed.enter_context(Cut(LanSession(failing), now))  # type: ignore[arg-type]
            armed.enter_context(Cut(LanSession(sock), now))  # type: ignore[arg-type]
        try:
            assert peer.recv(1) == b""
        except TimeoutError:
            pytest.fail("the second cut was never made")
    for each in (failing, failing_peer, sock, peer):
        each.close()
