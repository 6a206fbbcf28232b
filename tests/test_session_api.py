"""The scripted Session API: arrays back, field defaults, safe exits, pause policy."""

from __future__ import annotations

import re

import numpy as np
import pytest
from acq_fakes import fake_rig, gradient_bz

from simulators.sample import VirtualSample
from smm_daq.acquisition.plan import GridSizeWarning
from smm_daq.acquisition.session import ScanNotFinished, Session, SessionStillOpenWarning
from smm_daq.errors import InputError, InstrumentError
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.safe_bound import switch_off_tail_s
from smm_daq.storage.nexus import list_entries

C_UM = (12500.0, 12500.0)


def test_scan_returns_the_map(tmp_path):
    rig = fake_rig()
    s = Session(tmp_path / "s.h5", rig)
    m = s.scan("a", center_um=C_UM, size_um=(40, 20), step_um=10)
    assert m.shape == (3, 5) and m.name == "a"
    expected = np.array([[gradient_bz(x, y) for x in m.x] for y in m.y])
    np.testing.assert_allclose(m.bz, expected, atol=1e-15)
    np.testing.assert_allclose(s.read("a").bz, m.bz)


def test_a_size_of_no_whole_number_of_steps_is_warned_of_naming_the_area_scanned(tmp_path):
    s = Session(tmp_path / "s.h5", fake_rig())
    with pytest.warns(GridSizeWarning, match=r"'a'.*45 × 20 µm is no whole number of steps of "
                      r"10 µm.*covers 40 × 20 µm instead") as caught:
        m = s.scan("a", center_um=C_UM, size_um=(45, 20), step_um=10)
    assert m.shape == (3, 5) and len(caught) == 1
    assert caught[0].filename == __file__  # pointed at the script's call, not the library


def test_set_field_is_applied_now_and_to_later_scans(tmp_path):
    rig = fake_rig()
    s = Session(tmp_path / "s.h5", rig)
    s.set_field((0, 40, 0))
    np.testing.assert_allclose(rig.coils.setpoint, [0, 40e-6, 0])
    m = s.scan("a", center_um=C_UM, size_um=(20, 0), step_um=10)
    np.testing.assert_allclose(m.applied_field, [0, 40e-6, 0])
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)  # safe after the scan
    s.zero_field()
    assert s.scan("b", center_um=C_UM, size_um=(20, 0), step_um=10).applied_field.tolist() == [
        0.0,
        0.0,
        0.0,
    ]


def test_set_field_beyond_the_limit_is_refused_without_touching_the_coils(tmp_path):
    rig = fake_rig()
    s = Session(tmp_path / "s.h5", rig)
    with pytest.raises(InputError, match="max_field 100 µT"):
        s.set_field((0, 0, 200))
    assert rig.coils.history == []


def test_a_failing_scan_raises_and_leaves_the_rig_safe(tmp_path):
    rig = fake_rig()
    rig.fluxgate.bias = np.array([1e-6, 0, 0])
    s = Session(tmp_path / "s.h5", rig)
    with pytest.raises(ScanNotFinished, match="scan 'a' failed: SafetyError: field verification"):
        s.scan("a", center_um=C_UM, size_um=(20, 20), step_um=10, field_uT=(0, 40, 0))
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)


def test_pauses_go_to_the_pause_handler(tmp_path):
    rig = fake_rig()
    rig.lockin.overload_reads.update({3, 4, 7, 8})
    reasons = []
    s = Session(tmp_path / "s.h5", rig, on_pause=lambda r: reasons.append(r) or True)
    m = s.scan("a", center_um=C_UM, size_um=(40, 20), step_um=10)
    assert reasons == ["lock-in overload", "lock-in overload"]
    assert np.isfinite(m.bz).all()


def test_without_an_operator_a_pause_aborts_and_resume_finishes(tmp_path):
    rig = fake_rig()
    rig.lockin.overload_reads.update({8, 9})
    s = Session(tmp_path / "s.h5", rig)
    expected = r"paused \(lock-in overload\), then aborted with no operator.*smm-daq resume"
    with pytest.raises(ScanNotFinished, match=expected):
        s.scan("a", center_um=C_UM, size_um=(40, 20), step_um=10)
    assert list_entries(tmp_path / "s.h5")[0].status == "aborted"
    m = Session(tmp_path / "s.h5", fake_rig()).resume("a")
    expected = np.array([[gradient_bz(x, y) for x in m.x] for y in m.y])
    np.testing.assert_allclose(m.bz, expected, atol=1e-15)


