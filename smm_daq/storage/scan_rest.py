"""The command that measures the rest of a scan cut off, as `info` and the map commands'
warning name it: the recipe continued for a scan a recipe made (as `run` itself says when it
is cut off), else `smm-daq resume`."""

from __future__ import annotations

from pathlib import Path

import h5py

from smm_daq.errors import InputError
from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.checks import string
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
    """The recipe file scan `name` was made by, from the root (its `recipe`'s `absolute_path`
    attribute: named so, the command runs from any folder), else as `run` was given it (its
    `path`: an earlier version's), a byte that is not UTF-8 back from its stored escape
    (`stored_path`); "" where the entry names none (a recipe run from a script)."""
    try:
        attrs = f[name]["recipe"].attrs
        stored = (_one_text(attrs.get(key, "")) for key in ("absolute_path", "path"))
        return stored_path(next((p for p in stored if p), ""))
    except (KeyError, OSError, TypeError, ValueError):
        return ""


def _one_text(value: object) -> str:
    """An attribute's text, "" where it holds no single string (another program's array or
    number would be named as the recipe's file, in its repr)."""
    try:
        return string(value, "recipe path", "").strip()
    except InputError:
        return ""


def rest_command(f: h5py.File, path: str | Path, name: str) -> str:
    """What measures the rest of scan `name` of the open file `f` (at `path`), said as a
    clause: for one a recipe made, the recipe continued, which runs the recipe's steps after
    it too (`run --continue`), named from the root, or as `run` was given it where the entry
    stores only that (the file is not looked at: `run --continue` refuses a recipe whose text
    is not the one the entry stores)."""
    if made_by_a_recipe(f, name):
        recipe = _recipe_file(f, name)
        run = command_line(["smm-daq", "run", recipe or "RECIPE", "--out", path, "--continue"])
        which = ("RECIPE: the recipe it was made by" if not recipe
                 else "the recipe it was made by" if Path(recipe).is_absolute()
                 else "the recipe as `run` was given it, from the folder it ran in")
        return (f"`{run}` measures the rest, then runs the recipe's steps after it ({which}, "
                "whose text the entry stores)")
    return f"`{resume_command(path, name)}` measures the rest"
