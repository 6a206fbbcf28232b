"""The command line when a write to the session file stalls once the rig is safe (on Ctrl-C, or
at the scan's end): it ends with exit code 3, the rig made safe and closed, saying what was
left unwritten, and never waits for the write (a GUI's: test_gui_stalled_disk)."""

from __future__ import annotations

import _thread
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from smm_daq.acquisition import safe_close, sequencer
from smm_daq.cli.main import EXIT_WRITE_STALLED, main
from smm_daq.storage.h5file import open_read
from smm_daq.storage.scan_entry import ScanEntryWriter

FIELD = 20e-6  # T, left on by a making safe not yet ended
SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "40,40", "--step-um", "20",
        "--name", "held"]


def _stall(monkeypatch, method: str, holds) -> tuple[threading.Event, threading.Event]:
    """`ScanEntryWriter.<method>` held (a stalled disk) when `holds(*args)`: `stalled` is set
    as such a call begins; it returns once `go` is set."""
    stalled, go = threading.Event(), threading.Event()
    write = getattr(ScanEntryWriter, method)

    def stalling(writer, *args, **kw):
        if holds(*args):
            stalled.set()
            go.wait(30)
        return write(writer, *args, **kw)

    monkeypatch.setattr(ScanEntryWriter, method, stalling)
    return stalled, go


def test_a_write_at_the_scans_end_that_stalls_ends_the_scan_command_by_itself(
        tmp_path, monkeypatch, capsys):
    """Every line is stored and the rig is safe: the scan's end's write (its duration, then
    its final status) that does not reach the disk is reported, and the command ends (exit 3)
    rather than wait for it for ever."""
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    calls = []  # the duration is added after each of the 3 lines, then at the end
    _, go = _stall(monkeypatch, "add_duration", lambda *_: calls.append(1) or len(calls) == 4)
    path = tmp_path / "s.h5"
    try:
        assert main([*SCAN, "--out", str(path)]) == EXIT_WRITE_STALLED
        assert not go.is_set()  # ended while the write is held
        with open_read(path) as f:  # every line; the status as a crash leaves it
            assert np.asarray(f["held/data/line_done"][()]).all()
            assert f["held/status"][()].decode() == "interrupted"
    finally:
        go.set()
    err = capsys.readouterr().err
    assert (f"smm-daq: stopped: scan 'held': the write of the scan's duration to {path} has "
            "not returned (the disk stalled?)") in err
    assert "Left unwritten: the scan's duration and its final status. The file is as a " in err
    assert f"`smm-daq resume {path} --entry held`" in err
    assert "smm-daq: the rig is safe" in err


def _making_safe_under_way(monkeypatch, inside_the_rig: bool) -> tuple[dict, threading.Event]:
    """The scan's end's write stalls, and the scan's thread is still making the rig safe, its
    field still on, when the command stops waiting for it (`hand_back_wait_s` 0); with
    `inside_the_rig` that making safe holds the rig's lock too (an instrument not answering).
    Returns what the test releases ("locks"; "rig": the scan's rig), and the write's `go`."""
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    monkeypatch.setattr(sequencer, "hand_back_wait_s", lambda _rig: 0.0)
    calls = []  # the duration is added after each of the 3 lines, then at the end
    _, go = _stall(monkeypatch, "add_duration", lambda *_: calls.append(1) or len(calls) == 4)
    held: dict = {"locks": []}
    hand_back = sequencer.Sequencer.hand_back_rig

    def under_way(seq):
        seq.rig.coils.set_field(np.array([0.0, FIELD, 0.0]), ramp=False)  # not ramped down yet
        seq._safing = threading.Lock()
        held["locks"] = [seq._safing, *([seq.rig._safing] if inside_the_rig else [])]
        for lock in held["locks"]:
            lock.acquire()
        held["rig"] = seq.rig
        return hand_back(seq)

    monkeypatch.setattr(sequencer.Sequencer, "hand_back_rig", under_way)
    return held, go


def _field_at_sample(rig) -> np.ndarray:
    return rig.world.applied_fields([rig.clock.now()])[0]


