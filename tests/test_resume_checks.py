"""`resume` checks the entry whole before the rig is touched, and writes "finished" only when
every line is stored."""

from __future__ import annotations

import re
import shlex
import shutil
import socket
from pathlib import Path

import h5py
import numpy as np
import pytest

import smm_daq.acquisition.session as session_module
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.acquisition.session import ScanNotFinished, Session
from smm_daq.cli.main import main
from smm_daq.shell_words import command_line, resume_command
from smm_daq.storage.staging import REPLACED, STAGING, aside_name, staged_name

SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "60,40", "--step-um", "20",
        "--name", "s1"]
NY, NX = 3, 4


@pytest.fixture(scope="module")
def _interrupted_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("interrupted") / "s.h5"
    assert main([*SCAN, "--out", str(path)]) == 0
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][1:] = False
        f["s1/data/Bz"][1:] = np.nan
    return path


@pytest.fixture
def interrupted(_interrupted_once: Path, tmp_path: Path) -> Path:
    """A scan entry that looks interrupted after its first line: a copy, each test's own, of
    one scanned once (a scan a test took 0.5-1 s)."""
    path = tmp_path / "s.h5"
    shutil.copyfile(_interrupted_once, path)
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


def test_an_intact_interrupted_entry_resumes_to_finished(
        interrupted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", str(interrupted), "--entry", "s1"]) == 0
    assert capsys.readouterr().err.count("2 of 3 lines to measure") == 1  # said once
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


def _simulator_with(repo: Path, tmp_path: Path, old: str, new: str) -> Path:
    """configs/simulator.toml (the profile the scan was started with) with `old`, which it
    must hold, replaced by `new`: another profile that differs in that alone."""
    text = (repo / "configs" / "simulator.toml").read_text()
    assert old in text
    profile = tmp_path / "other.toml"
    profile.write_text(text.replace(old, new))
    return profile


def _profile_with_time_constant(repo: Path, tmp_path: Path, tau: str) -> Path:
    return _simulator_with(repo, tmp_path, "time_constant_s = 0.03\n", f"time_constant_s = {tau}\n")


def test_a_step_scan_is_not_resumed_with_another_time_constant(
        interrupted: Path, no_rig: None, repo: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Its settle and dwell count in τ, and τ sets each point's noise and lag: the rest of the
    map would differ from its first line."""
    profile = _profile_with_time_constant(repo, tmp_path, "0.1")
    before = interrupted.read_bytes()
    assert main(["resume", str(interrupted), "--entry", "s1", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert ("entry 's1': was taken with lock-in time constant 0.03 s, and the rest of it would "
            "be taken with 0.1 s; expected the same τ ([lockin] time_constant_s = 0.03 in the "
            "profile): leave --profile out to use the profile stored with the scan, or give "
            "--profile with the one it was started with") in err
    assert interrupted.read_bytes() == before


def test_the_sequencer_refuses_another_time_constant_too(
        interrupted: Path, repo: Path, tmp_path: Path) -> None:
    """The window resumes through the sequencer, not the command."""
    from smm_daq.errors import InputError
    from smm_daq.instruments.profile import load_profile

    profile = load_profile(_profile_with_time_constant(repo, tmp_path, "0.1"))
    session = Session.open(interrupted, profile)
    try:
        with pytest.raises(InputError, match=r"time constant 0\.03 s, and the rest of it") as no:
            session.resume("s1")
        assert "--profile" not in str(no.value)  # no command line here
    finally:
        session.close()
    with h5py.File(interrupted, "r") as f:
        assert f["s1/status"].asstr()[()] == "aborted"


def test_a_step_scan_resumes_with_another_profile_of_the_same_time_constant(
        interrupted: Path, repo: Path, tmp_path: Path) -> None:
    profile = _profile_with_time_constant(repo, tmp_path, "3e-2")
    assert main(["resume", str(interrupted), "--entry", "s1", "--profile", str(profile)]) == 0


def test_a_script_resumes_with_the_profile_stored_with_the_scan(
        repo: Path, tmp_path: Path) -> None:
    """A scan started with another profile than the simulator's: `Session.open` with the
    default is refused, and says how to open the one stored with the scan;
    `Session.open_for_resume` opens that one, and the scan finishes."""
    from smm_daq.errors import InputError

    profile = _profile_with_time_constant(repo, tmp_path, "0.1")
    path = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(path), "--profile", str(profile)]) == 0
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][1:] = False
    session = Session.open(path)
    try:
        with pytest.raises(InputError) as no:
            session.resume("s1")
    finally:
        session.close()
    assert f"Session.open_for_resume({str(path)!r}, 's1')" in str(no.value)
    with Session.open_for_resume(path, "s1") as s:
        assert s.profile.lockin.time_constant == pytest.approx(0.1)
        s.resume("s1")
    with h5py.File(path, "r") as f:
        assert f["s1/status"].asstr()[()] == "finished"


def test_open_for_resume_refuses_a_damaged_entry_before_the_rig_is_opened(
        interrupted: Path, no_rig: None) -> None:
    from smm_daq.errors import InputError

    _replace(interrupted, "plan", None)
    with pytest.raises(InputError, match="no 'plan' text"):
        Session.open_for_resume(interrupted, "s1")


def test_a_fly_scan_is_not_resumed_with_another_time_constant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A flown line's τ follows from its plan and the lock-in's limits; where those now give
    another τ than its first lines had (a newer smm-daq choosing otherwise), it is refused
    before the rig is opened."""
    import json

    path = tmp_path / "f.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "200,60", "--step-um",
                 "20", "--name", "s1", "--fly", "--pixel-time-s", "0.05",
                 "--out", str(path)]) == 0
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "aborted"
        f["s1/data/line_done"][1:] = False
        settings = json.loads(f["s1/fly_streams/settings"][()])
        tau = settings["time_constant_s"]
        settings["time_constant_s"] = tau * 3
        f["s1/fly_streams/settings"][()] = json.dumps(settings)
    capsys.readouterr()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rig was opened")

    with monkeypatch.context() as patched:
        patched.setattr(session_module.Session, "open", classmethod(refuse))
        before = path.read_bytes()
        assert main(["resume", str(path), "--entry", "s1"]) == 2
    err = capsys.readouterr().err
    assert (f"was taken with lock-in time constant {tau * 3:g} s, and the rest of it would be "
            f"taken with {tau:g} s; expected the lock-in and fly settings") in err
    assert path.read_bytes() == before

    # the window resumes through the sequencer: it refuses before the lock-in is touched
    from smm_daq.errors import InputError
    from smm_daq.instruments.profile import load_profile

    session = Session.open(path, load_profile())
    try:
        session.rig.lockin.set_time_constant(0.3)
        with pytest.raises(InputError, match="expected the lock-in and fly settings"):
            session.resume("s1")
        assert session.rig.lockin.time_constant() == pytest.approx(0.3)
    finally:
        session.close()
    assert path.read_bytes() == before


