"""`smm-daq safe`'s first stop (`PIGCSStage.stop_alone`) over a serial line, the C-884 emulator
served on loopback TCP and reached through pyserial's `socket://` URL (or pyvisa-py's ASRL),
its port wrapped to hold what a real serial line can: a reply a killed program left unread,
and commands written but not yet sent at the baud rate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from test_serial_links import counter_address
from test_socket_transport import bounded

from drivers.pi_gcs import PIGCSStage
from drivers.transports import SerialTransport, VisaTransport, open_transport
from simulators.backend import SimulatedBackend
from simulators.tcp_server import HOST
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import LinkSettings, StageSettings, load_profile
from smm_daq.instruments.transport import Transport

C884_PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
TIMEOUT_S = 0.3


class PortWrapper:
    """A pyserial port (pyserial's own, or the one pyvisa-py holds), every attribute passed
    through but those a subclass defines."""

    def __init__(self, port: Any) -> None:
        self.__dict__["_port"] = port

    def __getattr__(self, name: str) -> object:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._port, name, value)


class LeftOver(PortWrapper):
    """Its input starts with `stale`, a reply a killed program never read: waiting in the
    port's input buffer (dropped by a reset), or, `late`, still on its way (a reset does not
    drop it: it comes after)."""

    def __init__(self, port: Any, stale: bytes, *, late: bool) -> None:
        super().__init__(port)
        self.__dict__.update(_stale=bytearray(stale), _late=late)

    def reset_input_buffer(self) -> None:
        self._port.reset_input_buffer()
        if not self._late:
            self._stale.clear()

    def read(self, size: int = 1) -> bytes:
        if self._stale:
            taken = bytes(self._stale[:size])
            del self._stale[:size]
            return taken
        return self._port.read(size)

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes:
        if self._stale:
            end = self._stale.find(expected) + len(expected)
            taken = bytes(self._stale[:end])
            del self._stale[:end]
            return taken
        return self._port.read_until(expected, size)


class SlowLine(PortWrapper):
    """Written bytes wait in the port's output buffer and go out as the line moves while the
    host waits: a command at each look at `out_waiting`, and at each read that finds nothing
    arrived, the commands up to the next query (one with a reply to wait for; a timeout's
    wait is far longer than a few commands take). A reset of the output buffer drops what
    has not gone out."""

    def __init__(self, port: Any) -> None:
        super().__init__(port)
        self.__dict__["_unsent"] = bytearray()

    def write(self, data: bytes) -> int:
        self._unsent.extend(data)
        return len(data)

    def _send_one(self) -> bytes:
        end = self._unsent.find(b"\n") + 1
        command = bytes(self._unsent[:end])
        if end:
            self._port.write(command)
            del self._unsent[:end]
        return command

    @property
    def out_waiting(self) -> int:
        self._send_one()
        return len(self._unsent)

    def flush(self) -> None:
        while self._unsent:
            self._send_one()

    def reset_output_buffer(self) -> None:
        self._unsent.clear()

    def _waited(self) -> None:
        if not self._port.in_waiting:
            while (command := self._send_one()) and not command.rstrip().endswith(b"?"):
                pass

    def read(self, size: int = 1) -> bytes:
        self._waited()
        return self._port.read(size)

    def read_until(self, expected: bytes = b"\n", size: int | None = None) -> bytes:
        self._waited()
        return self._port.read_until(expected, size)


def _wrap(transport: Transport, wrapper: Callable[[Any], PortWrapper]) -> None:
    if isinstance(transport, SerialTransport):
        transport.port = wrapper(transport.port)  # type: ignore[assignment]
        return
    assert isinstance(transport, VisaTransport)
    session = transport.resource.visalib.sessions[transport.resource.session]  # type: ignore
    session.interface = wrapper(session.interface)


@dataclass
class ServedStage:
    backend: SimulatedBackend
    proxy: FaultProxy
    settings: StageSettings

    def stop_alone(self, wrapper: Callable[[Any], PortWrapper]) -> Any:
        def opened(address: str, link: LinkSettings) -> Transport:
            transport = open_transport(address, link, visa_library="@py")
            _wrap(transport, wrapper)
            return transport

        return PIGCSStage.stop_alone(self.settings, clock=self.backend.clock,
                                     open_transport=opened)

    def moving(self) -> bool:
        return self.backend.world.stage.moving("1")


@pytest.fixture(params=["serial", "visa-asrl"])
def served(request: pytest.FixtureRequest) -> Iterator[ServedStage]:
    """The C-884 emulator on a serial line, an error left pending (15: an earlier program's
    `MOV 9 0`, no axis 9) and axis 1 driving to its reference switch."""
    profile = load_profile(C884_PROFILE)
    backend = SimulatedBackend(profile, VirtualClock(), {"noise_rms": 0.0, "drift_rate": 0.0})
    address = profile.stage.link.address
    backend.endpoint(address).handle("MOV 9 0")
    model = backend.world.stage
    model.set_servo("1", True)
    model.reference(("1",))  # the killed program's FRF: moving (in virtual time) until stopped
    server = backend.serve_tcp()
    proxy = FaultProxy((HOST, server.ports()[address])).start()
    serial_address = counter_address(proxy.port, request.param)
    settings = replace(profile.stage, link=replace(
        profile.stage.link, address=serial_address, timeout_s=TIMEOUT_S, retries=2))
    try:
        yield ServedStage(backend, proxy, settings)
    finally:
        proxy.close()
        server.close()


PENDING = "the controller held error 15 (invalid axis identifier) from before the stop"


@pytest.mark.parametrize("stale", [b"0\n", b"1=12.5000\n"], ids=["err-reply", "pos-reply"])
def test_a_reply_left_waiting_is_not_read_as_the_error_before_the_stop(
        served: ServedStage, stale: bytes) -> None:
    """A killed program's reply waiting unread (its ERR?'s "0", or a POS? line) put every
    reply one behind: the stop was said failed with the pending error as its own, or the
    pending error said unknown. It is dropped before the first command."""
    stopped = served.stop_alone(lambda port: LeftOver(port, stale, late=False))
    assert not served.moving()
    assert stopped.done == "every axis stopped (STP)"
    assert stopped.found.startswith(PENDING), stopped.found


def test_a_left_reply_that_comes_late_leaves_the_stop_and_the_error_said_right(
        served: ServedStage) -> None:
    """A killed program's "0" that comes only after what was waiting was dropped: read as the
    error before the stop, it makes the pending error the stop's check (not 0 or 10); the
    reply after it is the stop's, so the stop succeeded and the error was from before."""
    stopped = served.stop_alone(lambda port: LeftOver(port, b"0\n", late=True))
    assert not served.moving()
    assert stopped.done == "every axis stopped (STP)"
    assert stopped.found.startswith(PENDING), stopped.found


