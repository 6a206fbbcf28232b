"""A plug-in coil driver that ignores its ramp's stop: a stop (an abort, Stop, Ctrl-C) still
ends the ramp within a piece of it, the field never ramped on to the one asked for, the
driver said loudly, and its field read back once the rig is made safe; the time its settling
after each piece (and after its ramp down) takes is in the estimates, which a plug-in that
settles so on the simulator keeps to."""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from acq_fakes import FakeCoils, fake_rig

from drivers.kepco_bop import KepcoBOPCoils
from smm_daq import interrupts
from smm_daq.acquisition import field_aside
from smm_daq.acquisition.plan import ScanPlan, check_field
from smm_daq.acquisition.recipe import check_recipe, parse_recipe, run_recipe
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.acquisition.session import Session
from smm_daq.cli.main import main
from smm_daq.errors import InstrumentError, RampStopped
from smm_daq.instruments import ramp_pieces
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.coil_calibration import calibrate_coils
from smm_daq.instruments.interfaces import FieldSource
from smm_daq.instruments.ramp_stop import RampStop, ramp_field
from smm_daq.instruments.rig import DRIVER_GROUP, _make_safe, zero_within_bound
from smm_daq.plugins import registered

TARGET = np.array([0.0, 90e-6, 0.0])  # 1.8 s of ramping on the simulator's profile: 2 pieces
STEPS = 10  # the driver's own steps per set_field


class IgnoringCoils(FakeCoils):
    """A plug-in's driver: its ramp asks its stop before every step, and goes on."""

    honours_stop = False

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.on_step: Callable[[], None] = lambda: None
        self.holds: np.ndarray | None = None  # a field it keeps whatever it is set to

    def set_field(self, b: np.ndarray, *, ramp: bool = True,
                  stop: Callable[[], bool] | None = None) -> None:
        start = self.setpoint.copy()
        for k in range(1, STEPS + 1):
            if stop is not None:
                stop()  # and ignored
            self.setpoint = start + (np.asarray(b, dtype=float) - start) * k / STEPS
            self.history.append(self.setpoint.copy())
            self.on_step()

    def field(self) -> np.ndarray:
        return self.setpoint.copy() if self.holds is None else self.holds.copy()


def _rig_with_ignoring_coils():
    rig = fake_rig()
    rig.coils = IgnoringCoils(rig.profile)
    rig.fluxgate.coils = rig.coils
    return rig


def _largest(coils: IgnoringCoils) -> float:
    return max(float(np.linalg.norm(b)) for b in coils.history)


def test_an_abort_during_a_plug_in_s_ramp_it_ignores_ends_it_within_a_piece(tmp_path):
    """Unfixed, the driver was handed the whole ramp: it ramped on to the 90 µT asked for
    before the scan could make the rig safe."""
    rig = _rig_with_ignoring_coils()
    plan = ScanPlan.from_center("s", (12.5e-3, 12.5e-3), (40e-6, 40e-6), 20e-6,
                                field=tuple(TARGET))
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    rig.coils.on_step = seq.abort
    assert seq.run() == "aborted"
    assert _largest(rig.coils) <= float(np.linalg.norm(TARGET)) / 2 + 1e-12
    np.testing.assert_allclose(rig.coils.setpoint, 0.0)
    assert "IGNORED THE STOP" in seq.message
    assert "test_plugin_coils_ignoring_stop.IgnoringCoils" in seq.message


def test_a_stop_during_a_plug_in_s_field_ramp_it_ignores_ends_it_within_a_piece():
    """`ramp_field` (the window's Set field, a recipe's set_field step, `Session.set_field`).
    Unfixed, the driver ramped on to the field asked for, then the rig was made safe."""
    rig = _rig_with_ignoring_coils()
    stop = RampStop(rig.clock)
    rig.coils.on_step = stop.set
    with pytest.raises(RampStopped, match="IGNORED THE STOP") as raised:
        ramp_field(rig, TARGET, stop)  # type: ignore[arg-type]
    assert raised.value.safe_problems == []
    assert _largest(rig.coils) <= float(np.linalg.norm(TARGET)) / 2 + 1e-12
    np.testing.assert_allclose(rig.coils.setpoint, 0.0)


def test_a_plug_in_s_field_not_at_its_safe_state_once_made_safe_is_said_loudly():
    """Unfixed, a driver whose field ramped on past its ramp-down (a stop it ignored, a
    supply's own ramp) was taken for safe: its field was never read back."""
    rig = _rig_with_ignoring_coils()
    assert _make_safe(rig.profile, rig.stage, rig.coils) == []  # at zero: nothing said
    rig.coils.holds = TARGET
    problems = _make_safe(rig.profile, rig.stage, rig.coils)
    assert len(problems) == 1 and problems[0].startswith("WARNING: coils: the field reads "
                                                         "(0.000, 90.000, 0.000) µT")
    assert "may be ramping on, its stop ignored" in problems[0]


