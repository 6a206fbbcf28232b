"""`smm-daq gui --demo`: the simulator's day in the window.

A recipe (zero field, a remanent scan, an in-field scan and their difference) on the
simulated sample; the session then shows the three maps side by side with the grains'
outlines (the simulated world's grains, written as a grain file), and the MMT tab inverts
the remanent scan with that grain file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PyQt6 import QtCore

from gui.grain_table import RATIO
from gui.main_window import MainWindow
from smm_daq.analysis.grains import CSV_COLUMNS

UM = 1e-6
REMANENT, IN_FIELD, INDUCED = "demo-remanent", "demo-in-field", "demo-induced"
SESSION_FILE, RECIPE_FILE, GRAINS_FILE = "demo.h5", "demo-recipe.toml", "demo-grains.csv"
RECIPE = f"""\
[recipe]
title = "Simulator demo: remanent, in-field and induced maps"

[scan_defaults]
center_um = [{{cx}}, {{cy}}]
size_um = [{{size}}, {{size}}]
step_um = {{step}}
settle_tau = 3.0
dwell_tau = 4.0

[[step]]
kind = "zero_field"

[[step]]
kind = "scan"
name = "{REMANENT}"
title = "remanent (zero field)"

[[step]]
kind = "scan"
name = "{IN_FIELD}"
title = "in a field of 40 µT along +y"
field_uT = [0.0, 40.0, 0.0]

[[step]]
kind = "subtract"
in_field = "{IN_FIELD}"
remanent = "{REMANENT}"
name = "{INDUCED}"
"""


def write_grain_file(path: Path, cuboids: np.ndarray, grain: np.ndarray) -> None:
    """The grain CSV (grain,x_um,y_um,z_um,dx_um,dy_um,dz_um) at full precision: the
    simulated sample's touching cuboids must stay touching, not overlap by a rounding."""
    rows = [",".join(CSV_COLUMNS)]
    for g, c in zip(grain, np.asarray(cuboids) / UM, strict=True):
        rows.append(f"{int(g)}," + ",".join(repr(float(v)) for v in c))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


