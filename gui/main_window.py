"""The main window: a banner when simulated, and one tab per task of the operator's day."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets

from gui import shortcuts
from gui.background import Background
from gui.close_wait import GRACE_S, NotEnded, run_events_until, wait_with_dialog
from gui.confirm import confirm
from gui.entry_reads import same_file
from gui.instruments_panel import InstrumentsPanel
from gui.mmt_view import MMTView
from gui.recipes_view import RecipesView
from gui.rig_holder import RigHolder
from gui.scan_tab import ScanTab
from gui.session_browser import SessionBrowser
from gui.settings_sync import SYNC_WAIT_S, SettingsWriter
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.rig import safe_command_hint, safety_statement
from smm_daq.shell_words import command_line, resume_command

TITLE = "smm-daq"
# how long the window's close waits for a subtraction or an MMT save in hand (real seconds):
# long for a write on a disk that answers; past it the disk is taken for stalled
WRITES_WAIT_S = 120.0


class MainWindow(QtWidgets.QMainWindow):
    """Holds the rig, the open session file and the tabs; settings persist in `settings`."""

    def __init__(
        self,
        profile: Profile,
        settings: QtCore.QSettings,
        *,
        time_scale: float | None = None,
        world_options: dict | None = None,
        persist: bool = True,
        profile_warnings: Sequence[str] = (),
    ) -> None:
        """`profile_warnings`: what the profile warned of as it loaded (`ProfileWarning`),
        shown on the Instruments tab and said on the status line."""
        super().__init__()
        self.profile = profile
        self.settings = settings  # read here only: written through `settings_writer`
        self.settings_writer = SettingsWriter(settings)  # never on the window's thread
        self.persist = persist  # False: nothing written to the settings (the demo)
        self.holder = RigHolder(profile, time_scale=time_scale, world_options=world_options)
        self._title = f"{TITLE}: {profile.name}"  # and the session file's name, once open
        self._scan_progress = 0.0
        self.setWindowTitle(self._title)

        self.tabs = QtWidgets.QTabWidget()
        self.instruments = InstrumentsPanel(self.holder)
        self.scan = ScanTab(self.holder)
        self.instruments.stopDuringScan.connect(self.scan.stop_during_scan)
        self.session = SessionBrowser()
        self.shortcuts = shortcuts.install(self, self.scan, self.instruments, self.session)
        self.escape_stops = shortcuts.EscapeStops(self, self.stage_may_be_moving,
                                                  self.instruments.stop_button.click)
        self.recipes = RecipesView(self.holder, self.scan)
        self.instruments.stopPressed.connect(self.recipes.stop_field_ramp)
        self.mmt = MMTView(profile)
        self.tabs.addTab(self.instruments, "Instruments")
        self.tabs.addTab(self.scan, "Scan")
        self.tabs.addTab(self.session, "Session")
        self.tabs.addTab(self.recipes, "Recipes")
        self.tabs.addTab(self.mmt, "MMT")
        self.session.entriesChanged.connect(self.mmt.set_entries)
        self.session.entriesChanged.connect(self.scan.entries_read)
        self.session.grainsLoaded.connect(self.mmt.set_grain_file)
        self.session.dragonfly_options = self.mmt.dragonfly.options
        self.session.grain_registration = self.mmt.registration.registration
        self.session.grain_model = self.mmt.model_given
        self.mmt.registration.changed.connect(self.session.grain_placement_changed)
        self.mmt.model.currentTextChanged.connect(
            lambda _model: self.session.grain_placement_changed())
        self.mmt.dragonfly.changed.connect(self.session.dragonfly_options_changed)
        self.session.dragonflyOptionsWanted.connect(self._show_dragonfly_options)
        self.session.fileOpened.connect(self._file_opened)
        self.recipes.ended.connect(self._recipe_ended)
        self.session.mapShown.connect(lambda m: self.scan.show_last_map(m, self.session.path))
        self.session.resumeRequested.connect(self._resume)
        self.session.mmtResultWanted.connect(self._show_mmt_result)
        self.mmt.saved.connect(self._file_written)
        self.scan.scanEnded.connect(self._scan_ended)
        self.scan.live.madeSafe.connect(self._made_safe)
        self.scan.live.stateChanged.connect(lambda _state: self._show_title())
        self.scan.live.stateChanged.connect(self._say_scan_state)
        self.scan.live.progressed.connect(lambda progress, _eta: self._show_title(progress))
        self.holder.changed.connect(self._rig_changed)
        warned = len(profile_warnings)
        # said again as the rig connects (the status line's first words go at once)
        self._profile_warned = (f"; it warned of {warned} key{'s' if warned > 1 else ''}: "
                                "see the Instruments tab" if warned else "")
        self.holder.opened.connect(lambda _rig: self.statusBar().showMessage(
            f"Rig connected{self._profile_warned}."))
        self.holder.failed.connect(lambda _why: self.statusBar().showMessage(
            "The rig is not connected: see the Instruments tab."))
        self.session.set_rig_free(False)  # not connected yet
        self._close_after_scan = False
        self.signalled = ""  # the signal that closed the window, if one did
        # nobody to answer the close's boxes (a signal, or the application quitting): its
        # warnings are said on stderr only
        self._unattended = False
        self._box_up = False  # a question or a warning of the close is up
        # the event loop ended with the window open: a scan that told neither its end nor its
        # making safe in time is left to its thread, as a stalled write is (`close_left_open`)
        self._scan_left = False
        self._closing = False
        # closed past a scan's write stalled on the disk: the program must end without
        # waiting for it (`smm_daq.cli.main.leave_now`)
        self.left_stalled_write = False
        # the close could not make the rig safe, or did not wait for it to end (said): the
        # program's exit code says it too
        self.rig_may_be_unsafe = False
        self._waiting_for_the_rig = False  # the close's making safe under way
        self._closed = False  # the close has been done: a later one has nothing to do
        self._rig_closed = False  # the close's making the rig safe has been done (once)

        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        if profile.simulated:
            layout.addWidget(self._banner())
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.instruments.show_profile_warnings(profile_warnings)
        self.statusBar().showMessage(f"Profile {profile.path}{self._profile_warned}")
        self._restore()

    def _banner(self) -> QtWidgets.QLabel:
        banner = QtWidgets.QLabel(
            "SIMULATED RIG: every instrument is an emulator; no real hardware is connected."
        )
        banner.setObjectName("simulatedBanner")
        banner.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        banner.setStyleSheet(
            "background: #ffd54f; color: #3e2723; font-weight: bold; padding: 6px;"
        )
        return banner

    def _rig_changed(self) -> None:
        """Resume needs the rig connected and free; a connect under way is said."""
        holder = self.holder
        self.session.set_rig_free(holder.rig is not None and not holder.busy
                                  and not holder.recipe_running)
        if holder.connecting:
            self.statusBar().showMessage(
                "Reconnecting the rig…" if holder.reconnecting else "Connecting the rig…")

    def stage_may_be_moving(self) -> bool:
        """Whether the stage may be moving, for Esc in a dialog (`shortcuts.EscapeStops`): a
        scan under way and not paused (starting, resuming, aborting too), or a Go to or jog
        not seen at rest since, or a move seen (a recipe's), or a connect that may reference
        the stage, or a field's ramp-up (Set field's, a recipe's set_field step's); not once
        the close has begun making the rig safe, which stops the stage. While a resume reads
        its entry (the rig held, no scan started: nothing of the scan moves), only a Go to or
        jog may be."""
        if self._closing:
            return False
        if self.holder.connecting:  # a connect's reference move (`reference_on_connect`)
            return self.profile.stage.reference_on_connect
        if self.holder.busy and not self.scan.resuming:
            return self.scan.live.state != "paused"
        # a field's ramp-up, which Stop ends, is as urgent as a move
        return (self.instruments.stage_may_be_moving or self.instruments.field_ramping
                or self.recipes.field_ramping)

    # --- tabs ----------------------------------------------------------------------------
    def show_view(self, name: str) -> None:
        """Bring the tab called `name` (case-insensitive) to the front."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i).lower() == name.lower():
                self.tabs.setCurrentIndex(i)
                return
        raise KeyError(name)

    # --- session file --------------------------------------------------------------------
    def open_file(self, path: Path) -> int:
        """Start reading a session file's entries in the Session tab (`SessionBrowser.open_file`):
        the read's token."""
        return self.session.open_file(path)

    def _file_opened(self, path: Path) -> None:
        # once the close has begun its settings are handed to the writer: none after them
        if self.persist and not self._closing:
            self.settings_writer.setValue("session/file", str(path))
        self._title = f"{TITLE}: {self.profile.name}: {path.name}"
        self._show_title()
        self.scan.set_path(path)

    def _show_title(self, progress: float | None = None) -> None:
        """The window's title, with the scan's state and `progress` while one runs: from the
        taskbar, or a remote desktop's thumbnail, a scan paused in the night (an overload)
        is seen without opening the window."""
        if progress is not None:
            self._scan_progress = progress
        live, shown = self.scan.live, self.session.path
        title = self._title
        if live.running:
            # the file the scan writes, unless the title names it already (the Session tab
            # may show another, opened during the scan)
            into = ("" if live.path is None or (shown is not None and same_file(live.path, shown))
                    else f"{live.path.name}: ")
            title += f" [{into}scan {live.state}, {100 * self._scan_progress:.0f} %]"
        if title != self.windowTitle():
            self.setWindowTitle(title)

    def _show_dragonfly_options(self) -> None:
        """The MMT tab, its Dragonfly options on show (they are the Session tab's too)."""
        self.mmt.set_grain_format("dragonfly")  # once an inversion running ends, if one is
        self.show_view("mmt")
        self.mmt.dragonfly.min_voxels.setFocus()

    def _file_written(self, path: Path) -> None:
        if self._closing:  # an MMT save the close waited for: nothing to show it in
            return
        if self.session.path is not None and same_file(Path(path), self.session.path):
            self.session.refresh()  # no disk asked here: the window's thread never waits

    def _show_mmt_result(self, path: Path, entry: str) -> None:
        """The MMT tab, showing a saved result once read (its status says how it goes), unless
        the user keeps a result in no file there (asked: `MMTView.show_saved`)."""
        if self.mmt.show_saved(path, entry):
            self.show_view("mmt")

    def _resume(self, path: Path, entry: str) -> None:
        if self.scan.resume_entry(path, entry):
            self.show_view("scan")
        else:
            self.statusBar().showMessage(self.scan.status.text())

    def _show_written(self, path: Path | None) -> str:
        """The Session tab on the file a scan or recipe wrote, its entries read again; or,
        where the operator has another file open there, that file kept (their place in it
        not lost) and what to say of the file written."""
        shown = self.session.wanted_path()
        if path is None:
            return ""
        if shown is not None and same_file(path, shown):
            self.session.refresh()
        elif shown is None:  # opened if it exists (asked off the window's thread)
            self.session.open_file(path, missing_ok=True)
        else:
            return f"{path.name} has new entries: open {path} in the Session tab to see them"
        return ""

    def _recipe_ended(self, path: Path) -> None:
        if not self._closing:  # stopped by the close: nothing to show it in
            note = self._show_written(path)  # its last step may have been a subtraction
            if note:
                self.statusBar().showMessage(f"Recipe ended; {note}")

    def _scan_ended(self, kind: str, message: str) -> None:
        if self._closing:  # closed without waiting for a stalled write, which returned since
            return
        # a scan refused at its start wrote nothing: its file has no new entries to show
        note = "" if kind == "not started" else self._show_written(self.scan.path)
        self.statusBar().showMessage(f"Scan {kind}" + (f": {message}" if message else "")
                                     + (f" ({note})" if note else ""))
        if self._close_after_scan:
            self.close()

    def _say_scan_state(self, state: str) -> None:
        """A scan under way says so on the status line, which else kept the last scan's end
        ("Scan finished" while the next one ran); its end is said by `_scan_ended`."""
        live = self.scan.live
        if live.running and live.plan is not None and not self._closing:
            self.statusBar().showMessage(f"Scan '{live.plan.name}' {state}")

    def _made_safe(self, _safe: bool) -> None:
        """The rig made safe (on an abort, or at the scan's end) and a write of the scan's not
        returned: a close agreed to waits no longer for the scan's end (which waits for the
        disk). Told again for a later write (the scan's end), once closed: nothing to do."""
        if self._closing:
            return
        self.statusBar().showMessage(self.scan.status.text())
        if self._close_after_scan:
            self.close()

    def close_on_signal(self, name: str) -> None:
        """Signal `name` (Ctrl-C, SIGTERM, SIGHUP): close as the close button does, answered
        Yes, since nobody may be there to answer: a scan aborted first (the window closes
        once the rig is safe), a recipe stopped, an inversion cancelled, and every warning
        said on stderr only. A question or warning of a close up then is answered (Yes, or
        OK) and that close goes on: closing inside the box's event loop would leave the box
        up, waiting for nobody, and abort a scan whatever the answer."""
        self.signalled = name
        self._unattended = True
        print(f"smm-daq: {name}: closing the window; the rig is made safe first", file=sys.stderr,
              flush=True)
        if self._box_up:  # the close in hand goes on, its box answered (Yes, or OK)
            _answer_box()
            return
        self._close_answered_yes()

    def close_left_open(self) -> None:
        """The application's event loop has ended with the window open (`quit()` or `exit()`
        called directly, not through the window's close; a question of the close up then is
        answered No): the window closes now as a signal closes it, answered Yes for whoever
        quit and its warnings on stderr only (a box would hold the program's end), its events
        handled meanwhile in a loop of its own. Bounded: a scan that has told neither its end
        nor its making safe (the sequencer's own bounds not holding) as long after its abort
        as making the rig safe and telling a stalled write take is left to its thread, as a
        stalled write is, and the rig made safe by the window.

        Called once `exec()` has returned, not on `aboutToQuit`, which Qt emits inside
        `exit()`, maybe inside a question's event loop of the close in hand."""
        if self._closed:
            return
        try:
            self._close_left_open()
        except Exception:  # outside the event loop: reported here as the hooks report it
            sys.excepthook(*sys.exc_info())
            self._close_after_error()

    def _close_left_open(self) -> None:
        from smm_daq.acquisition import sequencer

        self._unattended = True
        print("smm-daq: the application is quitting with the window open: closing it; the rig "
              "is made safe first", file=sys.stderr, flush=True)
        self._close_answered_yes()
        limit = self.holder.longest_close_s(wait=False) + sequencer.WRITE_STALLED_S + GRACE_S
        if self._closed or run_events_until(lambda: self._closed, limit):
            return
        print(f"smm-daq: the scan had not ended {limit:.0f} s after its abort: the window closes "
              "without waiting for it longer", file=sys.stderr, flush=True)
        self._scan_left = True
        self.close()

    def _close_answered_yes(self) -> None:
        """Close as the close button does, answered Yes: a scan aborted first (the window then
        closes once the rig is safe), a recipe stopped, an inversion cancelled."""
        live = self.scan.live
        if live.running and not live.write_stalled and not self._close_after_scan:
            live.abort()
        self._close_after_scan = True
        self.close()

    def _ask(self, question: str) -> bool:
        """Yes or No to a question of the close; a signal while it is up answers it Yes
        (`close_on_signal`)."""
        self._box_up = True
        try:
            return confirm(self, question) or bool(self.signalled)
        finally:
            self._box_up = False

    def _warn(self, text: str) -> None:
        """A warning of the close: in a box, or, with nobody to answer it, on stderr only
        (also when a signal answered the box)."""
        if not self._unattended:
            self._warning_box(text)
        if self._unattended:
            print(f"smm-daq: {text}", file=sys.stderr, flush=True)

    def _say_left(self, text: str) -> None:
        """What the close left unwritten: on stderr (it stays once the window has gone), and in
        a box unless nobody is there to answer it."""
        print(f"smm-daq: {text}", file=sys.stderr, flush=True)
        if not self._unattended:
            self._warning_box(text)

    def _warning_box(self, text: str) -> None:
        """A warning of the close in a box; a signal while it is up answers it OK."""
        self._box_up = True
        try:
            QtWidgets.QMessageBox.warning(self, TITLE, text)
        finally:
            self._box_up = False

    # --- settings and closing ------------------------------------------------------------
    @property
    def closing(self) -> bool:
        """The user has agreed to close the window (it may still wait for a scan to end)."""
        return self._closing or self._close_after_scan
    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        self.scan.restore(self.settings)
        tab = self.settings.value("window/tab")
        if isinstance(tab, str):
            with contextlib.suppress(KeyError):
                self.show_view(tab)

    def _leave_stalled_write(self) -> bool:
        """Whether to close while a write of the scan's has not returned: asked, or, when
        closing was agreed to already, said. The writer's thread is left to the disk (the
        process can end while it waits); the file stays crash-safe, and what to do with it
        is said."""
        live = self.scan.live
        path, entry = live.path, live.plan.name if live.plan is not None else "ENTRY"
        rig = ("The rig is safe (stage stopped, field at its safe state)" if live.rig_safe
               else f"The rig may NOT be safe ({live.message}); it is made safe once more on "
                    "closing")
        repair = command_line(["smm-daq", "repair", path])
        text = (f"{rig}, but the scan's write to {path} has not returned (disk stalled?). "
                "Closing does not wait for it: the lines stored before stay in the file. If "
                f"the file will not open afterwards, `{repair}` makes it openable without "
                "losing them; Resume scan (Session tab) or "
                f"`{resume_command(path, entry)}` then finishes the scan.{self._writes_left()}")
        if self._close_after_scan:
            self._warn(text)
            return True
        return self._ask(f"{text}\n\nClose without waiting for the write?")

    def _dropped_unsaved(self) -> str:
        """The MMT result in no file, said in a question whose Yes closes without asking for
        it again (a scan's, an inversion's): "" without one."""
        unsaved = self.mmt.unsaved
        return (f"\n\n{unsaved} is not saved (the MMT tab's Save to file): closing drops it."
                if unsaved else "")

    def _still_making_safe(self, waited_s: float) -> list[str]:
        """The scan's thread was still making the rig safe when closing waited no longer for
        it (`waited_s`, as long as making the rig safe may take): said on stderr at once (it
        stays once the window has gone, and the window's own making safe, next, waits for the
        rig, for a bounded time), and returned for the close's warning should that making
        safe not do every step."""
        text = (f"the scan's thread was still making the rig safe {waited_s:.0f} s after "
                "closing was agreed to, as long as making it safe may take (an instrument not "
                "answering, or another making safe under way holding the rig); the window makes "
                "the rig safe once more and closes it, but it may not be safe until that thread "
                f"ends. {safe_command_hint(self.profile)}.")
        print(f"smm-daq: {text}", file=sys.stderr, flush=True)
        return [text[:1].upper() + text[1:]]

    def _writes_left(self) -> str:
        """What the Session and MMT tabs are writing, which closing past a stalled write
        leaves too ("" when nothing): each waits for the same disk, or for HDF5, which a
        write stalled inside it holds for the whole program."""
        writes = [what for _worker, whats in self._writes_in_hand() for what in whats]
        if not writes:
            return ""
        what = _listed(writes)
        one = len(writes) == 1
        return (f" Nor does it wait for {what}, which {'waits' if one else 'wait'} for the "
                f"stalled disk too: {'it is' if one else 'they are'} left unwritten; do "
                f"{'it' if one else 'them'} again once the file opens.")

    def save_settings(self) -> SettingsWriter | None:
        """The window's settings set, and their write to disk under way in the writer's thread
        (the close waits for it beside the window, bounded: a stalled home disk must not hold
        the close); None when nothing is written (the demo)."""
        if not self.persist:
            return None
        writer = self.settings_writer
        writer.setValue("window/geometry", self.saveGeometry())
        writer.setValue("window/tab", self.tabs.tabText(self.tabs.currentIndex()))
        writer.setValue("profile/path", str(self.profile.path))
        self.scan.save(writer)  # type: ignore[arg-type]  # only its setValue is called
        return writer

    def _writes_in_hand(self) -> list[tuple[Background, list[str]]]:
        """What the Session tab's worker, the MMT tab's two (a save, an export) and a recipe's
        are writing, each worker with its writes as said (e.g. "the subtraction 'd' into s.h5")."""
        saving = self.mmt.saving and self.mmt.saving_into is not None
        runner = self.recipes.runner
        return [(self.session.worker, self.session.writes_in_hand()),
                (self.mmt.worker, [f"the MMT result being saved into "
                                   f"{self.mmt.saving_into.name}"] if saving else []),
                (self.mmt.export_worker, self.mmt.exports_in_hand),
                *([(runner.analysis, runner.writes_in_hand())] if runner is not None else [])]

    def _close_beside_the_window(self, stalled: bool, settings: SettingsWriter | None
                                 ) -> tuple[list[str], list[str], list[str], bool]:
        """Hand the rig back from a scan left to a `stalled` write (its making safe under way
        waited for `sequencer.hand_back_wait_s` at most), then make the rig safe and close it
        (`RigHolder.close`, bounded), then, unless `stalled`, wait for the Session and MMT
        tabs' writes in hand (a subtraction, a save: `WRITES_WAIT_S` from the start at most),
        and for the window's `settings` being written (`SYNC_WAIT_S` from the start at most):
        in a thread of the close's own, the window answering meanwhile and a dialog saying
        what it waits for should it last. Returns what was said of that scan's thread still
        making the rig safe, what the close's making safe could not do, the writes not
        waited for to their end, and whether the settings were written."""
        left = self.scan.live.sequencer if stalled else None
        in_hand = [] if stalled else [(w, what) for w, what in self._writes_in_hand() if what]
        writes = [what for _worker, whats in in_hand for what in whats]
        hand_back_s = 0.0  # how long the scan's thread's making safe is waited for
        if left is None:
            limit = self.holder.longest_close_s(wait=True)
            text = "Making the rig safe and closing it"
        else:
            from smm_daq.acquisition import sequencer  # loaded: a scan ran

            hand_back_s = sequencer.hand_back_wait_s(left.rig)
            limit = hand_back_s + self.holder.longest_close_s(wait=False)
            text = ("Waiting for the scan's thread to end its making the rig safe, then making "
                    "the rig safe and closing it")
        if settings is not None:  # not said: it ends at once unless the disk stalls
            limit = max(limit, SYNC_WAIT_S)
        if writes:
            limit = max(limit, WRITES_WAIT_S)
            text += f", and waiting for {_listed(writes)} to be written"
        text += (f"…\nThe window closes once that is done (at most {limit:.0f} s, should an "
                 "instrument or the disk not answer).")

        def work() -> tuple[list[str], list[str], list[str], bool]:
            began = time.monotonic()
            late = ([] if left is None or left.hand_back_rig()
                    else self._still_making_safe(hand_back_s))
            try:  # the settings then waited for all the same
                closed = self.holder.close(wait=not stalled)  # a start's file work, if stalled
            except Exception as exc:  # never a traceback out of the close: the rig's state said
                closed = [_failed(exc)]
            unwritten = []
            for worker, what in in_hand:
                if not worker.join(max(0.0, began + WRITES_WAIT_S - time.monotonic())):
                    unwritten += what
            saved = settings is None or settings.wait(
                max(0.0, began + SYNC_WAIT_S - time.monotonic()))
            return late, closed, unwritten, saved

        self._waiting_for_the_rig = True
        try:
            return wait_with_dialog(self, TITLE, text, work, limit)
        except NotEnded as exc:  # the work's own bounds did not hold, or the program quits
            return [], [f"making the rig safe and closing it: {exc}; the window did not wait "
                        "for it any longer"], self._not_ended(in_hand), \
                settings is None or settings.wait(0)
        except Exception as exc:  # as above, for whatever else fails
            return [], [_failed(exc)], [], settings is None or settings.wait(0)
        finally:
            self._waiting_for_the_rig = False

    def _not_ended(self, in_hand: list[tuple[Background, list[str]]]) -> list[str]:
        """Of the writes in hand as the close began, each worker's with it, those not ended:
        a worker whose thread has ended has written them all; of one still running, those
        its tab has not yet been told of the end of."""
        still = {what for _worker, whats in self._writes_in_hand() for what in whats}
        return [what for worker, whats in in_hand if not worker.join(0)
                for what in whats if what in still]

    def _exports_in_hand(self) -> set[str]:
        """Of `_writes_in_hand`, the exports (the Session tab's, the MMT tab's): files of their
        own, no session file's entries."""
        return {*self.session.exports_in_hand(), *self.mmt.exports_in_hand}

    def _left_unwritten(self, writes: list[str], exports: Collection[str]) -> None:
        """Writes the close waited no longer for (a slow or stalled disk): said, and the
        program is to end without waiting for them (one stalled inside HDF5 holds h5py's
        lock, which the interpreter's finalization would wait for forever). Those of them
        in `exports` are files of their own: no session file to look into or repair."""
        self.left_stalled_write = True
        entries = [what for what in writes if what not in exports]
        cut = [what for what in writes if what in exports]
        one = len(writes) == 1
        text = (f"{_listed(writes)[:1].upper()}{_listed(writes)[1:]} "
                f"{'has' if one else 'have'} not been written {WRITES_WAIT_S:.0f} s after the "
                "window's close began (the disk stalled?): the window closes without waiting "
                "longer.")
        if entries:
            one = len(entries) == 1
            named = f" ({_listed(entries)})" if cut else ""
            text += (" Once the disk answers, `smm-daq info` shows whether the file holds "
                     f"{'it' if one else 'them'}{named} (do {'it' if one else 'them'} again if "
                     "not), and `smm-daq repair` makes a file left open for writing openable.")
        if cut:
            one = len(cut) == 1
            named = f" ({_listed(cut)})" if entries else ""
            text += (" An export cut off may have written some of its files and not others, "
                     "and left a hidden part of one beside them (named .NAME.….part, which "
                     f"may be deleted): export {'it' if one else 'them'}{named} again once the "
                     "disk answers.")
        self._say_left(text)

    def _settings_left(self, settings: SettingsWriter) -> None:
        """The window's settings not written in time (a stalled home disk): said, and the
        program is to end without waiting for them (the writer's thread, waiting for the disk,
        holds Qt's lock of the file, which the program's end could wait for)."""
        self.left_stalled_write = True
        self._say_left(f"The window's settings (its size, tab and scan form) have not been "
                       f"written to {settings.file} {SYNC_WAIT_S:.0f} s after the window's close "
                       "began (the disk stalled?): the window closes without them, and opens "
                       "next time as it was before.")

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """During a scan: ask, then abort it and close once the rig is safe. During a recipe
        or an MMT inversion: ask, then stop or cancel it (an inversion's thread ends after the
        block of sensors in hand); not again after a Yes for a scan. An MMT result in no file
        (`MMTView.unsaved`): ask, or, during a scan or an inversion, say so in that question.
        A Set field's ramp in hand
        is stopped at its next step and makes the rig safe from there (`Rig.make_safe`, one at
        a time), which the close's own making safe waits for. A write of the scan's
        that has not returned once the rig was made safe (a line's, aborted, or one at the
        scan's end: a stalled disk) is not waited for, nor a subtraction or MMT save in hand
        (each waits for the same disk): the window says what is left, and closes (once agreed
        to). Making the rig safe then is waited for a bounded time (`RigHolder.close`), and
        then, the disk not stalled, a subtraction (a recipe's too) or MMT save in hand
        (`WRITES_WAIT_S`; past it said, and left), and the window's settings being written
        (`SYNC_WAIT_S`, likewise), the window answering meanwhile
        (`_close_beside_the_window`); what the making safe could not do, or that it had not
        ended, is said in a warning and on stderr, with the command that makes the rig safe,
        and in the program's exit code (`rig_may_be_unsafe`). A signal while a question is up
        answers it Yes (`close_on_signal`). Once closed, a close again accepts at once.

        Should the close's own code raise (a bug), the window closes all the same, the rig
        made safe unless the close had done it (`_close_after_error`), and the error goes on
        to the window's hooks (`gui.slot_errors`: reported, exit code 1); Qt takes the close
        as accepted then anyway."""
        try:
            self._close(event)
        except BaseException:
            self._close_after_error()
            event.accept()
            raise

    def _close(self, event: QtGui.QCloseEvent) -> None:
        """`closeEvent`, but for its own errors."""
        if self._waiting_for_the_rig:  # a close under way (its dialog's events are handled)
            event.ignore()
            return
        if self._closed:  # closed again (the application closing every window)
            event.accept()
            return
        live = self.scan.live
        stalled = live.running and (live.write_stalled or self._scan_left)
        if self._scan_left:  # closing was agreed to; it was said that the scan is left
            self.left_stalled_write = True
        elif stalled:
            if not self._leave_stalled_write():
                event.ignore()
                return
            self._close_after_scan = True  # said Yes: not asked again for a recipe
            self.left_stalled_write = True  # made safe and closed below, the write left behind
        elif live.running:
            if not self._close_after_scan:
                if not self._ask("A scan is running. Abort it (the rig is made safe) and "
                                 f"close?{self._dropped_unsaved()}"):
                    event.ignore()
                    return
                self._close_after_scan = True
                self.scan.live.abort()
            event.ignore()
            return
        agreed = self._close_after_scan  # Yes to closing was said for the scan: once is enough
        recipe = self.recipes.runner
        if recipe is not None and recipe.running and not agreed and not self._ask(
                "A recipe is running. Stop it (the rig is made safe) and close?"):
            event.ignore()
            return
        if self.mmt.running:
            if not agreed and not self._ask("An MMT inversion is running. Cancel it and close?"
                                            f"{self._dropped_unsaved()}"):
                event.ignore()
                return
            self.mmt.cancel()  # it stops after its block of sensors in hand
        elif self.mmt.unsaved and not agreed and not self._ask(
                f"{self.mmt.unsaved} is not saved (the MMT tab's Save to file). Close without "
                "saving it?"):
            event.ignore()
            return
        self._closing = True
        self.mmt.shutdown(wait_for_save=not stalled)  # a save in hand finishes, unless stalled
        self.session.shutdown(wait_for_writes=not stalled)  # so does a subtraction
        self.recipes.shutdown(wait_for_writes=not stalled)  # and a recipe's subtraction
        if self.recipes.runner is not None and self.recipes.runner.running:
            self.recipes.stop()  # a wait step ends within a slice; the rig is then made safe
        self.instruments.stop_field_ramps()  # each makes the rig safe, which the close waits for
        settings = self.save_settings()
        exports = self._exports_in_hand()  # as the close begins: told of their end meanwhile
        late, closed, unwritten, saved = self._close_beside_the_window(stalled, settings)
        self._rig_closed = True
        if unwritten:
            self._left_unwritten(unwritten, exports)
        if settings is not None and not saved:
            self._settings_left(settings)
        if closed:  # said on stderr too: it stays once the window has gone
            self.rig_may_be_unsafe = True
            print(f"smm-daq: {safety_statement(self.profile, closed)}", file=sys.stderr,
                  flush=True)
            run = "" if late else f"\n{safe_command_hint(self.profile)}."  # `late` says it
            self._warn("The rig may not be safe:\n" + "\n".join(late + closed) + run)
        elif late:  # the window's making safe waited for that thread's (the rig's lock)
            print("smm-daq: the window's own making safe, after the scan's thread's, did every "
                  f"step: {safety_statement(self.profile, [])}", file=sys.stderr, flush=True)
        self._closed = True
        event.accept()

    def _close_after_error(self) -> None:
        """The close raised (a bug in its code, or in what it calls): the window is closed, a
        scan aborted, a recipe stopped, and the rig made safe and closed, bounded, unless the
        close had done that already; what is left unsafe is said on stderr (the error's box
        says to run `smm-daq safe`, and the exit code is 1). Nothing here raises: an error of
        its own is said on stderr, the rig then taken as possibly unsafe. Done once: a close
        again, and `close_left_open`, find the window closed."""
        if self._closed:
            return
        self._closed = self._closing = True
        if self._rig_closed:
            return
        self._rig_closed = True
        try:
            live = self.scan.live
            if live.running and not live.write_stalled:
                live.abort()
            if self.recipes.runner is not None and self.recipes.runner.running:
                self.recipes.stop()
            self.instruments.stop_field_ramps()
            _late, closed, _unwritten, _saved = self._close_beside_the_window(live.running, None)
        except Exception as exc:
            closed = [_failed(exc)]
        if closed:
            self.rig_may_be_unsafe = True
        print("smm-daq: the window's close raised an error (its traceback is told apart); the "
              f"window closes all the same: {safety_statement(self.profile, closed)}",
              file=sys.stderr, flush=True)


def _failed(exc: Exception) -> str:
    return f"making the rig safe and closing it failed ({type(exc).__name__}: {exc})"


def _answer_box() -> None:
    """The box up (the application's modal widget) answered Yes, or a warning's OK, as if
    clicked."""
    box = QtWidgets.QApplication.activeModalWidget()
    if isinstance(box, QtWidgets.QMessageBox):
        buttons = QtWidgets.QMessageBox.StandardButton
        button = box.button(buttons.Yes) or box.button(buttons.Ok)
        if button is not None:
            button.click()


def _listed(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]
