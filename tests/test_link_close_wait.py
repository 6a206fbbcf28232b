"""Closing a link waits for the exchange under way on another thread, and for that one only:
an exchange begun while the close waits is refused, nothing sent, so that a call of many
exchanges (a lock-in's buffer read in chunks, a scan's worker cut off mid-read) holds the
close for one exchange, the wait `safe_bound.close_wait_s` counts in the make-safe bound."""

from __future__ import annotations

import threading
from typing import Any

from instrument_fakes import ScriptedTransport

from drivers.link import Link
from smm_daq.errors import InstrumentError

HANG_GUARD_S = 30.0  # real seconds; only a hang reaches it


class HeldTransport(ScriptedTransport):
    """Answers every query; the first one's reply is held until `release` is set."""

    def __init__(self) -> None:
        super().__init__([("CHUNK? 1", "1"), ("CHUNK? 2", "2")])
        self.in_query = threading.Event()
        self.release = threading.Event()
        self.sent_after_close: list[str] = []

    def query(self, message: str) -> str:
        if self.closed:
            self.sent_after_close.append(message)
        if not self.in_query.is_set():
            self.in_query.set()
            assert self.release.wait(HANG_GUARD_S)
        return super().query(message)


class NotedLock:
    """The link's lock, noting when the closing thread begins to wait for it
    (`closer_waits`); that thread takes it only once the reader has taken it again, for its
    next exchange (`reader_again`). Which of two threads waiting for a lock gets it is the
    system's choice: a close that took it first would close the link before that exchange
    began, and the test would not test what it names (it failed so about one run in six)."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.closer_waits = threading.Event()
        self.reader_again = threading.Event()
        self.reader_entries = 0

    def __enter__(self) -> Any:
        name = threading.current_thread().name
        if name == "closer":
            self.closer_waits.set()
            assert self.reader_again.wait(HANG_GUARD_S)
            return self.lock.__enter__()
        entered = self.lock.__enter__()
        if name == "reader":
            self.reader_entries += 1
            if self.reader_entries == 2:
                self.reader_again.set()
        return entered

    def __exit__(self, *exc: object) -> Any:
        return self.lock.__exit__(*exc)


def test_an_exchange_begun_while_the_close_waits_is_refused_unsent() -> None:
    """A reader of two chunks is in its first exchange as the link is closed: the close waits
    for it, and the second chunk, begun while the close still waits, is refused without being
    sent. Unfixed, the second chunk was sent (before the close, which then waited for it too,
    or to the closed transport)."""
    transport = HeldTransport()
    link = Link(transport, name="lock-in")
    lock = NotedLock(link._lock)
    link._lock = lock
    got: list[object] = []

    def reader() -> None:
        got.append(link.query("CHUNK? 1", str))
        try:
            got.append(link.query("CHUNK? 2", str))
        except InstrumentError as exc:
            got.append(exc)

    reading = threading.Thread(target=reader, name="reader")
    reading.start()
    assert transport.in_query.wait(HANG_GUARD_S)
    closing = threading.Thread(target=link.close, name="closer")
    closing.start()
    assert lock.closer_waits.wait(HANG_GUARD_S)
    transport.release.set()
    reading.join(HANG_GUARD_S)
    closing.join(HANG_GUARD_S)
    assert not reading.is_alive() and not closing.is_alive()
    assert got[0] == "1"
    assert isinstance(got[1], InstrumentError), got
    assert str(got[1]) == "lock-in: 'CHUNK? 2' not sent: the link is being closed"
    assert transport.sent == ["CHUNK? 1"] and transport.sent_after_close == []
    assert transport.closed
    # the refusal lasts while the close waits, no longer: a link used again (a transport that
    # opens anew on its next use) sends as before
    assert link.query("CHUNK? 2", str) == "2"