class Demo(QtCore.QObject):
    """Drives the window through the demo; `finished(ok, message)` at the end."""

    finished = QtCore.pyqtSignal(bool, str)

    def __init__(
        self,
        window: MainWindow,
        folder: Path,
        *,
        size_um: float = 1000.0,
        step_um: float = 20.0,
        session_file: Path | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.folder = Path(folder)
        self.size_um, self.step_um = size_um, step_um
        self.path = session_file or self.folder / SESSION_FILE
        self.recipe_path = self.folder / RECIPE_FILE
        self.grain_path = self.folder / GRAINS_FILE

    def start(self) -> None:
        holder = self.window.holder
        if holder.rig is not None:
            self._run()
        else:
            # the first connect only: a later Reconnect does not run the demo again
            def opened(_rig: object) -> None:
                holder.failed.disconnect(failed)
                self._run()

            def failed(why: str) -> None:
                holder.opened.disconnect(opened)
                self.finished.emit(False, why)

            holder.opened.connect(opened, QtCore.Qt.ConnectionType.SingleShotConnection)
            holder.failed.connect(failed, QtCore.Qt.ConnectionType.SingleShotConnection)

    def _run(self) -> None:
        rig = self.window.holder.rig
        sample = rig.world.sample
        # scan around the grain nearest the middle of the sample
        footprint_centres = sample.cuboids[:, :2]
        middle = footprint_centres.mean(axis=0)
        centre = footprint_centres[np.argmin(np.linalg.norm(footprint_centres - middle, axis=1))]
        self.recipe_path.write_text(
            # to the nm, as a person writes it (not 12499.99999999997)
            RECIPE.format(cx=round(centre[0] / UM, 3), cy=round(centre[1] / UM, 3),
                          size=self.size_um,
                          step=self.step_um),
            encoding="utf-8",
        )
        near = np.all(np.abs(sample.cuboids[:, :2] - centre) <= (self.size_um / 2 + 100) * UM,
                      axis=1)  # the grains under the scan (and just beyond its edges)
        grains = np.unique(sample.grain[near])
        keep = np.isin(sample.grain, grains)
        write_grain_file(self.grain_path, sample.cuboids[keep], sample.grain[keep])
        self.window.scan.set_path(self.path)
        recipes = self.window.recipes
        self.window.show_view("recipes")
        recipes.checked.connect(self._recipe_checked)
        recipes.started.connect(self._recipe_started)
        if not recipes.open_recipe(self.recipe_path, then=self._run_recipe):
            self.finished.emit(False, recipes.message.text())

    def _recipe_checked(self, ok: bool) -> None:
        """The recipe read and checked as it was opened (not as Run checks it again)."""
        recipes = self.window.recipes
        recipes.checked.disconnect(self._recipe_checked)
        if not ok:
            recipes.started.disconnect(self._recipe_started)
            self.finished.emit(False, recipes.message.text())

    def _run_recipe(self) -> None:
        """The recipe checked as it was opened: run (checked again, then started)."""
        recipes = self.window.recipes
        if not recipes.run():
            self.finished.emit(False, recipes.message.text())

    def _recipe_started(self, ok: bool) -> None:
        recipes = self.window.recipes
        recipes.started.disconnect(self._recipe_started)
        if not ok:
            self.finished.emit(False, recipes.message.text())
            return
        assert recipes.runner is not None
        recipes.runner.finished.connect(self._recipe_finished)

    def _recipe_finished(self, ok: bool, message: str) -> None:
        """The session's maps side by side with the grains drawn over them, once its entries
        are read, then, once the grain file (read in the background) is drawn, the MMT tab's
        inversion; a recipe that did not finish ends the demo at once (its window may be
        closing)."""
        session = self.window.session
        session.open_file(self.path, lambda _opened: self._show_session(ok))
        if not ok:
            self.finished.emit(ok, message)

    def _show_session(self, ok: bool) -> None:
        """The session file's maps side by side (its entries read, or the Session tab says
        why not) with the grains drawn over them, then (`ok`) the inversion; nothing once the
        window has closed (its close tells the read it dropped)."""
        session = self.window.session
        if session.closed:
            return
        self.window.show_view("session")
        session.views.setCurrentWidget(session.compare)
        if not ok:
            session.load_grains(self.grain_path)
            self._fit()
            return

        def drawn(*_args: object) -> None:
            session.grainsFailed.disconnect(failed)
            self._fit()
            self._invert()

        def failed(why: str) -> None:
            session.grainsLoaded.disconnect(drawn)
            self.finished.emit(False, why)  # "Grain outlines of ... not drawn: ..."

        session.grainsLoaded.connect(drawn, QtCore.Qt.ConnectionType.SingleShotConnection)
        session.grainsFailed.connect(failed, QtCore.Qt.ConnectionType.SingleShotConnection)
        session.load_grains(self.grain_path)

    def _fit(self) -> None:
        QtCore.QCoreApplication.processEvents()  # lay the views out before fitting them
        self.window.session.compare.fit()

    def _invert(self) -> None:
        mmt = self.window.mmt
        mmt.entry.setCurrentText(REMANENT)
        mmt.set_grain_file(self.grain_path)
        # the demo's own inversion only, not one the user runs in the window afterwards
        mmt.finished.connect(self._inverted, QtCore.Qt.ConnectionType.SingleShotConnection)
        if not mmt.run():
            self.finished.emit(False, mmt.status.text())

    def _inverted(self, ok: bool, message: str) -> None:
        mmt = self.window.mmt
        mmt.unsaved = None  # the demo's own result, made again by the next demo: closed unasked
        mmt.max_ratio.setValue(20.0)  # the grains whose magnetization is well determined
        mmt.sort_by(RATIO)
        if mmt.proxy.rowCount():
            mmt.table.selectRow(0)
        self.finished.emit(ok, "all steps done" if ok else f"MMT: {message}")
