"""The virtual sample: grains as uniformly magnetized cuboids, M = M_r + χ_eff H0.

Each grain is one or more axis-aligned cuboids (centre x, y, z and FULL edge lengths, m, in
the sample frame: top surface at z = 0, grains at z < 0). A grain has one remanent
magnetization (A/m) and one intrinsic volume susceptibility χ (SI). The applied field
H0 = B_applied / mu0 (weak field) magnetizes each grain against its own demagnetizing field:
along each axis χ_eff = χ / (1 + N χ) (`simulators.demagnetization`), so a strongly magnetic
grain's induced moment depends on its shape as a real one's does. N is Aharoni's exact
magnetometric factor for a grain of one cuboid, but M is taken uniform, which a prism's is
not (for χ = 3 the moment comes out 1-5 % low, see `simulators.demagnetization`); a grain
of several cuboids takes the factors of their bounding box (a further approximation, exact
only when they fill it: the box of a slab built of rows is the slab, that of an L-shaped
grain or an elliptical patch holds empty corners). Bz at the sensor comes from the closed-form
cuboid field of `smm_daq.analysis.forward`, averaged over the sensor's area.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from simulators.demagnetization import effective_susceptibility
from smm_daq.analysis.forward import cuboid_bz, cuboid_bz_kernel

MU0 = 4e-7 * math.pi

# Seed 001 §2.1: |M| = M0 (V / V0)^alpha, V0 the volume of a 1 µm sphere.
_M0 = 46.5e3  # A/m
_V0 = 4.0 / 3.0 * math.pi * (0.5e-6) ** 3  # m³
_ALPHA = -0.355

# The demo's large multidomain magnetite plates (plan-view size, m) in a 30 µm thin section.
LARGE_MAGNETITE = ((480e-6, 300e-6), (320e-6, 420e-6), (360e-6, 220e-6))
SECTION = 30e-6
LARGE_TOP = -2.5e-6  # just below the polished surface
LARGE_CHI = 3.0  # multidomain magnetite, SI, intrinsic (its plates' own field lowers it)
_GAP = 20e-6  # plan-view clearance between grains
_LARGE_GAP = 200e-6  # between the large plates: about twice the sensor height


def _free_place(boxes: list[tuple[float, float, float, float]], size: tuple[float, float],
                centre: np.ndarray, half: float, apart: list[tuple[float, float, float, float]]
                ) -> tuple[float, float, float, float]:
    """The plan-view box of `size` nearest the centre, on a 10 µm lattice inside the square,
    clear of every box by _GAP and of the boxes in `apart` by _LARGE_GAP, so that no edge's
    field is cancelled by a neighbour's (deterministic: the demo sample is always the same)."""
    w, h = size
    margin = 50e-6
    xs = np.arange(centre[0] - half + margin + w / 2, centre[0] + half - margin - w / 2, 10e-6)
    ys = np.arange(centre[1] - half + margin + h / 2, centre[1] + half - margin - h / 2, 10e-6)
    gx, gy = np.meshgrid(xs, ys)
    order = np.argsort(np.hypot(gx - centre[0], gy - centre[1]), axis=None)
    x, y = gx.flat[order], gy.flat[order]
    x0, x1, y0, y1 = x - w / 2, x + w / 2, y - h / 2, y + h / 2  # each place, nearest first
    clear = np.ones(x.size, dtype=bool)
    for group, gap in ((boxes, _GAP), (apart, _LARGE_GAP)):
        for b in group:  # all places against one box at a time (a simulated rig's every open)
            clear &= ~((x0 < b[1] + gap) & (b[0] < x1 + gap) & (y0 < b[3] + gap)
                       & (b[2] < y1 + gap))
    free = np.flatnonzero(clear)
    if free.size:
        k = free[0]
        return (x0[k], x1[k], y0[k], y1[k])
    raise RuntimeError(f"no room for a {w / 1e-6:g} × {h / 1e-6:g} µm grain in the demo sample")


