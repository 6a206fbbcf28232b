"""Outlines of grains seen from above, drawn as one set of line segments.

A cuboid grain is a union of axis-aligned cuboids, so its footprint is a union of rectangles
and its outline is made of axis-aligned segments: found exactly on the grid of the
rectangles' own edges (no rasterisation error). A point grain (a centroid and a volume, no
shape) is drawn as the circle of the sphere of its volume about its centroid.

Registered onto a scan, cuboid grains turned by other than a quarter turn (which a point
model takes: it inverts their centroids alone) are drawn as their footprints' outlines
turned, where the inversion places their centroids.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.formats.dragonfly import DragonflyOptions
from smm_daq.analysis.mmt.grain_shaping import check_registration, shaped_grains, turned_as_cuboids
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.analysis.mmt.registration import GrainRegistration

EDGE_DECIMALS = 12  # edges closer than 1e-12 m are the same edge
CIRCLE_SIDES = 32  # a point grain's circle as a polygon: within 0.5 % of its radius


def grain_segments(grains: GrainSet | PointGrains, only: int | None = None) -> np.ndarray:
    """Outline segments (M, 2, 2) in m of every grain, or of grain index `only`: a cuboid
    grain's footprint, a point grain's circle of its volume-equivalent sphere's diameter."""
    if isinstance(grains, PointGrains):
        pick = slice(None) if only is None else slice(only, only + 1)
        return circle_segments(grains.positions[pick, :2], sphere_diameters(grains.volume[pick]))
    if only is None:
        return footprint_segments(grains.cuboids, grains.grain)
    own = slice(grains.start[only], grains.start[only + 1])
    return footprint_segments(grains.cuboids[own], grains.grain[own])


def registered_outlines(path: str | Path, fmt: str, reg: GrainRegistration, *,
                        model: str | None = None, dragonfly: DragonflyOptions | None = None,
                        crop: Mapping[str, object] | None = None) -> tuple[int, np.ndarray]:
    """The number of grains of a grain file and their outline segments (M, 2, 2) in m, in
    the scans' frame as `shaped_grains` places them under `model` (None: the default); the
    turns and crops it refuses are refused as it refuses them."""
    if turned_as_cuboids(fmt, None) and not reg.keeps_cuboids:
        check_registration(reg, fmt, model)  # the cuboid model keeps them axis-aligned
        grains, _ = shaped_grains(path, fmt, GrainRegistration())
        return grains.n_grains, turned_segments(grain_segments(grains), reg)
    grains, _ = shaped_grains(path, fmt, reg, model=model, dragonfly=dragonfly, crop=crop)
    return grains.n_grains, grain_segments(grains)


def turned_segments(segments: np.ndarray, reg: GrainRegistration) -> np.ndarray:
    """Segments (M, 2, 2) in m, each end turned about the registration's origin and shifted
    in x and y."""
    x, y = reg.apply_xy(segments[..., 0], segments[..., 1])
    return np.stack([x, y], axis=-1)


def sphere_diameters(volumes: np.ndarray) -> np.ndarray:
    """Diameters (m) of the spheres of `volumes` (m³)."""
    return np.cbrt(6 * np.asarray(volumes, dtype=float) / np.pi)


def circle_segments(centres: np.ndarray, diameters: np.ndarray) -> np.ndarray:
    """The sides (G · CIRCLE_SIDES, 2, 2) of a polygon inscribed in each circle (m)."""
    angles = np.linspace(0, 2 * np.pi, CIRCLE_SIDES, endpoint=False)
    ring = np.column_stack([np.cos(angles), np.sin(angles)])  # (S, 2)
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    radii = np.asarray(diameters, dtype=float).reshape(-1) / 2
    vertices = centres[:, None, :] + radii[:, None, None] * ring[None, :, :]  # (G, S, 2)
    return np.stack([vertices, np.roll(vertices, -1, axis=1)], axis=2).reshape(-1, 2, 2)


def footprint_segments(cuboids: np.ndarray, grain: np.ndarray) -> np.ndarray:
    """Outline segments (M, 2, 2) in m, [[x_a, y_a], [x_b, y_b]], of every grain's footprint.

    cuboids (C, 6): centre x, y, z and FULL edge lengths dx, dy, dz (m); grain (C,) labels.
    Edges shared by two cuboids of one grain are inside it and not drawn.
    """
    cuboids = np.asarray(cuboids, dtype=float)
    grain = np.asarray(grain)
    segments: list[np.ndarray] = []
    for label in np.unique(grain):
        rects = cuboids[grain == label]
        x_lo = np.round(rects[:, 0] - rects[:, 3] / 2, EDGE_DECIMALS)
        x_hi = np.round(rects[:, 0] + rects[:, 3] / 2, EDGE_DECIMALS)
        y_lo = np.round(rects[:, 1] - rects[:, 4] / 2, EDGE_DECIMALS)
        y_hi = np.round(rects[:, 1] + rects[:, 4] / 2, EDGE_DECIMALS)
        xe = np.unique(np.concatenate([x_lo, x_hi]))
        ye = np.unique(np.concatenate([y_lo, y_hi]))
        covered = np.zeros((ye.size + 1, xe.size + 1), dtype=bool)  # one cell of padding
        for a, b, c, d in zip(
            np.searchsorted(xe, x_lo), np.searchsorted(xe, x_hi),
            np.searchsorted(ye, y_lo), np.searchsorted(ye, y_hi), strict=True,
        ):
            covered[c + 1 : d + 1, a + 1 : b + 1] = True
        # cell (i, j) of `covered` spans xe[j-1]..xe[j], ye[i-1]..ye[i]
        rows, cols = np.nonzero(covered[1:-1, 1:] != covered[1:-1, :-1])
        segments.append(
            np.stack(
                [np.column_stack([xe[cols], ye[rows]]), np.column_stack([xe[cols], ye[rows + 1]])],
                axis=1,
            )
        )
        rows, cols = np.nonzero(covered[1:, 1:-1] != covered[:-1, 1:-1])
        segments.append(
            np.stack(
                [np.column_stack([xe[cols], ye[rows]]), np.column_stack([xe[cols + 1], ye[rows]])],
                axis=1,
            )
        )
    return np.concatenate(segments) if segments else np.zeros((0, 2, 2))


def polygon_segments(polygon: np.ndarray) -> np.ndarray:
    """The sides (N, 2, 2) of a closed polygon given by its vertices (N, 2)."""
    polygon = np.asarray(polygon, dtype=float)
    return np.stack([polygon, np.roll(polygon, -1, axis=0)], axis=1)
