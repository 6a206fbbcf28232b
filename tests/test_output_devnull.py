"""/dev/null named as an output a command must write (a script that wants the entry of `mmt
invert` and not its CSV, or only some of the exports) is written to as it is: neither refused
as "not a regular file" nor as an existing file that needs --overwrite. A named pipe stays
refused (its write would wait for a reader): tests/test_fuzz_paths.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smm_daq.cli.args import distinct_outputs, output_file
from smm_daq.cli.main import main


def test_an_export_to_dev_null_runs(demo_session: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "map.png"
    code = main(["export", str(demo_session), "--entry", "qdm", "--csv", os.devnull,
                 "--png", str(png)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert png.stat().st_size > 0
    assert Path(os.devnull).is_char_device()


def test_dev_null_is_an_output_for_every_option_of_a_command() -> None:
    assert output_file("--out", os.devnull) == Path(os.devnull)
    distinct_outputs(("--grains-out", os.devnull), ("--truth-out", os.devnull))