def test_leaving_the_with_block_makes_the_rig_safe_even_on_error(tmp_path):
    rig = fake_rig()
    closed = []
    rig.close = lambda: closed.append(True)
    with pytest.raises(ZeroDivisionError), Session(tmp_path / "s.h5", rig) as s:
        s.set_field((0, 40, 0))
        raise ZeroDivisionError
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    assert closed == [True] and rig.safe_calls == 1


def test_closing_after_a_clean_scan_does_not_make_the_rig_safe_again(tmp_path):
    """The scan's end made the rig safe, every step done, and nothing touched it since: the
    close only closes it (no second ramp-down, nothing slower)."""
    rig = fake_rig()
    s = Session(tmp_path / "s.h5", rig)
    s.scan("a", center_um=C_UM, size_um=(20, 0), step_um=10, field_uT=(0, 40, 0))
    assert rig.safe_calls == 1
    assert s.close() == [] and rig.safe_calls == 1


def test_what_a_scans_end_could_not_make_safe_is_said_at_the_close_not_tried_again(tmp_path):
    """The scan's end tried every step and a supply did not answer: the close says so (the
    command then names `smm-daq safe`) rather than try once more, which would double the
    time a supervisor must allow the command to end in."""
    rig = fake_rig()
    s = Session(tmp_path / "s.h5", rig)
    rig.safe_problems = ["field not ramped down: no reply"]
    s.scan("a", center_um=C_UM, size_um=(20, 0), step_um=10, field_uT=(0, 40, 0))
    assert s.close() == ["field not ramped down: no reply"] and rig.safe_calls == 1


def test_session_on_the_simulator_gives_back_the_induced_map(tmp_path):
    """Remanent, in-field and their difference for one grain of known susceptibility."""
    chi = 5.0
    sample = VirtualSample(
        np.array([[12.5e-3, 12.5e-3, -40e-6, 60e-6, 60e-6, 60e-6]]),
        np.array([0]),
        np.array([[0.0, 0.0, 2e3]]),
        np.array([chi]),
    )
    with Session.open(tmp_path / "s.h5", world_options={"sample": sample, "noise_rms": 0.0}) as s:
        kw = {"center_um": C_UM, "size_um": (200, 200), "step_um": 40}
        s.zero_field()
        s.scan("rem", **kw)
        s.scan("inf", field_uT=(0, 0, 40), **kw)
        induced = s.subtract("inf", "rem", "ind", register=False)
        world = s.rig.world
        currents = world.coils.currents(s.rig.clock.now())
    # independent truth: the grain magnetized by the field alone, plus the applied z field itself
    only_induced = VirtualSample(
        sample.cuboids, sample.grain, np.array([[0.0, 0.0, 0.0]]), np.array([chi])
    )
    xx, yy = np.meshgrid(induced.x, induced.y)
    sensors = np.c_[xx.ravel(), yy.ravel(), np.full(xx.size, induced.height)]
    b = np.array([0, 0, 40e-6])
    truth = only_induced.bz_true(sensors, s.profile.sensor.active_area, b).reshape(xx.shape)
    truth += b[2]
    # the two scans' residual ambient fields (tens of nT) are the only difference left
    np.testing.assert_allclose(induced.bz, truth, atol=0.1e-6)
    # a cube's χ_eff = χ / (1 + χ/3) ≈ 1.9: its induced field spans 0.7 µT, 7 × the tolerance
    assert np.ptp(truth) > 0.6e-6
    assert np.allclose(currents, 0.0)


