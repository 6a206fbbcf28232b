"""The induced map of two entries of a session file, written as a new entry.

One function for every way a user asks for it (the `subtract` command, the scripting
`Session`, the window), so each writes the same entry: the map, the registration found and
its uncertainty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smm_daq.analysis.subtraction import SubtractionResult, subtract_maps
from smm_daq.storage.nexus import read_map, write_map_entry


def subtract_entries(
    path: str | Path,
    in_field: str,
    remanent: str,
    name: str,
    *,
    register: bool = True,
    rotation: bool = False,
    overwrite: bool = False,
) -> SubtractionResult:
    """Entry `in_field` minus entry `remanent` (registered onto it unless `register` is
    False) into a new entry `name` of kind "induced"; returns the subtraction."""
    res = subtract_maps(read_map(path, in_field), read_map(path, remanent), register=register,
                        name=name, rotation=rotation)
    extra: dict[str, object] = {
        "results/registered": int(res.registered),
        "results/shift_m": np.array(res.shift),
        "results/shift_sd_m": np.array(res.shift_sd),
    }
    if res.registration is not None:
        extra["results/rotation_rad"] = res.rotation
        extra["results/rotation_sd_rad"] = res.rotation_sd
        extra["results/registration_offset_T"] = res.registration.offset
        extra["results/registration_rms_T"] = res.registration.rms_residual
    write_map_entry(path, res.map, kind="induced", extra=extra, overwrite=overwrite)
    return res
