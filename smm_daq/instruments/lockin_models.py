"""What each lock-in model's detection allows: the highest harmonic of the reference it
detects at, and the highest frequency it detects (harmonic × reference frequency); and the
amplitudes its sine output gives; and the least piece its buffer is read in. The profile
refuses a harmonic or an amplitude beyond them, or a LAN link's timeout too short for that
piece, when it is loaded, and the drivers check against the same tables, so a profile that
loads is one its driver accepts at connect."""

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

# A buffer's read comes in pieces, each one exchange, each sized to come within this share of
# the link's timeout at the link's slowest rate (the drivers' `piece_size`)
PIECE_TIMEOUT_SHARE = 0.5
LEAST_PIECE_BYTES = {  # the least piece a model's buffer is read in, on the wire
    "sr830": 15,  # one TRCA? point, '+1.234567e-009,'
    "sr860": 1024 + 7,  # one kB of CAPTUREGET?, '#41024' before it and its terminator
}
