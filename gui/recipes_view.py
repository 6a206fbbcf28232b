"""Recipes: open a recipe, see its steps checked against the rig and file, run it, watch it.

A recipe whose entries the session file holds already (it was cut off: a crash, Stop, a
failure) is checked as `smm-daq run --continue` checks it: its steps are marked done, to be
resumed or skipped, and the one button reads Continue. One button, not Run and Continue: on
that file a recipe can only be continued (running it afresh would clash with its own
entries), and entries not its own are refused with the command line's message.

The recipe and the session file are read off the GUI thread (a network share may take
seconds to answer; a scan of this window writing the file makes a read wait for the line
being written, long on a stalled disk): as a recipe is opened, checked again before it runs,
and when it has ended (nothing waits for that answer but the Continue button)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from gui.background import Background
from gui.message_line import WARNED_COLOUR
from gui.recipe_runner import RecipeRunner
from gui.rig_holder import RigHolder
from gui.scan_form import format_duration
from gui.scan_tab import ScanTab
from smm_daq.acquisition.recipe import (
    Recipe,
    ScanStep,
    check_recipe,
    load_recipe,
    skip_reason,
    step_note,
)
from smm_daq.acquisition.recipe_continue import DONE, RESUME
from smm_daq.cli.args import check_scratch_room, session_file
from smm_daq.cli.run_profile import named_profile, names_profile
from smm_daq.errors import SmmError
from smm_daq.instruments.profile import Profile
from smm_daq.shell_words import command_line
from smm_daq.storage.nexus import list_entries

MARKS = {"pending": "○", "running": "▶", "done": "✔", "failed": "✖", "resume": "◐",
         "skipped": "↷"}


@dataclass(frozen=True)
class Checked:
    """A recipe checked against the profile and the session file `target`, its steps'
    lines as listed, and whether each says a warning (shown in amber)."""

    recipe: Recipe
    target: Path
    continuing: bool
    lines: list[str]
    warned: list[bool]


def check_against_file(recipe: Recipe, profile: Profile, target: Path) -> Checked:
    """`check_recipe` on the file (read: run it off the GUI thread while a scan writes)."""
    continuing = _holds_entries_of(recipe, target)
    checked = check_recipe(recipe, profile, target, can_prompt=True, continuing=continuing)
    lines, warned = [], []
    for i in range(len(checked.steps)):
        warning = _step_warning(checked, i, target)
        lines.append(f"{MARKS[_mark_of(checked, i, target)]}  {i + 1}. {checked.describe(i)}"
                     f"{step_note(checked, i, target)}"
                     + (f"; warning: {warning}" if warning else ""))
        warned.append(bool(warning) or _size_noted(checked, i))
    return Checked(checked, target, continuing, lines, warned)


def _step_warning(checked: Recipe, i: int, target: Path) -> str:
    """The warning `smm-daq run` prints of step `i` beyond its description: a wait's in zero
    field after a scan (`Recipe.wait_note`); "" for a step skipped, which waits for nothing."""
    return "" if skip_reason(checked, i, target) else checked.wait_note(i)


def _size_noted(checked: Recipe, i: int) -> bool:
    """Whether step `i` is a scan whose description ends with its size note (a warning of
    `smm-daq run`)."""
    step, plan = checked.steps[i], checked.plans[i]
    return isinstance(step, ScanStep) and plan is not None and bool(step.size_note(plan))


def step_item(line: str, warned: bool) -> QtWidgets.QListWidgetItem:
    """A step's item in the list: in amber where its line says a warning, as the window's
    other warnings are, the line also its tooltip (a long warning is cut off by the list)."""
    item = QtWidgets.QListWidgetItem(line)
    if warned:
        item.setForeground(QtGui.QColor(WARNED_COLOUR))
        item.setToolTip(line)
    return item


class RecipesView(QtWidgets.QWidget):
    """The Recipes tab. Scans run through the Scan tab, which shows the live map."""

    ended = QtCore.pyqtSignal(object)  # the session file a recipe wrote, when it has ended
    checked = QtCore.pyqtSignal(bool)  # a recipe opened has been read and checked (usable?)
    started = QtCore.pyqtSignal(bool)  # Run's check has ended: the recipe started, or refused

    def __init__(
        self, holder: RigHolder, scan_tab: ScanTab, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.holder, self.scan_tab = holder, scan_tab
        self.recipe: Recipe | None = None
        self.recipe_path: Path | None = None
        self.runner: RecipeRunner | None = None
        self.continuing = False  # the file holds the recipe's entries: Run continues it
        self.reader = Background("recipe-file", self)  # reads of the recipe and session files
        self._opening = 0  # which recipe opened last: an older one's check, read late, is dropped
        self.checking = False  # the recipe opened last is being read and checked
        self._run_waiting = False  # Run pressed: the recipe starts once its check ends

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
        holder.changed.connect(self._update_run_button)  # disabled from a connect's start on

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

    def open_recipe(self, path: Path, then: Callable[[], None] | None = None) -> bool:
        """Start reading a recipe and checking it against the profile and the scan tab's
        file, in the background (either file may be on a slow share, or written by a scan of
        this window): the steps list says "Checking…" meanwhile, then lists the steps, or the
        message says why the recipe is refused (`checking` is False again); a recipe opened
        since drops the older one's answer. `then` runs once it is checked and usable. False,
        and nothing read, while a recipe runs (its steps, marked as they run, stay on show)."""
        if self.runner is not None and self.runner.running:
            self._say("A recipe is running: open another once it has ended.", error=True)
            return False
        superseded = self._run_waiting  # that check's answer will be dropped
        self.recipe, self.recipe_path = None, Path(path)
        self._opening += 1
        opening = self._opening
        self._run_waiting = then == self._start
        self.path_label.setText(str(path))
        self.text.clear()
        self.title_label.setText("")
        self.steps.clear()
        self.steps.addItem("Checking…")
        self.continuing = False
        self.checking = True
        self._update_run_button()
        profile, target = self.holder.profile, self.scan_tab.path
        path = Path(path)

        def read() -> tuple[Recipe, Checked | SmmError, str]:
            recipe = load_recipe(path)
            note = other_profile_note(recipe, path, profile)
            if target is None:
                return recipe, SmmError("choose the session file on the Scan tab first"), note
            try:
                check_scratch_room("the session file on the Scan tab", str(target))
                # and not another program's file, as `smm-daq run --out` refuses it: else its
                # steps before the first scan ramped and moved, and that scan was refused
                session_file("the session file on the Scan tab", str(target))
                return recipe, check_against_file(recipe, profile, target), note
            except SmmError as exc:
                return recipe, exc, note

        def read_out(value: tuple[Recipe, Checked | SmmError, str]) -> None:
            if opening != self._opening:
                return
            recipe, checked, note = value
            self.text.setPlainText(recipe.text)
            self.title_label.setText(recipe.title)
            self.steps.clear()
            self.checking = False
            if isinstance(checked, SmmError):
                self._refused(checked)
                usable = False
            else:
                usable = self._show_checked(checked)
            if note:  # the recipe's grid is written for another stage
                self._say(f"{self.message.text()} {note}", error=True)
            self._checked(usable, then)

        def failed(exc: BaseException) -> None:
            if opening == self._opening:
                self.steps.clear()
                self.checking = False
                self._refused(exc)
                self._checked(False, then)

        writing = " (a scan is writing it)" if self.holder.busy else ""
        self._say(("Not run: another recipe was opened while Run checked the last one. "
                   if superseded else "")
                  + (f"Checking the recipe against {target}{writing}…" if target is not None
                     else "Reading the recipe…"), error=superseded)
        if superseded:
            self.started.emit(False)
        self.reader.submit(read, read_out, failed)
        return True

    def _checked(self, usable: bool, then: Callable[[], None] | None) -> None:
        """A check has ended: said (`checked`; for Run's, `started` when refused), and what
        waited for a usable recipe done."""
        self._run_waiting = False
        self.checked.emit(usable)
        if then == self._start and not usable:  # a run refused by its check
            self.started.emit(False)
        elif usable and then is not None:
            then()

    def _refused(self, exc: BaseException) -> None:
        self.continuing = False
        self._update_run_button()
        self._say(str(exc), error=True)

    def _show_checked(self, value: Checked) -> bool:
        """List a checked recipe's steps; False when it has nothing left to do there."""
        recipe, target = value.recipe, value.target
        self.continuing = value.continuing
        for line, warned in zip(value.lines, value.warned, strict=True):
            self.steps.addItem(step_item(line, warned))
        if recipe.start is None:
            self.continuing = False
            self._update_run_button()
            self._say(f"Every step of this recipe is done in {target} already; nothing to "
                      "continue.")
            return False
        self.recipe = recipe
        if self.continuing:
            done = sum(s == DONE for s in recipe.states)
            self._say(f"This recipe was cut off on {target}: {done} of its steps are done "
                      "there (✔), a cut-off scan is resumed (◐), waits and prompts of the work "
                      "done are skipped (↷), field steps and a wait cut off run again (the wait "
                      "in full). Continue runs the rest, "
                      f"about {format_duration(recipe.duration_left_s)} of instrument time."
                      # begun before such keys were refused: said, as `run --continue` does
                      + "".join(f" {unread}: left unread, as when the recipe was begun."
                                for unread in recipe.unread)
                      + "".join(f" Warning: {overridden}; continued as begun, the scan taken "
                                "in the field of [scan_defaults]."
                                for overridden in recipe.overridden))
        else:
            self._say(f"{len(recipe.steps)} steps checked; they write to {target}")
        self._update_run_button()
        return True

    def _update_run_button(self) -> None:
        """Run is usable with a checked recipe and the rig connected, while no recipe runs and
        no scan started on the Scan tab owns the rig."""
        running = self.runner is not None and self.runner.running
        unconnected = self.holder.unconnected_text()
        self.run_button.setEnabled(self.recipe is not None and not running
                                   and not self.holder.busy and not unconnected)
        self.run_button.setText("Continue" if self.continuing else "Run")
        self.run_button.setToolTip(
            unconnected if unconnected else
            "Continue the recipe cut off on the session file: finished steps are skipped, a "
            "cut-off scan resumed, the rest run" if self.continuing else "")

    def run(self) -> bool:
        """Check the recipe again and start it once checked (`started`; continue it, when the
        file holds its entries); False, with the reason shown, if refused at once; a refusal
        of the check is shown as it ends."""
        if self.recipe is None or (self.runner is not None and self.runner.running):
            return False
        if self.holder.busy:
            self._say("A scan started on the Scan tab owns the rig: run the recipe once it "
                      "has ended.", error=True)
            return False
        if self.holder.rig is None:  # a connect under way, or none made
            self._say(self.holder.unconnected_text(), error=True)
            return False
        assert self.recipe_path is not None
        # the files may have changed since: checked again, in the background, then started
        return self.open_recipe(self.recipe_path, then=self._start)

    def _start(self) -> None:
        """Start the recipe just checked again, unless the rig was taken meanwhile."""
        if self.holder.busy or self.holder.rig is None or self.scan_tab.path is None:
            self._say(self.holder.unconnected_text() or "A scan started on the Scan tab owns "
                      "the rig: run the recipe once it has ended.", error=True)
            self.started.emit(False)
            return
        assert self.recipe is not None
        self.runner = RecipeRunner(
            self.recipe, self.scan_tab.path, self.holder, self.scan_tab, self.ask, self
        )
        self.runner.stepStarted.connect(lambda i: self._mark(i, "running"))
        self.runner.stepEnded.connect(self._step_ended)
        self.runner.stepSkipped.connect(self._step_skipped)
        self.runner.finished.connect(self._finished)
        self.runner.subtractionHeld.connect(lambda text, error: self._say(text, error=error))
        self.run_button.setEnabled(False)
        self.open_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._say("continuing…" if self.continuing else "running…")
        self.runner.start()
        self.started.emit(True)

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()

    @property
    def field_ramping(self) -> bool:
        """Whether a recipe's set_field step runs."""
        return self.runner is not None and self.runner.field_ramping

    def stop_field_ramp(self) -> None:
        """The window's Stop (Esc): a recipe's field ramp under way ends, and the recipe."""
        if self.runner is not None:
            self.runner.stop_field_ramp()

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

    def _step_skipped(self, i: int, why: str) -> None:
        assert self.recipe is not None
        self._mark(i, "done" if self.recipe.states[i] == DONE else "skipped")
        self.steps.item(i).setToolTip(f"skipped: {why}")

    def _finished(self, ok: bool, message: str) -> None:
        """The steps keep their marks; a recipe stopped after writing entries can be
        continued (Continue checks it against the file again first). Whether it wrote any
        is read off the GUI thread, and Continue offered once it is."""
        self.stop_button.setEnabled(False)
        self.open_button.setEnabled(True)
        path = self.runner.path if self.runner is not None else None
        self.continuing = False
        self._update_run_button()
        if path is not None:
            self.ended.emit(path)
        said = ("Recipe finished: " if ok else "Recipe stopped: ") + message
        self._say(said, error=not ok)
        recipe, opening = self.recipe, self._opening
        if ok or recipe is None or path is None:
            return

        def read(holds: bool) -> None:
            running = self.runner is not None and self.runner.running
            if holds and opening == self._opening and not running:
                self.continuing = True
                self._update_run_button()
                # the step's message ends without a full stop ("… aborted by the operator")
                self._say(f"{said.rstrip('.')}. Continue carries it on from where it stopped.",
                          error=True)

        self.reader.submit(lambda: _holds_entries_of(recipe, path), read, lambda _exc: None)

    def shutdown(self, wait_for_writes: bool = True) -> None:
        """The window closes: a read of the session file in hand is left to its thread; a
        recipe's subtraction in hand finishes writing its entry (the window's close waits for
        it: `join` of the runner's `analysis`), unless told not to wait for writes (a scan's
        write has stalled: it waits for the same disk)."""
        self.reader.shutdown(wait=False)
        if self.runner is not None:
            self.runner.analysis.shutdown(wait=wait_for_writes, timeout=0)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #a00000" if error else "")


def other_profile_note(recipe: Recipe, path: Path, profile: Profile) -> str:
    """What to say where the recipe at `path` names ([recipe] profile) another profile than
    the window's `profile`, which its scans then run on (as `run --profile` does); else ""."""
    named = named_profile(recipe, path)
    if named is None or names_profile(named, profile):
        return ""
    start = command_line(["smm-daq", "gui", "--profile", str(named)])
    return (f"Note: the recipe is written for the profile {named} ([recipe] profile), but this "
            f"window runs on {profile.path}, whose stage may put its grid elsewhere; start the "
            f"window on the recipe's: {start}")


def _holds_entries_of(recipe: Recipe, path: Path) -> bool:
    """Whether the session file holds an entry of a name the recipe writes."""
    return path.exists() and bool(set(recipe.entries()) & {e.name for e in list_entries(path)})


def _mark_of(recipe: Recipe, i: int, path: Path) -> str:
    """Step `i`'s mark before the checked recipe runs (continued: done, resume, skipped)."""
    if recipe.states[i] == DONE:
        return "done"
    if recipe.states[i] == RESUME:
        return "resume"
    return "skipped" if skip_reason(recipe, i, path) else "pending"


