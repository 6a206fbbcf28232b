"""The sessions `Session.open` opened in this process and has not closed yet.

A notebook's cell `s = Session.open(...)` run a second time without `s.close()` leaves the
first session open, its rig connected (its field as it was left), and, once the second open
returns, no name for it: only the program's end would close it. `Session.open` looks here
first: on a real rig the second is refused (the rig lock would refuse it too, naming only
this process), naming the session still open and how to close it; a simulated rig's world
is the session's own, nothing shared, so the second opens beside it with a warning saying
the same. `Session.open_sessions()` and `Session.close_all()` reach them by no name.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from smm_daq.acquisition.session import Session
    from smm_daq.instruments.profile import Profile

UT = 1e-6

_lock = threading.Lock()  # a session may be opened or closed from any thread
_open: dict[int, tuple[Session, str]] = {}  # id -> the session and when it was opened


def add(session: Session) -> None:
    with _lock:
        _open[id(session)] = (session, time.strftime("%H:%M:%S"))


def remove(session: Session) -> bool:
    """Take `session` off; whether it was on (of two threads closing it at once, one only)."""
    with _lock:
        return _open.pop(id(session), None) is not None


def listed() -> tuple[Session, ...]:
    """The sessions open, the earliest opened first."""
    with _lock:
        return tuple(session for session, _ in _open.values())


def opened_at(session: Session) -> str:
    """When `session` was opened (local time, HH:MM:SS), "" when not open here."""
    with _lock:
        entry = _open.get(id(session))
    return "" if entry is None else entry[1]


def on_the_rig_of(profile: Profile) -> list[Session]:
    """The sessions open on any of `profile`'s instruments (one address however spelled)."""
    sessions = listed()
    if not sessions:
        return []
    from smm_daq.instruments.rig import rig_addresses  # as `Session.open` imports the rig
    from smm_daq.instruments.rig_lock import address_key

    wanted = {address_key(a) for a in rig_addresses(profile)}
    return [s for s in sessions if wanted & {address_key(a) for a in rig_addresses(s.profile)}]


def described(session: Session) -> str:
    """'the session on PATH opened at HH:MM:SS, its coils last set to (bx, by, bz) µT'."""
    text = f"the session on {session.path} opened at {opened_at(session)}"
    try:
        setpoint = np.asarray(session.rig.coils.field_setpoint(), dtype=float) / UT
    except Exception:  # a description never fails the open it explains
        return text
    shown = ", ".join(f"{b:.4g}" for b in np.round(setpoint, 9))
    return f"{text}, its coils last set to ({shown}) µT"


def still_open_advice(sessions: list[Session], *, first: bool) -> str:
    """How to reach and close `sessions` (`first`: before opening another) whatever name, or
    none, the script has for them."""
    one = len(sessions) == 1
    return (f"a notebook's cell that opens a Session run again? Close {'it' if one else 'them'}"
            f"{' first' if first else ''}: `Session.close_all()` makes the rig safe and closes "
            "every session this process opened (`Session.open_sessions()` lists them), or "
            f"{'its' if one else 'each'} own `close()`")
