"""`smm-daq safe`'s first stop (`PIGCSStage.stop_alone`) over GPIB or USB (USBTMC): a reply a
killed program left unread waits in the controller's output queue, and only a device clear
(pyvisa's `clear`, VISA's viClear) empties it; a flush of the host's buffers would not. The
transport is the product's `VisaTransport` over a resource with pyvisa's message-resource API
(interface type, `write`, `read` raising `VisaIOError` on a timeout, `clear`, `flush`), in front
of the C-884 emulator; the stage drives to its reference switches, an error left pending."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pyvisa import VisaIOError, constants

from drivers.pi_gcs import PIGCSStage
from drivers.transports import VisaTransport
from simulators.pi_emulator import C884, PIGCSEmulator
from simulators.stage_model import StageModel
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import LinkSettings, load_profile
from smm_daq.instruments.transport import Transport

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
TRAVEL = np.array([[0.0, 25e-3], [0.0, 25e-3], [0.0, 10e-3]])
PENDING = "the controller held error 15 (invalid axis identifier) from before the stop"


class BusController:
    """The controller on a bus with device clear, as pyvisa holds a message resource: its
    replies wait in its output queue, line by line, until read; `clear` (a device clear)
    empties that queue. `events` records what the host did, in order."""

    def __init__(self, emulator: PIGCSEmulator, interface: constants.InterfaceType,
                 stale: list[str]) -> None:
        self.emulator = emulator
        self.interface_type = interface
        self.timeout = 300.0  # ms
        self.read_termination = "\n"
        self.queue: deque[str] = deque(stale)
        self.events: list[str] = []

    def write(self, message: str) -> int:
        self.events.append(message)
        if len(message) == 1 and ord(message) in self.emulator.immediate_bytes:
            reply = self.emulator.handle_byte(ord(message))  # #5, #24: acted on at once
        else:
            reply = self.emulator.handle(message)
        if reply is not None:
            self.queue.extend(reply.split("\n"))
        return len(message) + 1

    def read(self) -> str:
        if not self.queue:
            raise VisaIOError(constants.StatusCode.error_timeout)
        return self.queue.popleft()

    def clear(self) -> None:
        self.events.append("device clear")
        self.queue.clear()

    def flush(self, mask: constants.BufferOperation) -> None:  # the host's buffers: none here
        self.events.append("flush")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("interface", [constants.InterfaceType.gpib, constants.InterfaceType.usb])
@pytest.mark.parametrize("stale", [["0"], ["1=12.5000000 ", "2=0.0000000"]],
                         ids=["err-reply", "pos-reply"])
def test_a_reply_left_in_the_output_queue_is_cleared_before_the_first_command(
        interface: constants.InterfaceType, stale: list[str]) -> None:
    """The device clear comes before anything is sent: a killed program's reply (its ERR?'s
    "0", or a two-line POS? reply) is gone, so the error before the stop and the stop's own
    check are each read as what they are."""
    clock = VirtualClock()
    model = StageModel(clock, travel=TRAVEL, velocity=2e-3, needs_reference=True,
                       start=(1e-3, 1e-3, 1e-3))
    emulator = PIGCSEmulator(model, controller=C884)
    emulator.handle("MOV 9 0")  # an earlier program's error: no axis 9
    model.set_servo("1", True)
    model.reference(("1",))  # the killed program's FRF, still under way
    resource = BusController(emulator, interface, stale)
    settings = load_profile(PROFILE).stage
    settings = replace(settings, link=replace(settings.link, address="GPIB0::4::INSTR"))

    def opened(address: str, link: LinkSettings) -> Transport:
        return VisaTransport(resource, name=address)  # type: ignore[arg-type]

    stopped = PIGCSStage.stop_alone(settings, clock=clock, open_transport=opened)
    assert resource.events[:3] == ["device clear", "ERR?", "STP"], resource.events
    assert not model.moving("1")
    assert stopped.done == "every axis stopped (STP)"
    assert stopped.found.startswith(PENDING), stopped.found
