"""What makes an entry name usable, for every writer of entries and the command line, and a
file name one Windows makes as typed."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from smm_daq.errors import InputError
from smm_daq.text_files import path_shown

ENTRY_NAME_MAX = 100  # characters: a name shown whole in a listing, a message, a file name
ENTRY_NAME_RULE = ("a non-empty name other than '.' or '..', without '/', control characters "
                   "(a line break) or spaces at either end")
NEW_ENTRY_NAME_RULE = (f"a name of at most {ENTRY_NAME_MAX} characters, other than '.' or "
                       "'..', without '/', control characters (a line break, a tab) or "
                       "spaces at either end, its accents composed (Unicode NFC)")


def entry_name_usable(name: object) -> bool:
    """A single HDF5 name that reads back as typed, in a message or a listing: non-empty, no
    '/', not '.' or '..', no control characters, no spaces at either end."""
    return (isinstance(name, str) and bool(name) and "/" not in name
            and name not in (".", "..") and name == name.strip()
            and all(c.isprintable() for c in name))


def shown_name(name: str) -> str:
    """`name` as a message quotes it: escapes for control characters (repr), and a name
    longer than a line cut to its first 40 characters and its length."""
    if len(name) <= 60:
        return repr(name)
    return f"{name[:40]!r}... ({len(name)} characters)"


def listed_name(name: str) -> str:
    """`name` as a listing shows it: as typed where it reads back so on one line and a new
    entry may have it (up to `ENTRY_NAME_MAX` characters: whole, to be copied into
    `--entry`), else as `shown_name` quotes it (an entry an earlier release let be named
    with a newline or 10,000 characters keeps the listing one line per entry)."""
    return (name if entry_name_usable(name) and len(name) <= ENTRY_NAME_MAX
            else shown_name(name))


def new_entry_name_problem(name: str) -> str | None:
    """Why `name` may not name a new entry, or None. Beyond `entry_name_usable`: at most
    `ENTRY_NAME_MAX` characters, and in Unicode NFC, so that 'é' typed composed and 'é'
    typed as 'e' and a combining accent are one name, not two entries that look the same.
    (Entries of files written before these rules still open and read by their names.)"""
    if not isinstance(name, str) or not name:
        return "is empty"
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        return (f"holds {bad!r} (U+{ord(bad):04X}), a control or other non-printing "
                "character, which would split or garble a line of a message or a listing")
    if len(name) > ENTRY_NAME_MAX:
        return f"is {len(name)} characters long"
    if "/" in name:
        return "holds '/', which HDF5 reads as a path of groups"
    if name in (".", ".."):
        return f"is {name!r}, which HDF5 reads as a path"
    if name != name.strip():
        return "begins or ends with a space, which no listing shows"
    composed = unicodedata.normalize("NFC", name)
    if composed != name:
        return (f"has accents written decomposed ({name!a}): the same text composed "
                f"({composed!r}) would be another entry that looks the same")
    return None


def typed_entry_name(text: str) -> str:
    """A new entry's name as a person typed it in a box of the window: spaces at either end
    dropped, accents composed (NFC), so that however a keyboard or a paste wrote 'é' it
    names one entry."""
    return unicodedata.normalize("NFC", text.strip())


def lookalike(names: Iterable[str], name: str) -> str | None:
    """Another of `names` that is `name` in another Unicode form (an entry of an earlier
    release named with a decomposed accent), or None."""
    composed = unicodedata.normalize("NFC", name)
    return next((n for n in names if n != name
                 and unicodedata.normalize("NFC", n) == composed), None)


def other_form_note(names: Iterable[str], name: str) -> str:
    """Where no entry is named `name` but one of `names` is, in another Unicode form (an
    earlier release's entry named with a decomposed accent, looked for as typed composed):
    a note saying how to name it, since every listing shows the two alike; else ""."""
    other = lookalike(names, name)
    if other is None:
        return ""
    return (f"; entry {shown_name(other)} of the file is that name with its accents written "
            f"another way (another Unicode form): name it as the file does, {other!a} (in "
            f"bash, $'...' around it)")


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
        raise InputError(f"{what} is {path_shown(text)}, whose name {problem}; expected "
                         f"{WINDOWS_FILE_NAME_RULE}: nothing was written")


def in_file_name(text: str) -> str:
    """`text` (an entry name) as part of a file name proposed to the user: each character
    Windows does not allow in a file name (':' among them) or a path separator becomes '_',
    on every system, so that the file keeps its name when copied to Windows."""
    return "".join("_" if c in _NOT_IN_WINDOWS_NAMES + "/\\" or ord(c) < 32 else c
                   for c in text)
