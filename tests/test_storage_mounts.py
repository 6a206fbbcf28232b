"""A device number (st_dev) reused by another file system: what was found out about the one
unmounted (whether its inode numbers tell a file, whether its locks are the kernel's) is not
taken for the one mounted under its number after it. The mount table is simulated (its
reader, `mounts.table`, and the kernel's mark of a change, `mounts.generation`), except in
the one test that mounts a tmpfs in a mount namespace of its own, where the system lets it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from acq_fakes import fake_rig
from test_storage_identity import _plan, _Shown

from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.storage import identity, mounts, turns
from smm_daq.storage.h5file import text, writing

REPO = Path(__file__).resolve().parents[1]
STICK = os.makedev(8, 17)  # sdb1


class _MountTable:
    """This process's mount table as a test sets it: one file system mounted at /media/stick
    as `device`; `mount` puts another there, and the kernel marks the table changed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, device: int, kind: str) -> None:
        self.device, self.kind, self.changes, self.reads = device, kind, 0, 0
        self.elsewhere: list[str] = []
        self.mount_id = 40
        monkeypatch.setattr(identity, "_KEPT", {})
        monkeypatch.setattr(turns, "_LOCAL", {})
        monkeypatch.setattr(turns, "_ENTRIES", {})
        monkeypatch.setattr(mounts, "table", self.read)
        monkeypatch.setattr(mounts, "generation", lambda: self.changes)

    def read(self) -> list[str]:
        self.reads += 1
        number = f"{os.major(self.device)}:{os.minor(self.device)}"
        return ["22 1 0:21 / / rw,relatime - overlay overlay rw\n",
                f"{self.mount_id} 22 {number} / /media/stick rw,nosuid shared:7 - "
                f"{self.kind} /dev/sdb1 rw\n", *self.elsewhere]

    def mount(self, kind: str) -> None:
        self.kind = kind
        self.mount_id += 1
        self.changes += 1

    def mount_elsewhere(self) -> None:
        """Another file system mounted, at another place, under another number."""
        self.elsewhere.append(f"{60 + self.changes} 22 0:{90 + self.changes} / /run/user/1000 "
                              "rw - tmpfs tmpfs rw\n")
        self.changes += 1


@pytest.mark.parametrize(("before", "after"), [("ext4", "exfat"), ("exfat", "ext4"),
                                               ("xfs", "fuseblk"), ("vfat", "ntfs3")])
def test_whether_inode_numbers_tell_a_file_is_asked_anew_once_another_is_mounted(
        monkeypatch: pytest.MonkeyPatch, before: str, after: str) -> None:
    table = _MountTable(monkeypatch, STICK, before)
    kept = before in identity.INODE_KEEPING_TYPES
    assert identity.inode_kept(STICK) is kept
    assert identity.inode_kept(STICK) is kept
    assert table.reads == 1  # the table is read once while it stays as it was
    table.mount(after)
    assert identity.inode_kept(STICK) is not kept
    assert table.reads == 2


@pytest.mark.parametrize(("before", "after"), [("nfs4", "ext4"), ("ext4", "cifs")])
def test_whether_lock_calls_answer_at_once_is_asked_anew_once_another_is_mounted(
        monkeypatch: pytest.MonkeyPatch, before: str, after: str) -> None:
    table = _MountTable(monkeypatch, STICK, before)
    local = before in turns.LOCAL_TYPES
    assert turns._local(STICK) is local
    table.mount(after)
    assert turns._local(STICK) is not local


