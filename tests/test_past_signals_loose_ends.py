"""A script's Ctrl-C (Python's own handler) while the rig is made safe past signals
(`sequencer.past_signals`, `safe_close.make_safe_and_close`, the sequencer's own making safe):
the wait keeps the first deadline, a Ctrl-C inside the thread's start does not leave the work
unrun, a Ctrl-C is neither lost behind make_safe's error nor raised without what the making
safe could not do, and a making safe given up on still holds the sequencer's making safe:
no Ctrl-C leaves that hold behind for good, a failed start's making safe takes it too, and
file work a Ctrl-C kept from starting is not waited for."""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
import types
from collections.abc import Callable

import numpy as np
import pytest
from acq_fakes import fake_rig

from smm_daq import interrupts
from smm_daq.acquisition import aside as aside_module
from smm_daq.acquisition import field_aside, safe_close, sequencer
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.acquisition.session import Session

WAIT_S = 30  # bounded waits for held work: the test fails rather than hangs
C = 12.5e-3


def _sequencer(tmp_path) -> Sequencer:
    plan = ScanPlan.from_center("scan", (C, C), (40e-6, 30e-6), 10e-6, field=(0.0, 0.0, 0.0))
    return Sequencer(fake_rig(), tmp_path / "s.h5", plan)


# -- the first deadline kept ------------------------------------------------------------------


def _frozen_clock(monkeypatch, *modules: types.ModuleType) -> list[float]:
    """`time.monotonic` of `modules`, which moves only as the test moves it."""
    now = [1000.0]
    for module in modules:
        monkeypatch.setattr(module, "time", types.SimpleNamespace(monotonic=lambda: now[0]),
                            raising=False)
    return now


def _waits_past_signals(monkeypatch, go: threading.Event) -> list[float]:
    """The limits the waits past signals are given (each lets the held work end)."""
    seen: list[float] = []
    wait = sequencer.wait_past_signals

    def spy(done: threading.Event, within: float) -> bool:
        seen.append(within)
        go.set()
        return wait(done, within)

    monkeypatch.setattr(sequencer, "wait_past_signals", spy)
    # where a close waited with its own name for it (before the first deadline was kept)
    monkeypatch.setattr(safe_close, "wait_past_signals", spy, raising=False)
    return seen


def _late_ctrl_c(now: list[float], go: threading.Event) -> Callable[[], list[str]]:
    """Work that takes 200 s (of the frozen clock), then a Ctrl-C, then holds until `go`."""
    def work() -> list[str]:
        now[0] += 200.0
        _thread.interrupt_main()
        assert go.wait(WAIT_S)
        return []

    return work


def test_a_ctrl_c_late_in_past_signals_wait_leaves_the_first_deadline(monkeypatch):
    """Unfixed, the wait after the Ctrl-C began again at the full limit: up to twice it."""
    now = _frozen_clock(monkeypatch, sequencer)
    go = threading.Event()
    seen = _waits_past_signals(monkeypatch, go)
    aside, put_off = sequencer.past_signals(_late_ctrl_c(now, go), 300.0)
    assert aside.done.is_set() and put_off is not None
    assert seen == [100.0]


def test_a_ctrl_c_late_in_a_close_s_wait_leaves_the_first_deadline(monkeypatch):
    rig = fake_rig()
    rig.close = lambda: None
    now = _frozen_clock(monkeypatch, sequencer, safe_close)
    go = threading.Event()
    seen = _waits_past_signals(monkeypatch, go)
    rig.make_safe = _late_ctrl_c(now, go)
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 300.0)
    with pytest.raises(KeyboardInterrupt):
        safe_close.make_safe_and_close(rig)
    assert seen == [100.0]


# -- a Ctrl-C inside the thread's start ---------------------------------------------------------


def _ctrl_c_as_the_first_thread_is_created(monkeypatch) -> None:
    """The first thread an `Aside` creates is cut short by a Ctrl-C before it exists."""
    calls: list[int] = []

    def thread(*args: object, **kw: object) -> threading.Thread:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("SIGINT")
        return threading.Thread(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(aside_module, "threading", types.SimpleNamespace(
        Thread=thread, Event=threading.Event, Lock=threading.Lock))


def test_a_ctrl_c_in_past_signals_thread_start_still_runs_the_work(monkeypatch):
    """Unfixed, no thread ran the work: the wait lasted to its limit, the rig not made
    safe, and the work reported as not ended."""
    _ctrl_c_as_the_first_thread_is_created(monkeypatch)
    aside, put_off = sequencer.past_signals(lambda: 42, 0.5)
    assert aside.done.is_set() and aside.result() == 42
    assert isinstance(put_off, KeyboardInterrupt)


def test_a_ctrl_c_in_a_close_s_thread_start_still_makes_the_rig_safe(monkeypatch):
    rig = fake_rig()
    done: list[str] = []
    rig.make_safe = lambda: done.append("made safe") or []
    rig.close = lambda: done.append("closed")
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.5)
    _ctrl_c_as_the_first_thread_is_created(monkeypatch)
    with pytest.raises(KeyboardInterrupt) as raised:
        safe_close.make_safe_and_close(rig)
    assert done == ["made safe", "closed"]
    assert not getattr(raised.value, "__notes__", [])  # no "rig NOT safe"


