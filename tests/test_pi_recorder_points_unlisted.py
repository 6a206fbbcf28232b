"""A PI controller that does not list Data Recorder Max Points (SPA 0x16000200): PIPython keeps
presets (8192 points a table for a C-884) for controllers that do not answer it. The fly line
takes the smallest table of any GCS controller instead of asking, and flies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_pi_stage import FINE, TRAVEL

from drivers.pi_gcs import UNLISTED_RECORDER_POINTS, PIGCSStage
from simulators import pi_emulator
from simulators.emulator import EmulatorTransport
from simulators.pi_emulator import C884, E727, PIGCSEmulator
from simulators.stage_model import StageModel
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError, InstrumentError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig


class SentLog(EmulatorTransport):
    """The emulator's link, keeping what the driver sent."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.sent: list[str] = []

    def write(self, message: str) -> None:
        self.sent.append(message)
        super().write(message)

    def query(self, message: str) -> str:
        self.sent.append(message)
        return super().query(message)


def _unlisting(monkeypatch, parameter: int) -> None:
    """Emulated PI controllers that list (`HPA?`) and answer no `parameter`."""
    full = PIGCSEmulator._parameter_table

    def without(self):
        table = full(self)
        table.pop(parameter)
        return table

    monkeypatch.setattr(PIGCSEmulator, "_parameter_table", without)


def _unlisted_c884(monkeypatch, table_points: int):
    """A C-884 whose tables hold `table_points` and which lists (`HPA?`) and answers no
    parameter 0x16000200 (error 54, no reply, as for any parameter it lacks)."""
    _unlisting(monkeypatch, pi_emulator.RECORDER_POINTS)
    clock = VirtualClock()
    model = StageModel(clock, axis_sign=(1, 1, 1), travel=TRAVEL, velocity=2e-3,
                       settle_time=0.01, needs_reference=True)
    spec = dataclasses.replace(C884, record_points=table_points)
    emulator = PIGCSEmulator(model, controller=spec)
    transport = SentLog(emulator, clock=clock)
    stage = PIGCSStage(transport, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=TRAVEL,
                       velocity=2e-3, clock=clock, settle_time=0.01, reference_on_connect=True)
    return stage, transport, emulator, clock


@pytest.mark.parametrize("table_points", [1024, 8192])
def test_a_controller_not_listing_the_recorder_points_flies_a_line_on_the_smallest_table(
        monkeypatch, table_points):
    """Asked, the parameter got no reply: the link was taken for lost after three tries, and
    the controller's error 54 was read after the next command as that command's. Not asked,
    the line records the smallest table's points, and a table that holds more, counting on
    past them after the line, is read all the same."""
    stage, transport, emulator, clock = _unlisted_c884(monkeypatch, table_points)
    assert stage.recorder_points() == UNLISTED_RECORDER_POINTS
    stage.move_to(5e-3, 5e-3, 1e-3)
    start = stage.fly_x(8e-3, 1e-3, 3.0)
    clock.advance(5.0)
    motion = stage.read_recorded(start)
    assert not any("0x16000200" in m for m in transport.sent)
    assert emulator.error == 0 and not stage.link.lost
    assert 0.9 * UNLISTED_RECORDER_POINTS <= motion.x.size <= UNLISTED_RECORDER_POINTS
    assert motion.x[0] == pytest.approx(5e-3, abs=1e-6)
    assert motion.x[-1] == pytest.approx(8e-3, abs=1e-6)
    assert np.all(np.diff(motion.x) >= -1e-9)


def test_a_controller_not_listing_its_servo_update_time_is_not_flown_and_says_why(
        monkeypatch):
    """A fly line's samples are timed by the servo cycle (SPA 0x0E000200): where the
    controller does not list it and PIPython keeps no preset for its model (none for an
    E-727, which lists it), the line is refused before any command but queries (`HPA?`,
    `*IDN?`), saying so (asked, the link was taken for lost after three tries, error 54 left
    pending for the next command), and the controller is left as it was, no error pending."""
    _unlisting(monkeypatch, 0x0E000200)
    clock = VirtualClock()
    model = StageModel(clock, axis_sign=(1, 1, 1), travel=FINE, velocity=2e-3,
                       settle_time=0.01)
    emulator = PIGCSEmulator(model, controller=E727)
    transport = SentLog(emulator, clock=clock)
    stage = PIGCSStage(transport, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=FINE,
                       velocity=2e-3, clock=clock, settle_time=0.01)
    stage.move_to(0.5e-3, 0.5e-3, 0.1e-3)
    sent = len(transport.sent)
    with pytest.raises(InstrumentError, match=r"controller \(E-727\) does not list its servo "
                                              r"update time \(parameter 0x0E000200 in HPA\?\)"):
        stage.fly_x(1.5e-3, 1e-3, 1.0)
    assert set(transport.sent[sent:]) == {"HPA?", "*IDN?"}  # what it lists, and its model
    assert emulator.error == 0 and not stage.link.lost


def test_a_scan_on_a_controller_not_listing_its_servo_update_time_is_refused_as_it_starts(
        monkeypatch, tmp_path):
    """With the plan's other checks of the connected controller, before the entry is written,
    the field set or the stage moved (unfixed: refused at the first line, the scan "failed"
    with its entry written; a recipe's earlier steps run first)."""
    _unlisting(monkeypatch, 0x0E000200)
    plan = ScanPlan.from_center("fly", (900e-6, 900e-6), (60e-6, 4e-6), 2e-6,
                                fly=FlySettings(pixel_time=0.05))
    with open_rig(load_profile("configs/simulator-e727.toml")) as rig:
        before = rig.stage.position()
        with pytest.raises(InputError, match=r"^fly scan: the stage controller \(E-727\) does "
                                             r"not list its servo update time \(parameter "
                                             r"0x0E000200"):
            Sequencer(rig, tmp_path / "f.h5", plan).run()
        np.testing.assert_array_equal(rig.stage.position(), before)
    assert not (tmp_path / "f.h5").exists()
