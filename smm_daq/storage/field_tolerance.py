"""The field tolerance a scan was taken with, as its entry stores it: coils.field_tolerance_nT
of the instrument profile written with the scan (the fluxgate held the field within it of
the one asked for).

A listing reads it for every entry (`nexus.list_entries`, the GUI's reader thread's among
them), and the scans of one session store the same profile: so a
profile's text is parsed once (`tolerance_in_profile`), not once per entry (about 1 ms each).
"""

from __future__ import annotations

import functools
import sys
import tomllib

import h5py

from smm_daq.storage.strings import text

NT = 1e-9


def stored_field_tolerance(entry: h5py.Group) -> float | None:
    """coils.field_tolerance_nT (in T) of the profile `entry` stores; None where it stores
    no readable profile (an import, a processed map), or one without a positive, finite
    tolerance (the profile's default then applies)."""
    node = entry.get("profile")
    if not isinstance(node, h5py.Dataset):
        return None
    try:
        profile = text(node)
    except UnicodeError:
        return None
    return tolerance_in_profile(profile)


@functools.lru_cache(maxsize=32)
def tolerance_in_profile(profile: str) -> float | None:
    """coils.field_tolerance_nT (in T) of a profile's text, None where it has none readable."""
    try:
        value = tomllib.loads(profile).get("coils", {}).get("field_tolerance_nT")
    except (ValueError, RecursionError, AttributeError):  # TOMLDecodeError is a ValueError
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= sys.float_info.max:
        return None
    return float(value) * NT
