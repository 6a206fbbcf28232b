"""What the lock-in emulators' tests feed them: a constant in-phase level and white noise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Level:
    """A noiseless in-phase level the test can change, plus white noise of `density`
    (V/√Hz); the emulators ask for both through these two methods."""

    def __init__(self, volts: float = 0.0, density: float = 0.0) -> None:
        self.volts = volts
        self.density = density

    def lockin_signal(self, times: Sequence[float], excitation: float) -> np.ndarray:
        return np.full(len(times), self.volts)

    def lockin_noise_density(self, excitation: float) -> float:
        return self.density
