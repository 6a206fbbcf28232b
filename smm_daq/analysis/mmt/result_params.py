"""The options that shaped an MMT result, each a parameter of its own in the result entry's
`process/parameters`, so that the result can be made again without the command line it was
made by (the command line and the MMT tab record them alike; `result_read` reads them back):

* Dragonfly grains (`grain_format` dragonfly): `min_voxels` (components of fewer voxels were
  dropped; 1: none), `z_top` (m, the CT z of the sample top; absent: the top of the highest
  grain was taken), `z_down` (1: the CT z axis points down into the sample), `crop_to_scan`
  (1: only grains that could put a field on the scans were kept, `dragonfly.DragonflyOptions`)
  and, with it, `crop` (x0, x1, y0, y1 in m: the rectangle spanning every scan's sensors
  whole, their centres where `crop_noise` is 0), `crop_height` (m: the lowest sensor's height
  above the sample top; absent: 0, as results made before), `crop_noise` (T: the noise
  SD the grains' largest fields were compared with; absent: 0, the reach of results made
  before it, a grain's depth plus `crop_height`) and, with a noise, `crop_magnetization`
  (A/m: the saturation magnetization the grains' largest fields were reckoned at; absent:
  magnetite's, 480 kA/m, as results made before it);
* point lists and NPZ particles (`grain_format` points or mpe) cropped the same way
  (--crop-to-scan): `crop_to_scan` 1, and `crop`, `crop_height`, `crop_noise` and
  `crop_magnetization` as above;
* masks: `mask`, one per scan in the order of `results/scans` (a result of one scan: its
  entry), the mask file as typed ("" where the scan had none), `mask_absolute` its absolute
  path, and `mask_shapes` the text of a .json mask (its rectangles and polygons in µm; ""
  for another kind of file), so that even a lost shapes file is known;
* grains registered onto the scan (--grains-shift-um, --grains-rotation-deg,
  --grains-rotation-origin-um; `registration`): `grains_shift` (x, y, z in m),
  `grains_rotation` (degrees, counter-clockwise from above, turned before the shift) and
  `grains_rotation_origin` (x, y in m), all three where either option was given
  (`ResultOptions.registration` reads them back);
* `tile` (m): the tile size of an inversion in tiles (`--tile-um`).

All are optional additions to layout version 3: an entry without them was made without
those options or before they were recorded (its `command` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from smm_daq.analysis.mmt.formats.dragonfly import (
    CROP_MAGNETIZATION,
    MAX_CROP_MAGNETIZATION,
    MAX_FIELD_T,
    DragonflyOptions,
)
from smm_daq.analysis.mmt.masks import NO_MASK
from smm_daq.analysis.mmt.registration import GrainRegistration
from smm_daq.errors import InputError
from smm_daq.storage.checks import numeric, strings
from smm_daq.storage.h5file import TEXT
from smm_daq.storage.products import Quantity
from smm_daq.storage.strings import storable

MM = 1e-3


@dataclass(frozen=True)
class MaskSource:
    """Where a scan's mask came from: the file as typed, its absolute path, and the shapes of
    a .json mask (its text; "" for an array or image file)."""

    typed: str
    absolute: str
    shapes: str = ""


@dataclass(frozen=True)
class ResultOptions:
    """The recorded options of a result (`dragonfly` None: not Dragonfly grains, or not
    recorded; `masks` one per scan, None where that scan had none; empty: no mask recorded;
    `tile` None: not inverted in tiles; `registration` None: the grains taken as read;
    `crop` None: point lists or NPZ particles not cropped to the scans, or not such grains)."""

    dragonfly: DragonflyOptions | None = None
    masks: tuple[MaskSource | None, ...] = ()
    tile: float | None = None  # m
    registration: GrainRegistration | None = None
    crop: DragonflyOptions | None = None  # points' or mpe grains' crop; its crop fields alone


def dragonfly_parameters(options: DragonflyOptions | None) -> dict[str, object]:
    """The Dragonfly options a grain file was read with, its crop window resolved (m)."""
    if options is None:
        return {}
    out: dict[str, object] = {
        "min_voxels": Quantity(np.int64(options.min_voxels), "1",
                               "components of fewer voxels dropped"),
        "z_down": np.uint8(options.z_down),
        "crop_to_scan": np.uint8(options.crop is not None),
    }
    if options.z_top_mm is not None:
        out["z_top"] = Quantity(options.z_top_mm * MM, "m", "CT z of the sample top")
    if options.crop is not None:
        out.update(crop_parameters(options.crop, options.crop_height, options.crop_noise,
                                   options.crop_magnetization))
    return out


def crop_parameters(crop: tuple[float, float, float, float], crop_height: float,
                    crop_noise: float,
                    crop_magnetization: float = CROP_MAGNETIZATION) -> dict[str, object]:
    """A crop to the scans (`crop`, `crop_height`, `crop_noise` as `dragonfly.scan_crop` gives
    them, and the `crop_magnetization` the grains' fields were reckoned at) as recorded, for
    Dragonfly's grains and for point lists and NPZ particles alike."""
    out: dict[str, object] = {
        "crop": Quantity(np.array(crop, dtype=float), "m",
                         "window (x0, x1, y0, y1) of the grain centroids kept"),
        "crop_height": Quantity(crop_height, "m",
                                "sensor height above the sample top the crop reckoned with")}
    if crop_noise > 0:
        out["crop_noise"] = Quantity(crop_noise, "T", "noise SD the grains' largest fields on the "
                                                 "window were compared with")
        out["crop_magnetization"] = Quantity(crop_magnetization, "A/m",
                                             "saturation magnetization the grains' largest "
                                             "fields on the window were reckoned at")
    return out


def registration_parameters(reg: GrainRegistration) -> dict[str, object]:
    """How the grains were brought into the scan's frame; {} where they were taken as read."""
    if reg.identity:
        return {}
    return {"grains_shift": Quantity(np.array(reg.shift, dtype=float), "m",
                                     "shift (x, y, z) added to the grains' positions"),
            "grains_rotation": Quantity(reg.rotation_deg, "degree",
                                        "turn of the grains about the vertical, "
                                        "counter-clockwise from above, before the shift"),
            "grains_rotation_origin": Quantity(np.array(reg.origin, dtype=float), "m",
                                               "(x, y) the grains were turned about")}


def mask_parameters(files: Sequence[str], n_scans: int) -> dict[str, object]:
    """Each of `n_scans` scans' mask source from the masks given for all (none, one for all,
    or one per scan, `NO_MASK` for none), as `masks.mask_for` takes them; {} with none.
    A .json mask's shapes are read from it here: it has just been read as the mask. A byte
    that is not UTF-8 in a file's name is stored escaped (`storable`)."""
    chosen = [files[min(i, len(files) - 1)] if files else NO_MASK for i in range(n_scans)]
    typed = ["" if f == NO_MASK else f for f in chosen]
    if not any(typed):
        return {}
    shapes = [Path(f).read_text(encoding="utf-8-sig") if f.lower().endswith(".json") else ""
              for f in typed]
    out: dict[str, object] = {
        "mask": np.array([storable(f) for f in typed], dtype=TEXT),
        "mask_absolute": np.array([storable(str(Path(f).resolve())) if f else "" for f in typed],
                                  dtype=TEXT),
    }
    if any(shapes):
        out["mask_shapes"] = np.array(shapes, dtype=TEXT)
    return out


def tile_parameters(tile: float | None) -> dict[str, object]:
    """The tile size (m) of an inversion in tiles; {} for one solved whole."""
    return {} if tile is None else {"tile": Quantity(tile, "m", "tile size of the inversion")}


def read_options(params: h5py.Group | None, scans: Sequence[str], where: str
                 ) -> ResultOptions:
    """The options `params` (an entry's `process/parameters`) records; InputError naming the
    parameter when one is not what the writer stores."""
    if params is None:
        return ResultOptions()
    inside = f"{where}, process/parameters"
    return ResultOptions(dragonfly=_dragonfly(params, inside),
                         masks=_masks(params, tuple(scans), inside),
                         tile=_length(params, "tile", inside, positive=True),
                         registration=_registration(params, inside),
                         crop=_point_crop(params, inside))


def _lengths(params: h5py.Group, name: str, where: str, count: int, *,
             positive: bool = False) -> np.ndarray | None:
    """Parameter `name`: `count` finite lengths in m (None when not recorded)."""
    if name not in params:
        return None
    values = numeric(params, name, where, si="m").ravel()
    if values.size != count or not np.all(np.isfinite(values)) or (
            positive and not np.all(values > 0)):
        raise InputError(f"'{name}' holds {values.tolist()}; expected {count} finite "
                         f"{'positive ' if positive else ''}length(s) in m", source=where)
    return values


def _length(params: h5py.Group, name: str, where: str, *, positive: bool = False
            ) -> float | None:
    values = _lengths(params, name, where, 1, positive=positive)
    return None if values is None else float(values[0])


def _registration(params: h5py.Group, where: str) -> GrainRegistration | None:
    """Parameters `grains_shift`, `grains_rotation` and `grains_rotation_origin` (all three,
    or none: the grains taken as read)."""
    names = ("grains_shift", "grains_rotation", "grains_rotation_origin")
    if not any(name in params for name in names):
        return None
    missing = [name for name in names if name not in params]
    if missing:
        raise InputError(f"'{missing[0]}' is missing beside the other registration parameters; "
                         f"expected all of {', '.join(names)}", source=where)
    shift = _lengths(params, "grains_shift", where, 3)
    origin = _lengths(params, "grains_rotation_origin", where, 2)
    turn = numeric(params, "grains_rotation", where).ravel()  # written in degrees
    if turn.size != 1 or not -360.0 <= turn[0] <= 360.0:
        raise InputError(f"'grains_rotation' holds {turn.tolist()}; expected one angle in "
                         "degrees, -360 to 360", source=where)
    assert shift is not None and origin is not None
    return GrainRegistration((float(shift[0]), float(shift[1]), float(shift[2])),
                             float(turn[0]), (float(origin[0]), float(origin[1])))


def _noise(params: h5py.Group, where: str) -> float | None:
    """Parameter `crop_noise`: one noise SD in T, > 0 (None when not recorded)."""
    if "crop_noise" not in params:
        return None
    values = numeric(params, "crop_noise", where, si="T").ravel()
    if values.size != 1 or not 0 < values[0] <= MAX_FIELD_T:
        raise InputError(f"'crop_noise' holds {values.tolist()}; expected one noise SD in T, "
                         f"above 0 and at most {MAX_FIELD_T:g}", source=where)
    return float(values[0])


def _magnetization(params: h5py.Group, where: str) -> float:
    """Parameter `crop_magnetization`: one magnetization in A/m, > 0; magnetite's saturation
    (CROP_MAGNETIZATION) when not recorded, as results made before it were cropped."""
    if "crop_magnetization" not in params:
        return CROP_MAGNETIZATION
    values = numeric(params, "crop_magnetization", where).ravel()  # written in A/m
    if values.size != 1 or not 0 < values[0] <= MAX_CROP_MAGNETIZATION:
        raise InputError(f"'crop_magnetization' holds {values.tolist()}; expected one "
                         f"saturation magnetization in A/m, above 0 and at most "
                         f"{MAX_CROP_MAGNETIZATION:g}", source=where)
    return float(values[0])


def _flag(params: h5py.Group, name: str, where: str) -> bool:
    value = numeric(params, name, where, kinds="biu").ravel()
    if value.size != 1 or value[0] not in (0, 1):
        raise InputError(f"'{name}' holds {value.tolist()}; expected 0 or 1", source=where)
    return bool(value[0])


def _dragonfly(params: h5py.Group, where: str) -> DragonflyOptions | None:
    if "min_voxels" not in params:
        return None
    voxels = numeric(params, "min_voxels", where, kinds="iu").ravel()
    if voxels.size != 1 or voxels[0] < 1:
        raise InputError(f"'min_voxels' holds {voxels.tolist()}; expected one whole number "
                         ">= 1", source=where)
    z_top = _length(params, "z_top", where)
    return DragonflyOptions(min_voxels=int(voxels[0]),
                            z_top_mm=None if z_top is None else z_top / MM,
                            z_down=_flag(params, "z_down", where),
                            **_crop(params, where))


def _crop(params: h5py.Group, where: str) -> dict[str, object]:
    """The crop to the scans as `DragonflyOptions` fields (crop None: not cropped)."""
    crop = None
    if _flag(params, "crop_to_scan", where):
        window = _lengths(params, "crop", where, 4)
        if window is None:
            raise InputError("'crop_to_scan' is 1 and 'crop' is missing; expected the window "
                             "(x0, x1, y0, y1 in m) of the grains kept", source=where)
        crop = tuple(float(v) for v in window)
    height = _length(params, "crop_height", where) if crop is not None else None
    noise = _noise(params, where) if crop is not None else None
    saturation = _magnetization(params, where) if noise is not None else CROP_MAGNETIZATION
    return {"crop": crop, "crop_height": 0.0 if height is None else height,
            "crop_noise": 0.0 if noise is None else noise, "crop_magnetization": saturation}


def _point_crop(params: h5py.Group, where: str) -> DragonflyOptions | None:
    """The crop of point lists' or NPZ particles' grains (a Dragonfly export's is part of
    its options, `_dragonfly`); None: not cropped."""
    if "min_voxels" in params or "crop_to_scan" not in params:
        return None
    options = DragonflyOptions(**_crop(params, where))  # type: ignore[arg-type]
    return None if options.crop is None else options


def _texts(params: h5py.Group, name: str, where: str, n: int) -> tuple[str, ...]:
    node = params[name]
    values = strings(node[()] if isinstance(node, h5py.Dataset) else node, name, where)
    if len(values) != n:
        raise InputError(f"'{name}' holds {len(values)} value(s); expected one per scan "
                         f"({n})", source=where)
    return values


def _masks(params: h5py.Group, scans: tuple[str, ...], where: str
           ) -> tuple[MaskSource | None, ...]:
    if "mask" not in params:
        return ()
    n = len(scans)
    typed = _texts(params, "mask", where, n)
    absolute = _texts(params, "mask_absolute", where, n) if "mask_absolute" in params \
        else ("",) * n
    shapes = _texts(params, "mask_shapes", where, n) if "mask_shapes" in params \
        else ("",) * n
    return tuple(MaskSource(t, a, s) if t else None
                 for t, a, s in zip(typed, absolute, shapes, strict=True))
