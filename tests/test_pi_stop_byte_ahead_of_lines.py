"""PI's manuals: single-character commands (#24, #5, #7) are processed as they arrive, ahead
of a line command the controller has not parsed yet. So `ERR?` written just before a #24
may read the stop's own error 10, the error pending before it replaced unread. The emulated
controller does so, in process (on the virtual clock) and served over loopback TCP."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from simulators.emulator import EmulatorTransport
from simulators.pi_emulator import PIGCSEmulator
from simulators.stage_model import StageModel
from simulators.tcp_server import EmulatorServer
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentLost

TRAVEL = np.array([[0.0, 100e-6], [0.0, 100e-6], [0.0, 10e-6]])


def _emulator(clock: VirtualClock) -> PIGCSEmulator:
    return PIGCSEmulator(StageModel(clock, travel=TRAVEL, velocity=1e-3))


def test_a_stop_byte_right_behind_an_error_query_is_acted_on_first() -> None:
    """A move refused (no axis 9: error 15), then `ERR?` and #24 written with no time
    between: the stop comes first, and `ERR?` reads its 10. Unfixed, `ERR?` read 15. Where
    the controller got to the line first (time passed before the #24), it reads 15, and the
    next `ERR?` the stop's 10."""
    clock = VirtualClock()
    transport = EmulatorTransport(_emulator(clock), clock=clock)
    transport.write("MOV 9 0")
    transport.write("ERR?")
    transport.write("\x18")
    assert transport.read() == "10"
    transport.write("MOV 9 0")
    transport.write("ERR?")
    clock.advance(1e-3)
    transport.write("\x18")
    assert transport.read() == "15"
    assert transport.query("ERR?") == "10"


def test_served_over_tcp_a_stop_byte_that_came_with_an_error_query_goes_first() -> None:
    """Over loopback TCP: `ERR?` and #24 in one segment: the stop is acted on first, and
    `ERR?` reads its 10, not the 15 a refused move left. Unfixed, it read 15."""
    emulator = _emulator(VirtualClock())
    with EmulatorServer({"pi": emulator}) as server:
        port = server.ports()["pi"]
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as connection:
            reader = connection.makefile("rb")
            connection.sendall(b"MOV 9 0\n*IDN?\n")
            assert b"E-727" in reader.readline()  # the move refused and parsed by now
            connection.sendall(b"ERR?\n\x18")
            assert reader.readline() == b"10\n"


def test_an_error_query_written_before_its_link_closed_still_clears_the_error() -> None:
    """`ERR?` written (it reached the controller, which clears the error as it answers), then
    the link closed or lost before its reply was read: a new link finds no error, as on the
    controller. Unfixed, the query held unparsed was never parsed, and the refused move's 15
    was still there for the next link to find (an error the real controller had cleared)."""
    clock = VirtualClock()
    emulator = _emulator(clock)
    closed = EmulatorTransport(emulator, clock=clock)
    closed.write("MOV 9 0")
    closed.write("ERR?")
    closed.close()
    assert EmulatorTransport(emulator, clock=clock).query("ERR?") == "0"
    lost = EmulatorTransport(emulator, clock=clock)
    lost.write("MOV 9 0")
    lost.write("ERR?")
    lost.faults.disconnected = True
    with pytest.raises(InstrumentLost):
        lost.read()
    assert EmulatorTransport(emulator, clock=clock).query("ERR?") == "0"