def test_a_making_safe_not_waited_for_is_done_again_as_the_command_ends(
        tmp_path, monkeypatch, capsys):
    """The scan's thread is still making the rig safe, the field still on, when the command
    stops waiting for it: the command's close makes the rig safe once more (after that making
    safe, which holds the rig's lock), and says the rig is safe."""
    held, go = _making_safe_under_way(monkeypatch, inside_the_rig=False)
    try:
        assert main([*SCAN, "--out", str(tmp_path / "s.h5")]) == EXIT_WRITE_STALLED
    finally:
        for lock in held["locks"]:
            lock.release()
        go.set()
    assert np.all(np.abs(_field_at_sample(held["rig"])) < 0.01 * FIELD)
    err = capsys.readouterr().err
    assert "smm-daq: the rig is safe" in err and "NOT safe" not in err


def test_a_making_safe_stuck_when_the_command_ends_is_said(tmp_path, monkeypatch, capsys):
    """The scan's thread is stuck making the rig safe (inside the rig's making safe: an
    instrument not answering) when the command stops waiting for it: the close's own making
    safe waits `safe_wait_s` at most, and the command ends, saying the rig may not be safe,
    why, and what to run."""
    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.0)
    held, go = _making_safe_under_way(monkeypatch, inside_the_rig=True)
    try:
        assert main([*SCAN, "--out", str(tmp_path / "s.h5")]) == EXIT_WRITE_STALLED
        assert np.abs(_field_at_sample(held["rig"])[1] - FIELD) < 0.01 * FIELD  # still on
        closing = [t for t in threading.enumerate() if t.name == safe_close.THREAD]
        assert len(closing) == 1
    finally:
        for lock in held["locks"]:
            lock.release()
        go.set()
    err = capsys.readouterr().err
    assert "smm-daq: the rig is safe" not in err
    assert ("smm-daq: the rig may NOT be safe: the scan's thread was still making it safe 0 s "
            "after the program stopped waiting for the write, as long as making it safe may "
            "take (an instrument not answering, or another making safe under way holding the "
            "rig); making it safe at the close did not end within 0 s") in err
    assert "`smm-daq safe --profile" in err
    closing[0].join(30)  # the making safe left to run ends once the lock is free
    assert not closing[0].is_alive()


def test_a_second_scan_that_does_not_start_keeps_what_the_first_left_unknown(
        tmp_path, monkeypatch):
    """A scan left to a stalled write while its thread was still making the rig safe, then a
    second scan whose start is refused (its entry exists): the session's stuck close still
    says that the first scan's thread was making the rig safe (the second never ran)."""
    from smm_daq.acquisition.session import Session
    from smm_daq.errors import InputError, WriteStalled

    monkeypatch.setattr(safe_close, "safe_wait_s", lambda _rig: 0.0)
    held, go = _making_safe_under_way(monkeypatch, inside_the_rig=True)
    session = Session.open(tmp_path / "s.h5")
    scan = {"center_um": (12500, 12500), "size_um": (40, 40), "step_um": 20}
    try:
        with pytest.raises(WriteStalled):
            session.scan("held", **scan)
        with pytest.raises(InputError):
            session.scan("held", **scan)  # there already: refused before it starts
        problems = session.close()
    finally:
        for lock in held["locks"]:
            lock.release()
        go.set()
    assert problems[-2:] == [
        "the scan's thread was still making it safe 0 s after the program stopped waiting for "
        "the write, as long as making it safe may take (an instrument not answering, or "
        "another making safe under way holding the rig)",
        "making it safe at the close did not end within 0 s (an instrument not answering, or "
        "a making safe under way in another thread that has not ended); the program does not "
        "wait for it any longer"]


def test_ctrl_c_during_a_stalled_line_write_ends_the_command_without_it(
        tmp_path, monkeypatch, capsys):
    """Ctrl-C while a line's write is held: the rig is made safe at once, and the command
    ends (exit 3, not 130 after the disk answers) naming the line left unwritten."""
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    stalled, go = _stall(monkeypatch, "write_line", lambda iy, *_: iy == 1)

    def interrupt() -> None:
        if stalled.wait(30):
            _thread.interrupt_main()  # Ctrl-C, to the main thread's handler

    threading.Thread(target=interrupt, daemon=True).start()
    try:
        assert main([*SCAN, "--out", str(tmp_path / "s.h5")]) == EXIT_WRITE_STALLED
        assert not go.is_set()
    finally:
        go.set()
    err = capsys.readouterr().err
    assert ("scan 'held': the rig is safe (stage stopped, field at its safe state). The write "
            "of line 2 to s.h5 has not returned (disk stalled?)\n") in err  # no "ends when it"
    assert "Left unwritten: line 2, the scan's duration and its final status" in err
    assert "smm-daq: the rig is safe" in err