def test_zero_field_on_a_slow_link_ends_within_the_make_safe_bound(tmp_path, monkeypatch):
    """zero_field on the simulator, the supplies' links slow (2.5 s a message on the rig's
    clock, within their timeout) and the make-safe path's deadline 5 s (monkeypatched, so
    that the ramp-down outlasts it): it ramps by the bounded make-safe path, so at the
    deadline each supply still energised is switched off where it stands, said, and it ends
    within the bound; every supply ends off or at its safe current. Unfixed, it ramped
    outside any deadline, as long as the link made it (a minute here)."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 5.0)
    with Session.open(tmp_path / "s.h5") as s:
        rig = s.rig
        s.set_field((0, 100, 0))  # 2 A in coil y
        for supply in rig.coils._supplies:
            supply.link.transport.latency = 2.5
        began = rig.clock.now()
        with pytest.raises(InstrumentError, match=r"deadline reached") as info:
            s.zero_field()
        assert rig.clock.now() - began <= 5.0 + switch_off_tail_s(rig.profile)
        assert "switched off at" in str(info.value)
        coils = rig.world.coils
        safe = np.linalg.solve(rig.profile.coils.calibration, -rig.profile.coils.ambient_field)
        for k in range(3):
            assert not coils.output(k) or abs(coils.current(k) - safe[k]) < 2e-3, k
        for supply in rig.coils._supplies:
            supply.link.transport.latency = 0.0


def test_an_on_event_that_raises_is_warned_of_at_the_scan_s_end(tmp_path):
    """A script's live plot that raises does not stop the scan, but is not dropped unseen
    either: one warning at the script's line names the count and the first exception."""
    from smm_daq.acquisition.session import EventCallbackWarning

    def broken_plot(event):
        if event.kind == "line_done":
            raise KeyError("bz_max")

    s = Session(tmp_path / "s.h5", fake_rig())
    with pytest.warns(EventCallbackWarning, match=r"scan 'a': on_event raised for 3 events "
                      r"\(the scan went on\); the first: "
                      r"KeyError: 'bz_max' at .*test_session_api\.py:\d+") as caught:
        m = s.scan("a", center_um=C_UM, size_um=(40, 20), step_um=10, on_event=broken_plot)
    assert np.isfinite(m.bz).all() and len(caught) == 1
    assert caught[0].filename == __file__


def test_a_session_the_script_never_closes_is_made_safe_as_the_program_ends(
        tmp_path, monkeypatch, capsys):
    """No `with` and an error before `close()`: the field set is ramped down at the
    program's end (atexit), and said; a session closed is not closed again then."""
    import atexit

    at_exit: list = []
    monkeypatch.setattr(atexit, "register", at_exit.append)
    monkeypatch.setattr(atexit, "unregister", lambda f: at_exit.remove(f) if f in at_exit
                        else None)
    rigs = [fake_rig(), fake_rig()]
    profile = rigs[0].profile
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    forgotten = Session.open(tmp_path / "a.h5", profile)
    forgotten.set_field((0, 40, 0))
    with pytest.warns(SessionStillOpenWarning), Session.open(tmp_path / "b.h5", profile):
        pass
    assert len(at_exit) == 1
    at_exit[0]()  # as the program ends
    np.testing.assert_array_equal(forgotten.rig.coils.setpoint, 0.0)
    err = capsys.readouterr().err
    assert f"the session on {tmp_path / 'a.h5'} was not closed; making the rig safe" in err
    assert "smm-daq: the rig is safe" in err


@pytest.mark.parametrize(("keys", "said"), [
    ({"size_um": 600}, "size_um is 600; expected 2 numbers (width, height in µm)"),
    ({"center_um": "12500,12500"}, "center_um is '12500,12500'; expected 2 numbers"),
    ({"center_um": (12500, 12500, 100)}, "center_um is (12500, 12500, 100); expected 2 numbers"),
    ({"step_um": [10]}, "step_um is [10]; expected a number or 2 numbers"),
    ({"field_uT": (0, 40)}, "field_uT is (0, 40); expected 3 numbers (bx, by, bz in µT)"),
], ids=["size-scalar", "center-text", "center-xyz", "step-one-in-a-list", "field-two"])
def test_a_scan_s_malformed_coordinates_are_refused_naming_the_keyword(tmp_path, keys, said):
    """A script's slip (a square's size as one number, a z in the centre) is refused naming
    the keyword and what was expected, before anything moves: not a TypeError or IndexError
    from inside the plan, nor a third coordinate dropped unsaid."""
    rig = fake_rig()
    s = Session(tmp_path / "s.h5", rig)
    with pytest.raises(InputError, match="^" + re.escape(said)):
        s.scan("a", **{"center_um": C_UM, "size_um": (40, 20), "step_um": 10, **keys})
    with pytest.raises(InputError, match="field_uT is 40; expected 3 numbers"):
        s.set_field(40)
    assert rig.stage.visits == [] and rig.coils.history == []