def test_a_plug_in_s_read_back_off_by_its_accuracy_is_not_said_unsafe():
    """A supply's current read-back is off by a few mA at zero (the shipped driver takes 5
    mA): 2 mA a coil at 50 µT/A is 173 nT, over ten of the fluxgate's field tolerances but
    well within one percent of the coils' range. Said NOT safe before, on every safe rig."""
    rig = _rig_with_ignoring_coils()
    profile = replace(rig.profile, coils=replace(rig.profile.coils, field_tolerance=10e-9))
    rig.coils.holds = np.full(3, 2e-3 * 50e-6)
    limit = 10 * profile.coils.field_tolerance
    assert limit < float(np.linalg.norm(rig.coils.holds)) < 0.01 * profile.coils.max_field
    assert _make_safe(profile, rig.stage, rig.coils) == []


def test_a_driver_that_honours_its_stop_is_handed_the_ramp_whole():
    rig = fake_rig()
    stop = RampStop(rig.clock)
    ramp_pieces.set_field(rig.coils, rig.profile, TARGET, stop.is_set)
    assert len(rig.coils.history) == 1


def test_a_field_at_the_limit_as_the_plan_checks_it_is_ramped_on_a_plug_in():
    """field_uT = [28, 96, 0]: |B| is max_field's 100 µT, its norm in floats a little above
    it; the plan's check (`check_field`) and the shipped driver take it, within 1e-9 of the
    limit. Unfixed, the pieces' own check refused it for a plug-in ("beyond the coils' limit
    of 100 µT"), a scan failing at its start on a field it had been told was fine."""
    rig = _rig_with_ignoring_coils()
    b = np.array([28.0, 96.0, 0.0]) * 1e-6
    assert np.linalg.norm(b) > rig.profile.coils.max_field  # as floats round it
    check_field(b, rig.profile, label="field_uT")
    ramp_pieces.set_field(rig.coils, rig.profile, b, lambda: False)
    np.testing.assert_array_equal(rig.coils.setpoint, b)


def test_ctrl_c_during_a_plug_in_s_session_ramp_it_ignores_ends_it_within_a_piece(
        tmp_path, monkeypatch):
    """`Session.set_field` (a script's, `smm-daq run`'s set_field step): Ctrl-C as the ramp's
    first step is under way in its thread sets the ramp's stop; the driver goes on with its
    piece, and the ramp ends there. Without the pieces, the driver ramped on to 90 µT."""
    stopped = threading.Event()  # the ramp's stop set by the Ctrl-C

    class SeenStop(RampStop):
        def set(self) -> None:
            super().set()
            stopped.set()

    rig = _rig_with_ignoring_coils()
    session = Session(tmp_path / "s.h5", rig)

    def ctrl_c_once() -> None:
        if len(rig.coils.history) == 1:  # the first step of the ramp's first piece
            _thread.interrupt_main()
            assert stopped.wait(60.0)  # real seconds at most: the main thread sets it at once

    rig.coils.on_step = ctrl_c_once
    monkeypatch.setattr(field_aside, "RampStop", SeenStop)
    with pytest.raises(KeyboardInterrupt) as raised:
        session.set_field(tuple(TARGET / 1e-6))
    assert "IGNORED THE STOP" in "".join(raised.value.__notes__)
    assert _largest(rig.coils) <= float(np.linalg.norm(TARGET)) / 2 + 1e-12
    np.testing.assert_allclose(rig.coils.setpoint, 0.0)
    assert session.close() == []


def test_a_stop_during_a_calibration_ramp_a_plug_in_ignores_ends_it_within_a_piece():
    """`smm-daq calibrate-coils` (its stop: Ctrl-C). The first coil's step, 50 µT, is 4 s of
    ramping at 0.25 A/s: 4 pieces. Unfixed, the driver was handed each step whole, no stop
    asked: it ramped on to the 50 µT before the calibration's failure made the coils safe."""
    rig = _rig_with_ignoring_coils()
    slow = replace(rig.profile.coils, max_ramp_rate=0.25)
    profile = replace(rig.profile, coils=slow)
    stop = RampStop(rig.clock)
    rig.coils.on_step = lambda: stop.set() if np.any(rig.coils.setpoint) else None
    with pytest.raises(RampStopped, match="IGNORED THE STOP"):
        calibrate_coils(rig.coils, rig.fluxgate, profile, rig.clock, stop=stop.is_set)
    assert _largest(rig.coils) == pytest.approx(50e-6 / 4)  # the first piece's end
    np.testing.assert_allclose(rig.coils.setpoint, 0.0)  # made safe from there


