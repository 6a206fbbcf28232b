"""The synthetic sample's placement rule (seed 001 §2.1) in samples of any thickness."""

from __future__ import annotations

import numpy as np
import pytest

from smm_daq.analysis.mmt import synth

UM = 1e-6


def _boxes(sample: synth.SyntheticSample) -> tuple[np.ndarray, np.ndarray]:
    c = sample.grains.cuboids
    return c[:, :3] - c[:, 3:6] / 2, c[:, :3] + c[:, 3:6] / 2


@pytest.mark.parametrize("thickness_um", [4.0, 8.0, 9.99])
def test_a_sample_thinner_than_the_bottom_margin_holds_grains_inside_it(
        thickness_um: float) -> None:
    """The seed keeps grain tops 10 µm above the bottom; a thinner sample places them anywhere
    they fit (it raised numpy's 'high - low < 0')."""
    sample = synth.make_sample((40 * UM, 40 * UM), thickness_um * UM, 2e6,
                               np.random.default_rng(3))
    lo, hi = _boxes(sample)
    assert sample.grains.n_grains > 0
    assert np.all(lo[:, 2] >= -thickness_um * UM - 1e-12) and np.all(hi[:, 2] <= 1e-12)


def test_a_thick_samples_grain_tops_keep_the_seeds_bottom_margin() -> None:
    sample = synth.make_sample((40 * UM, 40 * UM), 30 * UM, 2e5, np.random.default_rng(4))
    _, hi = _boxes(sample)
    tops = [hi[sample.grains.grain == g, 2].max() for g in range(sample.grains.n_grains)]
    assert min(tops) >= -30 * UM + synth.BOTTOM_MARGIN - 1e-12
