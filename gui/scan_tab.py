"""The Scan tab: plan form, start / pause / resume / abort, progress, and the live map."""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PyQt6 import QtCore, QtWidgets

from gui.background import Background, error_text
from gui.entry_reads import file_key, note_resolved, same_file
from gui.instruments_panel import CONNECT_KEY
from gui.live_scan import LiveScan
from gui.map_view import MapView
from gui.rig_holder import NOT_CONNECTED, RigHolder
from gui.scan_form import ScanForm, format_duration
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.cli.args import check_scratch_room, session_file
from smm_daq.errors import InputError, InstrumentLost, SmmError
from smm_daq.shell_words import command_line
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.names import ENTRY_NAME_MAX, new_entry_name_problem, typed_entry_name
from smm_daq.storage.nexus import EntryInfo
from smm_daq.storage.scan_entry import EntryTaken, held_as

if TYPE_CHECKING:
    from smm_daq.acquisition.resumable import ResumableEntry

START_KEY, PAUSE_KEY, ABORT_KEY = "F5", "F6", "Shift+F5"  # window-wide (`gui.shortcuts`)
# after a scan that failed on a lost instrument: the window's way back to a connected rig
RECONNECT_HINT = (f"Check the instrument (power, cable), then Reconnect ({CONNECT_KEY}) on the "
                  "Instruments tab before a next scan or a resume.")
# the session files whose entry names are kept (`entries_read`), those read or used last: a
# window open for days reads many. One forgotten only has its next name proposed without them
# (the scan's own check of its name still refuses one taken)
ENTRY_NAMES_KEPT = 16


class NotStarted(InputError):
    """A scan refused at its start, before the sequencer began: nothing was written and the
    rig not touched (a session file whose name leaves no room for its scratch files)."""


