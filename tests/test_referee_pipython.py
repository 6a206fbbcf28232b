"""PI's own PIPython, unmodified, drives the served PI controllers over loopback TCP.

Its pure-Python socket gateway (no PI DLL) is what a PI user runs: `GCSCommands` over
`PISocket` (`GCSCommands(GCSMessages(PISocket(host, port)))`, as PI documents it),
`pitools.startup` (referencing the C-884's axes with FRF), moves with
`pitools.waitontarget`, the single-byte commands sent without a line feed, the data recorder
read as a GCS array, and the error queue. A failure here means the emulator differs from the
controller: fix the emulator, never the client.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pipython = pytest.importorskip("pipython")
from pipython import GCSError, pitools  # noqa: E402
from pipython.pidevice.gcscommands import GCSCommands  # noqa: E402
from pipython.pidevice.gcsmessages import GCSMessages  # noqa: E402
from pipython.pidevice.interfaces.pisocket import PISocket  # noqa: E402

from simulators.backend import SimulatedBackend  # noqa: E402
from smm_daq.instruments.profile import load_profile  # noqa: E402

# a device or gateway PIPython's finalizer closes twice fails the test it is collected in
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
REPO = Path(__file__).resolve().parents[1]
PROFILES = {
    "E-727": REPO / "configs" / "simulator-e727.toml",
    "C-884": REPO / "configs" / "simulator.toml",
}
TIME_SCALE = 50.0  # simulated seconds per real second


@contextlib.contextmanager
def served_port(model: str) -> Iterator[tuple[SimulatedBackend, int]]:
    profile = load_profile(PROFILES[model])
    backend = SimulatedBackend.serving(profile, time_scale=TIME_SCALE)
    server = backend.serve_tcp()
    try:
        yield backend, server.ports()[profile.stage.link.address]
    finally:
        server.close()


@contextlib.contextmanager
def connected(port: int) -> Iterator[GCSCommands]:
    """PIPython's pure-Python path: socket gateway, messages, GCS commands (no PI DLL)."""
    with PISocket("127.0.0.1", port) as gateway, GCSCommands(GCSMessages(gateway)) as dev:
        yield dev


@pytest.fixture(params=list(PROFILES))
def device(request: pytest.FixtureRequest) -> Iterator[tuple[GCSCommands, SimulatedBackend]]:
    with served_port(request.param) as (backend, port), connected(port) as dev:
        yield dev, backend


def started(dev: GCSCommands) -> None:
    """What a PI user runs first: servos on, and FRF referencing where the axes need it."""
    refmodes = ["FRF"] * dev.numaxes if dev.HasFRF() else None
    pitools.startup(dev, refmodes=refmodes)


def wait_for(predicate, timeout: float = 10.0) -> None:
    """Yield to PIPython's reader thread until `predicate()` holds (bounded, no fixed sleep)."""
    deadline = time.monotonic() + timeout  # a guard against a hang, not a speed check
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("PIPython's background read did not finish")
        time.sleep(0)


def test_identity_syntax_version_help_and_units(device) -> None:
    dev, backend = device
    controller = backend.emulators[backend.profile.stage.link.address].controller
    assert dev.devname.startswith(controller.model)  # PIPython's per-model behaviour keys on it
    assert dev.qCSV() == 2.0  # GCS 2.0: PIPython picks its GCS2 command set
    assert "FW_" in dev.qVER()
    assert dev.axes == ["1", "2", "3"]
    commands = dev.funcs  # parsed from HLP?
    for name in ("qPOS", "MOV", "MVR", "qONT", "qPUN", "qSPA", "qHPA", "IsMoving",
                 "IsControllerReady", "StopAll", "DRC", "qDRR"):  # fmt: skip
        assert name in commands
    assert ("FRF" in commands) == controller.referencing
    assert ("WAV" in commands) == (controller.wave_generators > 0)
    unit = controller.unit
    assert dev.qPUN() == {"1": unit, "2": unit, "3": unit}
    assert dev.qSPA("1", 0x07000601)["1"][0x07000601] == unit
    assert "Axis Unit" in dev.qHPA()


