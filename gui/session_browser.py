"""Session: the entries of an open session file with their status; any map opens in a view."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets

from gui.background import Background
from gui.background_dialog import BackgroundDialog
from gui.background_dialog import said_in_window as background_said
from gui.command import recorded_command
from gui.compare_view import CompareView
from gui.dragonfly_options import CROP_TO_SCAN, describe, for_map
from gui.entry_reads import EntryReads, Then, same_file
from gui.grain_outlines import registered_outlines
from gui.grain_registration import describe_registration
from gui.grain_words import FORMATS_TIP
from gui.grain_words import said_in_window as grains_said
from gui.image_registration import RegistrationDialog, underlay_transform
from gui.import_dialog import ImportChoice, ImportDialog, import_job, import_said
from gui.local_time import shown_time, time_key
from gui.map_exports import dataset_chosen, export_map, exportable, file_stem, offered, outputs
from gui.map_noise import noise_said
from gui.map_view import MapView, Quantity
from gui.message_line import MessageLine
from gui.subtract_dialog import SubtractDialog, said_in_window, subtract_command
from smm_daq.analysis.mmt.formats.dragonfly import DragonflyOptions
from smm_daq.analysis.mmt.formats.grains import GRAIN_FORMATS
from smm_daq.analysis.mmt.grain_shaping import check_registration
from smm_daq.analysis.mmt.registration import GrainRegistration
from smm_daq.analysis.optical import ImageRegistration, read_image
from smm_daq.analysis.subtract_inputs import holds_measured_map
from smm_daq.cli.maps import exportable_maps
from smm_daq.cli.warning_text import said_as
from smm_daq.errors import SmmError
from smm_daq.storage.h5file import read_whole
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.names import typed_entry_name
from smm_daq.storage.nexus import EntryInfo, list_entries, read_map
from smm_daq.storage.optical_entry import KIND as OPTICAL
from smm_daq.storage.optical_entry import read_optical_entry, write_optical_entry
from smm_daq.storage.product_maps import ProductMap, read_product_map
from smm_daq.storage.strings import text
from smm_daq.thread_warnings import recorded

if TYPE_CHECKING:  # registration needs SciPy: imported when a subtraction runs
    from smm_daq.analysis.subtraction import SubtractionResult

UT = 1e-6
RESUMABLE = ("interrupted", "aborted", "failed")
REFRESH_KEY = "F5"  # window-wide, on this tab only (`gui.shortcuts`)
PLACEMENT_SETTLE_MS = 300  # the grains are drawn again this long after their placement changed
COLUMNS = ("entry", "kind", "status", "title", "size", "field (µT)", "lines done", "started")
EXPORT = "the export of"  # how an Export… in hand is said (`exports_in_hand`)


def describe_entry(info: EntryInfo) -> tuple[str, ...]:
    """One table row for an entry."""
    size = f"{info.shape[1]} × {info.shape[0]}" if info.shape else "–"
    field = (
        "({}, {}, {})".format(*(field_text(b) for b in np.asarray(info.applied_field)))
        if info.applied_field is not None
        else "–"
    )
    lines = (
        f"{info.lines_done} / {info.shape[0]}"
        if info.lines_done is not None and info.shape
        else "–"
    )
    title = info.problem or info.title  # an unreadable entry says why in the title's place
    return (info.name, info.kind, info.status, title, size, field, lines,
            shown_time(info.start_time))


def field_text(b: float) -> str:
    """A field component (T) in µT to the nT, as the Scan tab's form takes it: 0.04 (a field
    applied, counted in-field when maps are compared) is not shown as a zero-field 0.0."""
    text = f"{b / UT:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def sort_keys(info: EntryInfo) -> tuple[object, ...]:
    """What each column of `describe_entry` sorts by: numbers as numbers (the size by its
    pixels, the field by its components in turn, signed, so a back-field series stays in
    order; lines done as done), text as text; an entry without the value sorts first."""
    size = info.shape[0] * info.shape[1] if info.shape else -1
    field = (tuple(float(b) for b in info.applied_field) if info.applied_field is not None
             else (-math.inf,) * 3)
    lines = info.lines_done if info.lines_done is not None else -1
    text = describe_entry(info)
    return (text[0].casefold(), text[1], text[2], text[3].casefold(), size, field, lines,
            time_key(info.start_time))


class _Item(QtWidgets.QTableWidgetItem):
    """A table cell that sorts by its key, not by its text ("9 / 21" after "21 / 21")."""

    def __init__(self, text: str, key: object) -> None:
        super().__init__(text)
        self.key = key

    def __lt__(self, other: QtWidgets.QTableWidgetItem) -> bool:
        if isinstance(other, _Item) and type(self.key) is type(other.key):
            return self.key < other.key  # type: ignore[operator]
        return super().__lt__(other)


def product_quantity(product: ProductMap) -> Quantity:
    """How a product's map is shown: its signal's name and unit ("1" shown as SI)."""
    name = {"chi": "χ"}.get(product.signal, product.signal)
    unit = "SI" if product.units in ("1", "") else product.units
    return Quantity(name, unit, 1.0)


def resumable(info: EntryInfo) -> bool:
    """A scan that stopped before its last line: interrupted, aborted or failed."""
    return (info.kind == "scan" and info.status in RESUMABLE and info.shape is not None
            and info.lines_done is not None and info.lines_done < info.shape[0])


def failure_text(exc: BaseException, fallback: str,
                 said: Callable[[str], str] = str) -> str:
    """What the tab says of a job that failed: the error itself where it is the file's or the
    input's (`SmmError`, `OSError`: its message names what was wrong), as `said` words it;
    else `fallback` with the error's repr (an error of this program's)."""
    if isinstance(exc, (SmmError, OSError)):
        return said(str(exc))
    return f"{fallback}: {exc!r}"


class _Missing(FileNotFoundError):
    """The file to open, if it exists, does not."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} does not exist")


def shift_said(res: SubtractionResult, rotation: bool = False) -> str:
    """The registration's shift, as found, and whether it was applied (one not significantly
    different from zero is not, unless forced); with `rotation` (one was fitted: it is
    applied), the rotation as the command line says it; "" for maps subtracted as they lie;
    that none was applied where the registration determined none."""
    if not res.registered or res.registration is None:
        return ""
    if res.registration.undetermined:
        return ": no shift determined, none applied"
    found = res.registration.shift
    (sx, sy), (ex, ey) = np.array(found) / 1e-6, np.array(res.shift_sd) / 1e-6
    applied = ("remanent shifted by it" if res.shift == found else
               "not significantly different from zero: not applied")
    turned = (f"; rotation {np.degrees(res.rotation):.4f} ± {np.degrees(res.rotation_sd):.4f}°"
              ", remanent rotated by it" if rotation else "")
    # to 0.01 µm, as the registration's warnings say it (a shift known to µm was said to nm)
    return f": shift found ({sx:.2f} ± {ex:.2f}, {sy:.2f} ± {ey:.2f}) µm, {applied}{turned}"