def test_sigterm_to_a_script_makes_the_rig_safe_as_ctrl_c_does(tmp_path, monkeypatch):
    """A script's session takes SIGTERM where the script left it at the system's default
    (which ends the process at once, the field left on): it stops what runs as Ctrl-C does,
    the `with` block making the rig safe; the default is back once the session is closed."""
    import signal

    from smm_daq import interrupts

    rig = fake_rig()
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rig)
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        interrupts.reset()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"), \
                Session.open(tmp_path / "s.h5", rig.profile) as s:
            s.set_field((0, 40, 0))
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler)  # as a `kill` of the script would call it
            handler(signal.SIGTERM, None)
        np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)
        interrupts.reset()


def test_a_session_file_no_scan_could_write_is_refused_before_the_rig_connects(
        tmp_path, monkeypatch):
    """A path in a folder that does not exist (or a file that is not a session file) was
    found only by the first scan, after the rig had connected and the field was set, with
    HDF5's message on a hidden file's name; now `Session.open` refuses it as `--out` is."""
    def never(*_a, **_kw):
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(rig_module, "open_rig", never)
    missing = tmp_path / "no-such-folder" / "s.h5"
    with pytest.raises(InputError, match=f"there is no directory {re.escape(str(missing.parent))}"
                       "; expected a file in a folder that exists"):
        Session.open(missing)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a session file\n")
    with pytest.raises(InputError, match="exists and is not an HDF5 file"):
        Session.open(notes)


def test_a_script_flies_a_scan_as_the_scan_command_does(tmp_path, monkeypatch):
    """`Session.scan` takes the `scan` command's fly options (the docs say scripted use goes
    through the same steps); one without `fly` is refused, as --pixel-time-s without --fly."""
    from smm_daq.acquisition.fly.settings import FlySettings

    planned = []
    monkeypatch.setattr(Session, "scan_plan", lambda self, plan, **_: planned.append(plan))
    s = Session(tmp_path / "s.h5", fake_rig())
    grid = {"center_um": C_UM, "size_um": (40, 20), "step_um": 10}
    s.scan("a", **grid, fly=True, pixel_time_s=0.1, line_baselines=True)
    s.scan("b", **grid, fly=True)
    s.scan("c", **grid)
    assert [p.fly for p in planned] == [
        FlySettings(pixel_time=0.1, oversample=8, baselines=True), FlySettings(0.05), None]
    with pytest.raises(InputError, match=r"^oversample is given, but fly is False; expected "
                                         r"fly=True"):
        s.scan("d", **grid, oversample=16)


def test_a_session_closed_at_exit_is_made_safe_though_stderr_is_gone(tmp_path, monkeypatch):
    """The SIGHUP of a closed ssh session ends a script whose stderr is the terminal gone with
    it: the words said at exit cannot be written (EIO), yet the rig is made safe."""
    import errno

    class Gone:
        def write(self, _text):
            raise OSError(errno.EIO, "Input/output error")

        def flush(self):
            raise OSError(errno.EIO, "Input/output error")

    rig = fake_rig()
    forgotten = Session(tmp_path / "a.h5", rig)
    forgotten.set_field((0, 40, 0))
    monkeypatch.setattr("sys.stderr", Gone())
    forgotten._close_at_exit()
    np.testing.assert_array_equal(rig.coils.setpoint, 0.0)


def test_a_session_opened_in_a_thread_does_not_unroute_another_s_sigterm(tmp_path, monkeypatch):
    """A session opened off the main thread routes no signal (Python lets only the main
    thread set handlers), so its close leaves SIGTERM routed for the script's own session
    still open, not put back to the default that ends the process with the field on."""
    import signal
    import threading

    from smm_daq import interrupts

    rigs = [fake_rig(), fake_rig()]
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    profile = rigs[0].profile
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        opened = []
        worker = threading.Thread(
            target=lambda: opened.append(Session.open(tmp_path / "w.h5", profile)))
        worker.start()
        worker.join()
        with pytest.warns(SessionStillOpenWarning), Session.open(tmp_path / "s.h5", profile):
            opened[0].close()
            assert signal.getsignal(signal.SIGTERM) == interrupts._handle
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)
        interrupts.reset()