def test_ctrl_c_a_plug_in_swallows_in_calibrate_coils_exits_as_interrupted(monkeypatch,
                                                                            tmp_path, capsys):
    """Ctrl-C raises in the plug-in's ramp, which swallows it and ramps on: the ramp is
    stopped at its piece's end, the coils made safe, and the command ends as any Ctrl-C
    does (130, "interrupted"). Unfixed, it ended as a failure (1, "failed: ... IGNORED THE
    STOP"), as if the calibration had gone wrong rather than been interrupted."""
    rig = _rig_with_ignoring_coils()
    rig.profile = replace(rig.profile, coils=replace(rig.profile.coils, max_ramp_rate=0.25))

    def swallowed_ctrl_c() -> None:
        if np.any(rig.coils.setpoint) and not interrupts.interrupted():
            with contextlib.suppress(KeyboardInterrupt):  # swallowed by the plug-in
                interrupts._handle(signal.SIGINT, None)  # what the signal's arrival runs

    def opened(*_args: object, **_kw: object):
        interrupts.set_recovery("")  # the connect begun, as `open_rig` says it
        return rig

    rig.coils.on_step = swallowed_ctrl_c
    monkeypatch.setattr(rig_module, "open_rig", opened)
    argv = ["calibrate-coils", "--profile", str(rig.profile.path), "--out",
            str(tmp_path / "c.toml")]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "smm-daq: interrupted (SIGINT)\n" in err and "IGNORED THE STOP" in err
    assert _largest(rig.coils) == pytest.approx(50e-6 / 4)  # the first piece's end
    np.testing.assert_allclose(rig.coils.setpoint, 0.0)
    assert rig.safe_calls == 1 and not (tmp_path / "c.toml").exists()


def test_ctrl_c_a_driver_swallows_after_calibrate_coils_last_ramp_stores_nothing(
        monkeypatch, tmp_path, capsys):
    """Swallowed in the last fluxgate reading, after the last ramp whose stop would have
    ended it: unfixed, the calibration was stored and the command ended 0, Ctrl-C lost."""
    rig = _rig_with_ignoring_coils()
    reads = rig.fluxgate.read_field
    count = [0, -1]  # readings so far; the one that swallows a Ctrl-C (-1: none)

    def read_field() -> np.ndarray:
        count[0] += 1
        if count[0] == count[1]:
            with contextlib.suppress(KeyboardInterrupt):
                interrupts._handle(signal.SIGINT, None)
        return reads()

    def opened(*_args: object, **_kw: object):
        interrupts.set_recovery("")
        return rig

    monkeypatch.setattr(rig.fluxgate, "read_field", read_field)
    monkeypatch.setattr(rig_module, "open_rig", opened)
    out = tmp_path / "c.toml"
    argv = ["calibrate-coils", "--profile", str(rig.profile.path), "--out", str(out)]
    assert main(argv) == 0  # counting the readings
    out.unlink()
    count[:] = [0, count[0]]
    assert main(argv) == 130
    assert "smm-daq: interrupted (SIGINT)\n" in capsys.readouterr().err
    assert not out.exists()
    np.testing.assert_allclose(rig.coils.setpoint, 0.0)


def test_a_plug_in_s_field_not_at_its_safe_state_once_zeroed_is_raised():
    """`Rig.zero_coils` (the window's Zero, a recipe's zero_field step, `Session.zero_field`)
    and the calibration's end ramp down whole, no stop to ignore, and read a plug-in's field
    back as making the rig safe does. Unfixed, a field ramping on past the ramp-down was
    taken for zeroed."""
    rig = _rig_with_ignoring_coils()
    zero_within_bound(rig.profile, rig.clock, rig.coils)  # at zero: nothing raised
    rig.coils.holds = TARGET
    with pytest.raises(InstrumentError, match=r"WARNING: coils: the field reads \(0.000, "
                                              r"90.000, 0.000\) µT .* may be ramping on"):
        zero_within_bound(rig.profile, rig.clock, rig.coils)


def _plug_in_as_the_profile_s_driver(monkeypatch: pytest.MonkeyPatch,
                                     cls: str = "IgnoringCoils") -> None:
    """The profile's coil driver (`kepco_bop`) is the plug-in's class `cls` of this module
    (`IgnoringCoils`: ignoring its stop)."""
    drivers = dict(registered(DRIVER_GROUP))
    drivers["kepco_bop"] = EntryPoint(name="kepco_bop", group=DRIVER_GROUP,
                                      value=f"test_plugin_coils_ignoring_stop:{cls}")
    monkeypatch.setattr(rig_module, "registered",
                        lambda group: drivers if group == DRIVER_GROUP else registered(group))


