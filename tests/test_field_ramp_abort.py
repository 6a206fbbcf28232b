"""An abort during the field's ramp-up ends it at the next step and ramps down from there,
in process and over the served simulator (TCP): it never ramps on to the field asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from served_rig import UNHURRIED_TIMEOUT_S, ServedRig, counted

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig

UM = 1e-6


def _plan() -> ScanPlan:
    return ScanPlan.from_center("ramped", (12.5e-3, 12.5e-3), (40 * UM, 40 * UM), 20 * UM,
                                field=(0.0, 100e-6, 0.0))


def _abort_on_second_set_current_of_y(world_coils, seq: Sequencer) -> list[float]:
    """Coil y's setpoints as the world takes them; `seq.abort()` from its second one (the
    first is enable's 0 A, the second the ramp's first step)."""
    sent: list[float] = []
    original = world_coils.set_current

    def set_current(i: int, amps: float) -> None:
        original(i, amps)
        if i == 1:
            sent.append(amps)
            if len(sent) == 2:
                seq.abort()

    world_coils.set_current = set_current
    return sent


def _assert_stopped_early(seq: Sequencer, sent: list[float], rig: Rig,
                          safe_currents: np.ndarray) -> None:
    assert seq.state == "aborted"
    # the step after the abort is never sent: the largest setpoint is the first step's, far
    # below the 2 A that 100 µT takes, then it ramps down to the safe state
    full = float(np.linalg.solve(rig.profile.coils.calibration,
                                 np.array(_plan().field) - rig.profile.coils.ambient_field)[1])
    assert abs(full) > 1.0
    assert max(abs(a) for a in sent) <= abs(full) / 10
    assert sent[-1] == pytest.approx(safe_currents[1], abs=1e-3)
    assert "the ramp was stopped at step 1" in seq.message


def test_an_abort_during_the_ramp_up_ramps_down_from_where_it_got(tmp_path: Path) -> None:
    rig = open_rig(load_profile())
    try:
        seq = Sequencer(rig, tmp_path / "s.h5", _plan())
        sent = _abort_on_second_set_current_of_y(rig.world.coils, seq)
        seq.run()
        coils = rig.profile.coils
        safe = np.linalg.solve(coils.calibration, -coils.ambient_field)
        _assert_stopped_early(seq, sent, rig, safe)
        np.testing.assert_allclose(rig.world.coils.currents(), safe, atol=2e-3)
    finally:
        rig.close()


def test_an_abort_during_the_ramp_up_over_tcp(tmp_path: Path) -> None:
    served = ServedRig(tmp_path, time_scale=0, timeout_s=UNHURRIED_TIMEOUT_S)  # no reply lost
    rig = counted(open_rig(load_profile(served.profile_path), clock=served.clock), served)
    try:
        seq = Sequencer(rig, tmp_path / "s.h5", _plan())
        sent = _abort_on_second_set_current_of_y(served.backend.world.coils, seq)
        seq.start()
        assert seq.wait(timeout=240) == "aborted"
        _assert_stopped_early(seq, sent, rig, served.safe_currents())
        np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=2e-3)
    finally:
        rig.close()
        served.close()
