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
    return shell_join(out)


def shell_join(words: Sequence[str]) -> str:
    """`words` as one line that bash splits back into them, each quoted only where it must
    be (`_quoted`): a command recorded as it was run, which a user may paste to run again."""
    return " ".join(_quoted(w) for w in words)


def file_shown(path: str | Path) -> str:
    """A file's name as a message's line shows it: as it is where every character prints,
    else as bash reads it back (`_quoted`: a byte that is not UTF-8 as `$'caf\\xe9.h5'`, as
    the commands advised beside it name the file), never Python's stand-in for the byte."""
    text = str(path)
    return text if text.isprintable() else _quoted(text)


def _quoted(word: str) -> str:
    """`word` as a shell reads it back: bare where nothing in it is special, in single quotes
    where something is, and in bash's $'…' where it holds a control character (a newline in an
    entry's name), so that the command stays on one line, or a byte that is not UTF-8 (a file
    named in a Latin-1 terminal, which Python holds as a lone surrogate): written as its
    escape there, `\\xe9`, bash gives the same byte back, so the command acts on that file."""
    if re.fullmatch(r"[\w@%+=:,./-]+", word):
        return word
    if not _DOLLAR_QUOTED.search(word):
        return shlex.quote(word)
    escaped = word.replace("\\", "\\\\").replace("'", "\\'")
    return "$'" + _DOLLAR_QUOTED.sub(_escape, escaped) + "'"


def _escape(m: re.Match[str]) -> str:
    """A control character or a byte that is not UTF-8 (os.fsdecode's surrogate for it) as
    bash's $'…' writes it."""
    c = m[0]
    return _ESCAPES.get(c, f"\\x{ord(c) & 0xff:02x}")


# a control character, or the surrogate that stands for a byte that is not UTF-8 (0x80..0xff)
_DOLLAR_QUOTED = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def resume_command(path: str | Path, entry: str, *options: str) -> str:
    """The `smm-daq resume` command line that goes on with scan `entry` of `path`
    (`command_line`)."""
    return command_line(["smm-daq", "resume", path, "--entry", entry, *options])