# `smm-daq scan`, its line 1 written by a write that blocks inside HDF5 (holding h5py's lock,
# as a write on a stalled disk does) and never returns, SIGINT sent as it begins
CTRL_C_ON_A_STALLED_WRITE = """
import os, signal, sys, threading
from h5py._objects import phil
from smm_daq.acquisition import safe_close, sequencer
from smm_daq.cli.main import main
from smm_daq.storage.scan_entry import ScanEntryWriter

sequencer.WRITE_STALLED_S = 0.0
write_line = ScanEntryWriter.write_line

def stalling(writer, iy, *args, **kw):
    if iy == 1:
        os.kill(os.getpid(), signal.SIGINT)
        with phil:
            threading.Event().wait()
    return write_line(writer, iy, *args, **kw)

ScanEntryWriter.write_line = stalling
sys.argv[0] = "smm-daq"
sys.exit(main())
"""


def test_the_program_ends_on_ctrl_c_though_its_write_stalls_inside_hdf5(tmp_path, repo):
    """A write blocked inside HDF5 holds h5py's lock for good, and the interpreter's
    finalization waits for that lock: `smm-daq scan` interrupted past such a write must still
    end (exit 3), and the file it leaves opens as it is, line 0 stored."""
    path = tmp_path / "s.h5"
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-c", CTRL_C_ON_A_STALLED_WRITE, *SCAN, "--out",
                           str(path)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_WRITE_STALLED, done.stderr
    assert "Left unwritten: line 2, the scan's duration and its final status" in done.stderr
    with open_read(path) as f:
        assert np.asarray(f["held/data/line_done"][()]).tolist() == [True, False, False]
        assert f["held/status"][()].decode() == "interrupted"


RECIPE = """
[scan_defaults]
center_um = [12500.0, 12500.0]
size_um = [40.0, 40.0]
step_um = 20.0

[[step]]
kind = "set_field"
field_uT = [0.0, 40.0, 0.0]

[[step]]
kind = "scan"
name = "held"
"""


def test_a_recipes_scan_left_to_a_stalled_disk_ends_run_naming_run_continue(
        tmp_path, monkeypatch, capsys):
    """`smm-daq run` ends the same way (exit 3), and its message names `run --continue`,
    which finishes the scan and the steps after it."""
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    calls = []
    _, go = _stall(monkeypatch, "add_duration", lambda *_: calls.append(1) or len(calls) == 4)
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    path = tmp_path / "s.h5"
    try:
        assert main(["run", str(recipe), "--out", str(path)]) == EXIT_WRITE_STALLED
    finally:
        go.set()
    err = capsys.readouterr().err
    # the recipe named as `run` was given it, as its own go-on line names it
    assert f"`smm-daq run {recipe} --out {path} --continue` does it and runs the steps" in err
    assert "smm-daq: the rig is safe" in err


