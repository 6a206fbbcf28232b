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
            backend.endpoint(address).handle(f"FUNC:MODE CURR;:VOLT 20;CURR {LEFT_A};OUTP ON")
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


READ = "<reply read>"  # in what the stage's link logs: a reply waited for and read


def _on_the_stage_link(monkeypatch: Any, address: str, sent: list[str], *,
                      answer: Callable[[int, str], str] | None = None) -> None:
    """The simulators `safe` makes from now on log in `sent` what their stage's link at
    `address` is sent, and READ where a reply is read (the in-process transport's query
    writes and reads through these too); the k-th reply read (from 0) is `answer(k, reply)`
    (as the stage replies: None)."""
    def prepare(backend: Any, _profile: Any) -> None:
        open_transport = backend.open_transport

        def opened(a: str, link: Any) -> Any:
            transport = open_transport(a, link)
            if a != address:
                return transport
            write, read = transport.write, transport.read

            def write_logged(command: str) -> None:
                sent.append(command)
                write(command)

            def read_answered() -> str:
                k = sent.count(READ)
                sent.append(READ)
                reply = read()
                return reply if answer is None else answer(k, reply)

            transport.write, transport.read = write_logged, read_answered
            return transport

        backend.open_transport = opened

    simulators_made(monkeypatch, prepare)


def test_making_safe_sends_the_stop_before_any_setting(monkeypatch) -> None:
    """A stage left moving goes on while `safe` talks to it, and a VEL sent during a move
    changes its speed: STP (or #24) is sent before any reply is waited for and before any
    SVO or VEL (and the dozen queries a connect reads); only a query whose reply is read
    after it (the ERR? that keeps an earlier error from being replaced by the stop's) may
    go ahead of it."""
    profile = load_profile(E727_PROFILE)
    sent: list[str] = []
    _on_the_stage_link(monkeypatch, profile.stage.link.address, sent)
    _, stage = make_rig_safe(profile)
    assert stage.safe, stage.state
    stops = [k for k, command in enumerate(sent) if command in ("STP", "\x18")]
    assert stops, sent[:12]
    ahead = sent[:stops[0]]
    assert READ not in ahead and all(command.endswith("?") for command in ahead), sent[:12]


def test_a_first_stop_whose_check_lost_its_reply_is_sent_again(monkeypatch) -> None:
    """The stop sent on a link of its own before the connect: one lost reply to its ERR? (not
    asked again: reading clears it) is no "could not be reached"; the stop is sent again."""
    profile = load_profile(C884_PROFILE)
    sent: list[str] = []
    # replies read: the error from before the stop (0), the stop's check (1), the marker (2)
    _on_the_stage_link(monkeypatch, profile.stage.link.address, sent,
                       answer=lambda k, reply: "garbage" if k == 1 else reply)
    _, stage = make_rig_safe(profile)
    assert stage.safe, stage.state
    assert "could not be reached" not in stage.state
    assert [c for c in sent if c != READ][:6] == ["ERR?", "STP", "ERR?", "*IDN?", "STP", "ERR?"]


def _left_pending(backend: Any, p: Any) -> None:
    """An earlier program's command refused and its error never read: error 15 (no axis 9)."""
    backend.endpoint(p.stage.link.address).handle("MOV 9 0")


def test_an_error_left_pending_before_safe_is_said_apart_from_the_stop(monkeypatch) -> None:
    """The controller keeps only its last error, and the stop sets its own (10): the error an
    earlier program left is read before the stop replaces it, and said as found before the
    stop, not as the stop's."""
    profile = load_profile(E727_PROFILE)
    simulators_made(monkeypatch, _left_pending)
    _, stage = make_rig_safe(profile)
    assert stage.safe, stage.state
    assert stage.state.startswith("stopped at"), stage.state
    assert ("the controller held error 15 (invalid axis identifier) from before the stop"
            in stage.state), stage.state
    assert "after 'STP'" not in stage.state and "first stop said" not in stage.state


