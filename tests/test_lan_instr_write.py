"""A write to a VXI-11 or HiSLIP instrument (`TCPIP::host::INSTR`, `TCPIP::host::hislip0::INSTR`)
that stopped taking input ends within the link's timeout, over loopback TCP to a minimal
instrument of each kind (`lan_instruments`): the command is said not sent (`InstrumentTimeout`),
counted as a lost reply is, and the connection is opened again for the next exchange.

pyvisa-py's VXI-11 write waits for the instrument's confirmation the timeout and a second more,
and a message larger than the room the connection's buffers have left waits without end; its
HiSLIP write gives each 1 MB packet of a long message the whole timeout, and one cut short
leaves the connection out of step (the rest of a packet never comes, and the instrument reads
the next command into it). Each call runs in a helper thread with a hang guard (`bounded`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lan_instruments import HOLD, HislipInstrument, Vxi11Instrument, bounded

from drivers import transports
from drivers.deadline_cut import Cut
from drivers.link import Link
from drivers.transports import open_transport
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentLost, InstrumentTimeout
from smm_daq.instruments import loss_budget
from smm_daq.instruments.profile import LinkSettings

TIMEOUT_S = 0.3
# larger than what loopback TCP buffers hold, and than a HiSLIP packet (1 MB)
LONGER_THAN_THE_BUFFERS = "Q" * (16 << 20)
KINDS = {"VXI-11": Vxi11Instrument, "HiSLIP": HislipInstrument}


@pytest.fixture(params=list(KINDS))
def instrument(request: pytest.FixtureRequest) -> Iterator[Vxi11Instrument | HislipInstrument]:
    served = KINDS[request.param]().start()
    yield served
    served.close()


@pytest.fixture
def vxi11() -> Iterator[Vxi11Instrument]:
    served = Vxi11Instrument().start()
    yield served
    served.close()


def opened(resource: str):
    return open_transport(resource, LinkSettings("x", resource, TIMEOUT_S, 2), visa_library="@py")


def test_a_long_write_the_instrument_does_not_take_times_out_on_a_new_connection_after(
    instrument,
) -> None:
    t = opened(instrument.resource)
    assert t.query("a?") == "echo a?"
    t.write(HOLD)
    with pytest.raises(InstrumentTimeout, match=r"could not send within 0\.3 s"):
        bounded(lambda: t.write(LONGER_THAN_THE_BUFFERS))
    instrument.release()
    # what went of the command went with the connection: the next exchange has a new one,
    # and its command reaches the instrument whole
    assert bounded(lambda: t.query("b?")) == "echo b?"
    t.close()


@pytest.mark.parametrize("call", ["write", "query"])
def test_a_command_a_vxi11_instrument_does_not_confirm_is_said_not_sent(vxi11, call) -> None:
    """VXI-11 waits for the instrument to confirm each write: one that stopped answering
    leaves the command unconfirmed, said not sent within the timeout (not a failed link);
    the transport closes after it as any other."""
    t = opened(vxi11.resource)
    t.write(HOLD)
    with pytest.raises(InstrumentTimeout, match=r"could not send within 0\.3 s"):
        bounded(lambda: getattr(t, call)("OUTP OFF" if call == "write" else "CURR?"))
    t.close()


def test_a_stalled_lan_write_is_charged_to_the_make_safe_budget_as_a_lost_reply(
    instrument,
) -> None:
    """Each write that could not go costs the link's timeout, as a lost reply does: counted
    in the link's failures and against the supply's allowance, which then gives it up."""
    link = Link(opened(instrument.resource), name="supply 1", retries=0,
                budget=loss_budget.SUPPLY)
    with loss_budget.making_safe(1, clock=VirtualClock(), deadline_s=100.0) as budget:
        link.write(HOLD)
        with pytest.raises(InstrumentLost, match="could not send"):
            bounded(lambda: link.write(LONGER_THAN_THE_BUFFERS))
        assert link.failures == 1
        assert budget.lost == {"supply 1": 1}
        with pytest.raises(loss_budget.GivenUp):  # its allowance spent: refused at once
            link.write("OUTP OFF")
    link.close()


class CutJustAfter(Cut):
    """The deadline comes just as the command went, before the write's end is seen."""

    def __exit__(self, *exc_info) -> None:  # type: ignore[override]
        self.cut()
        super().__exit__(*exc_info)


def test_a_command_that_went_as_the_connection_was_cut_is_no_failure(
    instrument, monkeypatch
) -> None:
    """A write that came back just as its deadline cut the connection went: it succeeds, and
    the next exchange has a new connection; a query's reply then has no time left (a lost
    reply, not a failed link)."""
    t = opened(instrument.resource)
    monkeypatch.setattr(transports, "Cut", CutJustAfter)
    t.write("OUTP OFF")
    with pytest.raises(InstrumentTimeout, match=r"no reply within 0\.3 s"):
        t.query("a?")
    monkeypatch.undo()
    assert bounded(lambda: t.query("b?")) == "echo b?"
    t.close()


def test_the_reopen_after_a_cut_to_an_instrument_that_hung_ends_at_the_deadline(
    instrument,
) -> None:
    """The instrument that stopped taking input answers no new connection either (a hung
    one): pyvisa-py's opening would wait 5 s for it (VXI-11's create_link, HiSLIP's
    Initialize) whatever the link's timeout; the exchange that reopens gives it up at its
    deadline, said lost, and a later one, the instrument back, opens a new connection."""
    t = opened(instrument.resource)
    t.write(HOLD)
    with pytest.raises(InstrumentTimeout, match="could not send"):
        bounded(lambda: t.write(LONGER_THAN_THE_BUFFERS))
    instrument.stall()
    with pytest.raises(InstrumentLost, match=r"could not be reopened within 0\.3 s"):
        bounded(lambda: t.write("OUTP OFF"))
    instrument.release()
    assert bounded(lambda: t.query("b?")) == "echo b?"
    t.close()
