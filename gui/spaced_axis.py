"""A horizontal axis whose labelled ticks never run into each other.

pyqtgraph spaces major ticks by the axis's length alone, not by how wide their labels are, so
a map's narrow pane (the MMT tab's) wrote x in µm as "12200124001260012800": four five-digit
labels side by side with no room between them. Here the major spacing widens (1, 2, 5 × 10ⁿ)
until each label, and a gap, fits between two ticks.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PyQt6 import QtGui

GAP_PX = 12  # between two labels, at least
NICE = (1.0, 2.0, 5.0, 10.0)


class SpacedAxis(pg.AxisItem):
    """An AxisItem whose major labels (on a top or bottom axis) are spaced to fit."""

    def tickSpacing(self, minVal: float, maxVal: float, size: float):
        levels = super().tickSpacing(minVal, maxVal, size)
        if self.orientation not in ("top", "bottom") or not levels or size <= 0:
            return levels
        per_px = abs(maxVal - minVal) / size
        major = levels[0][0]
        while major / per_px < self.label_width(minVal, maxVal, major) + GAP_PX:
            major = _next_nice(major)
        if major == levels[0][0]:
            return levels
        return [(major, 0.0), (major / (2 if _mantissa(major) == 5.0 else 5), 0.0)]

    def label_width(self, low: float, high: float, spacing: float) -> float:
        """The widest of the labels the axis writes at `spacing` between `low` and `high`."""
        font = self.style.get("tickFont") or self.font()
        metrics = QtGui.QFontMetricsF(font)
        ends = [math.floor(low / spacing) * spacing, math.ceil(high / spacing) * spacing]
        texts = self.tickStrings(ends, self.autoSIPrefixScale * self.scale, spacing)
        return max(metrics.horizontalAdvance(t) for t in texts)


def _mantissa(spacing: float) -> float:
    return round(spacing / 10 ** math.floor(math.log10(spacing) + 1e-9), 6)


def _next_nice(spacing: float) -> float:
    """The next of 1, 2, 5 × 10ⁿ above `spacing`."""
    power = 10 ** math.floor(math.log10(spacing) + 1e-9)
    return next(m * power for m in NICE if m * power > spacing * (1 + 1e-9))
