"""Where a command writes an output whole. /dev/null named as an output a command must write
(a script that wants the entry of `mmt invert` and not its CSV, or only some of the exports)
is written to as it is: neither refused as "not a regular file" nor as an existing file that
needs --overwrite. A named pipe stays refused (its write would wait for a reader):
tests/test_fuzz_paths.py. And the folder of an existing output is tried before the work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smm_daq.cli.args import distinct_outputs, output_file
from smm_daq.cli.main import main
from smm_daq.errors import InputError


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


def test_an_existing_output_in_a_folder_that_takes_no_new_file_is_refused_before_the_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An output written whole is written beside the file, then renamed onto it: a file one
    may write in a folder one may not (another user's) fails only then, after the work,
    unless the folder is tried first. (Tried by making its new file fail: root, who runs
    these tests on some machines, may write in any folder.)"""
    import smm_daq.cli.args as args_module

    out = tmp_path / "map.csv"
    out.write_text("old\n")

    def no_new_file(*_args: object, dir: object = None, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(dir))

    monkeypatch.setattr(args_module.tempfile, "TemporaryFile", no_new_file)
    with pytest.raises(InputError, match=r"which cannot be written \(Permission denied\)"):
        output_file("--csv", str(out), overwrite=True)
    assert out.read_text() == "old\n"


def test_another_users_file_in_a_sticky_folder_is_refused_before_the_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a sticky folder (as /tmp) only a file's owner may rename another file onto it, so an
    output written whole there would fail after the work though the file and folder take
    writes. (Another user simulated: this process's effective uid made one owning neither.)"""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)
    out = folder / "table.csv"
    out.write_text("old\n")
    out.chmod(0o666)
    monkeypatch.setattr(os, "geteuid", lambda: out.stat().st_uid + 1)
    with pytest.raises(InputError, match=r"another user's file.*sticky.*nothing was done"):
        output_file("--out", str(out), overwrite=True)
    assert out.read_text() == "old\n"
    folder.chmod(0o777)
    assert output_file("--out", str(out), overwrite=True) == out
