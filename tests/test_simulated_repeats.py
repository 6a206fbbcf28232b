"""The simulator's repeated scans are real repeats: each measurement draws its own noise, so
`noise_from_repeats` measures the noise the profile configures, while a noise seed makes the
same commands give the same files."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from simulators.sample import VirtualSample
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.analysis.noise import noise_from_repeats
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.storage.nexus import read_map
from tests.conftest import REPO

C = 12.5e-3  # the grain, in the sample's frame
# The E-727 piezo stage needs no referencing at each connection, which on the C-884 took a
# fifth of each scan's time here; its sample sits at sample_offset_um on the stage.
SIMULATOR = REPO / "configs" / "simulator-e727.toml"
CENTRE = tuple(C + o * 1e-6 for o in load_profile(SIMULATOR).simulation["sample_offset_um"])
COMPARED = ("Bz", "lockin_x", "lockin_y", "line_field")  # what the rig measured


def _sample() -> VirtualSample:
    """One buried grain: microtesla at 100 µm, far above the noise, so the repeat's field
    cancels for real."""
    return VirtualSample(np.array([[C, C, -30e-6, 40e-6, 30e-6, 40e-6]]), np.array([0]),
                         remanence=np.array([[3e4, 1e4, 4e4]]), susceptibility=np.array([1.0]))


def _scan(profile_path: Path, path: Path, name: str, *, nx: int = 8, ny: int = 6) -> None:
    """One command's worth: connect, scan `name` into `path`, disconnect."""
    plan = ScanPlan.from_center(name, CENTRE, ((nx - 1) * 20e-6, (ny - 1) * 20e-6), 20e-6)
    with open_rig(load_profile(profile_path), world_options={"sample": _sample()}) as rig:
        assert Sequencer(rig, path, plan).run() == "finished"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A profile with a noise seed; with it, scans 'a' and then 'b' of the same area into one
    file, each by a connection of its own (as two `smm-daq scan` commands), and 'a' again,
    the same command, into another file."""
    folder = tmp_path_factory.mktemp("repeats")
    profile = folder / "seeded.toml"
    text = SIMULATOR.read_text()
    assert text.count("\nseed = ") == 1
    profile.write_text(text.replace("\nseed = ", "\nnoise_seed = 7\nseed = "))
    first, again = folder / "first.h5", folder / "again.h5"
    for path, name in ((first, "a"), (first, "b"), (again, "a")):
        _scan(profile, path, name)
    return profile, first, again


def test_two_repeats_differ_by_the_noise_the_profile_configures(seeded) -> None:
    profile, path, _ = seeded
    a, b = read_map(path, "a"), read_map(path, "b")
    # the profile states its noise as the RMS of one reading at its own time constant and
    # 12 dB/oct, which a step scan reads once per point (dwell 0) at 8 time constants apart
    sigma = load_profile(profile).simulation["noise_uT_rms"] * 1e-6  # T
    assert np.ptp(a.bz) > 20 * sigma  # a real field, which the repeat cancels
    assert not np.array_equal(a.bz, b.bz)
    n = a.bz.size
    sampling = sigma / math.sqrt(2 * (n - 1))  # SD of a sample SD of n Gaussian draws
    assert noise_from_repeats(a, b) == pytest.approx(sigma, abs=3.5 * sampling)


def test_the_same_noise_seed_and_command_give_the_same_measurement(seeded) -> None:
    _, first, again = seeded
    with h5py.File(first, "r") as f, h5py.File(again, "r") as g:
        for key in COMPARED:
            np.testing.assert_array_equal(f[f"a/data/{key}"][()], g[f"a/data/{key}"][()])


def test_without_a_noise_seed_each_session_draws_fresh_noise(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SMM_DAQ_SIM_NOISE_SEED")  # the suite's seed: none, as for a user
    for path in (tmp_path / "monday.h5", tmp_path / "tuesday.h5"):
        _scan(SIMULATOR, path, "a", nx=3, ny=2)
    monday, tuesday = read_map(tmp_path / "monday.h5", "a"), read_map(tmp_path / "tuesday.h5", "a")
    assert not np.any(monday.bz == tuesday.bz)
    np.testing.assert_allclose(monday.bz, tuesday.bz, atol=8 * 0.25e-6)  # the same field


def test_a_noise_seed_in_the_environment_that_is_no_number_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("SMM_DAQ_SIM_NOISE_SEED", "tuesday")
    with pytest.raises(InputError, match=r"SMM_DAQ_SIM_NOISE_SEED is 'tuesday'; expected a "
                                         r"whole number in \[0, 9223372036854775807\]"):
        open_rig(load_profile(SIMULATOR))
