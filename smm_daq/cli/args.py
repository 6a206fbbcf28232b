"""Parsers for command-line values, each failing with a message that names the option."""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import math
import os
import stat
import sys
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

from smm_daq.errors import InputError
from smm_daq.shell_words import shell_join
from smm_daq.storage.aliases import same_file
from smm_daq.storage.names import (
    NEW_ENTRY_NAME_RULE,
    check_file_name,
    new_entry_name_problem,
    shown_name,
)
from smm_daq.text_files import path_shown

# the words `main` was given where a program called it with its own (None: the process's),
# for each thread (context) apart: two calls of `main` at once each record their own words
_given: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("given", default=None)


@contextlib.contextmanager
def given_words(argv: Sequence[str] | None) -> Iterator[None]:
    """While `main` runs: the command's words, where a program gave `main` its own (not the
    process's `sys.argv`, which is then that program's: a test runner's, a notebook's)."""
    token = _given.set(None if argv is None else list(argv))
    try:
        yield
    finally:
        _given.reset(token)


def invoked_command() -> str:
    """The command line as run, quoted so that bash runs it again on the same files
    (`shell_join`: a path with a space quoted, a byte that is not UTF-8 in bash's $'\\xe9'), as
    a file can store it (`storable`)."""
    from smm_daq.storage.strings import storable  # h5py: not at start-up, where no command
    # may load it before its options are checked

    given = _given.get()
    return storable("smm-daq " + shell_join(sys.argv[1:] if given is None else given))


