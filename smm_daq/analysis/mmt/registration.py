"""Grains brought from the micro-CT's frame into the scan's: a rotation about the vertical
through a stated origin, then a shift, applied to the grains as read (before any crop to the
scans). The rotation turns counter-clockwise seen from above (from +x towards +y, z up).

Point grains (points, mpe, Dragonfly, and cuboid grains inverted as points) take any angle.
Cuboid grains are axis-aligned boxes,
which a rotation keeps as boxes only by a multiple of 90° (each cuboid's centre turned, its x
and y edges swapped at 90° and 270°): another angle would need each grain cut into new cuboids,
so it is refused, saying so.

A registration that moves grains where no grain can be is refused, naming it and a grain it
moved there: cuboid grains above the sample top (z > 0), point grains lifted above it by the
shift's z (a file's own point grains above the top are only warned of when inverted, since a
file written with z as depth reads so), and any grain beyond the positions its reader takes
(±1 m for cuboid grains, ±POSITION_LIMIT_M for point grains): a shift or rotation origin in
the wrong unit would otherwise put grains far from any scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.grains import MAX_UM, GrainSet
from smm_daq.analysis.mmt.models.multipole import POSITION_LIMIT_M, PointGrains
from smm_daq.errors import InputError

UM = 1e-6


@dataclass(frozen=True)
class GrainRegistration:
    """Rotation (degrees, counter-clockwise from above) about `origin` (x, y in m), then
    `shift` (x, y, z in m)."""

    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation_deg: float = 0.0
    origin: tuple[float, float] = (0.0, 0.0)

    @property
    def identity(self) -> bool:
        return self.rotation_deg % 360.0 == 0.0 and not any(self.shift)

    @property
    def keeps_cuboids(self) -> bool:
        """A turn by a multiple of 90°: cuboid grains stay axis-aligned cuboids."""
        return self.rotation_deg % 90.0 == 0.0

    def apply_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points (x, y) in m, rotated about the origin and shifted in x and y."""
        turn = math.radians(self.rotation_deg)
        c, s = _cos_sin(turn, self.rotation_deg)
        ox, oy = self.origin
        u, v = x - ox, y - oy
        return ox + c * u - s * v + self.shift[0], oy + s * u + c * v + self.shift[1]

    def describe(self) -> str:
        """The registration as its options give it (µm, degrees), for a message."""
        parts = []
        if self.rotation_deg % 360.0:
            parts.append(f"--grains-rotation-deg {self.rotation_deg:g} about "
                         f"({self.origin[0] / UM:g}, {self.origin[1] / UM:g}) µm")
        if any(self.shift):
            parts.append("--grains-shift-um " + ",".join(f"{v / UM:g}" for v in self.shift))
        return ", then ".join(parts)


def _cos_sin(turn: float, degrees: float) -> tuple[float, float]:
    """cos and sin of the turn, exact at multiples of 90° (a cuboid's centre lands where its
    edges, swapped, say it is)."""
    quarter = degrees / 90.0
    if quarter == round(quarter):
        return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[round(quarter) % 4]
    return math.cos(turn), math.sin(turn)


def check_turn(reg: GrainRegistration, cuboids: bool) -> None:
    """InputError for a turn that `cuboids` (cuboid grains under the cuboid model) cannot
    take: known before the grains are read, so it can be refused before any work."""
    if cuboids and not reg.keeps_cuboids:
        angle = repr(reg.rotation_deg).removesuffix(".0")  # exact: 89.99999999999999 no 90
        raise InputError(f"--grains-rotation-deg is {angle} with cuboid grains, "
                         "whose cuboids are axis-aligned and stay so only turned by a multiple "
                         "of 90°; expected 0, 90, 180 or 270 (or point grains: --model dipole, "
                         "quadrupole or octupole reads their centroids)")


def register_grains(grains: GrainSet | PointGrains, reg: GrainRegistration
                    ) -> GrainSet | PointGrains:
    """The grains in the scan's frame; InputError for a rotation cuboid grains cannot take,
    cuboids the registration lifts above the sample top, point grains its shift lifts above
    it, or grains it moves beyond the positions their reader takes."""
    if reg.identity:
        return grains
    if isinstance(grains, PointGrains):
        pos = grains.positions.copy()
        pos[:, 0], pos[:, 1] = reg.apply_xy(pos[:, 0], pos[:, 1])
        pos[:, 2] += reg.shift[2]
        _refuse_far(pos, grains.labels, POSITION_LIMIT_M, reg, grains.source)
        lifted = np.flatnonzero((pos[:, 2] > 0) & (grains.positions[:, 2] <= 0))
        if lifted.size:
            g = int(lifted[np.argmax(pos[lifted, 2])])
            raise InputError(f"{lifted.size} of {grains.n_grains} point grains lie above the "
                             f"sample top once registered ({reg.describe()}), e.g. grain "
                             f"{int(grains.labels[g])} from z = "
                             f"{grains.positions[g, 2] / UM:.6g} µm to {pos[g, 2] / UM:.6g} µm; "
                             "expected every grain at or below the top (z <= 0): a smaller "
                             "z shift (z up)", source=grains.where(g))
        return PointGrains(pos, grains.volume, grains.labels, grains.source, grains.lines,
                           grains.left_out)
    quarter = reg.rotation_deg / 90.0
    check_turn(reg, cuboids=True)
    cuboids = grains.cuboids.copy()
    cuboids[:, 0], cuboids[:, 1] = reg.apply_xy(cuboids[:, 0], cuboids[:, 1])
    cuboids[:, 2] += reg.shift[2]
    if round(quarter) % 2:
        cuboids[:, [3, 4]] = cuboids[:, [4, 3]]
    moved = GrainSet(cuboids, grains.grain, grains.labels, grains.lines, grains.source)
    _refuse_far(cuboids[:, :3], grains.labels[grains.grain], MAX_UM * UM, reg, grains.source)
    above = np.flatnonzero(moved.tops() > 0)
    if above.size:
        g = int(above[0])
        raise InputError(f"grain {int(grains.labels[g])} reaches z = "
                         f"{moved.tops()[g] / UM:.6g} µm, above the sample top, once shifted "
                         f"by --grains-shift-um's z {reg.shift[2] / UM:g} µm; expected every "
                         "grain at or below the top (z <= 0)", source=grains.source or None)
    return moved


def _refuse_far(positions: np.ndarray, labels: np.ndarray, limit: float,
                reg: GrainRegistration, source: str) -> None:
    """InputError for the first grain (point, or cuboid centre) the registration puts beyond
    ±`limit` m on any axis, the bound its reader holds the file's positions to."""
    far = np.flatnonzero(~np.all(np.abs(positions) <= limit, axis=1))
    if far.size:
        g = int(far[0])
        where = ", ".join(f"{v / UM:.6g}" for v in positions[g])
        raise InputError(f"grain {int(labels[g])} lands at ({where}) µm once registered "
                         f"({reg.describe()}); expected every grain within ±{limit:g} m, as "
                         "its file's positions are (a shift or rotation origin in the wrong "
                         "unit?)", source=source or None)
