"""Fly lines on PI controllers that list fewer parameters, served over loopback TCP.

A controller whose `HPA?` leaves out its servo update time (0x0E000200) takes PIPython's preset
for its model, checked against the recorder's SAMPLE_TIME as the line is read back; an unknown
model is refused naming it. On the models whose Data Recorder Max Points (0x16000200) counts
all tables together (E-727 ...), a table holds that divided among them; one that holds more
(a firmware giving one table's) counts on past its share, not taken for a garbled reply. A
table smaller than the one taken where 0x16000200 is not listed fills early: said so."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from drivers.pi_gcs import UNLISTED_RECORDER_POINTS, PIGCSStage
from drivers.pi_presets import recorder_shared, servo_time_preset
from drivers.transports import open_transport
from simulators.pi_emulator import C884, E727, Controller, PIGCSEmulator
from simulators.stage_model import StageModel
from simulators.tcp_server import EmulatorServer
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.clock import VirtualClock
from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import LinkSettings, load_profile
from smm_daq.instruments.rig import open_rig

SERVO_TIME = 0x0E000200
RECORDER_POINTS = 0x16000200
RECORDER_TABLES = 0x16000300
MOTOR = np.array([[0.0, 25e-3], [0.0, 25e-3], [0.0, 10e-3]])  # m: a C-884's stage
PIEZO = np.array([[0.0, 1.8e-3], [0.0, 1.8e-3], [0.0, 0.4e-3]])  # m: an E-727's


class Unlisting(PIGCSEmulator):
    """A controller that lists (`HPA?`) and answers (`SPA?`: error 54, no reply) none of the
    parameters `unlisted`, keeping every line it was sent."""

    def __init__(self, model: StageModel, *, controller: Controller,
                 unlisted: frozenset[int]) -> None:
        self.unlisted = unlisted
        self.heard: list[str] = []
        super().__init__(model, controller=controller)

    def _parameter_table(self):  # type: ignore[no-untyped-def]
        table = super()._parameter_table()
        for pid in self.unlisted:
            table.pop(pid, None)
        return table

    def handle(self, message: str) -> str | None:
        self.heard.append(message.strip())
        return super().handle(message)


@contextmanager
def served(spec: Controller, *unlisted: int) -> Iterator[tuple[PIGCSStage, Unlisting,
                                                                 VirtualClock]]:
    """A stage on `spec`, not listing `unlisted`, reached over loopback TCP."""
    clock = VirtualClock()
    travel = PIEZO if spec.unit == "µm" else MOTOR
    model = StageModel(clock, axis_sign=(1, 1, 1), travel=travel, velocity=2e-3,
                       settle_time=0.01, needs_reference=spec.referencing)
    emulator = Unlisting(model, controller=spec, unlisted=frozenset(unlisted))
    with EmulatorServer({"pi": emulator}) as server:
        resource = server.resources()["pi"]
        transport = open_transport(resource, LinkSettings("pi_gcs", resource, 2.0, 2))
        stage = PIGCSStage(transport, axes=("1", "2", "3"), axis_sign=(1, 1, 1), travel=travel,
                           velocity=2e-3, clock=clock, settle_time=0.01,
                           reference_on_connect=True)
        try:
            yield stage, emulator, clock
        finally:
            stage.close()


def _fly(stage: PIGCSStage, clock: VirtualClock, x0: float, x1: float, duration: float):
    stage.move_to(x0, x0, 0.1e-3)
    start = stage.fly_x(x1, abs(x1 - x0) / duration, duration)
    clock.advance(duration + 1.0)
    return stage.read_recorded(start)


def test_the_presets_are_pipythons_by_model_and_family() -> None:
    assert servo_time_preset("C-884.4DB") == 50e-6
    assert servo_time_preset("c-884.4dc") == 50e-6  # every C-884 PIPython names: 50 µs
    assert servo_time_preset("C-877.2U12") == 100e-6
    assert servo_time_preset("C-867.1U") is None  # its C-867s differ: 50 or 100 µs
    assert servo_time_preset("E-727") is None
    assert recorder_shared("E-753.1CD") and recorder_shared("E-727")
    assert not recorder_shared("C-884.4DC") and not recorder_shared("E-7270")


def test_a_c884_not_listing_its_servo_time_flies_on_the_preset_for_its_model() -> None:
    """A C-884.4DC whose firmware leaves out 0x0E000200 (servo cycle 50 µs, as PIPython's
    presets for the C-884.4D and .4DB): the line is flown and read back whole, the
    parameter never asked. Unfixed, the scan was refused outright."""
    spec = dataclasses.replace(C884, servo_cycle=50e-6)
    with served(spec, SERVO_TIME) as (stage, emulator, clock):
        assert stage.fly_refused() == ""
        motion = _fly(stage, clock, 5e-3, 8e-3, 3.0)
        assert not any("0x0E000200" in m for m in emulator.heard)
        assert emulator.error == 0 and not stage.link.lost
    assert motion.x.size >= 1000
    assert np.diff(motion.t)[0] == pytest.approx(59 * 50e-6)  # RTR 59: 1024 samples, 3 s
    assert motion.x[0] == pytest.approx(5e-3, abs=1e-6)
    assert motion.x[-1] == pytest.approx(8e-3, abs=1e-6)


def test_a_preset_that_is_not_the_controllers_servo_time_is_caught_as_the_line_is_read() -> None:
    """The emulated C-884 runs its servo at 100 µs, not the 50 µs preset: the recording's
    SAMPLE_TIME says so, and the line is refused naming the preset, read once (not retried
    as a garbled reply, the link not taken for lost). Unfixed, refused at `fly_x`."""
    with served(C884, SERVO_TIME) as (stage, emulator, clock):
        with pytest.raises(InstrumentError) as caught:
            _fly(stage, clock, 5e-3, 8e-3, 3.0)
        assert sum(m.startswith("DRR?") for m in emulator.heard) == 1
        assert not stage.link.lost
    message = str(caught.value)
    assert "SAMPLE_TIME is 0.0059 s, not the 0.00295 s RTR 59 makes of the 50 µs servo " \
           "update time PIPython's presets give a C-884.4DC" in message
    assert "servo cycle of 0.0001 s" in message and "0x0E000200" in message


def test_an_unknown_model_not_listing_its_servo_time_is_refused_naming_both() -> None:
    spec = dataclasses.replace(
        C884, idn="(c)2020 Physik Instrumente (PI) GmbH & Co. KG, C-999.9X, 1, 1.0")
    with served(spec, SERVO_TIME) as (stage, emulator, _):
        refused = stage.fly_refused()
        stage.move_to(5e-3, 5e-3, 1e-3)
        heard = len(emulator.heard)
        with pytest.raises(InstrumentError, match=r"controller \(C-999\.9X\) does not list "
                                                  r"its servo update time \(parameter "
                                                  r"0x0E000200 in HPA\?\).* none for the "
                                                  r"C-999\.9X"):
            stage.fly_x(8e-3, 1e-3, 3.0)
        assert emulator.heard[heard:] == []  # nothing sent: the model asked once, before
        assert emulator.error == 0
    assert refused.startswith("the stage controller (C-999.9X) does not list")


@pytest.mark.parametrize("tables_listed", [True, False], ids=["0x16000300", "TNR?"])
def test_an_e727_shares_its_recorder_points_among_its_tables(tables_listed) -> None:
    """16384 points in all among 8 tables: 2048 a table, by 0x16000300 where listed, else by
    `TNR?` (PIPython's order). The line takes 2048 samples and is recorded whole. Unfixed,
    16384 were taken for one table's: 4096 samples asked, the table full at mid-line, and
    its count refused as garbled."""
    spec = dataclasses.replace(E727, record_points=16384)
    unlisted = () if tables_listed else (RECORDER_TABLES,)
    with served(spec, *unlisted) as (stage, emulator, clock):
        assert stage.recorder_points() == 2048
        motion = _fly(stage, clock, 0.2e-3, 1.4e-3, 2.0)
        assert ("TNR?" in emulator.heard) is not tables_listed
        assert emulator.error == 0 and not stage.link.lost
    assert 2000 <= motion.x.size <= 2048
    assert motion.t[-1] - motion.t[0] >= 2.0
    assert motion.x[-1] == pytest.approx(1.4e-3, abs=1e-6)


def test_a_table_smaller_than_the_one_taken_fills_early_and_is_said_so() -> None:
    """A C-884 that does not list 0x16000200 and whose tables hold 512 points: the line takes
    1024, its table is full at mid-line. Refused saying what is likely, with the numbers,
    the count asked once and the link not taken for lost. Unfixed: 'no valid reply' after
    three tries, the link lost."""
    spec = dataclasses.replace(C884, record_points=512)
    with served(spec, RECORDER_POINTS) as (stage, emulator, clock):
        assert stage.recorder_points() == UNLISTED_RECORDER_POINTS
        with pytest.raises(InstrumentError) as caught:
            _fly(stage, clock, 5e-3, 8e-3, 3.0)
        assert emulator.heard.count("DRL? 1") == 1
        assert not stage.link.lost and emulator.error == 0
    message = str(caught.value)
    assert "recorded 512 positions of the fly line, which needs at least 999 (the 3 s " \
           "line, one sample every 0.003 s)" in message
    assert "its record table likely holds only 512 points, fewer than the 1024 taken where " \
           "the controller does not list their number (parameter 0x16000200 in HPA?)" in message
    assert "or a step scan" in message


def test_a_scan_on_a_wrong_preset_fails_at_its_first_line_saying_so(monkeypatch,
                                                                    tmp_path) -> None:
    """The simulated rig's C-884 (servo cycle 100 µs) not listing 0x0E000200: the scan starts
    on the 50 µs preset, and its first line read back fails the scan naming the preset (not
    an instrument lost), the stage stopped on target. Unfixed, refused as it started."""
    full = PIGCSEmulator._parameter_table

    def without(self):  # type: ignore[no-untyped-def]
        table = full(self)
        table.pop(SERVO_TIME)
        return table

    monkeypatch.setattr(PIGCSEmulator, "_parameter_table", without)
    plan = ScanPlan.from_center("fly", (12.5e-3, 12.5e-3), (200e-6, 20e-6), 10e-6,
                                fly=FlySettings(pixel_time=0.05))
    with open_rig(load_profile("configs/simulator.toml")) as rig:
        seq = Sequencer(rig, tmp_path / "f.h5", plan)
        assert seq.run() == "failed"
        assert rig.stage.on_target()
    assert seq.message.startswith("InstrumentError: ")
    assert "the recording's SAMPLE_TIME is 0.0028 s, not the 0.0014 s RTR 28" in seq.message
    assert "PIPython's presets give a C-884.4DC" in seq.message


def test_a_wave_flown_line_is_not_timed_by_a_preset() -> None:
    """A controller flying its line as a wave (WAV, trigger output) times the motion itself by
    the servo cycle: on a preset (a C-867.262's 50 µs, the controller's own 20 µs) the wave
    would run 2.5 times the speed checked, caught only once the line is read back. Refused
    before anything is sent, naming why. Unfixed, the wave was started on the preset."""
    spec = dataclasses.replace(
        E727, idn="(c)2019 Physik Instrumente (PI) GmbH & Co. KG, C-867.262, 119000000, 2.1.0")
    with served(spec, SERVO_TIME) as (stage, emulator, _):
        refused = stage.fly_refused()
        stage.move_to(0.2e-3, 0.2e-3, 0.1e-3)
        before, heard = stage.position(), len(emulator.heard)
        with pytest.raises(InstrumentError, match=r"controller \(C-867\.262\) does not list "
                                                  r"its servo update time .* wave"):
            stage.fly_x(1.4e-3, 1e-3, 1.2)
        assert emulator.heard[heard:] == []
        np.testing.assert_array_equal(stage.position(), before)
        assert emulator.error == 0 and not stage.link.lost
    assert "50 µs" in refused and "or a step scan" in refused


def test_a_table_holding_the_whole_of_0x16000200_counts_past_its_divided_share() -> None:
    """An E-727 whose firmware gives 0x16000200 as one table's points (16384 each, not listed
    0x16000300): divided by `TNR?`, 2048 are taken, and the recorder, going on after the
    line, counts past them up to its own 16384. The count is no garbled reply: the line is
    read back (its points only), the count asked once and the link kept. Unfixed, 'expected
    .. 2048', asked three times and the link taken for lost."""
    spec = dataclasses.replace(E727, record_points=16384, points_shared=False)
    with served(spec) as (stage, emulator, clock):
        assert stage.recorder_points() == 2048
        motion = _fly(stage, clock, 0.2e-3, 1.4e-3, 2.0)
        assert "TNR?" in emulator.heard and emulator.heard.count("DRL? 1") == 1
        assert emulator.recorder.recorded(1) > 2048
        assert [m for m in emulator.heard if m.startswith("DRR?")] == ["DRR? 1 2048 1"]
        assert emulator.error == 0 and not stage.link.lost
    assert 2000 <= motion.x.size <= 2048
    assert motion.x[-1] == pytest.approx(1.4e-3, abs=1e-6)