def test_startup_then_moves_wait_on_target_and_report_where_they_are(device) -> None:
    dev, backend = device
    started(dev)
    assert all(dev.qSVO().values())
    if dev.HasqFRF():
        assert all(dev.qFRF().values())
    lo, hi = dev.qTMN(), dev.qTMX()
    target = {ax: lo[ax] + 0.3 * (hi[ax] - lo[ax]) for ax in ("1", "2")}
    dev.MOV(list(target), list(target.values()))
    pitools.waitontarget(dev, axes=["1", "2"], polldelay=0.01)
    assert all(dev.qONT(["1", "2"]).values())
    pos = dev.qPOS(["1", "2"])
    for ax in target:
        assert pos[ax] == pytest.approx(target[ax], abs=1e-4)
    dev.MVR("2", 0.1 * (hi["2"] - lo["2"]))
    pitools.waitontarget(dev, axes="2", polldelay=0.01)
    assert dev.qPOS("2")["2"] == pytest.approx(target["2"] + 0.1 * (hi["2"] - lo["2"]), abs=1e-4)
    # the world behind it moved too: the stage model's sample-frame position, in metres
    scale = backend.emulators[backend.profile.stage.link.address].unit_scale
    sample = backend.world.stage.sample_position()
    assert sample[1] == pytest.approx((target["2"] + 0.1 * (hi["2"] - lo["2"])) * scale, abs=1e-9)


def test_single_byte_commands_report_motion_readiness_and_stop_everything(device) -> None:
    dev, _ = device
    started(dev)
    lo, hi = dev.qTMN(), dev.qTMX()
    dev.VEL("1", 0.005 * (hi["1"] - lo["1"]))  # a slow move: 200 s simulated, 4 s real
    dev.MOV("1", hi["1"])
    assert dev.IsMoving()["1"] and not dev.IsMoving()["2"]  # #5
    assert dev.IsControllerReady()  # #7 answers 0xB1
    dev.StopAll(noraise=True)  # #24, no line feed: PIPython then reads ERR? (10) itself
    stopped = dev.qPOS("1")["1"]
    assert not any(dev.IsMoving().values())
    assert lo["1"] < stopped < hi["1"]
    assert dev.qPOS("1")["1"] == stopped
    assert int(dev.GetStatus()) >= 0  # #4 parses as a hexadecimal status word


def test_error_queue_holds_the_real_gcs_codes(device) -> None:
    dev, _ = device
    started(dev)
    hi = dev.qTMX()
    with pytest.raises(GCSError) as err:
        dev.MOV("1", 2 * hi["1"] + 1)
    assert err.value.val == 7  # position out of limits
    with pytest.raises(GCSError) as err:
        dev.SVO("9", True)
    assert err.value.val == 15  # invalid axis identifier
    with pytest.raises(GCSError) as err:
        dev.SPA("1", 0x07000601, "mm")
    assert err.value.val == 60  # protected parameter
    dev.SVO("1", False)
    with pytest.raises(GCSError) as err:
        dev.MOV("1", hi["1"] / 2)
    assert err.value.val == 5  # servo off
    assert dev.qERR() == 0  # reading the error cleared it


def test_data_recorder_records_the_move_at_the_set_velocity(device) -> None:
    dev, _ = device
    started(dev)
    lo, hi = dev.qTMN(), dev.qTMX()
    velocity = 0.1 * (hi["1"] - lo["1"])  # units per second: 10 s across the travel
    dev.VEL("1", velocity)
    dev.DRC([1, 2], ["1", "1"], [2, 1])  # actual and commanded position of axis 1
    dev.DRT(0, 1, 0)  # triggered by the next target change
    assert dev.qTNR() == 8
    rate = 500
    dev.RTR(rate)
    goal = lo["1"] + 0.8 * (hi["1"] - lo["1"])  # beyond the C-884's reference switch too
    dev.MOV("1", goal)
    wait_for(lambda: dev.qDRL(1)[1] >= 50)
    header = dev.qDRR([1, 2], 1, 50)
    wait_for(lambda: dev.bufstate is True)
    actual, commanded = dev.bufdata
    dt = header["SAMPLE_TIME"]
    assert header["NDATA"] == 50 and header["DIM"] == 2
    assert dt == pytest.approx(rate * (2e-5 if "E-727" in dev.qIDN() else 1e-4))
    assert commanded[-1] == pytest.approx(goal, abs=1e-4)
    steps = [b - a for a, b in itertools.pairwise(actual[1:])]
    moving = [s for s in steps if abs(s) > 0]
    assert moving and all(s == pytest.approx(velocity * dt, rel=1e-3) for s in moving)


def test_a_recording_read_without_tables_holds_only_the_tables_that_record(device) -> None:
    """`DRR? 1 <n>` (PIPython's `qDRR(None, 1, n)`, the manuals' own example) reads every
    table whose record option is not 0, as PI's GCS manuals say: a table set to record
    nothing adds no column of zeros."""
    dev, _ = device
    started(dev)
    tables = list(range(1, dev.qTNR() + 1))
    dev.DRC(tables, ["1"] * len(tables), [0] * len(tables))
    dev.DRC([2, 5], ["1", "1"], [2, 1])  # actual and commanded position of axis 1
    dev.DRT(0, 1, 0)  # triggered by the next target change
    dev.RTR(500)
    lo, hi = dev.qTMN(), dev.qTMX()
    goal = lo["1"] + 0.5 * (hi["1"] - lo["1"])
    dev.MOV("1", goal)
    wait_for(lambda: dev.qDRL(2)[2] >= 20)
    header = dev.qDRR(None, 1, 20)
    wait_for(lambda: dev.bufstate is True)
    assert header["DIM"] == 2 and header["NDATA"] == 20
    assert header["NAME0"] == "Actual Position of axis 1"
    assert header["NAME1"] == "Commanded Position of axis 1"
    actual, commanded = dev.bufdata
    assert len(actual) == len(commanded) == 20
    assert commanded[-1] == pytest.approx(goal, abs=1e-4)


