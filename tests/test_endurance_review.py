"""An outside review of long-run behaviour: what a day-long scan meets late (pick-up past the
lock-in's largest range, an overload with nobody at the terminal, the stage's link refused,
a link reset by its instrument, the lock-in restarted by a power cut). Each case: the scan
ends (or pauses) saying what happened and what to do, the rig is left safe, and the file is
readable and resumable. On the simulated rig through the real drivers and emulators, the
link faults over the real TCP byte path (served emulators behind fault proxies)."""

from __future__ import annotations

import shlex
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from served_rig import (
    HANG_GUARD_S,
    UNHURRIED_TIMEOUT_S,
    ServedRig,
    assert_failed_then_resumes,
    links_time_out_only_where_faked,
)

from drivers.link import Link
from drivers.transports import VisaTransport
from simulators.sample import VirtualSample
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.cli.main import main
from smm_daq.errors import InstrumentLost
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig
from smm_daq.storage.h5file import open_read

C = 12.5e-3
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def rig():
    grain = np.array([[C, C, -30e-6, 40e-6, 30e-6, 40e-6]])
    sample = VirtualSample(grain, np.array([0]), remanence=np.array([[3e4, 1e4, 4e4]]),
                           susceptibility=np.array([0.0]))
    r = open_rig(load_profile(), world_options={"sample": sample, "seed": 3})
    yield r
    r.close()


def _field_at_safe_state(rig: Rig) -> None:
    np.testing.assert_allclose(rig.coils.field(), 0.0, atol=50e-9)


def test_auto_range_at_the_largest_range_pauses_instead_of_failing(rig, tmp_path) -> None:
    """Pick-up that grows past the lock-in's largest range (1 V) during an auto-ranged scan:
    the scan pauses, saying auto-range can go no further, as it would without auto-range;
    it was failed by the driver's refusal of a 2 V range ("RangeError ... outside")."""
    rig.lockin.set_sensitivity(0.5)
    rig.backend.lockin.interference = 5.0  # volts of pick-up: beyond every range
    path = tmp_path / "s.h5"
    plan = ScanPlan.from_center("k", (C, C), (60e-6, 60e-6), 15e-6, field=(0.0, 20e-6, 0.0))
    seq = Sequencer(rig, path, plan, auto_range=True)
    paused: list[str] = []

    def operator(event) -> None:
        if event.kind == "paused":
            paused.append(event.message)
            seq.abort()

    seq.subscribe(operator)
    assert seq.run() == "aborted", seq.message
    assert len(paused) == 1, paused
    assert "lock-in overload" in paused[0] and "largest range (1 V full scale)" in paused[0]
    assert "RangeError" not in seq.message
    assert rig.lockin.sensitivity() == 1.0
    _field_at_safe_state(rig)
    with open_read(path) as f:
        assert f["k/status"].asstr()[()] == "aborted"
    assert load_resumable(path, "k").lines_left == plan.ny


