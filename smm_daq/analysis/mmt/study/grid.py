"""The parameter study of seed 001 (Table 1): which models, and which synthetic samples.

A *model* is one combination of surface, thickness, grain density, sampling interval and noise
level; the seed ran each 15 times with new grains and magnetizations. A *sample* is one such
run before the map is sampled and noise added: the seed draws the grains and the 1 µm map
once, adds the noise, and sub-samples the same noisy 1 µm map for the coarser intervals, so one
sample serves every interval of a noise level (and here every noise level: each gets its own
draw from one generator).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from smm_daq.errors import InputError

# Seed 001, Table 1.
TABLE1_SURFACES_UM = (200.0, 500.0)
TABLE1_THICKNESSES_UM = (50.0, 75.0)
TABLE1_DENSITIES_PER_MM3 = (2.5e3, 5.0e3, 10.0e3, 25.0e3, 50.0e3, 75.0e3, 100.0e3)
TABLE1_INTERVALS_UM = (1, 2, 4, 5)
TABLE1_NOISE_NT = (5.0, 20.0, 50.0, 100.0)
TABLE1_REPEATS = 15
BASE_INTERVAL_UM = 1  # the grid that is computed; coarser intervals are sub-sampled from it
UR_LEVELS_PCT = (1.0, 3.0, 5.0, 10.0, 20.0)  # the uncertainty ratios of the seed's Figure 5
# The seed's sensor: a 1 × 1 µm loop on the sample surface. The forward model needs the
# sensor above every grain's top; grains reach up to the surface, so the plane sits just above.
DEFAULT_HEIGHT_UM = 0.5
DEFAULT_SENSOR_UM = 1.0
# how the magnetizations' directions are drawn (`synth.draw_directions`), the default first:
# uniform on the sphere, or seed 001 §2.1.2's θ uniform in (0, π)
DIRECTION_DRAWS = ("uniform-sphere", "uniform-theta")


@dataclass(frozen=True)
class SampleSpec:
    """One synthetic sample of the study: its model's geometry, density and repeat number."""

    surface_um: float
    thickness_um: float
    density_per_mm3: float
    repeat: int
    seed: int
    directions: str = DIRECTION_DRAWS[0]

    def rng(self) -> np.random.Generator:
        """The sample's own random stream: the same for the same study seed and parameters."""
        key = (round(self.surface_um * 1000), round(self.thickness_um * 1000),
               round(self.density_per_mm3), self.repeat)
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))


@dataclass(frozen=True)
class StudySpec:
    surfaces_um: tuple[float, ...] = TABLE1_SURFACES_UM
    thicknesses_um: tuple[float, ...] = TABLE1_THICKNESSES_UM
    densities_per_mm3: tuple[float, ...] = TABLE1_DENSITIES_PER_MM3
    intervals_um: tuple[int, ...] = TABLE1_INTERVALS_UM
    noise_nT: tuple[float, ...] = TABLE1_NOISE_NT
    repeats: int = TABLE1_REPEATS
    seed: int = 1
    height_um: float = DEFAULT_HEIGHT_UM  # sensor plane above the sample top
    sensor_um: float = DEFAULT_SENSOR_UM  # side of the square sensor (0: a point)
    directions: str = DIRECTION_DRAWS[0]  # the magnetizations' draw (`DIRECTION_DRAWS`)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.height_um) and self.height_um > 0):
            raise InputError(f"study height_um {self.height_um!r}: expected a number > 0 (the "
                             "sensor plane must lie above the sample top, where grains reach)")
        if not (math.isfinite(self.sensor_um) and self.sensor_um >= 0):
            raise InputError(f"study sensor_um {self.sensor_um!r}: expected a number >= 0 "
                             "(0 for a point sensor)")
        for name in ("surfaces_um", "thicknesses_um", "densities_per_mm3", "noise_nT"):
            values = getattr(self, name)
            if not values or not all(math.isfinite(v) and v > 0 for v in values):
                raise InputError(f"study {name} {values!r}: expected one or more numbers > 0")
        if not self.intervals_um or not all(
            isinstance(v, int) and v >= BASE_INTERVAL_UM for v in self.intervals_um
        ):
            raise InputError(
                f"study intervals_um {self.intervals_um!r}: expected whole numbers of µm >= 1 "
                "(coarser grids are sub-sampled from the 1 µm grid)"
            )
        if self.repeats < 1:
            raise InputError(f"study repeats {self.repeats!r}: expected at least 1")

    def samples(self) -> list[SampleSpec]:
        """Every sample to draw, the densest (slowest) first so the cluster ends evenly."""
        out = [
            SampleSpec(s, t, d, r, self.seed, self.directions)
            for s, t, d in itertools.product(self.surfaces_um, self.thicknesses_um,
                                             self.densities_per_mm3)
            for r in range(self.repeats)
        ]
        return sorted(out, key=lambda s: -s.surface_um**2 * s.thickness_um * s.density_per_mm3)

    def models(self) -> Iterator[tuple[float, float, float, int, float]]:
        """(surface_um, thickness_um, density_per_mm3, interval_um, noise_nT) of every model."""
        return itertools.product(self.surfaces_um, self.thicknesses_um, self.densities_per_mm3,
                                 self.intervals_um, self.noise_nT)


def base_points(surface_um: float) -> int:
    """Points along one axis of a sample's 1 µm grid (from 0 to its surface, both included)."""
    return math.floor(surface_um / BASE_INTERVAL_UM + 1e-9) + 1


def subsample_index(n_base: int, interval_um: int) -> np.ndarray:
    """Indices along one axis of the 1 µm grid (n_base points from 0) kept at `interval_um`."""
    return np.arange(0, n_base, interval_um // BASE_INTERVAL_UM)


def parse_list(option: str, text: str, *, integer: bool = False) -> tuple[float, ...]:
    """'a,b,c' into numbers for a study option; InputError naming the option otherwise."""
    values: list[float] = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0) or (integer and value != round(value)):
            kind = "whole numbers > 0" if integer else "numbers > 0"
            raise InputError(f"{option} is {text!r}; expected comma-separated {kind}")
        values.append(round(value) if integer else value)
    return tuple(values)
