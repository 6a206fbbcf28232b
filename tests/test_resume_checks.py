"""`resume` checks the entry whole before the rig is touched, and writes "finished" only when
every line is stored."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import smm_daq.acquisition.session as session_module
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.acquisition.session import ScanNotFinished, Session
from smm_daq.cli.main import main

SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "60,40", "--step-um", "20",
        "--name", "s1"]
NY, NX = 3, 4


@pytest.fixture
def interrupted(tmp_path: Path) -> Path:
    """A scan entry that looks interrupted after its first line."""
    path = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(path)]) == 0
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][1:] = False
        f["s1/data/Bz"][1:] = np.nan
    return path


def _replace(path: Path, key: str, data: object | None) -> None:
    with h5py.File(path, "a") as f:
        del f[f"s1/{key}"]
        if data is not None:
            f[f"s1/{key}"] = data


@pytest.fixture
def no_rig(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the rig fails the test: a refused entry must never get that far."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rig was opened for an entry that cannot be resumed")

    monkeypatch.setattr(session_module.Session, "open", classmethod(refuse))


@pytest.mark.parametrize(("key", "data", "words"), [
    ("data/line_done", np.zeros(NY - 1, dtype=bool), "'data/line_done' has shape (2,)"),
    ("data/Bz", np.zeros((NY, NX + 1)), "'data/Bz' has shape (3, 5)"),
    ("data/time", None, "no 'data/time' dataset"),
    ("plan", None, "no 'plan' text"),
    ("plan", "{not json", "plan text is not JSON"),
    ("profile_fingerprint", None, "no 'profile_fingerprint' text"),
    ("profile_fingerprint", "[]", "expected the JSON fingerprint"),
    ("data/x", np.arange(NX) * 1.0, "'data/x' is not the grid of its plan"),
])
def test_a_damaged_entry_is_refused_before_the_rig_is_opened(
        interrupted: Path, no_rig: None, capsys: pytest.CaptureFixture[str], key: str,
        data: object, words: str) -> None:
    _replace(interrupted, key, data)
    before = interrupted.read_bytes()
    assert main(["resume", str(interrupted), "--entry", "s1"]) == 2
    err = capsys.readouterr().err
    assert words in err and "entry 's1'" in err and "Traceback" not in err
    assert interrupted.read_bytes() == before


def test_an_intact_interrupted_entry_resumes_to_finished(interrupted: Path) -> None:
    assert main(["resume", str(interrupted), "--entry", "s1"]) == 0
    with h5py.File(interrupted, "r") as f:
        assert f["s1/status"].asstr()[()] == "finished"
        assert f["s1/data/line_done"][()].all()
        assert np.isfinite(f["s1/data/Bz"][()]).all()


def test_finished_is_written_only_when_every_line_is(
        interrupted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if a short line_done got past the checks, the scan would end "failed"."""
    _replace(interrupted, "data/line_done", np.array([True, False]))
    monkeypatch.setattr(Sequencer, "_check_resumable", lambda self: None)
    with Session.open(interrupted) as s, pytest.raises(ScanNotFinished, match="2 of 3 lines"):
        s.scan_plan(_stored_plan(interrupted), resume=True)
    with h5py.File(interrupted, "r") as f:
        assert f["s1/status"].asstr()[()] == "failed"


def _stored_plan(path: Path):
    from smm_daq.acquisition.plan import ScanPlan

    with h5py.File(path, "r") as f:
        return ScanPlan.from_text(f["s1/plan"].asstr()[()])
