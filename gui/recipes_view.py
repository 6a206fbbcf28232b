"""Recipes: open a recipe, see its steps checked against the rig and file, run it, watch it."""

from __future__ import annotations

from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from gui.recipe_runner import RecipeRunner
from gui.rig_holder import RigHolder
from gui.scan_tab import ScanTab
from smm_daq.acquisition.recipe import Recipe, check_recipe, load_recipe
from smm_daq.errors import SmmError

MARKS = {"pending": "○", "running": "▶", "done": "✔", "failed": "✖"}


class RecipesView(QtWidgets.QWidget):
    """The Recipes tab. Scans run through the Scan tab, which shows the live map."""

    ended = QtCore.pyqtSignal(object)  # the session file a recipe wrote, when it has ended

    def __init__(
        self, holder: RigHolder, scan_tab: ScanTab, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.holder, self.scan_tab = holder, scan_tab
        self.recipe: Recipe | None = None
        self.recipe_path: Path | None = None
        self.runner: RecipeRunner | None = None

        self.open_button = open_button = QtWidgets.QPushButton("Open recipe…")
        open_button.clicked.connect(self._choose)
        self.path_label = QtWidgets.QLabel("No recipe open")
        self.title_label = QtWidgets.QLabel("")
        self.title_label.setStyleSheet("font-weight: bold")
        self.steps = QtWidgets.QListWidget()
        self.text = QtWidgets.QPlainTextEdit()
        self.text.setReadOnly(True)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.run_button.setEnabled(False)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        scan_tab.progress.valueChanged.connect(self.progress.setValue)  # the Scan tab's bar
        holder.busyChanged.connect(lambda _busy: self._update_run_button())

        top = QtWidgets.QHBoxLayout()
        top.addWidget(open_button)
        top.addWidget(self.path_label, 1)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(QtWidgets.QLabel("current scan"))
        buttons.addWidget(self.progress, 1)
        splitter = QtWidgets.QSplitter()
        splitter.addWidget(self.steps)
        splitter.addWidget(self.text)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.title_label)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        layout.addWidget(QtWidgets.QLabel("Scans fill the live map on the Scan tab."))

    def _choose(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a recipe", "", "Recipes (*.toml);;All files (*)"
        )
        if name:
            self.open_recipe(Path(name))

    def open_recipe(self, path: Path) -> bool:
        """Load and check a recipe against the profile and the scan tab's file; not while a
        recipe runs (its steps, marked as they run, stay on show)."""
        if self.runner is not None and self.runner.running:
            self._say("A recipe is running: open another once it has ended.", error=True)
            return False
        self.recipe, self.recipe_path = None, Path(path)
        self.path_label.setText(str(path))
        self.steps.clear()
        self.run_button.setEnabled(False)
        try:
            recipe = load_recipe(path)
            self.text.setPlainText(recipe.text)
            self.title_label.setText(recipe.title)
            target = self.scan_tab.path
            if target is None:
                raise SmmError("choose the session file on the Scan tab first")
            recipe = check_recipe(recipe, self.holder.profile, target, can_prompt=True)
        except SmmError as exc:
            self._say(str(exc), error=True)
            return False
        self.recipe = recipe
        for i in range(len(recipe.steps)):
            self.steps.addItem(f"{MARKS['pending']}  {i + 1}. {recipe.describe(i)}")
        self._say(f"{len(recipe.steps)} steps checked; they write to {target}")
        self._update_run_button()
        return True

    def _update_run_button(self) -> None:
        """Run is usable with a checked recipe, while no recipe runs and no scan started on
        the Scan tab owns the rig."""
        running = self.runner is not None and self.runner.running
        self.run_button.setEnabled(self.recipe is not None and not running
                                   and not self.holder.busy)

    def run(self) -> bool:
        """Check the recipe again and start it; False, with the reason shown, if refused."""
        if self.recipe is None or (self.runner is not None and self.runner.running):
            return False
        if self.holder.busy:
            self._say("A scan started on the Scan tab owns the rig: run the recipe once it "
                      "has ended.", error=True)
            return False
        assert self.recipe_path is not None
        if not self.open_recipe(self.recipe_path):  # the file may have changed since
            return False
        assert self.recipe is not None and self.scan_tab.path is not None
        self.runner = RecipeRunner(
            self.recipe, self.scan_tab.path, self.holder, self.scan_tab, self.ask, self
        )
        self.runner.stepStarted.connect(lambda i: self._mark(i, "running"))
        self.runner.stepEnded.connect(self._step_ended)
        self.runner.finished.connect(self._finished)
        self.run_button.setEnabled(False)
        self.open_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._say("running…")
        self.runner.start()
        return True

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    def ask(self, message: str) -> bool:
        """A prompt step: the operator confirms (OK) or stops the recipe (Cancel)."""
        answer = QtWidgets.QMessageBox.information(
            self, "Recipe", message,
            QtWidgets.QMessageBox.StandardButton.Ok
            | QtWidgets.QMessageBox.StandardButton.Cancel,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Ok

    def _mark(self, i: int, state: str) -> None:
        item = self.steps.item(i)
        if item is not None:
            item.setText(MARKS[state] + item.text()[1:])
            self.steps.setCurrentRow(i)

    def _step_ended(self, i: int, ok: bool, message: str) -> None:
        self._mark(i, "done" if ok else "failed")
        if message:
            item = self.steps.item(i)
            item.setToolTip(message)

    def _finished(self, ok: bool, message: str) -> None:
        self.stop_button.setEnabled(False)
        self.open_button.setEnabled(True)
        self._update_run_button()
        if self.runner is not None:
            self.ended.emit(self.runner.path)
        self._say(("Recipe finished: " if ok else "Recipe stopped: ") + message, error=not ok)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #a00000" if error else "")

