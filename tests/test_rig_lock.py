"""The rig lock: on a real (TCP-served) rig, a second `open_rig`, command or window is refused
with the holder's name before it sends anything, and allowed once the first rig is closed;
`smm-daq safe` is never refused; a lock held by a killed process does not block."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from served_rig import UNHURRIED_TIMEOUT_S, ServedRig, served_to_pyvisa_py

from gui.rig_holder import RigHolder
from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig, rig_addresses
from smm_daq.instruments.rig_lock import (
    RigInUse,
    RigLock,
    address_key,
    holders,
)
from smm_daq.locks import LOCK_DIR_ENV

REPO = Path(__file__).resolve().parents[1]
WAIT_MS = 60_000
CURRENT_ATOL = 2e-3
# Holds the rig lock of the addresses given as arguments until its stdin closes (or it dies).
HOLD = ("import sys\nfrom smm_daq.instruments.rig_lock import RigLock\n"
        "lock = RigLock.acquire(sys.argv[1:])\nprint('held', flush=True)\nsys.stdin.read()\n")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    """The served rig, its links waiting for a reply as long as no loaded machine delays one
    (`UNHURRIED_TIMEOUT_S`): no test here means a reply lost."""
    with served_to_pyvisa_py(tmp_path_factory.mktemp("served"),
                             timeout_s=UNHURRIED_TIMEOUT_S) as rig:
        yield rig


def commands(served: ServedRig) -> dict[str, int]:
    """Commands each instrument has received so far."""
    return {role: proxy.commands for role, proxy in served.proxies.items()}


def test_a_second_open_rig_is_refused_naming_the_holder_then_allowed_after_close(served):
    profile = load_profile(served.profile_path)
    first = open_rig(profile, clock=served.clock)
    try:
        sent = commands(served)
        with pytest.raises(RigInUse) as refused:
            open_rig(profile, clock=served.clock)
        message = str(refused.value)
        assert commands(served) == sent  # refused before a single command
        assert message.startswith("the rig's instruments " + ", ".join(rig_addresses(profile))
                                  + " are in use by smm-daq process "
                                  f"{os.getpid()} on this machine (this process: ")
        # the holder is this very process: not to be waited for or stopped, but closed
        assert message.endswith("; expected them free: this process holds them itself, a rig "
                                "opened earlier in it and not closed (a notebook's cell that "
                                "opens a Session run again?): close that one first "
                                "(`session.close()`, or leave its `with` block)")
    finally:
        first.close()
    second = open_rig(profile, clock=served.clock)
    second.close()


@pytest.mark.parametrize("argv", [
    ["scan", "--center-um", "100,100", "--size-um", "40,40", "--step-um", "20", "--name", "b"],
    ["calibrate-coils"],
    ["check"],
], ids=lambda argv: argv[0])  # fmt: skip
def test_a_second_command_exits_2_moving_and_writing_nothing(
        served, tmp_path, capsys, argv: list[str]) -> None:
    profile = load_profile(served.profile_path)
    first = open_rig(profile, clock=served.clock)
    out = tmp_path / "second.h5"
    try:
        first.coils.set_field(np.array([0.0, 10e-6, 0.0]))
        currents, sent = served.currents(), commands(served)
        options = {"scan": ["--out", str(out)], "calibrate-coils": ["--out", str(out)]}
        capsys.readouterr()
        assert main([*argv, "--profile", str(served.profile_path),
                     *options.get(argv[0], [])]) == 2
        err = capsys.readouterr().err
        assert "\nsmm-daq: error: the rig's instruments " in "\n" + err
        assert f"in use by smm-daq process {os.getpid()} on this machine" in err
        assert "Traceback" not in err
        assert commands(served) == sent
        np.testing.assert_array_equal(served.currents(), currents)
        assert not out.exists()
    finally:
        first.make_safe()
        first.close()
    assert main(["check", "--profile", str(served.profile_path)]) == 0  # free again


def test_smm_daq_safe_is_not_refused_and_names_the_holder(served, capsys) -> None:
    first = open_rig(load_profile(served.profile_path), clock=served.clock)
    try:
        first.coils.set_field(np.array([0.0, 10e-6, 0.0]))
        capsys.readouterr()
        assert main(["safe", "--profile", str(served.profile_path)]) == 0
        err = capsys.readouterr().err
        assert (f"smm-daq: note: the rig's instruments {', '.join(rig_addresses(first.profile))}"
                f" are in use by smm-daq process {os.getpid()}") in err
        assert "making the rig safe anyway" in err
        np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    finally:
        first.close()


def test_the_window_shows_the_refusal_as_a_connect_error(served, qtbot) -> None:
    from gui.instruments_panel import InstrumentsPanel

    profile = load_profile(served.profile_path)
    first = open_rig(profile, clock=served.clock)
    holder = RigHolder(profile)
    panel = InstrumentsPanel(holder)
    qtbot.addWidget(panel)
    try:
        with qtbot.waitSignal(holder.failed, timeout=WAIT_MS):
            panel.connect_rig()
        assert holder.rig is None
        assert panel.message.text().startswith("Could not open the rig: the rig's instruments ")
        assert f"in use by smm-daq process {os.getpid()}" in panel.message.text()
        assert panel.connect_button.isEnabled()
    finally:
        holder.close()
        first.close()


def test_a_lock_held_by_a_killed_process_does_not_block(tmp_path: Path) -> None:
    addresses = ["GPIB0::8::INSTR", "TCPIP0::127.0.0.1::5025::SOCKET"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, *addresses], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(RigInUse) as refused:
            RigLock.acquire(addresses)
        assert f"smm-daq process {holder.pid} on this machine" in str(refused.value)
        assert f"running `-c {' '.join(addresses)}` since " in str(refused.value)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # nothing of its own runs at the end
        holder.communicate()
    assert holder.returncode == -signal.SIGKILL
    RigLock.acquire(addresses).release()


def test_a_refused_lock_keeps_none_of_the_addresses_and_a_released_one_no_record() -> None:
    first = RigLock.acquire(["GPIB0::3::INSTR"])
    try:
        with pytest.raises(RigInUse) as refused:
            RigLock.acquire(["GPIB0::4::INSTR", "GPIB0::3::INSTR"])
        assert str(refused.value).startswith("the rig's instrument GPIB0::3::INSTR is in use by")
        assert "expected it free" in str(refused.value)
        RigLock.acquire(["GPIB0::4::INSTR"]).release()  # the refused call gave it back
        assert list(holders(["GPIB0::3::INSTR", "GPIB0::4::INSTR"])) == ["GPIB0::3::INSTR"]
    finally:
        first.release()
    assert holders(["GPIB0::3::INSTR"]) == {}
    assert not list(Path(os.environ[LOCK_DIR_ENV]).glob("GPIB0_3*.holder.json"))


@pytest.fixture
def no_name_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any look-up that could ask a name server fails the test: only numeric spellings
    (AI_NUMERICHOST) may go through getaddrinfo."""
    import socket

    real = socket.getaddrinfo

    def numeric_only(host: object, port: object, *args: object, **kwargs: object) -> object:
        flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
        assert isinstance(flags, int) and flags & socket.AI_NUMERICHOST, f"{host} looked up"
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    def no_lookup(*_: object, **__: object) -> None:
        raise AssertionError("a name was looked up")

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    for name in ("gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getfqdn"):
        monkeypatch.setattr(socket, name, no_lookup)


