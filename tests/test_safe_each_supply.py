"""`smm-daq safe` when one coil supply does not answer: the others are ramped down on their
own, judged from the served supplies' side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from served_rig import ServedRig, links_time_out_only_where_faked

from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import make_rig_safe, open_rig


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedRig]:
    """On the rig's sleeps alone (time scale 0), every link timing out only where the proxy
    made sure no reply comes, taking its timeout on that clock (a reply merely slowed by a
    loaded machine timed out in 0.3 real seconds, while the world ran 200 × real time)."""
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    rig = ServedRig(tmp_path, time_scale=0, timeout_s=0.3)
    with links_time_out_only_where_faked(rig):
        yield rig
    rig.close()


def test_reachable_supplies_are_ramped_down_when_one_is_lost(served: ServedRig) -> None:
    profile = load_profile(served.profile_path)
    rig = open_rig(profile, clock=served.clock)
    try:
        rig.coils.set_field(np.array([30e-6, -20e-6, 10e-6]))
    finally:
        rig.close()  # closed without ramping down: as a killed program leaves it
    before = served.currents()
    assert np.all(np.abs(before - served.safe_currents()) > 0.05)

    served.proxies["coil_x"].refuse()  # supply x is gone
    coils, stage = make_rig_safe(profile, clock=served.clock)

    after = served.currents()
    np.testing.assert_allclose(after[1:], 0.0, atol=2e-3)  # y and z: ramped to 0 A, off
    assert after[0] == pytest.approx(before[0])  # x could not be reached: left as it was
    assert not coils.safe  # one coil's state is unknown: never reported as safe
    assert "coil x not made safe" in coils.state
    assert "coil y 0.0000 A, output off" in coils.state
    assert stage.safe


def test_a_simulated_rig_is_made_safe_on_the_clock_given() -> None:
    """`make_rig_safe` with a clock runs a simulated rig's connect and ramp-down, and its
    deadline, on it (it had made a clock of its own, so a caller's clock said nothing of the
    path)."""

    class Watched(VirtualClock):
        read = 0

        def now(self) -> float:
            self.read += 1
            return super().now()

    clock = Watched()
    coils, stage = make_rig_safe(load_profile(), clock=clock)
    assert coils.safe and stage.safe
    assert clock.read > 0
