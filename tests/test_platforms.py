"""Windows and macOS, simulated on Linux: what those systems lack is taken away (a signal, a
call), or what they do is imitated (a cp1252 console), and the command line must still work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

_WINDOWS_SIGNALS = """
import json, signal, sys
del signal.SIGHUP, signal.pthread_sigmask  # as on Windows
signal.SIGBREAK = signal.SIGUSR1  # Windows' Ctrl-Break, played by a signal Linux has
from smm_daq import interrupts
from smm_daq.cli.main import main
sys.argv = ["smm-daq", "info", sys.argv[1]]
code = main()  # as the program: at its end, late signals are ignored, not blocked
late = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGBREAK)
signal.raise_signal(signal.SIGINT)  # ignored: no traceback, no death by signal
print(json.dumps([code, [s.name for s in interrupts.SIGNALS], [h == signal.SIG_IGN for h in late]]))
"""


def test_the_command_line_runs_where_there_is_no_sighup_and_no_signal_mask(tmp_path: Path):
    path = tmp_path / "s.h5"
    h5py.File(path, "w").close()  # a file of no entries: `info` succeeds
    done = subprocess.run([sys.executable, "-c", _WINDOWS_SIGNALS, str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code, routed, ignored = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0
    assert routed == ["SIGINT", "SIGTERM", "SIGUSR1"]  # SIGBREAK stopped a scan too
    assert ignored == [True, True]


class _Kernel32:
    """Windows' process calls, as kernel32 answers them, over a table of processes: pid ->
    (exit code, None while it runs; creation time); a pid missing is no process, None one
    this user may not open."""

    def __init__(self, processes: dict[int, tuple[int | None, int] | None]) -> None:
        self.processes = processes
        self.last_error = 0
        self.open_handles: set[int] = set()

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        # PROCESS_QUERY_LIMITED_INFORMATION, SYNCHRONIZE (to wait): no right to stop it
        assert access & ~(0x1000 | 0x100000) == 0
        if pid not in self.processes:
            self.last_error = 87  # ERROR_INVALID_PARAMETER
            return 0
        if self.processes[pid] is None:
            self.last_error = 5  # ERROR_ACCESS_DENIED
            return 0
        self.open_handles.add(pid + 1000)
        return pid + 1000

    def WaitForSingleObject(self, handle: int, milliseconds: int) -> int:
        assert milliseconds == 0  # asked, never waited for
        return 258 if self.processes[handle - 1000][0] is None else 0  # WAIT_TIMEOUT, _OBJECT_0

    def GetProcessTimes(self, handle: int, created, *_times) -> int:
        ticks = self.processes[handle - 1000][1]
        created._obj.dwHighDateTime, created._obj.dwLowDateTime = ticks >> 32, ticks & 0xFFFFFFFF
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.open_handles.remove(handle)
        return 1


def test_whether_a_writer_runs_is_asked_on_windows_without_signalling_it(monkeypatch):
    """On Windows os.kill(pid, 0) sends Ctrl-C, other numbers terminate: never called."""
    import os
    import socket

    from smm_daq.storage import h5file, processes

    def no_signal(pid: int, sig: int) -> None:
        raise AssertionError(f"os.kill({pid}, {sig}): on Windows that stops the process")

    me, running, ended, others, ended_259 = os.getpid(), 4242, 4343, 4444, 4646
    kernel = _Kernel32({me: (None, 1 << 40), running: (None, 133_000_000_000_000_007),
                        ended: (0, 5), others: None, ended_259: (259, 9)})
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", no_signal)
    monkeypatch.setattr(processes, "_kernel32", lambda: kernel)
    monkeypatch.setattr(processes, "_last_error", lambda: kernel.last_error)
    host = socket.gethostname()

    assert h5file.writer_id() == f"{host}:{me}:{1 << 40}"  # its creation time as its token
    assert h5file.writer_alive(f"{host}:{running}:133000000000000007")
    assert not h5file.writer_alive(f"{host}:{running}:133000000000000001")  # pid reused
    assert h5file.writer_alive(f"{host}:{running}")  # an earlier writer's, without a token
    assert not h5file.writer_alive(f"{host}:{ended}:5")  # ended, its handle still held
    # ended with exit code 259, which GetExitCodeProcess reports as STILL_ACTIVE
    assert not h5file.writer_alive(f"{host}:{ended_259}:9")
    assert not h5file.writer_alive(f"{host}:4545")  # no such process
    assert h5file.writer_alive(f"{host}:{others}")  # another user's: running
    assert kernel.open_handles == set()  # every handle closed


def test_output_a_cp1252_console_cannot_show_is_replaced_not_fatal():
    """Windows writes redirected output in cp1252, which has µ but no χ, λ, − or √."""
    import os

    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from smm_daq.cli.main import main; sys.exit(main())",
         "susceptibility", "--help"], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode("cp1252")
    out = done.stdout.decode("cp1252")
    assert "? of the penalty ?M?² + ?²??M?², µm (default" in out  # µ and ² kept


_CSV_EXPORT = """
import sys
import numpy as np
import pytest
from smm_daq.analysis.export import write_csv
from smm_daq.storage.mapdata import MapData
m = MapData(bz=np.array([[1e-9]]), x=np.array([0.0]), y=np.array([0.0]))
write_csv(m, sys.argv[1], column="\\u03c7_SI", factor=1.0)  # chi: the script stays ASCII
"""


def test_a_csv_export_is_utf8_whatever_the_locale_encoding(tmp_path: Path):
    """Windows' locale encoding is cp1252 (no χ); played here by Linux's C locale (ASCII)."""
    import os

    path = tmp_path / "map.csv"
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run([sys.executable, "-c", _CSV_EXPORT, str(path)], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert path.read_bytes().decode("utf-8").splitlines()[0] == "x_um,y_um,χ_SI"


def test_a_repair_windows_cannot_swap_in_is_refused_with_the_file_as_it_was(tmp_path: Path,
                                                                         monkeypatch, capsys):
    """Windows refuses to replace a file another program has open (a viewer): os.replace
    fails with a sharing violation, a PermissionError."""
    import os

    from smm_daq.cli.main import main
    from smm_daq.storage import h5file
    from smm_daq.storage.h5file import leftovers, writing

    monkeypatch.setattr(h5file, "_WINDOWS", True)
    path = tmp_path / "s.h5"
    with writing(path) as f:
        f["kept"] = np.arange(3)
    with h5py.File(path, "a", libver="latest") as f:  # as an earlier version wrote: rewritten
        f["old"] = np.array([True])
    before = path.read_bytes()

    def sharing_violation(src: object, dst: object) -> None:
        raise PermissionError(13, "The process cannot access the file because it is being "
                                  "used by another process")

    monkeypatch.setattr(os, "replace", sharing_violation)
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot be replaced by its repaired copy (The process cannot access" in err
    assert "expected it open in no other program" in err
    assert path.read_bytes() == before
    assert leftovers(path) == []  # its copy removed


@pytest.mark.parametrize(("sticky", "advice"), [
    (True, "expected a file this user may replace: its folder, {folder}, has the sticky bit "
           "set (as /tmp), where only the file's owner or the folder's may replace it"),
    (False, "expected its folder, {folder}, writable by this user"),
], ids=["sticky folder", "folder not writable"])
def test_a_repair_a_posix_folder_refuses_to_swap_in_says_what_the_folder_needs(
        tmp_path: Path, monkeypatch, capsys, sticky: bool, advice: str):
    """On Linux or macOS a rename onto the file is refused by its folder's permissions (a
    shared folder with the sticky bit, the file another user's; a folder not writable),
    never because a program has it open: the advice names the folder, not Windows."""
    import os

    from smm_daq.cli.main import main
    from smm_daq.storage import h5file
    from smm_daq.storage.h5file import leftovers, writing

    monkeypatch.setattr(h5file, "_WINDOWS", False)
    folder = tmp_path / "shared"
    folder.mkdir()
    path = folder / "s.h5"
    with writing(path) as f:
        f["kept"] = np.arange(3)
    with h5py.File(path, "a", libver="latest") as f:  # as an earlier version wrote: rewritten
        f["old"] = np.array([True])
    before = path.read_bytes()
    if sticky:
        folder.chmod(0o1777)

    def refused(src: object, dst: object) -> None:
        raise PermissionError(1 if sticky else 13, os.strerror(1 if sticky else 13))

    monkeypatch.setattr(os, "replace", refused)
    assert main(["repair", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot be replaced by its repaired copy" in err
    assert advice.format(folder=folder) in err and "Windows" not in err
    assert path.read_bytes() == before
    assert leftovers(path) == []  # its copy removed


_WRITING_WITHOUT_OFD_LOCKS = """
import sys
from smm_daq.storage import h5file
h5file.fcntl = None  # as on Windows (macOS has fcntl, but no open-file-description locks)
with h5file.writing(sys.argv[1]):
    print("writing", flush=True)
    sys.stdin.read()
