"""The command that measures the rest of a scan cut off, as `info` and the map commands'
warning name it: the recipe continued for a scan a recipe made (as `run` itself says when it
is cut off), else `smm-daq resume`."""

from __future__ import annotations

from pathlib import Path

import h5py

from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.strings import stored_path, text


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


def _recipe_file(f: h5py.File, name: str) -> str:
    """The recipe file as `run` was given it (its `recipe` `path` attribute, a byte that is
    not UTF-8 back from its stored escape: `stored_path`), or "" where the entry does not
    name one (a recipe run from a script, a file of an earlier version)."""
    try:
        return stored_path(text(f[name]["recipe"].attrs.get("path", "")).strip())
    except (KeyError, OSError, TypeError, ValueError):
        return ""


def rest_command(f: h5py.File, path: str | Path, name: str) -> str:
    """What measures the rest of scan `name` of the open file `f` (at `path`), said as a
    clause: for one a recipe made, the recipe continued, which runs the recipe's steps after
    it too (`run --continue`), named as `run` was given it (the file is not looked at: `run
    --continue` refuses a recipe whose text is not the one the entry stores)."""
    if made_by_a_recipe(f, name):
        recipe = _recipe_file(f, name)
        run = command_line(["smm-daq", "run", recipe or "RECIPE", "--out", path, "--continue"])
        which = ("the recipe as `run` was given it, from the folder it ran in" if recipe
                 else "RECIPE: the recipe it was made by")
        return (f"`{run}` measures the rest, then runs the recipe's steps after it ({which}, "
                "whose text the entry stores)")
    return f"`{resume_command(path, name)}` measures the rest"
