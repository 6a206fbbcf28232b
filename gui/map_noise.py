"""The Session tab's Noise…: the selected map's noise σ from a repeat of it, by `smm-daq
noise --repeat`'s own function (`noise_of`), beside the floor one map alone gives (as
`smm-daq info` says it)."""

from __future__ import annotations

from pathlib import Path

from gui.command import file_word
from smm_daq.analysis.noise import bends_at_pixel_scale, white_noise_floor
from smm_daq.cli.maps import naming_the_file, noise_of, parsed
from smm_daq.errors import InputError
from smm_daq.storage.nexus import read_map


def noise_words(path: Path, entry: str, repeat: str) -> list[str]:
    """`smm-daq noise PATH --entry ENTRY --repeat REPEAT` as the command's words: each name
    joined to its option ("="), so that a name beginning with '-' is a value, not an option."""
    return ["noise", file_word(path), f"--entry={entry}", f"--repeat={repeat}"]


def noise_said(path: Path, entry: str, repeat: str) -> tuple[str, list[str]]:
    """`smm-daq noise PATH --entry ENTRY --repeat REPEAT` run in hand, as it says its σ, then
    ENTRY's one-map noise floor, and the command's warnings that either is a scan unfinished;
    the command's refusals (InputError, naming the session file) raised, the repeat named as
    the window's."""
    from smm_daq.cli.acquisition import noise_floor_text  # the acquisition commands' module

    said: list[str] = []
    unfinished: list[str] = []
    try:
        with naming_the_file(str(path)):
            noise_of(parsed(noise_words(path, entry, repeat)),
                     say=said.append, warn=unfinished.append)
    except InputError as exc:  # the repeat named as the window picks it, not as an option
        raise InputError(str(exc).replace(f"--repeat is {repeat!r}:",
                                          f"the repeat '{repeat}':")) from None
    bz = read_map(path, entry).bz
    floor = noise_floor_text(white_noise_floor(bz), bound=bends_at_pixel_scale(bz))
    return f"'{entry}': {'; '.join(said)}; one map alone: {floor}", unfinished
