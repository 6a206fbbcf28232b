"""`smm-daq safe` and the stage: it stops a motor stage whose axes are not referenced, or still
driving to their reference switches, and never starts a reference move itself (one drives
every axis to its switch, past the sample), even with `reference_on_connect = true`; it stops
the stage before the coils ramp down, and tries a stage that does not answer once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from served_rig import simulators_made

from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import make_rig_safe

C884_PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
AXES = ("1", "2", "3")


def test_making_safe_leaves_an_unreferenced_stage_where_it_is(monkeypatch) -> None:
    profile = load_profile(C884_PROFILE)
    assert profile.stage.reference_on_connect  # a scan would reference it at connect
    backends = simulators_made(monkeypatch)
    _, stage = make_rig_safe(profile)
    model = backends[0].world.stage
    start = np.array([profile.stage.travel[0, 0], profile.stage.travel[1, 0],
                      profile.sensor.height])
    np.testing.assert_allclose(model.sample_position(), start, atol=1e-12)
    assert not any(model.referenced(ax) for ax in AXES)
    assert stage.safe, stage.state
    assert "stopped" in stage.state


def test_making_safe_words_unreferenced_axes_for_safe_not_for_a_scan(monkeypatch) -> None:
    """The driver's advice to set reference_on_connect is for a scan's connect; safe, which
    never references, says what it did and what a connect will do."""
    profile = load_profile(C884_PROFILE)
    simulators_made(monkeypatch)
    _, stage = make_rig_safe(profile)
    assert "safe never references them" in stage.state, stage.state
    assert "set stage.reference_on_connect" not in stage.state, stage.state
    assert "['1', '2', '3'] are not referenced" in stage.state, stage.state


def test_making_safe_stops_a_reference_move_a_killed_program_left_running(
        monkeypatch) -> None:
    profile = load_profile(C884_PROFILE)

    def referencing(backend: Any, _: Any) -> None:
        model = backend.world.stage
        for ax in AXES:
            model.set_servo(ax, True)
        model.reference(AXES)  # what FRF sent by the killed program started

    backends = simulators_made(monkeypatch, referencing)
    _, stage = make_rig_safe(profile)
    model = backends[0].world.stage
    assert not any(model.moving(ax) for ax in AXES)
    assert not any(model.referenced(ax) for ax in AXES)  # stopped before its switch
    assert stage.safe, stage.state


E727_PROFILE = C884_PROFILE.with_name("simulator-e727.toml")
LEFT_A = 2.0  # what a killed program left on each coil


def test_making_safe_stops_the_stage_before_the_coils_ramp_down(monkeypatch) -> None:
    """A killed program left the stage on a long move and the coils at 2 A: stopping takes
    one command, ramping down seconds (2 A at 1 A/s), in which the stage would go on to its
    target (0.9 s away). The supplies are left as the driver leaves them in a scan (current
    mode, 20 V compliance), their 2 A flowing: a supply with no compliance carries nothing,
    and its ramp-down takes no time, so the order could not be seen."""
    profile = load_profile(E727_PROFILE)
    travel = profile.stage.travel[0]
    ramp_s = LEFT_A / profile.coils.max_ramp_rate
    assert ramp_s > (travel[1] - travel[0]) / profile.stage.velocity  # the move would end

    def left_moving(backend: Any, p: Any) -> None:
        for address in p.coils.addresses:
            backend.endpoint(address).handle(f"FUNC:MODE CURR;VOLT 20;CURR {LEFT_A};OUTP ON")
        backend.clock.advance(1.0)  # the supplies slew to their setpoint (10 A/s)
        np.testing.assert_allclose(backend.world.coils.currents(), LEFT_A)
        model = backend.world.stage
        model.set_servo("1", True)
        model.move({"1": float(p.stage.travel[0, 1])})

    backends = simulators_made(monkeypatch, left_moving)
    coils, stage = make_rig_safe(profile)
    assert coils.safe and stage.safe, (coils.state, stage.state)
    world = backends[0].world
    np.testing.assert_allclose(world.coils.currents(), 0.0, atol=1e-3)
    assert backends[0].clock.now() >= 1.0 + ramp_s  # the ramp-down took its time
    x = world.stage.sample_position()[0]
    assert x < travel[0] + 0.1 * (travel[1] - travel[0])  # stopped at once, not at its target


def test_a_stage_that_does_not_answer_is_not_called_on_twice(monkeypatch) -> None:
    """Every reply lost: connecting ends in InstrumentLost, and `stop_alone` would only spend
    the same timeouts again before the coils are ramped down."""
    profile = load_profile(E727_PROFILE)
    address = profile.stage.link.address
    opened: list[str] = []

    def silent_stage(backend: Any, _: Any) -> None:
        backend.faults[address].timeouts = 10**6
        open_transport = backend.open_transport

        def counted(a: str, link: Any) -> Any:
            opened.append(a)
            return open_transport(a, link)

        backend.open_transport = counted

    simulators_made(monkeypatch, silent_stage)
    coils, stage = make_rig_safe(profile)
    assert coils.safe, coils.state
    assert not stage.safe and "could not be reached" in stage.state
    assert opened.count(address) == 1


def _on_the_stage_link(monkeypatch: Any, address: str, sent: list[str], *,
                      log_queries: bool,
                      answer: Callable[[str, str], str] | None = None) -> None:
    """The simulators `safe` makes from now on log in `sent` what their stage's link at
    `address` is sent (queries too, where the transport's query does not write them itself),
    and answer each query as `answer(command, reply)` says (as the stage replies: None)."""
    def prepare(backend: Any, _profile: Any) -> None:
        open_transport = backend.open_transport

        def opened(a: str, link: Any) -> Any:
            transport = open_transport(a, link)
            if a != address:
                return transport
            write, query = transport.write, transport.query

            def write_logged(command: str) -> None:
                sent.append(command)
                write(command)

            def query_answered(command: str) -> str:
                if log_queries:
                    sent.append(command)
                reply = query(command)
                return reply if answer is None else answer(command, reply)

            transport.write, transport.query = write_logged, query_answered
            return transport

        backend.open_transport = opened

    simulators_made(monkeypatch, prepare)


def test_making_safe_sends_the_stop_before_any_setting(monkeypatch) -> None:
    """A stage left moving goes on while `safe` talks to it, and a VEL sent during a move
    changes its speed: STP (or #24) is the first thing the stage hears, before any SVO or VEL
    (and before the dozen queries a connect reads)."""
    profile = load_profile(E727_PROFILE)
    sent: list[str] = []
    _on_the_stage_link(monkeypatch, profile.stage.link.address, sent, log_queries=True)
    _, stage = make_rig_safe(profile)
    assert stage.safe, stage.state
    assert sent and sent[0] in ("STP", "#24"), sent[:12]


def test_a_first_stop_whose_check_lost_its_reply_is_sent_again(monkeypatch) -> None:
    """The stop sent on a link of its own before the connect: one lost reply to its ERR? (not
    asked again: reading clears it) is no "could not be reached"; the stop is sent again."""
    profile = load_profile(C884_PROFILE)
    sent: list[str] = []
    checks: list[str] = []

    def garbled_once(command: str, reply: str) -> str:
        checks.append(command)  # (the query itself sent by the transport's own write)
        return "garbage" if checks == ["ERR?"] else reply

    _on_the_stage_link(monkeypatch, profile.stage.link.address, sent, log_queries=False,
                       answer=garbled_once)
    _, stage = make_rig_safe(profile)
    assert stage.safe, stage.state
    assert "could not be reached" not in stage.state
    assert sent[:4] == ["STP", "ERR?", "STP", "ERR?"]