def test_a_scan_goes_on_on_an_exfat_stick_put_in_where_an_ext4_one_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """exFAT numbers a file anew once it has dropped out of memory: the scan's file shows a
    new inode number after each line. This process looked at the ext4 stick before."""
    device = os.stat(tmp_path).st_dev
    table = _MountTable(monkeypatch, device, "ext4")
    assert identity.inode_kept(device)  # a file of the ext4 stick, looked at
    table.mount("exfat")
    looks = [0]
    real_stat, real_fstat = os.stat, os.fstat

    def show(st: os.stat_result) -> os.stat_result | _Shown:
        return st if st.st_dev != device else _Shown(st, device, st.st_ino + 1_000_003 * looks[0])

    monkeypatch.setattr(os, "stat", lambda *a, **k: show(real_stat(*a, **k)))
    monkeypatch.setattr(os, "fstat", lambda fd: show(real_fstat(fd)))
    path = tmp_path / "s.h5"
    seq = Sequencer(fake_rig(), path, _plan())
    seq.subscribe(lambda e: looks.__setitem__(0, looks[0] + 1) if e.kind == "line_done" else None)
    assert seq.run() == "finished", seq.message
    with h5py.File(path, "r") as f:
        assert text(f["k/status"]) == "finished"
        assert f["k/data/line_done"][()].all() and np.isfinite(f["k/data/Bz"][()]).all()


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path(mounts.MOUNT_TABLE).exists(),
                    reason="no mount table to watch")
def test_a_forked_child_closes_no_file_of_its_own_opened_under_the_watchs_old_number(
        tmp_path: Path) -> None:
    """A child forked (a daemon) may close every descriptor it inherited and open its own
    files under their numbers: its next look at the mount table leaves them open."""
    watch = mounts._Watch()
    watch.generation()
    inherited = watch._fd
    assert inherited is not None
    watch.forked()  # as `os.fork` calls it in the child
    log = os.open(tmp_path / "daemon.log", os.O_WRONLY | os.O_CREAT, 0o600)
    if log != inherited:  # the daemon's log under the number the table had
        os.dup2(log, inherited)
        os.close(log)
    try:
        watch.generation()
        assert os.fstat(inherited).st_ino == os.stat(tmp_path / "daemon.log").st_ino
        assert watch._fd not in (None, inherited)  # the child watches a table of its own
    finally:
        os.close(inherited)
        if watch._fd is not None:
            os.close(watch._fd)


def _out_of_descriptors(*args: object, **kwargs: object) -> int:
    raise OSError(errno.EMFILE, "Too many open files")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path(mounts.MOUNT_TABLE).exists(),
                    reason="no mount table to watch")
def test_the_mount_table_is_watched_once_descriptors_are_free_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A window open for days that ran out of descriptors once, at its first look, watches the
    table once it has some again: it does not read the table at every look from then on."""
    watch = mounts._Watch()
    with monkeypatch.context() as out:
        out.setattr(os, "open", _out_of_descriptors)
        assert watch.generation() != watch.generation()  # nothing kept meanwhile
    try:
        watched = watch.generation()
        assert watch.generation() == watched
    finally:
        if watch._fd is not None:
            os.close(watch._fd)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path(mounts.MOUNT_TABLE).exists(),
                    reason="no mount table to read")
def test_what_is_found_while_the_table_cannot_be_read_is_not_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A look while the process is out of descriptors finds no type: it is asked again at the
    next look, not kept until the next mount (days), as "cannot be told"."""
    watch = mounts._Watch()
    monkeypatch.setattr(mounts, "_WATCH", watch)
    proc = os.stat("/proc").st_dev
    try:
        watch.generation()  # watched before the descriptors ran out
        kept: dict[int, tuple[int, str]] = {}
        with monkeypatch.context() as out:
            out.setattr(mounts, "MOUNT_TABLE", "/proc/self/no-such-table")
            assert mounts.remembered(kept, proc, turns.file_system_type) == ""
        assert mounts.remembered(kept, proc, turns.file_system_type) == "proc"
    finally:
        if watch._fd is not None:
            os.close(watch._fd)


def test_a_mount_point_named_in_bytes_other_than_utf8_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stick mounted at a folder named in Latin-1 (the kernel says its bytes as they are):
    the table is read, and the other file systems' types are told."""
    number = f"{os.major(STICK)}:{os.minor(STICK)}"
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(b"22 1 0:21 / / rw,relatime - overlay overlay rw\n"
                          b"40 22 0:50 / /media/Cl\xe9 rw - vfat /dev/sdc1 rw\n"
                          + f"41 22 {number} / /media/stick rw - exfat /dev/sdb1 rw\n".encode())
    monkeypatch.setattr(mounts, "MOUNT_TABLE", str(mountinfo))
    assert turns.file_system_type(STICK) == "exfat"
    assert "/media/Cl\udce9" in turns.mount_entry(os.makedev(0, 50))