def test_a_session_closed_from_another_thread_leaves_sigterm_to_end_the_process(
        tmp_path, monkeypatch):
    """A session opened on the main thread and closed from another (a notebook's background
    thread, a window's worker), where Python sets no handler: a SIGTERM after it goes to the
    system's default (ends the process) as before the session, not taken as Ctrl-C; and the
    main thread's next session routes and puts it back as usual. Unfixed, SIGTERM stayed
    routed as if the session were open, a KeyboardInterrupt for good."""
    import signal
    import threading

    from smm_daq import interrupts

    rigs = [fake_rig(), fake_rig(), fake_rig()]
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    profile = rigs[0].profile
    passed_on: list[int] = []
    monkeypatch.setattr(signal, "raise_signal", passed_on.append)  # the default ends pytest

    def closed_elsewhere(name: str) -> None:
        s = Session.open(tmp_path / name, profile)
        s.set_field((0, 40, 0))
        closer = threading.Thread(target=s.close)
        closer.start()
        closer.join()
        np.testing.assert_array_equal(s.rig.coils.setpoint, 0.0)

    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        interrupts.reset()
        closed_elsewhere("s.h5")
        with Session.open(tmp_path / "t.h5", profile):  # the main thread's next session
            assert signal.getsignal(signal.SIGTERM) == interrupts._handle
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        closed_elsewhere("u.h5")
        handler = signal.getsignal(signal.SIGTERM)
        if handler != signal.SIG_DFL:  # left to the main thread to put back
            assert callable(handler)
            handler(signal.SIGTERM, None)  # as a `kill` would call it: no KeyboardInterrupt
            assert passed_on == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        assert not interrupts.interrupted()
    finally:
        signal.signal(signal.SIGTERM, before)
        interrupts.reset()


@pytest.mark.parametrize("elsewhere", [False, True])
def test_a_kill_while_a_session_s_close_makes_the_rig_safe_ends_the_script_after_it(
        tmp_path, monkeypatch, elsewhere):
    """A batch system's SIGTERM lands in the ramp-down of a session's close (on the main
    thread, or from another): it is only acknowledged then, the ramp-down not cut short, and
    once the rig is safe and no session holds SIGTERM it goes to the handler the script left
    (the default ends the process). Unfixed, it was dropped with the close: the script went
    on, a loop opening its next session and ramping its field up again until a SIGKILL."""
    import os
    import signal
    import threading

    from smm_daq import interrupts

    rig = fake_rig()
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rig)
    acknowledged = threading.Event()
    said = interrupts.acknowledge
    monkeypatch.setattr(interrupts, "acknowledge",
                        lambda name: (said(name), acknowledged.set()))
    passed_on: list[int] = []
    monkeypatch.setattr(signal, "raise_signal", passed_on.append)  # the default ends pytest
    make_safe = rig.make_safe

    def killed_then_made_safe():
        if not acknowledged.is_set():  # the batch system's kill, in the close's ramp-down
            os.kill(os.getpid(), signal.SIGTERM)
            assert acknowledged.wait(10)
        return make_safe()

    monkeypatch.setattr(rig, "make_safe", killed_then_made_safe)
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        interrupts.reset()
        s = Session.open(tmp_path / "s.h5", rig.profile)
        s.set_field((0, 40, 0))
        if elsewhere:
            closer = threading.Thread(target=s.close)
            closer.start()
            closer.join()
        else:
            assert s.close() == []
        np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
        assert acknowledged.is_set()
        assert passed_on == [signal.SIGTERM]
        if elsewhere:  # as the main thread is then sent it: passed on, the handler put back
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)
        interrupts.reset()


def test_a_notebook_cell_opening_a_session_run_again_is_refused_naming_the_open_one(
        tmp_path, monkeypatch):
    """`s = Session.open(...)` run twice on a real rig: the second is refused before it
    connects, naming the first (its file, its coils' field) and how to close it with no name
    for it, `Session.close_all()`, which makes its rig safe; then a session opens again.
    Unfixed, only the rig lock refused it, naming this process but not the session."""
    from dataclasses import replace

    from smm_daq.instruments.rig_lock import RigInUse

    real = replace(fake_rig().profile, simulated=False)
    rigs = [fake_rig(profile=real), fake_rig(profile=real)]  # a session's profile is its rig's
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    first = Session.open(tmp_path / "a.h5", real)
    try:
        first.set_field((0, 40, 0))
        with pytest.raises(RigInUse) as refused:
            Session.open(tmp_path / "b.h5", real)
        said = str(refused.value)
        assert said.startswith(f"Session.open: the session on {tmp_path / 'a.h5'} opened at ")
        assert "its coils last set to (0, 40, 0) µT is still open on this rig's instruments" \
            in said
        assert "`Session.close_all()` makes the rig safe and closes every session" in said
        assert len(rigs) == 1  # nothing connected
        assert Session.open_sessions() == (first,)
        assert Session.close_all() == []
        np.testing.assert_array_equal(first.rig.coils.setpoint, 0.0)
        assert Session.open_sessions() == ()
        with Session.open(tmp_path / "b.h5", real) as second:
            assert Session.open_sessions() == (second,)
    finally:
        first.close()


