"""The grains an inversion fits, shaped as `smm-daq mmt invert` and the MMT tab both shape
them (one code path): read from the grain file, registered onto the scans
(`registration.register_grains`), and, for point grains, cropped to those whose field could
reach the scans (`dragonfly.scan_crop`, `dragonfly.crop_points`), with the options that shaped
them as the result records them (`result_params`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from smm_daq.analysis.grains import GrainSet
from smm_daq.analysis.mmt.formats.dragonfly import DragonflyOptions, crop_points
from smm_daq.analysis.mmt.formats.grains import CUBOID_FORMATS, read_grain_file
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.analysis.mmt.registration import GrainRegistration, check_turn, register_grains
from smm_daq.analysis.mmt.result_params import (
    crop_parameters,
    dragonfly_parameters,
    registration_parameters,
)


def turned_as_cuboids(fmt: str, model: str | None) -> bool:
    """Whether grains of format `fmt` are registered as cuboids under `model` (None: the
    default, cuboid for cuboid grains): a point model sees a cuboid grain's centroid alone,
    so it takes any angle."""
    return fmt in CUBOID_FORMATS and (model or "cuboid") == "cuboid"


def check_registration(reg: GrainRegistration, fmt: str, model: str | None) -> None:
    """InputError, as the inversion would raise it, for a registration the grains of `fmt`
    cannot take under `model`, known before any file is read."""
    check_turn(reg, turned_as_cuboids(fmt, model))


def shaped_grains(path: str | Path, fmt: str, reg: GrainRegistration, *,
                  model: str | None = None, dragonfly: DragonflyOptions | None = None,
                  crop: Mapping[str, object] | None = None
                  ) -> tuple[GrainSet | PointGrains, dict[str, object]]:
    """The grains of `path` (format `fmt`; a Dragonfly export read with `dragonfly`) in the
    scans' frame, and the parameters that record how. `crop` (`scan_crop`'s crop, crop_height
    and crop_noise, and crop_magnetization where chosen) keeps, of point grains, those whose
    field could reach the scans, once registered."""
    from smm_daq.analysis.mmt.solver.joint import as_points

    check_registration(reg, fmt, model)
    crop = dict(crop or {})
    shaped = registration_parameters(reg)
    if fmt == "dragonfly":
        options = replace(dragonfly or DragonflyOptions(), **crop)  # type: ignore[arg-type]
        if reg.identity:  # the reader crops as it reads
            grains = read_grain_file(path, fmt, options)
            return grains, {**shaped, **dragonfly_parameters(options)}
        grains = register_grains(read_grain_file(path, fmt, replace(options, crop=None)), reg)
        shaped.update(dragonfly_parameters(options))  # as read: a whole number of voxels
    else:
        grains = read_grain_file(path, fmt)
        if isinstance(grains, GrainSet) and (model or "cuboid") != "cuboid" \
                and not reg.keeps_cuboids:  # a point model sees the centroids alone
            grains = as_points(grains)
        grains = register_grains(grains, reg)
        if crop:
            shaped.update({"crop_to_scan": np.uint8(1),
                           **crop_parameters(**crop)})  # type: ignore[arg-type]
    if crop:
        grains = crop_points(grains, **crop)  # type: ignore[arg-type]
    return grains, shaped
