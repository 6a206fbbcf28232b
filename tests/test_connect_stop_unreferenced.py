"""Stop (the window's Stop or Esc) during a connect that starts no move of its own (an E-727,
whose axes need no reference move): a move a killed program left running still goes on while
the instruments connect. The connect fails saying it was stopped, the stage stopped and the
coils at their safe state, as a stop during a reference move leaves them; before, the stop was
dropped and the rig opened with the stage still on its way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from served_rig import simulators_made

from smm_daq.errors import ConnectStopped
from smm_daq.instruments.connect_stop import ConnectStop
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

E727_PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator-e727.toml"
SAFE = "the rig is safe (coils at their safe state, stage stopped)"


@pytest.mark.parametrize("when", ["before the connect", "while the lock-in connects"])
def test_a_stop_during_a_connect_without_a_reference_move_stops_the_stage_and_fails_it(
        monkeypatch, when) -> None:
    profile = load_profile(E727_PROFILE)
    assert not profile.stage.reference_on_connect
    stop = ConnectStop()

    def left_moving(backend: Any, p: Any) -> None:
        model = backend.world.stage
        model.set_servo("1", True)
        model.set_velocity("1", 1e-6)  # 1.8 mm at 1 µm/s: half an hour on its way
        model.move({"1": float(p.stage.travel[0, 1])})
        if when == "while the lock-in connects":
            opener = backend.open_transport

            def opened(address: str, link: Any) -> Any:
                if address == p.lockin.link.address:
                    stop.request()  # the stage has connected: it is the rig's to stop
                return opener(address, link)

            backend.open_transport = opened

    backends = simulators_made(monkeypatch, left_moving)
    if when == "before the connect":
        stop.request()
    with pytest.raises(ConnectStopped, match="stopped by the operator") as info:
        open_rig(profile, stop=stop)
    assert SAFE in "\n".join(getattr(info.value, "__notes__", [])), info.value
    world = backends[0].world
    assert not world.stage.moving("1")
    np.testing.assert_allclose(world.coils.currents(), np.linalg.solve(
        profile.coils.calibration, -profile.coils.ambient_field), atol=1e-3)


def test_a_stop_after_the_connect_looked_last_fails_it_in_the_window_too(
        monkeypatch, qtbot) -> None:
    """Stop pressed once every instrument has connected (the connect has looked for a stop
    for the last time) but before the window has taken the rig: the window said the connect
    stops and fails, yet the rig opened, the stage left on its way. Now the rig is made safe
    and closed, and the connect fails saying so."""
    from gui.rig_holder import RigHolder

    profile = load_profile(E727_PROFILE)

    def left_moving(backend: Any, p: Any) -> None:
        model = backend.world.stage
        model.set_servo("1", True)
        model.set_velocity("1", 1e-6)
        model.move({"1": float(p.stage.travel[0, 1])})

    backends = simulators_made(monkeypatch, left_moving)
    holder = RigHolder(profile)
    try:
        assert holder.open()
        connect = holder._connect
        assert connect is not None
        connect.result(timeout=60)  # opened, not yet taken: the window's thread is held here
        with qtbot.waitSignal(holder.failed, timeout=60_000) as failed:
            assert holder.stop_connect()  # the window says the connect stops and fails
        assert "stopped by the operator" in failed.args[0]
        assert failed.args[0].endswith("\n" + SAFE)
        assert holder.rig is None and not holder.connecting
        world = backends[0].world
        assert not world.stage.moving("1")
        np.testing.assert_allclose(world.coils.currents(), np.linalg.solve(
            profile.coils.calibration, -profile.coils.ambient_field), atol=1e-3)
    finally:
        holder.close()
