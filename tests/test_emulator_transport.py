"""EmulatorTransport: replies, injected faults, and the virtual time a timeout costs."""

from __future__ import annotations

import pytest

from drivers.link import Link, parse_float
from simulators.emulator import Emulator, EmulatorTransport, Faults
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentLost, InstrumentTimeout


class Echo(Emulator):
    name = "echo"

    def __init__(self) -> None:
        self.cleared = 0
        self.value = 1.25

    def handle(self, message: str) -> str | None:
        if message == "V?":
            return str(self.value)
        return None

    def device_clear(self) -> None:
        self.cleared += 1


def test_query_reaches_the_emulator_and_commands_without_reply_give_none() -> None:
    t = EmulatorTransport(Echo())
    assert t.query("V?") == "1.25"
    t.write("SET 3")
    with pytest.raises(InstrumentTimeout):
        t.read()


def test_a_timeout_costs_the_timeout_in_virtual_time() -> None:
    clock = VirtualClock()
    t = EmulatorTransport(Echo(), timeout=2.5, clock=clock, faults=Faults(timeouts=1))
    with pytest.raises(InstrumentTimeout, match=r"2\.5 s"):
        t.query("V?")
    assert clock.now() == pytest.approx(2.5)
    assert t.query("V?") == "1.25"  # the fault was used up


def test_link_survives_transient_faults_with_a_device_clear() -> None:
    emulator = Echo()
    faults = Faults(timeouts=1, garbage=1)
    link = Link(EmulatorTransport(emulator, faults=faults), name="echo", retries=2)
    assert link.query("V?", parse_float) == 1.25
    assert emulator.cleared == 2
    assert faults.timeouts == 0 and faults.garbage == 0


def test_persistent_garbage_ends_in_instrument_lost() -> None:
    link = Link(EmulatorTransport(Echo(), faults=Faults(garbage=10)), name="echo", retries=2)
    with pytest.raises(InstrumentLost, match="no valid reply"):
        link.query("V?", parse_float)


def test_disconnect_and_close_fail_every_operation() -> None:
    faults = Faults()
    t = EmulatorTransport(Echo(), faults=faults)
    faults.disconnected = True
    for op in (lambda: t.write("V?"), t.read, t.clear):
        with pytest.raises(InstrumentLost, match="connection lost"):
            op()
    faults.disconnected = False
    t.close()
    with pytest.raises(InstrumentLost, match="closed"):
        t.query("V?")
