"""A write to an instrument that stopped reading ends within the link's timeout, over loopback
TCP to a served emulator: the instrument stops taking input (its connection's thread held), the
socket's buffers fill, and the write that cannot go raises `InstrumentTimeout`, counted as a
lost reply is (the link's failures, the make-safe path's loss budget). pyvisa-py's own write
waits for room without end; each call runs in a helper thread that the test waits for with a
hang guard, so a hang fails the test instead of freezing it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import pyvisa
from pyvisa import constants

from drivers import transports
from drivers.link import Link
from drivers.transports import open_transport
from simulators.emulator import Emulator
from simulators.tcp_server import EmulatorServer
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentLost, InstrumentTimeout
from smm_daq.instruments import loss_budget
from smm_daq.instruments.profile import LinkSettings, load_profile
from smm_daq.instruments.safe_bound import clear_s, switch_off_tail_s
from smm_daq.instruments.transport import BITS_PER_BYTE, DEFAULT_BAUD_RATE, LARGEST_REPLY

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 0.3
HANG_GUARD_S = 30.0  # far beyond any bounded call; only a hang reaches it
FILLER = "F" * 4000  # a command with no reply, long enough to fill the buffers soon
HOLD = "HOLD"  # the instrument stops taking input until released


class Stalling(Emulator):
    """Echoes queries (ending '?'); `HOLD` holds the thread of its connection, which then
    reads nothing more, until `release`."""

    name = "stalling"

    def __init__(self) -> None:
        self.released = threading.Event()

    def handle(self, message: str) -> str | None:
        if message == HOLD:
            self.released.wait(HANG_GUARD_S)
        return f"echo {message}" if message.endswith("?") else None

    def release(self) -> None:
        self.released.set()


def bounded(call: Callable[[], object]) -> object:
    """Run `call` in a thread, in this context (the make-safe path's budget), and return its
    result or raise its exception; fail if it does not return."""
    out: dict[str, object] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            out["value"] = context.run(call)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the call did not return"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


@pytest.fixture
def served() -> Iterator[tuple[Stalling, str]]:
    emulator = Stalling()
    server = EmulatorServer({"stalling": emulator}).start()
    yield emulator, server.resources()["stalling"]
    emulator.release()  # its connection's thread ends, so the server can close
    server.close()


def opened(resource: str):
    return open_transport(resource, LinkSettings("x", resource, TIMEOUT_S, 2), visa_library="@py")


def fill(write: Callable[[str], None]) -> None:
    """Write fillers until a write fails (the instrument reads nothing since `HOLD`)."""
    write(HOLD)
    while True:
        write(FILLER)


def test_a_write_the_instrument_does_not_take_times_out(served) -> None:
    emulator, resource = served
    t = opened(resource)
    assert t.query("a?") == "echo a?"
    with pytest.raises(InstrumentTimeout, match=r"could not send within 0\.3 s"):
        bounded(lambda: fill(t.write))
    emulator.release()
    # the command cut short went with the connection: the next exchange has a new one
    assert bounded(lambda: t.query("b?")) == "echo b?"
    t.close()


def test_a_query_whose_command_cannot_go_out_times_out(served) -> None:
    _, resource = served
    t = opened(resource)
    t.write(HOLD)
    longer_than_the_buffers = "Q" * (64 << 20) + "?"
    with pytest.raises(InstrumentTimeout, match="could not send"):
        bounded(lambda: t.query(longer_than_the_buffers))
    t.close()


@pytest.mark.parametrize(
    ("taken_s", "reply_ms"),
    [(0.25, (40, 50)), (0.0005, (TIMEOUT_S * 1000, TIMEOUT_S * 1000))],
    ids=["slow command", "quick command"],
)
def test_a_querys_reply_gets_what_its_command_left_of_the_timeout(
    served, monkeypatch, taken_s: float, reply_ms: tuple[float, float]
) -> None:
    """A command that took most of the link's timeout to go out (an instrument slow to take
    it; here its send is said to take 0.25 s of 0.3 s) leaves its reply the rest: the exchange
    costs one timeout, as a lost reply does. One that went out within 1 ms leaves its reply
    the whole timeout. The transport's clock is the test's (it moves only by what a send is
    said to take), so the reply's timeout is exact whatever the machine's load. The link's
    timeout is set back after."""
    _, resource = served
    t = opened(resource)
    said_taken = [time.monotonic()]
    monkeypatch.setattr(transports, "time", SimpleNamespace(monotonic=lambda: said_taken[0]))
    send = transports._send_within

    def slow_send(sock: object, data: bytes, deadline: float) -> None:
        send(sock, data, deadline)
        said_taken[0] += taken_s

    monkeypatch.setattr(transports, "_send_within", slow_send)
    waited_ms: list[float] = []
    line_within = transports._line_within

    def noted_read(sock: object, pending: bytearray, end: bytes, deadline: float) -> bytes:
        waited_ms.append(round((deadline - said_taken[0]) * 1000.0, 6))  # the reply's time
        return line_within(sock, pending, end, deadline)  # type: ignore[arg-type]

    monkeypatch.setattr(transports, "_line_within", noted_read)
    with pytest.raises(InstrumentTimeout):
        bounded(lambda: t.query("no reply"))  # not a query to the emulator: never answered
    assert len(waited_ms) == 1 and reply_ms[0] <= waited_ms[0] <= reply_ms[1], waited_ms
    assert t.resource.timeout == TIMEOUT_S * 1000
    t.close()


class NotTaking:
    """A VISA resource (GPIB, or a serial line) whose instrument takes no command: each write
    ends in VISA's timeout."""

    timeout = 3000

    def __init__(self, interface: constants.InterfaceType) -> None:
        self.interface_type = interface
        self.bytes_in_buffer = 0

    def write(self, message: str) -> None:
        raise pyvisa.VisaIOError(constants.StatusCode.error_timeout)


