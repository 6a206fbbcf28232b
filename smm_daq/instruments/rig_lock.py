"""One smm-daq process per rig: an exclusive operating-system lock on each instrument address.

Two processes talking to the same instruments interleave their commands, so one silently
scans at the other's field or position. `open_rig` therefore takes a lock per address (VISA
resource, serial port, TCP address) before it opens any instrument, and the rig holds them
until `Rig.close()`. The locks are the operating system's (flock, LockFileEx, through
`filelock`), so they go with the process: a crash or `kill -9` leaves nothing to clear.
Beside each lock a small record names its holder (PID, user, command, since when) for the
refusal message.

The lock files live in the machine's lock directory (`smm_daq.locks`).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import ipaddress
import json
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from filelock import BaseFileLock, FileLock, Timeout

from smm_daq import PROGRAM_NAME
from smm_daq.errors import InputError
from smm_daq.locks import FILE_MODE, lock_directory, unusable

RECORD_MODE = 0o644
MAX_COMMAND = 200  # characters of the holder's command line kept in its record

_VISA_BOARD = re.compile(r"^(GPIB|TCPIP|USB|VXI|PXI)(?=::)")  # board 0 may be left out
# TCPIP board, host (an IPv6 address in brackets) and the rest (device name, port, class)
_TCPIP = re.compile(r"^(TCPIP\d+)::(\[[^\]]*\]|[^:]+)(.*)$")
# a serial port: pyserial's "serial:PORT" or VISA's "ASRL<PORT>[::INSTR]"
_SERIAL = re.compile(r"^(?:SERIAL:(?P<url>.+)|ASRL(?P<port>.*?)(?:::INSTR)?)$", re.I | re.S)
# pyserial URLs of a TCP port: a raw socket, or an RFC 2217 serial server
_TCP_URL = re.compile(r"^(?:SOCKET|RFC2217)://(\[[^\]]*\]|[^:/?\[]+):(\d+)(?:[/?].*)?$",
                      re.I | re.S)
_SERIAL_NUMBER = re.compile(r"^(?:COM)?(\d*)$", re.I)  # ASRL3, COM3, board 0 when left out
_WINDOWS_DEVICE = "\\\\.\\"  # \\.\COM10, as Windows spells ports above COM9
_LOOPBACK = "LOCALHOST"
_LOOPBACK_NAMES = {"LOCALHOST", "LOCALHOST.LOCALDOMAIN", "LOCALHOST6", "IP6-LOCALHOST",
                   "IP6-LOOPBACK"}
HOSTS_FILE = (Path(os.environ.get("SYSTEMROOT", "C:\\Windows"), "System32", "drivers", "etc",
                   "hosts") if os.name == "nt" else Path("/etc/hosts"))


class RigInUse(InputError):
    """Another process (or another open rig of this one) holds some of the rig's instruments;
    nothing was opened."""


@dataclass(frozen=True)
class Holder:
    """Who holds an address, as its record says."""

    pid: int
    user: str
    command: str
    since: str  # ISO 8601, local time with its offset

    def describe(self) -> str:
        this = "this process: " if self.pid == os.getpid() else ""
        user = f"user {self.user}, " if self.user else ""
        return (f"{PROGRAM_NAME} process {self.pid} on this machine ({this}{user}running "
                f"`{self.command}` since {self.since})")


def address_key(address: str) -> str:
    """One spelling per instrument: VISA resource names ignore case, leave out board 0, the
    default class '::INSTR' and a VXI-11 device's default name 'inst0' at will; a TCP/IP host
    is `_host`'s spelling; a serial port is `_serial_key`'s."""
    text = address.strip()
    serial = _SERIAL.match(text)
    if serial:
        return _serial_key(serial["url"] if serial["url"] is not None else serial["port"])
    key = _VISA_BOARD.sub(r"\g<1>0", text.upper()).removesuffix("::INSTR")
    tcpip = _TCPIP.match(key)
    if tcpip:
        board, host, rest = tcpip.groups()
        key = f"{board}::{_host(host)}{rest or '::INST0'}"
    return key


def _serial_key(port: str) -> str:
    """A serial port (pyserial's port or URL, or what follows VISA's 'ASRL') as one spelling:
    a device path with its links resolved (/dev/serial/by-id/... is the /dev/ttyUSB0 it points
    to; on macOS /dev/tty.X is the port of /dev/cu.X), 'ASRL<n>' for port n (COMn on Windows),
    and a pyserial URL of a TCP port (socket://, rfc2217://) as VISA's socket resource on that
    host and port, which it is."""
    tcp = _TCP_URL.match(port)
    if tcp:
        return f"TCPIP0::{_host(tcp[1])}::{int(tcp[2])}::SOCKET"
    if os.name != "nt" and port.startswith("/"):
        device = os.path.realpath(port)  # case kept: a POSIX path is case-sensitive
        if sys.platform == "darwin":  # macOS has two devices per port: call-in and call-out
            device = re.sub(r"^/dev/tty\.", "/dev/cu.", device)
        return "ASRL" + device
    number = _SERIAL_NUMBER.match(port.removeprefix(_WINDOWS_DEVICE))
    if number:
        return f"ASRL{int(number[1] or 0)}"
    return "ASRL" + port.upper()  # another pyserial URL (loop://, spy://...): as written


def _host(host: str) -> str:
    """One spelling per host, resolved on this machine only (no name server: no network, no
    wait): every loopback name or address (localhost, this machine's name, 127.x.x.x, ::1,
    0.0.0.0) is this machine, _LOOPBACK; a name the hosts file gives is its address; an
    address in any of its numeric spellings (127.1, ::ffff:127.0.0.1, fe80:0:0::1) is written
    canonically. Another name of a remote host stays another spelling: only its name server
    could say they are one."""
    bare = host.removeprefix("[").removesuffix("]").upper()
    if bare in _LOOPBACK_NAMES or bare == socket.gethostname().upper():
        return _LOOPBACK
    found = _numeric_address(bare) or _hosts_file_address(bare)
    if found is None:
        return host.upper()
    ip = ipaddress.ip_address(found)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:
        return _LOOPBACK
    return f"[{ip}]".upper() if ip.version == 6 else str(ip)


def _numeric_address(host: str) -> str | None:
    """The address `host` spells numerically (as a connection to it would take it), without a
    look-up: AI_NUMERICHOST never asks a name server. None: not an address."""
    try:
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return str(found[0][4][0]).partition("%")[0] if found else None


def _hosts_file_address(name: str) -> str | None:
    """The address this machine's hosts file gives `name` (a loopback one where it gives
    several, as this machine is then one of them), or None."""
    try:
        lines = HOSTS_FILE.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    found: list[str] = []
    for line in lines:
        address, *names = line.partition("#")[0].split() or [""]
        if name in (n.upper() for n in names):
            numeric = _numeric_address(address)
            found += [numeric] if numeric else []
    loopback = [a for a in found if ipaddress.ip_address(a).is_loopback]
    return (loopback or found or [None])[0]


def _stem(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_")[:48]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@dataclass
class _AddressLock:
    address: str
    lock: BaseFileLock
    record: Path  # who holds it, written by the holder


def _address_locks(directory: Path, addresses: Iterable[str]) -> list[_AddressLock]:
    found: dict[str, _AddressLock] = {}
    for address in addresses:
        key = address_key(address)
        if key not in found:
            stem = _stem(key)
            # fallback_to_soft=False: a soft lock would outlive a killed process
            lock = FileLock(directory / f"{stem}.lock", mode=FILE_MODE, thread_local=False,
                            blocking=False, fallback_to_soft=False)
            found[key] = _AddressLock(address, lock, directory / f"{stem}.holder.json")
    return list(found.values())


def _try(entry: _AddressLock, directory: Path) -> bool:
    """Take `entry`'s lock without waiting: False when another holder has it."""
    try:
        entry.lock.acquire()
    except Timeout:
        return False
    except OSError as exc:  # e.g. a filesystem without flock
        raise unusable(directory, exc) from exc
    return True


