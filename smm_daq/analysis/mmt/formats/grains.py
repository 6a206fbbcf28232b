"""One entry point for every grain file MMT reads: cuboid grains (the DESIGN.md CSV, the cuboid
library's text) and point grains (point lists, the multipole library's NPZ, Dragonfly
exports)."""

from __future__ import annotations

from pathlib import Path

from smm_daq.analysis.grains import GrainSet, read_grains
from smm_daq.analysis.mmt.formats import dragonfly, mpe, points
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.errors import InputError

GRAIN_FORMATS = ("cuboids", "csv", "mmt", "points", "mpe", "dragonfly")  # csv = cuboids
CUBOID_FORMATS = ("cuboids", "csv", "mmt")


def read_grain_file(path: str | Path, fmt: str = "cuboids",
                    options: dragonfly.DragonflyOptions | None = None
                    ) -> GrainSet | PointGrains:
    """The grains of a file in format `fmt` (`options` for Dragonfly exports)."""
    if fmt not in GRAIN_FORMATS:
        raise InputError(f"grain format {fmt!r} is unknown; expected one of "
                         f"{', '.join(GRAIN_FORMATS)}")
    if fmt in CUBOID_FORMATS:
        return read_grains(path, "mmt" if fmt == "mmt" else "csv")
    if fmt == "points":
        return points.read_points(path)
    if fmt == "mpe":
        return mpe.read_particles(path)
    return dragonfly.read_dragonfly(path, options)
