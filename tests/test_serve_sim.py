"""serve-sim: any VISA client (pyvisa with its pure-Python backend) talks TCP to the emulators."""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import pyvisa

from smm_daq.cli.instruments import serve
from smm_daq.cli.main import main

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "configs" / "simulator.toml"


class Lines(io.TextIOBase):
    """A text stream whose complete lines can be waited for from another thread."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *done, self._partial = self._partial.split("\n")
        for line in done:
            self.lines.put(line)
        return len(text)


def read_resources(next_line) -> dict[str, str]:
    """role -> VISA resource, from serve-sim's listing (header line, then one per instrument)."""
    header = next_line()
    assert header.startswith("serving ")
    resources = {}
    while len(resources) < 6:
        role, resource, *_ = next_line().split()
        resources[role] = resource
    return resources


@contextmanager
def serving(profile: Path, **kwargs: object) -> Iterator[Callable[[], str]]:
    """serve-sim serving `profile` in a thread of its own (at real time unless `time_scale` is
    given; `profile_out` as given) until the block ends; yields its next line printed, waited
    for up to 30 s."""
    out, stop = Lines(), threading.Event()
    thread = threading.Thread(target=serve, args=(str(profile),), kwargs={
        "time_scale": 1.0, "duration": None, **kwargs, "out": out, "stop": stop})
    thread.start()
    try:
        yield lambda: out.lines.get(timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture
def served() -> Iterator[dict[str, str]]:
    out, stop = Lines(), threading.Event()
    thread = threading.Thread(
        target=serve,
        args=(str(PROFILE),),
        kwargs={"time_scale": 1.0, "duration": None, "out": out, "stop": stop},
    )
    thread.start()
    try:
        yield read_resources(lambda: out.lines.get(timeout=30))
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()


def open_socket(manager: pyvisa.ResourceManager, resource: str):
    return manager.open_resource(
        resource, read_termination="\n", write_termination="\n", timeout=5000
    )


def test_visa_client_gets_identity_readings_and_stage_position(served: dict[str, str]) -> None:
    assert set(served) == {"lockin", "stage", "coil_x", "coil_y", "coil_z", "fluxgate"}
    assert all(
        r.startswith("TCPIP0::127.0.0.1::") and r.endswith("::SOCKET") for r in served.values()
    )
    manager = pyvisa.ResourceManager("@py")
    try:
        lockin = open_socket(manager, served["lockin"])
        assert lockin.query("*IDN?").split(",")[1] == "SR830"
        x, y = (float(v) for v in lockin.query("SNAP? 1,2").split(","))
        assert abs(x) < 1.0 and abs(y) < 1.0
        assert lockin.query("OFLT?") == "8"  # power-on 100 ms: nothing configured it
        stage = open_socket(manager, served["stage"])
        assert "C-884" in stage.query("*IDN?")  # the simulator's coarse stage, in mm
        axis, _, value = stage.query("POS? 1").partition("=")
        assert axis == "1" and float(value) == pytest.approx(0.0)
        stage.write("PUN? 1 3")  # a GCS multi-line reply: one LF-terminated line per axis
        assert stage.read() == "1=mm " and stage.read() == "3=mm"
        assert stage.query("FRF? 1") == "1=0"  # encoders: unreferenced after power-up
        coil = open_socket(manager, served["coil_z"])
        assert coil.query("MEAS:CURR?") not in ("", None)
        fluxgate = open_socket(manager, served["fluxgate"])
        fluxgate.write("CONF:VOLT:DC 10,DEF,(@101:103)")
        assert len(fluxgate.query("READ?").split(",")) == 3
        second = open_socket(manager, served["lockin"])  # a second client on the same port
        assert second.query("*IDN?") == lockin.query("*IDN?")
    finally:
        manager.close()


def test_bad_time_scale_and_real_profiles_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve-sim", "--profile", str(PROFILE), "--time-scale", "0"]) == 2
    assert "--time-scale" in capsys.readouterr().err
    lab = REPO / "configs" / "example-lab.toml"
    assert main(["serve-sim", "--profile", str(lab), "--duration-s", "1"]) == 2
    assert "not simulated" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_sim_command_serves_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "smm_daq.cli.main", "serve-sim", "--profile", str(PROFILE),
         "--time-scale", "10", "--duration-s", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        resources = read_resources(lambda: process.stdout.readline().rstrip("\n"))
        manager = pyvisa.ResourceManager("@py")
        lockin = open_socket(manager, resources["lockin"])
        assert "SR830" in lockin.query("*IDN?")
        manager.close()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped" in out