# -- over the real byte path: the command line on a TCP-served rig ----------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    """The served rig, its stage referenced and at the scan's area at 50 × real time, then in
    real time (a real profile's command runs on the system clock), its links waiting for a
    reply as long as no loaded machine delays one (`UNHURRIED_TIMEOUT_S`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYVISA_LIBRARY", "@py")
        world = ServedRig(tmp_path_factory.mktemp("served"), time_scale=50.0,
                          timeout_s=UNHURRIED_TIMEOUT_S)
        profile = load_profile(world.profile_path)
        ready = open_rig(profile, clock=world.clock)
        ready.stage.move_to(100e-6, 100e-6, profile.sensor.height)
        ready.close()
        world.clock.set_time_scale(1.0)
        yield world
        world.close()


def _scan_args(served: ServedRig, out: Path) -> list[str]:
    return ["scan", "--profile", str(served.profile_path), "--center-um", "100,100",
            "--size-um", "60,40", "--step-um", "20", "--field-uT", "0,10,0",
            "--settle-tau", "1", "--name", "k", "--out", str(out)]


def test_a_stage_lost_mid_scan_says_the_lines_are_kept_and_how_to_go_on(
        served, tmp_path, monkeypatch, capsys) -> None:
    """The stage's link refused late in a scan (the controller unplugged): the scan fails
    with the field ramped down, and the command says, besides what was lost and `smm-daq
    safe`, that the lines measured are kept and which command goes on from them (it said
    so only after Ctrl-C); that command then finishes the scan. The stage's link times out
    only where the proxy refused it (`links_time_out_only_where_faked`)."""
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    out = tmp_path / "s.h5"
    proxy = served.proxies["stage"]
    proxy.after(proxy.commands + 60, proxy.refuse)  # during the third line
    try:
        with links_time_out_only_where_faked(served):
            assert main(_scan_args(served, out)) == 1
    finally:
        proxy.disarm()
        proxy.restore()
    err = capsys.readouterr().err
    assert "instrument lost: " in err and "smm-daq safe --profile" in err
    assert (f"what was measured is kept in {out}; once what ended the scan is mended, "
            f"`smm-daq resume {out} --entry k` goes on from there") in err
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=2e-3)
    with h5py.File(out, "r") as f:
        assert f["k/status"].asstr()[()] == "failed"
        done = f["k/data/line_done"][()].astype(bool)
    assert done.any() and not done.all()
    assert main(["safe", "--profile", str(served.profile_path)]) == 0
    assert main(["resume", str(out), "--entry", "k"]) == 0
    with h5py.File(out, "r") as f:
        assert f["k/status"].asstr()[()] == "finished"
        assert np.isfinite(f["k/data/Bz"][()]).all()


def _resetting_instrument() -> tuple[socket.socket, threading.Thread]:
    """A loopback "instrument" that takes one connection, reads a command and resets the
    connection (RST: it was power-cycled) instead of answering."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(64)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_link_reset_by_the_instrument_names_the_instrument(monkeypatch) -> None:
    """A TCP link the instrument resets (a controller power-cycled at hour 5): the error names
    the instrument and the command, not only the socket's address as the transport says it
    ("TCPIP0::127.0.0.1::PORT::SOCKET: the instrument closed the connection ..."), which was
    all a scan's "instrument lost: ..." told the operator."""
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    listener, thread = _resetting_instrument()
    address = f"TCPIP0::127.0.0.1::{listener.getsockname()[1]}::SOCKET"
    transport = VisaTransport.open(address, timeout=5.0)
    link = Link(transport, name=f"PI stage at {address}", retries=0)  # no timeout waited
    try:
        with pytest.raises(InstrumentLost) as lost:
            link.query("POS? 1 2 3", str)
    finally:
        link.close()
        listener.close()
        thread.join(5.0)
    assert lost.value.instrument == link.name
    said = str(lost.value)
    assert said.startswith(f"PI stage at {address}: no valid reply to 'POS? 1 2 3'")
    assert f"{address}: the instrument closed the connection" in said


def test_an_overload_nobody_answers_names_a_resume_that_gets_past_it(
        tmp_path, capsys) -> None:
    """A scan off a terminal that overloads the lock-in aborts, naming the command that goes
    on. That command must get past the overload: connecting sets the profile's sensitivity
    again (whatever was set at the front panel), so the `smm-daq resume` it named paused
    and aborted at the same point again, for good; it names `--auto-range` now, and the
    resume it names finishes the scan."""
    profile = tmp_path / "low-range.toml"
    profile.write_text((REPO / "configs" / "simulator.toml").read_text().replace(
        "\nsensitivity_V = 0.5\n", "\nsensitivity_V = 0.0002\n"))  # the demo sample overloads
    out = tmp_path / "s.h5"
    assert main(["scan", "--profile", str(profile), "--center-um", "12500,12500", "--size-um",
                 "2000,100", "--step-um", "100", "--field-uT", "0,0,0", "--name", "k",
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "paused (lock-in overload), then aborted with no operator" in err
    advised = f"`smm-daq resume {out} --entry k --auto-range` continues the scan"
    assert advised in err
    assert err.count("smm-daq resume") == 1  # said once
    assert main(["resume", str(out), "--entry", "k", "--auto-range"]) == 0
    with open_read(out) as f:
        assert f["k/status"].asstr()[()] == "finished"
        assert np.isfinite(f["k/data/Bz"][()]).all()


def test_a_lockin_restarted_mid_scan_fails_the_scan_before_its_line_is_stored(
        tmp_path, monkeypatch) -> None:
    """The lock-in power-cycled during a scan (its settings back to the defaults, its TCP
    link dropped and reopened by the next exchange): the scan went on to "finished" with every
    later line settled and filtered with τ = 100 ms, not the 30 ms it records, at another
    reference frequency. Now the line is not stored, the scan fails naming what changed and
    the resume that sets it again, the field ramped down; the resume finishes it. On the rig's
    sleeps alone (time scale 0), the links timing out only where the proxy dropped the
    lock-in's (`links_time_out_only_where_faked`), each timeout on the served clock."""
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    served = ServedRig(tmp_path, time_scale=0, timeout_s=0.3)
    try:
        with links_time_out_only_where_faked(served):
            _lockin_restarted_mid_scan(served, tmp_path)
    finally:
        served.close()


def _lockin_restarted_mid_scan(served: ServedRig, tmp_path: Path) -> None:
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    proxy, lockin = served.proxies["lockin"], served.backend.lockin

    def power_cycled() -> None:
        with served.backend.world.lock:
            lockin._reset()  # as *RST: every setting at its default
        proxy.drop()

    plan = ScanPlan.from_center("k", (C, C), (60e-6, 60e-6), 20e-6, field=(0.0, 10e-6, 0.0))
    try:
        # the lock-in's 40th command of the scan's 61 (11 a line): as the third line begins
        proxy.after(proxy.commands + 40, power_cycled)
        seq = Sequencer(rig, tmp_path / "s.h5", plan)
        seq.start()
        assert seq.wait(HANG_GUARD_S) == "failed", seq.message
        assert "the lock-in's settings changed during line" in seq.message
        assert "time constant 0.1 s (the scan's 0.03 s)" in seq.message
        assert f"`smm-daq resume {tmp_path / 's.h5'} --entry k`" in seq.message
        np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=2e-3)
    finally:
        proxy.disarm()
        rig.close()
    with h5py.File(tmp_path / "s.h5", "r") as f:
        done = f["k/data/line_done"][()].astype(bool)
    assert done.any() and not done.all()  # restarted mid-scan
    assert_failed_then_resumes(served, tmp_path / "s.h5", plan)


def test_the_resume_named_is_quoted_for_the_shell(tmp_path, capsys) -> None:
    """A scan named with a space, in a folder with one: the command it names to go on is
    quoted so that, pasted into a shell, it resumes that scan (unquoted, `--entry my scan`
    named no entry and `scan` was an unknown argument)."""
    profile = tmp_path / "low-range.toml"
    profile.write_text((REPO / "configs" / "simulator.toml").read_text().replace(
        "\nsensitivity_V = 0.5\n", "\nsensitivity_V = 0.0002\n"))
    out = tmp_path / "my session" / "s.h5"
    out.parent.mkdir()
    assert main(["scan", "--profile", str(profile), "--center-um", "12500,12500", "--size-um",
                 "2000,100", "--step-um", "100", "--field-uT", "0,0,0", "--name", "my scan",
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    advised = f"`smm-daq resume '{out}' --entry 'my scan' --auto-range` continues the scan"
    assert advised in err and err.count("smm-daq resume") == 1
    command = shlex.split(advised.split("`")[1])
    assert main(command[1:]) == 0
    with open_read(out) as f:
        assert f["my scan/status"].asstr()[()] == "finished"