def test_a_simulated_session_opened_again_beside_an_open_one_is_warned_of(tmp_path,
                                                                        monkeypatch):
    """On the simulator each session has a world of its own: the second opens, warned that
    the first is still open and how to close both. Unfixed, nothing was said, and the first
    (its field on) had no name left once `s` was bound to the second."""
    rigs = [fake_rig(), fake_rig()]
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    profile = rigs[0].profile
    s = Session.open(tmp_path / "s.h5", profile)
    s.set_field((0, 40, 0))
    with pytest.warns(SessionStillOpenWarning, match=re.escape(
            f"the session on {tmp_path / 's.h5'} opened at ")) as caught:
        s = Session.open(tmp_path / "s.h5", profile)
    assert caught[0].filename == __file__
    assert "Session.close_all()" in str(caught[0].message)
    first, second = Session.open_sessions()
    assert second is s and "open since" in repr(first)
    assert Session.close_all() == []
    np.testing.assert_array_equal(first.rig.coils.setpoint, 0.0)
    assert Session.open_sessions() == ()


def test_a_simulated_session_left_open_does_not_refuse_the_real_rig(tmp_path, monkeypatch):
    """A notebook tries its script on the simulator (whose profile names the lab's addresses,
    as configs/simulator.toml and configs/example-lab.toml do), leaves that session open and
    opens the real rig: a simulated session holds no instrument, so the real rig opens.
    Unfixed, it was refused with RigInUse, "still open on this rig's instruments"."""
    from dataclasses import replace

    simulated = fake_rig().profile
    assert simulated.simulated
    rigs = [fake_rig(), fake_rig(profile=replace(simulated, simulated=False))]
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    tried = Session.open(tmp_path / "sim.h5", simulated)
    try:
        with Session.open(tmp_path / "real.h5", rigs[0].profile) as real:
            assert Session.open_sessions() == (tried, real)
    finally:
        tried.close()


def test_close_all_makes_every_rig_safe_though_one_close_raises(tmp_path, monkeypatch):
    """`close_all` with a first session whose rig's close raises (the error `close` passes
    on, its rig made safe before): the sessions after it are closed and made safe all the
    same, and the error is raised once they are, noting what could not be made safe. Unfixed,
    the loop ended at the first error, the later sessions left open with their field on."""
    rigs = [fake_rig(), fake_rig()]
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    profile = rigs[0].profile
    first = Session.open(tmp_path / "a.h5", profile)
    with pytest.warns(SessionStillOpenWarning):
        second = Session.open(tmp_path / "b.h5", profile)
    second.set_field((0, 40, 0))

    def fails() -> None:
        raise OSError("the link's close failed")

    monkeypatch.setattr(first.rig, "close", fails)
    make_safe = second.rig.make_safe
    monkeypatch.setattr(second.rig, "make_safe", lambda: [*make_safe(), "stage: no reply"])
    with pytest.raises(OSError, match="the link's close failed") as raised:
        Session.close_all()
    np.testing.assert_array_equal(second.rig.coils.setpoint, 0.0)
    assert Session.open_sessions() == ()
    assert raised.value.__notes__ == [f"rig NOT safe: {tmp_path / 'b.h5'}: stage: no reply"]