class SessionBrowser(QtWidgets.QWidget):
    """The Session tab: entries table above, map and comparison views below."""

    fileOpened = QtCore.pyqtSignal(object)  # Path
    mapShown = QtCore.pyqtSignal(object)  # MapData
    grainsLoaded = QtCore.pyqtSignal(object, str)  # grain file Path, format: outlines drawn
    grainsPlaced = QtCore.pyqtSignal(object, str)  # the same, drawn again placed anew
    grainsFailed = QtCore.pyqtSignal(str)  # why a grain file could not be read
    dragonflyOptionsWanted = QtCore.pyqtSignal()  # show the (MMT tab's) Dragonfly options
    entriesChanged = QtCore.pyqtSignal(object, object)  # Path, its entries (as re-read)
    entriesRead = QtCore.pyqtSignal(int, object)  # read token, the entries shown
    entriesFailed = QtCore.pyqtSignal(int, str)  # read token, why the file was not read
    resumeRequested = QtCore.pyqtSignal(object, str)  # session file Path, scan entry
    mmtResultWanted = QtCore.pyqtSignal(object, str)  # session file Path, MMT result entry
    subtracted = QtCore.pyqtSignal(bool, str)  # a subtraction ended: written?, what happened
    imageStored = QtCore.pyqtSignal(bool, str)  # an image registration ended: stored?, what
    exported = QtCore.pyqtSignal(bool, str)  # an export ended: written?, what happened
    processed = QtCore.pyqtSignal(bool, str)  # a background removal ended: written?, what
    noiseMeasured = QtCore.pyqtSignal(bool, str)  # a noise from a repeat: measured?, what
    imported = QtCore.pyqtSignal(bool, str)  # an import of a scan ended: written?, what

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.entries: list[EntryInfo] = []
        # how Dragonfly exports are read: the main window gives the MMT tab's options
        self.dragonfly_options: Callable[[], DragonflyOptions] = DragonflyOptions
        # where the grains lie on the scan: the main window gives the MMT tab's registration
        self.grain_registration: Callable[[], GrainRegistration] = GrainRegistration
        # and the grain model it will invert them with (None: the default)
        self.grain_model: Callable[[], str | None] = lambda: None
        # a large Dragonfly export takes seconds to read: read in a worker of its own, not
        # queued behind a subtraction
        self.grain_reader = Background("grains", self)
        self._grain_read = 0  # the grain read whose outlines are wanted (older ones: dropped)
        self.outlines_drawn = ""  # what the outlines on show are, and how they were read
        # the grain file and format last drawn: drawn again where the grains are placed anew
        self.grains_drawn: tuple[Path, str] | None = None
        # the grains' placement (or the Dragonfly options the outlines on show were read
        # with) changed since those outlines were drawn: a refused read takes them off
        self.outlines_moved = False
        # the read in hand whose outlines are wanted (file, format, `again`): placed as when
        # it began, it is read again where the grains' placement changes meanwhile
        self.grains_reading: tuple[Path, str, bool] | None = None
        # a change of where the grains lie redraws them once the changes stop coming (a
        # number typed digit by digit: one read, not one a digit)
        self.placement_timer = QtCore.QTimer(self)
        self.placement_timer.setSingleShot(True)
        self.placement_timer.setInterval(PLACEMENT_SETTLE_MS)
        self.placement_timer.timeout.connect(self._place_grains_again)
        # maps to compare, registered images and images to register: read off the GUI thread
        # (a large map or image takes seconds), not queued behind a subtraction
        self.reader = Background("maps", self)
        self.registering = False  # an image being read, registered or stored
        self.closed = False  # the window has closed: its workers are shut down
        # the file's entries, read off the window's thread: listing them waits for the disk
        # (a network share, a large file) and for a scan's line being written into the file
        self.entry_reads = EntryReads(self)
        self._opening = False  # the read in hand opens a file (as another file's, if it is)

        self.path_label = QtWidgets.QLabel("No session file open")
        self.path_label.setWordWrap(True)
        open_button = QtWidgets.QPushButton("Open…")
        open_button.clicked.connect(self._choose_file)
        self.refresh_button = refresh_button = QtWidgets.QPushButton("Refresh")
        refresh_button.setToolTip(f"Read the file's entries again ({REFRESH_KEY}, on this tab)")
        refresh_button.clicked.connect(lambda: self.refresh())
        self.import_button = QtWidgets.QPushButton("Import scan…")
        self.import_button.setToolTip(
            "A scan of the multipole library (MetaDict JSON + NPZ) or the MMT community's "
            "(QDM Bz text + scan parameters JSON) as a new entry, as smm-daq import mpe and "
            "smm-daq import mmt-scan write it")
        self.import_button.clicked.connect(self._choose_import)
        grains_button = QtWidgets.QPushButton("Grain outlines…")
        grains_button.setToolTip("Draw the grains of a micro-CT grain file over the maps")
        grains_button.clicked.connect(self._choose_grains)
        self.resume_button = QtWidgets.QPushButton("Resume scan")
        self.resume_button.setToolTip(
            "Finish the selected interrupted, aborted or failed scan from its first "
            "unfinished line (in the Scan tab, on the connected rig)"
        )
        self.resume_button.setEnabled(False)
        self.resume_button.clicked.connect(self._resume_selected)
        # the rig is connected and no scan or recipe drives it: a scan may be resumed
        self.rig_free = True
        self.mmt_button = QtWidgets.QPushButton("Show in MMT tab")
        self.mmt_button.setToolTip("The selected MMT result in the MMT tab: its grain table, "
                                   "fitted and residual maps, outlines and net")
        self.mmt_button.setEnabled(False)
        self.mmt_button.clicked.connect(self._show_mmt_selected)
        self.product: ProductMap | None = None  # the shown entry's own map (χ, M), if any
        self.product_entry: MapData | None = None
        # the entry whose map is shown or being read: selecting it again reads nothing
        self._shown_name: str | None = None
        # the latest entry's read asked for: the reads of entries passed over since (the arrow
        # keys held down) are neither made nor shown
        self._map_read = 0
        self.show_choice = QtWidgets.QComboBox()
        self.show_choice.setToolTip("What to show of a product such as χ or a magnetization: "
                                    "its value, its standard deviation, or the Bz it models")
        # another quantity of the entry shown: the user's zoom (on a grain) kept
        self.show_choice.currentIndexChanged.connect(
            lambda _i: self._show_product(keep_range=True))
        self.show_choice.hide()
        self.worker = Background("subtract", self)
        self.writes: list[tuple[Path, str]] = []  # the worker's writes in hand: file, what
        self.subtracting = False
        self.subtract_button = subtract_button = QtWidgets.QPushButton("Subtract…")
        subtract_button.setToolTip("A new induced entry: an in-field map minus a remanent map, "
                                   "registered or not")
        subtract_button.clicked.connect(self._choose_subtraction)
        self.export_button = QtWidgets.QPushButton("Export…")
        self.export_button.setToolTip(
            "The selected entry's map as a CSV file and a picture (PNG) beside it, as "
            "smm-daq export writes them")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._choose_export)
        self.processing = False  # a background removal being written
        self.background_button = QtWidgets.QPushButton("Background…")
        self.background_button.setToolTip(
            "A new entry: the selected map with an offset, a plane, the applied field's "
            "reading or each line's drift removed, fitted on background you give, as smm-daq "
            "background and level write it")
        self.background_button.setEnabled(False)
        self.background_button.clicked.connect(self._choose_background)
        self.noise_button = QtWidgets.QPushButton("Noise…")
        self.noise_button.setToolTip(
            "The selected map's noise σ from a repeat of it (another scan of the same sample),"
            " as smm-daq noise --repeat takes it, and the floor the map alone gives")
        self.noise_button.setEnabled(False)
        self.noise_button.clicked.connect(self._choose_repeat)
        self.image_button = image_button = QtWidgets.QPushButton("Image of the sample…")
        image_button.setToolTip(
            "Register an optical or micro-CT image onto the shown map by control points; it "
            "is stored in the file and drawn under the maps"
        )
        image_button.clicked.connect(self._choose_image)
        self.grain_format = QtWidgets.QComboBox()
        self.grain_format.addItems(GRAIN_FORMATS)
        self.grain_format.setToolTip(
            f"The grain format of Grain outlines…: {FORMATS_TIP}. Point grains are drawn as "
            "the circle of the sphere of their volume.")
        self.grain_format.currentTextChanged.connect(lambda _fmt: self._show_grain_note())
        self.dragonfly_button = QtWidgets.QPushButton("Dragonfly options…")
        self.dragonfly_button.setToolTip(
            "Dragonfly exports are read with the MMT tab's options (minimum voxel count, "
            "sample top, z axis, only grains under the scan): show them there (its grain "
            "format set to dragonfly, as drawing a Dragonfly export's outlines sets it)")
        self.dragonfly_button.clicked.connect(self.dragonflyOptionsWanted)
        self.dragonfly_button.hide()
        self.grain_note = QtWidgets.QLabel("")
        self.grain_note.setWordWrap(True)
        self.grain_note.hide()
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        # Sortable by a click on a header, but shown at first in the file's (acquisition)
        # order: no column is the sort column until the user picks one.
        self.table.horizontalHeader().setSortIndicator(-1, QtCore.Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.show_entry(row))
        # keyboard alone: Return (or Enter) opens the entry whose row is current
        for key in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
            opener = QtGui.QShortcut(QtGui.QKeySequence(key), self.table,
                                     context=QtCore.Qt.ShortcutContext.WidgetShortcut)
            opener.activated.connect(self._show_current)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.message = MessageLine()

        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.path_label, 1)
        buttons.addWidget(open_button)
        buttons.addWidget(self.import_button)
        buttons.addWidget(refresh_button)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.mmt_button)
        buttons.addWidget(subtract_button)
        buttons.addWidget(grains_button)
        buttons.addWidget(self.grain_format)
        buttons.addWidget(self.dragonfly_button)
        buttons.addWidget(image_button)
        buttons.addWidget(self.show_choice)
        left_layout.addLayout(buttons)
        # the selected map processed: a row of its own, the row above being full
        processing = QtWidgets.QHBoxLayout()
        for button in (self.export_button, self.background_button, self.noise_button):
            processing.addWidget(button)
        processing.addStretch(1)
        left_layout.addLayout(processing)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.grain_note)
        left_layout.addWidget(self.message)

        self.map_view = MapView()
        self.compare = CompareView(self._load_later)
        self.views = QtWidgets.QTabWidget()
        self.views.addTab(self.map_view, "Map")
        self.views.addTab(self.compare, "Compare")
        self.views.currentChanged.connect(
            lambda _i: self.compare.fit() if self.views.currentWidget() is self.compare else None
        )

        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        splitter.addWidget(left)
        splitter.addWidget(self.views)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([200, 700])
        # a message's details shown take their room from the maps, not from the entries
        self.message.detailsShown.connect(lambda height: splitter.setSizes(
            [sum(splitter.sizes()[:1]) + height, splitter.sizes()[1] - height]))
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(splitter)

    def _choose_file(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a session file", str(self.path.parent if self.path else ""),
            "Session files (*.h5 *.hdf5 *.nxs);;All files (*)",
        )
        if name:
            self.open_file(Path(name))

    def open_file(self, path: Path, then: Then | None = None, *, missing_ok: bool = False
                  ) -> int:
        """Start reading the entries of a session file, off the window's thread; once read
        they are shown (`entriesRead`, `fileOpened`), or the reason it cannot be read
        (`entriesFailed`): then the file open before stays open, here and in the other tabs.
        `then(shown)` follows either (see `EntryReads`). `missing_ok`: a file that does not
        exist (a scan that wrote nothing) is not opened, and not said as an error. The read's
        token."""
        return self._read(Path(path), True, then, missing_ok=missing_ok)

    def refresh(self, then: Then | None = None) -> int | None:
        """Start re-reading the entries of the open file (of the file being opened, while one
        is), as `open_file` does; its token, or None when no file is open (`then` is told
        False at once)."""
        path = self.wanted_path()
        if path is None:
            if then is not None:
                then(False)
            return None
        return self._read(path, self._opening, then)

    @property
    def reading(self) -> Path | None:
        """The file whose entries are being read, or None."""
        return self.entry_reads.pending

    def wanted_path(self) -> Path | None:
        """The file whose entries are shown once the reads in hand end: the one being opened,
        else the open one."""
        return self.entry_reads.pending or self.path

    def _read(self, path: Path, opening: bool, then: Then | None, *,
              missing_ok: bool = False) -> int:
        """Read `path`'s entries in `entry_reads`: shown as the open file's (opening: as
        another file's, once read) unless a newer read supersedes this one; `missing_ok`: a
        file that does not exist ends the read as `_Missing`, not said."""
        self._opening = opening
        another = self.path is None or not same_file(path, self.path)
        self.path_label.setText(f"Reading {path}…")
        self.table.setEnabled(not another)  # another file's entries: not the ones wanted

        def read() -> list[EntryInfo]:
            if missing_ok and not path.exists():
                raise _Missing(path)
            return list_entries(path)

        return self.entry_reads.start(path, read,
                                      lambda token, e: self._entries_read(token, path, e),
                                      lambda token, exc: self._entries_failed(token, path, exc),
                                      then)

    def _reads_ended(self) -> None:
        """No read in hand: the open file named, its entries usable."""
        self.path_label.setText(str(self.path) if self.path else "No session file open")
        self.table.setEnabled(True)

    def _entries_read(self, token: int, path: Path, entries: list[EntryInfo]) -> None:
        opening, self._opening = self._opening, False
        try:
            if opening:
                self._opened(path, entries)
            else:
                self._show_entries(entries)
        finally:  # also when showing them fails (a bug, reported): no read is in hand
            self._reads_ended()
        self.entriesRead.emit(token, entries)

    def _entries_failed(self, token: int, path: Path, exc: BaseException) -> None:
        opening, self._opening = self._opening, False
        self._reads_ended()
        if isinstance(exc, _Missing):  # not asked for by the operator: nothing to say
            self.entriesFailed.emit(token, str(exc))
            return
        ours = not isinstance(exc, (SmmError, OSError))  # not the file's fault: this program's
        if ours:
            text = (f"{'Not opened: ' if opening else ''}{path}: its entries were not read "
                    f"(an error of smm-daq's, not the file's: {exc})")
        elif opening:
            text = (f"Not opened: {exc}" if isinstance(exc, SmmError)
                    else f"Not opened: {path}: cannot be read ({exc})")
        else:
            text = (str(exc) if isinstance(exc, SmmError)
                    else f"{path}: cannot be read just now ({exc})")
        self.message.setText(text)
        self.entriesFailed.emit(token, text)
        if ours:
            raise exc  # reported as a bug, once the tab has said the read ended

    def _opened(self, path: Path, entries: list[EntryInfo]) -> None:
        """Show the entries of the file `path`, read (not asking the disk again, which the
        read may have found slow)."""
        if self.path is None or not same_file(path, self.path):
            self._forget_file()
        self.path = path
        self._show_entries(entries)
        self.show_underlay()
        self.fileOpened.emit(self.path)

    def _still_open(self, path: Path | None) -> bool:
        """Whether the file open is `path` (as it was when a read for it began), by whatever
        name it was opened since: a link to it, or its target."""
        if self.path is None or path is None:
            return self.path is path
        return same_file(self.path, path)

    def _forget_file(self) -> None:
        """Another file is being opened: nothing shown of the one before stays (its map, the
        grain outlines drawn over its maps, the entries picked to compare, the selection), and
        what is still being read for it is not drawn when it comes."""
        self._grain_read += 1
        self._clear_outlines()
        self.grains_drawn = self.grains_reading = None
        self._show_grain_note()
        self.product = self.product_entry = None
        self._shown_name = None
        with QtCore.QSignalBlocker(self.show_choice):
            self.show_choice.clear()
        self.show_choice.hide()
        self.map_view.clear()
        self.compare.forget_picks()
        self.table.clearSelection()

    def _show_entries(self, entries: list[EntryInfo]) -> None:
        """Fill the table (and the compare view) with the open file's `entries`, as read; the
        entry selected stays selected (not the row it was on: in a sorted table another
        entry's row may take its place)."""
        selected = self.selected_entry()
        self.entries = entries
        unreadable = [e.problem for e in self.entries if e.problem]
        self.message.setText(unreadable[0] if unreadable else "")
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.entries))
        for row, info in enumerate(self.entries):
            for col, (value, key) in enumerate(zip(describe_entry(info), sort_keys(info),
                                                   strict=True)):
                item = _Item(value, key)
                if col == 0:
                    item.setData(QtCore.Qt.ItemDataRole.UserRole, info.name)
                self.table.setItem(row, col, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self.table.clearSelection()
        row = self._row_of(selected.name) if selected is not None else None
        if row is not None:
            self.table.selectRow(row)
        self._selection_changed()  # an entry's status may have changed under the selection
        self.compare.set_entries(self.entries)
        self.entriesChanged.emit(self.path, self.entries)

    def _row_of(self, name: str) -> int | None:
        return next((r for r in range(self.table.rowCount())
                     if self.table.item(r, 0).data(QtCore.Qt.ItemDataRole.UserRole) == name),
                    None)

    def selected_entry(self) -> EntryInfo | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) != 1:
            return None
        item = self.table.item(rows.pop(), 0)
        name = item.data(QtCore.Qt.ItemDataRole.UserRole) if item is not None else None
        return next((e for e in self.entries if e.name == name), None)

    def set_rig_free(self, free: bool) -> None:
        """Whether the rig is connected and no scan or recipe drives it now (Resume is usable
        only then)."""
        self.rig_free = free
        self._selection_changed()

    def _selection_changed(self) -> None:
        """The buttons follow the entry selected, and so does the map: an entry selected
        (a click, the arrow keys) is shown unless it is the one shown already (the table read
        again keeps its selection and reads no map)."""
        info = self.selected_entry()
        self.resume_button.setEnabled(self.rig_free and info is not None and resumable(info))
        self.mmt_button.setEnabled(info is not None and info.kind == "mmt")
        self.export_button.setEnabled(exportable(info))
        self.background_button.setEnabled(
            not self.processing and info is not None and holds_measured_map(info))
        self.noise_button.setEnabled(info is not None and holds_measured_map(info))
        if info is not None and info.name != self._shown_name:
            row = self._row_of(info.name)
            if row is not None:
                self.show_entry(row)

    def _show_mmt_selected(self) -> None:
        info = self.selected_entry()
        if self.path is not None and info is not None and info.kind == "mmt":
            self.mmtResultWanted.emit(self.path, info.name)

    def _resume_selected(self) -> None:
        info = self.selected_entry()
        if self.path is not None and info is not None and resumable(info):
            self.resumeRequested.emit(self.path, info.name)

    def _load_later(self, entry: str, show: Callable[[MapData], None]) -> None:
        """Read `entry`'s map in the reader, then `show` it, unless another file was opened
        meanwhile; a map that cannot be read is said in the message line."""
        path = self.path
        if path is None:
            return

        def read(m: MapData) -> None:
            if self._still_open(path):
                show(m)

        self.reader.submit(lambda: read_map(path, entry), read,
                           lambda exc: self._read_failed(path, exc))

    def _read_failed(self, path: Path, exc: BaseException) -> None:
        if self._still_open(path):
            self.message.setText(failure_text(exc, f"{path}: not read"))

    def _said_failed(self, signal: QtCore.pyqtBoundSignal, fallback: str
                     ) -> Callable[[BaseException], None]:
        """A job's failure said under the tab and emitted on `signal` (`failure_text`)."""
        def failed(exc: BaseException) -> None:
            text = failure_text(exc, fallback)
            self.message.setText(text)
            signal.emit(False, text)
        return failed

    def show_default_entry(self) -> None:
        """Show the map of the entry the open file opens on (its root `default`: the entry made
        last, as HDF5 viewers open it), the name read in the reader; nothing where an entry is
        selected by then, or the file names none it lists that holds a map (another program's
        file may name an entry of its own: not one to say unasked that it holds no map)."""
        path = self.path
        if path is None or self.selected_entry() is not None:
            return

        def job() -> str:
            return read_whole(path, lambda f: text(f.attrs.get("default", "")))

        def read(name: str) -> None:
            row = self._row_of(name) if self._still_open(path) else None
            info = next((e for e in self.entries if e.name == name), None)
            if (row is not None and info is not None and exportable(info) and not info.problem
                    and self.selected_entry() is None):
                self.show_entry(row)

        self.reader.submit(job, read, lambda exc: self._read_failed(path, exc))

    def _show_current(self) -> None:
        row = self.table.currentRow()
        if row >= 0:
            self.show_entry(row)

    def show_entry(self, row: int, after: Callable[[bool], None] | None = None) -> None:
        """Open the entry in table row `row` in the map view once read in the reader (its map,
        and a product's own, such as χ; a registered image of the sample: under the maps, as
        it is drawn when the file opens); `mapShown` follows, then `after(shown)`, also when
        it could not be read (the message says why)."""
        item = self.table.item(row, 0)
        if item is None or self.path is None:
            return
        name, path = item.data(QtCore.Qt.ItemDataRole.UserRole), self.path
        self._shown_name = name
        self._map_read += 1
        wanted = self._map_read
        selected = self.selected_entry()
        if selected is None or selected.name != name:  # the row selected is the map shown
            self.table.selectRow(row)
        info = next((e for e in self.entries if e.name == name), None)
        if info is not None and info.kind == OPTICAL:
            self.show_image(name)
            return

        def job() -> tuple[MapData, ProductMap | None] | None:
            if wanted != self._map_read:  # another entry asked for since: not read
                return None
            try:  # a product's grid is the entry's map: read once
                product = read_product_map(path, name)
            except (SmmError, OSError):
                product = None
            return (product.grid if product is not None else read_map(path, name)), product

        def read(value: tuple[MapData, ProductMap | None] | None) -> None:
            shown = value is not None and wanted == self._map_read and self._still_open(path)
            if shown:
                self._show_read(*value)
            if after is not None:
                after(shown)

        def failed(exc: BaseException) -> None:
            self._read_failed(path, exc)
            if after is not None:
                after(False)

        self.reader.submit(job, read, failed)

    def _show_read(self, m: MapData, product: ProductMap | None) -> None:
        self.product, self.product_entry = product, m
        with QtCore.QSignalBlocker(self.show_choice):
            self.show_choice.clear()
            if product is not None:
                name = product_quantity(product).name
                self.show_choice.addItems(
                    [name] + ([f"SD of {name}"] if product.errors is not None else [])
                    + ["Bz (its model)"])
        self.show_choice.setVisible(product is not None)
        self._show_product()
        self.views.setCurrentWidget(self.map_view)
        self.mapShown.emit(m)

    def _show_product(self, *, keep_range: bool = False) -> None:
        """The shown entry as chosen: a product's value or SD, or the entry's Bz; `keep_range`:
        in the range shown (`MapView.set_map`)."""
        m, product = self.product_entry, self.product
        if m is None:
            return
        title = f"{m.name}: {m.title}" if m.title else m.name
        choice = self.show_choice.currentText()
        if product is None or choice.startswith("Bz"):
            self.map_view.set_map(m, keep_range=keep_range)
        else:
            quantity = product_quantity(product)
            sd = choice.startswith("SD")
            values = product.errors if sd and product.errors is not None else product.values
            if sd:
                quantity = Quantity(f"SD of {quantity.name}", quantity.unit, quantity.scale)
            self.map_view.set_map(m.with_bz(values), quantity, keep_range=keep_range)
            title = f"{m.name}: {quantity.name}"
        self.map_view.plot.setTitle(title)

    def _choose_grains(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open a grain file", str(self.path.parent if self.path else ""),
            "Grain files (*.csv *.txt *.npz);;All files (*)",
        )
        if name:
            self.load_grains(Path(name), self.grain_format.currentText())

    def load_grains(self, path: Path, fmt: str = "cuboids", *, again: bool = False) -> None:
        """Read a grain file in the worker (any MMT grain format; a Dragonfly export with the
        options of `dragonfly_options`, "only grains under the scan" meaning the map shown
        now), registered onto the scan as `grain_registration` says (as the MMT tab's
        inversion shapes them: `grain_shaping.shaped_grains`), then draw its grains' outlines
        over every map of this tab and say how they were read (`grainsLoaded`), or show why
        it could not be read (`grainsFailed`). `again`: the grains drawn, placed anew
        (`grainsPlaced` then). Outlines on show placed before a change of the grains'
        placement not yet drawn (`again`, or another file read since the change) are taken
        off if this read is refused, and the message says so."""
        path, m = Path(path), self.map_view.map
        wanted = self.dragonfly_options() if fmt == "dragonfly" else None
        options = None if wanted is None else for_map(wanted, m)
        how = fmt
        if options is not None:
            no_map = wanted.crop == CROP_TO_SCAN and m is None
            how += f"; {describe(options)}" + (" (no map shown to crop to)" if no_map else "")
        model = self.grain_model()
        # the outlines on show were placed before a change not yet drawn (a redraw waited for,
        # or one in hand): a refusal of this read takes them off, as a refused redraw does
        placed_before = again or self.outlines_moved or self.placement_timer.isActive() or (
            self.grains_reading is not None and self.grains_reading[2])
        # placed and read as the changes so far say: none of them is waited for to read again
        self.placement_timer.stop()
        # a read in hand, placed as before, is not drawn once this one begins or is refused
        self._grain_read += 1
        self.grains_reading = None
        try:
            reg = self.grain_registration()
            check_registration(reg, fmt, model)  # as the MMT tab's inversion refuses it
        except SmmError as exc:
            self._grains_failed(exc, path, placed_before)
            return
        if not reg.identity:
            how += f"; {describe_registration(reg)}"
        crop = None
        if options is not None and options.crop is not None:  # kept once registered
            crop = {"crop": options.crop, "crop_height": options.crop_height,
                    "crop_noise": options.crop_noise,
                    "crop_magnetization": options.crop_magnetization}
            options = replace(options, crop=None)

        def job() -> tuple[int, np.ndarray]:
            return registered_outlines(path, fmt, reg, model=model, dragonfly=options,
                                       crop=crop)

        wanted, opened = self._grain_read, self.path
        self.grains_reading = (path, fmt, again)

        def read(value: tuple[int, np.ndarray]) -> None:
            if self._grains_wanted(wanted, opened, path):
                self.grains_reading = None
                self._grains_read(path, fmt, how, *value, again=again)

        def failed(exc: BaseException) -> None:
            if self._grains_wanted(wanted, opened, path):
                self.grains_reading = None
                # or the outlines on show went stale while this read ran (the Dragonfly
                # options they were read with changed: not read again, this file is wanted)
                self._grains_failed(exc, path, placed_before or self.outlines_moved)

        self.grain_note.setText(f"Reading the grains of {path.name}…")
        self.grain_note.show()
        self.grain_reader.submit(job, read, failed)

    def _grains_wanted(self, wanted: int, opened: Path | None, path: Path) -> bool:
        """Whether the grain read `wanted`, begun with session file `opened` open, is to be
        drawn: not when another file was opened meanwhile (said, as a failure) nor when
        another grain file was chosen since (its read reports)."""
        if wanted == self._grain_read:
            return True
        if not self._still_open(opened):
            text = (f"Grain outlines of {path.name} not drawn: another session file was "
                    "opened while they were read")
            self.message.setText(text)
            self._show_grain_note()
            self.grainsFailed.emit(text)
        else:
            self._show_grain_note()
        return False

    def _grains_read(self, path: Path, fmt: str, how: str, n: int, segments: np.ndarray, *,
                     again: bool) -> None:
        self.message.setText("")
        self.set_outlines(segments)
        self.outlines_drawn = f"Grain outlines: {n} grains of {path.name} ({how})"
        self.grains_drawn = (path, fmt)
        self.outlines_moved = False
        self._show_grain_note()
        # drawn again, they are no grain file chosen (the MMT tab's, typed since, stays)
        (self.grainsPlaced if again else self.grainsLoaded).emit(path, fmt)

    def _grains_failed(self, exc: BaseException, path: Path, placed_before: bool) -> None:
        """Say which grain file's outlines were refused and why; `placed_before`: the
        outlines on show lie where the grains no longer are, and are taken off (said)."""
        why = (grains_said(str(exc)) if isinstance(exc, SmmError)
               else f"the file was not read: {exc!r}")
        text = f"Grain outlines of {path.name} not drawn: {why}"
        if placed_before and self.outlines_drawn and self.grains_drawn is not None:
            text += (f". The outlines of {self.grains_drawn[0].name} shown before are taken "
                     "off: they were drawn where the grains were placed before")
        if placed_before:
            self._clear_outlines()
        self.message.setText(text)
        self._show_grain_note()
        self.grainsFailed.emit(text)

    def _clear_outlines(self) -> None:
        self.outlines_drawn = ""
        self.outlines_moved = False
        self.set_outlines(np.zeros((0, 2, 2)))

    def grain_placement_changed(self) -> None:
        """Where the grains lie on the scan (the MMT tab's registration) or the model they are
        inverted with has changed: the grains drawn are read and drawn again so, once the
        changes stop coming; a grain file still being read is read again so instead."""
        if self.grains_drawn is not None or self.grains_reading is not None:
            self.outlines_moved = True
            self.placement_timer.start()

    def _place_grains_again(self) -> None:
        if self.closed:
            return
        if self.grains_reading is not None:  # placed as before: not drawn, read again
            path, fmt, again = self.grains_reading
            self.load_grains(path, fmt, again=again)
        elif self.grains_drawn is not None:
            self.load_grains(*self.grains_drawn, again=True)

    def dragonfly_options_changed(self) -> None:
        """The options a Dragonfly export is read with (the MMT tab's) have changed: said, and
        a Dragonfly export drawn, or being read, is read and drawn again with them once the
        changes stop coming, as where the grains' placement changes."""
        self._show_grain_note()
        # an export drawn no longer shows what the options say, whatever file is read next
        self.outlines_moved |= self.grains_drawn is not None \
            and self.grains_drawn[1] == "dragonfly"
        wanted = self.grains_reading or self.grains_drawn  # what `_place_grains_again` reads
        if wanted is not None and wanted[1] == "dragonfly":
            self.placement_timer.start()

    def _show_grain_note(self) -> None:
        """What the outlines on show are, and how a Dragonfly export would be read now."""
        dragonfly = self.grain_format.currentText() == "dragonfly"
        self.dragonfly_button.setVisible(dragonfly)
        if self.grain_reader.pending:
            return  # "Reading…" stays until the read in hand ends
        lines = [self.outlines_drawn] if self.outlines_drawn else []
        if dragonfly:
            lines.append("A Dragonfly export is read with the MMT tab's options: "
                         f"{describe(self.dragonfly_options())}")
        self.grain_note.setText("\n".join(lines))
        self.grain_note.setVisible(bool(lines))

    def shutdown(self, wait_for_writes: bool = True) -> None:
        """Stop the workers as the window closes, without waiting: a subtraction in hand
        finishes writing its entry (an image being stored and an export too; the window's
        close waits for them: `worker.join`), unless told not to wait for writes (a scan's
        write has stalled: they wait for the same disk, or for HDF5, which the stalled write
        holds); a grain
        file's entries, map or image being read is left to its thread, no longer drawn (an
        image read to register: its dialog is not opened)."""
        self.closed = True
        self.entry_reads.shutdown()
        self.grain_reader.shutdown(wait=False)
        self.reader.shutdown(wait=False)
        self.worker.shutdown(wait=wait_for_writes, timeout=0)

    def writes_in_hand(self) -> list[str]:
        """The worker's writes in hand, as said (e.g. "the subtraction 'd' into s.h5")."""
        return [f"{what} into {into.name}" for into, what in self.writes]

    def exports_in_hand(self) -> list[str]:
        """Of `writes_in_hand`, the exports (Export…): files of their own, no session file's."""
        return [f"{what} into {into.name}" for into, what in self.writes
                if what.startswith(f"{EXPORT} ")]

    def _write(self, path: Path, what: str, job: Callable[[], Any],
               on_result: Callable[[Any], None], on_error: Callable[[Any], None]) -> None:
        """`job`, a write into `path` (`what` it writes), in the worker, noted in `writes`
        until it ends."""
        def ended(callback: Callable[[Any], None]) -> Callable[[Any], None]:
            def call(value: Any) -> None:
                self.writes.remove((path, what))
                callback(value)
            return call

        self.writes.append((path, what))
        self.worker.submit(job, ended(on_result), ended(on_error))

    def set_outlines(self, segments: np.ndarray) -> None:
        """Grain outlines (segments (M, 2, 2) in m) over every map of this tab."""
        self.map_view.set_outlines(segments)
        self.compare.set_outlines(segments)

    # --- import ---------------------------------------------------------------------------
    def _choose_import(self) -> None:
        dialog = ImportDialog(self.wanted_path(), self)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.import_scan(dialog.choice())

    def import_scan(self, choice: ImportChoice) -> bool:
        """Start writing a scan of another program as a new entry, in the worker, as `smm-daq
        import` does (`import_dialog.import_job`): refused alike (the file and its key, line
        or column named; nothing written); `imported` follows, and the file written is then
        shown (read again, or opened where another was open, unless another file has been
        opened since the import began). False, said, where a file or
        the name is not given."""
        missing = choice.missing()
        if missing:
            text = f"Not imported: no {missing} given; expected both files, the session " \
                   "file and the new entry's name"
            self.message.setText(text)
            self.imported.emit(False, text)
            return False
        out = Path(choice.out.strip())
        open_then = self.wanted_path()

        def done(data: MapData) -> None:
            ny, nx = data.bz.shape
            text = f"Imported a {nx} × {ny} map into entry '{data.name}' of {out}"
            open_now = self.wanted_path()
            if open_now is not None and same_file(open_now, out):
                self.refresh()
            elif open_now is None or (open_then is not None and same_file(open_now, open_then)):
                self.open_file(out)  # not over a file opened since (the Scan tab's, too)
            self.message.say(text)
            self.imported.emit(True, text)

        def failed(exc: BaseException) -> None:
            text = "Not imported: " + failure_text(exc, "the scan was not read", import_said)
            self.message.setText(text)
            self.imported.emit(False, text)

        self.message.say(f"Importing the scan into {out}…")
        self._write(out, f"the import of '{choice.name.strip()}'", import_job(choice), done,
                    failed)
        return True

    # --- subtraction ---------------------------------------------------------------------
    def _choose_subtraction(self) -> None:
        if self.path is None:
            self.message.setText("Open a session file first.")
            return
        dialog = SubtractDialog(self.entries, self)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            in_field, remanent, name, register, rotation, forced = dialog.choice()
            self.subtract(in_field, remanent, name, register=register, rotation=rotation,
                          apply_insignificant=forced)

    def subtract(self, in_field: str, remanent: str, name: str, *, register: bool = True,
                 rotation: bool = False, apply_insignificant: bool = False) -> bool:
        """Start writing `in_field` − `remanent` as entry `name` of the open file, in the
        worker (a registration takes a while); `subtracted` follows, and the new entry is
        shown, or the reason it was refused (then nothing is written); what `subtracted`
        says, and the map's title, give the shift found and whether it was applied (one not
        significantly different from zero only with `apply_insignificant`). False when no
        file is open or a subtraction is already running."""
        if self.path is None or self.subtracting:
            return False
        path = self.path
        command = subtract_command(path, in_field, remanent, name, register=register,
                                   rotation=rotation, apply_insignificant=apply_insignificant)

        def job() -> tuple[SubtractionResult, list[tuple[str, str]]]:
            from smm_daq.analysis.induced_entry import subtract_entries

            with recorded() as caught:  # said on the message line, as the command line does
                res = subtract_entries(path, in_field, remanent, name, register=register,
                                       rotation=rotation, apply_insignificant=apply_insignificant,
                                       parameters={"command": command})
            return res, [(said_as(w.category), said_in_window(str(w.message))) for w in caught]

        self.subtracting = True
        self.subtract_button.setEnabled(False)
        self.message.say(f"Subtracting '{remanent}' from '{in_field}'…")
        self._write(path, f"the subtraction '{name}'", job,
                    lambda done: self._subtracted(path, name, *done, rotation=rotation),
                    self._subtraction_failed)
        return True

    def _subtracted(self, path: Path, name: str, res: SubtractionResult,
                    warned: list[tuple[str, str]], *, rotation: bool) -> None:
        """`warned`: the subtraction's notes and warnings ("note" or "warning", text);
        `rotation`: whether one was fitted. Said as a success: one line, the notes and
        warnings under its Details; `subtracted` tells them all."""
        self._subtraction_ended()
        line = f"Wrote entry '{name}' (induced) into {path}{shift_said(res, rotation)}"
        details = [f"{kind.capitalize()}: {text}" for kind, text in warned]
        written = line + "".join(f". {text}" for text in details)
        kinds = [kind for kind, _ in warned]
        counted = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind in ("note", "warning")
                            if (n := kinds.count(kind)))
        warning = "warning" in kinds

        def say(text: str) -> None:
            """`text` and the counts of notes and warnings; the file named by its name alone
            where it is the one shown above, so that the line fits on one."""
            open_now = self.wanted_path()
            if open_now is not None and same_file(open_now, path):
                text = text.replace(f" into {path}", f" into {path.name}", 1)
            self.message.say(f"{text} ({counted})" if counted else text, details,
                             warned=warning)

        # another file open, or the window closing (its close waits for the other writes in
        # hand, which a read of the file here would wait for, the window's events stopped)
        wanted = self.wanted_path()
        if self.closed or wanted is None or not same_file(wanted, path):
            say(line)
            self.subtracted.emit(True, written)
            return

        def listed(read: bool) -> None:
            row = self._row_of(name) if read else None
            if row is None:
                wanted = self.wanted_path()
                left = self.closed or wanted is None or not same_file(wanted, path)
                # another file opened meanwhile, or the window closed: nothing to show it in;
                # else the file could not be read again just now (a scan writing)
                say(line if left else f"{line}; the file could not be read again just now: "
                    "Refresh shows it")
                self.subtracted.emit(True, written)
                return
            self.show_entry(row, shown)

        def shown(on_show: bool) -> None:
            if on_show and res.registered:
                self.map_view.plot.setTitle(f"{name}{shift_said(res, rotation)}")
            if warned:
                say(line)
            self.subtracted.emit(True, written)

        self.refresh(listed)

    def _subtraction_failed(self, exc: BaseException) -> None:
        self._subtraction_ended()
        # as the window forces a shift or subtracts without registering, not the flags
        text = (said_in_window(str(exc)) if isinstance(exc, SmmError)
                else f"Subtraction failed: {exc!r}")
        self.message.setText(text)
        self.subtracted.emit(False, text)

    def _subtraction_ended(self) -> None:
        self.subtracting = False
        self.subtract_button.setEnabled(True)

    # --- export --------------------------------------------------------------------------
    def _choose_export(self) -> None:
        """The maps the entry holds read in the reader (`exportable_maps`); then which to
        export is asked where it holds more than one, and where to (`_export_chosen`)."""
        info = self.selected_entry()
        if self.path is None or not exportable(info):
            self.message.setText("Select an entry holding a map first: its map is exported.")
            return
        assert info is not None  # exportable
        path, entry = self.path, info.name

        failed = self._said_failed(self.exported, f"The maps of '{entry}' could not be read")

        self.reader.submit(lambda: exportable_maps(str(path), entry),
                           lambda found: self._export_chosen(path, entry, *found), failed)

    def _export_chosen(self, path: Path, entry: str, maps: list[str], default: str) -> None:
        """Which of the entry's `maps` to export (asked where there are several, as `smm-daq
        export --dataset` chooses), and the CSV to write it to."""
        if not self._still_open(path):
            self._export_dropped(path, f"the maps of '{entry}' were being listed")
            return
        dataset = default
        if len(maps) > 1:
            item, chosen = QtWidgets.QInputDialog.getItem(
                self, "Export a map", f"The map of '{entry}' to export:",
                offered(maps, default), 0, False)
            if not chosen:
                return
            dataset = dataset_chosen(item, default)
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, f"Export {dataset} of '{entry}' (a picture is written beside it)",
            str(path.parent / f"{file_stem(entry, dataset, default)}.csv"),
            "CSV files (*.csv);;All files (*)",
            options=QtWidgets.QFileDialog.Option.DontConfirmOverwrite)
        if not name:
            return
        csv, png = outputs(Path(name))
        there = [p.name for p in (csv, png) if p.exists()]
        overwrite = bool(there) and QtWidgets.QMessageBox.question(
            self, "Replace?", f"Replace {' and '.join(there)}?"
        ) == QtWidgets.QMessageBox.StandardButton.Yes
        if there and not overwrite:
            return
        if not self._still_open(path):  # opened while the dialogs were shown
            self._export_dropped(path, f"the export of '{entry}' was being chosen")
            return
        self.export(entry, csv, overwrite=overwrite,
                    dataset=None if dataset == default else dataset)

    def _export_dropped(self, path: Path, while_: str) -> None:
        """Said where the file `path` is no longer the one open once the export's choices are
        made (the entry chosen is another file's, or gone): nothing is written."""
        text = (f"Not exported: {path} is no longer the file open (another was opened while "
                f"{while_}); nothing was written")
        self.message.setText(text)
        self.exported.emit(False, text)

    def export(self, entry: str, csv: Path, *, overwrite: bool = False,
               dataset: str | None = None) -> bool:
        """Write entry `entry`'s map of the open file (`dataset`, as `smm-daq export
        --dataset` names it; None: the one it exports by default) as `smm-daq export` writes
        it, to `csv` and its picture beside it (`outputs`), in the worker, as a write
        (`writes_in_hand`: the window's close waits for it, saying so, rather than the
        program ending with the CSV written and not its picture, or a hidden part of either
        left beside them); `exported` follows, and the message line says what was written
        or why nothing was. False when no file is open."""
        if self.path is None:
            return False
        path, (csv, png) = self.path, outputs(Path(csv))
        what = f"'{entry}'" if dataset is None else f"{dataset} of '{entry}'"

        def done(said: list[str]) -> None:
            text = f"Exported {what}: " + "; ".join(said)
            self.message.say(text)
            self.exported.emit(True, text)

        failed = self._said_failed(self.exported, f"Export of {what} failed")

        self.message.say(f"Exporting {what}…")
        self._write(csv, f"{EXPORT} {what}",
                    lambda: export_map(path, entry, csv, png, overwrite=overwrite,
                                       dataset=dataset), done, failed)
        return True

    # --- background removal --------------------------------------------------------------
    def _choose_background(self) -> None:
        info = self.selected_entry()
        if self.path is None or info is None or not holds_measured_map(info):
            self.message.setText("Select an entry holding a measured map first: its "
                                 "background is removed.")
            return
        dialog = BackgroundDialog(info.name, {e.name for e in self.entries}, self)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.remove_background(dialog.arguments(self.path), dialog.new_name())

    def remove_background(self, arguments: list[str], name: str) -> bool:
        """Run `smm-daq` `arguments` (a background or level command on the open file, writing
        entry `name`) by the command's own function, in the worker, the command recorded as
        the window's; `processed` follows, and the new entry is shown, or the reason it was
        refused (then nothing is written). False when no file is open or a removal is being
        written."""
        if self.path is None or self.processing:
            return False
        path, command = self.path, recorded_command(arguments)

        def job() -> tuple[list[str], list[str]]:
            from smm_daq.cli.maps import background_entry, level_entry, naming_the_file, parsed

            run = background_entry if arguments[0] == "background" else level_entry
            said: list[str] = []
            unfinished: list[str] = []  # the map is a scan cut off, or still being measured
            with recorded() as caught, naming_the_file(str(path)):
                run(parsed(arguments), say=said.append, command=command,
                    warn=unfinished.append)
            return said, [f"Warning: {note}" for note in unfinished] + [
                f"{said_as(w.category).capitalize()}: {w.message}" for w in caught]

        self.processing = True
        self.background_button.setEnabled(False)
        self.message.say(f"Writing entry '{name}'…")
        self._write(path, f"the entry '{name}'", job,
                    lambda done: self._processed(path, name, *done),
                    self._processing_failed)
        return True

    def _processed(self, path: Path, name: str, said: list[str], warned: list[str]) -> None:
        """Said as the command says it (what was removed, the entry written; warnings under
        the line's Details), once the new entry is listed and shown where the file is still
        the one open."""
        self._processing_ended()
        text = "; ".join(said)

        def say() -> None:
            self.message.say(text, warned, warned=bool(warned))
            self.processed.emit(True, text)

        wanted = self.wanted_path()
        if self.closed or wanted is None or not same_file(wanted, path):
            say()
            return

        def listed(read: bool) -> None:
            row = self._row_of(name) if read else None
            if row is None:
                say()
            else:
                self.show_entry(row, lambda _shown: say())

        self.refresh(listed)

    def _processing_failed(self, exc: BaseException) -> None:
        self._processing_ended()
        text = failure_text(exc, "Background removal failed", background_said)
        self.message.setText(text)
        self.processed.emit(False, text)

    def _processing_ended(self) -> None:
        self.processing = False
        self._selection_changed()

    # --- noise from a repeat --------------------------------------------------------------
    def _choose_repeat(self) -> None:
        info = self.selected_entry()
        if self.path is None or info is None or not holds_measured_map(info):
            self.message.setText("Select an entry holding a measured map first: its noise "
                                 "is measured.")
            return
        repeats = [e.name for e in self.entries if holds_measured_map(e) and e.name != info.name]
        if not repeats:
            self.message.setText(f"The file holds no other map to take as a repeat of "
                                 f"'{info.name}'.")
            return
        repeat, chosen = QtWidgets.QInputDialog.getItem(
            self, "Noise from a repeat",
            f"A repeat of '{info.name}' (another scan of the same sample, in the same field):",
            repeats, 0, False)
        if chosen:
            self.measure_noise(info.name, repeat)

    def measure_noise(self, entry: str, repeat: str) -> bool:
        """The noise σ of entry `entry` from `repeat`, as `smm-daq noise --repeat` takes it,
        and its one-map floor, measured in the reader; said on the message line, or why the
        command refuses the pair; `noiseMeasured` follows. False when no file is open."""
        if self.path is None:
            return False
        path = self.path

        def done(value: tuple[str, list[str]]) -> None:
            text, unfinished = value
            self.message.say(text, [f"Warning: {note}" for note in unfinished],
                             warned=bool(unfinished))
            self.noiseMeasured.emit(True, text)

        failed = self._said_failed(self.noiseMeasured, f"The noise of '{entry}' was not measured")

        self.message.say(f"Measuring the noise of '{entry}' from '{repeat}'…")
        self.reader.submit(lambda: noise_said(path, entry, repeat), done, failed)
        return True

    # --- image of the sample -------------------------------------------------------------
    def _choose_image(self) -> None:
        if self.path is None or self.map_view.map is None:
            self.message.setText("Open a session file and show a map first: the image is "
                                 "registered onto the map shown.")
            return
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open an image of the sample", str(self.path.parent),
            "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)",
        )
        if name:
            self.register_image(Path(name))

    def register_image(self, image_path: Path) -> bool:
        """Read an image in the reader, then let the user pick control points against the shown
        map and store it in the worker; `imageStored` follows (also when the dialog is
        cancelled, or the image cannot be read: why is shown). False when no map is shown or
        an image is being registered already."""
        if self.path is None or self.map_view.map is None or self.registering:
            return False
        image_path, path, m = Path(image_path), self.path, self.map_view.map
        self._set_registering(True)
        self.message.say(f"Reading {image_path.name}…")

        def read(value: tuple[np.ndarray, str]) -> None:
            image, damage = value  # damage: Pillow's warning, said here (not on stderr)
            if self.closed:  # the window closed while it was read
                self._image_ended(False, "")
                return
            if not self._still_open(path):
                self._image_ended(False, f"{image_path.name} not registered: another session "
                                         "file was opened while it was read")
                return
            self._say_damage(damage)
            dialog = RegistrationDialog(image, m, image_name=image_path.name, parent=self)
            accepted = dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted
            if not accepted or dialog.registration is None:
                self._image_ended(False, "")
                self._say_damage(damage)  # still worth knowing
                return
            self._store(path, image, dialog.registration, typed_entry_name(dialog.name_edit.text()),
                        image_path.name, damage)

        self.reader.submit(lambda: read_image(image_path), read, self._image_failed)
        return True

    def _say_damage(self, damage: str) -> None:
        """Pillow's warning of an image it read ("": none) as a warning, not in an error's
        red: the image was read, and is used."""
        if damage:
            self.message.say(damage, warned=True)
        else:
            self.message.setText("")

    def store_image(self, image: np.ndarray, registration: ImageRegistration, name: str,
                    image_file: str) -> bool:
        """Write a registered image into the open file in the worker (after a subtraction in
        hand, which writes there too), then draw it under the maps; `imageStored` follows.
        False when no file is open or an image is being registered already."""
        if self.path is None or self.registering:
            return False
        self._set_registering(True)
        self._store(self.path, image, registration, name, image_file)
        return True

    def _store(self, path: Path, image: np.ndarray, registration: ImageRegistration, name: str,
               image_file: str, damage: str = "") -> None:
        def stored(_name: str) -> None:
            text = f"Stored the image {image_file} as entry '{name}' of {path}" + (
                f"\n{damage}" if damage else "")
            wanted = self.wanted_path()
            if self.closed or wanted is None or not same_file(wanted, path):
                self._image_ended(True, text, warned=bool(damage))
                return

            def listed(read: bool) -> None:
                if read:
                    self.show_underlay()
                self._image_ended(True, text, warned=bool(damage))

            self.refresh(listed)

        self.message.say(f"Storing the image {image_file} as entry '{name}'…")
        self._write(path, f"the image '{name}'",
                    lambda: write_optical_entry(path, name, image, registration,
                                                image_file=image_file),
                    stored, self._image_failed)

    def _image_failed(self, exc: BaseException) -> None:
        self._image_ended(False, failure_text(exc, "Image not stored"))

    def _image_ended(self, stored: bool, text: str, *, warned: bool = False) -> None:
        """An image registration is over: stored or not (`text` says why; empty: cancelled);
        `warned`: stored, with a warning of the image in `text`."""
        self._set_registering(False)
        if stored:
            self.message.say(text, warned=warned)
        else:
            self.message.setText(text)
        self.imageStored.emit(stored, text or "cancelled")

    def _set_registering(self, on: bool) -> None:
        self.registering = on
        self.image_button.setEnabled(not on)

    def show_underlay(self) -> None:
        """Draw the file's newest registered image under the maps of this tab."""
        names = [e.name for e in self.entries if e.kind == OPTICAL]
        if names:
            self._draw_underlay(names[-1])
        else:
            self.map_view.clear_underlay()
            self.compare.clear_underlay()

    def _draw_underlay(self, name: str, then: Callable[[], None] | None = None) -> bool:
        """Read the registered image of entry `name` in the reader, then draw it under every
        map of this tab (and call `then`), unless another file was opened meanwhile."""
        path = self.path
        if path is None:
            return False

        def read(value: tuple[np.ndarray, ImageRegistration]) -> None:
            if not self._still_open(path):
                return
            image, registration = value
            transform = underlay_transform(registration.matrix)
            self.map_view.set_underlay(image, transform)
            self.compare.set_underlay(image, transform)
            if then is not None:
                then()

        self.reader.submit(lambda: read_optical_entry(path, name), read,
                           lambda exc: self._read_failed(path, exc))
        return True

    def show_image(self, name: str) -> bool:
        """Show the registered image of entry `name`, once read: drawn under the maps where
        its registration places it, the map view zoomed to it."""
        def shown() -> None:
            self.message.setText("")
            self.map_view.fit_underlay()
            self.map_view.plot.setTitle(f"{name}: image of the sample, drawn under the maps "
                                        "where it was registered")
            self.views.setCurrentWidget(self.map_view)

        return self._draw_underlay(name, shown)