class RigLock:
    """Exclusive locks on instrument addresses, held until `release()` or the process ends."""

    def __init__(self, held: list[_AddressLock]) -> None:
        self._held = held

    @classmethod
    def acquire(cls, addresses: Iterable[str]) -> RigLock:
        """Take every address' lock at once, without waiting. `RigInUse` naming the holders
        when another process has any of them (then none is kept)."""
        directory = lock_directory()
        held: list[_AddressLock] = []
        taken: list[_AddressLock] = []
        try:
            for entry in _address_locks(directory, addresses):
                (held if _try(entry, directory) else taken).append(entry)
        except BaseException:
            cls(held).release()
            raise
        if taken:
            cls(held).release()
            them = "them" if len(taken) > 1 else "it"
            holding = {e.address: _read(e.record) for e in taken}
            if all(h is not None and h.pid == os.getpid() for h in holding.values()):
                advice = (f"this process holds {them} itself, a rig opened earlier in it and "
                          "not closed (a notebook's cell that opens a Session run again?): "
                          "close that one first (`session.close()`, or leave its `with` "
                          "block)")
            else:
                advice = "wait for that process to end, or stop it, then try again"
            raise RigInUse(in_use_message(holding) + f"; expected {them} free: {advice}")
        holder = _this_process()
        for entry in held:
            _write(entry.record, holder)
        return cls(held)

    def release(self) -> None:
        """Give every lock back (each tried); a second call does nothing."""
        held, self._held = self._held, []
        for entry in held:
            # Only the holder writes the record, and removes it before the lock goes: it
            # never deletes the next holder's.
            with contextlib.suppress(OSError):
                entry.record.unlink()
            with contextlib.suppress(Exception):
                entry.lock.release()