def test_a_ctrl_c_in_a_ramp_s_thread_start_still_makes_the_rig_safe(tmp_path, monkeypatch):
    """`Session.set_field`: the ramp, stopped before its thread ran, makes the rig safe.
    Unfixed, nothing ran: the wait lasted to its limit and said the ramp had not ended."""
    rig = fake_rig()
    rig.coils.set_field(np.array([0.0, 0.0, 5e-6]))  # a field from before
    session = Session(tmp_path / "s.h5", rig)
    monkeypatch.setattr(field_aside, "safe_wait_s", lambda _rig: 0.5)
    _ctrl_c_as_the_first_thread_is_created(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        session.set_field((0.0, 0.0, 10.0))
    assert session._safe_problems == []
    assert np.allclose(rig.coils.field(), 0.0)


def test_an_aside_started_again_runs_its_work_once():
    """A start made again (a signal cut the first short once its thread existed): the
    second thread finds the work taken and does nothing."""
    runs: list[int] = []
    go = threading.Event()

    def work() -> None:
        runs.append(1)
        assert go.wait(WAIT_S)

    aside = aside_module.Aside(work, "twice")
    aside.start()
    assert aside.began.wait(WAIT_S)
    aside.start()
    go.set()
    assert aside.done.wait(WAIT_S)
    assert runs == [1]


# -- the sequencer's making safe ------------------------------------------------------------------


def test_a_ctrl_c_as_make_safe_raises_is_raised_by_the_sequencer(tmp_path, met):
    """Unfixed, make_safe's error was kept as a problem and the Ctrl-C that came meanwhile
    dropped: the script went on."""
    seq = _sequencer(tmp_path)

    def failing() -> list[str]:
        _thread.interrupt_main()
        assert met.wait(WAIT_S)
        raise RuntimeError("coils: no reply (injected)")

    seq.rig.make_safe = failing
    with pytest.raises(KeyboardInterrupt):
        seq._make_safe_once()
    assert seq.safety_problems == ["make_safe raised RuntimeError: coils: no reply (injected)"]


def test_a_ctrl_c_as_a_failed_start_makes_the_rig_safe_says_what_is_not_safe(tmp_path, met):
    """Unfixed, the Ctrl-C was raised without the "rig NOT safe" note."""
    seq = _sequencer(tmp_path)

    def interrupting() -> list[str]:
        _thread.interrupt_main()
        assert met.wait(WAIT_S)
        return ["supply 2 did not answer"]

    seq.rig.make_safe = interrupting
    failed = RuntimeError("the lock-in refused the capture rate")
    with pytest.raises(KeyboardInterrupt) as raised:
        seq._make_safe_after(failed)
    notes = getattr(raised.value, "__notes__", [])
    assert any(n.startswith("rig NOT safe: supply 2 did not answer") for n in notes), notes


def test_a_ctrl_c_while_one_is_handled_is_not_raised_by_past_signals(met):
    """A making safe as a first Ctrl-C is handled: a second one meanwhile is only
    acknowledged, not handed back to be raised over the first."""
    def interrupting() -> int:
        _thread.interrupt_main()
        assert met.wait(WAIT_S)
        return 7

    try:
        raise KeyboardInterrupt("first")
    except KeyboardInterrupt:
        aside, put_off = sequencer.past_signals(interrupting, WAIT_S)
    assert met.is_set() and aside.result() == 7
    assert put_off is None


def _making_safe_held(tmp_path, monkeypatch) -> tuple[Sequencer, threading.Event]:
    """A sequencer whose rig's making safe holds until the event is set, given up on after
    0.05 s."""
    seq = _sequencer(tmp_path)
    go = threading.Event()

    def held() -> list[str]:
        assert go.wait(WAIT_S)
        return []

    seq.rig.make_safe = held
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 0.05)
    return seq, go


