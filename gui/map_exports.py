"""The Session tab's Export…: the selected entry's map written as `smm-daq export` writes it
(`export_entry`, the command's own function), a CSV and its picture beside it."""

from __future__ import annotations

from pathlib import Path

from smm_daq.cli.maps import export_entry, naming_the_file
from smm_daq.storage.nexus import EntryInfo

PNG = ".png"


def exportable(info: EntryInfo | None) -> bool:
    """Whether the listed entry holds a map export can write (an image of the sample or an
    entry without a map does not; an MMT result's residual, a χ's map, a scan's Bz do)."""
    return info is not None and (info.shape is not None or info.kind == "mmt")


def outputs(chosen: Path) -> tuple[Path, Path]:
    """The CSV chosen in the file dialog (".csv" added where no suffix was typed) and the
    picture written beside it: the same name ending in .png."""
    csv = chosen if chosen.suffix else chosen.with_suffix(".csv")
    return csv, csv.with_suffix(PNG)


def export_map(path: Path, entry: str, csv: Path, png: Path, *, overwrite: bool) -> list[str]:
    """`smm-daq export PATH --entry ENTRY --csv CSV --png PNG [--overwrite]`, run in hand:
    what it wrote, a line each; its refusals (InputError, naming the session file as the
    command's do) raised before anything is written."""
    said: list[str] = []
    with naming_the_file(str(path)):
        export_entry(str(path), entry, csv=str(csv), png=str(png), overwrite=overwrite,
                     say=said.append)
    return said
