"""A refusal names a path as the user typed it, between single quotes (`path_shown`): as
Python's repr it doubled a backslash (every one of a Windows path's), put double quotes around
a name with an apostrophe, and a Path read PosixPath('...')."""

from __future__ import annotations

from pathlib import Path

import pytest

from smm_daq.cli.main import main
from smm_daq.text_files import path_shown


@pytest.mark.parametrize("folder", ["it's here", "back\\slash"])
def test_a_refused_out_path_reads_as_typed(tmp_path, capsys, folder):
    text = str(tmp_path / folder / "x.h5")
    assert main(["demo", "--out", text]) == 2
    err = capsys.readouterr().err
    assert f"--out is '{text}'; there is no directory" in err, err


def test_a_path_is_shown_as_typed_but_for_what_cannot_be_printed():
    assert path_shown(Path("C:\\data") / "it's.h5") == "'C:\\data/it's.h5'"
    assert path_shown("naïve/x.h5") == "'naïve/x.h5'"
    # a line break, and a name's byte that is not UTF-8 (read as a surrogate), as escapes
    assert path_shown("a\nb/\udce9.h5") == "'a\\nb/\\udce9.h5'"