"""


def test_where_there_are_no_ofd_locks_a_writer_holds_the_file_against_other_processes(
        tmp_path: Path, monkeypatch):
    """Two processes writing one file at once (a scan, and `smm-daq subtract` into the same
    file) would corrupt it: without open-file-description locks, a lock file stands in."""
    from filelock import Timeout

    from smm_daq.storage import h5file

    path = tmp_path / "s.h5"
    with h5file.writing(path):
        pass
    monkeypatch.setattr(h5file, "fcntl", None)
    writer = subprocess.Popen([sys.executable, "-c", _WRITING_WITHOUT_OFD_LOCKS, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "writing\n"
        probe = h5file._machine_lock(tmp_path / "." / "S.H5")  # spelled as Windows allows
        with pytest.raises(Timeout):
            probe.acquire(timeout=0)
    finally:
        writer.communicate("")
    assert writer.returncode == 0
    with h5file.writing(path) as f:  # released with the write
        f["after"] = 1


def test_where_there_are_no_ofd_locks_a_reader_does_not_hold_the_file_against_a_writer(
        tmp_path: Path, monkeypatch):
    """There the lock that stands in is exclusive and waited for without end: held for a
    whole read (a notebook, `info` piped into a pager), it would stall a scan's next line."""
    from smm_daq.storage import h5file

    path = tmp_path / "s.h5"
    with h5file.writing(path) as f:
        f["x"] = 1
    monkeypatch.setattr(h5file, "fcntl", None)
    probe = h5file._machine_lock(path)  # what a writer in another process takes
    with h5file.open_read(path) as f:
        assert f["x"][()] == 1
        probe.acquire(timeout=0)  # Timeout when the reader holds it
        probe.release()
    with h5file.writing(path) as f:
        f["after"] = 2
    with h5file.open_read(path) as f:
        assert f["after"][()] == 2


