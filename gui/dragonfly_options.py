"""The micro-CT workflow's options for reading Dragonfly exports, as the MMT tab sets them.

One row of controls (`DragonflyOptionsRow`) gives `DragonflyOptions` with the command line's
meaning (its crop to the scan, and the crop's saturation, for point lists and NPZ particles
too); "only grains under the scan" is the placeholder `CROP_TO_SCAN` until the map whose
window it means is known (`for_map`), so the MMT tab's inversion and the Session tab's
grain outlines read a file alike. `describe` says in words what options were (or will be)
applied, where the row itself is not on show.
"""

from __future__ import annotations

from dataclasses import replace

from PyQt6 import QtCore, QtWidgets

from gui.number_boxes import ClampingSpinBox, CountBox
from smm_daq.analysis.mmt.formats.dragonfly import (
    CROP_MAGNETIZATION,
    MAX_CROP_MAGNETIZATION,
    DragonflyOptions,
    scan_crop,
)
from smm_daq.analysis.mmt.formats.grains import POINT_FORMATS
from smm_daq.storage.mapdata import MapData

# DragonflyOptions.crop placeholder: the scan's window, known once its map is read
CROP_TO_SCAN = (0.0, 0.0, 0.0, 0.0)
Z_TOP_AUTO_UM = -1e6  # the z-top box's minimum, shown as "auto"


def for_map(options: DragonflyOptions, m: MapData | None) -> DragonflyOptions:
    """`options` with CROP_TO_SCAN made the crop of grains under map `m` (the Session tab's
    outlines), as the command line's `--crop-to-scan` does (`dragonfly.scan_crop`); with no
    map, every grain is kept. (The MMT tab crops as the inversion does:
    `grain_shaping.shaped_grains`.)"""
    if options.crop != CROP_TO_SCAN:
        return options
    if m is None:
        return replace(options, crop=None)
    return replace(options, **scan_crop([m]))  # type: ignore[arg-type]


def chosen_magnetization(options: DragonflyOptions) -> float | None:
    """The crop's saturation magnetization (A/m) where one other than magnetite's is chosen,
    as the command line's `--crop-magnetization-kA-per-m` gives it; else None (the default,
    not spelt out)."""
    m = options.crop_magnetization
    return None if options.crop is None or m == CROP_MAGNETIZATION else m


def describe(options: DragonflyOptions) -> str:
    """The options in words, e.g. "min voxels 5, sample top auto, z axis up, only grains
    whose field could reach the scan's sensors (x -15–70 µm, y -15–50 µm, σ 250 nT)"; a crop
    of no noise (results made before it was recorded) "only grains under the scan (x 0–55 µm,
    y 0–35 µm)"."""
    top = ("auto (the top of the highest grain)" if options.z_top_mm is None
           else f"at CT z {options.z_top_mm * 1e3:g} µm")
    return (f"min voxels {options.min_voxels}, sample top {top}, "
            f"z axis {'down' if options.z_down else 'up'}, {describe_crop(options)}")


def describe_crop(options: DragonflyOptions) -> str:
    """The crop alone in words, e.g. "only grains under the scan (x 0–55 µm, y 0–35 µm)", as
    a point list's or NPZ particles' saved result records it."""
    if options.crop is None:
        return "every grain"
    if options.crop == CROP_TO_SCAN:
        return "only grains under the scan"
    x0, x1, y0, y1 = (v * 1e6 for v in options.crop)
    where = f"x {x0:g}–{x1:g} µm, y {y0:g}–{y1:g} µm"
    saturation = ("" if options.crop_magnetization == CROP_MAGNETIZATION else
                  f", magnetized to {options.crop_magnetization / 1e3:g} kA/m at most")
    return (f"only grains whose field could reach the scan's sensors ({where}, σ "
            f"{options.crop_noise * 1e9:.4g} nT{saturation})" if options.crop_noise > 0
            else f"only grains under the scan ({where})")