@pytest.fixture
def hosts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's hosts file names two instruments and gives this machine another name."""
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.1.1 labpc.example.org labpc  # this one\n"
                     "192.168.1.5 lockin-a  # the SR830\n192.168.1.6\tlockin-b\n"
                     "fe80::5 lockin-a\n")
    monkeypatch.setattr("smm_daq.instruments.rig_lock.HOSTS_FILE", hosts, raising=False)


@pytest.fixture
def serial_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory laid out like /dev: ttyUSB0, ttyUSB1 and udev's links to the first."""
    dev = tmp_path / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    (dev / "ttyUSB0").touch()
    (dev / "ttyUSB1").touch()
    (dev / "serial" / "by-id" / "usb-FTDI_FT232R_A1B2-if00-port0").symlink_to("../../ttyUSB0")
    (dev / "pi-stage").symlink_to("ttyUSB0")
    return dev


def _assert_held_against(held: str, asked: str) -> None:
    """While `held` is locked, `asked` is refused as the same instrument."""
    first = RigLock.acquire([held])
    try:
        with pytest.raises(RigInUse, match=re.escape(f"instrument {asked} is in use")):
            RigLock.acquire([asked])
    finally:
        first.release()


@pytest.mark.parametrize(("held", "asked"), [
    ("GPIB0::8::INSTR", "gpib::8"),
    ("TCPIP::192.168.1.5::5025::SOCKET", "tcpip0::192.168.1.5::5025::socket"),
    ("ASRL/dev/ttyUSB0::INSTR", "serial:/dev/ttyUSB0"),
    ("serial:COM3", "ASRL3::INSTR"),
    ("serial:\\\\.\\COM10", "ASRL10::INSTR"),
    ("GPIB0::8::INSTR", "gpib0::8::instr"),
    ("asrl::instr", "ASRL0::INSTR"),
    # loopback: one machine, whatever name or address reaches it
    ("TCPIP::localhost::5025::SOCKET", "TCPIP0::127.0.0.1::5025::SOCKET"),
    ("TCPIP::LocalHost::5025::SOCKET", "TCPIP0::[::1]::5025::SOCKET"),
    ("TCPIP0::127.0.0.1::5025::SOCKET", "TCPIP::[::ffff:127.0.0.1]::5025::SOCKET"),
    ("TCPIP0::127.0.0.1::5025::SOCKET", "TCPIP::127.1::5025::SOCKET"),
    ("TCPIP0::LOCALHOST::5025::SOCKET", "TCPIP::labpc::5025::SOCKET"),  # the hosts file's
    # the hosts file's names are their addresses
    ("TCPIP::lockin-a::INSTR", "TCPIP0::192.168.1.5::inst0::INSTR"),
    ("TCPIP::LOCKIN-B::5025::SOCKET", "TCPIP0::192.168.1.6::5025::SOCKET"),
    # a pyserial TCP URL is that host's port, as VISA's socket resource is
    ("serial:socket://localhost:7000", "serial:socket://127.0.0.1:7000"),
    ("serial:socket://[::1]:7000/?logging=debug", "TCPIP::localhost::7000::SOCKET"),
    ("serial:rfc2217://lockin-a:2217", "TCPIP0::192.168.1.5::2217::SOCKET"),
    # a VXI-11 device is inst0 unless named
    ("TCPIP0::localhost::inst0::INSTR", "tcpip::127.0.0.1::INSTR"),
    ("TCPIP::[fe80::1]::INSTR", "TCPIP0::[FE80:0:0:0:0:0:0:1]::inst0::INSTR"),
])  # fmt: skip
@pytest.mark.usefixtures("no_name_server", "hosts_file")
def test_other_spellings_of_an_address_are_the_same_instrument(held: str, asked: str) -> None:
    assert address_key(held) == address_key(asked)
    _assert_held_against(held, asked)


