"""The induced map of two entries of a session file, written as a new entry.

One function for every way a user asks for it (the `subtract` command, the scripting
`Session`, the window), so each writes the same entry: the map, and the registration found
with its uncertainty in an NXprocess.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from smm_daq.analysis.subtract_inputs import (
    field_tolerance,
    is_induced,
    read_source,
    require_alike,
    require_fields_differ,
    require_two_scans,
)
from smm_daq.analysis.subtraction import SubtractionResult, registration_fields, subtract_maps
from smm_daq.storage.induced_field import FIELD_FROM, field_rule
from smm_daq.storage.nexus import write_map_entry
from smm_daq.storage.products import Quantity


def subtract_entries(
    path: str | Path,
    in_field: str,
    remanent: str,
    name: str,
    *,
    register: bool = True,
    rotation: bool = False,
    overwrite: bool = False,
    parameters: Mapping[str, object] | None = None,
    apply_insignificant: bool = False,
) -> SubtractionResult:
    """Entry `in_field` minus entry `remanent` (registered onto it unless `register` is
    False; a shift not significantly different from zero applied only with
    `apply_insignificant`) into a new entry `name` of kind "induced"; returns the subtraction.
    `parameters` (e.g. the command line) are recorded with the entry's own."""
    res = subtraction_of_entries(path, in_field, remanent, name, register=register,
                                 rotation=rotation, apply_insignificant=apply_insignificant)
    write_subtraction(path, res, register=register, rotation=rotation, overwrite=overwrite,
                      parameters={"apply_insignificant_shift": np.uint8(apply_insignificant),
                                  **(parameters or {})})
    return res


def subtraction_of_entries(path: str | Path, in_field: str, remanent: str, name: str, *,
                           register: bool = True, rotation: bool = False,
                           apply_insignificant: bool = False,
                           shift_as_begun: tuple[str, ...] = (),
                           by_sds_alone: bool = False) -> SubtractionResult:
    """The subtraction `subtract_entries` writes, checked and made but not written (its
    warnings warned), for a caller that decides on them before anything is written;
    `shift_as_begun` as `subtract_maps` takes it (a continued recipe's)."""
    maps = [read_source(path, entry) for entry in (in_field, remanent)]
    tolerances = field_tolerance(path, in_field), field_tolerance(path, remanent)
    require_two_scans(*maps, source=str(path), tolerances=tolerances)
    induced = is_induced(path, in_field), is_induced(path, remanent)
    require_alike(in_field, induced[0], remanent, induced[1], source=str(path))
    require_fields_differ(*maps, induced=any(induced), source=str(path), tolerances=tolerances)
    return subtract_maps(*maps, register=register, name=name, rotation=rotation,
                         apply_insignificant=apply_insignificant, shift_as_begun=shift_as_begun,
                         by_sds_alone=by_sds_alone, induced=any(induced))


def write_subtraction(path: str | Path, res: SubtractionResult, *, register: bool = True,
                      rotation: bool = False, overwrite: bool = False,
                      parameters: Mapping[str, object] | None = None) -> None:
    """Write subtraction `res` (`subtraction_of_entries`) as its entry of kind "induced",
    with both maps' fields and how its own was made from them (`field_parameters`)."""
    recorded = {"register": np.uint8(register), "fit_rotation": np.uint8(rotation),
                **field_parameters(res), **(parameters or {})}
    write_map_entry(path, res.map, kind="induced", overwrite=overwrite, parameters=recorded,
                    processes={"registration": registration_fields(res)})


def field_parameters(res: SubtractionResult) -> dict[str, object]:
    """The fields an induced entry records of its two maps (T, where each records one) and
    how its own was made from them (`FIELD_FROM`)."""
    recorded: dict[str, object] = {
        FIELD_FROM: field_rule(res.remanent_field, induced=res.of_induced)}
    for key, field, what in (("in_field_applied_field", res.in_field_field, "in-field"),
                             ("remanent_applied_field", res.remanent_field, "remanent")):
        if field is not None:
            recorded[key] = Quantity(np.asarray(field, dtype=float), "T",
                                     f"applied field (x, y, z) of the {what} map")
    return recorded
