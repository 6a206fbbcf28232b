"""The ambient field read by the fluxgate at each line's end: stored with the line, a drift
beyond fluxgate.drift_tolerance_nT warned of (in the scan's notes, its line_done event and the
window), the file still read by h5py, silx and nexusformat, and a file made before the
per-line reading existed still resumed."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_files_open_everywhere import _check_h5py, _check_nexusformat, _check_silx

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig

UM = 1e-6
FIELD = (0.0, 20e-6, 0.0)
DRIFT_T_PER_S = 40e-9  # 144 µT/h: far more than a lab's, to cross 100 nT in a short scan


def _plan(name: str = "drift") -> ScanPlan:
    return ScanPlan.from_center(name, (12.5e-3, 12.5e-3), (60 * UM, 80 * UM), 20 * UM,
                                field=FIELD)


@pytest.fixture
def rig():
    r = open_rig(load_profile())
    yield r
    r.close()


def _drifting_from_the_start(rig, seq: Sequencer) -> list[str]:
    """The ambient field drifts in z from the scan's "started" event (its field checked);
    returns the line_done events' messages as they come."""
    said: list[str] = []

    def on_event(event) -> None:
        if event.kind == "started":
            rig.world.coils.set_ambient_drift([0.0, 0.0, DRIFT_T_PER_S])
        elif event.kind == "line_done":
            said.append(event.message)

    seq.subscribe(on_event)
    return said


