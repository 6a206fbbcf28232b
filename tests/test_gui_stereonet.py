"""The equal-area net: conventions checked on known directions and the equal-area property."""

from __future__ import annotations

import numpy as np
import pytest

from gui.stereonet import Stereonet, declination_inclination, equal_area
from smm_daq.analysis.mmt.solver.stats import direction


def test_known_directions():
    m = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0], [0, 1, -1], [-1, 0, 1]], float)
    dec, inc = declination_inclination(m)
    assert dec[1:3] == pytest.approx([0.0, 90.0])
    assert inc == pytest.approx([90.0, 0.0, 0.0, 45.0, -45.0])
    x, y, down = equal_area(m)
    assert (x[0], y[0]) == pytest.approx((0.0, 0.0))  # straight down: centre
    assert (x[1], y[1]) == pytest.approx((0.0, 1.0))  # north, horizontal: top of the rim
    assert (x[2], y[2]) == pytest.approx((1.0, 0.0))  # east, horizontal: right of the rim
    r45 = np.sqrt(2) * np.sin(np.radians(22.5))
    assert (x[3], y[3]) == pytest.approx((0.0, r45))
    assert (x[4], y[4]) == pytest.approx((-r45, 0.0))  # west and up: same radius, open symbol
    assert list(down) == [True, True, True, True, False]


def test_the_result_table_gives_the_directions_the_net_draws():
    """The CSV's and the result entry's declination and inclination are the ones plotted."""
    m = np.random.default_rng(2).normal(size=(200, 3))
    net_dec, net_inc = declination_inclination(m)
    dec, _, inc, _ = direction(m, np.repeat(np.eye(3)[None], m.shape[0], axis=0))
    assert dec == pytest.approx(net_dec) and inc == pytest.approx(net_inc)


def test_uniform_directions_fill_the_net_uniformly():
    """Equal area: for isotropic directions, the fraction inside radius r is r²."""
    rng = np.random.default_rng(5)
    m = rng.normal(size=(40000, 3))
    x, y, _ = equal_area(m)
    r = np.hypot(x, y)
    for radius in (0.3, 0.5, 0.8, 0.95):
        assert np.mean(r < radius) == pytest.approx(radius**2, abs=0.01)


def test_widget_splits_hemispheres(qtbot):
    net = Stereonet()
    qtbot.addWidget(net)
    net.set_directions(np.array([[0, 0, -1], [0, 0, 1], [1, 0, -0.1]]), ["a", "b", "c"])
    assert sorted(net.lower.data["data"]) == ["a", "c"]
    assert list(net.upper.data["data"]) == ["b"]
    net.set_directions(np.zeros((0, 3)))
    assert len(net.lower.data) == 0