class VirtualSample:
    """Grains of cuboids with remanence and susceptibility; its Bz anywhere above the top."""

    def __init__(
        self,
        cuboids: np.ndarray,
        grain: np.ndarray,
        remanence: np.ndarray,
        susceptibility: np.ndarray,
    ) -> None:
        cuboids = np.array(cuboids, dtype=float).reshape(-1, 6)
        grain = np.array(grain, dtype=int).reshape(-1)
        remanence = np.array(remanence, dtype=float).reshape(-1, 3)
        susceptibility = np.array(susceptibility, dtype=float).reshape(-1)
        n_grains = remanence.shape[0]
        if grain.shape[0] != cuboids.shape[0]:
            raise ValueError(f"{cuboids.shape[0]} cuboids but {grain.shape[0]} grain indices")
        if susceptibility.shape[0] != n_grains:
            raise ValueError(
                f"{n_grains} remanences but {susceptibility.shape[0]} susceptibilities"
            )
        if grain.size and (grain.min() < 0 or grain.max() >= n_grains):
            raise ValueError(f"grain indices must lie in 0..{n_grains - 1}")
        if np.any(cuboids[:, 3:] <= 0):
            raise ValueError("cuboid edge lengths must be > 0")
        if np.any(cuboids[:, 2] + cuboids[:, 5] / 2 > 0):
            raise ValueError("cuboids must lie inside the sample (top at z <= 0)")
        if not (np.all(np.isfinite(cuboids)) and np.all(np.isfinite(remanence))):
            raise ValueError("cuboids and remanence must be finite")
        if not np.all(np.isfinite(susceptibility) & (susceptibility > -1.0)):
            raise ValueError("susceptibilities must be finite and > -1 SI (a perfect "
                             "diamagnet's -1 is the least there is)")
        self.cuboids = cuboids
        self.grain = grain
        self.remanence = remanence
        self.susceptibility = susceptibility
        # (C, 3): each cuboid's M per unit applied H along x, y, z: its grain's
        used = np.unique(grain)
        per_grain = np.zeros((n_grains, 3))
        per_grain[used] = effective_susceptibility(susceptibility[used],
                                                   self.grain_boxes()[used])
        self.effective_susceptibility = per_grain[grain]

    @property
    def n_grains(self) -> int:
        return self.remanence.shape[0]

    def grain_boxes(self) -> np.ndarray:
        """(G, 3) full edge lengths of each grain's bounding box (zero for a grain with no
        cuboid, which has no moment either)."""
        lo = np.full((self.n_grains, 3), np.inf)
        hi = np.full((self.n_grains, 3), -np.inf)
        half = self.cuboids[:, 3:] / 2
        np.minimum.at(lo, self.grain, self.cuboids[:, :3] - half)
        np.maximum.at(hi, self.grain, self.cuboids[:, :3] + half)
        return np.where(np.isfinite(lo), hi - lo, 0.0)

    def magnetization(self, applied_field: np.ndarray) -> np.ndarray:
        """Per-cuboid M (C, 3) in A/m for applied field B (3,) in T; (P, C, 3) for B (P, 3)."""
        b = np.asarray(applied_field, dtype=float)
        induced = self.effective_susceptibility * (b[..., None, :] / MU0)
        return self.remanence[self.grain] + induced

    def bz_true(
        self,
        sensors: np.ndarray,
        sensor_size: tuple[float, float],
        applied_field: np.ndarray,
    ) -> np.ndarray:
        """Noiseless Bz (P,) in T at sensor centres (P, 3) m, averaged over `sensor_size`.

        `applied_field` is one (3,) vector in T for every sensor, or one per sensor (P, 3).
        """
        sensors = np.asarray(sensors, dtype=float).reshape(-1, 3)
        b = np.asarray(applied_field, dtype=float)
        if self.cuboids.shape[0] == 0:
            return np.zeros(sensors.shape[0])
        if b.shape == (3,):
            return cuboid_bz(sensors, self.cuboids, self.magnetization(b), sensor_size=sensor_size)
        if b.shape != sensors.shape:
            raise ValueError(f"applied field of shape {b.shape} for {sensors.shape[0]} sensors")
        r = self.response(sensors, sensor_size)
        return r[:, 0] + np.einsum("pj,pj->p", r[:, 1:], b)

    def response(self, sensors: np.ndarray, sensor_size: tuple[float, float]) -> np.ndarray:
        """Bz as a linear function of the applied field, (P, 4): Bz = r0 + r[1:] · B.

        Column 0 is the remanent Bz (T), columns 1-3 the induced Bz per tesla applied along
        x, y, z. Meant for a few sensors at a time (it holds the (P, C, 3) kernel).
        """
        sensors = np.asarray(sensors, dtype=float).reshape(-1, 3)
        out = np.zeros((sensors.shape[0], 4))
        if self.cuboids.shape[0] == 0:
            return out
        kernel = cuboid_bz_kernel(sensors, self.cuboids, sensor_size=sensor_size)
        out[:, 0] = np.einsum("pcj,cj->p", kernel, self.remanence[self.grain])
        out[:, 1:] = np.einsum("pcj,cj->pj", kernel, self.effective_susceptibility) / MU0
        return out

    @classmethod
    def empty(cls) -> VirtualSample:
        """A sample with no magnetic grains (a blank slide)."""
        return cls(np.zeros((0, 6)), np.zeros(0, int), np.zeros((0, 3)), np.zeros(0))

    @classmethod
    def builtin(cls) -> VirtualSample:
        """The demo sample: magnetite in a thin section, a 2 mm square centred at (12.5, 12.5) mm.

        36 small grains of one or two cuboids, edges 10 to 80 µm, buried 2 to 20 µm below the
        top, intrinsic susceptibilities 1 to 3 SI; and, as in seed 000's Figure 4, three large
        multidomain magnetite crystals (plates 220 to 480 µm across through the section's 30
        µm, just below the polished top, χ = 3 SI, in plane 2.2 to 2.5 SI once demagnetized;
        the last three grains), whose induced magnetization in a 40 µT field gives Bz of 2 to
        3 µT along their edges across the field, far above the sensor's noise. No two grains
        overlap in plan view. Remanence follows seed 001's size law with a log-normal scatter
        and random directions. Always the same sample (a new object each call: its arrays are
        its own).
        """
        return cls(*_builtin_parts())


