"""README's code blocks that work on the repository's shipped data run as written, end to end.

A block qualifies when it sets a shell variable to a folder under tests/data (`Q=...`,
`J=...`): it needs nothing but what the repository ships. Its lines run in order, as a shell
would: `NAME=VALUE` sets NAME (the path taken from the repository's root), and each
`smm-daq` line, `$NAME` expanded, runs through the command line's `main` in process, in one
temporary folder (the outputs' only change: where they land). Every line must exit 0 with no
traceback and leave the file its `--out` names. Any other kind of line fails the test, so a
block cannot quietly stop being run. Every line runs exactly as README writes it, the study
included (one model, two repeats: a few seconds); tests/test_docs_joint_example.py checks what
the joint example finds, test_docs_commands.py that every line parses.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from test_docs_commands import _joined

from smm_daq.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHIPPED = re.compile(r"[A-Za-z_]\w*=tests/data/\S+")
ASSIGNMENT = re.compile(r"([A-Za-z_]\w*)=(\S+)")
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _shipped_blocks() -> list[list[str]]:
    """Each qualifying block's lines, continuations joined, comments and blanks dropped."""
    blocks = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", README.read_text(), re.S):
        lines = [line.split(" #")[0].strip() for line in _joined(block).splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        if any(SHIPPED.fullmatch(line) for line in lines):
            blocks.append(lines)
    return blocks


def _expanded(word: str, variables: dict[str, str], line: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in variables, f"README: {line!r} uses ${name}, not set above it"
        return variables[name]
    return VARIABLE.sub(value, word)


BLOCKS = _shipped_blocks()


def test_readme_has_the_mmt_block_on_shipped_data() -> None:
    """The selection below is not empty: the MMT block (tiled inversion included) is in it."""
    assert any(any("--tile-um" in line for line in block) for block in BLOCKS), \
        "README has no block on tests/data with a tiled inversion: update this test"


@pytest.mark.parametrize("lines", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_readme_block_on_shipped_data_runs_as_written(
        lines: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    variables: dict[str, str] = {}
    for line in lines:
        if assignment := ASSIGNMENT.fullmatch(line):
            variables[assignment.group(1)] = str(ROOT / assignment.group(2))
            continue
        assert line.startswith("smm-daq "), f"README: {line!r} is not a line this test runs"
        words = [_expanded(w, variables, line) for w in shlex.split(line)[1:]]
        code = main(words)
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err, f"README: {line}\n{out}\n{err}"
        written = getattr(build_parser().parse_args(words), "out", None)
        assert written is None or (tmp_path / written).exists(), \
            f"README: {line} left no {written}"
