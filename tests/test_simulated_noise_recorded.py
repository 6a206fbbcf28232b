"""A simulated scan without a noise seed draws fresh noise, and records the base it drew
(`runs/noise_seed`, with its measurement's number on the connection): given back as the
profile's noise seed, it gives the same readings again."""

from __future__ import annotations

import h5py
import numpy as np
from test_simulated_repeats import COMPARED, SIMULATOR, _scan


def test_the_recorded_noise_base_given_back_reproduces_the_scan(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SMM_DAQ_SIM_NOISE_SEED")  # the suite's seed: none, as for a user
    first, again = tmp_path / "first.h5", tmp_path / "again.h5"
    _scan(SIMULATOR, first, "a", nx=3, ny=2)
    with h5py.File(first, "r") as f:
        runs = f["a/runs"]
        base, measurement = int(runs["noise_seed"][0]), int(runs["noise_measurement"][0])
    assert base >= 0 and measurement == 1  # a command's scan: its connection's first
    profile = tmp_path / "given.toml"
    text = SIMULATOR.read_text()
    assert text.count("\nseed = ") == 1
    profile.write_text(text.replace("\nseed = ", f"\nnoise_seed = {base}\nseed = "))
    _scan(profile, again, "a", nx=3, ny=2)
    with h5py.File(first, "r") as f, h5py.File(again, "r") as g:
        assert int(g["a/runs/noise_seed"][0]) == base
        for key in COMPARED:
            np.testing.assert_array_equal(f[f"a/data/{key}"][()], g[f"a/data/{key}"][()],
                                          err_msg=key)
