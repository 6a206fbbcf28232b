"""The LAN instrument doubles of `lan_instruments` take messages as a gateway's one GPIB bus
does: a VXI-11 write is acknowledged once its command has reached the instrument, and a
command a connection received before the client gave that connection up reaches the
instrument before any message of the next connection. Their threads stand for that bus; on
a loaded machine one may not run for longer than a link's timeout.
"""

from __future__ import annotations

import threading

import pytest
from lan_instruments import HANG_GUARD_S, Vxi11Instrument, bounded

from drivers.transports import open_transport
from smm_daq.errors import InstrumentTimeout
from smm_daq.instruments.profile import LinkSettings

TIMEOUT_S = 0.3


def test_a_command_of_a_connection_given_up_reaches_the_instrument_first() -> None:
    """The gateway's thread is held before it passes `START` on (a loaded machine): the
    write is not acknowledged, so it times out and the client goes on on a new connection;
    `START` reaches the instrument as that connection opens, before its `COUNT?`. Unfixed,
    the write was acknowledged before the command was passed on, and `COUNT?` on the new
    connection reached the instrument before `START` (an SR860's capture started after the
    count that was to time it, and its buffer read empty)."""
    taken: list[str] = []
    resumed = threading.Event()

    def responder(message: str) -> str | None:
        if message == "START":
            resumed.wait(HANG_GUARD_S)
        taken.append(message)
        return "0" if message.endswith("?") else None

    gateway = Vxi11Instrument(responder).start()
    accepted: list[object] = []

    def verify_request(request: object, client_address: object) -> bool:
        accepted.append(request)
        if len(accepted) > 1:  # the client's next connection: the held thread runs again
            resumed.set()
        return True

    gateway._server.verify_request = verify_request  # type: ignore[method-assign]
    t = open_transport(gateway.resource, LinkSettings("x", gateway.resource, TIMEOUT_S, 2),
                       visa_library="@py")
    try:
        with pytest.raises(InstrumentTimeout, match="could not send"):
            bounded(lambda: t.write("START"))
        assert bounded(lambda: t.query("COUNT?")) == "0"
        assert taken == ["START", "COUNT?"]
    finally:
        resumed.set()
        t.close()
        gateway.close()
