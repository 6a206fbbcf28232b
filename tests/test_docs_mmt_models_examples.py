"""docs/mmt-models.md's command blocks run as a reader runs them, one after another in one
folder, and each line exits 0.

A block qualifies when every line of it is an `smm-daq` command or sets a shell variable
(`J=tests/data/mpe-joint`, the path taken from the repository's root); the GPU benchmark's
`python benchmarks/...` block is left to a GPU machine. Blocks that set a variable run first,
as the page asks: its mask block works on "joint.h5 and $J of the example under Joint
inversions", further down, so the outputs of that example are in the folder when it runs, and
its own must not collide with them. Each `smm-daq` line runs through the command line's `main`
in process, `$NAME` expanded; it must exit 0 with no traceback and leave the file its `--out`
names. tests/test_docs_joint_example.py checks what the joint example finds.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from test_docs_commands import _joined
from test_docs_shipped_examples import ASSIGNMENT, VARIABLE

from smm_daq.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "mmt-models.md"


def _blocks() -> list[list[str]]:
    """The page's qualifying blocks, continuations joined, comments and blanks dropped, those
    that set a variable first, each group in the page's order."""
    blocks = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", PAGE.read_text(), re.S):
        lines = [line.split(" #")[0].strip() for line in _joined(block).splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        if all(line.startswith("smm-daq ") or ASSIGNMENT.fullmatch(line) for line in lines):
            blocks.append(lines)
    return sorted(blocks, key=lambda lines: not any(ASSIGNMENT.fullmatch(ln) for ln in lines))


def _expanded(word: str, variables: dict[str, str], line: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in variables, f"mmt-models.md: {line!r} uses ${name}, set in no block"
        return variables[name]
    return VARIABLE.sub(value, word)


BLOCKS = _blocks()


def test_the_page_has_the_blocks_this_test_runs() -> None:
    """The selection is not empty: the joint example, the mask images' block and the synthetic
    sample are in it, the joint example first."""
    assert any(line.startswith("J=") for line in BLOCKS[0])
    assert any("--mask-template" in line and "--entry high" in line
               for block in BLOCKS[1:] for line in block)
    assert any(line.startswith("smm-daq mmt synth ") for block in BLOCKS for line in block)


def test_the_pages_blocks_run_one_after_another_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    variables: dict[str, str] = {}
    for line in (line for block in BLOCKS for line in block):
        if assignment := ASSIGNMENT.fullmatch(line):
            variables[assignment.group(1)] = str(ROOT / assignment.group(2))
            continue
        words = [_expanded(w, variables, line) for w in shlex.split(line)[1:]]
        code = main(words)
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err, f"mmt-models.md: {line}\n{out}\n{err}"
        written = getattr(build_parser().parse_args(words), "out", None)
        assert written is None or (tmp_path / written).exists(), \
            f"mmt-models.md: {line} left no {written}"
