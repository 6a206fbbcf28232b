"""The ambient field's drift over a long scan, from a fluxgate reading at each line's end.

The coils' currents are checked every line (`Sequencer._check_field_held`), but the field
they add to, the ambient field, is measured only at a run's start. Over a scan of hours it can
change (the Earth's field, a lab's machines, a magnet moved nearby), and the map then carries
it as a slow offset in Bz. The fluxgate, read once at each line's end, gives the field at the
sample; the reading is stored with the line, and a drift from the scan's start check beyond
the profile's `fluxgate.drift_tolerance_nT` is said (a resumed scan's lines are compared with
the check of the run that stored its first lines, not the resume's own, which the field's
verification lets differ from it by up to twice `coils.field_tolerance_nT`): once it first
passes the tolerance, and again each time it passes another whole tolerance, so an 8 h scan
says how far it went without saying it every line.
"""

from __future__ import annotations

import math

import numpy as np


class DriftWatch:
    """Readings at line ends compared with `start` (T), the field check `since` names."""

    def __init__(self, start: np.ndarray, tolerance: float, since: str = "the start") -> None:
        self.start = np.asarray(start, dtype=float).copy()
        self.tolerance = tolerance
        self.since = since
        self._said = 0  # whole tolerances of drift already said
        self._unread = False  # the last reading failed, and that was said

    def check(self, line: int, field: np.ndarray) -> str:
        """What to tell of the reading `field` (T) at the end of `line` (counted from 1, as
        the progress shows it), or ""."""
        self._unread = False
        drift = float(np.linalg.norm(np.asarray(field, dtype=float) - self.start))
        level = math.floor(drift / self.tolerance) if math.isfinite(drift) else 0
        if level <= self._said:
            return ""
        self._said = level
        return (f"the field at the sample drifted {drift * 1e9:.0f} nT by the end of line "
                f"{line} (the fluxgate reads {_ut(field)} µT, {_ut(self.start)} µT at "
                f"{self.since}), beyond the {self.tolerance * 1e9:.0f} nT of "
                "fluxgate.drift_tolerance_nT: the ambient field changed (a magnet or a machine "
                "near the rig?); each line's reading is stored in its data/line_field")

    def unread(self, line: int, why: str) -> str:
        """What to tell of a fluxgate that answered at the end of `line` with no field
        (`why`: out of its range), or "" while the readings before it failed too."""
        if self._unread:
            return ""
        self._unread = True
        return (f"the fluxgate gave no field at the end of line {line} ({why}): the field at "
                "the sample may be far from its start's (a magnet near the rig?); that line's "
                "data/line_field is NaN, and the fluxgate is read again at each line's end")


def _ut(b: np.ndarray) -> str:
    return "(" + ", ".join(f"{v * 1e6:.3f}" for v in np.asarray(b, dtype=float)) + ")"