def floats(option: str, text: str, n: int) -> tuple[float, ...]:
    """Parse 'a,b[,c]' into n finite floats, or raise InputError naming `option`."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    numbers = "a number" if n == 1 else f"{n} comma-separated numbers"
    if len(values) != n:
        raise InputError(f"{option} is {text!r}; expected {numbers}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{option} is {text!r}; expected {numbers}, finite (not nan or inf)")
    return values


def entry_name(text: str) -> str:
    """An argparse type for an option naming a new entry, its accents composed (NFC), so
    that 'é' names one entry however the terminal wrote it: refused by argparse, naming the
    option, before any file is opened."""
    name = unicodedata.normalize("NFC", text)
    problem = new_entry_name_problem(name)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{shown_name(text)} is not usable as an entry name: "
                                         f"it {problem}; expected {NEW_ENTRY_NAME_RULE}")
    return name


def derived_entry_name(source: str, suffix: str, option: str) -> str:
    """The name of a product of entry `source` where `option` gives none: `source` and
    `suffix`, its accents composed (a source an earlier release named with them decomposed);
    InputError naming `option` where that is no name a new entry may have (a source named
    with nearly as many characters as a name may have)."""
    name = unicodedata.normalize("NFC", source + suffix)
    problem = new_entry_name_problem(name)
    if problem is not None:
        raise InputError(f"the new entry would be named {shown_name(name)}, after entry "
                         f"{shown_name(source)}, which {problem}; expected a name given with "
                         f"{option}: nothing was written")
    return name


def entry_to_read(text: str) -> str:
    """An argparse type for an option naming an entry to read: text a file can hold as a name.
    A byte that is no UTF-8 in the command line (a name typed in a Latin-1 terminal) reaches
    Python as a lone surrogate, which no HDF5 name holds and h5py cannot encode."""
    return _utf8(text, "the name of an entry of the file (smm-daq info lists them)")


def dataset_to_read(text: str) -> str:
    """An argparse type for an option naming a dataset inside an entry (export --dataset):
    text a file can hold as a name, as `entry_to_read`."""
    return _utf8(text, "a map under the entry, e.g. Bz or chi/chi")


def _utf8(text: str, expected: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not UTF-8 text; expected {expected}"
                                         ) from None
    return text


def positive(option: str, value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{option} is {value!r}; expected a number > 0")
    return value


SESSION_OUT_HELP = "session file to write into: a new one, or one smm-daq made (its entries kept)"


# A simulator's pace: slower than 1/1000 of real time, a 6-hour scan would take 250 days.
MIN_TIME_SCALE = 1e-3
MAX_TIME_SCALE = 1e9
MAX_SERVE_S = 30 * 24 * 3600.0


def time_scale(value: float | None, *, zero_allowed: bool = True, simulated: bool = True
               ) -> float:
    """--time-scale: simulated seconds per real second (0: as fast as possible, where allowed);
    refused for a profile that is not `simulated`, whose instruments keep their own time."""
    if value is None:
        return 0.0
    if not simulated:
        raise InputError("--time-scale applies to simulated profiles (rig.simulated = true); "
                         "expected no --time-scale with real instruments")
    if not ((zero_allowed and value == 0) or MIN_TIME_SCALE <= value <= MAX_TIME_SCALE):
        zero = "0 (as fast as possible) or " if zero_allowed else ""
        raise InputError(f"--time-scale is {value!r}; expected {zero}{MIN_TIME_SCALE:g} to "
                         f"{MAX_TIME_SCALE:g} simulated seconds per real second")
    return value


def within(option: str, value: float, lo: float, hi: float, unit: str = "") -> float:
    """`value` if finite and in [lo, hi], else InputError naming `option` and the limits."""
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"{option} is {value!r}; expected {lo:g} to {hi:g}{unit}")
    return value


def _is_hdf5(path: Path) -> bool:
    import h5py  # only when a command checks an output: every command imports this module

    return bool(h5py.is_hdf5(path))


def output_file(option: str, text: str, *, overwrite: bool = False) -> Path:
    """A file a command writes whole (CSV, PNG, TOML), checked before any work starts.

    Never a directory, never in a folder that does not exist, never an HDF5 file (a session
    file holds acquired scans: text written over it would lose them, --overwrite or not), and
    never an existing file unless `overwrite` (the command's --overwrite) allows it.
    """
    path = Path(text)
    _check_place(option, text, path, whole=True)
    if _is_device(path):  # /dev/null: a script discarding the output, written as it is
        return path
    if path.exists() and _is_hdf5(path):
        raise InputError(
            f"{option} is {path_shown(text)}, an HDF5 file (perhaps a session file); expected a "
            "new or expendable file name: nothing was written"
        )
    if path.exists() and not overwrite:
        raise InputError(
            f"{option} is {path_shown(text)}, which exists; expected a new file name (or "
            "--overwrite to replace it): nothing was written"
        )
    return path


def session_file(option: str, text: str) -> Path:
    """An HDF5 session file a command adds entries to: new, or an existing session file.

    Refuses a directory, a missing folder, an existing file that is not HDF5 (writing an
    HDF5 file there would destroy it) and another program's HDF5 file, before any work
    starts.
    """
    path = Path(text)
    _check_place(option, text, path)
    check_scratch_room(option, text)
    if path.exists() and not _is_hdf5(path):
        raise InputError(
            f"{option} is {path_shown(text)}, which exists and is not an HDF5 file; expected a "
            "session file (.h5) or a new file name: nothing was written"
        )
    from smm_daq.storage.h5file import require_ours  # h5py: only when a command checks one

    require_ours(path)  # another program's HDF5 file: nothing is added to it
    return path


def check_scratch_room(option: str, text: str) -> None:
    """Refuse a new session file whose name leaves no room for the hidden file it is made in
    beside it (`scratch_name_length`), before any work: that failed only once the first scan
    had begun. A file there already is left to the other checks. The window's paths to a new
    session file use it too, naming the file as `option`."""
    from smm_daq.storage.h5file import NAME_MAX, name_length, scratch_name_length

    path = Path(text)
    over = scratch_name_length(path) - NAME_MAX
    if over > 0 and not _there(path):
        size = name_length(path.name)
        unit = "characters" if sys.platform == "win32" else "bytes"
        raise InputError(f"{option} is {path_shown(text)}, whose name of {size} {unit} leaves "
                         "no room for the hidden files a session file is made and repaired in "
                         f"beside it ('.NAME.PID.THREAD.HOST~TOKEN.repair-tmp', at most {NAME_MAX} "
                         f"{unit}); expected a name of at most {size - over} {unit}: nothing "
                         "was written")


def _there(path: Path) -> bool:
    """Whether a file is at `path`; False where the system cannot tell (a name longer than
    the file system takes, which no file has; a folder that may not be searched): the window
    calls `check_scratch_room` first, and the system's OSError would end its Start."""
    try:
        return path.exists()
    except OSError:
        return False


def distinct_outputs(*outputs: tuple[str, str | None]) -> None:
    """Refuse two outputs of one command that name the same file (one would replace the
    other), however named (`same_file`: a link, a hard link, another case where the file
    system ignores case); each is (option, path or None when not given)."""
    seen: list[tuple[str, str]] = []
    for option, text in outputs:
        if text is None or _is_device(Path(text)):  # /dev/null takes any number of outputs
            continue
        other = next((o for o, t in seen if same_file(t, text)), None)
        if other is not None:
            raise InputError(f"{option} and {other} both name {path_shown(text)}; expected "
                             "different files: nothing was written")
        seen.append((option, text))


def outputs_apart(outputs: tuple[tuple[str, str | None], ...],
                  inputs: tuple[tuple[str, str | None], ...]) -> None:
    """`distinct_outputs`, and no output naming one of the command's inputs, however named
    (`same_file`): writing it, --overwrite or not, would destroy what the command reads."""
    distinct_outputs(*outputs)
    for option, text in outputs:
        read = next((o for o, t in inputs if t is not None and text is not None
                     and same_file(t, text)), None)
        if read is not None:
            raise InputError(f"{option} is {path_shown(text)}, the file {read} reads; expected "
                             "another file: nothing was written")


def _is_device(path: Path) -> bool:
    """Whether `path` is a character device such as /dev/null."""
    try:
        return stat.S_ISCHR(path.stat().st_mode)
    except OSError:
        return False


def _check_place(option: str, text: str, path: Path, *, whole: bool = False) -> None:
    """Refuse an output place no command can write. `whole`: an output written whole
    (`smm_daq.whole_files`), to a new file in its folder that then takes its name: that
    folder must take a new file also where the file exists, and a character device such as
    /dev/null is written as it is."""
    if not text:
        raise InputError(f"{option} is empty; expected a file name")
    check_file_name(option, text, path)
    if path.is_dir():
        raise InputError(f"{option} is {path_shown(text)}, a directory; expected a file name")
    if path.exists() and not path.is_file() and not (whole and _is_device(path)):
        # a pipe's write would wait for a reader; an HDF5 file cannot live on a device
        raise InputError(f"{option} is {path_shown(text)}, which is not a regular file (a "
                         "device or a pipe); expected a file name: nothing was done")
    if not path.parent.is_dir():
        raise InputError(f"{option} is {path_shown(text)}; there is no directory {path.parent}; "
                         "expected a file in a folder that exists")
    _check_writable(option, text, path, whole=whole)


def check_place(option: str, text: str) -> None:
    """Refuse a place no file can be written at (a directory, a device, a folder that does
    not exist or cannot be written), as the commands' output options refuse it: the window's
    paths to a session file use it too, naming the file as `option`."""
    _check_place(option, text, Path(text))


def _check_writable(option: str, text: str, path: Path, *, whole: bool) -> None:
    """Try the write before the work (a read-only disk, another user's folder), which would
    otherwise fail only after a scan or a calibration had run. Nothing is changed: an existing
    file is opened for update and closed, a new one made nameless and dropped (also beside an
    existing file written `whole`)."""
    try:
        if path.exists():
            with open(path, "r+b"):
                pass
        if not path.exists() or (whole and not _is_device(path)):
            folder = Path(os.path.realpath(path)).parent  # where a link's file is replaced
            with tempfile.TemporaryFile(dir=folder):
                pass
            if whole and path.exists() and _sticky_and_not_yours(folder, path):
                raise InputError(
                    f"{option} is {path_shown(text)}, another user's file in a folder where "
                    "only its owner may replace it (sticky, as /tmp); expected a file of "
                    "your own or a new name: nothing was done")
    except OSError as exc:
        raise InputError(f"{option} is {path_shown(text)}, which cannot be written "
                         f"({exc.strerror}); expected a file in a place you can write: "
                         "nothing was done") from None


def _sticky_and_not_yours(folder: Path, path: Path) -> bool:
    """Whether the system would refuse to replace `path` by a file renamed onto it: its
    folder has the sticky bit and neither it nor the folder is this user's (root excepted)."""
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return False
    me = os.geteuid()
    place = folder.stat()
    return bool(place.st_mode & stat.S_ISVTX) and me not in (place.st_uid, path.stat().st_uid)
