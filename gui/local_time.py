"""Times as the window shows them. The files keep ISO 8601 with the writer's UTC offset
(`smm_daq.storage.h5file.now_iso`), which a user at the rig had to turn into the time on the
wall; the window shows local time, named by its zone ("CET", "CEST"), so that the hour
repeated as summer time ends, or a file written under another offset, is not misread."""

from __future__ import annotations

import math
from datetime import datetime

# what a time at the ends of the calendar raises when turned into local time or an instant
# (another writer's "0001-01-01T00:00:00" for none: the file's listing stopped at it)
_OUT_OF_RANGE = (OverflowError, ValueError, OSError)


def _parsed(iso: str) -> datetime | None:
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def shown_time(iso: str) -> str:
    """`iso` as local time with its zone's name, "2026-12-07 15:26:00 CET"; a time without an
    offset (its zone unknown) as written, with a space for the T; anything else unchanged
    ("" for no time recorded), a time local time cannot hold too."""
    t = _parsed(iso)
    if t is None:
        return iso
    if t.tzinfo is None:
        return t.isoformat(sep=" ", timespec="seconds")
    try:
        local = t.astimezone()
    except _OUT_OF_RANGE:
        return iso
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def time_key(iso: str) -> float:
    """What a time column sorts by: the instant (times written under different offsets in
    the order they happened); no time, or none readable, first."""
    t = _parsed(iso)
    if t is None:
        return -math.inf
    try:
        return t.timestamp()
    except _OUT_OF_RANGE:
        return -math.inf
