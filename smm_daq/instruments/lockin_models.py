"""What each lock-in model's detection allows: the highest harmonic of the reference it
detects at, and the highest frequency it detects (harmonic × reference frequency); and the
amplitudes its sine output gives. The profile refuses a harmonic or an amplitude beyond them
when it is loaded, and the drivers check against the same tables, so a profile that loads is
one its driver accepts at connect."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HarmonicLimits:
    model: str  # as its front panel says
    max_harmonic: int
    max_detection_hz: float  # harmonic × reference frequency


HARMONIC_LIMITS = {  # by the profile's lockin.implementation
    "sr830": HarmonicLimits("SR830", 19999, 102000.0),
    "sr860": HarmonicLimits("SR860", 99, 500000.0),
}

AMPLITUDE_RANGES = {  # V rms of the sine output, by the profile's lockin.implementation
    "sr830": (0.004, 5.0),
    "sr860": (1e-9, 2.0),
}
