"""A σ typed into the MMT tab is the σ its run uses: the box held µT to 4 decimals, so a σ
below 0.05 nT became 0, which means "estimate σ from the residual", another statistical
model, without a word. The box now holds 1 pT; a number finer than that, which would read as
the box's special value ("from residual", "any", "auto"), is refused and said."""

from __future__ import annotations

import shlex

import pytest
from test_gui_mmt import WAIT_MS, write_cuboid_session
from test_gui_typed_numbers import mmt_tab, typed  # noqa: F401 (a fixture)

NT = 1e-9


def test_a_tiny_sigma_typed_is_the_sigma_the_run_uses(qtbot, mmt_tab, tmp_path):  # noqa: F811
    path, grains = write_cuboid_session(tmp_path)
    mmt_tab.registration.setChecked(False)
    mmt_tab.dragonfly.crop.setChecked(False)
    mmt_tab.set_file(path)
    mmt_tab.set_grain_file(grains)
    assert typed(qtbot, mmt_tab.sigma, "0.00004") == [("return",)]  # µT: 0.04 nT
    with qtbot.waitSignal(mmt_tab.finished, timeout=WAIT_MS) as done:
        assert mmt_tab.run()
    assert done.args[0], done.args[1]
    result = mmt_tab.result
    assert not result.sigma_from_residual
    assert result.sigma == pytest.approx(0.04 * NT, rel=1e-12)
    words = shlex.split(mmt_tab.made["command"])
    assert words[words.index("--sigma-nT") + 1] == "0.04"


@pytest.mark.parametrize(("box", "text", "special"), [
    ("sigma", "0.0000004", "from residual"), ("min_ssr", "4e-7", "any"),
    ("max_ratio", "0.0004", "any"), ("dragonfly.z_top", "-999999.9999", "auto")])
def test_a_number_finer_than_the_box_is_not_read_as_its_special_value(
        qtbot, mmt_tab, box, text, special):  # noqa: F811
    spin = mmt_tab
    for name in box.split("."):
        spin = getattr(spin, name)
    spin.setValue(1.0)
    assert typed(qtbot, spin, text) == [("refused", f"{text}{spin.suffix()}")]
    assert spin.value() == 1.0
    said = mmt_tab.status.text()
    assert said.startswith(f"'{text}") and f"would read as '{special}'" in said, said


@pytest.mark.parametrize(("box", "text", "taken"), [
    ("dragonfly.z_top", "-1000000.0001", -1e6), ("sigma", "-0.0000001", 0.0),
    ("sigma", "-0.0005", 0.0), ("min_ssr", "-0.0001", 0.0)])
def test_a_number_below_the_range_is_clamped_not_called_finer(
        qtbot, mmt_tab, box, text, taken):  # noqa: F811
    """A number below a minimum that means something else ("from residual", "auto") is
    clamped to it and said, as any below the range: not refused as finer than the box, nor
    taken as that minimum without a word where it lies within the box's float slack."""
    spin = mmt_tab
    for name in box.split("."):
        spin = getattr(spin, name)
    spin.setValue(1.0)
    assert typed(qtbot, spin, text) == [("clamped", float(text), taken), ("return",)]
    assert spin.value() == taken