@pytest.mark.parametrize(("line", "other", "key"), [
    ("reference_amplitude_V = 1.0\n", "reference_amplitude_V = 0.5\n",
     "lockin_reference_amplitude_V was 1, now 0.5"),
    ("reference_phase_deg = 0.0\n", "reference_phase_deg = 90.0\n",
     "lockin_reference_phase_deg was 0, now 90"),
    ("harmonic = 1\n", "harmonic = 2\n", "lockin_harmonic was 1, now 2"),
    ("reference_frequency_Hz = 1017.0\n", "reference_frequency_Hz = 2017.0\n",
     "lockin_reference_frequency_Hz was 1017, now 2017"),
    ('input = "A"', 'input = "A-B"', "lockin_input was 'A', now 'A-B'"),
    ('coupling = "AC"', 'coupling = "DC"', "lockin_coupling was 'AC', now 'DC'"),
])
def test_a_scan_is_not_resumed_with_another_lockin_excitation(
        interrupted: Path, no_rig: None, repo: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], line: str, other: str, key: str) -> None:
    """The sensor's excitation (amplitude, frequency) and what is detected of it (phase,
    harmonic) set the scale of X: the rest of the map would be in other units."""
    profile = _simulator_with(repo, tmp_path, line, other)
    before = interrupted.read_bytes()
    assert main(["resume", str(interrupted), "--entry", "s1", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "was taken with another instrument profile" in err and key in err
    assert "expected the profile it was started with: leave --profile out" in err
    assert interrupted.read_bytes() == before


def test_a_scan_is_not_resumed_with_another_ambient_field(
        interrupted: Path, no_rig: None, repo: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The ambient field the coils null sets, with their matrix, the currents of the plan's
    field: another one takes the rest of the map at a field off by the difference (5 µT
    here). Unfixed, a profile differing in it alone was taken for the same."""
    profile = _simulator_with(repo, tmp_path, "ambient_field_uT = [0.0, 0.0, 0.0]",
                              "ambient_field_uT = [0.0, 5.0, 0.0]")
    before = interrupted.read_bytes()
    assert main(["resume", str(interrupted), "--entry", "s1", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert ("was taken with another instrument profile: coil_ambient_field_T was [0, 0, 0], "
            "now [0, 5e-06, 0] (the ambient field the coils null is another") in err
    assert interrupted.read_bytes() == before


def test_a_fingerprint_stored_before_a_key_was_added_still_resumes(interrupted: Path) -> None:
    """A scan started by an earlier smm-daq stored fewer keys; the missing ones are not held
    against it."""
    import json

    with h5py.File(interrupted, "a") as f:
        stored = json.loads(f["s1/profile_fingerprint"].asstr()[()])
        for key in [k for k in stored if k.startswith("lockin_")]:
            del stored[key]
        del f["s1/profile_fingerprint"]
        f["s1/profile_fingerprint"] = json.dumps(stored)
    assert main(["resume", str(interrupted), "--entry", "s1"]) == 0


def test_resume_help_says_the_profile_defaults_to_the_one_stored_with_the_scan(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`resume` without --profile uses the profile stored with the scan (not the simulator's,
    as scan and run do); its --help said "default: the simulator", which would send someone
    whose scan was taken on the lab rig to type --profile for nothing, or give the wrong one."""
    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--profile FILE instrument profile (default: the one stored with the scan)" in text
    with pytest.raises(SystemExit):
        main(["scan", "--help"])
    assert "(default: the simulator)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("axis_sign = [1, 1, 1]", "axis_sign = [-1, 1, 1]", "stage_axis_sign"),
        ('axes = ["1", "2", "3"]', 'axes = ["2", "1", "3"]', "stage_axes"),
        ("travel_um = [[0.0, 25000.0], [0.0, 25000.0], [0.0, 10000.0]]",
         "travel_um = [[0.0, 50000.0], [0.0, 50000.0], [0.0, 10000.0]]", "stage_travel_m"),
    ],
    ids=["x mirrored", "x and y swapped", "another stage's travel"],
)
def test_a_scan_is_not_resumed_on_another_stage_frame(
        repo: Path, tmp_path: Path, interrupted: Path, capsys: pytest.CaptureFixture[str],
        old: str, new: str, key: str) -> None:
    """The rest of a scan on a stage whose axes are mirrored, swapped or another stage (a
    scan started on the E-727 piezo stage was finished on the C-884 motor stage: its last
    lines measured far from the sample, 0.2 µT RMS against 9 µT, and the entry said
    "finished") is refused before the rig connects, the file as it was."""
    profile = _simulator_with(repo, tmp_path, old, new)
    before = interrupted.read_bytes()
    assert main(["resume", str(interrupted), "--entry", "s1", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert f"was taken with another instrument profile: {key} was" in err
    assert interrupted.read_bytes() == before


TRAVEL = "travel_um = [[0.0, 25000.0], [0.0, 25000.0], [0.0, 10000.0]]"


@pytest.mark.parametrize(
    "travel",
    ["travel_um = [[-0.0000001, 25000.0000001], [0.0, 25000.0], [0.0, 10000.0]]",
     "travel_um = [[12000.0, 13000.0], [0.0, 25000.0], [0.0, 400.0]]"],
    ids=["rewritten to rounding", "soft limits tightened around the scan"],
)
def test_a_scan_resumes_on_its_stage_with_its_travel_rounded_or_tightened(
        repo: Path, tmp_path: Path, interrupted: Path, travel: str) -> None:
    """The same stage with its travel written to other rounding, or its soft limits tightened
    (a region the sensor must keep off) still around the scan, is the stage the scan began
    on: the resume is not refused as "another instrument profile" (which left the lab to
    finish it with the wider limits it had tightened, or not at all)."""
    profile = _simulator_with(repo, tmp_path, TRAVEL, travel)
    assert main(["resume", str(interrupted), "--entry", "s1", "--profile", str(profile)]) == 0
    with h5py.File(interrupted, "r") as f:
        assert f["s1/data/line_done"][()].all()


def test_a_travel_tightened_into_the_scan_is_refused_by_the_plan(
        repo: Path, tmp_path: Path, interrupted: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    """Soft limits tightened so that the rest of the scan lies outside them are refused, as
    the plan outside the stage's travel, before the rig connects, the file as it was."""
    profile = _simulator_with(
        repo, tmp_path, TRAVEL, "travel_um = [[0.0, 12000.0], [0.0, 25000.0], [0.0, 10000.0]]")
    before = interrupted.read_bytes()
    assert main(["resume", str(interrupted), "--entry", "s1", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "another instrument profile" not in err
    assert "travel" in err
    assert interrupted.read_bytes() == before


def _swapped_part_way(path: Path, new_left: bool) -> None:
    """As a scan's writer killed while swapping its empty layout in over an earlier entry of
    its name (an earlier release's leftover) leaves the file: the earlier entry moved aside,
    marked replaced, and the scan not yet moved in (`new_left`) or gone."""
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "interrupted"
        f["s1/data/line_done"][:] = False
        f["s1"].attrs[STAGING] = 1
        f.copy("s1", aside_name("s1"))
        aside = f[aside_name("s1")]
        aside.attrs["kind"] = "induced"
        del aside.attrs[STAGING]
        aside.attrs[REPLACED] = 1
        if new_left:
            f.move("s1", staged_name("s1"))
        else:
            del f["s1"]


@pytest.mark.parametrize("new_left", [True, False])
def test_a_scan_mid_swap_is_told_to_be_repaired_then_resumed_not_no_such_entry(
        interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        new_left: bool) -> None:
    """Between the earlier entry moved aside and the scan moved in, no entry is under the
    scan's name: resume said "no such entry ... it holds none" of a file holding the scan.
    The commands it gives work as pasted into a shell, in a folder named with a space; where
    the scan is gone too, no resume is advised (after the repair the name is the earlier
    entry's, which resume refuses: not a scan)."""
    path = tmp_path / "my scans" / "s 1.h5"
    path.parent.mkdir()
    shutil.copyfile(interrupted, path)
    _swapped_part_way(path, new_left)
    before = path.read_bytes()
    capsys.readouterr()
    assert main(["resume", str(path), "--entry", "s1"]) == 2
    err = capsys.readouterr().err
    repair = command_line(["smm-daq", "repair", str(path)])
    assert "no such entry" not in err and "Traceback" not in err, err
    assert "is mid-swap" in err and f"'{aside_name('s1')}'" in err, err
    assert (f"'{staged_name('s1')}'" in err) is new_left, err
    assert path.read_bytes() == before
    advised = re.findall(r"`([^`]+)`", err)
    assert advised == ([repair, resume_command(path, "s1")] if new_left else [repair]), err
    if not new_left:
        assert "nothing to resume" in err, err
    for line in advised:  # as told, as a shell splits it
        words = shlex.split(line)
        assert words[0] == "smm-daq" and main(words[1:]) == 0, line
    with h5py.File(path, "r") as f:
        assert list(f) == ["s1"]
        if new_left:
            assert f["s1/data/line_done"][()].all()
        else:  # the earlier entry back under its name
            assert f["s1"].attrs["kind"] == "induced"


def test_a_stored_profile_an_earlier_release_took_says_to_give_profile(
        interrupted: Path, repo: Path, tmp_path: Path, no_rig: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A scan started with a value the profile loader took then and refuses now (a lock-in
    timeout of 0.05 s, before links had a least timeout): `resume` without --profile is
    refused, saying that the stored profile is the one refused and how to resume (--profile
    with that value corrected: resume compares the hardware, not the timeout); it had named
    only the stored profile's file, which resume does not read."""
    with h5py.File(interrupted, "a") as f:
        stored = f["s1/profile"].asstr()[()]
        del f["s1/profile"]
        f["s1/profile"] = stored.replace("[lockin]", "[lockin]\ntimeout_s = 0.05", 1)
    before = interrupted.read_bytes()
    assert main(["resume", str(interrupted), "--entry", "s1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "key 'lockin.timeout_s' is 0.05" in err, err
    assert (f"{interrupted}, entry 's1': the profile stored with the scan, taken when it "
            "was started, is refused now: ") in err, err
    assert "; give --profile with that profile, the value corrected" in err, err
    assert interrupted.read_bytes() == before


def test_a_resume_refused_at_the_stored_addresses_says_to_give_profile(
        interrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A scan begun on serve-sim's instruments stores the ports served then; serve-sim
    restarted serves on new ones, and the resume's connection is refused there. It fails as a
    scan does when an instrument does not answer (exit 1, the instrument and its address
    named) and says to point the resume at the instruments now with --profile."""
    from smm_daq.cli.served_profile import served_profile_text
    from smm_daq.instruments.profile import load_profile, parse_profile
    from smm_daq.storage.scan_entry import fingerprint_text

    sim = load_profile(Path(__file__).resolve().parents[1] / "configs" / "simulator.toml")
    assert sim.fluxgate is not None
    closed: dict[str, str] = {}
    for address in (sim.lockin.link.address, sim.stage.link.address, *sim.coils.addresses,
                    sim.fluxgate.link.address):
        with socket.socket() as s:  # a port nothing listens on once closed
            s.bind(("127.0.0.1", 0))
            closed[address] = f"TCPIP0::127.0.0.1::{s.getsockname()[1]}::SOCKET"
    served = served_profile_text(sim, closed)
    with h5py.File(interrupted, "a") as f:
        for key, text in (("profile", served), ("profile_fingerprint", fingerprint_text(
                parse_profile(served, tmp_path / "served.toml")))):
            del f[f"s1/{key}"]
            f[f"s1/{key}"] = text
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    assert main(["resume", str(interrupted), "--entry", "s1"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "Connection refused" in err and "does not answer" in err, err
    assert any(resource in err for resource in closed.values()), err
    assert "give `--profile PROFILE` to point the resume at them" in err, err
    # and the same for making them safe, which the stored profile's addresses cannot do
    assert "make them safe with `smm-daq safe --profile PROFILE`" in err, err
    # the way to make the rig safe named is one that runs: on the profile stored with the
    # scan, not on a file of that profile's name, which there is none of
    assert "stored-profile.toml" not in err, err
    safe = command_line(["smm-daq", "safe", "--from-file", str(interrupted), "--entry", "s1"])
    assert f"Make it safe with `{safe}`" in err, err


def test_safe_from_file_makes_the_rig_of_the_profile_stored_with_a_scan_safe(
        interrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`smm-daq safe --from-file FILE --entry NAME`, the command a resume on the profile
    stored with the scan names: that profile's rig, read from the entry, is made safe."""
    with h5py.File(interrupted, "a") as f:
        stored = f["s1/profile"][()].decode()
        del f["s1/profile"]
        f["s1/profile"] = stored.replace('name = "smm-daq simulator"', 'name = "kept rig"')
    made_safe = []
    monkeypatch.setattr("smm_daq.instruments.rig.make_rig_safe",
                        lambda profile: made_safe.append(profile) or [])
    assert main(["safe", "--from-file", str(interrupted), "--entry", "s1"]) == 0
    assert [p.name for p in made_safe] == ["kept rig"]
    assert made_safe[0].stored_in == (str(interrupted), "s1")
    assert "making rig 'kept rig' safe" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), [
    (["--from-file", "s.h5"], "--from-file is 's.h5' without --entry; expected the scan"),
    (["--profile", "p.toml", "--entry", "s1"], "--entry is given without --from-file"),
])
def test_safe_refuses_from_file_and_entry_apart(argv: list[str], said: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["safe", *argv]) == 2
    assert said in capsys.readouterr().err
