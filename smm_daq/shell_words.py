"""Command lines that smm-daq's messages advise, written to be pasted into a shell."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

_OPTION = re.compile(r"--[A-Za-z][A-Za-z0-9-]*")  # a long option's name, as the parsers spell it


def command_line(words: Sequence[str | Path]) -> str:
    """`words` as a command line to paste into a shell: a word quoted only where a shell
    would split or expand it (a space, a quote, '$'), so that a name or a folder with an
    accent reads as typed.

    A word that is not an option but begins with '-' (a file named '-x.h5', an entry named
    '-s') would be read as an option by argparse, so it is written as one that is not: the
    value of the option before it joined to it ('--out=-x.h5', '--entry=-s'), else, a path
    given alone, from the current folder ('./-x.h5'), since an advised command's options may
    follow its paths and '--' would end them. (No command advised puts a path right after a
    flag, an option that takes no value.)"""
    out: list[str] = []
    for word in map(str, words):
        if word.startswith("-") and not _OPTION.fullmatch(word):
            after_option = bool(out) and _OPTION.fullmatch(out[-1]) is not None
            word = f"{out.pop()}={word}" if after_option else f"./{word}"
        out.append(word)
    return " ".join(w if re.fullmatch(r"[\w@%+=:,./-]+", w) else shlex.quote(w) for w in out)


def resume_command(path: str | Path, entry: str, *options: str) -> str:
    """The `smm-daq resume` command line that goes on with scan `entry` of `path`
    (`command_line`)."""
    return command_line(["smm-daq", "resume", path, "--entry", entry, *options])
