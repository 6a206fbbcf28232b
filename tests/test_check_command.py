"""`smm-daq check`: every instrument's identity, ranges and readings, or exit 2 naming the
instrument that does not answer; also through the real transports against serve-sim."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
from served_rig import simulators_made
from test_serve_sim import read_resources, serving

from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "configs" / "simulator.toml"


def test_check_prints_every_instrument_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--profile", str(PROFILE)]) == 0
    out = capsys.readouterr().out
    for expected in ("lockin: sr830 at GPIB0::8::INSTR", "SR830", "C-884", "KEPCO", "34970A",
                     "sensitivity_V: 0.5", "travel_m:", "max_field_T: 0.0001", "field_T:",
                     "every instrument answers"):  # fmt: skip
        assert expected in out


def test_check_moves_no_stage_and_says_a_scan_will_reference_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The C-884 profile references at connect; a check must not move the stage for that."""
    made = simulators_made(monkeypatch)
    assert main(["check", "--profile", str(PROFILE)]) == 0
    out = capsys.readouterr().out
    model = made[0].world.stage
    assert not any(model.referenced(ax) for ax in model.axis_names)
    stage = load_profile(PROFILE).stage
    start = [stage.travel[0, 0], stage.travel[1, 0], load_profile(PROFILE).sensor.height]
    np.testing.assert_allclose(model.sample_position(), start, atol=1e-12)  # where it was
    assert "axes ['1', '2', '3'] are not referenced; check did not reference them" in out
    assert "A scan or the GUI's connect will reference them first" in out
    assert "every instrument answers" in out


def test_a_silent_instrument_is_named_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "sim.toml"
    text = PROFILE.read_text().replace("disconnected = []", 'disconnected = ["GPIB0::22::INSTR"]')
    profile.write_text(text)
    assert main(["check", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "fluxgate (dmm_fluxgate at GPIB0::22::INSTR) does not answer" in err
    assert "Traceback" not in err


def test_a_missing_profile_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--profile", str(tmp_path / "nope.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def real_profile(tmp_path: Path, addresses: dict[str, str]) -> Path:
    """The simulator profile as a real rig reached at `addresses` (profile address -> new)."""
    text = PROFILE.read_text()
    text = text.replace("simulated = true", "simulated = false")
    text = text[: text.index("[simulation]")]
    text = re.sub(r"(?m)^#.*\n", "", text)
    for old, new in addresses.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def test_check_through_real_transports_against_serve_sim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(PROFILE, time_scale=100.0) as next_line:
        resources = read_resources(next_line)
        served_at = {
            "GPIB0::8::INSTR": resources["lockin"],
            "ASRL1::INSTR": resources["stage"],
            "GPIB0::1::INSTR": resources["coil_x"],
            "GPIB0::2::INSTR": resources["coil_y"],
            "GPIB0::3::INSTR": resources["coil_z"],
            "GPIB0::22::INSTR": resources["fluxgate"],
        }
        monkeypatch.setenv("PYVISA_LIBRARY", "@py")
        assert main(["check", "--profile", str(real_profile(tmp_path, served_at))]) == 0
    printed = capsys.readouterr().out
    assert "every instrument answers" in printed and resources["lockin"] in printed


def test_check_names_an_unreachable_real_instrument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PYVISA_LIBRARY", "@py")
    path = real_profile(tmp_path, {"GPIB0::1::INSTR": f"TCPIP0::127.0.0.1::{port}::SOCKET"})
    assert main(["check", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    # every supply's address: the error that follows names the one that failed
    assert (f"coils (kepco_bop at TCPIP0::127.0.0.1::{port}::SOCKET, GPIB0::2::INSTR, "
            "GPIB0::3::INSTR) does not answer") in err
    # the coils are connected first: nothing was connected, nothing changed by check, and
    # what it could not look at is named
    assert ("smm-daq: nothing was moved or energised by this command; not checked: stage "
            "(pi_gcs at ASRL1::INSTR) not connected") in err
    assert "coils (kepco_bop at" in err and "may NOT be safe" not in err
    assert f"smm-daq safe --profile {path}" in err


def test_check_says_where_the_coil_matrix_comes_from(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A rig.calibration_file that does not exist is no error (the first calibration goes
    there), but a misspelt one would otherwise leave the nominal matrix in use unnoticed."""
    assert main(["check", "--profile", str(PROFILE)]) == 0
    assert "coil calibration: the profile's own matrix (no rig.calibration_file)" in \
        capsys.readouterr().out
    profile = tmp_path / "lab.toml"
    profile.write_text(PROFILE.read_text().replace(
        "simulated = true", 'simulated = true\ncalibration_file = "coils.tom"'))
    assert main(["check", "--profile", str(profile)]) == 0
    assert (f"coil calibration: the profile's own matrix: {tmp_path / 'coils.tom'} does not "
            "exist yet") in capsys.readouterr().out
