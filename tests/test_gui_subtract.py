"""The Session tab subtracts two chosen entries into a new induced entry."""

from __future__ import annotations

import numpy as np
import pytest

from gui.session_browser import SessionBrowser
from gui.subtract_dialog import SubtractDialog, unused_name
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

UM = 1e-6
UT = 1e-6


def bump_map(name: str, centre_um: tuple[float, float], amplitude: float, field=(0, 0, 0),
             n: int = 48) -> MapData:
    """A smooth field feature (Gaussian, 12 µm wide) on a 2 µm grid."""
    x = np.arange(n) * 2 * UM
    y = np.arange(n) * 2 * UM
    X, Y = np.meshgrid(x, y)
    r2 = (X - centre_um[0] * UM) ** 2 + (Y - centre_um[1] * UM) ** 2
    bz = amplitude * np.exp(-r2 / (2 * (12 * UM) ** 2))
    return MapData(bz=bz, x=x, y=y, height=20 * UM, sensor_size=(1 * UM, 1 * UM),
                   applied_field=np.array(field, float), name=name, title=name)


@pytest.fixture
def browser(qtbot, tmp_path):
    path = tmp_path / "s.h5"
    # The in-field scan: the same remanent feature, 3 µm to the right, plus an induced part.
    write_map_entry(path, bump_map("rem", (48, 48), 2 * UT), kind="scan")
    infield = bump_map("inf", (51, 48), 2 * UT, field=(0, 40 * UT, 0))
    infield = infield.with_bz(infield.bz + 0.1 * UT)
    write_map_entry(path, infield, kind="scan")
    b = SessionBrowser()
    qtbot.addWidget(b)
    b.open_file(path)
    return b


def test_dialog_offers_the_likely_pair_and_a_free_name(browser, qtbot) -> None:
    dialog = SubtractDialog(browser.entries)
    qtbot.addWidget(dialog)
    assert dialog.choice() == ("inf", "rem", "induced", True, False)
    assert unused_name("induced", {"induced", "induced_2"}) == "induced_3"


def test_registered_subtraction_removes_the_shift_and_shows_the_result(browser) -> None:
    assert browser.subtract("inf", "rem", "induced", register=True)
    info = {e.name: e for e in list_entries(browser.path)}["induced"]
    assert info.kind == "induced" and info.sources == ("inf", "rem")
    assert browser.map_view.map.name == "induced"
    induced = read_map(browser.path, "induced").bz
    centre = induced[12:36, 12:36]  # away from the edges the shift leaves uncovered
    np.testing.assert_allclose(centre[np.isfinite(centre)], 0.1 * UT, atol=0.02 * UT)
    assert "shifted by (3.0" in browser.map_view.plot.titleLabel.text


def test_unregistered_subtraction_is_the_plain_difference(browser) -> None:
    assert browser.subtract("inf", "rem", "plain", register=False)
    expected = read_map(browser.path, "inf").bz - read_map(browser.path, "rem").bz
    np.testing.assert_allclose(read_map(browser.path, "plain").bz, expected)


def test_a_refused_subtraction_is_reported_and_writes_nothing(browser, tmp_path) -> None:
    write_map_entry(browser.path, bump_map("small", (20, 20), 1 * UT, n=20), kind="scan")
    browser.refresh()
    names = [e.name for e in list_entries(browser.path)]
    assert not browser.subtract("inf", "small", "bad")
    assert browser.message.text()
    assert [e.name for e in list_entries(browser.path)] == names
    assert not browser.subtract("inf", "rem", "rem")  # an existing entry is never replaced
    assert "already exists" in browser.message.text()
