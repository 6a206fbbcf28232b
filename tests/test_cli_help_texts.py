"""Every command's --help says what the command does, and `scan --help` what each of its
grid and field options means (a new user starts from them)."""

from __future__ import annotations

import argparse

import pytest

from smm_daq.cli.main import build_parser


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
              ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                found.append(((*path, name), command))
                found.extend(_commands(command, (*path, name)))
    return found


@pytest.mark.parametrize(("path", "command"), _commands(build_parser()),
                         ids=lambda value: " ".join(value) if isinstance(value, tuple) else "")
def test_every_command_help_has_a_description(path, command):
    assert command.description, f"smm-daq {' '.join(path)} --help has no description"


def test_scan_help_explains_the_grid_and_the_field():
    scan = dict(_commands(build_parser()))[("scan",)]
    described = {option: action.help for action in scan._actions
                 for option in action.option_strings}
    for option in ("--center-um", "--size-um", "--step-um", "--field-uT", "--title",
                   "--raster"):
        assert described[option], f"scan {option} has no help"
    assert "centre" in described["--center-um"] and "µm" in described["--center-um"]
    assert "default 0,0,0" in described["--field-uT"]


def test_every_option_says_in_its_help_what_it_is():
    """Every option and positional of every command is explained in its --help: a bare
    `--out FILE.h5` left a new user guessing whether the file is read or written."""
    bare = [f"smm-daq {' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
            for path, command in _commands(build_parser())
            for action in command._actions
            if not action.help and not isinstance(action, (argparse._HelpAction,
                                                            argparse._SubParsersAction))]
    assert not bare, f"options with no help text: {bare}"


def test_the_demos_out_help_says_it_writes_a_new_file():
    """`demo` refuses a file that exists (`test_cli_acquisition`): its --out help says so,
    not, as `scan`'s, that it writes into one smm-daq made keeping its entries."""
    demo = dict(_commands(build_parser()))[("demo",)]
    out = next(a.help for a in demo._actions if "--out" in a.option_strings)
    assert "new one" in out and "exists is refused" in out, out
    assert "entries kept" not in out, out


def test_a_description_made_from_a_summary_keeps_its_symbol():
    """A command whose summary begins with a symbol keeps it: susceptibility's `χ map ...`
    was described as `Χ map ...`, the capital chi, which reads as an X."""
    susceptibility = dict(_commands(build_parser()))[("susceptibility",)]
    assert susceptibility.description.startswith("χ map of a thin layer"), \
        susceptibility.description
