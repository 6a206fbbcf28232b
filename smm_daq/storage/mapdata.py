"""A map of Bz on a regular grid, with what analysis needs to know about how it was taken.

Every analysis step takes and returns `MapData`; `smm_daq.storage.nexus` reads and writes it
from and to session-file entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class MapData:
    """Bz (ny, nx) in T on axes x (nx,) and y (ny,) in m; NaN where not measured or masked."""

    bz: np.ndarray
    x: np.ndarray
    y: np.ndarray
    height: float | None = None  # sensor plane above the sample surface, m
    sensor_size: tuple[float, float] | None = None  # active area (w, l), m; (0, 0) = point
    applied_field: np.ndarray | None = None  # (3,) T, the requested field during the scan
    name: str = ""  # the entry it was read from or will be written to
    title: str = ""
    sources: tuple[str, ...] = field(default=())  # entries it was computed from

    def __post_init__(self) -> None:
        bz = np.asarray(self.bz, dtype=float)
        x = np.asarray(self.x, dtype=float)
        y = np.asarray(self.y, dtype=float)
        if bz.ndim != 2 or bz.shape != (y.size, x.size):
            raise ValueError(
                f"Bz of shape {bz.shape} does not fit axes y ({y.size}) × x ({x.size})"
            )
        object.__setattr__(self, "bz", bz)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        if self.applied_field is not None:
            object.__setattr__(self, "applied_field", np.asarray(self.applied_field, dtype=float))

    @property
    def shape(self) -> tuple[int, int]:
        return self.bz.shape  # type: ignore[return-value]

    @property
    def step(self) -> tuple[float, float]:
        """Grid step (dx, dy) in m (0 along an axis with a single point)."""
        dx = float(self.x[1] - self.x[0]) if self.x.size > 1 else 0.0
        dy = float(self.y[1] - self.y[0]) if self.y.size > 1 else 0.0
        return dx, dy

    def with_bz(self, bz: np.ndarray, **changes: object) -> MapData:
        """The same grid and geometry with another Bz (and any other field changed)."""
        return replace(self, bz=bz, **changes)  # type: ignore[arg-type]