def test_a_making_safe_given_up_on_keeps_the_rig_from_being_handed_back(tmp_path,
                                                                     monkeypatch):
    """Given up on past its limit in the main thread, the making safe's thread still runs:
    unfixed, `hand_back_rig` took the sequencer's making safe at once and said it had ended,
    and the owner closed the rig beside that thread."""
    seq, go = _making_safe_held(tmp_path, monkeypatch)
    try:
        seq._make_safe_once()
        assert any("did not end within" in p for p in seq.safety_problems)
        assert not seq.hand_back_rig()
    finally:
        go.set()
    assert seq._safing.acquire(timeout=WAIT_S)  # released once that thread has ended


class _NoWaitLock:
    """`_safing` that fails the test where a call would wait for it."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        raise AssertionError("waited for the making safe given up on")

    def release(self) -> None:
        self._lock.release()


def test_a_rig_made_safe_already_is_not_waited_for_again_past_a_given_up_making_safe(
        tmp_path, monkeypatch):
    """A Ctrl-C as the entry is created: the wait for the file work makes the rig safe, then
    the start's own `except KeyboardInterrupt` again (nothing to do: it is safe). Unfixed,
    that second call waited the full limit again for the thread given up on."""
    seq, go = _making_safe_held(tmp_path, monkeypatch)
    try:
        seq._make_safe_once()
        given_up = list(seq.safety_problems)
        seq._safing = _NoWaitLock(seq._safing)
        assert seq._make_safe_once() is False
        assert seq.safety_problems == given_up
    finally:
        go.set()


def test_a_session_s_making_safe_given_up_on_is_not_closed_under(tmp_path, monkeypatch):
    """A signal during a session's file work: its making safe, given up on past its limit,
    still runs. Unfixed, the close took its problems as final and closed the rig's links
    at once, under that thread (`Rig.close` does not wait for the rig's making safe)."""
    rig = fake_rig()
    session = Session(tmp_path / "s.h5", rig)
    go = threading.Event()
    closed_while_held: list[bool] = []
    safing = threading.Lock()  # the rig's own, held by its making safe

    def held() -> list[str]:
        with safing:
            assert go.wait(WAIT_S)
            return []

    close = rig.close

    def spied_close() -> None:
        closed_while_held.append(not go.is_set())
        close()

    rig.make_safe = held
    rig.close = spied_close
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 0.05)
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.05)
    try:
        session._make_safe()
        problems = session.close()
        assert any("did not end within" in p for p in problems), problems
    finally:
        go.set()
    assert True not in closed_while_held


