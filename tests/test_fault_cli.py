"""`smm-daq scan` on a real (TCP-served) rig: in its own process killed with -9 or stopped
with several signals, or losing its instruments; judged from the emulators' side, then
repaired with `smm-daq safe` and finished with `smm-daq resume`.

The command runs on the system clock, the served world in real time, and the links wait for
a reply as long as no loaded machine delays one (`UNHURRIED_TIMEOUT_S`): these tests lose no
reply to slowness. The scan that loses its instruments runs in this process, its links timing
out only where the fault proxy made sure no reply comes (`links_time_out_only_where_faked`),
so that the links the killed server closed fail at once.

No test waits on time: each blocks on the scan's own output lines (its progress, the
acknowledgement of a signal), on the process' end, or on the command's return, with generous
guards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from served_rig import UNHURRIED_TIMEOUT_S, ServedRig, links_time_out_only_where_faked

from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

GUARD_S = 120.0
CURRENT_ATOL = 2e-3
SCAN_CENTRE = (100e-6, 100e-6)  # m
RAMP_COMMANDS = 400  # more than coil y is sent from a stop to the ramp-down's end
LOST_AT = 45  # the stage's command (of about 66 in a scan) the server is killed at: line 2


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    """The served rig in real time (the command runs on the system clock), its stage made
    ready first at 50 × real time: referenced and at the scans' area (12 s of real stage
    travel otherwise, in whichever test came first)."""
    rig = ServedRig(tmp_path_factory.mktemp("served"), time_scale=50.0,
                    timeout_s=UNHURRIED_TIMEOUT_S)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYVISA_LIBRARY", "@py")
        profile = load_profile(rig.profile_path)
        ready = open_rig(profile, clock=rig.clock)  # references the stage
        ready.stage.move_to(*SCAN_CENTRE, profile.sensor.height)
        ready.close()
    rig.clock.set_time_scale(1.0)
    yield rig
    rig.close()


@pytest.fixture
def served(world: ServedRig, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedRig]:
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    yield world
    if not world.server_alive():
        world.restart_server()


def scan_args(served: ServedRig, out: Path, field_ut: str = "0,10,0") -> list[str]:
    return ["scan", "--profile", str(served.profile_path),
            "--center-um", ",".join(f"{c * 1e6:g}" for c in SCAN_CENTRE), "--size-um", "60,40",
            "--step-um", "20", "--field-uT", field_ut, "--settle-tau", "1", "--name", "k",
            "--out", str(out)]


def start_scan(served: ServedRig, out: Path, field_ut: str = "0,10,0") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smm_daq.cli.main", *scan_args(served, out, field_ut)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYVISA_LIBRARY": "@py", "PYTHONUNBUFFERED": "1"},
    )


def read_until(proc: subprocess.Popen[str], words: str, seen: list[str]) -> str:
    """The first stderr line holding `words` (every line read goes into `seen`). A scan that
    has not said it within `GUARD_S` is killed and the test fails with what it said: a reply
    the emulators never give would otherwise hold it for `UNHURRIED_TIMEOUT_S` × the link's
    attempts per command, and the make-safe path's room for as many."""
    assert proc.stderr is not None
    guard = threading.Timer(GUARD_S, proc.kill)
    guard.start()
    try:
        for line in proc.stderr:
            seen.append(line)
            if words in line:
                return line
    finally:
        guard.cancel()
    raise AssertionError(
        f"{words!r} never came (a scan still on after {GUARD_S:g} s is killed): "
        f"rc {proc.wait()}:\n{''.join(seen)}"
    )


def finish(proc: subprocess.Popen[str], seen: list[str]) -> tuple[int, str]:
    assert proc.stderr is not None
    try:
        _, rest = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, "".join(seen) + rest


def status(path: Path) -> str:
    with h5py.File(path, "r") as f:
        return f["k/status"].asstr()[()]


def safe_now(served: ServedRig) -> None:
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    assert not served.stage_moving()


def run_safe(served: ServedRig, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["safe", "--profile", str(served.profile_path)]) == 0
    out = capsys.readouterr().out
    assert "coils: safe: currents" in out and "stage: safe: stopped at" in out
    safe_now(served)
    return out


def resume(served: ServedRig, path: Path) -> None:
    assert main(["resume", str(path), "--entry", "k", "--profile", str(served.profile_path)]) == 0
    assert status(path) == "finished"
    with h5py.File(path, "r") as f:
        assert np.isfinite(f["k/data/Bz"][()]).all()


@pytest.mark.slow
def test_kill_9_leaves_the_field_on_and_smm_daq_safe_ramps_it_down(served, tmp_path, capsys):
    path = tmp_path / "s.h5"
    proc = start_scan(served, path)
    seen: list[str] = []
    read_until(proc, "line 1", seen)  # measuring: the field is up
    proc.kill()
    proc.communicate(timeout=GUARD_S)
    assert served.currents()[1] > 0.15  # what kill -9 leaves: 0.2 A in coil y
    run_safe(served, capsys)
    resume(served, path)


@pytest.mark.slow
def test_repeated_signals_are_acknowledged_and_never_cut_the_ramp_down(served, tmp_path):
    path = tmp_path / "s.h5"
    proc = start_scan(served, path, "0,40,0")
    seen: list[str] = []
    read_until(proc, "line 1", seen)
    proc.send_signal(signal.SIGTERM)
    # Then a signal as each of coil y's next commands passes its proxy (those of the ramp-down
    # among them): sent from the scan's own traffic, not from this process as it reads the
    # acknowledgements, so they meet the ramp-down however late a loaded machine lets it read.
    proxy = served.proxies["coil_y"]
    for k in range(1, RAMP_COMMANDS + 1):
        sig = signal.SIGINT if k % 2 else signal.SIGTERM
        proxy.after(proxy.commands + k, lambda sig=sig: proc.send_signal(sig))
    try:
        while "making the rig safe, at most" not in read_until(proc, "smm-daq: SIG", seen):
            pass
        rc, err = finish(proc, seen)
    finally:
        proxy.disarm()
    assert rc == 130, err
    assert "Traceback" not in err
    assert "the rig is safe (coils at their safe state, stage stopped)" in err
    assert "smm-daq: interrupted" in err
    safe_now(served)
    assert status(path) == "aborted"


@pytest.mark.slow
def test_instruments_lost_mid_scan_end_it_in_bounded_time_naming_smm_daq_safe(
        served, tmp_path, capsys):
    path = tmp_path / "s.h5"
    proxy = served.proxies["stage"]
    # every instrument gone with its link, mid-scan; in a thread of its own: closing the
    # server joins the connections the proxy's thread serves
    kill = threading.Thread(target=served.kill_server)
    proxy.after(proxy.commands + LOST_AT, kill.start)
    try:
        with links_time_out_only_where_faked(served):
            rc = main(scan_args(served, path))
    finally:
        proxy.disarm()
        if kill.ident is not None:
            kill.join(GUARD_S)
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" not in err
    assert f"smm-daq safe --profile {served.profile_path}" in err
    assert "the rig may NOT be safe" in err
    assert status(path) == "failed"
    with h5py.File(path, "r") as f:
        done = f["k/data/line_done"][()].astype(bool)
    assert done.any() and not done.all()  # lost mid-scan
    served.restart_server()
    run_safe(served, capsys)