def test_an_unreferenced_stage_says_the_error_left_from_before_too(monkeypatch) -> None:
    """Not connected (its axes unreferenced), the stage is still stopped; the error found
    before the stop is said as well."""
    profile = load_profile(C884_PROFILE)
    simulators_made(monkeypatch, _left_pending)
    _, stage = make_rig_safe(profile)
    assert stage.safe, stage.state
    assert "position not read" in stage.state, stage.state
    assert "held error 15 (invalid axis identifier) from before the stop" in stage.state


def test_a_lost_reply_about_the_error_before_is_said_unknown(monkeypatch) -> None:
    """The reply to the ERR? sent ahead of the stop lost: the stop's own check answered, so
    the stage was reached and stopped; whether an error was pending is said unknown."""
    profile = load_profile(E727_PROFILE)
    sent: list[str] = []
    _on_the_stage_link(monkeypatch, profile.stage.link.address, sent,
                       answer=lambda k, reply: "garbage" if k == 0 else reply)
    _, stage = make_rig_safe(profile)
    assert stage.safe, stage.state
    assert "from before the stop is unknown" in stage.state, stage.state
    assert [c for c in sent if c != READ][:3] == ["ERR?", "STP", "ERR?"]


def test_a_stage_whose_share_ends_once_connected_is_said_stopped_by_its_first_stop(
        monkeypatch) -> None:
    """The stage's share of the deadline (`stage_share_s`) ends just as its connect does
    (after its first stop, `stop_alone`): the stop and read-back after the connect are
    refused unsent, and the stage is said stopped by that first stop, its position not
    read, not "NOT SAFE: not stopped" (which sent `safe` to exit 1 with the stage stopped)."""
    from drivers.pi_gcs import PIGCSStage
    from smm_daq.instruments import rig as rig_module

    share_s = 5.0
    monkeypatch.setattr(rig_module, "stage_share_s", lambda profile: share_s)
    original = PIGCSStage.from_profile.__func__  # type: ignore[attr-defined]

    def slow_to_connect(cls: Any, settings: Any, *, clock: Any, open_transport: Any) -> Any:
        stage = original(cls, settings, clock=clock, open_transport=open_transport)
        clock.sleep(2 * share_s)  # the connect ends past the stage's share
        return stage

    monkeypatch.setattr(PIGCSStage, "from_profile", classmethod(slow_to_connect))
    backends = simulators_made(monkeypatch)
    _, stage = make_rig_safe(load_profile(C884_PROFILE.with_name("simulator-e727.toml")))
    assert stage.safe, stage.state
    assert stage.state.startswith("every axis stopped"), stage.state
    assert "position not read: " in stage.state, stage.state
    assert "the stage's share of making the rig safe (5 s) ended" in stage.state, stage.state
    assert not any(backends[0].world.stage.moving(ax) for ax in AXES)


def test_a_first_stop_whose_motion_check_was_lost_then_no_connect_says_it_once(
        monkeypatch) -> None:
    """The first stop (`stop_alone`) sent STP but lost the reply saying whether anything still
    moves, and the connect after it fails: the stage is said stopped by STP with its motion
    unknown, once, not also "nor stopped" (which contradicted it)."""
    from drivers.pi_gcs import PIGCSStage
    from smm_daq.errors import InstrumentError

    def motion_unknown(cls: Any, settings: Any, **_: Any) -> Any:
        raise InstrumentError("stopped (STP), but whether it still moves is unknown: no valid "
                              "reply to '#5'", instrument=f"PI stage at {settings.link.address}")

    def not_connected(cls: Any, settings: Any, **_: Any) -> Any:
        raise InstrumentError("axis 1 refused SVO", instrument="PI stage")

    monkeypatch.setattr(PIGCSStage, "stop_alone", classmethod(motion_unknown))
    monkeypatch.setattr(PIGCSStage, "from_profile", classmethod(not_connected))
    simulators_made(monkeypatch)
    _, stage = make_rig_safe(load_profile(C884_PROFILE))
    assert not stage.safe
    assert "nor stopped" not in stage.state, stage.state
    assert stage.state.count("stopped (STP), but whether it still moves is unknown") == 1
    assert "could not be connected: PI stage: axis 1 refused SVO" in stage.state, stage.state
