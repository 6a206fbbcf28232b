"""Which coils no longer hold their current mid-scan, and what that may mean.

A coil whose current fell (towards 0 A) may have had its supply trip or its circuit open; one
driving more than its setpoint, or the other way, did not trip: its supply was set otherwise
(at its front panel, by another program) or is faulty. The field each coil's error makes says
which coils matter.
"""

from __future__ import annotations

import numpy as np

from smm_daq.instruments.profile import CoilSettings
from smm_daq.instruments.ramp_pieces import READBACK_GAIN

AXES = ("x", "y", "z")
NEAR_ZERO = 0.1  # a current below this fraction of its setpoint reads as "about 0 A"
# A, each coil: what a supply's current read-back may be off by at any current, its offset
# (the shipped Kepco driver takes a current read back within 5 mA of its setpoint)
READBACK_OFFSET_A = 5e-3


def held_allowed(settings: CoilSettings, b: np.ndarray) -> float:
    """How far (T) the field the coils' currents make, read back at a scan line's end, may
    be from the field `b` asked for before it is taken for a field not held (a supply
    tripped, an axis lost): ten field tolerances (the fluxgate's check, which a read-back
    cannot match), the field the read-back's offset makes (`READBACK_OFFSET_A` on each
    coil, through the calibration: all there is at zero field) or its gain (`READBACK_GAIN`
    of |b|), whichever is most. Not a share of the coils' largest field, as the read-back
    once made safe allows (`ramp_pieces.readback_allowed`): on coils made for fields far
    above the scan's, that exceeds the whole share of an axis lost."""
    offset = READBACK_OFFSET_A * float(np.sum(np.linalg.norm(settings.calibration, axis=0)))
    return max(10 * settings.field_tolerance, offset,
               READBACK_GAIN * float(np.linalg.norm(b)))


def expected_currents(field: np.ndarray, calibration: np.ndarray,
                      ambient: np.ndarray) -> np.ndarray:
    """The coil currents (A) that make `field` (T): I = C⁻¹ (B − ambient)."""
    return np.linalg.solve(calibration, np.asarray(field, dtype=float) - ambient)


def coils_off(measured: np.ndarray, expected: np.ndarray, calibration: np.ndarray,
              allowed: float) -> list[str]:
    """Each coil whose current is off, said with its reading, its setpoint and what may be
    the cause: those whose own error makes more than a third of `allowed` (T) at the sample,
    else the one whose error makes the most field."""
    error = np.asarray(measured, dtype=float) - expected
    made = np.linalg.norm(calibration * error, axis=0)  # the field each coil's error makes
    named = [k for k in range(3) if made[k] > allowed / 3] or [int(np.argmax(made))]
    return [_said(AXES[k], float(measured[k]), float(expected[k])) for k in named]


def _said(axis: str, measured: float, expected: float) -> str:
    off = abs(measured - expected)
    head = f"coil {axis} reads {measured:.4f} A for {expected:.4f} A set"
    if abs(measured) < NEAR_ZERO * abs(expected):
        return (f"{head} ({off:.4f} A below, about 0 A: its supply may have tripped or its "
                "circuit opened)")
    if measured * expected < 0:
        return (f"{head} (the other way, {off:.4f} A off: not a trip; its supply set otherwise "
                "or faulty?)")
    if abs(measured) > abs(expected):
        return (f"{head} ({off:.4f} A above its setpoint: not a trip; its supply set otherwise, "
                "at its front panel or by another program, or faulty?)")
    return (f"{head} ({off:.4f} A below: its supply at its voltage limit (compliance), or "
            "tripping?)")
