"""The induced map of two entries of a session file, written as a new entry.

One function for every way a user asks for it (the `subtract` command, the scripting
`Session`, the window), so each writes the same entry: the map, and the registration found
with its uncertainty in an NXprocess.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from smm_daq.analysis.subtraction import SubtractionResult, registration_fields, subtract_maps
from smm_daq.errors import InputError
from smm_daq.storage.checks import usable_map
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

# kinds of entry whose data/Bz is a model's field or a fit's residual, not a measured map
MODEL_KINDS = ("susceptibility", "magnetization", "mmt")


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
) -> SubtractionResult:
    """Entry `in_field` minus entry `remanent` (registered onto it unless `register` is
    False) into a new entry `name` of kind "induced"; returns the subtraction. `parameters`
    (e.g. the command line) are recorded with the entry's own."""
    if in_field == remanent:
        raise InputError(f"the in-field and the remanent entries are both '{in_field}'; "
                         "expected two scans of the sample, one in field, one in zero field",
                         source=str(path))
    kinds = {e.name: e.kind for e in list_entries(path)}
    maps = []
    for entry in (in_field, remanent):
        if kinds.get(entry) in MODEL_KINDS:
            raise InputError(f"entry '{entry}' is a {kinds[entry]} result: its Bz is a "
                             "model's, not a measurement; expected a scanned or imported map",
                             source=str(path))
        m = read_map(path, entry)
        usable_map(m, f"{path}, entry '{entry}'")  # a grid and some measured pixels
        maps.append(m)
    _check_order(*maps, str(path))
    res = subtract_maps(*maps, register=register, name=name, rotation=rotation)
    recorded = {"register": np.uint8(register), "fit_rotation": np.uint8(rotation),
                **(parameters or {})}
    write_map_entry(path, res.map, kind="induced", overwrite=overwrite, parameters=recorded,
                    processes={"registration": registration_fields(res)})
    return res


def _check_order(in_field: MapData, remanent: MapData, source: str) -> None:
    """Refuse the two scans given the wrong way round: the "in-field" one scanned in zero
    field and the "remanent" one in a field (the induced map would come out negated). Two
    scans in fields (e.g. +B and −B) are the user's choice."""
    a, b = in_field.applied_field, remanent.applied_field
    if a is None or b is None:
        return
    if not np.any(a) and np.any(b):
        raise InputError(
            f"the in-field entry '{in_field.name}' was scanned in zero field and the remanent "
            f"entry '{remanent.name}' in ({', '.join(f'{v / 1e-6:g}' for v in b)}) µT; "
            "expected them the other way round", source=source)
