"""The MMT tab's Dragonfly row sets the crop's saturation magnetization as
`--crop-magnetization-kA-per-m` does: magnetite's by default, the value chosen (e.g. iron's)
in the options, the recorded command and the description of a result."""

from __future__ import annotations

from dataclasses import replace

from gui.dragonfly_options import CROP_TO_SCAN, DragonflyOptionsRow, describe
from smm_daq.cli.main import build_parser


def test_the_row_sets_the_saturation_of_the_crop(qtbot) -> None:
    row = DragonflyOptionsRow()
    qtbot.addWidget(row)
    assert not row.saturation.isEnabled()  # only with the crop
    row.crop.setChecked(True)
    assert row.saturation.isEnabled()
    assert row.options().crop_magnetization == 480e3
    assert row.arguments() == ["--crop-to-scan"]  # the default is not spelt out
    row.saturation.setValue(1710)
    options = row.options()
    assert options.crop == CROP_TO_SCAN and options.crop_magnetization == 1710e3
    args = build_parser().parse_args(["mmt", "invert", "s.h5", "--entry", "scan", "--grains",
                                      "cc.csv", "--grain-format", "dragonfly", "--out", "r.csv",
                                      *row.arguments()])
    assert args.crop_to_scan and args.crop_magnetization_kA_per_m == 1710
    cropped = replace(options, crop=(0.0, 50e-6, 0.0, 40e-6), crop_noise=250e-9)
    assert "(x 0–50 µm, y 0–40 µm, σ 250 nT, magnetized to 1710 kA/m at most)" \
        in describe(cropped)
