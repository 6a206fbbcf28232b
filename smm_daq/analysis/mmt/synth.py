"""Synthetic MMT samples after seed 001 §2.1.

Grains of irregular shape are built from 0.75 µm voxels (a randomly stretched ellipsoid with
smooth random bumps) and merged into as few cuboids as a greedy x-run / y-slab / z-stack
merge gives.
Diameters (of the sphere of equal volume) follow p(d) ∝ d⁻² on [1, 20] µm (most grains small,
as in the micro-CT data the seed drew from). Grains are placed at random, their top between
the sample surface and 10 µm above the bottom (in a sample no thicker than those 10 µm,
anywhere the grain fits), without touching another grain's bounding box or leaving the
sample; a placement is retried up to 100 times, then another shape is drawn.
|M| = M0 (V/V0)^α × 10^N(0, 0.5²) with M0 = 46.5 kA/m, V0 the volume of a sphere of 1 µm
diameter, α = −0.355, in a uniformly random direction (`draw_directions`: uniform on the
sphere by default; the seed's own draw, θ uniform in (0, π), on request).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.grains import GrainSet, from_arrays
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.analysis.mmt.study.grid import DIRECTION_DRAWS
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.whole_files import written_whole

UM = 1e-6
VOXEL = 0.75 * UM
M0 = 46.5e3  # A/m
V0 = math.pi / 6 * UM**3  # sphere of 1 µm diameter
ALPHA = -0.355
LOG_SPREAD = 0.5  # SD of the decimal log-normal factor
D_MIN, D_MAX = 1.0 * UM, 20.0 * UM
BOTTOM_MARGIN = 10 * UM


def draw_directions(rng: np.random.Generator, n: int,
                    draw: str = DIRECTION_DRAWS[0]) -> np.ndarray:
    """`n` unit vectors (n, 3). "uniform-sphere": uniform on the sphere (normalised Gaussian
    triples), no direction favoured, the prior for grains magnetized at random. "uniform-theta":
    seed 001 §2.1.2's draw, φ ~ U(0, 2π) in the x-y plane, then θ ~ U(0, π) from +z, which
    crowds directions towards ±z (per solid angle ∝ 1/sin θ), offered to reproduce its
    parameter study."""
    if draw == "uniform-sphere":
        direction = rng.normal(size=(n, 3))
        return direction / np.linalg.norm(direction, axis=1, keepdims=True)
    if draw != "uniform-theta":
        raise InputError(f"the direction draw is {draw!r}; expected one of "
                         f"{', '.join(DIRECTION_DRAWS)}")
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    theta = rng.uniform(0.0, math.pi, n)
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                     np.cos(theta)], axis=1)


@dataclass(frozen=True)
class SyntheticSample:
    grains: GrainSet
    magnetization: np.ndarray  # (G, 3) A/m, the truth
    size: tuple[float, float]  # (x, y) m, the sample spans [0, x] × [0, y]
    thickness: float


def merge_voxels(mask: np.ndarray) -> np.ndarray:
    """Cuboids (K, 6) in voxel units (lower corner i, j, k and extents) covering a boolean
    (nx, ny, nz) mask exactly, without overlap: runs along x, merged across y, then z."""
    nx, ny, nz = mask.shape
    slabs: list[tuple[int, int, int, int, int]] = []  # x0, x1, y0, y1, z
    for k in range(nz):
        open_runs: dict[tuple[int, int], int] = {}  # (x0, x1) -> y0 of a growing slab
        for j in range(ny + 1):
            runs = set()
            if j < ny:
                row = mask[:, j, k]
                i = 0
                while i < nx:
                    if row[i]:
                        s = i
                        while i < nx and row[i]:
                            i += 1
                        runs.add((s, i))
                    else:
                        i += 1
            for run in list(open_runs):
                if run not in runs:
                    slabs.append((run[0], run[1], open_runs.pop(run), j, k))
            for run in runs:
                open_runs.setdefault(run, j)
    # stack identical slabs along z
    by_footprint: dict[tuple[int, int, int, int], list[int]] = {}
    for x0, x1, y0, y1, z in slabs:
        by_footprint.setdefault((x0, x1, y0, y1), []).append(z)
    out = []
    for (x0, x1, y0, y1), zs in by_footprint.items():
        zs.sort()
        start = prev = zs[0]
        for z in [*zs[1:], None]:
            if z is not None and z == prev + 1:
                prev = z
                continue
            out.append((x0, y0, start, x1 - x0, y1 - y0, prev + 1 - start))
            if z is not None:
                start = prev = z
    return np.array(out, dtype=float).reshape(-1, 6)


def random_grain(rng: np.random.Generator, diameter: float) -> np.ndarray:
    """Cuboids (K, 6) in m (centre, full edges) of one grain, centred on its bounding box."""
    n = max(1, math.ceil(1.6 * diameter / VOXEL))
    axes = rng.uniform(0.6, 1.0, 3)
    g = (np.arange(n) + 0.5 - n / 2) / (n / 2)
    X, Y, Z = np.meshgrid(g, g, g, indexing="ij")
    r = np.sqrt((X / axes[0]) ** 2 + (Y / axes[1]) ** 2 + (Z / axes[2]) ** 2)
    # a smooth random bumpiness: low-order angular terms (dipole- and quadrupole-like)
    u = np.stack([X, Y, Z]) / np.maximum(np.sqrt(X**2 + Y**2 + Z**2), 1e-9)
    a = rng.normal(0.0, 0.12, 3)
    b = rng.normal(0.0, 0.12, (3, 3))
    rough = 1.0 + np.einsum("i,i...->...", a, u) + np.einsum("ij,i...,j...->...", b, u, u)
    rough = np.maximum(rough, 0.3)
    # scale to the drawn volume: choose the voxel count closest to it by thresholding r/rough
    target = max(1, round(math.pi / 6 * diameter**3 / VOXEL**3))
    score = (r / rough).ravel()
    keep = np.argsort(score)[: min(target, score.size)]
    mask = np.zeros(score.size, dtype=bool)
    mask[keep] = True
    mask = mask.reshape(n, n, n)
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    vox = merge_voxels(mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    ext = (hi - lo).astype(float)
    centre = (vox[:, :3] + vox[:, 3:] / 2 - ext / 2) * VOXEL
    return np.c_[centre, vox[:, 3:] * VOXEL]


def _diameter(rng: np.random.Generator) -> float:
    """p(d) ∝ d⁻² on [D_MIN, D_MAX] by inversion."""
    u = rng.uniform()
    return 1.0 / (1.0 / D_MIN - u * (1.0 / D_MIN - 1.0 / D_MAX))


def make_sample(size: tuple[float, float], thickness: float, density_per_mm3: float,
                rng: np.random.Generator,
                directions: str = DIRECTION_DRAWS[0]) -> SyntheticSample:
    """Grains at `density_per_mm3` in a sample [0, size_x] × [0, size_y] × [−thickness, 0]."""
    n_grains = round(density_per_mm3 * size[0] * size[1] * thickness / 1e-9)
    boxes: list[np.ndarray] = []  # (lo, hi) of placed grains
    cell = 25 * UM
    grid: dict[tuple[int, int, int], list[int]] = {}
    cuboids: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    volumes: list[float] = []
    attempts = 0
    while len(boxes) < n_grains and attempts < 50 * n_grains + 100:
        attempts += 1
        shape = random_grain(rng, _diameter(rng))
        lo_s = (shape[:, :3] - shape[:, 3:] / 2).min(axis=0)
        hi_s = (shape[:, :3] + shape[:, 3:] / 2).max(axis=0)
        ext = hi_s - lo_s
        top_max, top_min = 0.0, -thickness + (BOTTOM_MARGIN if thickness > BOTTOM_MARGIN else 0)
        if ext[0] >= size[0] or ext[1] >= size[1] or ext[2] >= thickness:
            continue
        for _ in range(100):
            top = rng.uniform(max(top_min, -thickness + ext[2]), top_max)
            corner = np.array([rng.uniform(0, size[0] - ext[0]),
                               rng.uniform(0, size[1] - ext[1]), top - ext[2]])
            lo, hi = corner, corner + ext
            cells = [(a, b, c)
                     for a in range(int(lo[0] // cell), int(hi[0] // cell) + 1)
                     for b in range(int(lo[1] // cell), int(hi[1] // cell) + 1)
                     for c in range(int(-hi[2] // cell), int(-lo[2] // cell) + 1)]
            near = {i for c in cells for i in grid.get(c, ())}
            if any(np.all(lo < boxes[i][1]) and np.all(boxes[i][0] < hi) for i in near):
                continue
            g = len(boxes)
            boxes.append((lo, hi))
            for c in cells:
                grid.setdefault(c, []).append(g)
            placed = shape.copy()
            placed[:, :3] += lo - lo_s
            cuboids.append(placed)
            labels.append(np.full(placed.shape[0], g + 1))
            volumes.append(float(np.prod(placed[:, 3:], axis=1).sum()))
            break
    if not cuboids:
        raise InputError(
            f"a sample of {size[0] / UM:g} × {size[1] / UM:g} µm, {thickness / UM:g} µm thick, "
            f"at {density_per_mm3:g} grains/mm³ holds no grain that fits; expected a larger "
            "sample or density (--size-um, --thickness-um, --density-per-mm3)")
    grains = from_arrays(np.concatenate(cuboids), np.concatenate(labels), source="synthetic")
    vol = np.array(volumes)
    strength = M0 * (vol / V0) ** ALPHA * 10 ** rng.normal(0.0, LOG_SPREAD, vol.size)
    direction = draw_directions(rng, vol.size, directions)
    return SyntheticSample(grains, strength[:, None] * direction, size, thickness)


def scan(sample: SyntheticSample, *, height: float, step: float,
         sensor_size: tuple[float, float], noise: float, rng: np.random.Generator,
         name: str = "synthetic", exact: bool = False, device: str = "cpu") -> MapData:
    """Bz over the sample's surface on a grid of `step` at `height`, with Gaussian noise
    (SD `noise`, T); the field computed on `device` (`solver.device`)."""
    x = np.arange(0.0, sample.size[0] + 0.5 * step, step)
    y = np.arange(0.0, sample.size[1] + 0.5 * step, step)
    X, Y = np.meshgrid(x, y)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, height)]
    model = GreenModel.build(sample.grains, sensor_size, np.array([x[0], y[0]]),
                             np.array([x[-1], y[-1]]), height, exact=exact)
    if devices.resolve(device) == "gpu":
        bz = devices.gpu_solver().forward(model, sensors, sample.magnetization)
    else:
        bz = forward(model, sensors, sample.magnetization)
    bz = bz + noise * rng.standard_normal(bz.size)
    return MapData(bz=bz.reshape(y.size, x.size), x=x, y=y, height=height,
                   sensor_size=tuple(sensor_size), name=name,
                   title=f"synthetic MMT scan, noise {noise / 1e-9:g} nT")


def write_truth_csv(path: str, sample: SyntheticSample) -> None:
    g = sample.grains
    vol = g.volumes()
    c = g.centroids()
    with written_whole(path) as part, part.open("w", encoding="utf-8") as f:
        f.write("grain,mx_A_per_m,my_A_per_m,mz_A_per_m,volume_um3,x_um,y_um,z_um\n")
        for i in range(g.n_grains):
            m = sample.magnetization[i]
            f.write(f"{int(g.labels[i])},{m[0]:.9g},{m[1]:.9g},{m[2]:.9g},{vol[i] / UM**3:.9g},"
                    f"{c[i, 0] / UM:.9g},{c[i, 1] / UM:.9g},{c[i, 2] / UM:.9g}\n")


def study_sample(spec: object, rng: np.random.Generator) -> tuple[GrainSet, np.ndarray]:
    """The parameter study's sample maker: (grains, magnetizations (G, 3) A/m) for a spec with
    surface_um, thickness_um, density_per_mm3 (a square sample) and directions (the draw)."""
    side = float(spec.surface_um) * UM  # type: ignore[attr-defined]
    sample = make_sample((side, side), float(spec.thickness_um) * UM,  # type: ignore[attr-defined]
                         float(spec.density_per_mm3), rng,  # type: ignore[attr-defined]
                         str(spec.directions))  # type: ignore[attr-defined]
    return sample.grains, sample.magnetization