def test_profiles_and_recipes_saved_by_windows_editors_read_as_written(tmp_path: Path, repo):
    """Notepad's "UTF-8 with BOM" (PowerShell 5's -Encoding utf8) and CRLF line ends."""
    import codecs
    import dataclasses

    from smm_daq.acquisition.recipe import load_recipe
    from smm_daq.instruments.profile import load_profile

    def windows(source: Path) -> Path:
        saved = tmp_path / source.name
        saved.write_bytes(codecs.BOM_UTF8 + source.read_bytes().replace(b"\n", b"\r\n"))
        return saved

    plain = load_profile(repo / "configs" / "simulator.toml")
    saved = load_profile(windows(repo / "configs" / "simulator.toml"))
    assert repr(dataclasses.replace(saved, path=plain.path, text=plain.text,  # arrays: by repr
                                    calibration_file=plain.calibration_file)) == repr(plain)
    recipe = repo / "configs" / "recipes" / "remanent-and-induced.toml"
    assert load_recipe(windows(recipe)).steps == load_recipe(recipe).steps


def test_a_macos_serial_port_is_one_instrument_by_its_call_in_or_call_out_device(monkeypatch):
    """macOS makes /dev/tty.X (call-in) and /dev/cu.X (call-out) for each serial port."""
    from smm_daq.instruments.rig_lock import address_key

    monkeypatch.setattr(sys, "platform", "darwin")
    assert (address_key("serial:/dev/tty.usbserial-A10K") ==
            address_key("ASRL/dev/cu.usbserial-A10K::INSTR"))
    assert address_key("serial:/dev/cu.usbserial-A10K") != address_key("serial:/dev/cu.other")


def test_without_a_usable_lock_directory_files_are_still_written(tmp_path: Path, monkeypatch):
    """The lock file is a safeguard between processes: where it cannot be had, the write
    goes on as before (threads of one process still take turns)."""
    from smm_daq.storage import h5file

    not_a_directory = tmp_path / "locks"
    not_a_directory.write_text("a file\n", encoding="utf-8")
    monkeypatch.setenv("SMM_DAQ_LOCK_DIR", str(not_a_directory / "below"))
    monkeypatch.setattr(h5file, "fcntl", None)
    path = tmp_path / "s.h5"
    with h5file.writing(path) as f:
        f["written"] = 1
    with h5file.open_read(path) as f:
        assert f["written"][()] == 1


