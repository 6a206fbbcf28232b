"""A signal during `smm-daq run`'s set_field step ends within the make-safe bound of the
signal: the ramp's step under way and the making safe from where it got to are one bounded
path counted from the signal, as a supervisor's wait between SIGTERM and SIGKILL assumes, and
the session's close does not make the rig safe again with a deadline of its own."""

from __future__ import annotations

import _thread
import signal
import threading

from smm_daq.cli.main import EXIT_INTERRUPTED, main
from smm_daq.instruments import loss_budget
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.ramp_stop import RampStop
from smm_daq.instruments.safe_bound import switch_off_tail_s

WAIT_S = 60.0  # real seconds a held thread waits at most (it is let go long before)
RECIPE = """
[[step]]
kind = "set_field"
field_uT = [0.0, 100.0, 0.0]
"""


def test_a_signal_during_runs_set_field_ends_within_the_bound_of_the_signal(
        tmp_path, monkeypatch, capsys) -> None:
    """`smm-daq run` ramping to 100 µT (2 A on coil y); SIGTERM comes as the ramp's first
    step asks coil z whether its output is on, and that supply loses the replies of the
    exchange's first `retries` attempts (3 s each on the rig's clock); the make-safe path's
    deadline is 0.5 s (monkeypatched, so that one lost reply outlasts it). The exchange under
    way is in the path the signal began: past the deadline, counted from the signal, each
    supply is only switched off (its switch-off and the check of it), and the rig is made
    safe once, within the bound of the signal; the program ends interrupted, saying what
    making it safe did. Unfixed, the signal waited for the exchange with all its retries
    (6 s), then the close made the rig safe with a deadline of its own, ramping down
    (`CURR`) past the bound of the signal."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 0.5)
    opened: list[rig_module.Rig] = []
    open_rig = rig_module.open_rig
    stopped: list[float] = []
    go_on = threading.Event()  # set when the signal has stopped the ramp
    amps: list[float] = []
    made_safe: list[float] = []
    sent: list[list[tuple[float, str]]] = []

    def opening(*args, **kwargs) -> rig_module.Rig:
        rig = open_rig(*args, **kwargs)
        opened.append(rig)
        clock, world = rig.clock, rig.world.coils
        z = rig.coils._supplies[2].link

        def signal_at_z_output_query(message: str) -> None:
            if len(amps) >= 2 and message.strip() == "OUTP?" and not stopped:
                z.transport.faults.timeouts = z.retries  # its last attempt is answered
                stopped.append(clock.now())
                _thread.interrupt_main(signal.SIGTERM)
                if threading.current_thread() is not threading.main_thread():
                    go_on.wait(WAIT_S)  # until the signal has stopped the ramp

        for k, supply in enumerate(rig.coils._supplies):
            log: list[tuple[float, str]] = []
            sent.append(log)
            transport = supply.link.transport
            before = signal_at_z_output_query if k == 2 else None
            monkeypatch.setattr(transport, "write",
                                _logged(transport.write, log, clock, before))
        make_safe = rig.make_safe

        def make_safe_noted() -> list[str]:
            try:
                return make_safe()
            finally:
                made_safe.append(clock.now())

        monkeypatch.setattr(rig, "make_safe", make_safe_noted)
        set_current = world.set_current

        def noted(i: int, a: float) -> None:
            set_current(i, a)
            if i == 1:
                amps.append(a)  # the second: the ramp's first step, after enable's 0 A

        monkeypatch.setattr(world, "set_current", noted)
        return rig

    monkeypatch.setattr(RampStop, "set", _also(RampStop.set, go_on.set))
    monkeypatch.setattr(rig_module, "open_rig", opening)
    recipe = tmp_path / "field.toml"
    recipe.write_text(RECIPE)
    try:
        code = main(["run", str(recipe), "--out", str(tmp_path / "s.h5")])
    finally:
        go_on.set()
    err = capsys.readouterr().err
    assert code == EXIT_INTERRUPTED, err
    assert len(opened) == 1 and len(stopped) == 1
    assert len(made_safe) == 1, made_safe
    assert made_safe[0] - stopped[0] <= 0.5 + switch_off_tail_s(opened[0].profile)
    late = [[m for t, m in log if stopped[0] + 0.5 <= t] for log in sent]
    assert all(set(m) <= {"OUTP OFF", "SYST:ERR?"} for m in late), late
    assert all(len(m) <= loss_budget.TAIL_EXCHANGES for m in late), late
    assert max(abs(a) for a in amps) < 0.2
    assert "smm-daq: interrupted (SIGTERM)" in err, err
    # the deadline (0.5 s) passed during the step: each supply switched off where it stood
    assert "coil y: deadline reached" in err and "switched off at 0.1000 A" in err, err


def _also(method, then):
    """`method`, then `then()`."""
    def both(self, *args, **kwargs):
        method(self, *args, **kwargs)
        then()

    return both


def _logged(write, log: list[tuple[float, str]], clock, before=None):
    """`write`, each message noted in `log` with the time on `clock` it was sent at, after
    `before(message)` where given."""
    def logged(message: str) -> None:
        if before is not None:
            before(message)
        log.append((clock.now(), message.strip()))
        write(message)

    return logged
