"""Command lines that smm-daq's messages advise, written to be pasted into a shell."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path


def command_line(words: Sequence[str | Path]) -> str:
    """`words` as a command line to paste into a shell: a word quoted only where a shell
    would split or expand it (a space, a quote, '$'), so that a name or a folder with an
    accent reads as typed."""
    return " ".join(w if re.fullmatch(r"[\w@%+=:,./-]+", w) else shlex.quote(w)
                    for w in map(str, words))


def resume_command(path: str | Path, entry: str, *options: str) -> str:
    """The `smm-daq resume` command line that goes on with scan `entry` of `path`
    (`command_line`)."""
    return command_line(["smm-daq", "resume", path, "--entry", entry, *options])