@cache
def _builtin_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`VirtualSample.builtin`'s cuboids, grain indices, remanences and susceptibilities,
    drawn once a process (placing the large plates took a tenth of a simulated rig's
    open); read-only, as every sample copies them."""
    rng = np.random.default_rng(830)
    centre = np.array([12.5e-3, 12.5e-3])
    half = 1.0e-3
    boxes: list[tuple[float, float, float, float]] = []  # plan-view x0, x1, y0, y1 per grain
    cuboids: list[list[float]] = []
    grain: list[int] = []
    volumes: list[float] = []
    while len(boxes) < 36:
        dx, dy, dz = rng.uniform(10e-6, 80e-6, 3)
        top = -rng.uniform(2e-6, 20e-6)
        x, y = centre + rng.uniform(-half + 100e-6, half - 100e-6, 2)
        parts = [[x, y, top - dz / 2, dx, dy, dz]]
        if rng.random() < 0.3:  # an elongated grain: a second cuboid touching the first
            dx2, dz2 = rng.uniform(10e-6, 40e-6, 2)
            parts.append([x + (dx + dx2) / 2, y, top - dz2 / 2, dx2, 0.6 * dy, dz2])
        p = np.array(parts)
        box = (
            float(np.min(p[:, 0] - p[:, 3] / 2)),
            float(np.max(p[:, 0] + p[:, 3] / 2)),
            float(np.min(p[:, 1] - p[:, 4] / 2)),
            float(np.max(p[:, 1] + p[:, 4] / 2)),
        )
        gap = 20e-6
        if any(
            box[0] < b[1] + gap
            and b[0] < box[1] + gap
            and box[2] < b[3] + gap
            and b[2] < box[3] + gap
            for b in boxes
        ):
            continue
        boxes.append(box)
        cuboids.extend(parts)
        grain.extend([len(boxes) - 1] * len(parts))
        volumes.append(float(np.sum(np.prod(p[:, 3:], axis=1))))
    large: list[tuple[float, float, float, float]] = []
    for size in LARGE_MAGNETITE:
        x0, x1, y0, y1 = _free_place(boxes, size, centre, half, large)
        large.append((x0, x1, y0, y1))
        cuboids.append([(x0 + x1) / 2, (y0 + y1) / 2, LARGE_TOP - SECTION / 2, *size,
                        SECTION])
        grain.append(len(boxes))
        boxes.append((x0, x1, y0, y1))
        volumes.append(size[0] * size[1] * SECTION)
    v = np.array(volumes)
    strength = _M0 * (v / _V0) ** _ALPHA * 10 ** rng.normal(0.0, 0.5, v.size)
    directions = rng.normal(size=(v.size, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    remanence = strength[:, None] * directions
    susceptibility = rng.uniform(1.0, 3.0, v.size)
    susceptibility[-len(LARGE_MAGNETITE):] = LARGE_CHI
    drawn = (np.array(cuboids), np.array(grain), remanence, susceptibility)
    for array in drawn:
        array.setflags(write=False)
    return drawn
