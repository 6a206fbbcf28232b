"""Every `smm-daq scan` and `smm-daq run` example of the documentation (README.md and docs/
code blocks, the example comments of configs/) passes every check the program makes before it
connects to the rig, on the profile it names (the simulator where it names none): its grid lies
within the stage's travel, its field within the coils' limits, its duration within a week, a
recipe's steps hold together. Running them whole would take a minute of simulated scans; what
the documentation can get wrong with the program unchanged, or the shipped profiles changed
under it, is refused before the connect.

Each runs through the command line's `main` in a fresh folder where `configs/` is the
repository's (the examples are typed from the checkout), its output file new, and must reach
the connect: the session's opening is replaced by a marker that ends the command there.
`run --continue` and `resume` need a file an earlier command cut off and are left out;
tests/test_docs_commands.py checks that every line parses.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from test_docs_commands import COMMANDS

import smm_daq.cli.acquisition
from smm_daq.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


class _Connecting(Exception):
    """The command got as far as opening the rig."""


def _before_connect() -> list[tuple[str, str]]:
    return [(doc, command) for doc, command in COMMANDS
            if shlex.split(command)[1] in ("scan", "run") and "--continue" not in command]


EXAMPLES = _before_connect()


def test_the_examples_this_test_checks_are_found() -> None:
    """README's survey scan, flown scan and recipe run, and the e727 profile's example."""
    found = {(doc, shlex.split(command)[1], "--fly" in command) for doc, command in EXAMPLES}
    assert {("README.md", "scan", False), ("README.md", "scan", True),
            ("README.md", "run", False), ("simulator-e727.toml", "scan", False)} <= found


@pytest.mark.parametrize(("doc", "command"), EXAMPLES, ids=[c for _, c in EXAMPLES])
def test_each_scan_and_run_example_passes_the_checks_made_before_connecting(
        doc: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)

    def connecting(*_args: object, **_kwargs: object) -> None:
        raise _Connecting

    monkeypatch.setattr(smm_daq.cli.acquisition, "_open_session", connecting)
    try:
        code = main(shlex.split(command)[1:])
    except _Connecting:
        return
    pytest.fail(f"{doc}: `{command}` ended ({code}) before connecting:\n"
                f"{capsys.readouterr().err}")