class ScanTab(QtWidgets.QWidget):
    """Sets up and runs one scan at a time in the file named above the form."""

    scanEnded = QtCore.pyqtSignal(str, str)  # final kind, message

    def __init__(self, holder: RigHolder, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.holder = holder
        self.profile = holder.profile
        self.form = ScanForm(self.profile)
        self._taken_said: str | None = None  # a taken name's message by the name field
        self.view = MapView(title="no map yet: a scan's map is drawn here as it is measured")
        self._map_file: Path | None = None  # the session file of the map on show, if known
        # `entries_read`, by `file_key`; the ENTRY_NAMES_KEPT last read or used
        self._entry_names: OrderedDict[Path, set[str]] = OrderedDict()
        self.resuming = False  # an entry is being read to resume it (`resume_entry`)
        self._resume_read = 0  # the read whose end starts the scan (older or cancelled: none)
        # the entry is read in a thread of its own, not the rig's: a Stop meanwhile (e.g. of
        # a jog still moving) reaches the stage at once, however long the disk takes
        self.reader = Background("resume-read", self)
        self.file_check = Background("scan-file", self)  # is a scan's file still there?
        self.live = LiveScan(self.view, self)

        self.file_edit = QtWidgets.QLineEdit()
        self.file_edit.setPlaceholderText("session file (.h5) the scan is written to")
        browse = QtWidgets.QToolButton(text="…")
        browse.clicked.connect(self._choose_file)
        file_row = QtWidgets.QHBoxLayout()
        file_row.addWidget(self.file_edit, 1)
        file_row.addWidget(browse)

        self.start_button = QtWidgets.QPushButton("Start")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.resume_button = QtWidgets.QPushButton("Resume")
        self.abort_button = QtWidgets.QPushButton("Abort")
        # red only while it can be pressed: a disabled Abort must not look ready
        self.abort_button.setStyleSheet("QPushButton:enabled { font-weight: bold; color: #a00000 }")
        self.pause_button.setToolTip(f"Pause at the next point ({PAUSE_KEY})")
        self.resume_button.setToolTip(f"Go on with the paused scan ({PAUSE_KEY})")
        self.abort_button.setToolTip(f"Abort the scan: the rig is made safe, the lines done stay "
                                     f"in the file ({ABORT_KEY}; Esc too)")
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button.clicked.connect(self.live.pause)
        self.resume_button.clicked.connect(self.live.resume)
        self.abort_button.clicked.connect(self.abort)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.resume_button, self.abort_button):
            buttons.addWidget(b)
        self.auto_range = QtWidgets.QCheckBox("Raise the lock-in range instead of pausing")
        self.auto_range.setToolTip(
            "On an overload or an out-of-range reading, raise the sensitivity one range and "
            "re-read the point; pause only at the largest range"
        )
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p %")
        self.status = QtWidgets.QLabel("idle")
        self.status.setWordWrap(True)
        # the scan's latest warning (the ambient field's drift), kept in view beside the
        # status line, which each progress step rewrites
        self.warning = QtWidgets.QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b35900")
        self.warning.hide()
        # the session file and entry the warning is of: shown only with their map on show
        self._warning_of: tuple[Path, str] | None = None

        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.addLayout(file_row)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(self.form.sizeHint().width() + 30)
        left_layout.addWidget(scroll, 1)
        left_layout.addWidget(self.auto_range)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.progress)
        left_layout.addWidget(self.status)
        left_layout.addWidget(self.warning)
        splitter = QtWidgets.QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.view)
        splitter.setStretchFactor(1, 1)
        splitter.setCollapsible(0, False)
        QtWidgets.QVBoxLayout(self).addWidget(splitter)

        self.form.from_area.clicked.connect(self._use_area)
        # a name the file holds already is said as it is typed, not when Start fails on it
        self.form.changed.connect(self._say_if_name_taken)
        self.file_edit.textChanged.connect(self._say_if_name_taken)
        self.view.areaSelected.connect(lambda *_: self.form.from_area.setEnabled(True))
        self.live.stateChanged.connect(self._state_changed)
        self.live.progressed.connect(self._progressed)
        self.live.warned.connect(self._warned)
        self.live.ended.connect(self._ended)
        self.live.madeSafe.connect(lambda _safe: self.status.setText(self._stalled_text()))
        # a recipe's steps alone drive the rig: Start waits for its end
        holder.recipeChanged.connect(lambda _running: self._state_changed(self.live.state))
        holder.changed.connect(self._update_start)  # disabled from a connect's start on
        self._state_changed("idle")

    # --- file and last map ---------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        text = self.file_edit.text().strip()
        if not text:
            return None
        # ~ as the command line's shell reads it: else a folder named "~" under the current
        # one, which does not exist, and the scan failed on a scratch file's name in it
        try:
            return Path(text).expanduser()
        except RuntimeError:  # ~name of no user: left as typed, as the shell leaves it
            return Path(text)

    def set_path(self, path: Path) -> None:
        """Scan into `path` (a session file opened): the map on show, of another file, goes
        with the area selected on it (not while a scan runs)."""
        if self.live.running:
            return
        if self._map_file is not None and not same_file(self._map_file, Path(path)):
            self._map_file = None
            self.view.clear()
            self.form.from_area.setEnabled(False)
            self.warning.hide()  # its map is no longer on show
        self.file_edit.setText(str(path))

    def _choose_file(self) -> None:
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Session file for the scan", self.file_edit.text(),
            "Session files (*.h5);;All files (*)",
            options=QtWidgets.QFileDialog.Option.DontConfirmOverwrite,
        )
        if name:
            self.file_edit.setText(name)

    def show_last_map(self, m: MapData, path: Path | None = None) -> None:
        """A map (of session file `path`) to draw the next scan's area on (not while a scan
        fills the view)."""
        if not self.live.running:
            self._map_file = None if path is None else Path(path)
            self.view.set_map(m)
            self.view.plot.setTitle(f"last map: {m.name}")
            of = self._warning_of
            self.warning.setVisible(bool(self.warning.text()) and of is not None
                                    and path is not None and same_file(Path(path), of[0])
                                    and m.name == of[1])

    def _use_area(self) -> None:
        corners = self.view.area_corners()
        if corners is not None:
            self.form.use_area(*corners)

    # --- running -------------------------------------------------------------------------
    def start(self, plan: ScanPlan | None = None, recipe_text: str = "",
              recipe_file: str = "") -> bool:
        """Validate the plan (the form's, or `plan` put into the form) and start the scan in
        the sequencer's thread; False if refused, with the reason in the status line. While a
        recipe runs, only its own scans (`recipe_text` given) start. A session file whose name
        leaves no room for its scratch files is refused in that thread, before the scan
        begins (`scanEnded` "not started"): the check asks the file system where the file's
        links lead, which a stalled network disk can hold up."""
        if self.live.running or self.resuming:
            return False
        if self.holder.recipe_running and not recipe_text:
            self.status.setText("A recipe is running: its steps alone drive the rig (stop it "
                                "on the Recipes tab first).")
            return False
        if plan is None:
            plan = self.form.checked_plan() if self.form.take_typing() else None
        else:  # shown in the form, but run exactly as given (the form rounds to its decimals)
            self.form.set_plan(plan)
            try:
                plan.validate(self.profile)
            except InputError as exc:
                self.form.show_error(str(exc))
                plan = None
        if plan is None:
            self.status.setText("The plan is not valid: see the message by the field.")
            return False
        path = self.path
        if path is None:
            self.status.setText("Choose the session file the scan is written to.")
            return False
        rig = self.holder.rig
        if rig is None or self.holder.busy:
            self.status.setText(self.holder.unconnected_text() or NOT_CONNECTED)
            return False
        self._launch(rig, plan, path, recipe_text, recipe_file=recipe_file)
        return True

    def _launch(self, rig: Any, plan: ScanPlan, path: Path, recipe_text: str, *,
                resume: bool = False, measured: np.ndarray | None = None,
                recipe_file: str = "") -> None:
        """Show the plan's grid (with the lines `measured` so far), build its sequencer on
        `rig` (the holder's, as checked) and start it in the rig's thread, after any
        instrument call in flight."""
        self.holder.set_busy(True)
        self._map_file = Path(path)
        self.live.prepare(plan, path, self.profile.sensor.active_area, bz=measured)
        push = self.live.bridge.push
        auto_range = self.auto_range.isChecked()
        # the window's profile is the one it was started on
        hint = (f"this window runs on {self.profile.path}; start the window on the profile "
                "the scan was started with (smm-daq gui --profile FILE)")

        from smm_daq.acquisition.sequencer import Sequencer

        # attached before it starts: its start (the file read, the entry created) can stall
        # on the disk, and an Abort (or closing) meanwhile must reach it to make the rig safe
        sequencer = Sequencer(rig, path, plan, recipe_text=recipe_text, resume=resume,
                              resume_hint=hint, auto_range=auto_range, recipe_file=recipe_file)
        sequencer.subscribe(push)
        self.live.attach(sequencer)

        def start() -> None:
            if not resume:  # as the command line does: else refused once the scan had begun
                try:  # here, not on the window's thread: the name measured is that of the
                    # file the links lead to, which a stalled network disk may not tell for long
                    check_scratch_room("the session file", str(path))  # first: a name too
                    # long for the system is said there, where the place's check would raise
                    session_file("the session file", str(path))  # and not another's file
                except InputError as exc:
                    raise NotStarted(str(exc)) from None
            # the file the scan writes, its links followed as they lead now (a link the
            # Session tab never read, or read before it was pointed elsewhere): so that the
            # scan's end finds the file it wrote shown there, by whatever name it is shown
            note_resolved(path)
            sequencer.start()

        self.holder.background.submit(start, None, self._start_failed)

    def resume_entry(self, path: Path, entry: str, recipe_text: str = "") -> bool:
        """Finish an interrupted, aborted or failed scan entry of `path` from its first
        unfinished line, with the plan stored in the entry; the finished lines stay as they
        are and show at once. False if refused at once (a scan or recipe running, no rig),
        with the reason in the status line. Else the entry is read in a thread of its own,
        not the rig's (a large map takes a while, a stalled network disk any time), the rig
        held for the scan meanwhile, and then the scan starts; an entry that cannot be
        resumed ends it as "failed" (`scanEnded`), the reason in the status line. While a
        recipe runs, only its own scans (`recipe_text` given, the text the entry stores)
        resume."""
        if self.live.running or self.resuming or (self.holder.recipe_running
                                                  and not recipe_text):
            self.status.setText("A scan or recipe is running; resume the scan when it has "
                                "ended.")
            return False
        if self.holder.rig is None or self.holder.busy:
            self.status.setText(self.holder.unconnected_text() or NOT_CONNECTED)
            return False
        profile = self.profile

        def read() -> tuple[ResumableEntry, np.ndarray]:
            from smm_daq.acquisition.recipe_continue import same_recipe
            from smm_daq.acquisition.resumable import load_resumable
            from smm_daq.storage.nexus import read_map

            stored = load_resumable(path, entry)  # checked whole (and not finished); rig untouched
            if recipe_text and not same_recipe(stored.recipe, recipe_text):
                raise InputError("was not made by the recipe running; expected its own scan",
                                 source=f"{path}, entry '{entry}'")
            stored.plan.validate(profile)
            return stored, read_map(path, entry).bz

        self._resume_read += 1
        token = self._resume_read

        def ready(read_back: tuple[ResumableEntry, np.ndarray]) -> None:
            if token != self._resume_read:  # cancelled (Abort, Stop)
                return
            self._set_resuming(False)
            rig = self.holder.rig  # read once: the close may set it to None from its thread
            if rig is None:  # closed meanwhile
                not_resumed(SmmError("the rig was closed while the entry was read"))
                return
            stored, measured = read_back
            self.file_edit.setText(str(path))
            self.form.set_plan(stored.plan)
            self._launch(rig, stored.plan, Path(path), stored.recipe, resume=True,
                         measured=measured)

        def not_resumed(exc: BaseException) -> None:
            if token != self._resume_read:
                return
            self._set_resuming(False)
            self.holder.set_busy(False)
            text = f"Cannot resume: {exc}"
            self.status.setText(text)
            self.scanEnded.emit("failed", text)

        self.holder.set_busy(True)  # the rig is the scan's from now: nothing else drives it
        self._set_resuming(True)
        self.status.setText(f"Reading entry '{entry}' of {Path(path).name} to resume it…")
        self.reader.submit(read, ready, not_resumed)
        return True

    def abort(self) -> None:
        """Abort the scan, or the resume whose entry is being read (nothing started yet)."""
        if not self.resuming:
            self.live.abort()
            return
        self._resume_read += 1  # its read's end starts nothing
        self._set_resuming(False)
        self.holder.set_busy(False)
        text = "Resume cancelled while the entry was read; nothing was started."
        self.status.setText(text)
        self.scanEnded.emit("aborted", text)

    def stop_during_scan(self) -> None:
        """Stop pressed while the rig is the scan's: the scan aborted (its sequencer stops the
        stage); while the entry to resume is read, the resume is cancelled and the stage
        (maybe still moving from a jog) stopped at once."""
        resuming, rig = self.resuming, self.holder.rig
        self.abort()
        if resuming and rig is not None:
            self.holder.background.submit(rig.stage.stop, None, lambda exc: self.status.setText(
                f"{self.status.text()} Stop: {exc}"))

    def _set_resuming(self, on: bool) -> None:
        """An entry being read to resume it: Start, the form and the file wait for it."""
        self.resuming = on
        self._state_changed(self.live.state, show=not on)

    def _start_failed(self, exc: BaseException) -> None:
        if isinstance(exc, NotStarted):
            self.live.fail_to_start(str(exc), kind="not started")  # nothing began
            self.status.setText(f"Not started: {exc}")
            return
        if isinstance(exc, EntryTaken):  # the window's way to finish it, by the name field
            free = next_free_name(exc.name, self._taken_names(exc.path) | {exc.name})
            if exc.swap_cut_off:
                repair = command_line(["smm-daq", "repair", str(exc.path)])
                finish = (f", or finish the interrupted scan of that name: its writer was "
                          f"killed while swapping it in, so run `{repair}` first, then "
                          "Resume scan on the Session tab")
            elif exc.finished:
                finish = f" ('{exc.name}' is a finished scan, which nothing resumes)"
            elif exc.kind == "scan":
                finish = (", or finish an interrupted scan of that name with Resume scan on "
                          "the Session tab")
            else:
                finish = (f" ('{exc.name}' is {held_as(exc.kind)}, not a scan, so there is "
                          "none to resume)")
            text = (f"{exc.path.name} has an entry '{exc.name}' already; choose another name "
                    f"({free} is free: set in the form){finish}.")
            self.form.name.setText(free)
            self.form.show_error(text, key="name")
            self.live.fail_to_start(text, kind="not started")  # the sequencer wrote nothing
            self.status.setText(f"Not started: {text}")
            return
        lost = f"\n{RECONNECT_HINT}" if isinstance(exc, InstrumentLost) else ""
        self.live.fail_to_start(error_text(exc) + lost)

    def entries_read(self, path: Path, entries: list[EntryInfo]) -> None:
        """The entries of session file `path` as last read (the Session tab's): the names a
        next scan's name is proposed against."""
        self._keep_names(Path(path), {e.name for e in entries})

    def _keep_names(self, path: Path, names: set[str]) -> None:
        """Keep `names` as those of file `path`, forgetting the file read or used longest ago
        beyond ENTRY_NAMES_KEPT."""
        key = file_key(path)
        self._entry_names[key] = names
        self._entry_names.move_to_end(key)
        while len(self._entry_names) > ENTRY_NAMES_KEPT:
            self._entry_names.popitem(last=False)

    def _name_taken_text(self, name: str, path: Path) -> str | None:
        """Why `name` cannot name the next scan of `path`, an entry of it already as the file
        was last read (`entries_read`, or a scan of this tab); None if it is not known taken.
        Only said: Start leaves it to the scan's start, which reads the file as it is now
        (another program may have removed the entry or the file since) and refuses a name
        taken then (`_start_failed`)."""
        taken = self._taken_names(path)
        if name not in taken:
            return None
        return (f"{path.name} has an entry '{name}' already; choose another name "
                f"({next_free_name(name, taken)} is free)")

    def _say_if_name_taken(self) -> None:
        """Show by the name field, as it is typed, that the file holds an entry of that name
        (other problems of the name the form says itself)."""
        shown = self.form.error_text("name")
        if shown and shown == self._taken_said:  # of the file or name before: said again
            self.form.errors["name"].hide()
        path = self.path
        if path is None or self.live.running or self.form.error_text("name"):
            return
        self._taken_said = self._name_taken_text(typed_entry_name(self.form.name.text()), path)
        if self._taken_said is not None:
            self.form.show_error(self._taken_said, key="name")

    def _taken_names(self, path: Path) -> set[str]:
        key = file_key(Path(path))
        if key not in self._entry_names:
            return set()
        self._entry_names.move_to_end(key)  # in use: kept
        return self._entry_names[key]

    def _state_changed(self, state: str, show: bool = True) -> None:
        running = self.live.running or self.resuming
        self._update_start()
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(state == "paused")
        # also while starting: the field's ramp and the move to the first point come first,
        # and can take a while on a rig
        self.abort_button.setEnabled(state in ("starting", "running", "paused")
                                     or self.resuming)
        self.form.setEnabled(not running)
        self.file_edit.setEnabled(not running)
        self.auto_range.setEnabled(not running)
        if show:
            self.status.setText(state if not self.live.message
                                else f"{state}: {self.live.message}")

    def _warned(self, text: str) -> None:
        """Show the scan's latest warning ("" as a scan starts: none), with the live map. It
        follows that map: hidden while the map of another entry or file is on show
        (`show_last_map`, `set_path`), shown again with the scan's own."""
        plan, path = self.live.plan, self.live.path
        self._warning_of = (path, plan.name) if text and plan is not None \
            and path is not None else None
        self.warning.setText(f"Warning: {text}" if text else "")
        self.warning.setVisible(bool(text))

    def _update_start(self) -> None:
        """Start is usable with a rig connected, while no scan of this tab runs and no recipe
        drives the rig; unconnected, its tooltip says what to do."""
        unconnected = self.holder.unconnected_text()
        self.start_button.setEnabled(not unconnected and not self.live.running
                                     and not self.resuming and not self.holder.recipe_running)
        self.start_button.setToolTip(unconnected or f"Start the scan ({START_KEY}, on this tab)")

    def _progressed(self, progress: float, eta_s: object) -> None:
        self.progress.setValue(round(1000 * progress))
        eta = "" if eta_s is None else f", about {format_duration(float(eta_s))} left"
        clock = " (simulated time)" if self.profile.simulated and eta else ""
        if self.live.write_stalled:  # what the user waits for, and may stop waiting for
            self.status.setText(self._stalled_text())
            return
        # why a scan paused (e.g. a lock-in overload) stays on show with its progress
        why = f": {self.live.message}" if self.live.state == "paused" and self.live.message else ""
        self.status.setText(f"{self.live.state}{why}: {100 * progress:.1f} % done{eta}{clock}")

    def _ended(self, kind: str, message: str) -> None:
        self.holder.set_busy(False)
        plan = self.live.plan
        if kind == "finished":
            self.progress.setValue(1000)
            if plan is not None and self.live.path is not None and not self.live.running \
                    and typed_entry_name(self.form.name.text()) == plan.name:  # unchanged since
                taken = self._taken_names(self.live.path) | {plan.name}
                self._keep_names(self.live.path, taken)
                self.form.name.setText(next_free_name(plan.name, taken))
        if plan is not None:
            self.view.plot.setTitle(f"{plan.name} ({kind})")
        if kind != "finished" and plan is not None and self.live.sequencer is not None:
            self.status.setText(f"{self.status.text()}\n{self._left_as(plan)}")
            if self.live.sequencer.lost is not None:
                self.status.setText(f"{self.status.text()}\n{RECONNECT_HINT}")
        self.scanEnded.emit(kind, message)

    def _stalled_text(self) -> str:
        """A write of the scan's that has not returned once the rig was made safe (on an
        abort, or at the scan's end): the sequencer's word on the rig and the write, and that
        the window need not wait for it."""
        doing = "aborting" if self.live.state == "aborting" else "ending"
        return (f"{doing}: {self.live.message}. The window can be used, or closed, meanwhile; "
                "the lines stored before stay in the file.")

    def _left_as(self, plan: ScanPlan) -> str:
        """How a scan that ran and did not finish left the rig and the file."""
        rig = ("The rig was made safe (stage stopped, field at its safe state). "
               if self.live.rig_safe else "")  # else the message says what is not
        path = self.live.path
        if path is None:
            return rig.strip()
        if not self.live.sequencer.entry_opened:  # aborted while the file was read, or none
            return f"{rig}Nothing was written to {path.name}."
        stored = (f"{rig}{self.live.lines_stored} of {plan.ny} lines are stored in "
                  f"{path.name}; Resume scan on the Session tab finishes the scan.")
        self._unless_gone(path, stored, rig.strip())
        return stored

    def _unless_gone(self, path: Path, said: str, instead: str) -> None:
        """Whether the scan's file is still there is asked in a worker (the disk may be what
        stalled the scan: the window must not wait for it): gone (moved or deleted: the
        sequencer's message says so), the status line's `said` becomes `instead`."""
        def looked(there: bool) -> None:
            text = self.status.text()
            if not there and said in text:
                self.status.setText(text.replace(f"\n{said}", f"\n{instead}" if instead else ""))

        self.file_check.submit(path.exists, looked, lambda _exc: None)

    # --- settings ------------------------------------------------------------------------
    def save(self, settings: QtCore.QSettings) -> None:
        self.form.save(settings)
        settings.setValue("scan/file", self.file_edit.text())
        settings.setValue("scan/auto_range", self.auto_range.isChecked())

    def restore(self, settings: QtCore.QSettings) -> None:
        self.form.restore(settings)
        text = settings.value("scan/file")
        if isinstance(text, str):
            self.file_edit.setText(text)
        self.auto_range.setChecked(settings.value("scan/auto_range", False, type=bool))


