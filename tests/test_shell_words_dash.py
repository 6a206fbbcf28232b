"""An advised command line pasted into a shell gives the program back the words it was made of,
even where a path or an entry's name begins with '-', which argparse would take for an option
(`smm-daq repair -x.h5`: 'the following arguments are required: FILE.h5')."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from smm_daq.cli.main import build_parser
from smm_daq.shell_words import command_line, resume_command, shell_join


def parsed(line: str) -> dict[str, object]:
    """What the program's parser makes of the pasted `line` (its words after 'smm-daq')."""
    words = shlex.split(line)
    assert words[0] == "smm-daq", line
    return vars(build_parser().parse_args(words[1:]))


@pytest.mark.parametrize("path", ["-x.h5", "--x.h5", "-d/-x.h5"])
@pytest.mark.parametrize("verb", ["repair", "info"])
def test_a_path_that_begins_with_a_dash_is_read_as_the_path(verb: str, path: str) -> None:
    line = command_line(["smm-daq", verb, path])
    assert Path(str(parsed(line)["file"])) == Path(path), line


def test_resume_gives_back_a_dashed_path_and_entry() -> None:
    line = resume_command("-x.h5", "-s", "--auto-range")
    got = parsed(line)
    assert (Path(str(got["file"])), got["entry"], got["auto_range"]) == (
        Path("-x.h5"),
        "-s",
        True,
    ), line


def test_an_options_dashed_path_is_its_value() -> None:
    line = command_line(["smm-daq", "run", "RECIPE", "--out", "-x.h5", "--continue"])
    got = parsed(line)
    assert (got["out"], got["continue_recipe"]) == ("-x.h5", True), line
    line = command_line(["smm-daq", "safe", "--profile", "-p.toml"])
    assert parsed(line)["profile"] == "-p.toml", line


@pytest.mark.parametrize("name", ["a\nb", "x\\y'z\t\x01", "échantillon\n"])
def test_a_name_with_a_control_character_is_one_line_bash_reads_back(name: str) -> None:
    """An entry's name holding a newline (an earlier release let one in) split the advised
    command over two lines, neither of which a shell reads as meant; written $'…' it is one
    line that bash gives back as the name."""
    line = command_line(["smm-daq", "noise", "s.h5", "--entry", name, "--repeat"])
    assert "\n" not in line
    assert [w.decode() for w in bash_words(line)] == ["noise", "s.h5", "--entry", name,
                                                      "--repeat"]


def bash_words(line: str) -> list[bytes]:
    """The words, as bytes, that bash gives a program run by the pasted `line` (its words
    after 'smm-daq'; printf, on no file)."""
    assert line.startswith("smm-daq "), line
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-c", f'printf "%s\\0" {line.removeprefix("smm-daq ")}'],
                          check=True, capture_output=True).stdout.split(b"\0")[:-1]


@pytest.mark.parametrize("name", [b"caf\xe9.h5", b"a b\xff'c\\x.h5", "é-\xe9".encode()])
def test_a_path_holding_a_byte_not_utf8_is_given_back_by_bash(name: bytes) -> None:
    """A file named in a Latin-1 terminal (its byte 0xe9 no UTF-8: a lone surrogate to
    Python) was quoted with the surrogate in it, which the console writes as '?' or
    '\\udce9': pasted, the command named another file. In bash's $'\\xe9' it is given back
    byte for byte."""
    path = os.fsdecode(b"/d/" + name)
    line = command_line(["smm-daq", "info", path])
    assert line.isascii() or "é" in line
    assert bash_words(line) == [b"info", b"/d/" + name]
    assert bash_words("smm-daq " + shell_join(["level", path])) == [b"level", b"/d/" + name]
