"""The command that measures the rest of a scan cut off, as `info` and the map commands'
warning name it: the recipe continued for a scan a recipe made (as `run` itself says when it
is cut off), else `smm-daq resume`."""

from __future__ import annotations

from pathlib import Path

import h5py

from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.strings import text


def made_by_a_recipe(f: h5py.File, name: str) -> bool:
    """Whether scan entry `name` of the open file `f` was made by a recipe: its `recipe`
    text, which a scan the recipe runner started stores (empty for any other), is not
    empty."""
    try:
        node = f[name].get("recipe")
        return (isinstance(node, h5py.Dataset) and node.shape == ()
                and node.dtype.kind in "OSU" and bool(text(node).strip()))
    except (KeyError, OSError, TypeError, ValueError):  # damaged: `resume` is named, which
        return False  # says what it finds


def rest_command(f: h5py.File, path: str | Path, name: str) -> str:
    """What measures the rest of scan `name` of the open file `f` (at `path`), said as a
    clause: for one a recipe made, the recipe continued, which runs the recipe's steps after
    it too (`run --continue`)."""
    if made_by_a_recipe(f, name):
        run = command_line(["smm-daq", "run", "RECIPE", "--out", path, "--continue"])
        return (f"`{run}` measures the rest, then runs the recipe's steps after it (RECIPE: "
                "the recipe it was made by, whose text the entry stores)")
    return f"`{resume_command(path, name)}` measures the rest"
