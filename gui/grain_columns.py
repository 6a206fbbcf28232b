"""How the MMT grain table heads and writes its columns: a heading for people, with the unit in
brackets (`Mx (A/m)`, not the CSV's `mx_A_per_m`, which the heading's tooltip still names), and
one number format for the whole of a column, so that its numbers line up and read alike
(`3.219e+10` stood beside `-707855` in one column), in which every value shows its leading
digits (chosen from the largest value alone, fixed point wrote 3e-2 as 0.000 beside 1e5).
The CSV keeps its own headers (`smm_daq.analysis.mmt.result_values.CSV_HEADERS`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from smm_daq.analysis.mmt.result_values import CSV_HEADERS, DIRECTION_NAMES

# a CSV column name's unit suffix and how a heading writes it, longest first
UNITS = (
    ("_A2_per_m2", "A²/m²"), ("_A_per_m", "A/m"), ("_per_um", "1/µm"), ("_Am2", "A·m²"),
    ("_Am3", "A·m³"), ("_Am4", "A·m⁴"), ("_um3", "µm³"), ("_um", "µm"), ("_pct", "%"),
    ("_deg", "°"),
)
NAMES = {
    "mx": "Mx", "my": "My", "mz": "Mz", "ssr": "SSR", "cov_xy": "cov Mx My",
    "cov_xz": "cov Mx Mz", "cov_yz": "cov My Mz", "declination": "declination cw from N",
    "higher_order_chi2": "higher-order χ²", "higher_order_p": "higher-order p",
    "higher_order_resolved": "higher order resolved",
}
SIGNIFICANT = 4  # digits of a column's largest value (and of each, in an exponent)
LEAST_SIGNIFICANT = 2  # digits at least of each other non-zero value in fixed point
FIXED_BELOW = 1e6  # a column whose |values| all lie below this may be written without exponent
FIXED_DIGITS = 6  # at most this many digits in fixed point (1250.50, 0.000120), else exponents


def heading(name: str) -> str:
    """A column's heading: its quantity, then its unit in brackets ("SD Mx (A/m)")."""
    base, unit = name, ""
    for suffix, said in UNITS:
        if name.endswith(suffix):
            base, unit = name[: -len(suffix)], said
            break
    sd = base.startswith("sd_")
    base = base[3:] if sd else base
    said = NAMES.get(base, base.replace("_", " "))
    return f"{'SD ' if sd else ''}{said}{f' ({unit})' if unit else ''}"


def heading_tip(name: str) -> str:
    """A heading's tooltip: the column's name in the result's CSV, and a direction's
    convention."""
    tip = f"CSV column {CSV_HEADERS.get(name, name)}"
    return f"{tip}: {DIRECTION_NAMES[name]}" if name in DIRECTION_NAMES else tip


def column_format(values: np.ndarray) -> Callable[[float], str]:
    """One format for every number of a column: whole numbers as such; else fixed point with
    the decimals that give its largest finite |value| SIGNIFICANT digits and its smallest
    non-zero one LEAST_SIGNIFICANT (so the column's decimal points line up, and no value is
    written 0.000), where every value lies below FIXED_BELOW and the largest then takes at
    most FIXED_DIGITS digits; else an exponent with SIGNIFICANT digits for each. NaN
    (undetermined) as nan."""
    if np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.bool_):
        return lambda v: str(int(v))
    finite = np.abs(values[np.isfinite(values)])
    finite = finite[finite > 0]
    # + 0.0: a negative zero (-1 × 0.0) is written 0, not -0 (nor -0.000e+00)
    if not finite.size:
        return lambda v: f"{v + 0.0:g}"
    smallest, largest = float(finite.min()), float(finite.max())
    # its SIGNIFICANT digits may carry into one more (99.996: 100.0, not 100.00): the power
    # of ten read off them as written (the largest float's, 1.798e+308, is no float)
    top = int(f"{largest:.{SIGNIFICANT - 1}e}".partition("e")[2])
    decimals = max(0, SIGNIFICANT - 1 - top,
                   LEAST_SIGNIFICANT - 1 - _magnitude(smallest))
    shown = float(f"{largest:.{decimals}f}")  # as written: 999999.6 is 1000000, 7 digits
    whole = max(0, _magnitude(shown) + 1)  # digits before the point (0.5: none)
    if shown < FIXED_BELOW and whole + decimals <= FIXED_DIGITS:
        return lambda v: _no_minus_zero(f"{v:.{decimals}f}")
    return lambda v: f"{v + 0.0:.{SIGNIFICANT - 1}e}"


def _magnitude(value: float) -> int:
    """The power of ten of `value`'s leading digit (> 0)."""
    return math.floor(math.log10(value))


def _no_minus_zero(text: str) -> str:
    """A small negative number rounded to zero is written 0, not -0 (nor -0.00)."""
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text
