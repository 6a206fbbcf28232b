"""A coil supply that reads back a current far from what it was set to, over the real byte
path (pyvisa-py, a fault proxy in front of each served emulator): an in-field scan ends
failed with the coils ramped down and the stage stopped, and a supply that still reads a
current with its output switched off is never reported as off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from served_rig import ServedRig, links_time_out_only_where_faked

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import make_rig_safe, open_rig

FIELD = (0.0, 40e-6, 0.0)  # 0.8 A in coil y
FAR = b"2.500000E+00\n"  # what coil y reads back from the fault on: in its range, not its current
HANG_GUARD_S = 120.0  # real seconds; every run ends far sooner unless something hangs


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


def _safe_state_off(served: ServedRig) -> None:
    text = served.profile_path.read_text()
    assert 'safe_state = "zero"' in text
    served.profile_path.write_text(text.replace('safe_state = "zero"', 'safe_state = "off"'))


def test_an_in_field_scan_whose_supply_reads_far_off_ends_failed_and_not_called_safe(
        served: ServedRig, tmp_path: Path) -> None:
    """Safe state "off": the supplies are ramped to 0 A and switched off; coil y's read-back,
    still 2.5 A, cannot confirm it, so the scan says the rig may not be safe and what to run,
    where it used to call the rig safe."""
    _safe_state_off(served)
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    try:
        plan = ScanPlan.from_center("far", (12.5e-3, 12.5e-3), (60e-6, 40e-6), 20e-6,
                                    field=FIELD)
        seq = Sequencer(rig, tmp_path / "far.h5", plan)
        proxy = served.proxies["coil_y"]

        def far_once_scanning(event: object) -> None:  # the field set: the lines read it
            if getattr(event, "kind", None) == "point":
                proxy.answer("MEAS:CURR?", FAR)

        seq.subscribe(far_once_scanning)
        seq.start()
        assert seq.wait(HANG_GUARD_S) == "failed", seq.message
    finally:
        rig.close()
    message = seq.message
    assert "the coils no longer hold the field" in message, message
    assert "coil y reads 2.5000 A for" in message and "above its setpoint: not a trip" \
        in message and "tripped" not in message, message
    assert "rig NOT safe" in message and "coil y: reads 2.5000 A with its output switched " \
        "off" in message, message
    assert f"smm-daq safe --profile {served.profile_path}" in message
    np.testing.assert_allclose(served.currents(), 0.0, atol=2e-3)  # ramped down and off
    assert not served.stage_moving()


def test_smm_daq_safe_each_on_its_own_never_calls_a_supply_reading_a_current_off(
        served: ServedRig) -> None:
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    try:
        rig.coils.set_field(np.array(FIELD))
    finally:
        rig.close()  # as a killed program leaves it
    served.proxies["coil_x"].refuse()  # so each supply is made safe on its own
    served.proxies["coil_y"].answer("MEAS:CURR?", FAR)
    coils, stage = make_rig_safe(load_profile(served.profile_path), clock=served.clock)
    assert "coil y not made safe: coil y: reads 2.5000 A with its output switched off" \
        in coils.state, coils.state
    assert "coil z 0.0000 A, output off" in coils.state
    assert not coils.safe and stage.safe
    np.testing.assert_allclose(served.currents()[1:], 0.0, atol=2e-3)
