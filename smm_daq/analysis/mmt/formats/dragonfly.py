"""Grains from a Dragonfly "connected components" export: ``;``-separated CSV in latin-1
(Windows) with a header line naming the columns, lengths in mm. The columns used are
``Label Index``, ``Voxel count``, ``Volume (mm³)`` and ``Center Of Mass X/Y/Z (mm)``; others
(surface area, aspect ratios, ...) are ignored, in any order, and a trailing ``;`` is allowed.

The conventions of the micro-CT workflow, each an option:

* ``min_voxels`` (default 1: every component): components with fewer voxels are dropped as
  segmentation noise;
* ``z_top_mm`` (default: the top of the highest grain, taken as its centroid z plus the
  radius of the sphere of its volume): the CT z of the sample's top surface; z is shifted so
  that it is 0 there and negative (depth) below;
* ``z_down`` (default False): the CT z axis points down into the sample (slice index order),
  so depth is z − z_top rather than z_top − z;
* ``crop`` (default None: keep all): an (x0, x1, y0, y1) window in m, usually the scan's
  sensor-centre rectangle; only grains whose centroid lies in it are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.models.multipole import PointGrains, point_grains
from smm_daq.errors import InputError

MM = 1e-3
COLUMNS = ("Label Index", "Voxel count", "Volume (mm³)", "Center Of Mass X (mm)",
           "Center Of Mass Y (mm)", "Center Of Mass Z (mm)")


@dataclass(frozen=True)
class DragonflyOptions:
    min_voxels: int = 1
    z_top_mm: float | None = None
    z_down: bool = False
    crop: tuple[float, float, float, float] | None = None


def read_dragonfly(path: str | Path, options: DragonflyOptions | None = None) -> PointGrains:
    """The grains of an export, shifted and filtered by `options`; InputError naming the file,
    line and column on bad input."""
    opt = options or DragonflyOptions()
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError("no such grain file", source=source)
    text = path.read_bytes().decode("latin-1")  # every byte is a latin-1 character
    lines = text.splitlines()
    header_no = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if header_no is None:
        raise InputError("is empty; expected a Dragonfly connected-components CSV", source=source)
    header = [h.strip().strip('"') for h in lines[header_no].split(";")]
    where: dict[str, int] = {}
    for name in COLUMNS:
        if name not in header:
            raise InputError(f"lacks column '{name}'; expected a ';'-separated header with "
                             f"{', '.join(repr(c) for c in COLUMNS)}",
                             source=f"{source}, line {header_no + 1}")
        where[name] = header.index(name)
    rows, line_numbers = [], []
    for i in range(header_no + 1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        cells = line.split(";")
        starts = np.cumsum([0] + [len(c) + 1 for c in cells[:-1]]) + 1
        row = []
        for name in COLUMNS:
            k = where[name]
            cell = cells[k].strip().strip('"') if k < len(cells) else ""
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            bad = not math.isfinite(v)
            if name in ("Label Index", "Voxel count"):
                bad = bad or v != round(v) or v < (1 if name == "Voxel count" else 0)
            if name == "Volume (mm³)":
                bad = bad or v <= 0
            if bad:
                col = int(starts[k]) if k < len(cells) else len(line) + 1
                raise InputError(f"'{name}' is {cell!r}; expected "
                                 + ("a whole number" if name in ("Label Index", "Voxel count")
                                    else "a volume > 0" if name.startswith("Volume")
                                    else "a number in mm"),
                                 source=f"{source}, line {i + 1}, column {col}")
            row.append(v)
        rows.append(row)
        line_numbers.append(i + 1)
    if not rows:
        raise InputError("holds no components", source=source)
    arr = np.array(rows)
    keep = arr[:, 1] >= opt.min_voxels
    arr, lines_kept = arr[keep], np.array(line_numbers)[keep]
    if arr.shape[0] == 0:
        raise InputError(f"holds no component of at least {opt.min_voxels} voxels",
                         source=source)
    vol = arr[:, 2] * MM**3
    pos = arr[:, 3:6] * MM
    if opt.z_top_mm is not None:
        top = opt.z_top_mm * MM
    else:
        radius = np.cbrt(3.0 * vol / (4.0 * math.pi))
        top = float(np.min(pos[:, 2] - radius)) if opt.z_down \
            else float(np.max(pos[:, 2] + radius))
    pos[:, 2] = (top - pos[:, 2]) if opt.z_down else (pos[:, 2] - top)
    if opt.crop is not None:
        x0, x1, y0, y1 = opt.crop
        inside = (pos[:, 0] >= x0) & (pos[:, 0] <= x1) & (pos[:, 1] >= y0) & (pos[:, 1] <= y1)
        if not inside.any():
            raise InputError("no grain lies inside the scan window "
                             f"x {x0 / 1e-6:.6g}..{x1 / 1e-6:.6g} µm, "
                             f"y {y0 / 1e-6:.6g}..{y1 / 1e-6:.6g} µm", source=source)
        pos, vol, arr, lines_kept = pos[inside], vol[inside], arr[inside], lines_kept[inside]
    return point_grains(pos, vol, arr[:, 0].astype(np.int64), source=source, lines=lines_kept)
