"""Opening session files safely: for reading during or after a scan, and for appending.

Session files use the latest HDF5 format so that scans can be written in SWMR mode (single
writer, many readers). A process killed while writing in SWMR mode leaves the file's
"open for write" flags set: HDF5 then refuses to open it normally, though a SWMR reader still
sees every flushed line. `open_read` therefore falls back to SWMR reading, and `open_append`
repairs such a file first (`repair`: copy every object into a fresh file and swap it in, so
nothing flushed is lost) unless a live process on this machine is still writing it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from smm_daq import PROGRAM_NAME, __version__
from smm_daq.errors import InputError

FIXED_TEXT = h5py.string_dtype("utf-8", 64)  # for values rewritten while in SWMR mode
TEXT = h5py.string_dtype("utf-8")
_CRASHED = "already open for write"


def now_iso() -> str:
    """Wall-clock time as ISO 8601 with the local offset (NeXus date-time)."""
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def writer_id() -> str:
    """Who is writing: 'host:pid', stored in a scan entry so a crash can be told from a live run."""
    return f"{socket.gethostname()}:{os.getpid()}"


def writer_alive(writer: str) -> bool:
    """True when `writer` names another live process on this machine."""
    host, _, pid_text = writer.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def text(node: h5py.Dataset | object) -> str:
    """A string dataset's or attribute's value as str (fixed, variable, bytes or str)."""
    value = node[()] if isinstance(node, h5py.Dataset) else node
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError("file not found; expected an smm-daq session file (.h5)", source=str(path))


@contextlib.contextmanager
def open_read(path: str | Path) -> Iterator[h5py.File]:
    """Open a session file for reading, also while a scan writes it or after a crash."""
    p = Path(path)
    _check_exists(p)
    # A plain open first: it fails at once on a truncated or foreign file, where an SWMR open
    # would sit in HDF5's read-retry loop for many minutes. SWMR is for a file that a scan is
    # writing now, or was writing when it crashed (its superblock says "open for write").
    # Any other failure (truncated, a checksum error, a broken superblock) is a corrupt file:
    # an SWMR open of it would retry for minutes.
    try:
        f = h5py.File(p, "r")
    except OSError as plain:
        if "unable to lock file" in str(plain):
            raise InputError("is locked by another program writing it; expected it closed",
                             source=str(p)) from None
        if _CRASHED not in str(plain):
            raise InputError(
                f"cannot open as HDF5 ({_reason(plain)}): the file is corrupt or not HDF5; "
                "expected an smm-daq session file",
                source=str(p),
            ) from None
        try:
            f = h5py.File(p, "r", swmr=True)
        except OSError as exc:
            raise InputError(
                f"cannot open as HDF5 ({_reason(exc)}); expected an smm-daq session file",
                source=str(p),
            ) from None
    try:
        yield f
    finally:
        f.close()


def _reason(exc: OSError) -> str:
    msg = str(exc)
    return msg.split("(", 1)[1].rstrip(")") if "(" in msg else msg


def _init_root(f: h5py.File, path: Path) -> None:
    f.attrs["NX_class"] = "NXroot"
    f.attrs["file_name"] = path.name
    f.attrs["file_time"] = now_iso()
    f.attrs["creator"] = f"{PROGRAM_NAME} {__version__}"
    f.attrs["HDF5_Version"] = h5py.version.hdf5_version
    f.attrs["h5py_version"] = h5py.version.version


def open_append(path: str | Path) -> h5py.File:
    """Open (or create) a session file for writing; the caller closes it.

    A file left open-for-write by a crashed process is repaired first; one being written by
    a live process raises InputError.
    """
    p = Path(path)
    if p.exists() and not p.is_file():
        raise InputError("is not a file; expected an smm-daq session file (.h5)", source=str(p))
    if not p.exists():
        try:
            f = h5py.File(p, "w-", libver="latest", track_order=True)
        except OSError as exc:
            raise InputError(f"cannot create the file ({_reason(exc)})", source=str(p)) from None
        _init_root(f, p)
        return f
    try:
        return h5py.File(p, "a", libver="latest")
    except OSError as exc:
        if _CRASHED not in str(exc):
            raise InputError(
                f"cannot open for writing ({_reason(exc)}); expected an smm-daq session file "
                "not open in another program",
                source=str(p),
            ) from None
    repair(p)
    return h5py.File(p, "a", libver="latest")


def require_swmr_format(f: h5py.File) -> None:
    """InputError unless the file's format allows SWMR writing (HDF5 superblock 3 or later)."""
    if f.id.get_create_plist().get_version()[0] < 3:
        raise InputError(
            "is in an older HDF5 format that cannot be written while it is read (SWMR); "
            "write scans to a new file (smm-daq still reads this one)",
            source=f.filename,
        )


def live_writers(f: h5py.File) -> list[str]:
    """Entries of an open file whose recorded writer is still running on this machine."""
    busy = []
    for name, entry in f.items():
        if (
            isinstance(entry, h5py.Group)
            and "writer" in entry
            and "status" in entry
            and text(entry["status"]) in ("running", "paused")
            and writer_alive(text(entry["writer"]))
        ):
            busy.append(name)
    return busy


def repair(path: str | Path) -> None:
    """Make a file left open by a killed writer openable again, keeping every flushed byte.

    Copies every entry into a new file beside it (reading in SWMR mode, which a crash does
    not block) and replaces the original only once the copy is complete. Entries still marked
    "running" or "paused" are marked "interrupted".
    """
    p = Path(path)
    tmp = p.with_name(p.name + ".repair-tmp")
    try:
        src = h5py.File(p, "r", swmr=True)
    except OSError as exc:
        raise InputError(
            f"the file was left open by a process that stopped and cannot be read back "
            f"({_reason(exc)})",
            source=str(p),
        ) from None
    try:
        busy = live_writers(src)
        if busy:
            raise InputError(
                f"entry '{busy[0]}' is being written by a running process "
                f"({text(src[busy[0]]['writer'])}); wait for it or stop it first",
                source=str(p),
            )
        with h5py.File(tmp, "w", libver="latest", track_order=True) as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src:
                src.copy(src[key], dst, name=key)
                entry = dst[key]
                if (
                    isinstance(entry, h5py.Group)
                    and "status" in entry
                    and text(entry["status"]) in ("running", "paused")
                ):
                    entry["status"][()] = "interrupted"
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    os.replace(tmp, p)
