"""The field tolerance a scan was taken with, as its entry stores it: coils.field_tolerance_nT
of the instrument profile written with the scan (the fluxgate held the field within it of
the one asked for).

A listing reads it for every entry (`nexus.list_entries`, the GUI's reader thread's among
them), and the scans of one session store the same profile: so a
profile's text is parsed once (`tolerance_in_profile`), not once per entry (about 1 ms each).
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass

import h5py

from smm_daq.instruments.profile import MAX_TOLERANCE_NT
from smm_daq.storage.strings import text

NT = 1e-9


@dataclass(frozen=True)
class StoredTolerance:
    """The field tolerance a stored profile gives, or why none is used."""

    value: float | None = None  # T; None: none usable, the profile's default applies
    # why a coils.field_tolerance_nT the profile holds was set aside (the profile loader
    # refuses it), e.g. "1e+300, not a number in (0, 100000] nT ..."; "" where the profile
    # holds none, or none readable
    problem: str = ""


def stored_field_tolerance(entry: h5py.Group) -> StoredTolerance:
    """coils.field_tolerance_nT (in T) of the profile `entry` stores; no value where it stores
    no readable profile (an import, a processed map), or one without a tolerance the profile
    loader takes (the profile's default then applies)."""
    node = entry.get("profile")
    if not isinstance(node, h5py.Dataset):
        return StoredTolerance()
    try:
        profile = text(node)
    except UnicodeError:
        return StoredTolerance()
    return tolerance_in_profile(profile)


@functools.lru_cache(maxsize=32)
def tolerance_in_profile(profile: str) -> StoredTolerance:
    """coils.field_tolerance_nT (in T) of a profile's text, above 0 and at most
    MAX_TOLERANCE_NT: a value beyond them is set aside, with the reason. (A stored tolerance
    below the loader's least, MIN_TOLERANCE_NT, is taken: its scan was verified within it.)"""
    try:
        value = tomllib.loads(profile).get("coils", {}).get("field_tolerance_nT")
    except (ValueError, RecursionError, AttributeError):  # TOMLDecodeError is a ValueError
        return StoredTolerance()
    if value is None:
        return StoredTolerance()
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_TOLERANCE_NT:
        return StoredTolerance(problem=f"{_shown(value)}, not a number in "
                                       f"(0, {MAX_TOLERANCE_NT:g}] nT as a profile must give")
    return StoredTolerance(float(value) * NT)


def _shown(value: object) -> str:
    """A stored value as a message quotes it, cut short (a profile may hold anything)."""
    shown = repr(value)
    return shown if len(shown) <= 40 else f"{shown[:37]}..."
