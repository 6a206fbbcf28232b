"""Units in session files: in a `units` attribute (UDUNITS spelling), never in a name.

People's keys and CSV columns carry their unit in the name (`mx_A_per_m`, `time_constant_s`);
`split_units` turns such a key into the name stored in the file and its UDUNITS unit, so a
table or settings dict whose keys follow that convention is stored without units in names,
new columns included.

A map read back is taken in SI; a file whose `units` attribute says another unit of the same
quantity (Bz in nT, axes in µm, as another program may write them) is converted
(`si_factor`), and one of another quantity refused.
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
    "per_um": "um-1",
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
_SUFFIX_OF = {units: suffix for suffix, units in _SUFFIXES.items()}  # "A/m" -> "A_per_m"


def split_units(key: str) -> tuple[str, str | None]:
    """('mx', 'A/m') for 'mx_A_per_m'; (key, None) when the key names no known unit."""
    for suffix in _ORDER:
        tail = "_" + suffix
        if key.endswith(tail) and len(key) > len(tail):
            return key[: -len(tail)], _SUFFIXES[suffix]
    return key, None


# SI unit -> the spellings of units of that quantity a map's datasets may carry, and each one's
# factor to SI (UDUNITS names and symbols; "u" for µ, as UDUNITS allows)
_TO_SI = {
    "T": {"T": 1.0, "tesla": 1.0, "mT": 1e-3, "uT": 1e-6, "µT": 1e-6, "μT": 1e-6, "nT": 1e-9,
          "pT": 1e-12, "G": 1e-4, "gauss": 1e-4},
    "m": {"m": 1.0, "meter": 1.0, "metre": 1.0, "mm": 1e-3, "um": 1e-6, "µm": 1e-6,
          "μm": 1e-6, "micron": 1e-6, "nm": 1e-9},
}


def si_factor(units: str, si: str) -> float | None:
    """The factor taking values in `units` to the SI unit `si` ("T" or "m"); None when `units`
    is not a unit of that quantity."""
    return _TO_SI[si].get(units.strip())


def spellings(si: str) -> str:
    """The units of `si`'s quantity that `si_factor` knows, for messages."""
    return ", ".join(_TO_SI[si])


def join_units(stem: str, units: str | None) -> str | None:
    """The key `split_units` splits into (stem, units): ('mx', 'A/m') -> 'mx_A_per_m';
    `stem` itself without a unit; None for a unit no key names."""
    if not units:
        return stem
    suffix = _SUFFIX_OF.get(units)
    return None if suffix is None else f"{stem}_{suffix}"
