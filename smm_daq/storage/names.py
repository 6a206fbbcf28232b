"""What makes an entry name usable, for every writer of entries and the command line, and a
file name one Windows makes as typed."""

from __future__ import annotations

import sys
from pathlib import Path

from smm_daq.errors import InputError

ENTRY_NAME_RULE = ("a non-empty name other than '.' or '..', without '/', control characters "
                   "(a line break) or spaces at either end")


def entry_name_usable(name: object) -> bool:
    """A single HDF5 name that reads back as typed, in a message or a listing: non-empty, no
    '/', not '.' or '..', no control characters, no spaces at either end."""
    return (isinstance(name, str) and bool(name) and "/" not in name
            and name not in (".", "..") and name == name.strip()
            and all(c.isprintable() for c in name))


# Windows opens the device, not a file, for these names, whatever their extension ("nul.csv").
_DEVICES = frozenset(["con", "prn", "aux", "nul", "conin$", "conout$",
                      *(f"{port}{n}" for port in ("com", "lpt") for n in "0123456789¹²³")])
_NOT_IN_WINDOWS_NAMES = '<>:"|?*'


def windows_file_name_problem(name: str) -> str | None:
    """Why Windows would not make a file named `name` (the last part of a path) as typed, or
    None; always None elsewhere, where ':' and 'con.csv' are ordinary names (a timestamp's
    '12:30' among them) that refusing would break for nothing.

    On NTFS 'out.csv:x' writes a hidden stream of out.csv (a listing shows out.csv, empty);
    'nul.csv' or 'COM1.h5' opens the device; a trailing '.' or space is dropped from the name;
    the other characters refused here make Windows fail the write only after the work."""
    if sys.platform != "win32":
        return None
    if ":" in name:
        return ("holds ':', which on Windows (NTFS) writes to a hidden stream of the file "
                f"{name.partition(':')[0]!r}, not to a file of this name")
    bad = next((c for c in name if c in _NOT_IN_WINDOWS_NAMES or ord(c) < 32), None)
    if bad is not None:
        return f"holds {bad!r}, which Windows does not allow in a file name"
    device = name.partition(".")[0].rstrip(" ").lower()
    if device in _DEVICES:
        return (f"is the device name {name.partition('.')[0].rstrip(' ')!r}: Windows opens the "
                "device, whatever the extension, not a file")
    if name != name.rstrip(". "):
        return "ends in '.' or a space, which Windows drops from the name"
    return None


WINDOWS_FILE_NAME_RULE = ("a name without ':', <>\"|?*, a device name (con, prn, aux, nul, "
                          "com1-9, lpt1-9, with any extension) or a '.' or space at its end")


def check_file_name(what: str, text: str, path: Path) -> None:
    """InputError, naming `what` (an option, a file), when `path`'s name is one Windows would
    not make as typed (`windows_file_name_problem`)."""
    problem = windows_file_name_problem(path.name)
    if problem is not None:
        raise InputError(f"{what} is {text!r}, whose name {problem}; expected "
                         f"{WINDOWS_FILE_NAME_RULE}: nothing was written")


def in_file_name(text: str) -> str:
    """`text` (an entry name) as part of a file name proposed to the user: each character
    Windows does not allow in a file name (':' among them) or a path separator becomes '_',
    on every system, so that the file keeps its name when copied to Windows."""
    return "".join("_" if c in _NOT_IN_WINDOWS_NAMES + "/\\" or ord(c) < 32 else c
                   for c in text)