def test_a_drifting_ambient_field_is_stored_per_line_and_warned(rig, tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    seq = Sequencer(rig, path, _plan())
    said = _drifting_from_the_start(rig, seq)
    assert seq.run() == "finished"
    with h5py.File(path, "r") as f:
        lines = f["drift/data/line_field"][()]
        start = f["drift/instrument/field_check/value"][()]
        assert f["drift/data/line_field"].attrs["units"] == "T"
    assert lines.shape == (5, 3) and np.isfinite(lines).all()
    # x and y hold; z follows the ambient field, which the world drifted
    np.testing.assert_allclose(lines[:, :2], np.tile(FIELD[:2], (5, 1)), atol=20e-9)
    now = rig.world.coils.ambient_at()[2] - rig.profile.coils.ambient_field[2]
    assert 0 < lines[0, 2] - start[2] < lines[-1, 2] - start[2] <= now + 20e-9
    drift = np.abs(lines[:, 2] - start[2])
    assert drift[-1] > 100e-9  # the default tolerance is crossed by the end
    warned = [i for i, text in enumerate(said) if text]
    first = int(np.argmax(drift > 100e-9))
    assert warned[0] == first  # said at the line it first passes the tolerance ...
    assert all(drift[i] > 100e-9 for i in warned)  # ... and only where it is beyond it,
    assert len(warned) == int(drift[-1] // 100e-9)  # once per whole tolerance passed
    assert f"drifted {drift[first] * 1e9:.0f} nT by the end of line {first + 1}" in said[first]
    assert "fluxgate.drift_tolerance_nT" in said[first]
    assert said[first] in seq.message  # a note of the scan, in its final message


def test_a_steady_ambient_field_is_stored_and_not_warned(rig, tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    seq = Sequencer(rig, path, _plan())
    said: list[str] = []
    seq.subscribe(lambda e: e.kind == "line_done" and said.append(e.message))
    assert seq.run() == "finished"
    with h5py.File(path, "r") as f:
        lines = f["drift/data/line_field"][()]
    np.testing.assert_allclose(lines, np.tile(FIELD, (5, 1)), atol=20e-9)
    assert said == [""] * 5
    assert "drift" not in seq.message


@pytest.mark.parametrize("tolerance", ["1.0", "4.99"])
def test_a_tolerance_below_the_fluxgates_noise_is_refused(tmp_path: Path, tolerance) -> None:
    """A tolerance of 1 nT warned some 300 times of a 300 nT drift, and of the fluxgate's
    own noise: below 5 nT the profile is refused, naming the key, the value and why."""
    text = (Path(load_profile().path).read_text()
            .replace('offset_V = [0.0, 0.0, 0.0]\n\n#', 'offset_V = [0.0, 0.0, 0.0]\n'
                     f'drift_tolerance_nT = {tolerance}\n\n#'))
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(text)
    with pytest.raises(InputError) as refused:
        load_profile(profile_path)
    message = str(refused.value)
    assert f"key 'fluxgate.drift_tolerance_nT' is {tolerance}; expected a number in [5, " in message
    assert "the fluxgate's noise" in message and str(profile_path) in message


def test_the_tolerance_is_the_profiles(tmp_path: Path) -> None:
    text = (Path(load_profile().path).read_text()
            .replace('offset_V = [0.0, 0.0, 0.0]\n\n#', 'offset_V = [0.0, 0.0, 0.0]\n'
                     'drift_tolerance_nT = 100000.0\n\n#'))
    assert "drift_tolerance_nT" in text
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(text)
    profile = load_profile(profile_path)
    assert profile.fluxgate is not None and profile.fluxgate.drift_tolerance == 1e-4
    r = open_rig(profile)
    try:
        seq = Sequencer(r, tmp_path / "s.h5", _plan())
        said = _drifting_from_the_start(r, seq)
        assert seq.run() == "finished"
    finally:
        r.close()
    assert said == [""] * 5


def test_the_file_with_line_field_reads_in_h5py_silx_and_nexusformat(rig, tmp_path) -> None:
    path = tmp_path / "s.h5"
    seq = Sequencer(rig, path, _plan())
    _drifting_from_the_start(rig, seq)
    assert seq.run() == "finished"
    _check_h5py(path)
    _check_silx(path)
    _check_nexusformat(path)


def test_a_file_without_line_field_is_resumed(rig, tmp_path: Path) -> None:
    """An entry written before the per-line reading existed (no data/line_field): its
    resume measures the lines left, storing no reading, as before."""
    path = tmp_path / "old.h5"
    seq = Sequencer(rig, path, _plan())
    seq.subscribe(lambda e: e.kind == "line_done" and e.line == 1 and seq.abort())
    assert seq.run() == "aborted"
    with h5py.File(path, "r+") as f:
        del f["drift/data/line_field"]
    again = Sequencer(rig, path, _plan(), resume=True)
    assert again.run() == "finished", again.message
    with h5py.File(path, "r") as f:
        assert "line_field" not in f["drift/data"]
        assert f["drift/data/line_done"][()].all()
        assert np.isfinite(f["drift/data/Bz"][()]).all()


def test_a_resume_compares_its_lines_with_the_scans_start(tmp_path: Path) -> None:
    """The ambient field moved 250 nT between a scan's run and its resume, within what the
    resume's field check lets pass (here coils.field_tolerance_nT = 500): the resumed lines
    are 300 nT off those stored before, so the drift is warned of at its first line's end,
    measured from the first run's check, not from the resume's own."""
    text = Path(load_profile().path).read_text()
    assert "field_tolerance_nT = 50.0\n" in text
    profile_path = tmp_path / "p.toml"
    profile_path.write_text(text.replace("field_tolerance_nT = 50.0\n",
                                         "field_tolerance_nT = 500.0\n"))
    r = open_rig(load_profile(profile_path))
    path = tmp_path / "s.h5"
    try:
        seq = Sequencer(r, path, _plan())
        seq.subscribe(lambda e: e.kind == "line_done" and e.line == 1 and seq.abort())
        assert seq.run() == "aborted"
        r.world.coils.ambient = r.world.coils.ambient + np.array([0.0, 0.0, 250e-9])
        again = Sequencer(r, path, _plan(), resume=True)
        said: list[str] = []
        again.subscribe(lambda e: e.kind == "line_done" and said.append(e.message))
        assert again.run() == "finished", again.message
    finally:
        r.close()
    with h5py.File(path, "r") as f:
        lines = f["drift/data/line_field"][()]
        checks = f["drift/instrument/field_check/value_log/value"][()]
    assert checks[1, 2] - checks[0, 2] == pytest.approx(250e-9, abs=20e-9)
    assert said[0].startswith(f"the field at the sample drifted "
                              f"{np.linalg.norm(lines[2] - checks[0]) * 1e9:.0f} nT by the end "
                              "of line 3")
    assert "at the scan's start (the run that stored its first lines)" in said[0]
    assert said[1:] == [""] * 2


def test_a_fluxgate_beyond_its_range_is_said_and_read_again(rig, tmp_path: Path) -> None:
    """At the ends of lines 2 and 3 (counted from 1, as said) the fluxgate's outputs are beyond
    the multimeter's range (a magnet near the rig): said once, as a field far from the
    start's, not as a fluxgate that did not answer, and read again at line 4's end, where it
    reads. A fluxgate lost at line 5's end ends the watch for the rest of the run; the scan
    finishes either way."""
    address = rig.profile.fluxgate.link.address
    dmm = rig.backend.emulators[address]
    volts = dmm.volts
    plan = ScanPlan.from_center("drift", (12.5e-3, 12.5e-3), (60 * UM, 100 * UM), 20 * UM,
                                field=FIELD)
    seq = Sequencer(rig, tmp_path / "s.h5", plan)
    said: list[str] = []

    def on_event(event) -> None:
        if event.kind != "line_done":
            return
        said.append(event.message)
        if event.line == 0:
            dmm.volts = lambda now: np.full(3, 15.0)  # V: the 10 V range reads to 12 V
        elif event.line == 2:
            dmm.volts = volts
        elif event.line == 3:
            rig.backend.faults[address].disconnected = True

    seq.subscribe(on_event)
    try:
        assert seq.run() == "finished", seq.message
    finally:
        rig.backend.faults[address].disconnected = False
    with h5py.File(tmp_path / "s.h5", "r") as f:
        lines = f["drift/data/line_field"][()]
    assert lines.shape == (6, 3)
    assert np.isfinite(lines[[0, 3]]).all() and np.isnan(lines[[1, 2, 4, 5]]).all()
    assert said[0] == said[2] == said[3] == said[5] == ""
    assert said[1].startswith("the fluxgate gave no field at the end of line 2 (")
    assert "beyond the 10 V range" in said[1] and "read again" in said[1]
    assert said[4].startswith("the fluxgate did not answer at the end of line 5 (")
    assert said[1] in seq.message and said[4] in seq.message


def test_a_malformed_line_field_is_refused_before_the_resume(rig, tmp_path: Path) -> None:
    """data/line_field of another shape (written by another program): the resume is refused
    naming it, before the rig is touched, rather than failing mid-scan at the first line's
    write with an unexpected error."""
    from smm_daq.errors import InputError

    path = tmp_path / "s.h5"
    seq = Sequencer(rig, path, _plan())
    seq.subscribe(lambda e: e.kind == "line_done" and e.line == 1 and seq.abort())
    assert seq.run() == "aborted"
    with h5py.File(path, "r+") as f:
        del f["drift/data/line_field"]
        f["drift/data/line_field"] = np.zeros((5, 2))
    again = Sequencer(rig, path, _plan(), resume=True)
    with pytest.raises(InputError, match=r"'data/line_field' has shape \(5, 2\) of float64; "
                                         r"expected \(5, 3\) real numbers"):
        again.run()
    with h5py.File(path, "r") as f:
        assert f["drift/data/line_done"][()].tolist() == [True, True, False, False, False]