def test_a_table_configured_anew_counts_no_points_until_the_next_trigger(device) -> None:
    """PI's GCS manuals (DRL?): a table's number of recorded points is reset to zero when its
    configuration is changed with DRC. PIPython's `Datarecorder.wait` polls `qDRL` for the
    points it armed for: a count left from the last recording would end its wait at once,
    before the new one was taken."""
    dev, _ = device
    started(dev)
    dev.DRC(1, "1", 2)
    dev.DRT(0, 1, 0)  # triggered by the next target change
    dev.RTR(500)
    lo, hi = dev.qTMN(), dev.qTMX()
    dev.MOV("1", lo["1"] + 0.3 * (hi["1"] - lo["1"]))
    wait_for(lambda: dev.qDRL(1)[1] >= 20)
    dev.DRC(1, "1", 1)  # armed again: the commanded position
    assert dev.qDRL(1)[1] == 0
    dev.MOV("1", lo["1"] + 0.6 * (hi["1"] - lo["1"]))
    wait_for(lambda: dev.qDRL(1)[1] >= 20)


def test_the_raw_byte_path_24_without_line_feed_does_not_swallow_the_next_command() -> None:
    with (
        served_port("E-727") as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=5) as s,
    ):
        s.sendall(b"SVO 1 1\nVEL 1 10\nMOV 1 1500\n")
        s.sendall(b"\x07")  # ready?
        assert s.recv(16) == b"\xb1\n"  # one byte 0xB1, not UTF-8's C2 B1
        s.sendall(b"\x18POS? 1\n")  # stop everything, then at once a query
        reply = _read_line(s)
        assert reply.startswith(b"1=")
        s.sendall(b"ERR?\n")
        assert _read_line(s) == b"10"  # stopped by command
        s.sendall(b"PUN? 1\n")
        assert _read_line(s) == b"1=\xb5m"  # µm in the controller's 8-bit code page


