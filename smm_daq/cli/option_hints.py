"""Unknown options named with the option each most likely meant, at every level of a command
line: the program's own options, a command's (`scan`), a command's command (`mmt invert`).

argparse reports a mistyped option differently by where it stands: a command's parser names a
required option missing (`--step_um` for `--step-um`), the program's parser names it among
"unrecognized arguments", or reports the word after it as an invalid command (`smm-daq
--profil x scan`). Each level's options are the ones given between its name and the next
command's name; an option argparse accepts there, also abbreviated, is never named unknown.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator, Sequence


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [k for k in parser._option_string_actions if k.startswith("--")]


def _levels(root: argparse.ArgumentParser, argv: Sequence[str]
            ) -> list[tuple[str, argparse.ArgumentParser, list[str]]]:
    """(command name, its parser, the words given at its level), the program's first."""
    tokens = list(argv)
    if "--" in tokens:  # what follows is values, never options
        tokens = tokens[:tokens.index("--")]
    levels = []
    name, parser = "", root
    while True:
        commands = _commands(parser)
        at = next((i for i, t in enumerate(tokens) if t in commands), None)
        levels.append((name, parser, tokens if at is None else tokens[:at]))
        if at is None:
            return levels
        name, parser, tokens = tokens[at], commands[tokens[at]], tokens[at + 1:]


def _meant(option: str, known: list[str],
           deeper: list[tuple[str, argparse.ArgumentParser, list[str]]]) -> str:
    """The likely meaning of `option`: a near option of its level, else one of a command
    named after it (the option then stands before that command's name)."""
    spelt = option.replace("_", "-")
    near = difflib.get_close_matches(spelt, known, n=1)
    if near:
        return f"did you mean {near[0]}?"
    for name, parser, _ in deeper:
        theirs = _long_options(parser)
        near = ([k for k in theirs if k.startswith(spelt)]
                or difflib.get_close_matches(spelt, theirs, n=1))
        if near == [option]:
            return f"it goes after '{name}'"
        if near:
            return f"did you mean {near[0]}, after '{name}'?"
    return ""


def unknown_options(root: argparse.ArgumentParser, argv: Sequence[str]
                    ) -> Iterator[tuple[str, str]]:
    """(option, hint or "") for each long option of `argv` that its level does not accept."""
    levels = _levels(root, argv)
    seen = set()
    for i, (_, parser, tokens) in enumerate(levels):
        known = _long_options(parser)
        for token in tokens:
            option = token.split("=", 1)[0]
            if not option.startswith("--") or option in seen:
                continue
            seen.add(option)
            if not any(k.startswith(option) for k in known):  # an abbreviation is accepted
                yield option, _meant(option, known, levels[i + 1:])