class DragonflyOptionsRow(QtWidgets.QWidget):
    """The micro-CT workflow's options for Dragonfly exports, as `--min-voxels`,
    `--z-top-um`, `--z-down`, `--crop-to-scan` and `--crop-magnetization-kA-per-m` on the
    command line; the crop (and its saturation) for point lists and NPZ particles too."""

    changed = QtCore.pyqtSignal()  # any option changed

    def __init__(self) -> None:
        super().__init__()
        self.min_voxels = CountBox()
        self.min_voxels.setRange(1, 10**9)
        self.min_voxels.setToolTip("drop components of fewer voxels (1: keep all)")
        self.z_top = ClampingSpinBox()
        self.z_top.setRange(Z_TOP_AUTO_UM, 1e6)
        self.z_top.setDecimals(3)
        self.z_top.setSuffix(" µm")
        self.z_top.setSpecialValueText("auto")
        self.z_top.setValue(Z_TOP_AUTO_UM)
        self.z_top.setToolTip("CT z of the sample top (auto: the top of the highest grain)")
        self.z_down = QtWidgets.QCheckBox("z axis points down")
        self.crop = QtWidgets.QCheckBox("only grains under the scan")
        self.saturation = ClampingSpinBox()
        self.saturation.setRange(1.0, MAX_CROP_MAGNETIZATION / 1e3)
        self.saturation.setDecimals(0)
        self.saturation.setSuffix(" kA/m")
        self.saturation.setValue(CROP_MAGNETIZATION / 1e3)
        self.saturation.setEnabled(False)
        self.saturation.setToolTip("the most any grain could be magnetized, the crop's reach: "
                                   "480 kA/m magnetite, 1710 kA/m iron")
        self.crop.toggled.connect(self.saturation.setEnabled)
        # the Dragonfly reader's own options; the crop is for every point format
        self.dragonfly_part = QtWidgets.QWidget()
        part = QtWidgets.QHBoxLayout(self.dragonfly_part)
        part.setContentsMargins(0, 0, 0, 0)
        for w in (QtWidgets.QLabel("Dragonfly: min voxels"), self.min_voxels,
                  QtWidgets.QLabel("sample top"), self.z_top, self.z_down):
            part.addWidget(w)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (self.dragonfly_part, self.crop, QtWidgets.QLabel("saturation"),
                  self.saturation):
            row.addWidget(w)
        row.addStretch(1)
        self.min_voxels.valueChanged.connect(self.changed)
        self.z_top.valueChanged.connect(self.changed)
        self.z_down.toggled.connect(self.changed)
        self.crop.toggled.connect(self.changed)
        self.saturation.valueChanged.connect(self.changed)

    def options(self) -> DragonflyOptions:
        """The options chosen; `crop` is CROP_TO_SCAN when the scan's window is wanted."""
        z_top = self.z_top.value()
        return DragonflyOptions(
            min_voxels=self.min_voxels.value(),
            z_top_mm=None if z_top == Z_TOP_AUTO_UM else z_top * 1e-3,
            z_down=self.z_down.isChecked(),
            crop=CROP_TO_SCAN if self.crop.isChecked() else None,
            crop_magnetization=self.saturation.value() * 1e3)

    def set_grain_format(self, fmt: str) -> None:
        """Offer the options that apply to grains of format `fmt`: the crop for point grains
        (points, mpe, dragonfly), the reader's options for Dragonfly exports alone."""
        self.setVisible(fmt in POINT_FORMATS)
        self.dragonfly_part.setVisible(fmt == "dragonfly")

    def arguments(self) -> list[str]:
        """The same options as the command line's arguments."""
        o = self.options()
        return ((["--min-voxels", str(o.min_voxels)] if o.min_voxels != 1 else [])
                + (["--z-top-um", repr(o.z_top_mm * 1e3)] if o.z_top_mm is not None else [])
                + (["--z-down"] if o.z_down else []) + self.crop_arguments())

    def crop_arguments(self) -> list[str]:
        """The crop to the scans as the command line's arguments, for any point format."""
        o = self.options()
        chosen = chosen_magnetization(o)
        return ((["--crop-to-scan"] if o.crop is not None else [])
                + (["--crop-magnetization-kA-per-m", f"{chosen / 1e3:g}"]
                   if chosen is not None else []))
