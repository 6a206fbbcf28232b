"""`smm-daq safe` (`make_rig_safe`) and the stage's close: a close that hangs or fails never
delays or prevents the coils' ramp-down. The connected stage is closed once the coils are
made safe; a failure anywhere in the stage's part is said of the stage, the coils still made
safe. On the simulator's virtual clock (a hang is the clock advanced); nothing sleeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from served_rig import simulators_made

from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import make_rig_safe
from smm_daq.instruments.safe_bound import safe_time_bound

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator-e727.toml"
LEFT_A = 2.0  # what a killed program left on each coil


def _field_left_on_and_stage_closes(closed: list[np.ndarray], fail: Any) -> Any:
    """A `simulators_made` preparation: each coil left at LEFT_A (current mode, as a scan
    leaves it), and each close of a link to the stage noting the coils' currents then, then
    `fail(k, backend)` (k: that link's number, 0 `stop_alone`'s, 1 the connected stage's)."""

    def prepare(backend: Any, p: Any) -> None:
        for address in p.coils.addresses:
            backend.endpoint(address).handle(f"FUNC:MODE CURR;:VOLT 20;CURR {LEFT_A};OUTP ON")
        backend.clock.advance(1.0)  # the supplies slew to their setpoint
        np.testing.assert_allclose(backend.world.coils.currents(), LEFT_A)
        open_transport = backend.open_transport
        opened = 0

        def watched(address: str, link: Any) -> Any:
            nonlocal opened
            transport = open_transport(address, link)
            if address != p.stage.link.address:
                return transport
            k, opened = opened, opened + 1
            close = transport.close

            def noted_close() -> None:
                closed.append(backend.world.coils.currents().copy())
                close()
                fail(k, backend)

            transport.close = noted_close
            return transport

        backend.open_transport = watched

    return prepare


def test_a_stage_close_that_hangs_then_fails_leaves_the_coils_their_ramp_down(
        monkeypatch: Any) -> None:
    """The connected stage's port takes the whole bound to close, then fails: the coils were
    ramped down to 0 A before it (outputs on, not switched off where they stood at the
    deadline), and the stage is said stopped. Unfixed, the stage was closed before the coils'
    ramp-down: its hang spent the deadline, and every supply was switched off at 2 A."""
    profile = load_profile(PROFILE)
    closed: list[np.ndarray] = []

    def hangs_then_fails(k: int, backend: Any) -> None:
        if k == 1:
            backend.clock.advance(safe_time_bound(profile))
            raise OSError("the port's close failed")

    backends = simulators_made(monkeypatch,
                               _field_left_on_and_stage_closes(closed, hangs_then_fails))
    coils, stage = make_rig_safe(profile)
    world = backends[0].world.coils
    assert coils.safe, coils.state
    assert stage.safe and stage.state.startswith("stopped at"), stage.state
    assert len(closed) == 2
    np.testing.assert_allclose(closed[1], 0.0, atol=1e-3)  # ramped down before that close
    assert all(world.output(k) for k in range(3))  # ramped to 0 A, not switched off


def test_a_stage_close_that_raises_under_its_first_stop_leaves_the_coils_made_safe(
        monkeypatch: Any) -> None:
    """The port of `stop_alone`'s own link fails as it closes (an OSError, no InstrumentError
    a driver would say), after that stop went: the close's failure is said as what it is,
    the connected stop and the position read still made (the stage said stopped, where),
    and the coils are ramped down. Unfixed, the stage was said "stopping it failed", its
    connected stop and position read skipped (and before that, the error left `safe`
    before the coils were touched)."""
    profile = load_profile(PROFILE)
    closed: list[np.ndarray] = []

    def fails_first(k: int, backend: Any) -> None:
        if k == 0:
            raise OSError("the port's close failed")

    backends = simulators_made(monkeypatch, _field_left_on_and_stage_closes(closed, fails_first))
    coils, stage = make_rig_safe(profile)
    assert coils.safe, coils.state
    np.testing.assert_allclose(backends[0].world.coils.currents(), 0.0, atol=1e-3)
    assert stage.safe and stage.state.startswith("stopped at"), stage.state
    assert stage.state.endswith(
        "; the first stop's link failed to close: OSError: the port's close failed"), stage.state
    assert len(closed) == 2  # the connected stage's link too


def test_the_link_of_a_stage_that_could_not_be_reached_is_closed_after_the_coils(
        monkeypatch: Any) -> None:
    """The stage answers nothing: its first stop (`stop_alone`, on a link of its own) ends
    in "could not be reached", and no connect follows. That link's close, which takes the
    whole bound and then fails, comes once the coils are ramped down to 0 A (outputs on).
    Unfixed, it was closed as the first stop ended, before the coils: its hang spent the
    deadline, and every supply was switched off at 2 A."""
    profile = load_profile(PROFILE)
    closed: list[np.ndarray] = []

    def hangs_then_fails(k: int, backend: Any) -> None:
        backend.clock.advance(safe_time_bound(profile))
        raise OSError("the port's close failed")

    def silent(backend: Any, p: Any) -> None:
        _field_left_on_and_stage_closes(closed, hangs_then_fails)(backend, p)
        backend.faults[p.stage.link.address].timeouts = 10**6

    backends = simulators_made(monkeypatch, silent)
    coils, stage = make_rig_safe(profile)
    world = backends[0].world.coils
    assert coils.safe, coils.state
    assert not stage.safe and "could not be reached" in stage.state, stage.state
    assert len(closed) == 1
    np.testing.assert_allclose(closed[0], 0.0, atol=1e-3)  # ramped down before that close
    assert all(world.output(k) for k in range(3))  # ramped to 0 A, not switched off