def test_a_ctrl_c_as_a_making_safe_is_given_up_on_leaves_it_held_until_it_ends(
        tmp_path, monkeypatch):
    """A second Ctrl-C right as the wait for a making safe given up on returns (before the
    caller has handed its hold on the rig to anything). Unfixed, `_safing` was released at
    once, the making safe still running: the rig could be handed back from under it."""
    seq, go = _making_safe_held(tmp_path, monkeypatch)
    waited = sequencer.past_signals

    def interrupted(*args: object, **kw: object) -> object:
        waited(*args, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt("SIGINT")

    monkeypatch.setattr(sequencer, "past_signals", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            seq._make_safe_once()
        assert not seq.hand_back_rig()
    finally:
        go.set()
    assert seq._safing.acquire(timeout=WAIT_S)  # given back once that thread has ended


def test_a_ctrl_c_as_a_thread_is_made_to_give_the_hold_back_leaves_none(tmp_path,
                                                                     monkeypatch):
    """A second Ctrl-C as the sequencer made a thread to give `_safing` back once a making
    safe given up on ends (`_safing_left` cleared, the thread not yet started). Unfixed,
    nothing gave it back: every later making safe and close waited its limit and said the
    rig was not safe."""
    seq, go = _making_safe_held(tmp_path, monkeypatch)

    def thread(*args: object, **kw: object) -> threading.Thread:
        raise KeyboardInterrupt("SIGINT")

    monkeypatch.setattr(sequencer, "threading", types.SimpleNamespace(
        **{**vars(threading), "Thread": thread}))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            seq._make_safe_once()
        assert seq._safing_held_for is not None
    finally:
        go.set()
    assert seq._safing_held_for.wait(WAIT_S)
    assert seq._safing.acquire(timeout=1.0)


def test_a_failed_start_s_making_safe_is_not_run_beside_one_given_up_on(tmp_path,
                                                                    monkeypatch):
    """A start that fails (its file work, say) as an earlier making safe, given up on, still
    runs. Unfixed, `_make_safe_after` ran `make_safe` in a second thread beside it, without
    the sequencer's `_safing`: two threads commanding the coils at once."""
    seq, go = _making_safe_held(tmp_path, monkeypatch)
    held = seq.rig.make_safe
    calls: list[int] = []
    seq.rig.make_safe = lambda: calls.append(1) or held()
    failed = RuntimeError("the file could not be written")
    try:
        seq._make_safe_once()
        seq._make_safe_after(failed)
        assert calls == [1]
    finally:
        go.set()
    assert any("did not end within" in n for n in failed.__notes__)


def test_a_start_failing_once_its_rig_was_handed_back_leaves_the_rig_alone(tmp_path):
    """A close from another thread hands the rig back past the start's stalled file work,
    which then fails. Unfixed, `_make_safe_after` made the rig safe again, on links its
    owner had closed (or a rig it had since handed to another scan)."""
    seq = _sequencer(tmp_path)
    assert seq.hand_back_rig()
    seq._make_safe_after(RuntimeError("the file could not be written"))
    assert seq.rig.safe_calls == 0


def test_a_ctrl_c_in_file_work_s_thread_start_does_not_wait_for_work_never_run(monkeypatch):
    """`wait_aside`: a Ctrl-C before the file work's thread existed makes the rig safe and
    is raised, the work never run. Unfixed, it waited `WRITE_STALLED_S` for work that no
    thread would run."""
    _ctrl_c_as_the_first_thread_is_created(monkeypatch)
    waits: list[float | None] = []
    wait = sequencer.wait_awake

    def spy(done: threading.Event, timeout: float | None = None) -> bool:
        waits.append(timeout)
        return wait(done, timeout)

    monkeypatch.setattr(sequencer, "wait_awake", spy)
    ran: list[int] = []
    made_safe: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        sequencer.wait_aside(lambda: ran.append(1), "file work",
                             make_safe=lambda: made_safe.append(1),
                             stalled=lambda: AssertionError("told stalled"))  # type: ignore[arg-type,return-value]
    assert made_safe == [1] and ran == []
    assert sequencer.WRITE_STALLED_S not in waits


class _TakenAsASignalCame:
    """`_safing`, a Ctrl-C meeting the main thread as soon as it has taken it (between the
    acquire's return and the `try` after it); elsewhere a plain lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        taken = self._lock.acquire(blocking, timeout)
        if taken and threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt("SIGINT")
        return taken

    def release(self) -> None:
        self._lock.release()


@pytest.mark.parametrize("hold", ["hand_back_rig", "_make_safe_once"])
def test_a_ctrl_c_as_the_main_thread_takes_the_making_safe_leaves_it_free(tmp_path, hold):
    """Unfixed, `_safing` was taken in the caller's thread: a Ctrl-C there just after left it
    held for good, every later making safe and close waiting its limit and saying the rig was
    not safe."""
    seq = _sequencer(tmp_path)
    seq._safing = _TakenAsASignalCame()
    with contextlib.suppress(KeyboardInterrupt):
        getattr(seq, hold)()
    assert seq._safing._lock.acquire(timeout=1.0)


class _HeldElsewhere:
    """`_safing` held by another thread's making safe: every wait for it runs out at once."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return False

    def release(self) -> None:
        raise AssertionError("released without being taken")


def test_a_making_safe_held_off_by_another_says_the_time_it_waited(tmp_path, monkeypatch):
    """`_safing` not taken within `hand_back_wait_s` (another thread's making safe holds it):
    the rig NOT safe, for the time it was waited for. Unfixed, it said twice that time (the
    wait for the lock and for a making safe never begun, counted together)."""
    seq = _sequencer(tmp_path)
    seq._safing = _HeldElsewhere()  # type: ignore[assignment]
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 40.0)
    assert seq._make_safe_once(again=True) is False
    assert seq.safety_problems == [sequencer._not_ended(40.0)]
    assert seq.rig.safe_calls == 0


def test_a_ctrl_c_as_the_command_line_makes_a_scan_s_rig_safe_is_told_the_bound(tmp_path,
                                                                                 monkeypatch,
                                                                                 capfd):
    """The command line's Ctrl-C (`interrupts.installed`) while the sequencer makes the rig
    safe in its thread: acknowledged with the time left, the rig's bound (what `smm-daq safe`
    prints, `hand_back_wait_s`), then raised once it is safe. Unfixed, the sequencer's own
    hold of `_safing` claimed twice the bound, and the signal was told that."""
    seq = _sequencer(tmp_path)
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 40.0)

    def made_safe() -> list[str]:  # as `Rig.make_safe`: its path is bounded by 40 s
        with interrupts.making_safe(40.0):
            signal.raise_signal(signal.SIGINT)
        return []

    seq.rig.make_safe = made_safe
    with interrupts.installed(), pytest.raises(KeyboardInterrupt):
        seq._make_safe_once()
    assert seq.safety_problems == []
    err = capfd.readouterr().err
    assert "SIGINT: making the rig safe, at most 40 s left" in err, err
