"""Link: strict parsers, bounded retries with a device clear between attempts."""

from __future__ import annotations

import pytest
from instrument_fakes import ScriptedTransport

from drivers.link import Link, parse_float, parse_int
from smm_daq.errors import InstrumentLost, InstrumentTimeout, ProtocolError, ReplyUnknown


@pytest.mark.parametrize("reply", ["", "abc", "1.0 2.0", "1,5", "nan", "inf", "-inf", "0x10"])
def test_parse_float_refuses_anything_but_one_finite_number(reply: str) -> None:
    with pytest.raises(ProtocolError, match="expected a"):
        parse_float(reply)


@pytest.mark.parametrize(("reply", "value"), [("1.5e-3", 1.5e-3), (" -2 ", -2.0), ("+0", 0.0)])
def test_parse_float_reads_numbers(reply: str, value: float) -> None:
    assert parse_float(reply) == value


@pytest.mark.parametrize("reply", ["", "1.0", "one", "3 4"])
def test_parse_int_refuses_non_integers(reply: str) -> None:
    with pytest.raises(ProtocolError):
        parse_int(reply)


def test_garbled_reply_is_retried_after_a_clear_then_accepted() -> None:
    t = ScriptedTransport([("X?", "garbage"), ("X?", "2.5")])
    link = Link(t, name="meter", retries=2)
    assert link.query("X?", parse_float) == 2.5
    assert t.clears == 1


def test_missing_reply_is_retried_and_then_the_instrument_is_lost() -> None:
    t = ScriptedTransport([("X?", None)] * 3)
    link = Link(t, name="meter", retries=2)
    with pytest.raises(InstrumentLost) as err:
        link.query("X?", parse_float)
    assert "meter" in str(err.value) and "'X?'" in str(err.value) and "3 attempts" in str(err.value)
    assert t.clears == 3 and t.done()


def test_a_destructive_query_is_never_sent_again() -> None:
    """ERR? read clears the error: garbled or lost after the instrument answered, a second
    ERR? would answer 0 for an error the first cleared. Its state is unknown: lost."""
    for reply in ("garbage", None):
        t = ScriptedTransport([("ERR?", reply)])
        link = Link(t, name="stage", retries=2)
        with pytest.raises(ReplyUnknown, match="is not asked again"):  # an InstrumentLost
            link.query("ERR?", parse_float, destructive=True)
        assert t.done() and t.clears == 1  # the stale reply is cleared for the next exchange


def test_no_retries_means_one_attempt() -> None:
    t = ScriptedTransport([("X?", "bad")])
    with pytest.raises(InstrumentLost):
        Link(t, name="meter", retries=0).query("X?", parse_float)
    assert t.done()


def test_lost_link_is_not_retried() -> None:
    class Dead(ScriptedTransport):
        def write(self, message: str) -> None:
            self.sent.append(message)
            raise InstrumentLost("unplugged")

    t = Dead([])
    with pytest.raises(InstrumentLost, match="unplugged"):
        Link(t, name="meter", retries=5).query("X?", parse_float)
    assert t.sent == ["X?"]


def test_write_timeouts_are_retried() -> None:
    class Slow(ScriptedTransport):
        failures = 1

        def write(self, message: str) -> None:
            if self.failures:
                self.failures -= 1
                raise InstrumentTimeout("busy")
            super().write(message)

    t = Slow([("GO", None)])
    Link(t, name="meter", retries=1).write("GO")
    assert t.done() and t.clears == 1


def test_negative_retries_are_refused() -> None:
    with pytest.raises(ValueError):
        Link(ScriptedTransport([]), name="meter", retries=-1)


# --- real transports (no hardware: pyserial's loop:// and loopback TCP) ------------------


def serial_link(timeout: float = 0.05):
    from drivers.transports import open_transport
    from smm_daq.instruments.profile import LinkSettings

    return open_transport("serial:loop://", LinkSettings("x", "serial:loop://", timeout, 0, 9600))


def test_serial_transport_frames_messages_with_lf() -> None:
    t = serial_link()
    t.write("POS? 1")  # loop:// hands back what was sent
    assert t.read() == "POS? 1"
    t.port.write(b"partial")
    with pytest.raises(InstrumentTimeout):
        t.read()
    t.write("again")
    t.clear()
    with pytest.raises(InstrumentTimeout):
        t.read()
    t.close()
    with pytest.raises(InstrumentLost):
        t.write("closed")


def test_opening_a_missing_serial_port_is_instrument_lost() -> None:
    from drivers.transports import open_transport
    from smm_daq.instruments.profile import LinkSettings

    with pytest.raises(InstrumentLost, match="cannot open"):
        open_transport("serial:/dev/no-such-port", LinkSettings("x", "-", 0.1, 0, 9600))


def test_visa_transport_maps_a_silent_instrument_to_a_timeout() -> None:
    from drivers.transports import open_transport
    from simulators.emulator import Emulator
    from simulators.tcp_server import EmulatorServer
    from smm_daq.instruments.profile import LinkSettings

    class Mute(Emulator):
        def handle(self, message: str) -> str | None:
            return "pong" if message == "ping" else None

    with EmulatorServer({"mute": Mute()}) as server:
        resource = server.resources()["mute"]
        t = open_transport(resource, LinkSettings("x", resource, 1.0, 0), visa_library="@py")
        assert t.query("ping") == "pong"
        with pytest.raises(InstrumentTimeout):
            t.query("silence")
        t.close()
        t.close()  # idempotent
        with pytest.raises(InstrumentLost, match="closed"):
            t.query("ping")
