"""The PI stage's stop asks afterwards whether anything still moves (#5, WGO?) and stops
again: a wave start sent on a connection the link has since replaced (after a garbled reply)
may be acted on after the stop, as the controller reads each interface on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from served_rig import simulators_made

from drivers.pi_gcs import MAX_STOPS, PIGCSStage
from simulators.emulator import Emulator, EmulatorTransport
from simulators.pi_emulator import E727, PIGCSEmulator
from simulators.stage_model import StageModel
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import Profile, load_profile
from smm_daq.instruments.rig import open_rig

REPO = Path(__file__).resolve().parents[1]
FINE = np.array([[0.0, 1.8e-3], [0.0, 1.8e-3], [0.0, 0.4e-3]])
WAVE = ("WAV 1 X LIN 1000 500 100 1000 0 0", "WSL 1 1", "WGC 1 0", "WTR 1 50 0")


class LateWaveStart(Emulator):
    """An E-727 that acts on `WGO 1 1` right after each of the first `late` stops it gets
    (#24 or STP): a wave start that reached it on another connection behind the stop."""

    name = "pi_gcs"
    immediate_bytes = PIGCSEmulator.immediate_bytes

    def __init__(self, inner: Emulator, late: int) -> None:
        self.inner = inner
        self.late = late
        self.stops = 0

    def handle(self, message: str) -> str | None:
        reply = self.inner.handle(message)
        if message.split()[:1] == ["STP"]:
            self._after_stop()
        return reply

    def handle_byte(self, code: int) -> str | None:
        reply = self.inner.handle_byte(code)
        if code == 24:
            self._after_stop()
        return reply

    def _after_stop(self) -> None:
        self.stops += 1
        if self.stops <= self.late:
            self.inner.handle("WGO 1 1")


def _stage(late: int) -> tuple[PIGCSStage, LateWaveStart, StageModel, VirtualClock]:
    """An emulated E-727 with a line wave defined on generator 1, started late `late` times."""
    clock = VirtualClock()
    model = StageModel(clock, axis_sign=(1, 1, 1), travel=FINE, velocity=2e-3, settle_time=0.01,
                       needs_reference=False)
    emulator = LateWaveStart(PIGCSEmulator(model, controller=E727), late)
    for command in WAVE:
        emulator.handle(command)
    stage = PIGCSStage(EmulatorTransport(emulator, clock=clock), axes=("1", "2", "3"),
                       axis_sign=(1, 1, 1), travel=FINE, velocity=2e-3, clock=clock,
                       settle_time=0.01)
    return stage, emulator, model, clock


def test_a_wave_started_after_the_stop_is_caught_and_stopped():
    stage, emulator, model, clock = _stage(late=1)
    stage.stop()
    assert emulator.stops == 2  # the late wave start found running, and stopped
    assert emulator.inner.handle_byte(5) == "0"
    assert emulator.inner.handle("WGO? 1") == "1=0"
    x = model.position("1")
    clock.advance(2.0)
    assert model.position("1") == x
    stage.stop()  # nothing moves after this one: stopped once
    assert emulator.stops == 3


def test_a_stage_still_moving_after_every_stop_is_reported_so():
    stage, emulator, _, _ = _stage(late=MAX_STOPS)
    with pytest.raises(InstrumentError,
                       match=rf"{MAX_STOPS} stops sent \(#24\), and after the last #5 "
                             r"answered 1 \(axes \['1'\] moving\); WGO\? answered wave "
                             r"generators \[1\] running"):
        stage.stop()
    assert emulator.stops == MAX_STOPS


def test_making_the_rig_safe_names_a_stage_still_moving_after_its_stops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    wrapped: list[LateWaveStart] = []

    def late_waves(backend: Any, profile: Profile) -> None:
        address = profile.stage.link.address
        stage = LateWaveStart(backend.endpoint(address), late=MAX_STOPS)
        for command in WAVE:
            stage.handle(command)
        wrapped.append(stage)
        endpoint = backend.endpoint
        backend.endpoint = lambda a: stage if a == address else endpoint(a)

    simulators_made(monkeypatch, late_waves)
    rig = open_rig(load_profile(REPO / "configs" / "simulator-e727.toml"))
    try:
        problems = rig.make_safe()
    finally:
        rig.close()
    assert wrapped[0].stops == MAX_STOPS
    assert len(problems) == 1
    assert problems[0].startswith("stage not stopped: PI stage at "), problems
    # the motion named once: "not stopped", then what still moved after the stops
    assert f": {MAX_STOPS} stops sent (#24), and after the last #5 answered 1" in problems[0]
    assert "still moving" not in problems[0], problems
