"""The simulated world's true coils come from the profile as written, not from a calibration.

Otherwise every `calibrate-coils` run would move the truth it had just measured, and the next
simulated session would start miscalibrated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulators.backend import SimulatedBackend
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import parse_profile


def _true_coils(profile_text: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    backend = SimulatedBackend(parse_profile(profile_text, path), VirtualClock())
    coils = backend.world.coils
    return coils.calibration.copy(), np.asarray(coils.ambient, dtype=float).copy()


def test_stored_calibration_does_not_move_the_simulated_truth(repo: Path, tmp_path: Path) -> None:
    text = (repo / "configs" / "simulator.toml").read_text()
    before = _true_coils(text, tmp_path / "sim.toml")
    (tmp_path / "coils.toml").write_text(
        "calibration_T_per_A = [[4e-5, 0, 0], [0, 6e-5, 0], [0, 0, 5.5e-5]]\n"
        "ambient_field_uT = [3.0, -2.0, 1.0]\n"
    )
    calibrated = text.replace(
        "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"'
    )
    profile = parse_profile(calibrated, tmp_path / "sim.toml")
    np.testing.assert_allclose(np.diag(profile.coils.calibration), [4e-5, 6e-5, 5.5e-5])
    after = _true_coils(calibrated, tmp_path / "sim.toml")
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