def _read_line(s: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return data[:-1]


def test_wave_generator_drives_the_axis_along_a_line_and_reports_running() -> None:
    with served_port("E-727") as (_, port), connected(port) as dev:
        started(dev)
        dev.WAV_LIN(1, 0, 1000, "X", 100, 500.0, 100.0, 1000)  # 100 -> 600 µm, 1000 points
        assert dev.qWAV(1, 1)[1][1] == 1000
        dev.WSL(1, 1)
        dev.WTR(1, 50, 0)  # one point per 50 servo cycles: 1 ms, the line takes 1 s
        dev.WGC(1, 0)  # until stopped: no race with the served clock
        dev.WGO(1, 1)
        assert dev.IsGeneratorRunning()[1]  # #9
        assert dev.IsMoving()["1"]
        with pytest.raises(GCSError) as err:
            dev.MOV("1", 10.0)
        assert err.value.val == 73  # the wave generator drives the axis
        dev.WGO(1, 0)
        assert not dev.IsGeneratorRunning()[1]
        dev.WGC(1, 1)  # one cycle: it ends on the line's last point
        dev.WGO(1, 1)
        wait_for(lambda: not dev.IsGeneratorRunning()[1])
        pitools.waitontarget(dev, axes="1", polldelay=0.01)
        assert dev.qPOS("1")["1"] == pytest.approx(600.0, abs=1e-6)


def test_settings_read_back_through_pipython_getters() -> None:
    with served_port("E-727") as (_, port), connected(port) as dev:
        started(dev)
        dev.VEL("1", 123.0)
        assert dev.qVEL("1")["1"] == pytest.approx(123.0)
        dev.MOV("2", 10.0)
        assert dev.qMOV("2")["2"] == pytest.approx(10.0)
        assert dev.qSAI_ALL() == ["1", "2", "3"]
        assert dev.qSEP("1", 0x07000601)["1"][0x07000601] == "\u00b5m"
        dev.DRC(3, "2", 3)
        assert dev.qDRC(3)[3] == ["2", 3]
        dev.DRT(3, 1, 0)  # trigger on the next target change
        assert dev.qDRT(3)[3] == [1, "0"]
        dev.RTR(7)
        assert dev.qRTR() == 7
        dev.WSL(2, 2)
        dev.WGC(2, 5)
        dev.WTR(2, 3, 1)
        assert dev.qWSL(2)[2] == 2 and dev.qWGC(2)[2] == 5
        assert dev.qWTR(2)[2] == [3, 1]
        assert dev.qWGO(2)[2] == 0
        dev.CTO(1, 3, 4)
        dev.CTO(1, 2, 1)
        assert dev.qCTO(1, 3)[1][3] == "4"  # generator trigger
        dev.TWS(1, 10, 1)
        dev.TWC()
        dev.HLT("2", noraise=True)
        assert not dev.IsMoving()["2"]


def test_gcsdevice_with_the_socket_gateway_works_too() -> None:
    """`GCSDevice(gateway=PISocket(...))`, the other way PI documents, on the C-884, closed
    as PI documents it (the device a context manager), leaving nothing for a later test."""
    from pipython import GCSDevice

    with served_port("C-884") as (_, port):
        # the device's exit takes its connection callback out of the list every gateway
        # shares (left there, it kept the device alive and ran its GCS detection on this
        # closed connection at the next connect anywhere) and closes the gateway
        with GCSDevice(gateway=_ClosingOnce("127.0.0.1", port)) as dev:
            assert dev.devname == "C-884.4DC"  # from *IDN?, for PIPython's per-model behaviour
            pitools.startup(dev, refmodes=["FRF"] * 3)
            dev.MOV("1", 13.0)
            pitools.waitontarget(dev, axes="1", polldelay=0.01)
            assert dev.qPOS("1")["1"] == pytest.approx(13.0)
        del dev
        gc.collect()  # its __del__, which closes the gateway again, runs here, not later


class _ClosingOnce(PISocket):
    """PIPython's socket gateway, closed once: `GCSDevice` closes its gateway at its exit and
    again in its `__del__`, and a second `PISocket.close` raises (Bad file descriptor)."""

    def close(self) -> None:
        if self.connected:
            super().close()


def test_a_parameter_the_controller_lacks_gets_no_answer_as_pipython_expects() -> None:
    """`SPA?` for a parameter a controller lacks: no reply, error 54 (unknown parameter) left
    for `ERR?`. PIPython's own `getparam` is written for it: it takes the timeout (-7), reads
    `ERR?` to clear the error and returns None. The C-884 has parameter 0x50 (velocity for
    reference moves: our driver asks for it only where `HPA?` lists it); the E-727 has not.
    An unknown command gets no reply either, and error 2."""
    with served_port("C-884") as (backend, port), connected(port) as dev:
        velocity = backend.world.stage.reference_velocity("1") / 1e-3  # mm/s
        assert dev.getparam(0x50, "1") == pytest.approx(velocity)
        assert dev.qSPA("1", 0x50)["1"][0x50] == pytest.approx(velocity)
        assert "0x00000050=" in dev.qHPA()
        assert dev.qERR() == 0
    with served_port("E-727") as (_, port), connected(port) as dev:
        dev.timeout = 300  # ms: the wait for a reply that does not come
        assert "0x00000050=" not in dev.qHPA()
        assert dev.getparam(0x50, "1") is None
        assert dev.qERR() == 0  # getparam read the error
        with pytest.raises(GCSError) as err:
            dev.ReadGCSCommand("SPA? 1 0x50")
        assert err.value.val == -7  # a timeout: nothing came
        assert dev.qERR() == 54  # unknown parameter
        with pytest.raises(GCSError) as err:
            dev.ReadGCSCommand("XYZ?")
        assert err.value.val == -7
        assert dev.qERR() == 2  # unknown command
        assert dev.qPUN("1") == {"1": "\u00b5m"}  # the next query gets its own answer


def test_a_served_world_has_its_field_code_compiled_before_any_client_connects() -> None:
    """In a fresh interpreter the first field computation compiles its code (a second or
    more); were that left to the first command a client sends, PIPython's connect-time
    `CSV?` could time out on a loaded machine, and the late "2.0" be read as the start of
    the `*IDN?` reply it sends next (an answer with a bare line feed inside: GCSError)."""
    import subprocess
    import sys

    code = (
        "from simulators.backend import SimulatedBackend\n"
        "from smm_daq.analysis import forward\n"
        "from smm_daq.instruments.profile import load_profile\n"
        "server = SimulatedBackend.serving(load_profile(), time_scale=1.0).serve_tcp()\n"
        "server.close()\n"
        "print(sorted(n for n, f in vars(forward).items() if getattr(f, 'signatures', None)))\n"
    )
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                           text=True, timeout=120, check=True)  # fmt: skip
    assert found.stdout.strip() not in ("", "[]"), found.stderr
