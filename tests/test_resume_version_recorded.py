"""A resume records the program version that ran it (`runs/program_version`, beside its start
time), and `info` says "resumed by smm-daq X" where that differs from the version that
started the scan. An entry of an earlier version, without the column, gets it at its resume,
its earlier runs' versions unknown ("")."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest
from test_cli_acquisition import SCAN

from smm_daq import __version__
from smm_daq.cli.main import main

OLD = "0.9"


@pytest.fixture(scope="module")
def _scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished scan 's1', made once for this module's tests, each resuming its own copy."""
    path = tmp_path_factory.mktemp("scanned") / "s.h5"
    assert main([*SCAN, "--out", str(path)]) == 0
    return path


@pytest.fixture
def scanned(_scanned: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(_scanned, tmp_path / "s.h5"))


@pytest.mark.parametrize("layout", ["columns", "earlier"])
def test_a_resume_by_a_newer_version_is_recorded_and_said(scanned: Path, capsys,
                                                          layout: str) -> None:
    path = scanned
    with h5py.File(path, "a") as f:  # as an older smm-daq's aborted scan leaves it
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][2:] = False
        f["s1/program_name"].attrs["version"] = OLD
        runs = f["s1/runs"]
        if layout == "earlier":  # written before runs recorded versions or noise
            for key in ("program_version", "noise_seed", "noise_measurement"):
                del runs[key]
        else:
            runs["program_version"][0] = OLD.encode()
    assert main(["resume", str(path), "--entry", "s1"]) == 0
    with h5py.File(path, "r") as f:
        runs = f["s1/runs"]
        started = OLD if layout == "columns" else ""
        assert [v.decode() for v in runs["program_version"][()]] == [started, __version__]
        assert runs["start_time"].shape == (2,) and runs["start_time"][1]
        assert runs["noise_measurement"][1] == 1 and runs["noise_seed"][1] >= 0
        assert (runs["noise_seed"][0] == -1) == (layout == "earlier")  # unknown: not recorded
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"smm-daq {OLD}, resumed by smm-daq {__version__}," in out, out


def test_a_resume_by_the_same_version_says_nothing_more(scanned: Path, capsys) -> None:
    path = scanned
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][2:] = False
    assert main(["resume", str(path), "--entry", "s1"]) == 0
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"smm-daq {__version__}," in out and "resumed by" not in out, out


def test_a_resume_killed_before_its_row_was_written_is_not_said(scanned: Path,
                                                                 capsys) -> None:
    """A resume by another version killed while it added its row to `runs` (its version
    written, its run number not: -1) resumed nothing: `info` names no "resumed by"."""
    with h5py.File(scanned, "a") as f:
        runs = f["s1/runs"]
        for key in runs:
            runs[key].resize(2, axis=0)
        runs["program_version"][1] = b"9.9"
    capsys.readouterr()
    assert main(["info", str(scanned)]) == 0
    out = capsys.readouterr().out
    assert f"smm-daq {__version__}," in out and "resumed by" not in out, out
