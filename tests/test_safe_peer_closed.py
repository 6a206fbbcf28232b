"""Making the rig safe when a coil supply closes its connection once mid-ramp-down, or the
stage at its stop (a LAN-serial adapter that dropped the link, a server that restarted), over
loopback through the fault proxy and pyvisa-py's raw sockets: the exchange is tried again on a
new connection, so the supply is still ramped down (not given up and switched off where it
stood), the stage stopped and checked, and the rig is said safe. Judged from the emulators'
side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from served_rig import ServedRig, counted, links_time_out_only_where_faked

from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import make_rig_safe, open_rig

FIELD_T = np.array([30e-6, -20e-6, 10e-6])


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedRig]:
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    rig = ServedRig(tmp_path, time_scale=0, timeout_s=0.3)
    with links_time_out_only_where_faked(rig):
        yield rig
    rig.close()


def drop_coil_x_at(served: ServedRig, n: int) -> None:
    """Coil x's connection closed by the peer at its n-th command from now."""
    proxy = served.proxies["coil_x"]
    proxy.after(proxy.commands + n, proxy.drop)


def test_make_safe_ramps_down_a_supply_whose_connection_closed_mid_ramp(served: ServedRig) -> None:
    rig = counted(open_rig(load_profile(served.profile_path), clock=served.clock), served)
    try:
        rig.coils.set_field(FIELD_T)
        assert np.all(np.abs(served.currents() - served.safe_currents()) > 0.1)
        drop_coil_x_at(served, 3)  # within the first steps of its ramp-down
        problems = rig.make_safe()
    finally:
        rig.close()
    assert problems == []
    assert served.proxies["coil_x"].commands > 3  # the drop came, and x went on
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=2e-3)


def test_safe_ramps_down_a_supply_whose_connection_closed_mid_ramp(served: ServedRig) -> None:
    profile = load_profile(served.profile_path)
    rig = open_rig(profile, clock=served.clock)
    try:
        rig.coils.set_field(FIELD_T)
    finally:
        rig.close()  # closed without ramping down: as a killed program leaves it
    drop_coil_x_at(served, 30)  # past its connect, in its ramp-down
    coils, stage = make_rig_safe(profile, clock=served.clock)
    assert coils.safe, coils.state
    assert stage.safe
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=2e-3)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_make_safe_stops_a_stage_whose_connection_closed_at_the_stop(
    served: ServedRig, n: int
) -> None:
    rig = counted(open_rig(load_profile(served.profile_path), clock=served.clock), served)
    try:
        start = rig.stage.position()
        rig.stage.move_to(start[0] + 2e-3, start[1] + 2e-3, wait=False)
        assert served.stage_moving()
        proxy = served.proxies["stage"]
        proxy.after(proxy.commands + n, proxy.drop)  # at the stop, or its check
        problems = rig.make_safe()
    finally:
        rig.close()
    assert problems == []
    assert not served.stage_moving()
