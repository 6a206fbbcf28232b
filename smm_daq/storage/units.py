"""Units in session files: in a `units` attribute (UDUNITS spelling), never in a name.

People's keys and CSV columns carry their unit in the name (`mx_A_per_m`, `time_constant_s`);
`split_units` turns such a key into the name stored in the file and its UDUNITS unit, so a
table or settings dict whose keys follow that convention is stored without units in names,
new columns included.
"""

from __future__ import annotations

_SUFFIXES = {  # name suffix -> UDUNITS
    "A2_per_m2": "A2/m2",
    "A_per_m": "A/m",
    "A_per_s": "A/s",
    "T_per_A": "T/A",
    "T_per_m": "T/m",
    "V_per_T": "V/T",
    "m_per_s": "m/s",
    "per_mm3": "mm-3",
    "Am2": "A m2",
    "Am3": "A m3",
    "Am4": "A m4",
    "um3": "um3",
    "um": "um",
    "uT": "uT",
    "nT": "nT",
    "deg": "degree",
    "pct": "percent",
    "rad": "rad",
    "Hz": "Hz",
    "SI": "1",
    "T": "T",
    "V": "V",
    "A": "A",
    "m": "m",
    "s": "s",
}
_ORDER = sorted(_SUFFIXES, key=len, reverse=True)


def split_units(key: str) -> tuple[str, str | None]:
    """('mx', 'A/m') for 'mx_A_per_m'; (key, None) when the key names no known unit."""
    for suffix in _ORDER:
        tail = "_" + suffix
        if key.endswith(tail) and len(key) > len(tail):
            return key[: -len(tail)], _SUFFIXES[suffix]
    return key, None
