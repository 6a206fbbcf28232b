"""`smm-daq calibrate-coils` on the simulated rig: stores a calibration that nulls the field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from served_rig import simulators_made

from simulators.emulator import Emulator
from smm_daq.cli.main import main
from smm_daq.clock import VirtualClock
from smm_daq.instruments import rig as rig_module
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import simulator_class

SIMULATOR = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


def write_profile(tmp_path: Path, *, calibration_file: str | None, fluxgate: bool = True) -> Path:
    text = SIMULATOR.read_text(encoding="utf-8")
    if calibration_file is not None:
        text = text.replace(
            "simulated = true", f'simulated = true\ncalibration_file = "{calibration_file}"'
        )
    if not fluxgate:
        text = re.sub(r"\[fluxgate\].*?(?=\n\[)", "", text, flags=re.S)
    # A world whose coils and field differ from the profile's nominal values, read by an
    # imperfect fluxgate: calibration has work to do.
    world = {
        "coil_matrix_error": "0.03",
        "ambient_field_uT": "[14.2, 0.8, -48.5]",
        "fluxgate_noise_nT_rms": "2.0",
        "fluxgate_scale_error": "0.005",
        "fluxgate_orthogonality_deg": "0.2",
        "fluxgate_offset_nT": "[5.0, -3.0, 8.0]",
    }
    for key in world:
        text = re.sub(rf"(?m)^{key} = .*$", "", text)
    text = text.replace(
        "[simulation]\n",
        "[simulation]\n" + "".join(f"{key} = {value}\n" for key, value in world.items()),
    )
    path = tmp_path / "rig.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_calibrates_stores_where_the_profile_says_and_the_stored_file_nulls_the_field(
    tmp_path, capsys
):
    profile_path = write_profile(tmp_path, calibration_file="coils.toml")
    nominal = load_profile(profile_path).coils.calibration
    assert main(["calibrate-coils", "--profile", str(profile_path)]) == 0
    out = capsys.readouterr().out
    assert f"stored in {tmp_path / 'coils.toml'}" in out
    nulled = float(re.search(r"nulled field: ([0-9.e+-]+) nT", out).group(1))
    assert nulled < 10.0
    assert "fit residual" in out

    stored = tomllib.loads((tmp_path / "coils.toml").read_text(encoding="utf-8"))
    assert set(stored) == {"calibration_T_per_A", "ambient_field_uT", "fitted_at", "residual_nT"}
    profile = load_profile(profile_path)  # the overlay now applies
    fitted = np.array(stored["calibration_T_per_A"])
    np.testing.assert_array_equal(profile.coils.calibration, fitted)
    assert not np.allclose(fitted, nominal, rtol=1e-3, atol=0)  # the 3 % errors were seen

    # The same simulated world again (same profile, same seed): drive the currents the stored
    # calibration says null the field, through the nominal calibration the coils were built
    # with, and read the fluxgate.
    from smm_daq.instruments.rig import open_rig

    write_profile(tmp_path, calibration_file=None)
    original = load_profile(profile_path)
    null = np.linalg.solve(fitted, -np.array(stored["ambient_field_uT"]) * 1e-6)
    with open_rig(original) as rig:
        rig.coils.set_field(original.coils.calibration @ null + original.coils.ambient_field)
        reading = np.mean([rig.fluxgate.read_field() for _ in range(20)], axis=0)
        assert np.linalg.norm(reading) < 10e-9
        rig.coils.zero()


def test_out_overrides_and_a_profile_without_a_file_only_prints(tmp_path, capsys):
    profile_path = write_profile(tmp_path, calibration_file=None)
    assert main(["calibrate-coils", "--profile", str(profile_path)]) == 0
    printed = capsys.readouterr()
    assert "not stored" in printed.out
    assert printed.err.endswith("smm-daq: the rig is safe (coils at their safe state, stage "
                                "stopped)\n")  # as every command that drives the rig ends
    target = tmp_path / "elsewhere.toml"
    assert main(["calibrate-coils", "--profile", str(profile_path), "--out", str(target)]) == 0
    assert target.exists()


def test_profile_without_fluxgate_exits_2_with_a_clear_message(tmp_path, capsys):
    profile_path = write_profile(tmp_path, calibration_file=None, fluxgate=False)
    assert main(["calibrate-coils", "--profile", str(profile_path)]) == 2
    err = capsys.readouterr().err
    assert "no [fluxgate] section" in err and str(profile_path) in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--time-scale", "-1"], "--time-scale is -1.0"),
        (["--out", "/nonexistent-dir/coils.toml"], "no directory /nonexistent-dir"),
    ],
)
def test_bad_options_exit_2_before_anything_moves(tmp_path, capsys, extra, message):
    profile_path = write_profile(tmp_path, calibration_file=None)
    assert main(["calibrate-coils", "--profile", str(profile_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_the_stage_is_never_referenced_nor_moved(tmp_path, monkeypatch):
    """The C-884 profile references its stage at a scan's connect (a reference move drives
    every axis, z included, to its switch); calibrating the coils needs the stage nowhere, so
    its controller hears no FRF and no move, and the axes stay unreferenced where they were."""
    profile_path = write_profile(tmp_path, calibration_file=None)
    profile = load_profile(profile_path)
    assert profile.stage.reference_on_connect
    heard: list[str] = []

    def listened(backend, p) -> None:
        emulator = backend.endpoint(p.stage.link.address)
        handle, handle_byte = emulator.handle, emulator.handle_byte

        def handle_heard(message: str) -> str | None:
            heard.append(message)
            return handle(message)

        def byte_heard(code: int) -> str | None:
            heard.append(f"#{code}")
            return handle_byte(code)

        emulator.handle, emulator.handle_byte = handle_heard, byte_heard

    start = simulator_class(profile)(profile, VirtualClock(), None).world.stage.sample_position()
    made = simulators_made(monkeypatch, listened)
    assert main(["calibrate-coils", "--profile", str(profile_path)]) == 0
    assert heard, "the stage was not connected"
    moves = [m for m in heard if m.split()[0].upper() in ("FRF", "FNL", "FPL", "MOV", "MVR")]
    assert not moves, moves
    model = made[0].world.stage
    assert not any(model.referenced(ax) for ax in ("1", "2", "3"))
    np.testing.assert_allclose(model.sample_position(), start, atol=1e-12)


class GoesSilent(Emulator):
    """An instrument that answers its first `answered` messages, then none."""

    def __init__(self, inner: Emulator, answered: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.left = answered

    def handle(self, message: str) -> str | None:
        reply = self.inner.handle(message)
        self.left -= 1
        return reply if self.left >= 0 else None


def test_a_calibration_that_fails_is_made_safe_within_the_make_safe_paths_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The fluxgate goes silent while the coils drive a calibration step: the coils are made
    safe by the bounded path alone (`Rig.make_safe`, its deadline monkeypatched to 0 s here:
    each supply switched off where it stands, at its step's current), not first ramped down
    outside it, which added a ramp-down's time, unbounded by the deadline, to the path's."""
    monkeypatch.setattr(rig_module, "safe_deadline", lambda profile: 0.0)
    profile_path = write_profile(tmp_path, calibration_file=None)

    def silent_fluxgate(backend: Any, profile: Any) -> None:
        address = profile.fluxgate.link.address
        fluxgate = GoesSilent(backend.endpoint(address), 60)
        endpoint = backend.endpoint
        backend.endpoint = lambda a: fluxgate if a == address else endpoint(a)

    simulators_made(monkeypatch, silent_fluxgate)
    assert main(["calibrate-coils", "--profile", str(profile_path)]) != 0
    err = capsys.readouterr().err
    at = [float(a) for a in re.findall(r"switched off at (-?\d+\.\d{4}) A \(deadline "
                                       r"reached\)", err)]
    assert at and max(abs(a) for a in at) > 0.1, err  # where the calibration's step left it