def holders(addresses: Iterable[str]) -> dict[str, Holder | None]:
    """The addresses another process holds now, each with its holder (None: no record)."""
    directory = lock_directory()
    found: dict[str, Holder | None] = {}
    for entry in _address_locks(directory, addresses):
        if _try(entry, directory):
            entry.lock.release()
        else:
            found[entry.address] = _read(entry.record)
    return found


def in_use_message(held: dict[str, Holder | None]) -> str:
    """'the rig's instruments A, B are in use by <holder>', a clause per holder."""
    by_holder: dict[Holder | None, list[str]] = {}
    for address, holder in held.items():
        by_holder.setdefault(holder, []).append(address)
    clauses = []
    for holder, addresses in by_holder.items():
        who = holder.describe() if holder else (f"another {PROGRAM_NAME} process on this "
                                                "machine (it left no record of itself)")
        verb = "are" if len(addresses) > 1 else "is"
        clauses.append(f"{', '.join(addresses)} {verb} in use by {who}")
    noun = "instruments" if len(held) > 1 else "instrument"
    return f"the rig's {noun} " + "; ".join(clauses)


def _this_process() -> Holder:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in the environment or the password database
        user = ""
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else []
    command = " ".join(argv) or "python"
    if len(command) > MAX_COMMAND:
        command = command[: MAX_COMMAND - 1] + "…"
    since = datetime.now().astimezone().isoformat(timespec="seconds")
    return Holder(pid=os.getpid(), user=user, command=command, since=since)


def _write(record: Path, holder: Holder) -> None:
    """Replace the record whole, so a reader never sees half of it. One that cannot be
    written only makes a refusal less specific: the lock is what keeps others out."""
    try:
        fd, temporary = tempfile.mkstemp(dir=record.parent, prefix=".", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(asdict(holder), out)
        os.chmod(temporary, RECORD_MODE)  # mkstemp's 0o600 would hide it from other users
        os.replace(temporary, record)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _read(record: Path) -> Holder | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return Holder(pid=int(data["pid"]), user=str(data["user"]),
                      command=str(data["command"]), since=str(data["since"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
