"""The Session tab's Export…: a map of the selected entry (the one `smm-daq export` takes by
default, or another it takes with --dataset: an MMT result's fitted Bz, a χ's SD, a scan's raw
readings) written as the command writes it (`export_entry`, the command's own function), a CSV
and its picture beside it."""

from __future__ import annotations

from pathlib import Path

from smm_daq.cli.maps import export_entry, naming_the_file
from smm_daq.errors import InputError
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


# the command's options as the window names what they name
_WINDOW_WORDS = (("--png and --csv both name", "the CSV file and its picture both name"),
                 ("--dataset is", "the map chosen is"),
                 ("--csv is", "the CSV file is"), ("--png is", "its picture is"),
                 (" (or --overwrite to replace it)", ""))


def said_in_window(refusal: str) -> str:
    """An export's refusal as the window says it: its outputs named as the window chose
    them (a CSV, its picture beside it), not as the command's options."""
    for option, words in _WINDOW_WORDS:
        refusal = refusal.replace(option, words)
    return refusal


def offered(maps: list[str], default: str) -> list[str]:
    """The maps as the window offers them (`exportable_maps`): the default first, marked as
    the command's listing marks it."""
    return [f"{default} (the default)", *(name for name in maps if name != default)]


def dataset_chosen(item: str, default: str) -> str:
    """The --dataset an item of `offered` names."""
    return default if item == f"{default} (the default)" else item


def file_stem(entry: str, dataset: str, default: str) -> str:
    """The name the file dialog proposes: the entry's, and the map's after it where it is not
    the default ('chi/errors' as 'chi_errors')."""
    return entry if dataset == default else f"{entry}_{dataset.replace('/', '_')}"


def export_map(path: Path, entry: str, csv: Path, png: Path, *, overwrite: bool,
               dataset: str | None = None) -> list[str]:
    """`smm-daq export PATH --entry ENTRY [--dataset DATASET] --csv CSV --png PNG
    [--overwrite]`, run in hand: what it wrote, a line each; its refusals (InputError, naming
    the session file as the command's do, said as the window says them: `said_in_window`)
    raised before anything is written."""
    said: list[str] = []
    try:
        with naming_the_file(str(path)):
            export_entry(str(path), entry, dataset=dataset, csv=str(csv), png=str(png),
                         overwrite=overwrite, say=said.append)
    except InputError as exc:
        raise InputError(said_in_window(str(exc))) from None
    return said