@pytest.mark.parametrize(
    "interface",
    [constants.InterfaceType.gpib, constants.InterfaceType.asrl],
    ids=["GPIB", "serial"],
)
@pytest.mark.parametrize("call", ["write", "query"])
def test_a_visa_write_that_times_out_says_the_command_was_not_taken(
    interface: constants.InterfaceType, call: str
) -> None:
    """Over VISA (GPIB, a serial line) a write has the resource's timeout: one that runs out
    says the command could not be sent, as on a raw socket, not that no reply came."""
    t = transports.VisaTransport(NotTaking(interface), name="GPIB0::1::INSTR")  # type: ignore[arg-type]
    with pytest.raises(InstrumentTimeout, match=r"could not send within 3 s \(the instrument"):
        getattr(t, call)("OUTP OFF")


@pytest.mark.parametrize("over", ["VISA raw socket", "pyserial socket://"])
def test_a_stalled_write_is_charged_to_the_make_safe_budget_as_a_lost_reply(
    served, over: str
) -> None:
    """Each write that could not go costs the link's timeout, as a lost reply does: counted
    in the link's failures and against the supply's allowance, which then gives it up; on a
    VISA raw socket and on a serial-over-LAN link alike."""
    _, resource = served
    if over == "pyserial socket://":
        port = resource.split("::")[2]
        resource = f"serial:socket://127.0.0.1:{port}"
    link = Link(opened(resource), name="supply 1", retries=0, budget=loss_budget.SUPPLY)
    with loss_budget.making_safe(1, clock=VirtualClock(), deadline_s=100.0) as budget:
        with pytest.raises(InstrumentLost, match="could not send"):
            bounded(lambda: fill(link.write))
        assert link.failures == 1
        assert budget.lost == {"supply 1": 1}
        with pytest.raises(loss_budget.GivenUp):  # its allowance spent: refused at once
            link.write("OUTP OFF")
    link.close()


def test_a_serial_supplys_switch_offs_are_counted_with_their_commands_write_time() -> None:
    """On a serial line a query's command may wait its write's timeout for room (a line held
    by flow control), and its reply then has a timeout of its own: the supply's exchange under
    way at the deadline and each switch-off exchange after it count both, with the reply's
    transfer and the device clear (the stage on GPIB here, whose exchange takes less)."""
    profile = load_profile(REPO / "configs" / "simulator.toml")
    serial = ("ASRL5::INSTR", "ASRL6::INSTR", "ASRL7::INSTR")
    link = replace(profile.coils.link, address=serial[0], baud_rate=115200)
    stage = replace(profile.stage, link=replace(profile.stage.link, address="GPIB0::8::INSTR"))
    on_serial = replace(
        profile, coils=replace(profile.coils, link=link, addresses=serial), stage=stage
    )
    transfer = LARGEST_REPLY * BITS_PER_BYTE / 115200
    attempt = link.timeout_s + (link.timeout_s + transfer) + clear_s(link)
    exchanges = 1 + len(serial) * loss_budget.TAIL_EXCHANGES
    assert switch_off_tail_s(on_serial) >= exchanges * attempt


def test_each_supply_is_counted_on_its_own_link() -> None:
    """The three supplies share the coils' link settings but not their addresses: one on GPIB
    and two on serial lines, each serial one's switch-off exchanges count its command's write,
    its reply's transfer and a serial line's clear, not what the first supply's GPIB takes."""
    profile = load_profile(REPO / "configs" / "simulator.toml")
    mixed = ("GPIB0::1::INSTR", "ASRL6::INSTR", "ASRL7::INSTR")
    coils = replace(
        profile.coils, link=replace(profile.coils.link, address=mixed[0]), addresses=mixed
    )
    on_mixed = replace(profile, coils=coils)
    link = coils.link
    gpib = link.timeout_s + clear_s(link)
    serial = replace(link, address=mixed[1])
    transfer = LARGEST_REPLY * BITS_PER_BYTE / (serial.baud_rate or DEFAULT_BAUD_RATE)
    on_serial = link.timeout_s + (link.timeout_s + transfer) + clear_s(serial)
    tail = loss_budget.TAIL_EXCHANGES * (gpib + 2 * on_serial)
    assert switch_off_tail_s(on_mixed) >= on_serial + tail