def test_the_mount_table_is_read_once_per_change_whoever_asks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write asks of its file system whether it keeps inode numbers and whether its locks
    are the kernel's: after a mount, both are found from one read of the table, not one each
    (the table holds a line per mount: hundreds on a machine with containers)."""
    mountinfo = tmp_path / "mountinfo"
    number = f"{os.major(STICK)}:{os.minor(STICK)}"
    mountinfo.write_text("22 1 0:21 / / rw,relatime - overlay overlay rw\n"
                         f"40 22 {number} / /media/stick rw - ext4 /dev/sdb1 rw\n")
    changes, reads = [0], []
    real_open = open

    def counted(*args: object, **kwargs: object) -> object:
        reads.append(args[0])
        return real_open(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(mounts, "MOUNT_TABLE", str(mountinfo))
    monkeypatch.setattr(mounts, "open", counted, raising=False)
    monkeypatch.setattr(mounts, "generation", lambda: changes[0])
    monkeypatch.setattr(identity, "_KEPT", {})
    monkeypatch.setattr(turns, "_LOCAL", {})
    assert identity.inode_kept(STICK) and turns._local(STICK)
    assert len(reads) == 1
    mountinfo.write_text(mountinfo.read_text().replace("ext4", "exfat"))  # another stick
    changes[0] += 1
    assert not identity.inode_kept(STICK) and turns._local(STICK)
    assert turns.file_system_type(STICK) == "exfat"
    assert len(reads) == 2, f"the table was read {len(reads) - 1} times after one change"



def test_a_mount_made_while_the_table_is_read_is_seen_at_the_next_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read of the table may meet the table as it was before a mount the kernel marks
    during it: that read is kept as of the look before the mark, so the next look reads the
    table again, not the old lines for ever (kept as of the look after, nothing would tell
    it was read before the mount)."""
    mountinfo = tmp_path / "mountinfo"
    before = f"40 22 {os.major(STICK)}:{os.minor(STICK)} / /media/stick rw - ext4 /dev/sdb1 rw\n"
    mountinfo.write_text(before)
    changes = [0]
    real_open = open

    def mounted_meanwhile(*args: object, **kwargs: object) -> object:
        fh = real_open(*args, **kwargs)  # type: ignore[call-overload]
        if changes[0] == 0:  # the old table's lines are in hand; a stick goes in
            lines = fh.readlines()
            mountinfo.write_text(before.replace("ext4", "exfat"))
            changes[0] += 1
            fh.readlines = lambda: lines
        return fh

    monkeypatch.setattr(mounts, "MOUNT_TABLE", str(mountinfo))
    monkeypatch.setattr(mounts, "open", mounted_meanwhile, raising=False)
    monkeypatch.setattr(mounts, "generation", lambda: changes[0])
    assert mounts.table() == [before]
    assert mounts.table() == [before.replace("ext4", "exfat")]


def test_the_table_kept_is_the_one_read_from_the_file_named_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lines kept are those of the file `MOUNT_TABLE` named when they were read: named
    another (a test's), the table is that file's, though no mount was marked meanwhile."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n")
    second.write_text("22 1 0:21 / / rw - xfs /dev/sda2 rw\n")
    monkeypatch.setattr(mounts, "generation", lambda: 7)
    monkeypatch.setattr(mounts, "MOUNT_TABLE", str(first))
    assert mounts.table() == [first.read_text()]
    monkeypatch.setattr(mounts, "MOUNT_TABLE", str(second))
    assert mounts.table() == [second.read_text()]