def test_a_plug_in_s_settling_after_each_piece_is_in_the_scan_s_estimate(monkeypatch):
    """90 µT is 1.8 s of ramping up: two pieces, each settled for the time a driver that does
    not say is taken to settle, and the ramp down, handed to it whole, settled once.
    Unfixed, the estimate was the shipped driver's; then the ramp down's settling was left
    out."""
    plan = ScanPlan.from_center("s", (12.5e-3, 12.5e-3), (40e-6, 40e-6), 20e-6,
                                field=tuple(TARGET))
    rig = fake_rig()
    shipped = plan.estimate_duration(rig.profile)
    _plug_in_as_the_profile_s_driver(monkeypatch)
    assert plan.estimate_duration(rig.profile) == pytest.approx(
        shipped + 3 * FieldSource.settle_s)


def test_a_plug_in_s_settling_after_each_piece_is_in_a_recipe_s_estimate(monkeypatch,
                                                                         tmp_path):
    """A set_field step's ramp (Session.set_field: in pieces) settles after each piece; a
    zero_field step's ramp-down is the driver's own, whole, settled once. Unfixed, neither
    settled; then the ramp-down did not."""
    text = ('[[step]]\nkind = "set_field"\nfield_uT = [0.0, 90.0, 0.0]\n\n'
            '[[step]]\nkind = "zero_field"\n')
    profile = fake_rig().profile

    def duration() -> float:
        return check_recipe(parse_recipe(text, "r.toml"), profile, tmp_path / "s.h5",
                            can_prompt=False).duration_s

    shipped = duration()
    assert shipped == pytest.approx(2 * 1.8)
    _plug_in_as_the_profile_s_driver(monkeypatch)
    assert duration() == pytest.approx(shipped + 3 * FieldSource.settle_s)


class SettlingCoils(KepcoBOPCoils):
    """A plug-in's driver over the shipped one on the simulator: it does not say it honours
    its stop (so it is handed its ramps in pieces), and waits the settling a driver that
    does not say is taken to wait after each ramp, its `zero` a `set_field` to zero field."""

    honours_stop = False
    settle_s = FieldSource.settle_s

    def set_field(self, b: np.ndarray, *, ramp: bool = True,
                  stop: Callable[[], bool] | None = None) -> None:
        super().set_field(b, ramp=ramp, stop=stop)
        self.clock.sleep(self.settle_s)

    def zero(self) -> None:
        self.set_field(np.zeros(3))


def _taken(tmp_path: Path, run: Callable[[Session], float]) -> tuple[float, float]:
    """`run`'s estimate (what it returns) and the rig-clock time it took on the simulator."""
    session = Session.open(str(tmp_path / "s.h5"), None, time_scale=0)
    try:
        start = session.rig.clock.now()
        estimate = run(session)
        return estimate, session.rig.clock.now() - start
    finally:
        session.close()


def test_a_plug_in_s_scan_estimate_is_the_time_its_scan_takes(monkeypatch, tmp_path):
    """A scan in 90 µT with a plug-in coil driver that settles after each ramp: two pieces
    up, each settled, and the ramp down, settled once. Unfixed, the estimate was 2 s short
    (the ramp down's settling): 11.1 s for 13.2 s taken."""
    _plug_in_as_the_profile_s_driver(monkeypatch, "SettlingCoils")

    def scan(session: Session) -> float:
        session.scan("s", center_um=(12500, 12500), size_um=(20, 20), step_um=20,
                     field_uT=(0, 90, 0))
        return session.last_sequencer.plan.estimate_duration(session.profile)

    estimate, taken = _taken(tmp_path, scan)
    assert abs(estimate - taken) <= 0.02 * taken, (estimate, taken)


def test_a_recipe_s_scan_is_estimated_from_the_field_its_steps_left(monkeypatch, tmp_path):
    """A set_field step leaves 90 µT on: the scan after it ramps nothing up (one piece,
    settled) and ends safe, so the zero_field step after it ramps nothing down (settled
    once). Unfixed, the scan ramped up from the safe state and the zero_field step down
    from 90 µT in the estimate: 18.7 s for 17.2 s taken (+8 %)."""
    _plug_in_as_the_profile_s_driver(monkeypatch, "SettlingCoils")
    text = ('[[step]]\nkind = "set_field"\nfield_uT = [0.0, 90.0, 0.0]\n\n'
            '[[step]]\nkind = "scan"\nname = "a"\ncenter_um = [12500, 12500]\n'
            'size_um = [20, 20]\nstep_um = 20\n\n[[step]]\nkind = "zero_field"\n')

    def run(session: Session) -> float:
        recipe = parse_recipe(text, "r.toml")
        estimate = check_recipe(recipe, session.profile, session.path,
                                can_prompt=False).duration_s
        run_recipe(recipe, session, yes=True)
        return estimate

    estimate, taken = _taken(tmp_path, run)
    assert abs(estimate - taken) <= 0.02 * taken, (estimate, taken)
