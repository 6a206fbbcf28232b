"""Stop (and Esc) while the window connects a C-884 stage whose axes it references
(`stage.reference_on_connect = true`): there is no rig yet, but the reference move stops short
of the reference switches, and the connect fails saying so, the rig left safe."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from PyQt6 import QtCore, QtWidgets
from PyQt6.QtTest import QTest
from test_gui_operator_keys import esc_in_the_modal

from drivers.pi_gcs import PIGCSStage
from gui.main_window import MainWindow
from smm_daq.instruments.profile import load_profile

WAIT_S = 60.0  # generous: the whole suite shares two cores


class ReferenceGate:
    """Holds the connect's first poll of its reference move (`FRF?` while referencing) until
    `go`, so the operator's Stop lands while the stage surely drives to its switches; keeps
    the stage's emulated model and the positions when held."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held, self.go = threading.Event(), threading.Event()
        self.model: Any = None
        self.axes: tuple[str, ...] = ()
        self.at_hold: dict[str, float] = {}
        query = PIGCSStage._query_axes

        def gated(stage: PIGCSStage, command: str, *args: Any, **kwargs: Any) -> Any:
            if command == "FRF?" and stage._referencing and not self.held.is_set():
                emulator = stage.link.transport.emulator  # type: ignore[attr-defined]
                self.model = getattr(emulator, "inner", emulator).model  # under the world's sync
                self.axes = stage.axes
                self.at_hold = {ax: self.model.position(ax) for ax in self.axes}
                self.held.set()
                assert self.go.wait(WAIT_S)
            return query(stage, command, *args, **kwargs)

        monkeypatch.setattr(PIGCSStage, "_query_axes", gated)

    def switch(self, ax: str) -> float:
        lo, hi = self.model.limits(ax)
        return (lo + hi) / 2  # the simulator's reference switches are mid travel


@pytest.fixture
def unconnected(qtbot, settings) -> Iterator[MainWindow]:
    """The main window on the simulator profile (a C-884 referenced at connect), shown, not
    connected."""
    w = MainWindow(load_profile(), settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.holder.close()


@pytest.mark.parametrize("how", ["Stop button", "Esc", "Esc in a dialog"])
def test_stop_during_the_connects_reference_move_stops_it_short_and_fails_the_connect(
        unconnected, qtbot, monkeypatch, how) -> None:
    window, panel, holder = unconnected, unconnected.instruments, unconnected.holder
    assert window.profile.stage.reference_on_connect
    gate = ReferenceGate(monkeypatch)
    panel.connect_rig()
    qtbot.waitUntil(gate.held.is_set, timeout=int(WAIT_S * 1000))
    moving = [ax for ax in gate.axes if gate.model.moving(ax)]
    assert moving  # the reference move is under way
    assert holder.rig is None and holder.connecting
    failed: list[str] = []
    holder.failed.connect(failed.append)
    if how == "Esc":
        QTest.keyClick(window, QtCore.Qt.Key.Key_Escape)
    elif how == "Esc in a dialog":  # a dialog that takes Esc for itself is up
        _, seen = esc_in_the_modal(
            qtbot, lambda: QtWidgets.QMessageBox.warning(window, "smm-daq", "Look."))
        assert seen == ["QMessageBox"], seen
    else:
        qtbot.mouseClick(panel.stop_button, QtCore.Qt.MouseButton.LeftButton)
    gate.go.set()
    qtbot.waitUntil(lambda: not holder.connecting, timeout=int(WAIT_S * 1000))
    assert failed, "the connect opened the rig: its reference move ran to its end"
    why = failed[0]
    assert "reference move" in why and "stopped by the operator" in why, why
    assert "the rig is safe (coils at their safe state, stage stopped)" in why, why
    assert "Could not open the rig" in panel.message.text()
    assert "stopped by the operator" in panel.message.text()
    assert holder.rig is None and not holder.connecting
    for ax in moving:
        assert not gate.model.moving(ax), ax
        assert not gate.model.referenced(ax), ax
        now, switch = gate.model.position(ax), gate.switch(ax)
        assert abs(now - switch) > 1e-6, (ax, now, switch)  # stopped short of the switch
        # on its way from where it was held towards the switch, not past it
        assert abs(now - switch) <= abs(gate.at_hold[ax] - switch) + 1e-9, ax
    assert not panel.stop_button.isEnabled()  # no rig, no connect: nothing to stop