def test_this_machines_own_name_is_loopback(no_name_server: None) -> None:
    import socket

    assert (address_key(f"TCPIP::{socket.gethostname()}::5025::SOCKET")
            == address_key("TCPIP0::127.0.0.1::5025::SOCKET"))


@pytest.mark.parametrize(("held", "asked"), [
    ("ASRL{dev}/ttyUSB0::INSTR", "serial:{dev}/serial/by-id/usb-FTDI_FT232R_A1B2-if00-port0"),
    ("serial:{dev}/pi-stage", "ASRL{dev}/serial/by-id/usb-FTDI_FT232R_A1B2-if00-port0::INSTR"),
    ("serial:{dev}/serial/../ttyUSB0", "serial:{dev}/ttyUSB0"),
])  # fmt: skip
@pytest.mark.skipif(os.name != "posix", reason="POSIX device paths")
def test_links_to_a_serial_port_are_that_port(held: str, asked: str, serial_links: Path
                                              ) -> None:
    held, asked = held.format(dev=serial_links), asked.format(dev=serial_links)
    _assert_held_against(held, asked)


@pytest.mark.parametrize(("one", "other"), [
    ("TCPIP::localhost::5025::SOCKET", "TCPIP::localhost::5026::SOCKET"),
    ("TCPIP::localhost::5025::SOCKET", "TCPIP::192.168.1.5::5025::SOCKET"),
    ("TCPIP::localhost::inst0::INSTR", "TCPIP::localhost::inst1::INSTR"),
    ("TCPIP::localhost::hislip0::INSTR", "TCPIP::localhost::INSTR"),
    ("GPIB0::8::INSTR", "GPIB1::8::INSTR"),
    ("TCPIP::lockin-a::INSTR", "TCPIP::lockin-b::INSTR"),
    ("TCPIP::lockin-a::INSTR", "TCPIP::localhost::INSTR"),
    ("TCPIP::rigbox.lab.example::INSTR", "TCPIP::192.168.1.7::INSTR"),  # not resolved
    ("serial:socket://localhost:7000", "serial:socket://localhost:7001"),
    ("serial:socket://localhost:7000", "serial:socket://lockin-b:7000"),
    ("serial:COM3", "serial:COM4"),
    ("serial:{dev}/ttyUSB0", "serial:{dev}/ttyUSB1"),
    ("ASRL{dev}/pi-stage::INSTR", "ASRL{dev}/ttyUSB1::INSTR"),
])  # fmt: skip
@pytest.mark.usefixtures("no_name_server", "hosts_file")
def test_other_instruments_are_not_the_same(one: str, other: str, serial_links: Path) -> None:
    one, other = one.format(dev=serial_links), other.format(dev=serial_links)
    assert address_key(one) != address_key(other)
    first = RigLock.acquire([one])
    try:
        RigLock.acquire([other]).release()
    finally:
        first.release()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_every_user_of_the_machine_can_lock_in_the_directory(tmp_path, monkeypatch) -> None:
    directory = tmp_path / "shared" / "locks"
    monkeypatch.setenv(LOCK_DIR_ENV, str(directory))
    previous = os.umask(0o077)  # a private umask must not make the lock private
    try:
        lock = RigLock.acquire(["GPIB0::8::INSTR"])
    finally:
        os.umask(previous)
    try:
        assert directory.stat().st_mode & 0o7777 == 0o777  # writable by all, not sticky
        (lock_file,) = directory.glob("*.lock")
        (record,) = directory.glob("*.holder.json")
        assert lock_file.stat().st_mode & 0o777 == 0o666
        assert record.stat().st_mode & 0o777 == 0o644
        assert lock_file.name.startswith("GPIB0_8-")
    finally:
        lock.release()


def test_simulated_rigs_take_no_lock(tmp_path, monkeypatch) -> None:
    """Each process has its own simulated world: two rigs of one simulated profile coexist."""
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    profile = load_profile()
    with open_rig(profile), open_rig(profile):
        pass
    assert not (tmp_path / "locks").exists()
