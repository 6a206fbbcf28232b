"""Whether a process on this machine runs, and what tells it from a later one given its number.

POSIX systems answer `os.kill(pid, 0)` without sending anything. Windows has no such signal:
there Python's `os.kill` sends a console Ctrl-C for 0 and terminates the process for any other
number, so asking that way could stop the very writer asked about. On Windows the kernel is
asked instead, with the least rights that answer (PROCESS_QUERY_LIMITED_INFORMATION and
SYNCHRONIZE, neither of which can stop it): whether the process has ended (its handle is
signalled: `WaitForSingleObject` without waiting), and when it was created. Its exit code
cannot say: a process that ended with code 259 reads as STILL_ACTIVE.

The start token (`start_token`) is, on Linux, the boot the process runs in and its start in
clock ticks since boot (from /proc); on Windows its creation time (100 ns ticks since 1601,
which no later process of the same number, in this boot or another, shares); "" elsewhere
(macOS), where a pid handed to another process after a reboot reads as the old one still
running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

_QUERY = 0x1000  # PROCESS_QUERY_LIMITED_INFORMATION
_SYNCHRONIZE = 0x00100000  # the right to wait for the process to end
_WAIT_TIMEOUT = 258  # WaitForSingleObject's answer while the process runs
_WAIT_FAILED = 0xFFFFFFFF
_ACCESS_DENIED = 5  # ERROR_ACCESS_DENIED: the process exists (a service's, an admin's)


def running(pid: int) -> bool:
    """True when process `pid` runs (another user's too); never sends it anything."""
    if sys.platform == "win32":
        return _windows_running(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return True


def start_token(pid: int) -> str:
    """What tells process `pid` from a later process given the same number; "" where this
    system does not say (see the module)."""
    if sys.platform == "win32":
        return _windows_created(pid)
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text("utf-8").replace("-", "")[:8]
        stat = Path(f"/proc/{pid}/stat").read_text("utf-8", errors="replace")
        start = stat.rpartition(")")[2].split()[19]  # after the name, which may hold anything
    except (OSError, IndexError):
        return ""
    return f"{boot}.{start}"


def _kernel32() -> Any:
    """Windows' kernel32, with the argument and result types of the calls made here (a
    HANDLE is 64 bits; ctypes' default int result would cut it)."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.WaitForSingleObject.restype = wintypes.DWORD
    kernel32.WaitForSingleObject.argtypes = (wintypes.HANDLE, wintypes.DWORD)
    kernel32.GetProcessTimes.argtypes = (wintypes.HANDLE,
                                         *[ctypes.POINTER(wintypes.FILETIME)] * 4)
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    return kernel32


def _last_error() -> int:
    import ctypes

    return int(ctypes.get_last_error())  # type: ignore[attr-defined]


def _windows_running(pid: int) -> bool:
    kernel32 = _kernel32()
    handle = kernel32.OpenProcess(_QUERY | _SYNCHRONIZE, False, pid)
    if not handle:  # no such process (ERROR_INVALID_PARAMETER), unless access is denied
        return _last_error() == _ACCESS_DENIED
    try:
        # WAIT_FAILED: cannot tell, taken as running, so nothing of it is touched
        return kernel32.WaitForSingleObject(handle, 0) in (_WAIT_TIMEOUT, _WAIT_FAILED)
    finally:
        kernel32.CloseHandle(handle)


def _windows_created(pid: int) -> str:
    import ctypes
    from ctypes import wintypes

    kernel32 = _kernel32()
    handle = kernel32.OpenProcess(_QUERY, False, pid)
    if not handle:
        return ""
    try:
        created, exited, kernel, user = (wintypes.FILETIME() for _ in range(4))
        if not kernel32.GetProcessTimes(handle, ctypes.byref(created), ctypes.byref(exited),
                                        ctypes.byref(kernel), ctypes.byref(user)):
            return ""
        return str(created.dwHighDateTime << 32 | created.dwLowDateTime)
    finally:
        kernel32.CloseHandle(handle)
