"""Base of the protocol emulators, and the in-process transport that reaches them.

An emulator answers the same command strings as the real instrument. `EmulatorTransport`
gives a driver the `Transport` interface onto an emulator, with injectable faults (timeouts,
garbage replies, disconnects), so the real drivers run unchanged in simulator mode and the
tests can break the link on purpose. `simulators.tcp_server` serves the same emulators on
loopback TCP for any VISA client.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

from smm_daq.clock import Clock
from smm_daq.errors import InstrumentLost, InstrumentTimeout


def number_reply(value: float, spec: str) -> str:
    """`value` as an instrument prints it in a reply (`spec` a format spec such as ".6E"): a
    value that prints as zero has no minus sign ("-0" sent, or a small negative rounded away,
    reads back "0.000" or "+0.000E+00" where the spec asks for a sign), as the instruments
    keep no negative zero."""
    text = format(value, spec)
    if text.startswith("-") and not text.strip("-+0.eE"):
        return ("+" if "+" in spec else "") + text[1:]
    return text


class BinaryReply(str):
    """A reply of raw bytes (one character per byte, latin-1) that is sent without a
    terminator, as an instrument ends a binary transfer with EOI rather than a line feed."""


class Emulator(ABC):
    """A simulated instrument speaking its real command language, one message at a time."""

    name: str = "emulator"
    # Byte values the instrument acts on at once, wherever they arrive, without a terminator
    # (PI's single-byte commands: chr(5) asks which axes move, chr(24) stops everything),
    # ahead of a line that arrived before them but is not yet parsed: PI's manuals say
    # single-character commands are processed immediately on arrival, line commands queued.
    immediate_bytes: frozenset[int] = frozenset()

    @abstractmethod
    def handle(self, message: str) -> str | None:
        """Process one message (terminator stripped); return the reply, or None if there is none.

        Unknown or malformed commands behave as on the real instrument (an error bit, an error
        queue entry, or no reply): never an exception.
        """

    @property
    def reply_end(self) -> str:
        """What ends each line of a reply on the wire (the served socket adds it)."""
        return "\n"

    @property
    def command_ends(self) -> bytes:
        """The bytes that each end a command on the wire (the served socket splits at them)."""
        return b"\n"

    def handle_byte(self, code: int) -> str | None:
        """Process one of `immediate_bytes`; return the reply, or None if there is none."""
        return None

    def device_clear(self) -> None:  # noqa: B027 - instruments without clear semantics ignore it
        """IEEE 488.2 device clear: drop pending input and output."""


@dataclass
class Faults:
    """Faults to inject on one link. Counters count down as faults are delivered."""

    timeouts: int = 0  # the next N replies are lost (read times out)
    garbage: int = 0  # the next N replies are replaced by garbage
    disconnected: bool = False  # every operation fails with InstrumentLost
    garbage_text: str = "#\x15?!"


def held_back(emulator: Emulator, message: str) -> bool:
    """Whether `message` is a query that an emulator with `immediate_bytes` gets to only after
    such a byte written right behind it (PI: single-character commands are acted on as they
    arrive, a query line when the controller parses it); a set command is acted on as it
    arrives, in order."""
    words = message.split()
    return bool(emulator.immediate_bytes) and bool(words) and words[0].endswith("?")


class EmulatorTransport:
    """A `Transport` onto an in-process emulator. Thread safe; one outstanding reply queue.

    A read with no reply waiting times out at once, advancing the virtual clock by the timeout
    when a clock is given, as the real link would have waited. With a clock, `latency` s pass
    before each message reaches the instrument and each reply takes its length over
    `bytes_per_s` to come back (0: instant), as on a real bus.

    An emulator with `immediate_bytes` parses the last query written (a line whose first word
    ends in '?') only when the instrument gets to it: as its reply is read, as another line
    or a clear follows, as the link closes or is lost (it had reached the instrument: an
    `ERR?` cleared the error), or once the clock has moved since it arrived. One of those bytes
    written right behind it, no time between, is acted on first (`ERR?` then `#24`: the stop
    comes first, and `ERR?` reads its 10). A set command is parsed as it arrives, its effect
    timed then (a move one of those bytes overtook would start late on the clock).
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        timeout: float = 3.0,
        clock: Clock | None = None,
        faults: Faults | None = None,
        latency: float = 0.0,
        bytes_per_s: float = 0.0,
    ) -> None:
        self.emulator = emulator
        self.latency = latency
        self.bytes_per_s = bytes_per_s
        self.timeout = timeout
        self.clock = clock
        self.faults = faults or Faults()
        self._replies: deque[str] = deque()
        # the query that reached an emulator with `immediate_bytes`, not yet parsed, and when
        self._unparsed: tuple[str, float] | None = None
        self._lock = threading.RLock()
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise InstrumentLost("link closed", instrument=self.emulator.name)
        if self.faults.disconnected:
            self._parse()  # it reached the instrument before the link was lost
            raise InstrumentLost("connection lost", instrument=self.emulator.name)

    def write(self, message: str) -> None:
        with self._lock:
            self._check()
            if self.clock is not None and self.latency > 0:
                self.clock.sleep(self.latency)
            if len(message) == 1 and ord(message) in self.emulator.immediate_bytes:
                if self._unparsed is not None and self._now() > self._unparsed[1]:
                    self._parse()  # the instrument got to it before the byte came
                self._answer(self.emulator.handle_byte(ord(message)))
                return
            self._parse()
            if held_back(self.emulator, message):
                self._unparsed = (message, self._now())
            else:
                self._answer(self.emulator.handle(message.strip()))

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else 0.0

    def _parse(self) -> None:
        """The line that reached the instrument unparsed (if one did) parsed now."""
        if self._unparsed is not None:
            message, self._unparsed = self._unparsed[0], None
            self._answer(self.emulator.handle(message.strip()))

    def _answer(self, reply: str | None) -> None:
        if reply is not None:
            self._replies.append(reply)

    def read(self) -> str:
        with self._lock:
            self._check()
            self._parse()
            if self._replies and self.faults.timeouts > 0:
                self.faults.timeouts -= 1
                self._replies.popleft()
                self._timed_out()
            if not self._replies:
                self._timed_out()
            reply = self._replies.popleft()
            if self.clock is not None and self.bytes_per_s > 0:
                self.clock.sleep(len(reply) / self.bytes_per_s)
            if self.faults.garbage > 0:
                self.faults.garbage -= 1
                return self.faults.garbage_text
            return reply

    def _timed_out(self) -> None:
        if self.clock is not None:
            self.clock.sleep(self.timeout)
        raise InstrumentTimeout(
            f"no reply within {self.timeout:g} s", instrument=self.emulator.name
        )

    def query(self, message: str) -> str:
        with self._lock:
            self.write(message)
            return self.read()

    def clear(self) -> None:
        with self._lock:
            self._check()
            self._parse()  # it reached the instrument: parsed, its reply dropped
            self._replies.clear()
            self.emulator.device_clear()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._parse()  # it reached the instrument (an `ERR?` clears the error held)
            self._closed = True
