"""An abort during a scan's field ramp (Ctrl-C, SIGTERM, a window's Abort) ends within the
make-safe bound of the abort: the ramp's step under way and the making safe from there are
one bounded path, as a supervisor's wait between SIGTERM and SIGKILL assumes."""

from __future__ import annotations

import threading

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments import loss_budget
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.instruments.safe_bound import switch_off_tail_s

UM = 1e-6
WAIT_S = 60.0  # real seconds a held thread waits at most (it is let go long before)


def test_an_abort_during_a_scans_field_ramp_on_a_slow_link_ends_within_the_bound(
        tmp_path, monkeypatch) -> None:
    """The scan's ramp to 100 µT (2 A on coil y) held at its first step; then the supplies'
    links made slow (2.5 s a message on the rig's clock, within their timeout), the
    make-safe path's deadline 0.5 s (monkeypatched, so that the step outlasts it) and the
    scan aborted: past the deadline, counted from the abort, each supply is only switched
    off (its switch-off and the check of it), and the rig is made safe once, within the
    bound of the abort. Unfixed, the step went on setting currents outside any bound, and
    the making safe at the scan's end began a deadline of its own."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 0.5)
    rig = open_rig(load_profile())
    clock, world = rig.clock, rig.world.coils
    sent: list[list[tuple[float, str]]] = [[] for _ in rig.coils._supplies]
    for log, supply in zip(sent, rig.coils._supplies, strict=True):
        transport = supply.link.transport
        monkeypatch.setattr(transport, "write", _logged(transport.write, log, clock))
    made_safe: list[float] = []
    make_safe = rig.make_safe

    def make_safe_noted() -> list[str]:
        try:
            return make_safe()
        finally:
            made_safe.append(clock.now())

    monkeypatch.setattr(rig, "make_safe", make_safe_noted)
    amps: list[float] = []
    reached, go_on = threading.Event(), threading.Event()
    set_current = world.set_current

    def held(i: int, a: float) -> None:
        set_current(i, a)
        if i == 1:
            amps.append(a)
            if len(amps) == 2:  # the ramp's first step after enable's 0 A
                reached.set()
                go_on.wait(WAIT_S)

    monkeypatch.setattr(world, "set_current", held)
    plan = ScanPlan.from_center("ramp", (12.5e-3, 12.5e-3), (40 * UM, 40 * UM), 20 * UM,
                                field=(0.0, 100e-6, 0.0))
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    seq.start()
    try:
        assert reached.wait(WAIT_S)
        for supply in rig.coils._supplies:
            supply.link.transport.latency = 2.5
        stopped_at = clock.now()  # the rig's thread held: the clock stands still
        seq.abort()
        go_on.set()
        assert seq.wait(WAIT_S) == "aborted"
    finally:
        go_on.set()
        for supply in rig.coils._supplies:
            supply.link.transport.latency = 0.0
        rig.close()
    assert len(made_safe) == 1, made_safe
    assert made_safe[0] - stopped_at <= 0.5 + switch_off_tail_s(rig.profile)
    late = [[m for t, m in log if stopped_at + 0.5 <= t] for log in sent]
    assert all(set(m) <= {"OUTP OFF", "SYST:ERR?"} for m in late), late
    assert all(len(m) <= loss_budget.TAIL_EXCHANGES for m in late), late
    assert max(abs(a) for a in amps) < 0.2
    assert "the field was made safe from there" in seq.message, seq.message
    print(seq.message)


def _logged(write, log: list[tuple[float, str]], clock):
    """`write`, each message noted in `log` with the time on `clock` it was sent at."""
    def logged(message: str) -> None:
        log.append((clock.now(), message.strip()))
        write(message)

    return logged
