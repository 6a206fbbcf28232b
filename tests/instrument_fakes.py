"""A scripted instrument link for driver tests: each expected command and the reply it gets."""

from __future__ import annotations

from collections import deque

from smm_daq.errors import InstrumentTimeout
from smm_daq.instruments.profile import LinkSettings


class ScriptedTransport:
    """Plays back an instrument. The script is a list of (command, reply or None).

    A command that differs from the next one scripted fails the test at once; a read with no
    reply pending times out, as a real link would.
    """

    def __init__(self, script: list[tuple[str, str | None]], timeout: float = 1.0) -> None:
        self.script = deque(script)
        self.timeout = timeout
        self.sent: list[str] = []
        self.clears = 0
        self.closed = False
        self._pending: deque[str] = deque()

    def write(self, message: str) -> None:
        self.sent.append(message)
        assert self.script, f"unexpected command {message!r} after the script ended"
        expected, reply = self.script.popleft()
        assert message == expected, f"sent {message!r}, the script expected {expected!r}"
        if reply is not None:
            self._pending.append(reply)

    def read(self) -> str:
        if not self._pending:
            raise InstrumentTimeout("no reply pending")
        return self._pending.popleft()

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def clear(self) -> None:
        self.clears += 1
        self._pending.clear()

    def close(self) -> None:
        self.closed = True

    def done(self) -> bool:
        return not self.script


def link_settings(implementation: str, address: str = "GPIB0::8::INSTR") -> LinkSettings:
    return LinkSettings(implementation, address, timeout_s=1.0, retries=2)


def opener(transport: ScriptedTransport):
    """An `open_transport` that hands out `transport` and records the address asked for."""

    def open_transport(address: str, link: LinkSettings) -> ScriptedTransport:
        transport.address = address  # type: ignore[attr-defined]
        return transport

    return open_transport