def _hold_subtractions(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Every subtraction's write held (a stalled disk) until `go`, deaf to signals meanwhile
    as a write blocked inside HDF5 is (one that came is raised once it returns); `stalled` is
    set as it begins."""
    from smm_daq.analysis import induced_entry

    stalled, go = threading.Event(), threading.Event()
    subtract = induced_entry.write_subtraction

    def held(*args, **kw):
        stalled.set()
        interrupted = None
        while not go.is_set():
            try:
                go.wait(30)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
        return subtract(*args, **kw)

    monkeypatch.setattr(induced_entry, "write_subtraction", held)
    return stalled, go


def _two_scans(path) -> None:
    from test_gui_subtract import bump_map

    from smm_daq.storage.nexus import write_map_entry

    write_map_entry(path, bump_map("rem", (48, 48), 2e-6), kind="scan")
    write_map_entry(path, bump_map("inf", (51, 48), 2e-6, field=(0, 40e-6, 0)), kind="scan")


def _ctrl_c_when(stalled: threading.Event) -> None:
    def interrupt() -> None:
        if stalled.wait(30):
            _thread.interrupt_main()  # Ctrl-C: only the main thread's handler sees it

    threading.Thread(target=interrupt, daemon=True).start()


def test_ctrl_c_during_a_subtraction_on_a_stalled_disk_makes_the_rig_safe(
        tmp_path, monkeypatch):
    """A subtraction after a field was set (a recipe's `set_field` step): Ctrl-C while a
    stalled disk holds the file makes the rig safe at once, and the subtraction ends with
    WriteStalled, as a scan's start does."""
    from smm_daq.acquisition.session import Session
    from smm_daq.errors import WriteStalled

    path = tmp_path / "s.h5"
    _two_scans(path)
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    stalled, go = _hold_subtractions(monkeypatch)
    try:
        with Session.open(path) as session:
            session.set_field((0.0, 20.0, 0.0))
            assert np.any(session.rig.coils.field_setpoint())
            _ctrl_c_when(stalled)
            try:
                session.subtract("inf", "rem", "induced")
            except BaseException as exc:  # unfixed: the KeyboardInterrupt, once it returned
                ended = exc
            assert not go.is_set()  # while it is still held
            np.testing.assert_array_equal(session.rig.coils.field_setpoint(), 0.0)
    finally:
        go.set()
    assert isinstance(ended, WriteStalled)
    assert f"the subtraction 'induced' into {path} has not returned" in str(ended)


RECIPE_FIELD_THEN_SUBTRACT = """
[[step]]
kind = "set_field"
field_uT = [0, 20, 0]

[[step]]
kind = "subtract"
in_field = "inf"
remanent = "rem"
name = "induced"
"""


def test_ctrl_c_during_a_recipes_subtraction_on_a_stalled_disk_ends_run_with_exit_3(
        tmp_path, monkeypatch, capsys):
    """`smm-daq run`: Ctrl-C during a subtraction step held by a stalled disk ends the
    command with exit 3, the rig made safe and closed, naming the subtraction left."""
    path = tmp_path / "s.h5"
    _two_scans(path)
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE_FIELD_THEN_SUBTRACT, encoding="utf-8")
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    stalled, go = _hold_subtractions(monkeypatch)
    _ctrl_c_when(stalled)
    try:
        code = main(["run", str(recipe), "--out", str(path), "--yes"])
        assert not go.is_set()  # ended while it is still held
    finally:
        go.set()
    err = capsys.readouterr().err
    assert code == EXIT_WRITE_STALLED, err
    assert f"stopped: the subtraction 'induced' into {path} has not returned" in err
    assert "smm-daq: the rig is safe" in err


def test_a_later_scan_on_the_session_is_aborted_by_close_after_a_stalled_first_one(
        tmp_path, monkeypatch):
    """A script goes on with the same Session after its first scan was left to a stalled
    write (WriteStalled): a second scan, still running when the session is closed (from
    another thread), is aborted and its own making safe waited for, not closed under it as a
    scan left to the disk would be."""
    from acq_fakes import fake_rig

    from smm_daq.acquisition.session import ScanNotFinished, Session
    from smm_daq.errors import WriteStalled

    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 0.0)
    calls = []  # the first scan's duration: after each of its 3 lines, then at its end
    _, go = _stall(monkeypatch, "add_duration", lambda *_: calls.append(1) or len(calls) == 4)
    rig = fake_rig()
    closed: list[bool] = []
    rig.close = lambda: closed.append(True)
    session = Session(tmp_path / "s.h5", rig)
    kw = {"center_um": (12500.0, 12500.0), "size_um": (40.0, 40.0), "step_um": 20.0}
    try:
        with pytest.raises(WriteStalled):
            session.scan("first", **kw)
    finally:
        go.set()
    assert session.last_sequencer.wait(30) == "finished"  # its write returned since
    monkeypatch.setattr(sequencer, "WRITE_STALLED_S", 600.0)  # the second's writes return
    aborts: list[str] = []
    measuring, holding = threading.Event(), threading.Event()
    abort = sequencer.Sequencer.abort

    def noted(seq, reason="aborted by the operator") -> None:
        aborts.append(reason)
        abort(seq, reason)
        holding.set()

    def hold(event) -> None:  # the second scan's first point held until it is aborted
        if event.kind == "point" and not measuring.is_set():
            measuring.set()
            holding.wait(30)  # the test gives up first

    ended: list[BaseException] = []

    def second() -> None:
        try:
            session.scan("second", on_event=hold, **kw)
        except BaseException as exc:
            ended.append(exc)

    monkeypatch.setattr(sequencer.Sequencer, "abort", noted)
    scanning = threading.Thread(target=second, daemon=True)
    scanning.start()
    try:
        assert measuring.wait(30)
        problems = session.close()
        assert aborts == ["the session was closed"]  # unfixed: closed under the scan
    finally:
        holding.set()
        scanning.join(30)
    assert problems == [] and closed == [True]
    assert rig.safe_calls == 2  # each scan's own: the abort's stands, not done again
    assert len(ended) == 1 and isinstance(ended[0], ScanNotFinished)
    assert ended[0].status == "aborted"
