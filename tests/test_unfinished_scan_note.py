"""A map command given a scan that did not finish (aborted, failed, interrupted, or still
running) says so on stderr: what it makes holds only the lines measured, which nothing in the
result says, and `smm-daq resume` measures the rest. A finished scan gets no such word."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main

GRID = ["--center-um", "12500,12500", "--size-um", "100,100", "--step-um", "50"]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scans 'rem' (zero field, finished) and 'inf' (40 µT), 3 × 3 points, in a folder whose
    name has a space; 'inf' then made as an aborted scan leaves it: its last line not
    measured."""
    path = tmp_path_factory.mktemp("unfinished") / "my sample.h5"
    for name, field in (("rem", "0,0,0"), ("inf", "0,40,0")):
        assert main(["scan", *GRID, "--field-uT", field, "--name", name, "--out", str(path)]) == 0
    with h5py.File(path, "r+") as f:
        f["inf/status"][()] = b"aborted"
        f["inf/data/line_done"][2] = False
        bz = f["inf/data/Bz"][()]
        bz[2] = np.nan
        f["inf/data/Bz"][()] = bz
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def test_a_map_command_says_a_scan_was_aborted_and_of_a_finished_one_nothing(
        session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / session.name
    path.write_bytes(session.read_bytes())
    note = "'inf' is a scan aborted with 2 of 3 lines measured: a result from it holds"
    resume = f"`smm-daq resume '{path}' --entry inf` measures the rest"
    for argv in (["subtract", str(path), "--in-field", "inf", "--remanent", "rem",
                  "--name", "induced", "--no-register"],
                 ["crop", str(path), "--entry", "inf", "--name", "part",
                  "--x-um", "12400,12600", "--y-um", "12400,12600"],
                 ["noise", str(path), "--entry", "inf", "--border-um", "50"]):
        err = _run(capsys, *argv)
        assert f"smm-daq: warning: {note}" in err, (argv, err)
        assert resume in err, err
        assert "'rem' is a scan" not in err
    err = _run(capsys, "crop", str(path), "--entry", "rem", "--name", "whole",  # finished
               "--x-um", "12400,12600", "--y-um", "12400,12600")
    assert "warning" not in err


@pytest.mark.parametrize("model", ("cuboid", "dipole"))  # the two paths of `mmt invert`
def test_mmt_invert_says_a_scan_was_aborted(session: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            model: str) -> None:
    path = tmp_path / session.name
    path.write_bytes(session.read_bytes())
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,12500,12500,-20,10,10,10\n")
    err = _run(capsys, "mmt", "invert", str(path), "--entry", "inf", "--grains", str(grains),
               "--model", model, "--out", str(tmp_path / "m.csv"))
    assert ("smm-daq: warning: 'inf' is a scan aborted with 2 of 3 lines measured: a result "
            "from it holds") in err, err
    assert f"`smm-daq resume '{path}' --entry inf` measures the rest" in err
