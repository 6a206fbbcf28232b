"""An outside review of long-run behaviour: what a day-long scan meets late (a lock-in driven
past its largest range, ...), on the simulated rig through the real drivers and emulators.
Each case: the scan ends (or pauses) saying what happened and what to do, the rig is safe, and
the file is readable and resumable."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.sample import VirtualSample
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig
from smm_daq.storage.h5file import open_read

C = 12.5e-3


@pytest.fixture
def rig():
    grain = np.array([[C, C, -30e-6, 40e-6, 30e-6, 40e-6]])
    sample = VirtualSample(grain, np.array([0]), remanence=np.array([[3e4, 1e4, 4e4]]),
                           susceptibility=np.array([0.0]))
    r = open_rig(load_profile(), world_options={"sample": sample, "seed": 3})
    yield r
    r.close()


def _field_at_safe_state(rig: Rig) -> None:
    np.testing.assert_allclose(rig.coils.field(), 0.0, atol=50e-9)


def test_auto_range_at_the_largest_range_pauses_instead_of_failing(rig, tmp_path) -> None:
    """Pick-up that grows past the lock-in's largest range (1 V) during an auto-ranged scan:
    the scan pauses, saying auto-range can go no further, as it would without auto-range;
    it was failed by the driver's refusal of a 2 V range ("RangeError ... outside")."""
    rig.lockin.set_sensitivity(0.5)
    rig.backend.lockin.interference = 5.0  # volts of pick-up: beyond every range
    path = tmp_path / "s.h5"
    plan = ScanPlan.from_center("k", (C, C), (60e-6, 60e-6), 15e-6, field=(0.0, 20e-6, 0.0))
    seq = Sequencer(rig, path, plan, auto_range=True)
    paused: list[str] = []

    def operator(event) -> None:
        if event.kind == "paused":
            paused.append(event.message)
            seq.abort()

    seq.subscribe(operator)
    assert seq.run() == "aborted", seq.message
    assert len(paused) == 1, paused
    assert "lock-in overload" in paused[0] and "largest range (1 V full scale)" in paused[0]
    assert "RangeError" not in seq.message
    assert rig.lockin.sensitivity() == 1.0
    _field_at_safe_state(rig)
    with open_read(path) as f:
        assert f["k/status"].asstr()[()] == "aborted"
    assert load_resumable(path, "k").lines_left == plan.ny
