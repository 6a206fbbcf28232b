"""Whether a value read from a TOML or JSON file is a finite number.

Both formats hold whole numbers of any size (Python reads a 1 followed by 400 zeros as an
int), on which `math.isfinite` raises OverflowError instead of answering; and Python's bool
is an int, so `true` would pass for 1.
"""

from __future__ import annotations

import math


def finite_number(value: object) -> bool:
    """True for an int or float (never a bool) that is finite as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number beyond any float
        return False