@pytest.mark.parametrize(("name", "problem"), [
    ("map.csv:x", "holds ':', which on Windows \\(NTFS\\) writes to a hidden stream of the file "
                  "'map.csv'"),
    ("nul.csv", "is the device name 'nul'"),
    ("COM1.tar.h5", "is the device name 'COM1'"),
    ("lpt9", "is the device name 'lpt9'"),
    ("aux .png", "is the device name 'aux'"),
    ("map.csv.", "ends in '.' or a space"),
    ("map?.csv", "holds '\\?'"),
])
def test_an_output_name_windows_would_not_make_as_typed_is_refused_there(tmp_path, monkeypatch,
                                                                          name, problem):
    """On NTFS 'map.csv:x' writes a hidden stream of map.csv; 'nul.csv' opens the device."""
    from smm_daq.cli.args import output_file, session_file
    from smm_daq.errors import InputError
    from smm_daq.storage.scan_entry import check_new_scan

    text = str(tmp_path / name)
    for check in (lambda: output_file("--csv", text), lambda: session_file("--out", text),
                  lambda: check_new_scan(text, "scan")):
        monkeypatch.setattr(sys, "platform", "win32")
        with pytest.raises(InputError, match=f"is '.*', whose name {problem}.*; expected a name "
                           "without ':'"):
            check()
        monkeypatch.setattr(sys, "platform", "linux")
        check()  # an ordinary name elsewhere ('12:30' in a timestamp, con.csv)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["console.csv", "com10.csv", "nul_scan.h5", "map.v2.csv"])
def test_names_that_only_look_like_devices_are_written_on_windows(tmp_path, monkeypatch, name):
    from smm_daq.cli.args import output_file

    monkeypatch.setattr(sys, "platform", "win32")
    assert output_file("--csv", str(tmp_path / name)) == tmp_path / name


def test_the_command_line_refuses_a_windows_stream_name_with_exit_2(demo_session, monkeypatch,
                                                                    capsys):
    from smm_daq.cli.main import main

    out = demo_session.parent / "map.csv:Bz"
    monkeypatch.setattr(sys, "platform", "win32")
    assert main(["export", str(demo_session), "--entry", "qdm", "--csv", str(out)]) == 2
    assert "whose name holds ':'" in capsys.readouterr().err
    assert sorted(p.name for p in demo_session.parent.iterdir()) == ["s.h5"]


def test_where_device_numbers_cannot_be_split_files_are_written_and_read(tmp_path: Path,
                                                                        monkeypatch):
    """Windows has no `os.major`: which file system a file is on cannot be told there, and
    every write and read must still work (its inode numbers trusted, as on macOS)."""
    import os

    from smm_daq.storage import h5file, identity, turns

    monkeypatch.delattr(os, "major")
    monkeypatch.delattr(os, "minor")
    monkeypatch.setattr(h5file, "fcntl", None)
    monkeypatch.setattr(identity, "_KEPT", {})
    monkeypatch.setattr(turns, "_LOCAL", {})
    assert turns.file_system_type(os.stat(tmp_path).st_dev) == ""
    path = tmp_path / "s.h5"
    with h5file.writing(path) as f:
        f["written"] = 1
    with h5file.open_read(path) as f:
        assert f["written"][()] == 1


def test_without_fallocate_a_write_or_rebuild_the_disk_has_no_room_for_is_refused(
        tmp_path: Path, monkeypatch):
    """macOS and Windows have no `posix_fallocate` to reserve a write's room with: the room
    the disk says is free stands in, so that a write a full disk would cut short (leaving a
    file no HDF5 reader opens) is refused before it starts, the file as it was, and a
    rebuild leaves no copy begun beside it."""
    import os
    import shutil

    from smm_daq.errors import StorageError
    from smm_daq.storage import h5file

    path = tmp_path / "s.h5"
    with h5file.writing(path) as f:
        f["x"] = np.arange(4.0)
    before = path.read_bytes()
    monkeypatch.delattr(os, "posix_fallocate")
    full = shutil.disk_usage(tmp_path)._replace(free=1 << 20)  # 1 MB: less than a write's
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: full)
    with pytest.raises(StorageError, match=r"no room to write to it.*disk has 1\.0 MB free"), \
            h5file.writing(path) as f:
        f["y"] = 1
    with pytest.raises(StorageError, match="no room to rebuild it"):
        h5file.make_extendable(path, ["/x"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
