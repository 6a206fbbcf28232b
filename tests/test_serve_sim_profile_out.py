"""`serve-sim --profile-out`: the served instruments as a profile of real ones, so that an
operator's smm-daq drives them through the real drivers over TCP without writing the profile
by hand (every start serves on new ports)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from test_serve_sim import Lines, read_resources

from smm_daq.cli.instruments import serve
from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "configs" / "simulator.toml"


def test_the_written_profile_reaches_the_served_instruments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "served.toml"
    out, stop = Lines(), threading.Event()
    thread = threading.Thread(target=serve, args=(str(PROFILE),), kwargs={
        "time_scale": 1.0, "duration": None, "out": out, "stop": stop,
        "profile_out": str(written)})
    thread.start()
    try:
        next_line = lambda: out.lines.get(timeout=30)  # noqa: E731
        resources = read_resources(next_line)
        assert next_line().split()[:2] == ["profile", str(written)]
        profile = load_profile(written)
        assert not profile.simulated and not profile.simulation
        assert profile.lockin.link.address == resources["lockin"]
        assert profile.stage.link.address == resources["stage"]
        assert profile.coils.addresses == (resources["coil_x"], resources["coil_y"],
                                           resources["coil_z"])
        assert profile.fluxgate is not None
        assert profile.fluxgate.link.address == resources["fluxgate"]
        # all else as served: the same rig to a resume's check
        served = load_profile(PROFILE).fingerprint()
        assert {**profile.fingerprint(), "simulated": True} == served
        monkeypatch.setenv("PYVISA_LIBRARY", "@py")
        assert main(["check", "--profile", str(written)]) == 0
    finally:
        stop.set()
        thread.join(timeout=30)
    printed = capsys.readouterr().out
    assert "every instrument answers" in printed and resources["lockin"] in printed


def test_a_file_serve_sim_did_not_write_is_not_written_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nor is the profile served: each refused before anything is served, unchanged."""
    other = tmp_path / "lab.toml"
    other.write_text("[rig]\nname = 'the lab'\n")
    served = tmp_path / "simulator.toml"
    shutil.copy(PROFILE, served)
    for target, said in ((other, "was not written by serve-sim"),
                         (served, "the profile served")):
        before = target.read_bytes()
        code = main(["serve-sim", "--profile", str(served), "--duration-s", "60",
                     "--profile-out", str(target)])
        captured = capsys.readouterr()
        assert code == 2 and said in captured.err and "serving" not in captured.out
        assert target.read_bytes() == before


def test_the_profile_of_a_serve_sim_still_serving_is_not_written_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second serve-sim given the first's --profile-out would point the commands of whoever
    uses that file at its own instruments, or at none once it stopped: refused."""
    written = tmp_path / "served.toml"
    out, stop = Lines(), threading.Event()
    thread = threading.Thread(target=serve, args=(str(PROFILE),), kwargs={
        "time_scale": 1.0, "duration": None, "out": out, "stop": stop,
        "profile_out": str(written)})
    thread.start()
    try:
        next_line = lambda: out.lines.get(timeout=30)  # noqa: E731
        resources = read_resources(next_line)
        next_line()  # the profile's line: written
        before = written.read_bytes()
        code = main(["serve-sim", "--duration-s", "0.1", "--profile-out", str(written)])
        err = capsys.readouterr().err
        assert code == 2 and f"still served (something answers at {resources['lockin']}" in err
        assert written.read_bytes() == before
    finally:
        stop.set()
        thread.join(timeout=30)
    # once that serve-sim stopped, its file is written again
    assert main(["serve-sim", "--duration-s", "0.1", "--profile-out", str(written)]) == 0
    assert f"profile   {written}" in capsys.readouterr().out


def test_a_profile_out_for_a_world_faster_than_real_time_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands that use the written profile keep real time: a served world 100 times
    faster failed a flown scan's buffer check and kept the lock-in emulator catching up on
    samples while the supplies went unanswered. Refused before anything is served."""
    written = tmp_path / "served.toml"
    code = main(["serve-sim", "--time-scale", "100", "--duration-s", "60",
                 "--profile-out", str(written)])
    captured = capsys.readouterr()
    assert code == 2 and "serving" not in captured.out and not written.exists()
    assert "--time-scale is 100 with --profile-out; expected 1" in captured.err
