"""Connecting fails on a rig a killed program left energised: the coils and stage that did
connect are made safe before they are closed, and the error says whether the rig is safe.
Over the real byte path (TCP-served emulators behind fault proxies), judged from the
emulators' side.

The links wait for a reply as long as no loaded machine delays one (`UNHURRIED_TIMEOUT_S`):
only an instrument the fault proxy refuses loses replies, and that connect runs with
`links_time_out_only_where_faked`, so that its links time out at once where the proxy closed
them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from served_rig import (
    UNHURRIED_TIMEOUT_S,
    ServedRig,
    links_time_out_only_where_faked,
    served_to_pyvisa_py,
)

from gui.rig_holder import RigHolder
from smm_daq.cli.main import main
from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import load_profile, parse_profile
from smm_daq.instruments.rig import make_rig_safe, open_rig, rig_addresses
from smm_daq.instruments.rig_lock import holders

CURRENT_ATOL = 2e-3
LEFT_ON = np.array([0.0, 40e-6, 0.0])  # 0.8 A in coil y
SAFE = "the rig is safe (coils at their safe state, stage stopped)"
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    with served_to_pyvisa_py(tmp_path_factory.mktemp("served"),
                             timeout_s=UNHURRIED_TIMEOUT_S) as rig:
        yield rig


@pytest.fixture
def left_on(served: ServedRig) -> Iterator[ServedRig]:
    """The field a program killed with -9 leaves: on, its links just gone; afterwards the
    proxies forward again and the rig is made safe."""
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    rig.coils.set_field(LEFT_ON)
    rig.close()  # no ramp-down, as after kill -9
    assert served.currents()[1] == pytest.approx(0.8, abs=CURRENT_ATOL)
    yield served
    for proxy in served.proxies.values():
        proxy.restore()
    assert all(s.safe for s in make_rig_safe(load_profile(served.profile_path),
                                             clock=served.clock))


def wrong_lockin_identity(served: ServedRig, monkeypatch: pytest.MonkeyPatch) -> None:
    lockin = served.backend.emulators[served.sim_profile.lockin.link.address]
    monkeypatch.setattr(lockin, "IDN", "Stanford_Research_Systems,SR850,s/n1,ver1.0")


def test_a_lockin_with_a_wrong_identity_leaves_the_coils_at_zero_and_says_safe(
        left_on, monkeypatch, tmp_path, capsys) -> None:
    wrong_lockin_identity(left_on, monkeypatch)
    out = tmp_path / "s.h5"
    code = main(["scan", "--profile", str(left_on.profile_path), "--center-um", "100,100",
                 "--size-um", "40,40", "--step-um", "20", "--name", "k", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.splitlines()
    assert lines[-2].startswith("smm-daq: failed: lockin (sr830 at TCPIP0::")
    assert "expected an SR830, the instrument says it is Stanford_Research_Systems SR850" in err
    assert lines[-1] == f"smm-daq: {SAFE}"
    np.testing.assert_allclose(left_on.currents(), left_on.safe_currents(), atol=CURRENT_ATOL)
    assert not left_on.stage_moving()
    assert not out.exists()


# (instrument made unreachable, what the note must hold, whether the coils end safe)
CASES = {
    "lockin": ("lockin", SAFE, True),
    "fluxgate": ("fluxgate", SAFE, True),
    "stage": ("stage", "the rig may NOT be safe: stage (pi_gcs at TCPIP0::", True),
    "coils": ("coil_y", "the rig may NOT be safe: stage (pi_gcs at TCPIP0::", False),
}


@pytest.mark.parametrize("case", CASES)
def test_whatever_does_not_answer_the_connected_coils_and_stage_are_made_safe(
        left_on, case: str) -> None:
    role, statement, coils_safe = CASES[case]
    left_on.proxies[role].refuse()
    profile = load_profile(left_on.profile_path)
    with pytest.raises(InstrumentError) as failed, links_time_out_only_where_faked(left_on):
        open_rig(profile, clock=left_on.clock)
    assert holders(rig_addresses(profile)) == {}  # the rig lock went with the failure
    assert failed.value.instrument == case
    (note,) = failed.value.__notes__
    assert note.startswith(statement)
    if note != SAFE:
        assert f"`smm-daq safe --profile {left_on.profile_path}`" in note
    assert ("coils (kepco_bop at" in note) == (not coils_safe)
    currents = left_on.currents()
    if coils_safe:
        np.testing.assert_allclose(currents, left_on.safe_currents(), atol=CURRENT_ATOL)
    else:  # nothing could reach them: as they were left
        assert currents[1] == pytest.approx(0.8, abs=CURRENT_ATOL)


def test_check_says_whether_the_rig_is_safe_after_it_could_not_connect(
        left_on, monkeypatch, capsys) -> None:
    wrong_lockin_identity(left_on, monkeypatch)
    assert main(["check", "--profile", str(left_on.profile_path)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"smm-daq: {SAFE}"


def test_the_window_shows_whether_the_rig_is_safe_after_it_could_not_connect(qtbot) -> None:
    """On the simulator: its lock-in disconnected from the start."""
    profile = load_profile()
    text = profile.path.read_text().replace("disconnected = []",
                                            'disconnected = ["GPIB0::8::INSTR"]')
    holder = RigHolder(parse_profile(text, profile.path))
    try:
        with qtbot.waitSignal(holder.failed, timeout=WAIT_MS) as failed:
            holder.open()
        why = failed.args[0]
        assert why.startswith("lockin (sr830 at GPIB0::8::INSTR) does not answer")
        assert why.endswith("\n" + SAFE)
    finally:
        holder.close()