def _locked_by_another(path: Path) -> bool:
    """Whether a writer other than this probe holds the file `path` names, asked directly."""
    import fcntl  # Linux, as the test that asks

    probe = os.open(path, os.O_RDWR)
    try:
        return not turns._call(probe, fcntl.F_WRLCK, turns.DATA)
    finally:
        os.close(probe)


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
def test_a_file_system_mounted_where_one_whose_locks_did_not_answer_was_is_locked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An NFS share whose lock manager did not answer is read and written unlocked from then
    on; a local disk mounted under its device number once it is gone is locked again."""
    path = tmp_path / "s.h5"
    device = os.stat(tmp_path).st_dev
    table = _MountTable(monkeypatch, device, "nfs4")
    monkeypatch.setattr(turns, "_SILENT", {device: turns.file_system_identity(device)})
    table.mount_elsewhere()  # the share itself stays: its locks are not asked again
    with writing(path) as f:
        f["first"] = 1
        assert not _locked_by_another(path)
    table.mount("ext4")
    with writing(path) as f:
        f["second"] = 2
        assert _locked_by_another(path)


_SHARE = os.makedev(0, 53)  # an NFS share's anonymous device number


def _share_line(mount_id: int, where: str, propagation: str) -> str:
    return (f"{mount_id} 22 0:53 / {where} rw,relatime {propagation} - nfs4 "
            "fs:/export/scans rw,vers=4.2,addr=10.0.0.2\n")


def test_a_silent_share_mounted_again_or_left_mounted_elsewhere_is_not_asked_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What tells a file system is its number, type and source, not its mount ID,
    mount point or propagation: a remount of the same share, or its first mount removed while
    another stays, is the share whose lock manager did not answer (each ask costs a wait of
    `ANSWER_WAIT_S` and a thread stuck in the kernel)."""
    lines = [_share_line(40, "/mnt/scans", "shared:7"), _share_line(41, "/home/lab/scans", "")]
    changes = [0]
    monkeypatch.setattr(mounts, "table", lambda: ["22 1 0:21 / / rw - overlay overlay rw\n",
                                                  *lines])
    monkeypatch.setattr(mounts, "generation", lambda: changes[0])
    monkeypatch.setattr(turns, "_ENTRIES", {})
    monkeypatch.setattr(turns, "_SILENT", {_SHARE: turns.file_system_identity(_SHARE)})
    assert turns._silent(_SHARE)
    del lines[0]  # its first mount removed, the other stays
    changes[0] += 1
    assert turns._silent(_SHARE)
    lines[0] = _share_line(57, "/mnt/scans", "master:3")  # mounted again, anew
    changes[0] += 1
    assert turns._silent(_SHARE)
    lines[0] = lines[0].replace("nfs4 fs:/export/scans", "nfs4 other:/export/scans")
    changes[0] += 1
    assert not turns._silent(_SHARE)  # another share, under the number the first one had


_REMOUNTS = {  # the share's line, as `mount -o remount,...` leaves it
    "read-only": ("40 22 0:53 / /mnt/scans ro,relatime shared:7 - nfs4 fs:/export/scans "
                  "ro,vers=4.2,addr=10.0.0.2\n"),
    "other options": ("40 22 0:53 / /mnt/scans rw,nosuid,noatime shared:7 - nfs4 "
                      "fs:/export/scans rw,vers=4.2,rsize=65536,addr=10.0.0.2,soft\n"),
}


