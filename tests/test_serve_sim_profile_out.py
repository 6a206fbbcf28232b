"""`serve-sim --profile-out`: the served instruments as a profile of real ones, so that an
operator's smm-daq drives them through the real drivers over TCP without writing the profile
by hand (every start serves on new ports)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_serve_sim import read_resources, serving

from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "configs" / "simulator.toml"


def test_the_written_profile_reaches_the_served_instruments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "served.toml"
    with serving(PROFILE, profile_out=str(written)) as next_line:
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
    with serving(PROFILE, profile_out=str(written)) as next_line:
        resources = read_resources(next_line)
        next_line()  # the profile's line: written
        before = written.read_bytes()
        code = main(["serve-sim", "--duration-s", "0.1", "--profile-out", str(written)])
        err = capsys.readouterr().err
        assert code == 2 and f"still served (something answers at {resources['lockin']}" in err
        assert written.read_bytes() == before
    # once that serve-sim stopped, its file is written again
    assert main(["serve-sim", "--duration-s", "0.1", "--profile-out", str(written)]) == 0
    assert f"profile   {written}" in capsys.readouterr().out


def test_a_profile_out_the_system_cannot_look_up_is_refused_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name longer than the system allows: refused with what was wrong, exit 2, nothing
    served. Unfixed, a traceback (OSError: File name too long) and exit 1."""
    code = main(["serve-sim", "--duration-s", "60",
                 "--profile-out", str(tmp_path / ("a" * 300 + ".toml"))])
    captured = capsys.readouterr()
    assert code == 2 and "cannot look up" in captured.err and "serving" not in captured.out


def test_a_profile_out_that_cannot_be_written_is_said_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file cannot be written (a folder not writable; faked, the tests may run as root):
    said with why and what was expected, exit 2, the instruments no longer served. Unfixed,
    a traceback (PermissionError) and exit 1."""
    target = tmp_path / "served.toml"
    write_text = Path.write_text

    def refused(self: Path, *args: object, **kwargs: object) -> int:
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return write_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", refused)
    code = main(["serve-sim", "--duration-s", "60", "--profile-out", str(target)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert f"--profile-out {target} could not be written (Permission denied)" in captured.err
    assert not target.exists()


def test_an_array_of_arrays_written_over_lines_is_no_table_header(tmp_path: Path) -> None:
    """A profile whose [simulation] gives an array of arrays over several lines (its last row
    without a comma, `[0.0, 10000.0]`, looks like a table header): the whole [simulation]
    table is still left out, the file written a valid profile of real instruments. Unfixed,
    that row was taken for a table, and the array's `]` and the keys after it were kept."""
    from smm_daq.cli.served_profile import served_profile_text
    from smm_daq.instruments.profile import parse_profile

    text = PROFILE.read_text().replace(
        'stage_controller = "C-884"',
        'stage_travel_um = [\n    [0.0, 25000.0],\n    [0.0, 25000.0],\n    [0.0, 10000.0]\n]'
        '\nstage_controller = "C-884"')
    source = tmp_path / "simulator.toml"
    source.write_text(text)
    profile = load_profile(source)
    assert profile.simulation["stage_travel_um"]  # as the served simulator reads it
    served = served_profile_text(profile, {})
    lines = [line.strip() for line in served.splitlines()]
    assert "[0.0, 10000.0]" not in lines and "]" not in lines
    assert not any(line.startswith("stage_controller") for line in lines)
    written = parse_profile(served, tmp_path / "served.toml")
    assert not written.simulated and not written.simulation


def test_a_profile_out_that_could_not_be_pointed_at_the_served_rig_is_not_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`"simulated" = true` (a quoted key, not recognised): the written file would still be
    a simulated profile; refused, exit 2, and no such file left for a command to run the
    in-process simulator from, taken for the served one. Unfixed, it was left written."""
    served = tmp_path / "simulator.toml"
    served.write_text(PROFILE.read_text().replace("\nsimulated = true", '\n"simulated" = true'))
    target = tmp_path / "served.toml"
    code = main(["serve-sim", "--profile", str(served), "--duration-s", "60",
                 "--profile-out", str(target)])
    assert code == 2 and "could not be pointed at the served" in capsys.readouterr().err
    assert not target.exists()


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


def test_a_refused_time_scale_near_one_is_said_as_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A time scale a hair off 1 is refused with --profile-out, and said as given: not
    "--time-scale is 1 ...; expected 1"."""
    written = tmp_path / "served.toml"
    code = main(["serve-sim", "--time-scale", "1.0000001", "--duration-s", "60",
                 "--profile-out", str(written)])
    err = capsys.readouterr().err
    assert code == 2 and not written.exists()
    assert "--time-scale is 1.0000001 with --profile-out; expected 1" in err, err


def test_a_baud_rate_no_served_socket_uses_is_written_as_a_comment(tmp_path: Path) -> None:
    """The simulator's stage is on a serial port (`baud_rate = 115200`); served, it is a
    socket, where the key is ignored: kept as a comment, so that a command on the written
    profile does not warn of it (unfixed: every command said 'key stage.baud_rate ...
    ignored'). The stage reads its controller's default rate all the same."""
    import warnings

    from smm_daq.cli.served_profile import served_profile_text
    from smm_daq.instruments.profile import parse_profile

    profile = load_profile(PROFILE)
    addresses = [profile.lockin.link.address, profile.stage.link.address,
                 *profile.coils.addresses]
    if profile.fluxgate is not None:
        addresses.append(profile.fluxgate.link.address)
    resources = {a: f"TCPIP0::127.0.0.1::{5000 + k}::SOCKET" for k, a in enumerate(addresses)}
    served = served_profile_text(profile, resources)
    assert "# baud_rate = 115200  (served on loopback TCP: no serial line)" in served.splitlines()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = parse_profile(served, tmp_path / "served.toml")
    assert written.stage.link.address == resources[profile.stage.link.address]
    assert written.stage.link.baud_rate == profile.stage.link.baud_rate == 115200
