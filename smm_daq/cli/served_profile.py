"""`serve-sim --profile-out`: the served simulator as a profile of real instruments.

The profile's own text is kept (its comments, its limits, its sensor and coil settings), with
every instrument address replaced by the TCP resource its emulator is served at,
`rig.simulated` set to false and the `[simulation]` table (with the comment lines just before
it) left out: any smm-daq command, or the window, then drives the served instruments through
the real drivers and their links, as it would a rig in the lab. A `baud_rate` that no served
socket uses (`serial_keys`: the stage's serial port, now a socket) is kept as a comment, lest
every command on the written profile warn of it as ignored.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from pathlib import Path

from smm_daq.errors import InputError
from smm_daq.instruments.profile import Profile, load_profile
from smm_daq.instruments.serial_keys import lockin_line
from smm_daq.text_files import read_text_file, shown

# The first line of a profile serve-sim writes: only such a file is written over.
MARK = "# written by `smm-daq serve-sim --profile-out`"
_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_SIMULATED = re.compile(r"^(\s*simulated\s*=\s*)true\b")
_CALIBRATION = re.compile(r"^(\s*calibration_file\s*=\s*).*$")
_QUOTED = re.compile(r"\"((?:[^\"\\]|\\.)*)\"|'([^']*)'")
_BAUD_RATE = re.compile(r"^\s*baud_rate\s*=")
_SERVED_AT = "TCPIP0::127.0.0.1::0::SOCKET"  # the form of every served resource


def served_profile_text(profile: Profile, resources: Mapping[str, str]) -> str:
    """`profile`'s text pointed at `resources` (profile address -> served VISA resource)."""
    kept: list[str] = [f"{MARK} from {profile.path}: the instruments it serves, on "
                       "loopback TCP", "# (their ports change each time serve-sim starts)"]
    table = ""
    depth = 0  # of the brackets open in a value over several lines: its rows are no headers
    for line in profile.text.splitlines():
        header = _TABLE.match(line) if depth == 0 else None
        depth = max(0, depth + _brackets_opened(line))
        if header:
            table = header.group(1).strip().strip('"')
            if table == "simulation" or table.startswith("simulation."):
                while kept and kept[-1].lstrip().startswith("#"):
                    kept.pop()  # what the simulated world is made of: said of a table gone
        if table == "simulation" or table.startswith("simulation."):
            continue
        if line.lstrip().startswith("#"):
            kept.append(line)
            continue
        if _BAUD_RATE.match(line) and not _line_served(table, profile):
            kept.append(f"# {line.strip()}  (served on loopback TCP: no serial line)")
            continue
        if table == "rig":
            line = _SIMULATED.sub(r"\1false", line)
            if profile.calibration_file is not None:  # relative to the profile's folder
                line = _CALIBRATION.sub(
                    lambda m: m.group(1) + json.dumps(str(profile.calibration_file)), line)
        kept.append(_QUOTED.sub(lambda m: _served(m, resources), line))
    return "\n".join(kept).rstrip() + "\n"


def _line_served(table: str, profile: Profile) -> bool:
    """Whether the served socket of `table`'s instrument stands for a serial line its
    `baud_rate` is the rate of: a lock-in's behind a serial-to-Ethernet server only."""
    lockin = profile.lockin
    return table == "lockin" and lockin_line(_SERVED_AT, lockin.link.implementation,
                                             lockin.interface)


def _brackets_opened(line: str) -> int:
    """How many more '[' than ']' `line` has outside its strings and its comment."""
    code = _QUOTED.sub("", line).split("#", 1)[0]
    return code.count("[") - code.count("]")


def _served(match: re.Match[str], resources: Mapping[str, str]) -> str:
    value = match.group(1) if match.group(1) is not None else match.group(2)
    return json.dumps(resources[value]) if value in resources else match.group(0)


def check_profile_out(out: Path, profile: Profile) -> None:
    """Refuse, before anything is served, a --profile-out that would write over the served
    profile itself or over a file serve-sim did not write, or a path the system cannot look
    up (a name longer than it allows, a NUL in it)."""
    try:
        out.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass  # a new file (a parent that is no folder is said below)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        raise InputError(f"--profile-out is {shown(str(out))}, which the system cannot look up "
                         f"({_why(exc)}); expected a path to a file") from None
    if out.resolve() == profile.path.resolve():
        raise InputError(f"--profile-out is {out}, the profile served; expected another file "
                         "(the served profile is kept as it is)")
    if out.is_dir() or not out.parent.is_dir():
        raise InputError(f"--profile-out is {out}; expected a file in a folder that exists")
    if out.exists():
        first = read_text_file(out, "--profile-out", "a profile serve-sim wrote").split("\n")[0]
        if not first.startswith(MARK):
            raise InputError(f"--profile-out is {out}, which exists and was not written by "
                             "serve-sim; expected a new file or one serve-sim wrote (it is "
                             "written over)")
        served = _still_served(out)
        if served:
            raise InputError(f"--profile-out is {out}, whose instruments are still served "
                             f"(something answers at {served}: another serve-sim?); expected a "
                             "file of a serve-sim that has stopped, or another file")


def _still_served(path: Path) -> str:
    """The lock-in resource of the profile serve-sim wrote at `path` where something still
    listens there (on loopback: answered or refused at once), else ""."""
    try:
        resource = load_profile(path).lockin.link.address
    except InputError:
        return ""  # unreadable now: nothing it names is relied on
    match = re.fullmatch(r"TCPIP0::127\.0\.0\.1::(\d+)::SOCKET", resource)
    if match is None:
        return ""
    try:
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=1.0):
            return resource
    except OSError:
        return ""


def write_served_profile(out: Path, profile: Profile, resources: Mapping[str, str]) -> None:
    """Write the profile and load it back: it must be valid and reach only what is served;
    one that does not is removed, lest a command run on it (the in-process simulator, where
    it still says simulated) taken for the served rig."""
    try:
        out.write_text(served_profile_text(profile, resources))
    except OSError as exc:
        raise InputError(f"--profile-out {out} could not be written ({_why(exc)}); expected a "
                         "file in a folder that can be written") from None
    try:
        _check_served(out, profile, resources)
    except InputError:
        out.unlink(missing_ok=True)
        raise


def _check_served(out: Path, profile: Profile, resources: Mapping[str, str]) -> None:
    """`out`, as written, a valid profile of real instruments at `resources` only."""
    written = load_profile(out)
    addresses = [written.lockin.link.address, written.stage.link.address,
                 *written.coils.addresses]
    if written.fluxgate is not None:
        addresses.append(written.fluxgate.link.address)
    served = set(resources.values())
    if written.simulated or any(a not in served for a in addresses):
        raise InputError(f"--profile-out {out}: the profile {profile.path} could not be "
                         "pointed at the served instruments (an address or rig.simulated "
                         "written in a form not recognised); expected its addresses and "
                         "'simulated = true' as TOML strings and values in their tables")


def _why(exc: OSError | ValueError) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