COUNTED_DIGITS = 18  # a name's trailing number counted on by next_free_name, at most


def next_free_name(name: str, taken: set[str]) -> str:
    """The name after `name` not in `taken`, one a new entry may have
    (`new_entry_name_problem`): its trailing number counted on (scan-1 → scan-2, scan_2 →
    scan_3), or _2, _3, … added (scan → scan_2, and after a number of more than
    COUNTED_DIGITS digits); the name cut short to leave room for the
    number within `ENTRY_NAME_MAX` characters, composed (NFC), a control character or '/'
    (an earlier release's name) made '_'. Taken also where `taken` has it in another Unicode
    form (an earlier release's entry), which a new entry may not look like."""
    text = "".join(c if c.isprintable() and c != "/" else "_"
                   for c in unicodedata.normalize("NFC", name)).strip()
    # a number of at most COUNTED_DIGITS is counted on: one longer would leave no room for
    # the name, or be no number Python reads (over 4300 digits)
    match = re.fullmatch(rf"(.*?)([_-])(\d{{1,{COUNTED_DIGITS}}})", text)
    base, sep, n = (match.group(1), match.group(2), int(match.group(3)) + 1) if match \
        else (text, "_", 2)
    looks = {unicodedata.normalize("NFC", t) for t in taken}
    while True:
        tail = f"{sep}{n}"
        free = unicodedata.normalize("NFC", base[:ENTRY_NAME_MAX - len(tail)].lstrip() + tail)
        if free not in looks and new_entry_name_problem(free) is None:
            return free
        n += 1
