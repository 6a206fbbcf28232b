"""A fly line aborted while the stage flies it: the C-884 hears the stop before the `VEL`
that sets the profile's velocity back (a `VEL` to an axis still moving changes its speed)."""

from __future__ import annotations

from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

CENTRE = (12.5e-3, 12.5e-3)


def test_an_abort_mid_line_stops_the_stage_before_any_velocity_is_set(tmp_path):
    profile = load_profile("configs/simulator.toml")
    assert profile.simulation["stage_controller"] == "C-884"
    plan = ScanPlan.from_center(
        "fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, fly=FlySettings(pixel_time=0.05)
    )
    with open_rig(profile) as rig:
        emulator = rig.backend.emulators[profile.stage.link.address]
        handle, handle_byte = emulator.handle, emulator.handle_byte
        heard: list[str] = []  # from the abort on

        def handle_heard(message: str) -> str | None:
            heard.append(message)
            return handle(message)

        def byte_heard(code: int) -> str | None:
            heard.append(f"#{code}")
            return handle_byte(code)

        seq = Sequencer(rig, tmp_path / "a.h5", plan)
        fly_x, flown = rig.stage.fly_x, []

        def fly_then_abort(*args, **kw):  # the second line aborted while it moves
            start = fly_x(*args, **kw)
            flown.append(start)
            if len(flown) == 2:
                emulator.handle, emulator.handle_byte = handle_heard, byte_heard
                seq.abort("test abort")
            return start

        rig.stage.fly_x = fly_then_abort
        assert seq.run() == "aborted"
    stops = [k for k, m in enumerate(heard) if m in ("#24", "STP")]
    velocities = [k for k, m in enumerate(heard) if m.startswith("VEL ")]
    assert stops, heard
    assert not velocities or stops[0] < velocities[0], heard  # unfixed: VEL, then #24


def test_a_stop_that_fails_mid_line_still_has_the_velocity_set_back(tmp_path):
    """The stop of an aborted line fails (the controller said an axis moves on): the velocity
    is set back all the same, as before the line, not left at the line's."""
    profile = load_profile("configs/simulator.toml")
    plan = ScanPlan.from_center(
        "fly", CENTRE, (0.4e-3, 0.1e-3), 20e-6, fly=FlySettings(pixel_time=0.05)
    )
    with open_rig(profile) as rig:
        seq = Sequencer(rig, tmp_path / "a.h5", plan)
        fly_x, stop, flown, velocities = rig.stage.fly_x, rig.stage.stop, [], []
        set_velocity = rig.stage.set_velocity

        def fly_then_abort(*args, **kw):
            start = fly_x(*args, **kw)
            flown.append(start)
            if len(flown) == 2:
                seq.abort("test abort")
                rig.stage.stop = failing_once
            return start

        def failing_once() -> None:
            stop()
            rig.stage.stop = stop
            raise InstrumentError("3 stops sent (#24), and after the last #5 answered 1")

        def noted(v: float) -> None:
            velocities.append(v)
            set_velocity(v)

        rig.stage.fly_x, rig.stage.set_velocity = fly_then_abort, noted
        seq.run()
        assert rig.stage.stop is stop  # the failing stop was the line's
    assert velocities[-1] == profile.stage.velocity, velocities  # unfixed: the line's velocity