@pytest.mark.parametrize("how", sorted(_REMOUNTS))
def test_a_silent_share_remounted_with_other_options_is_not_asked_again(
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """A remount (`mount -o remount,ro`, or with other options) keeps the file system: its
    files, their inode numbers and its lock manager, which did not answer. Its mount and
    super options change, and were taken for another file system's, whose locks were asked
    again: another wait of `ANSWER_WAIT_S` and another thread stuck in the kernel."""
    lines = [_share_line(40, "/mnt/scans", "shared:7")]
    changes = [0]
    monkeypatch.setattr(mounts, "table", lambda: ["22 1 0:21 / / rw - overlay overlay rw\n",
                                                  *lines])
    monkeypatch.setattr(mounts, "generation", lambda: changes[0])
    monkeypatch.setattr(turns, "_ENTRIES", {})
    monkeypatch.setattr(turns, "_SILENT", {_SHARE: turns.file_system_identity(_SHARE)})
    monkeypatch.setattr(identity, "_KEPT", {})
    kept = identity.inode_kept(_SHARE)
    lines[0] = _REMOUNTS[how]
    changes[0] += 1
    assert turns._silent(_SHARE)
    assert identity.inode_kept(_SHARE) is kept  # its files keep their numbers, as before


@pytest.mark.skipif(not turns.available(), reason="no open-file-description locks")
def test_a_file_system_whose_locks_did_not_answer_while_the_table_was_unreadable_is_not_asked_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of descriptors as the lock call went unanswered, the mount table could not be read
    to say which file system that was: it is the one there when the table is read again, and
    its locks are not asked again, unless another is mounted under its number after."""
    import fcntl  # Linux, as the test that asks
    import threading
    import types

    device = os.stat(tmp_path).st_dev
    table = _MountTable(monkeypatch, device, "nfs4")
    readable = [False]
    read = table.read
    monkeypatch.setattr(mounts, "table", lambda: read() if readable[0] else [])
    release, calls = threading.Event(), []

    def silent(fd: int, cmd: int, arg: bytes) -> None:  # a lock manager that does not answer
        calls.append(cmd)
        release.wait()
        raise OSError(errno.ENOLCK, "no locks available")

    monkeypatch.setattr(turns, "fcntl", types.SimpleNamespace(
        fcntl=silent, **{k: getattr(fcntl, k) for k in dir(fcntl) if k.startswith("F_")}))
    monkeypatch.setattr(turns, "ANSWER_WAIT_S", 0.0)
    monkeypatch.setattr(turns, "_SILENT", {})
    fd = os.open(tmp_path / "s.h5", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="did not answer"):
            turns._attempt(fd, fcntl.F_WRLCK, turns.DATA)
        readable[0] = True
        table.changes += 1  # descriptors free again: the table is looked at anew
        with pytest.raises(OSError, match="did not answer before"):
            turns._attempt(fd, fcntl.F_WRLCK, turns.DATA)
        assert len(calls) == 1
        table.mount("ext4")
        assert not turns._silent(device)
    finally:
        release.set()
        os.close(fd)


# Run in a mount namespace of its own (`unshare -rm`): a tmpfs mounted over the folder
# argv[1] between two looks at its file system, by this process or, with argv[2] "child", by a
# child forked after the first look, which looks itself before its parent looks again. A look
# asks what a write asks: whether its inode numbers are kept, whether its locks are local.
_MOUNT_IN_A_NAMESPACE = """
import builtins, os, subprocess, sys
from smm_daq.storage import identity, mounts, turns
reads = []
mounts.open = lambda *a, **k: reads.append(1) or builtins.open(*a, **k)
device = os.stat(sys.argv[1]).st_dev
def look():
    identity.inode_kept(device)
    turns._local(device)
look()
look()
assert len(reads) == 1, f"the table was read {len(reads)} times, unchanged"
if sys.argv[2] == "child":
    child = os.fork()
    if child == 0:
        subprocess.run(["mount", "-t", "tmpfs", "none", sys.argv[1]], check=True)
        look()
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
else:
    subprocess.run(["mount", "-t", "tmpfs", "none", sys.argv[1]], check=True)
look()
assert len(reads) == 2, f"the table was read {len(reads)} times, a tmpfs mounted since"
"""


def _namespaces(where: Path) -> bool:
    """Whether this user may make a mount namespace of its own (`unshare -rm`) and mount a
    tmpfs over the folder `where` in it: a sandbox (seccomp, AppArmor, an LSM) may allow the
    namespace and refuse the mount. The probe's mount goes with its namespace."""
    if not sys.platform.startswith("linux") or not shutil.which("unshare") \
            or not shutil.which("mount"):
        return False
    try:
        done = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "none", str(where)],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.mark.parametrize("who", ["itself", "child"])
def test_the_kernel_says_when_the_mount_table_changed(tmp_path: Path, who: str) -> None:
    if not _namespaces(tmp_path):
        pytest.skip("no mount namespace of this user's own to mount a tmpfs in")
    importable = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=importable)
    done = subprocess.run(["unshare", "-rm", sys.executable, "-c", _MOUNT_IN_A_NAMESPACE,
                           str(tmp_path), who], env=env, capture_output=True, text=True,
                          timeout=120)
    assert not os.path.ismount(tmp_path)  # the tmpfs went with its namespace
    assert done.returncode == 0, done.stdout + done.stderr