IDN = b"(c)2017 Physik Instrumente (PI) GmbH & Co. KG, C-884.4DC, 0117012345, 01.00.03.06\n"
# (a killed program's reply that comes late, the error pending before the stop, what is found)
LATE = {
    # its stop's check (10), the error since read: taken for the error before the stop, it
    # was said held from before, and the error before (0) taken for the stop's check
    "stop-check": (b"10\n", 0, ""),
    # a three-axis POS? reply: its first line taken for the error before the stop, said lost
    "pos-reply": (b"1=12.5000000 \n2=3.0000000 \n3=0.1000000\n", 15, PENDING),
    # an *IDN? reply, like the marker: read past (too few replies before it)
    "idn-reply": (IDN, 15, PENDING),
}


@pytest.mark.parametrize("case", LATE)
def test_a_late_left_reply_is_told_apart_by_the_marker_after_the_stop(
        served: ServedStage, case: str) -> None:
    """A killed program's reply that comes after what was waiting was dropped: the replies are
    read up to the marker's (*IDN?, sent after the stop and its check), and the two just
    before it are the error before the stop and the stop's check, whatever came ahead."""
    stale, pending, found = LATE[case]
    if not pending:
        served.backend.endpoint(load_profile(C884_PROFILE).stage.link.address).handle("ERR?")
    stopped = served.stop_alone(lambda port: LeftOver(port, stale, late=True))
    assert not served.moving()
    assert stopped.done == "every axis stopped (STP)"
    assert stopped.found.startswith(found) if found else stopped.found == "", stopped.found


def test_a_garbled_error_reply_never_drops_the_stop_still_going_out(
        served: ServedStage) -> None:
    """The reply to the ERR? sent ahead of the stop garbled, while STP is still in the port's
    output buffer (9 ms at 9600 baud): the stage is stopped by the first STP, and the error
    before it said unknown."""
    served.proxy.garble(1)
    stopped = served.stop_alone(SlowLine)
    assert not served.moving()
    assert stopped.done == "every axis stopped (STP)"
    assert "from before the stop is unknown" in stopped.found, stopped.found


def test_a_clear_lets_a_stop_still_in_the_output_buffer_go_out(served: ServedStage) -> None:
    """A clear after a failed exchange (a garbled reply) drops what has arrived, never a stop
    written just before and not yet sent at the baud rate."""
    transport = open_transport(served.settings.link.address, served.settings.link,
                               visa_library="@py")
    _wrap(transport, SlowLine)
    try:
        transport.write("STP")
        transport.clear()
    finally:
        transport.close()
    assert not served.moving()


class Blocked(PortWrapper):
    """A line blocked by flow control: what is written stays in the output buffer."""

    def __init__(self, port: Any) -> None:
        super().__init__(port)
        self.__dict__["held"] = bytearray()

    def write(self, data: bytes) -> int:
        self.held.extend(data)
        return len(data)

    @property
    def out_waiting(self) -> int:
        return len(self.held)

    def reset_output_buffer(self) -> None:
        self.held.clear()


def test_a_clear_on_a_blocked_line_still_ends_and_drops_what_it_holds() -> None:
    """Letting written commands go out before a clear waits only as long as they take at the
    baud rate and a timeout: a line that never sends (flow control held) is cleared anyway."""
    transport = SerialTransport.open("loop://", baud_rate=9600, timeout=0.05)
    port = Blocked(transport.port)
    transport.port = port  # type: ignore[assignment]
    try:
        transport.write("MOV 1 5")
        bounded(transport.clear)
        assert port.held == b""
    finally:
        transport.close()
