"""Commands refuse, with exit 2 and nothing lost, files they must not read or write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    x = np.arange(8) * 10e-6
    write_map_entry(path, MapData(np.outer(x, x), x, x, name="scan1"), kind="import")
    return path


def test_a_truncated_session_file_is_refused_at_once(session: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    whole = session.read_bytes()
    cut = tmp_path / "cut.h5"
    for size in (4000, len(whole) // 2, len(whole) - 100):
        cut.write_bytes(whole[:size])
        assert main(["info", str(cut)]) == 2
        err = capsys.readouterr().err
        assert "is cut short (truncated file" in err
        assert "another program" not in err  # HDF5's "sblock" is no lock


@pytest.mark.parametrize("option", ["--csv", "--png"])
def test_export_never_writes_over_a_session_file(session: Path, option: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = session.read_bytes()
    assert main(["export", str(session), "--entry", "scan1", option, str(session)]) == 2
    assert "HDF5 file" in capsys.readouterr().err
    assert session.read_bytes() == before
    np.testing.assert_array_equal(read_map(session, "scan1").bz.shape, (8, 8))


def test_calibration_is_never_stored_over_a_session_file(session: Path) -> None:
    before = session.read_bytes()
    assert main(["calibrate-coils", "--out", str(session)]) == 2
    assert session.read_bytes() == before


def test_export_of_a_group_is_refused_by_name(session: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = session.parent / "x.csv"
    assert main(["export", str(session), "--entry", "scan1", "--dataset", "data",
                 "--csv", str(out)]) == 2
    assert "'data' is not a numeric dataset" in capsys.readouterr().err
    assert not out.exists()


def test_a_new_file_on_a_read_only_file_system_is_refused_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """There even removing the staging name fails: that must not hide why nothing was made."""
    import errno

    from smm_daq.storage import h5file

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Unable to create file (Read-only file system)")

    monkeypatch.setattr(h5file.h5py, "File", read_only)
    monkeypatch.setattr(Path, "unlink", read_only)
    out = tmp_path / "new.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "40,40", "--step-um", "20",
                 "--name", "s", "--out", str(out)]) == 2
    assert "cannot create the file (Read-only file system)" in capsys.readouterr().err
    assert not out.exists()


def test_calibration_is_never_stored_over_its_own_profile(
        tmp_path: Path, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "rig.toml"
    profile.write_text((repo / "configs" / "simulator.toml").read_text())
    before = profile.read_bytes()
    assert main(["calibrate-coils", "--profile", str(profile), "--out", str(profile),
                 "--overwrite"]) == 2
    assert "the file --profile reads" in capsys.readouterr().err
    assert profile.read_bytes() == before


def test_an_output_that_cannot_be_written_is_refused_before_the_rig_moves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from smm_daq.cli import args
    from smm_daq.instruments import rig

    def read_only(*_: object, **__: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    def never(*_: object, **__: object) -> None:
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(args.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(rig, "open_rig", never)
    out = tmp_path / "coils.toml"
    assert main(["calibrate-coils", "--out", str(out)]) == 2
    assert (f"--out is '{out}', which cannot be written (Read-only file system)"
            in capsys.readouterr().err)
    assert not out.exists()


def test_a_directory_given_as_the_session_file_is_named_as_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: is a directory; expected an smm-daq session file" in err
    assert "errno" not in err  # not HDF5's dump of the failed read


def test_an_option_typed_with_an_underscore_is_named_with_the_one_meant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """argparse would only say that --step-um is missing."""
    with pytest.raises(SystemExit) as caught:
        main(["scan", "--center-um", "0,0", "--size-um", "1,1", "--step_um", "1", "--name", "a",
              "--out", str(tmp_path / "f.h5")])
    assert caught.value.code == 2
    assert ("the following arguments are required: --step-um; unknown option --step_um (did "
            "you mean --step-um?)") in capsys.readouterr().err


def test_resume_into_a_file_that_cannot_be_written_is_refused_before_connecting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    import h5py

    from smm_daq.cli import args
    from smm_daq.instruments import rig

    path = tmp_path / "s.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "40,40", "--step-um", "20",
                 "--name", "s", "--out", str(path)]) == 0
    with h5py.File(path, "a") as f:  # cut off
        f["s/status"][()] = "aborted"
    capsys.readouterr()

    def read_only(file: object, mode: str = "r", *a: object, **k: object) -> object:
        if "+" in mode or "w" in mode:
            raise PermissionError(errno.EACCES, "Permission denied")
        return open(file, mode, *a, **k)

    def never(*_: object, **__: object) -> None:
        raise AssertionError("the rig was connected")

    monkeypatch.setattr(args, "open", read_only, raising=False)
    monkeypatch.setattr(rig, "open_rig", never)
    assert main(["resume", str(path), "--entry", "s"]) == 2
    assert "which cannot be written (Permission denied)" in capsys.readouterr().err


def _refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    return line


def test_an_unrecognized_option_of_a_command_gets_the_same_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The program's parser, not the command's, reports what is left over: argparse alone
    names it with no hint."""
    line = _refusal(["scan", "--center-um", "0,0", "--size-um", "1,1", "--step-um", "1",
                     "--name", "a", "--out", str(tmp_path / "f.h5"), "--height_um", "100"],
                    capsys)
    assert line.endswith("unrecognized arguments: --height_um 100; unknown option "
                         "--height_um (did you mean --height-um?)")
    assert not (tmp_path / "f.h5").exists()


def test_an_option_before_its_command_is_named_with_the_command_it_belongs_to(
        capsys: pytest.CaptureFixture[str]) -> None:
    line = _refusal(["--profil", "x", "scan", "--out", "o.h5"], capsys)
    assert "invalid choice: 'x'" in line
    assert line.endswith("; unknown option --profil (did you mean --profile, after 'scan'?)")
    assert "--out" not in line.split("; unknown option")[1]  # scan's own option
    line = _refusal(["--profile", "p.toml", "scan", "--out", "o.h5"], capsys)
    assert line.endswith("; unknown option --profile (it goes after 'scan')")


def test_an_unknown_option_without_a_near_one_is_named_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _refusal(["info", str(tmp_path / "s.h5"), "--frobnicate"], capsys)
    assert line.endswith("error: unrecognized arguments: --frobnicate")


def test_an_abbreviation_argparse_accepts_is_never_named_unknown(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _refusal(["scan", "--prof", "p.toml", "--out", str(tmp_path / "f.h5")], capsys)
    assert "required" in line and "unknown option" not in line
    line = _refusal(["mmt", "invert", "--entyr", "x"], capsys)
    assert line.endswith("; unknown option --entyr (did you mean --entry?)")


def test_a_new_session_file_whose_hidden_copy_would_be_too_long_is_refused_before_the_rig(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A name of 251 bytes (124 'é' and '.h5') is one the folder takes, but the session file
    is made under a longer hidden name beside it (.NAME.PID.THREAD.HOST~TOKEN.new): the rig
    connected and the first scan began before that failed (File name too long)."""
    from test_run_recipe_profile import _recipe

    recipe = _recipe(tmp_path, 'profile = "../e727.toml"')
    out = tmp_path / ("é" * 124 + ".h5")
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "step 1/1" not in err and "rig is safe" not in err, err
    assert (f"--out is {str(out)!r}, whose name of 251 bytes leaves no room for the hidden "
            "files a session file is made and repaired in beside it") in err, err
    assert "expected a name of at most " in err and "nothing was written" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e727.toml", "recipes"]
