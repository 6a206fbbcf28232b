"""The MMT tab's registration of the grains onto the scan, as `smm-daq mmt invert`'s
--grains-shift-um, --grains-rotation-deg and --grains-rotation-origin-um: a collapsible group
(unticked, the grains are taken as read). The registration is parsed from the very arguments
the tab records (`cli.mmt_models.grain_registration`), so the recorded command makes it again.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from gui.number_boxes import ClampingSpinBox
from smm_daq.analysis.mmt.registration import GrainRegistration
from smm_daq.cli.mmt_models import MAX_SHIFT_UM, grain_registration

UM = 1e-6


def describe_registration(reg: GrainRegistration) -> str:
    """The registration in words, e.g. "grains turned 30° about (3, 5) µm, then shifted by
    (7, -4, 1.5) µm"."""
    dx, dy, dz = (v / UM for v in reg.shift)
    ox, oy = (v / UM for v in reg.origin)
    return (f"grains turned {reg.rotation_deg:g}° about ({ox:g}, {oy:g}) µm, then shifted by "
            f"({dx:g}, {dy:g}, {dz:g}) µm")


def _length_box(tip: str) -> ClampingSpinBox:
    box = ClampingSpinBox()
    box.setRange(-MAX_SHIFT_UM, MAX_SHIFT_UM)
    box.setDecimals(3)
    box.setSuffix(" µm")
    box.setToolTip(tip)
    return box


def _numbers(values: list[float]) -> str:
    return ",".join(repr(float(v)) for v in values)


class RegistrationGroup(QtWidgets.QGroupBox):
    """Shift (x, y, z in µm, z up) and turn (degrees, counter-clockwise seen from above, about
    an origin in µm of the grain file's frame) of the grains, turned before shifted."""

    changed = QtCore.pyqtSignal()  # the registration chosen may have changed

    def __init__(self) -> None:
        super().__init__("Registration: grains in another frame than the scan's")
        self.setCheckable(True)
        self.setChecked(False)
        self.setToolTip("Bring the grain file's frame (a micro-CT's) into the scan's before any "
                        "crop: turned about the vertical through the origin, then shifted")
        self.dx = _length_box("added to every grain's x")
        self.dy = _length_box("added to every grain's y")
        self.dz = _length_box("added to every grain's z (z up)")
        self.rotation = ClampingSpinBox()
        self.rotation.setRange(-360.0, 360.0)
        self.rotation.setDecimals(4)
        self.rotation.setSuffix(" °")
        self.rotation.setToolTip("turn about the vertical, counter-clockwise seen from above "
                                 "(+x towards +y); cuboid grains under the cuboid model: 0, 90, "
                                 "180 or 270")
        self.ox = _length_box("x of the point the grains turn about (grain file's frame)")
        self.oy = _length_box("y of the point the grains turn about (grain file's frame)")
        self.body = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.body)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (QtWidgets.QLabel("shift x"), self.dx, QtWidgets.QLabel("y"), self.dy,
                  QtWidgets.QLabel("z"), self.dz, QtWidgets.QLabel("then: turned"),
                  self.rotation, QtWidgets.QLabel("about x"), self.ox, QtWidgets.QLabel("y"),
                  self.oy):
            row.addWidget(w)
        row.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.body)
        self.body.setVisible(False)  # collapsed while unticked
        self.toggled.connect(self.body.setVisible)
        self.rotation.valueChanged.connect(self._origin_matters)
        self._origin_matters(self.rotation.value())
        self.toggled.connect(lambda _on: self.changed.emit())
        for box in (self.dx, self.dy, self.dz, self.rotation, self.ox, self.oy):
            box.valueChanged.connect(lambda _value: self.changed.emit())

    def _origin_matters(self, degrees: float) -> None:
        for box in (self.ox, self.oy):
            box.setEnabled(degrees != 0)

    def arguments(self) -> list[str]:
        """The registration as the command line's arguments ([] unticked or all zero); the
        `=` form, as a negative value would otherwise read as an option."""
        if not self.isChecked():
            return []
        shift = [self.dx.value(), self.dy.value(), self.dz.value()]
        out = []
        if any(shift):
            out.append(f"--grains-shift-um={_numbers(shift if shift[2] else shift[:2])}")
        if self.rotation.value() != 0:
            out.append(f"--grains-rotation-deg={self.rotation.value()!r}")
            origin = [self.ox.value(), self.oy.value()]
            if any(origin):
                out.append(f"--grains-rotation-origin-um={_numbers(origin)}")
        return out

    def registration(self) -> GrainRegistration:
        """The registration chosen, parsed from `arguments` as the command line parses them;
        InputError as it says it."""
        given: dict[str, str] = dict(a.split("=", 1) for a in self.arguments())
        angle = given.get("--grains-rotation-deg")
        return grain_registration(given.get("--grains-shift-um"),
                                  None if angle is None else float(angle),
                                  given.get("--grains-rotation-origin-um"))
