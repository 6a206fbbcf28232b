"""A scan of the MMT community's programs written as an entry of a session file: one code path
for `smm-daq import mpe | mmt-scan` and the window's Import scan…, so that both read, refuse
(the file, key, line or column named) and write alike.

Formats: "mpe", the multipole library's MetaDict JSON and NPZ (Bz_array); "mmt-scan", the MMT
community's Bz text (QDM maps, as the cuboid library reads them) and scan-parameter JSON.
"""

from __future__ import annotations

from pathlib import Path

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

SCAN_FORMATS = ("mpe", "mmt-scan")
# what `overwrite` replaces, as `--overwrite` and the window's box say it
IMPORT_OVERWRITE_HELP = ("replace an entry of that name holding an earlier import (whole, or "
                         "not at all), or an analysis product; never a scan, an optical image "
                         "or an entry others were computed from")


def import_scan(fmt: str, first: str | Path, second: str | Path, out: str | Path, name: str,
                *, overwrite: bool = False) -> MapData:
    """Read the scan (`fmt` "mpe": `first` the MetaDict JSON, `second` the NPZ; "mmt-scan":
    `first` the Bz text, `second` the scan-parameter JSON) and write it as entry `name` of
    `out`, kind "import" (`overwrite`: replacing an earlier import of that name, or an
    analysis product, whole or not at all); the map written. Nothing is written where the
    scan is refused."""
    from smm_daq.storage.nexus import write_map_entry

    if fmt == "mpe":
        from smm_daq.analysis.mmt.formats.mpe import read_scan
        from smm_daq.storage.products import Quantity

        data, geo = read_scan(first, second, name=name)
        extra = {"instrument/sensor/thickness": Quantity(geo.sensor_size[2], "m",
                                                         "the volume sensor's thickness")} \
            if len(geo.sensor_size) > 2 else None
        write_map_entry(out, data, kind="import", overwrite=overwrite, extra=extra)
        return data
    if fmt == "mmt-scan":
        from smm_daq.analysis.mmt.formats.community import read_mmt_scan

        data = read_mmt_scan(first, second, name=name)
        write_map_entry(out, data, kind="import", overwrite=overwrite,
                        parameters={"map": str(first), "params": str(second)})
        return data
    raise InputError(f"scan format {fmt!r} is unknown; expected one of {', '.join(SCAN_FORMATS)}")