def test_the_session_s_field_reads_in_tesla_and_in_microtesla(tmp_path):
    """`set_field` takes µT and `field` has always held T (a script reading it goes on
    reading T): `field_uT` gives it in the unit it was set in, without float noise."""
    s = Session(tmp_path / "s.h5", fake_rig())
    assert s.field_uT == (0.0, 0.0, 0.0)
    s.set_field((0, -63.2, 40))
    assert s.field == pytest.approx((0.0, -63.2e-6, 40e-6), abs=1e-15)
    assert s.field_uT == (0.0, -63.2, 40.0)
    s.zero_field()
    assert s.field_uT == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(("keys", "said"), [
    ({"oversample": 8.0}, "oversample is 8.0; expected a whole number of lock-in samples"),
    ({"line_baselines": "no"}, "line_baselines is 'no'; expected True or False"),
    ({"pixel_time_s": "0.1"}, "pixel_time_s is '0.1'; expected a time in s"),
], ids=["oversample-float", "baselines-text", "pixel-time-text"])
def test_a_fly_keyword_of_the_wrong_kind_is_refused_naming_it(tmp_path, monkeypatch, keys,
                                                              said):
    """8.0 samples would be stored as the plan's and read back as damage by a resume, "no"
    would fly with baselines on, text would be a TypeError from inside the plan: each is
    refused naming the keyword before anything moves."""
    monkeypatch.setattr(Session, "scan_plan", lambda *_a, **_kw: pytest.fail("scanned"))
    s = Session(tmp_path / "s.h5", fake_rig())
    with pytest.raises(InputError, match="^" + re.escape(said)):
        s.scan("a", center_um=C_UM, size_um=(40, 20), step_um=10, fly=True, **keys)


def test_sigterm_while_a_scan_s_end_makes_the_rig_safe_stops_the_script_after_it(
        tmp_path, monkeypatch):
    """A kill that lands in the ramp-down every scan ends with is only acknowledged then (the
    ramp-down is not cut short), but it still stops the script once the rig is safe: not
    swallowed, the next scan run and every later SIGTERM only acknowledged until SIGKILL."""
    import os
    import signal
    import threading

    from smm_daq import interrupts

    rig = fake_rig()
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rig)
    acknowledged = threading.Event()
    said = interrupts.acknowledge
    monkeypatch.setattr(interrupts, "acknowledge",
                        lambda name: (said(name), acknowledged.set()))
    fake_make_safe = rig.make_safe

    def make_safe():
        with interrupts.making_safe(30.0):
            if not acknowledged.is_set():  # the batch system's kill, in the ramp-down
                os.kill(os.getpid(), signal.SIGTERM)
                assert acknowledged.wait(10)
            return fake_make_safe()

    monkeypatch.setattr(rig, "make_safe", make_safe)
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    grid = {"center_um": C_UM, "size_um": (20, 0), "step_um": 10}
    try:
        interrupts.reset()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"), \
                Session.open(tmp_path / "s.h5", rig.profile) as s:
            s.scan("a", **grid)
            s.scan("b", **grid)
        assert {e.name for e in list_entries(tmp_path / "s.h5")} <= {"a"}
        np.testing.assert_array_equal(rig.coils.setpoint, 0.0)
    finally:
        signal.signal(signal.SIGTERM, before)
        interrupts.reset()


def test_two_closes_of_one_session_at_once_give_its_signals_back_once(tmp_path, monkeypatch):
    """`close_all` and a background thread's `s.close()` at the same moment: both read that
    the session routes SIGTERM before either says it no longer does (the race is replayed
    here in one thread: the other close runs between the first's read and its write). Given
    back twice, the count of sessions holding the signals drops for a session still open on
    the main thread too, and a SIGTERM then ends the process with that session's field on."""
    from smm_daq import interrupts

    class Racing(Session):
        racing = True

        @property
        def _routes_signals(self) -> bool:
            value = self._routes
            if Racing.racing and value:
                Racing.racing = False
                self.close()  # the other thread's close, between this read and the write
            return value

        @_routes_signals.setter
        def _routes_signals(self, value: bool) -> None:
            self._routes = value

    rigs = [fake_rig(), fake_rig()]
    monkeypatch.setattr(rig_module, "open_rig", lambda profile, **_: rigs.pop(0))
    profile = rigs[0].profile
    given_back: list[int] = []
    unroute = interrupts.unroute_termination
    monkeypatch.setattr(interrupts, "unroute_termination",
                        lambda: (given_back.append(1), unroute())[1])
    interrupts.reset()
    try:
        with Session.open(tmp_path / "kept.h5", profile):
            with pytest.warns(SessionStillOpenWarning):  # a simulated rig beside it
                raced = Racing.open(tmp_path / "raced.h5", profile)
            raced.close()
            assert given_back == [1]
    finally:
        interrupts.reset()
