"""`mmt synth`'s directions: uniform on the sphere by default, seed 001 §2.1.2's draw (θ
uniform in (0, π)) on request, each checked against its distribution within sampling error."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import h5py
import numpy as np
import pytest

from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.study.grid import StudySpec
from smm_daq.cli.main import main

N = 200_000


def _within(values: np.ndarray, expected: float) -> None:
    """The mean of `values` within 5 standard errors of `expected`."""
    se = values.std() / math.sqrt(values.size)
    assert abs(values.mean() - expected) < 5 * se, (values.mean(), expected, se)


@pytest.mark.parametrize(("draw", "cos2", "theta_var"), [
    # uniform on the sphere: cos θ ~ U(-1, 1), so E cos²θ = 1/3, var θ = π²/4 − 2
    ("uniform-sphere", 1 / 3, math.pi**2 / 4 - 2),
    # θ ~ U(0, π): E cos²θ = 1/2, var θ = π²/12
    ("uniform-theta", 1 / 2, math.pi**2 / 12)])
def test_each_direction_draw_has_its_distribution(draw, cos2, theta_var):
    d = synth.draw_directions(np.random.default_rng(7), N, draw)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-12)
    theta = np.arccos(np.clip(d[:, 2], -1, 1))
    phi = np.arctan2(d[:, 1], d[:, 0])
    _within(d[:, 2], 0.0)  # E cos θ = 0 for both
    _within(theta, math.pi / 2)
    _within(d[:, 2] ** 2, cos2)
    _within((theta - math.pi / 2) ** 2, theta_var)
    _within(np.cos(phi), 0.0)  # the azimuth uniform: no x-y direction favoured
    _within(np.sin(phi), 0.0)


def test_synth_draws_the_seeds_directions_when_asked(tmp_path):
    """--directions uniform-theta reaches the sample (the same grains, placed before the
    directions are drawn, magnetized otherwise) and is recorded; the default is recorded too."""
    made, grains = {}, {}
    for draw in ("uniform-sphere", "uniform-theta"):
        out = tmp_path / f"{draw}.h5"
        truth = tmp_path / f"{draw}.csv"
        chosen = ["--directions", draw] if draw != "uniform-sphere" else []
        assert main(["mmt", "synth", "--out", str(out), "--name", "scan", "--size-um", "60,60",
                     "--thickness-um", "10", "--density-per-mm3", "2e6", "--step-um", "2",
                     "--model", "dipole", "--grains-out", str(tmp_path / f"{draw}.txt"),
                     "--truth-out", str(truth), "--seed", "4", *chosen]) == 0
        with truth.open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        made[draw] = np.array([[float(r[f"m{a}_A_per_m"]) for a in "xyz"] for r in rows])
        grains[draw] = (tmp_path / f"{draw}.txt").read_text(encoding="utf-8")
        with h5py.File(out, "r") as f:
            assert f["scan/process/parameters/directions"][()].decode() == draw
    assert len(made["uniform-sphere"]) > 10
    assert grains["uniform-sphere"] == grains["uniform-theta"]
    assert not np.allclose(made["uniform-sphere"], made["uniform-theta"])


def test_the_study_draws_as_asked(capsys):
    """`mmt study --directions uniform-theta` reaches each sample: the same grains, their
    magnetizations of the same strengths pointing otherwise."""
    spec = StudySpec(surfaces_um=(40.0,), thicknesses_um=(10.0,), densities_per_mm3=(2e6,),
                     intervals_um=(1,), noise_nT=(5.0,), repeats=1, directions="uniform-theta")
    (sample,) = spec.samples()
    assert sample.directions == "uniform-theta"
    grains, m = synth.study_sample(sample, sample.rng())
    default = replace(sample, directions="uniform-sphere")
    grains0, m0 = synth.study_sample(default, default.rng())
    np.testing.assert_array_equal(grains.cuboids, grains0.cuboids)
    np.testing.assert_allclose(np.linalg.norm(m, axis=1), np.linalg.norm(m0, axis=1))
    assert not np.allclose(m, m0)
    with pytest.raises(SystemExit):
        main(["mmt", "study", "--help"])
    assert "--directions {uniform-sphere,uniform-theta}" in capsys.readouterr().out
