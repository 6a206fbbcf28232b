"""The field tolerance a scan was taken with, as its entry stores it: coils.field_tolerance_nT
of the instrument profile written with the scan (the fluxgate held the field within it of
the one asked for)."""

from __future__ import annotations

import math
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
        value = tomllib.loads(text(node)).get("coils", {}).get("field_tolerance_nT")
    except (tomllib.TOMLDecodeError, AttributeError, UnicodeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value < math.inf:
        return None
    return float(value) * NT
