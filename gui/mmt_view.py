"""MMT: invert a scan with a grain file, then pick reliable grains.

The inversion runs in a worker thread (its progress messages and the blocks of sensors it has
folded into its QR come back through Qt signals), and can be cancelled between blocks; then a
sortable grain table filtered by SSR and uncertainty ratio, the selected grain's own fitted
field and the residual around it, and an equal-area net of the shown grains' directions.
Grains are cuboids or points (point lists, the multipole library's NPZ, Dragonfly exports with
the micro-CT workflow's options), modelled as uniform cuboids or as dipoles, quadrupoles or
octupoles, registered onto the scan (a shift and a turn, the Registration group) and point
grains cropped to what could reach it, as `mmt invert` does (`grain_shaping.shaped_grains`);
more scans of the same grains can be inverted jointly and masks of bad pixels
applied (one for all scans or one each), as on the command line, where "Save map image for a
mask…" writes each scan's map as an image to paint the bad pixels on (`export
--mask-template`). For multipole models the table says per grain whether its higher orders
are resolved (`higher_order_resolved`, 1 = yes), and the results can be exported in the
multipole library's convention. A result saved in the session file (by `mmt invert` or this
tab) is read back in a worker of its own and shown as a fresh one is (`load_result`). Of a
joint inversion, fresh or saved, the scan whose map, residual and grains' own fields are shown
is chosen by name (`show_scan`), each on its own grid at its own height with its own sensor.
"""

from __future__ import annotations

import threading
import unicodedata
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from gui import name_lists
from gui.background import Background, gui_caller
from gui.command import recorded_command
from gui.confirm import confirm, save_first
from gui.dragonfly_options import (
    DragonflyOptionsRow,
    chosen_magnetization,
    describe,
    describe_crop,
)
from gui.grain_outlines import grain_segments, sphere_diameters
from gui.grain_registration import RegistrationGroup, describe_registration
from gui.grain_table import GrainFilter, GrainTableModel
from gui.grain_words import FORMATS_TIP, said_in_window
from gui.map_geometry import pixel_rect
from gui.map_view import MapView
from gui.message_line import ERROR_STYLE
from gui.number_boxes import ClampingSpinBox, CountBox, TrimmedSpinBox
from gui.stereonet import Stereonet
from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.mmt.formats.grains import GRAIN_FORMATS, POINT_FORMATS
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, PointGrains, Sensor
from smm_daq.analysis.mmt.result_params import ResultOptions
from smm_daq.analysis.mmt.scan_fits import ScanFit, fits_of
from smm_daq.analysis.subtract_inputs import holds_measured_map, read_source
from smm_daq.cli.warning_text import is_smm_daqs, origin
from smm_daq.errors import InputError, SmmError
from smm_daq.instruments.profile import Profile
from smm_daq.shell_words import command_line
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.names import in_file_name, lookalike
from smm_daq.storage.nexus import EntryInfo, list_entries, read_sensor_thickness
from smm_daq.text_files import path_shown
from smm_daq.thread_warnings import recorded

UM = 1e-6
UT = 1e-6
NT = 1e-9


class _Progress(QtCore.QObject):
    """The inversion's progress, emitted in the GUI thread (`say`, `fold`, `merge` are called
    from the inversion's thread: through `gui_caller`, so never into a deleted view)."""

    message = QtCore.pyqtSignal(str)
    sensors = QtCore.pyqtSignal(int, int)  # sensors folded into the QR, of all
    # the merge of the two streams' triangles: panels done, of all, share of its work done
    merging = QtCore.pyqtSignal(int, int, float)

    def __init__(self, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.say = gui_caller(self, lambda bridge, text: bridge.message.emit(text))
        self.fold = gui_caller(self, lambda bridge, done, total: bridge.sensors.emit(done, total))
        self.merge = gui_caller(self, lambda bridge, done, total, share:
                                bridge.merging.emit(done, total, share))


class InversionCancelled(Exception):
    """Raised in the worker between blocks of sensors once the user has cancelled."""


# the grain pane with no grain selected: its map all zero, no colour scale
GRAIN_VIEW_TITLE = "fitted field: select a grain"
# rows of the grain table measured to fit its columns to their contents: the widths of a
# column's numbers (4 significant digits) hardly vary, and measuring every row of thousands of
# grains read each cell many times
ROWS_SIZED = 100
SSR_DECIMALS = 6
# σ in µT to 1 pT: below any real sensor's noise, so that no σ typed becomes 0 ("from residual")
SIGMA_DECIMALS = 6
MODELS = ("auto", "cuboid", "dipole", "quadrupole", "octupole")
DEVICES = ("auto", "cpu", "gpu")
MERGE_STEPS = 1000  # the bar's steps over the share of the streams' merge done


def grain_field(result: Any, g: int, fit: ScanFit | None = None) -> MapData:
    """Bz of grain `g` alone, with its fitted unknowns, on the grid of scan `fit` of the result
    (default its first) at that scan's height, with its sensor: a point, an area or, for the
    point models, a volume (the fitted map of a volume sensor is the grains' fields summed
    over its thickness, and so is each grain's own)."""
    grains = result.grains
    fit = fit if fit is not None else fits_of(result)[0]
    grid = fit.fitted
    X, Y = np.meshgrid(grid.x, grid.y)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, fit.height)]
    if getattr(result, "model", "cuboid") == "cuboid":
        cub = grains.cuboids[grains.start[g]:grains.start[g + 1]]
        m = np.repeat(result.magnetization[g][None, :], cub.shape[0], axis=0)
        bz = cuboid_bz(sensors, cub, m, sensor_size=tuple(fit.sensor_size[:2]))
    else:
        points = grains if isinstance(grains, PointGrains) else None
        if points is None:
            from smm_daq.analysis.mmt.solver.joint import as_points

            points = as_points(grains)
        one = PointGrains(points.positions[g:g + 1], points.volume[g:g + 1],
                          points.labels[g:g + 1])
        model = MultipoleModel.build(one, Sensor.from_size(fit.sensor_size), result.model)
        bz = model.block(sensors, np.empty((sensors.shape[0], model.n_columns))) \
            @ result.coefficients[g]
    return grid.with_bz(bz.reshape(grid.bz.shape), name=f"grain {grains.labels[g]}",
                        title="fitted field of the grain")


def _note(w: warnings.WarningMessage) -> str:
    """A warning caught during an inversion as the result's note: smm-daq's own as it says it,
    another's led by where it came from, "(scipy) An ill-conditioned matrix …", as the command
    line labels it (`warning_line`), so that a library's remark does not read as smm-daq's."""
    if is_smm_daqs(w.category):
        return str(w.message)
    return f"({origin(w.category, w.filename)}) {w.message}"


def _measured_map(path: Path, entry: str, fit: ScanFit, notes: list[str]) -> MapData:
    """The map the result saved as `entry` inverted in its scan `fit`: the scan's entry in the
    file, else (gone, its grid changed since, or not recorded) the fit plus the residual,
    said in `notes` when the scan's entry was named."""
    data = fit.residual.with_bz(fit.fitted.bz + fit.residual.bz, name=fit.name)
    if fit.name == entry:  # the scans inverted were not recorded
        return data
    try:
        scan = read_source(path, fit.name)
    except InputError as exc:
        notes.append(f"the map shown is the fit plus the residual ({exc})")
        return data
    if scan.shape == data.shape:
        return scan
    notes.append(f"entry '{scan.name}' is no longer the map inverted (its grid differs): the "
                 "map shown is the fit plus the residual")
    return data


def saved_command(command: str, entry: str) -> str:
    """The run's recorded command line completed by what saving it chose, so that it makes
    the saved entry as `smm-daq mmt invert` would: `--result-entry ENTRY`, and the CSV the
    command line always writes beside it, `--out ENTRY.csv`."""
    return f"{command} {command_line(['--out', f'{entry}.csv', '--result-entry', entry])}"


def supplied(maps: list[MapData], scans: list[Any]) -> list[str]:
    """The command line's options for what the profile supplied to `scans` (joint.Scan) where
    their `maps` record none: every scan's height (`--height-um`, one per scan) when a map
    has none, and the sensor area when a map has none and every scan's is the same (the
    command line takes one for all; each scan's own is in the entry)."""
    out = []
    if any(m.height is None for m in maps):
        out += ["--height-um", ",".join(repr(s.height / UM) for s in scans)]
    areas = {tuple(s.sensor_size[:2]) for s in scans}
    if any(m.sensor_size is None for m in maps) and len(areas) == 1:
        (w, l), = areas
        out += ["--sensor-size-um", f"{w / UM!r},{l / UM!r}"]
    return out


def grains_note(result: Any, made: dict[str, object], table: dict | None) -> str:
    """The grains of a result that its table does not account for, named as the command
    line's summary names them: those of the grain file left out (min voxels, the crop to the
    scan; a fresh result's), those magnetized beyond the saturation (`saturation_of`) and
    those the map does not determine (infinite SDs, their rows a pseudo-inverse's arbitrary
    magnetization); before them, where the residual is far above the noise (the σ given,
    else the residual's floor), that the fit is limited by the model. Computed in the worker
    that makes or reads the result: the residual's floor of a map of millions of pixels and
    thousands of grains' checks take a good part of a second."""
    from smm_daq.analysis.mmt.solver.misfit import misfit_note, residual_misfit
    from smm_daq.cli.mmt_models import (
        beyond_saturation_note,
        left_out_note,
        misfit_remedy,
        unresolved_note,
    )
    from smm_daq.storage.products import bare

    r = result
    notes = []
    if getattr(r.grains, "left_out", ()):
        voxels = int(bare(made.get("min_voxels", 1)))  # type: ignore[call-overload]
        notes.append(left_out_note(r.grains, voxels,
                                   options=("min voxels", "only grains under the scan")))
    beyond = beyond_saturation_note(r.grains.labels, r.magnetization, r.covariance,
                                    (table or {}).get("uncertainty_ratio_pct"),
                                    saturation_of(r, made))
    unresolved = unresolved_note(r.grains.labels, r.covariance)
    tested = hasattr(r, "higher_orders") and r.higher_orders() is not None
    misfit = misfit_note(residual_misfit(r, getattr(r, "noise", ())),
                         misfit_remedy(r.sigma_from_residual, "σ 0 (from the residual)",
                                       tested=tested), tested=tested)
    notes.extend(note.removeprefix("; ") for note in (misfit, beyond, unresolved) if note)
    return "\n".join(notes)


def saturation_of(result: Any, made: dict[str, object]) -> float | None:
    """The saturation magnetization (A/m) a result's crop was reckoned at, where one is
    recorded (a fresh result's shaping, `made`; a saved one's options); None: magnetite's."""
    from smm_daq.cli.mmt_models import recorded_saturation

    if "crop_magnetization" in made:
        return recorded_saturation(made)
    options = getattr(result, "options", None)  # a saved result's
    crop = None if options is None else options.crop or options.dragonfly
    return None if crop is None or crop.crop is None else crop.crop_magnetization


def made_with(options: ResultOptions) -> str:
    """The recorded options of a saved result in words ("" when it records none), e.g.
    "; Dragonfly: min voxels 10, …; masks bad.png, none"."""
    parts = []
    if options.dragonfly is not None:
        parts.append(f"Dragonfly: {describe(options.dragonfly)}")
    if options.crop is not None:
        parts.append(describe_crop(options.crop))
    if options.masks:
        parts.append("masks " + ", ".join(m.typed if m is not None else "none"
                                          for m in options.masks))
    if options.tile is not None:
        parts.append(f"tiles of {options.tile / UM:g} µm")
    if options.registration is not None:
        parts.append(describe_registration(options.registration))
    return "".join(f"; {p}" for p in parts)


def _items(combo: QtWidgets.QComboBox) -> list[str]:
    """The texts a combo box offers, in order."""
    return [combo.itemText(i) for i in range(combo.count())]


def _check_image_file(chosen: Path, file: Path) -> None:
    """InputError, in a window's words, unless `file` (the name `chosen` in the save dialog,
    .png added where it had no suffix) may take a map image: a PNG name in a folder that
    exists, never a directory or an HDF5 file, and no existing file the dialog did not ask
    to replace (one with .png added)."""
    from smm_daq.cli.args import output_file

    output_file("the map image", str(file), overwrite=True)
    if file.suffix.lower() != ".png":
        raise InputError(f"the map image is {path_shown(file)}; expected a file name ending in "
                         ".png")
    if file != chosen and file.exists():
        raise InputError(f"{file} already exists (the name chosen, {chosen.name}, with .png "
                         "added); expected another name, or that file chosen by its whole "
                         "name in the dialog to replace it")


def _write_mask_templates(path: Path, names: list[str], paths: list[Path]) -> list[str]:
    """`MMTView.save_mask_templates`'s work, off the GUI thread: the files written. An error
    after some were written says so in its `written` attribute (" (a.png written)")."""
    from smm_daq.analysis.mask_template import write_mask_template
    from smm_daq.analysis.mmt.scan_names import check_each_scan_once
    from smm_daq.cli.args import distinct_outputs

    check_each_scan_once(names)
    if len(paths) != len(names):
        raise InputError(f"{len(paths)} image files for {len(names)} scans; expected one per "
                         "scan")
    files = [p if p.suffix else p.with_name(p.name + ".png") for p in paths]
    # one file chosen for two scans would hold the last alone, named as both masks
    distinct_outputs(*((f"the map image of scan '{name}'", str(file))
                       for name, file in zip(names, files, strict=True)))
    for chosen, file in zip(paths, files, strict=True):
        _check_image_file(chosen, file)
    maps = [read_source(path, name) for name in names]
    written: list[str] = []
    try:
        for m, file in zip(maps, files, strict=True):
            written.append(str(write_mask_template(m, file)))
    except (SmmError, OSError) as exc:
        exc.written = f" ({', '.join(written)} written)" if written else ""  # type: ignore[union-attr]
        raise
    return written


# a result as the worker hands it to the tab to show, fresh or read back: each scan's measured
# map, the result, its per-grain table, warnings, how it was made, the grains' outlines and
# the note on the grains the table does not account for (`grains_note`)
Shown = tuple[list[MapData], Any, dict, list[str], dict[str, object], np.ndarray, str]


@dataclass(frozen=True)
class _ResultMaps:
    """The result's maps (measured with the outlines, a grain's own field, the residual) and
    its stereonet."""

    data: MapView
    grain: MapView
    residual: MapView
    highlight: pg.PlotCurveItem  # the selected grain's outline over the measured map
    net: Stereonet


class MMTView(QtWidgets.QWidget):
    """The MMT tab."""

    finished = QtCore.pyqtSignal(bool, str)  # inversion done (ok, message)
    saved = QtCore.pyqtSignal(object)  # the session file a result entry was written to
    saveEnded = QtCore.pyqtSignal(bool, str)  # a save ended (written?, what happened)
    grainShown = QtCore.pyqtSignal(int)  # the selected grain's own field is drawn (its index)
    loadEnded = QtCore.pyqtSignal(bool, str)  # a saved result read (shown?, what happened)
    exportEnded = QtCore.pyqtSignal(bool, str)  # a CSV or NPZ export ended (written?, status)
    templatesEnded = QtCore.pyqtSignal(bool, str)  # map images for masks (written?, status)

    def __init__(self, profile: Profile, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.profile = profile
        self.path: Path | None = None  # the open session file
        self.result_path: Path | None = None  # the file of the scans the result is of
        self._inverting: Path | None = None
        self.result: Any = None
        self.data: MapData | None = None  # the (first) map inverted: the result's source
        self.scan_maps: list[MapData] = []  # each scan's measured map, in the result's order
        self.fits: tuple[ScanFit, ...] = ()  # each scan's fitted and residual maps, sensor
        self.scan_shown = 0  # the scan whose maps are shown (index into `fits`)
        self.selected_grain: int | None = None  # its own field is drawn for the scan shown
        self.table_columns: dict | None = None  # the result's per-grain columns
        # how the shown result was made: command, grains, options (`result_params`)
        self.made: dict[str, object] = {}
        self.worker = Background("mmt", self)
        # a grain's own field on a large map takes a second: computed off the GUI thread, and
        # not queued behind an inversion
        self.field_worker = Background("grain-field", self)
        self._field_wanted = 0  # the grain field to draw (older ones, when they come: not)
        # a saved result is read in a worker of its own: not queued behind an inversion
        self.load_worker = Background("mmt-load", self)
        # exports are written off the GUI thread (a slow share), not queued behind an inversion
        self.export_worker = Background("mmt-export", self)
        self.exporting: Path | None = None  # the CSV or NPZ file being written (buttons off)
        self.writing_templates = False  # map images for masks being written (button off)
        self._load_wanted = 0  # the saved result to show (older reads, when they end: not)
        self.shown_entry: str | None = None  # the saved entry shown (None: a fresh result)
        # the fresh result shown, in words, while it is in no file (the window's close asks)
        self.unsaved: str | None = None
        self.progress_bridge = _Progress(self)
        self.progress_bridge.message.connect(self._progress)
        self.progress_bridge.sensors.connect(self._sensors_done)
        self.progress_bridge.merging.connect(self._merging)
        self._before_merge: str | None = None  # the status a merge took the place of
        self.running = False
        # choices made elsewhere while an inversion runs (a grain file drawn in the Session
        # tab, the file's maps read again, ...), its inputs locked: what each is, said, and
        # how it is applied once the run ends (returning why it could not be, if so), in the
        # order last chosen
        self._held: dict[str, tuple[str, Callable[[], str | None]]] = {}
        self.saving = False  # a result being written, in the worker
        self.saving_into: Path | None = None  # the file it is written into
        # what a button asked for once the save in hand is written (Yes to saving first), in
        # words and to do
        self._after_save: tuple[str, Callable[[], object]] | None = None
        self._cancel = threading.Event()

        self.entry = QtWidgets.QComboBox()
        self.entry.setMinimumContentsLength(16)
        self.grain_edit = QtWidgets.QLineEdit()
        self.grain_edit.setPlaceholderText("grain file (micro-CT cuboids or points)")
        self.grain_browse = QtWidgets.QToolButton(text="…")
        self.grain_browse.clicked.connect(self._choose_grains)
        self.grain_format = QtWidgets.QComboBox()
        self.grain_format.addItems(GRAIN_FORMATS)
        self.grain_format.setToolTip(f"The grain format: {FORMATS_TIP}")
        self.dragonfly = DragonflyOptionsRow()  # its crop for every point format
        self.dragonfly.set_grain_format(self.grain_format.currentText())
        self.grain_format.currentTextChanged.connect(self.dragonfly.set_grain_format)
        self.registration = RegistrationGroup()
        self.model = QtWidgets.QComboBox()
        self.model.addItems(MODELS)
        self.model.setToolTip("grain model; auto: cuboid for cuboid grains, dipole for points")
        self.device = QtWidgets.QComboBox()
        self.device.addItems(DEVICES)
        self.more_entries = QtWidgets.QLineEdit()
        self.more_entries.setPlaceholderText("joint with entries…")
        self.more_entries.setToolTip("more scans of the same grains, inverted jointly with the "
                                     f"map: their entries' names, {name_lists.RULE}")
        self.mask_edit = QtWidgets.QLineEdit()
        self.mask_edit.setPlaceholderText("mask (optional)")
        self.mask_edit.setToolTip("bad pixels: .npy (True or 1 = bad), an image of the map's "
                                  "shape (black = bad, transparent = kept) or "
                                  ".json of rectangles/polygons in µm; one file for every "
                                  "scan, or one per scan ('none': that scan unmasked): "
                                  f"{name_lists.RULE}")
        # what of the joint entries or the masks typed cannot be read as names, said under them
        self.lists_note = QtWidgets.QLabel("")
        self.lists_note.setWordWrap(True)
        self.lists_note.setStyleSheet(ERROR_STYLE)
        self.lists_note.hide()
        for box in (self.more_entries, self.mask_edit):
            box.textChanged.connect(lambda _text: self._check_lists())
        self.mask_browse = QtWidgets.QToolButton(text="…")
        self.mask_browse.setToolTip("Choose the mask file (one, or one per scan in order)")
        self.mask_browse.clicked.connect(self._choose_masks)
        self.template_button = QtWidgets.QPushButton("Save map image for a mask…")
        self.template_button.setToolTip(
            "A PNG of the map (and of each scan it is inverted with), one pixel a sensor (square "
            "pixels in µm where x and y steps differ), in light tones: paint the bad pixels "
            "black in an image editor, save it, and give it as the mask")
        self.template_button.clicked.connect(self._choose_templates)
        self.sigma = TrimmedSpinBox()
        self.sigma.setRange(0.0, 1e6)
        self.sigma.setDecimals(SIGMA_DECIMALS)
        self.sigma.setSuffix(" µT")
        self.sigma.setSpecialValueText("from residual")
        self.sigma.setToolTip("noise SD of one pixel; 0: estimated from the residual")
        self.saved_entry = QtWidgets.QComboBox()
        self.saved_entry.setMinimumContentsLength(12)
        self.saved_entry.setToolTip("MMT results saved in the session file (by the command "
                                    "line or this tab)")
        self.show_saved_button = QtWidgets.QPushButton("Show saved")
        self.show_saved_button.setToolTip("Show the chosen saved result: its table, maps, "
                                          "outlines (with its grain file) and net")
        self.show_saved_button.setEnabled(False)
        self.show_saved_button.clicked.connect(
            lambda: self.path is not None and self.show_saved(self.path,
                                                              self.saved_entry.currentText()))
        self.run_button = QtWidgets.QPushButton("Invert")
        self.run_button.clicked.connect(lambda: self._unless_kept("inverting again", self.run))
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the inversion after the block of sensors in hand")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.busy = QtWidgets.QProgressBar()
        self.busy.setRange(0, 1)
        self.busy.setMaximumWidth(160)
        self.status = QtWidgets.QLabel("Choose a scan entry and a grain file.")
        self.status.setWordWrap(True)
        self.held_note = QtWidgets.QLabel("")  # what is held until the inversion ends
        self.held_note.setWordWrap(True)
        self.held_note.hide()

        top = QtWidgets.QHBoxLayout()
        for w in (QtWidgets.QLabel("Map"), self.entry, QtWidgets.QLabel("Grains"),
                  self.grain_edit, self.grain_browse, self.grain_format, QtWidgets.QLabel("σ"),
                  self.sigma, self.run_button):
            top.addWidget(w)
        top.setStretchFactor(self.grain_edit, 1)
        second = QtWidgets.QHBoxLayout()
        for w in (QtWidgets.QLabel("Model"), self.model, QtWidgets.QLabel("Device"),
                  self.device, self.more_entries, self.mask_edit, self.mask_browse,
                  self.template_button, self.busy, self.cancel_button,
                  QtWidgets.QLabel("Saved"), self.saved_entry, self.show_saved_button):
            second.addWidget(w)
        second.setStretchFactor(self.more_entries, 1)
        second.setStretchFactor(self.mask_edit, 1)

        self.scan_choice = QtWidgets.QComboBox()
        self.scan_choice.setToolTip("The scan of a joint inversion whose map, residual and "
                                    "grains' own fields are shown, each on its own grid")
        self.scan_choice.currentIndexChanged.connect(self.show_scan)
        self.scan_label = QtWidgets.QLabel("Scan")
        for w in (self.scan_label, self.scan_choice):
            w.setVisible(False)  # shown for a result of several scans

        self.min_ssr = ClampingSpinBox()
        self.min_ssr.setRange(0.0, 1e6)
        # SSRs of micrometre grains tens of µm down are 1e-5 to 1e-2: limits in that range
        self.min_ssr.setDecimals(SSR_DECIMALS)
        self.min_ssr.setSingleStep(1e-4)
        self.min_ssr.setSuffix(" /µm")  # the unit of the table's ssr_per_um
        self.min_ssr.setSpecialValueText("any")
        self.max_ratio = ClampingSpinBox()
        self.max_ratio.setRange(0.0, 1e6)
        self.max_ratio.setDecimals(3)
        self.max_ratio.setSuffix(" %")
        self.max_ratio.setSpecialValueText("any")
        self.shown = QtWidgets.QLabel("")
        self.save_button = QtWidgets.QPushButton("Save to file")
        self.save_button.setToolTip("Write the result as a new entry of the session file "
                                    "(residual and fitted maps, per-grain table, covariances)")
        self.save_button.clicked.connect(lambda: self.save_to_file())
        self.csv_button = QtWidgets.QPushButton("Export CSV…")
        self.csv_button.setToolTip("The per-grain table as CSV, one row a grain")
        self.csv_button.clicked.connect(self._choose_csv)
        # the limits are the reliability criteria (SSR, uncertainty ratio): what an export of
        # the table holds is chosen, and said, not every grain written behind a filtered view
        self.csv_shown_only = QtWidgets.QCheckBox("only the grains shown")
        self.csv_shown_only.setChecked(True)
        self.csv_shown_only.setToolTip(
            "Export CSV writes only the grains that pass the SSR and uncertainty-ratio limits; "
            "unticked, every grain, as `smm-daq mmt invert --out` writes them (their "
            "ssr_per_um and uncertainty_ratio_pct columns filter them again)")
        self.csv_shown_only.setEnabled(False)
        self.library_button = QtWidgets.QPushButton("Export NPZ…")
        self.library_button.setToolTip("Point models: the results in the convention of "
                                       "mmt_multipole_inversion (inv_multipole_moments, "
                                       "inv_moments_std, covariance), as NPZ")
        self.library_button.clicked.connect(self._choose_library_file)
        for b in (self.save_button, self.csv_button, self.library_button):
            b.setEnabled(False)
        for box in (self.min_ssr, self.max_ratio):
            box.valueChanged.connect(self._filter_changed)
        filters = QtWidgets.QHBoxLayout()
        filters.addWidget(QtWidgets.QLabel("SSR ≥"))
        filters.addWidget(self.min_ssr)
        filters.addWidget(QtWidgets.QLabel("uncertainty ratio ≤"))
        filters.addWidget(self.max_ratio)
        filters.addWidget(self.shown, 1)
        filters.addWidget(self.scan_label)
        filters.addWidget(self.scan_choice)
        # the result's buttons on a row of their own, so the table can be narrow and the maps
        # wide
        saving = QtWidgets.QHBoxLayout()
        saving.addWidget(self.save_button)
        saving.addWidget(self.csv_button)
        saving.addWidget(self.csv_shown_only)
        saving.addWidget(self.library_button)
        saving.addStretch(1)

        self.proxy = GrainFilter(self)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setResizeContentsPrecision(ROWS_SIZED)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.selectionModel().selectionChanged.connect(self._selected)
        # what the table does not show of the grains: those left out, those not determined
        self.grains_note = QtWidgets.QLabel("")
        self.grains_note.setWordWrap(True)
        self.grains_note.hide()

        # the result's maps and net are built when first wanted (`_result_maps`): their four
        # plots cost a third of the window's construction, and most windows never show a
        # result nor this tab
        self._maps: _ResultMaps | None = None
        self._maps_grid = QtWidgets.QGridLayout()
        maps_holder = QtWidgets.QWidget()
        maps_holder.setLayout(self._maps_grid)
        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(filters)
        left_layout.addLayout(saving)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.grains_note)
        splitter = QtWidgets.QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(maps_holder)
        splitter.setSizes([520, 880])
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(second)
        layout.addWidget(self.lists_note)
        layout.addWidget(self.dragonfly)
        layout.addWidget(self.registration)
        layout.addWidget(self.status)
        layout.addWidget(self.held_note)
        layout.addWidget(splitter, 1)
        # what `run` reads when it starts: disabled while it runs, as an edit then would be
        # shown yet not used
        self.run_inputs: tuple[QtWidgets.QWidget, ...] = (
            self.entry, self.grain_edit, self.grain_browse, self.grain_format, self.sigma,
            self.model, self.device, self.more_entries, self.mask_edit, self.mask_browse,
            self.dragonfly, self.registration)
        # a number typed into a box of the tab, its registration's and its Dragonfly
        # options' that the box does not take, or takes at its range's end, is said here
        runs = {self.sigma, *self.dragonfly.findChildren(QtWidgets.QAbstractSpinBox),
                *self.registration.findChildren(QtWidgets.QAbstractSpinBox)}
        # said of a box `run` reads as it was left (Invert clicked: the box is left as the
        # button is pressed, and the run's own word wiped it), until typed over
        self._said_leaving: dict[QtWidgets.QWidget, str] = {}
        for box in self.findChildren(ClampingSpinBox) + self.findChildren(CountBox):
            box.refused.connect(lambda text, box=box: self._box_says(box, box.refusal(text)))
            box.clamped.connect(lambda typed, taken, box=box: self._box_says(
                box, f"{box.say(typed)} is beyond the box's range; {box.say(taken)} is used"))
            if box in runs:
                box.lineEdit().textEdited.connect(
                    lambda _text, box=box: self._said_leaving.pop(box, None))
        self._run_boxes = runs

    def _box_says(self, box: QtWidgets.QWidget, text: str) -> None:
        self.status.setText(text)
        if box in self._run_boxes and not box.hasFocus():
            self._said_leaving[box] = text

    # --- the result's maps, built on first use -----------------------------------------
    def _result_maps(self) -> _ResultMaps:
        """The maps and net, built (in their place in the tab) the first time they are asked
        for or the tab is shown: the same widgets, whenever they are made."""
        if self._maps is None:
            data = MapView(title="map and grains")
            grain = MapView(title=GRAIN_VIEW_TITLE)
            residual = MapView(title="residual (map − fit)")
            for view in (grain, residual):
                view.link_to(data)
            # the grain pane's colour scale, hidden with no grain's field, keeps its place:
            # were the pane to widen and narrow with it, its aspect-locked range would change
            # after the grain was shown, and through the links the map's too
            policy = grain.colour_bar.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            grain.colour_bar.setSizePolicy(policy)
            highlight = pg.PlotCurveItem(pen=pg.mkPen((0, 160, 0), width=3), connect="pairs")
            data.plot.addItem(highlight, ignoreBounds=True)
            net = Stereonet()
            self._maps_grid.addWidget(data, 0, 0)
            self._maps_grid.addWidget(grain, 0, 1)
            self._maps_grid.addWidget(residual, 1, 0)
            self._maps_grid.addWidget(net, 1, 1)
            self._maps = _ResultMaps(data, grain, residual, highlight, net)
        return self._maps

    def setVisible(self, visible: bool) -> None:
        """Shown (as its tab is chosen): its maps are built first, so they are shown with it."""
        if visible:
            self._result_maps()
        super().setVisible(visible)

    @property
    def data_view(self) -> MapView:
        """The measured map of the scan shown, with the grains' outlines."""
        return self._result_maps().data

    @property
    def grain_view(self) -> MapView:
        """The selected grain's own fitted field."""
        return self._result_maps().grain

    @property
    def residual_view(self) -> MapView:
        return self._result_maps().residual

    @property
    def highlight(self) -> pg.PlotCurveItem:
        return self._result_maps().highlight

    @property
    def net(self) -> Stereonet:
        return self._result_maps().net

    # --- inputs --------------------------------------------------------------------------
    def set_file(self, path: Path) -> str | None:
        """Offer the measured maps of a session file, read now (once the inversion running
        ends, if one is: `set_entries`); why it could not be read, if so (also shown)."""
        if self.running:
            self._hold("entries", f"the maps of {Path(path).name}", lambda: self.set_file(path))
            return None
        try:
            entries = list_entries(path)
        except (SmmError, OSError) as exc:  # nothing of the file before is offered either
            self.path = None
            self.entry.clear()
            self.saved_entry.clear()
            self.show_saved_button.setEnabled(False)
            self.status.setText(str(exc))
            return str(exc)
        self.set_entries(path, entries)
        return None

    def set_entries(self, path: Path, entries: list[EntryInfo]) -> None:
        """Offer the measured maps among a session file's `entries` (not a model's Bz: a
        fit's residual, a χ or M map). The list is filled again only when what it offers
        changed, keeping the map chosen (the Session tab re-reads the entries after every
        scan and write, mostly finding them as they were). While an inversion runs, what
        they change is held until it ends, the list locked as its other inputs are."""
        saved = [e.name for e in entries if e.kind == "mmt"]
        names = [e.name for e in entries if holds_measured_map(e)]
        if self.running:
            if (self.path is not None and Path(path) == self.path
                    and saved == _items(self.saved_entry) and names == _items(self.entry)):
                self._unhold("entries")  # as offered now: a change held before is undone
            else:
                self._hold("entries", f"the maps of {Path(path).name}",
                           lambda: self.set_entries(path, entries))
            return
        self.path = Path(path)
        if saved != _items(self.saved_entry):
            current = self.saved_entry.currentText()
            self.saved_entry.clear()
            self.saved_entry.addItems(saved)
            if current in saved:
                self.saved_entry.setCurrentText(current)
        self.show_saved_button.setEnabled(bool(saved))
        if names == _items(self.entry):
            return
        current = self.entry.currentText()
        with QtCore.QSignalBlocker(self.entry):  # no passing choices while it is filled
            self.entry.clear()
            self.entry.addItems(names)
            if current in names:
                self.entry.setCurrentText(current)

    def model_given(self) -> str | None:
        """The grain model chosen, None for "auto" (the command line's default)."""
        choice = self.model.currentText()
        return choice if choice != "auto" else None

    def set_grain_file(self, path: Path, fmt: str = "cuboids") -> None:
        """The grain file and its format (drawn in the Session tab), held until the inversion
        running ends, if one is."""
        if self.running:
            self._hold("grains", f"the grain file {Path(path).name} ({fmt})",
                       lambda: self.set_grain_file(path, fmt))
            return
        self.grain_edit.setText(str(path))
        self.grain_format.setCurrentText(fmt)

    def set_grain_format(self, fmt: str) -> None:
        """The grain format (the Session tab's Dragonfly options asked for), held until the
        inversion running ends, if one is."""
        if self.running:
            self._hold("format", f"the grain format {fmt}", lambda: self.set_grain_format(fmt))
            return
        self.grain_format.setCurrentText(fmt)

    def _hold(self, what: str, said: str, apply: Callable[[], str | None]) -> None:
        """Hold a choice of `what` (`said` in words) made while an inversion runs, its inputs
        locked: `apply` runs once it ends (`_apply_held`) and returns why it could not be
        applied, if so (a file read then, deleted meanwhile). A later choice of the same
        replaces it and is applied after the choices made before it: the user's last word
        wins."""
        self._held.pop(what, None)
        self._held[what] = (said, apply)
        self._show_held()

    def _unhold(self, what: str) -> None:
        if self._held.pop(what, None) is not None:
            self._show_held()

    def _show_held(self) -> None:
        self.held_note.setText("Held until the inversion ends (it goes on with the inputs it "
                               "began with): " + "; ".join(s for s, _ in self._held.values()))
        self.held_note.setVisible(bool(self._held))

    def _apply_held(self) -> str:
        """Apply what was chosen while the inversion ran (it has ended): what was, and what
        could not be and why, in words for the status line ("" when nothing)."""
        held, self._held = self._held, {}
        self._show_held()
        applied, refused = [], []
        for said, apply in held.values():
            problem = apply()
            if problem:
                refused.append(f"{said} ({problem})")
            else:
                applied.append(said)
        return "".join(f"\nChosen during the inversion, {how}: " + "; ".join(saids)
                       for how, saids in (("applied now", applied), ("not applied", refused))
                       if saids)

    def _choose_grains(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Grain file", self.grain_edit.text(),
            "Grain files (*.csv *.txt *.npz);;All (*)"
        )
        if name:
            self.grain_edit.setText(name)

    def _choose_masks(self) -> None:
        names, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Mask files (one, or one per scan in order)", "",
            "Masks (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.gif *.webp *.npy *.json);;All (*)")
        if names:
            self.mask_edit.setText(name_lists.joined(names))

    def _lists(self) -> tuple[list[str], list[str]]:
        """The joint entries and the masks typed (`name_lists.names`); InputError naming the
        box whose text cannot be read as names."""
        read = []
        for box, what in ((self.more_entries, "Joint entries"), (self.mask_edit, "Masks")):
            try:
                read.append(name_lists.names(box.text()))
            except InputError as exc:
                raise InputError(str(exc), source=what) from None
        return read[0], read[1]

    def _check_lists(self) -> None:
        """What of the joint entries or the masks typed cannot be read as names, said under
        the boxes as it is typed, the box marked."""
        problems = []
        for box, what in ((self.more_entries, "Joint entries"), (self.mask_edit, "Masks")):
            try:
                name_lists.names(box.text())
            except InputError as exc:
                problems.append(f"{what}: {exc}")
                box.setStyleSheet(ERROR_STYLE)
            else:
                box.setStyleSheet("")
        self.lists_note.setText("\n".join(problems))
        self.lists_note.setVisible(bool(problems))

    def _scan_names(self) -> list[str] | None:
        """The entries an inversion would read: the map, then the joint ones; None, the
        reason on the status line, where the joint ones typed cannot be read."""
        try:
            extra = name_lists.names(self.more_entries.text())
        except InputError as exc:
            self.status.setText(str(InputError(str(exc), source="Joint entries")))
            return None
        return [self.entry.currentText(), *extra]

    def _choose_templates(self) -> None:
        """Ask where to write each scan's map image (beside the session file at first)."""
        names = self._scan_names()
        if names is None:
            return
        if self.path is None or not names[0]:
            self.status.setText("Choose a scan entry (open a session file) first.")
            return
        chosen = []
        for i, name in enumerate(names):
            which = f" of scan '{name}'" + (f" ({i + 1} of {len(names)})" if len(names) > 1
                                            else "")
            start = str(self.path.with_name(f"{self.path.stem}_{name}_mask.png"))
            file, _ = QtWidgets.QFileDialog.getSaveFileName(
                self, f"Map image for a mask{which}", start, "PNG images (*.png)")
            if not file:
                return
            chosen.append(Path(file))
        self.save_mask_templates(chosen)

    def save_mask_templates(self, paths: list[Path]) -> bool:
        """Start writing the map image to paint a mask on (`smm_daq.analysis.mask_template`)
        of each scan the inversion would read, the map first, to `paths` in that order, in a
        worker (the files and the session file may be on a slow share; `templatesEnded`
        follows, the button disabled meanwhile); a file name without a suffix gets .png. The
        mask field, when empty, is filled with them (painted and saved in place, they are the
        masks). Every file name and scan is checked before the first image is written, as
        `export --mask-template` does: nothing written, the reason shown, when one cannot be
        (one file for two scans, a scan that is not a measured map, a file with .png added
        that exists: the dialog asked only about the name chosen), or the ones written named
        when writing one fails. False when no scan is chosen or images are being written."""
        names = self._scan_names()
        if names is None:
            return False
        if self.path is None or not names[0]:
            self.status.setText("Choose a scan entry (open a session file) first.")
            return False
        if self.writing_templates:
            return False
        path = self.path

        def ended(ok: bool, text: str) -> None:
            self.writing_templates = False
            self.template_button.setEnabled(True)
            self.status.setText(text)
            self.templatesEnded.emit(ok, text)

        def written(files: list[str]) -> None:
            named = not self.mask_edit.text().strip() and "masks" not in self._held
            held = named and self.running  # the mask field is locked: named once it ends
            if held:
                self._hold("masks", f"the mask {', '.join(files)}",
                           lambda: self.mask_edit.setText(name_lists.joined(files)))
            elif named:
                self.mask_edit.setText(name_lists.joined(files))
            ended(True, f"Map image{'s' if len(files) > 1 else ''} for a mask written: "
                        f"{', '.join(files)}. Paint the bad pixels black in an image editor "
                        "and save in place"
                        + ("; the mask field names them once the inversion ends." if held
                           else "; the mask field names them." if named
                           else ", then give them as the mask."))

        def failed(exc: BaseException) -> None:
            text = str(exc) if isinstance(exc, (SmmError, OSError)) else repr(exc)
            ended(False, f"Map image not written{getattr(exc, 'written', '')}: {text}")

        self.writing_templates = True
        self.template_button.setEnabled(False)
        self.status.setText("Writing the map image for a mask…")
        self.export_worker.submit(lambda: _write_mask_templates(path, names, paths), written,
                                  failed)
        return True

    # --- running -------------------------------------------------------------------------
    def run(self) -> bool:
        """Start the inversion in the worker; False (with the reason shown) if it cannot."""
        entry, grain_file = self.entry.currentText(), self.grain_edit.text().strip()
        if self.running or self.saving:
            return False
        said = "; ".join(self._said_leaving.values())
        self._said_leaving.clear()
        if said:  # Invert again takes what the boxes hold
            self.status.setText(f"{said}: not inverted")
            return False
        if self.path is None or not entry or not grain_file:
            self.status.setText("Choose a scan entry (open a session file) and a grain file.")
            return False
        path, fmt = self.path, self.grain_format.currentText()
        # σ in nT as the recorded command gives it, so that it makes the same run
        sigma_nT = round(self.sigma.value() * UT / NT, SIGMA_DECIMALS - 3)
        sigma = sigma_nT * NT or None
        model_choice, device = self.model.currentText(), self.device.currentText()
        model_given = self.model_given()
        from smm_daq.analysis.mmt.grain_shaping import check_registration, shaped_grains
        from smm_daq.analysis.mmt.scan_names import check_each_scan_once

        try:
            extra, masks = self._lists()
            check_each_scan_once([entry, *extra])
            registration = self.registration.registration()
            check_registration(registration, fmt, model_given)  # as the command line refuses
        except InputError as exc:
            self.status.setText(said_in_window(str(exc)))
            return False
        if len(masks) not in (0, 1, 1 + len(extra)):
            self.status.setText(f"{len(masks)} masks for {1 + len(extra)} scans; expected one "
                                "for all, or one per scan")
            return False
        dragonfly = self.dragonfly.options() if fmt in POINT_FORMATS else None
        crop_wanted = dragonfly is not None and dragonfly.crop is not None
        # how this run is made, as the command line would say it (auto: its defaults)
        arguments = ["mmt", "invert", str(path)]
        for name in (entry, *extra):
            arguments += ["--entry", name]
        arguments += ["--grains", grain_file, "--grain-format", fmt]
        arguments += ["--model", model_choice] if model_choice != "auto" else []
        for mask in masks:
            arguments += ["--mask", mask]
        arguments += (self.dragonfly.arguments() if fmt == "dragonfly"
                      else self.dragonfly.crop_arguments() if dragonfly is not None else [])
        arguments += self.registration.arguments()
        arguments += ["--device", device] if device != "auto" else []
        arguments += ["--sigma-nT", repr(sigma_nT)] if sigma else []
        from smm_daq.analysis.mmt.formats.dragonfly import scan_crop, with_magnetization
        from smm_daq.analysis.mmt.result_params import mask_parameters

        profile, emit = self.profile, self.progress_bridge.say
        cancel, sensors_done = self._cancel, self.progress_bridge.fold
        merged = self.progress_bridge.merge
        cancel.clear()

        def stop_if_cancelled() -> None:
            if cancel.is_set():
                raise InversionCancelled

        def on_block(done: int, total: int) -> None:
            stop_if_cancelled()
            sensors_done(done, total)

        def on_merge(done: int, total: int, share: float) -> None:
            stop_if_cancelled()
            merged(done, total, share)

        def job() -> Shown:
            stop_if_cancelled()
            # the result's and the solver's modules import SciPy's statistics and numba:
            # seconds, not on the window's thread
            from smm_daq.analysis.mmt.masks import mask_for
            from smm_daq.analysis.mmt.result_file import grain_parameters
            from smm_daq.analysis.mmt.solver.inversion import invert_map
            from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
            from smm_daq.analysis.mmt.solver.misfit import residual_misfit
            from smm_daq.cli.mmt_models import misfit_parameters

            data = read_source(path, entry)
            maps = [data] + [read_source(path, e) for e in extra]
            def sensor_of(m: MapData) -> tuple[float, ...]:
                """(w, l), or (w, l, thickness) for a volume sensor (which `invert_scans`
                refuses under the cuboid model)."""
                size = m.sensor_size or profile.sensor.active_area
                thickness = read_sensor_thickness(path, m.name)
                return (*size, thickness) if thickness > 0 else tuple(size)

            sensors = [sensor_of(m) for m in maps]
            heights = [m.height if m.height is not None else profile.sensor.height for m in maps]
            # the crop as the command line's --crop-to-scan makes it (and refuses it)
            crop = (with_magnetization(scan_crop(maps, [sigma] * len(maps), heights, sensors),
                                       chosen_magnetization(dragonfly))
                    if crop_wanted and dragonfly is not None else None)
            reader = (None if fmt != "dragonfly" or dragonfly is None
                      else replace(dragonfly, crop=None))
            with recorded() as read:  # e.g. overlapping cuboids; this thread's alone
                grains, shaped = shaped_grains(grain_file, fmt, registration, model=model_given,
                                               dragonfly=reader, crop=crop)
            point = isinstance(grains, PointGrains)
            model = model_choice if model_choice != "auto" else ("dipole" if point else "cuboid")
            emit(f"{grains.n_grains} grains ({model}), map {data.shape[1]} × {data.shape[0]}")

            with recorded() as caught:  # shown with the result
                scans = [Scan(m, heights[i], sensors[i], sigma,
                              mask_for(masks, i, m))
                         for i, m in enumerate(maps)]
                # the options as the command line records them: the crop window resolved,
                # and what the profile supplied for a map without it
                how = {**grain_parameters(grain_file, fmt),
                       "command": recorded_command(arguments + supplied(maps, scans)),
                       **shaped, **mask_parameters(masks, len(maps))}
                stop_if_cancelled()
                if model == "cuboid" and len(scans) == 1 and scans[0].mask is None \
                        and len(scans[0].sensor_size) == 2:
                    one = scans[0]
                    result = invert_map(data, grains, height=one.height,
                                        sensor_size=one.sensor_size[:2], sigma=sigma,
                                        progress=emit, device=device, on_block=on_block,
                                        on_merge=on_merge)
                else:
                    result = invert_scans(scans, grains, model=model, device=device,
                                          progress=emit, on_block=on_block,
                                          on_merge=on_merge)
                table = result.table()
                # the σ of the SDs and the residual against the noise, as the command records
                how.update(misfit_parameters("noise" if sigma else "residual",
                                             residual_misfit(result)))
            # thousands of grains, millions of pixels: not on the GUI thread
            outlines, note = grain_segments(result.grains), grains_note(result, how, table)
            stop_if_cancelled()  # cancelled after the last block: the result is not shown
            return (maps, result, table,
                    [said_in_window(_note(w)) for w in [*read, *caught]], how, outlines, note)

        self.run_button.setEnabled(False)
        self.save_button.setEnabled(False)  # the shown result is saved before or after
        self.cancel_button.setEnabled(True)
        for w in self.run_inputs:
            w.setEnabled(False)
        self.running = True
        self.busy.setRange(0, 0)  # busy until the first block of sensors is done
        self.status.setText(f"inverting '{entry}'…")
        self._inverting = path
        self.worker.submit(job, self._done, self._failed)
        return True

    def cancel(self) -> None:
        """Stop the running inversion once the block of sensors in hand is done."""
        if self.running:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling after the block of sensors (or the merge's panel) "
                                "in hand…")

    def closeEvent(self, event: QtGui.QCloseEvent | None) -> None:
        """A view closed on its own (as a tab, the window's close asks first and cancels)
        cancels its inversion: the worker stops after the block of sensors in hand instead of
        computing on, and sending progress, for a view about to be deleted."""
        self._cancel.set()
        super().closeEvent(event)

    def _progress(self, text: str) -> None:
        if not self._cancel.is_set():
            self.status.setText(text)

    def _sensors_done(self, done: int, total: int) -> None:
        if self._before_merge is not None:  # the next scan's sensors, after a scan's merge
            self._progress(self._before_merge)
            self._before_merge = None
        self.busy.setRange(0, total)
        self.busy.setValue(done)

    def _merging(self, done: int, total: int, share: float) -> None:
        """The merge of the streams' triangles, a stage of its own after the sensors: the
        status says so with its panels, the bar shows the share of its work done."""
        if self._before_merge is None:
            self._before_merge = self.status.text()
        self._progress(f"merging the two streams' triangles: {done} of {total} panels"
                       if done < total else "the two streams' triangles merged")
        self.busy.setRange(0, MERGE_STEPS)
        self.busy.setValue(round(share * MERGE_STEPS))

    def _failed(self, exc: BaseException) -> None:
        applied = self._idle()
        if isinstance(exc, InversionCancelled):
            self.status.setText("Inversion cancelled; the shown result, if any, is the last "
                                f"one finished.{applied}")
            self.finished.emit(False, "cancelled")
            return
        # an SmmError says what was wrong; anything else (a MemoryError, whose text is empty)
        # is named by its type
        text = said_in_window(str(exc)) if isinstance(exc, SmmError) else repr(exc)
        self.status.setText(f"Inversion failed: {text}{applied}")
        self.finished.emit(False, text)

    def _idle(self) -> str:
        """The inversion has ended: its inputs unlocked, what was chosen meanwhile applied
        (`_apply_held`, whose words are returned)."""
        self.running = False
        self._before_merge = None
        self.busy.setRange(0, 1)
        self.busy.setValue(1)
        self.run_button.setEnabled(True)
        self.save_button.setEnabled(self.result is not None and self.shown_entry is None)
        self.cancel_button.setEnabled(False)
        for w in self.run_inputs:
            w.setEnabled(True)
        return self._apply_held()

    def _done(self, value: Shown) -> None:
        """Show a fresh result: its table, maps, the grains' outlines and note (computed in
        the worker) and net."""
        self.shown_entry = None
        applied = self._idle()
        self._load_wanted += 1  # a saved result still being read is not shown over it
        # saved into the file of its scans, whichever file is open by then
        self._show(value, self._inverting)
        self.save_button.setEnabled(True)
        # which scans of which file: it stays on show when another session file is opened
        scans = ", ".join(f"'{m.name}'" for m in value[0])
        where = f" of {self._inverting.name}" if self._inverting is not None else ""
        self.unsaved = f"The MMT result of {scans}{where}"
        self.status.setText(f"Result of {scans}{where}: {self._summary(value[3])}{applied}")
        self.finished.emit(True, self.status.text())

    def _show(self, value: Shown, path: Path | None) -> None:
        """A result's table, maps, outlines and net, fresh or read back from `path`; of a joint
        inversion the first scan's maps, the others a choice away (`show_scan`)."""
        self.scan_maps, self.result, table, _notes, self.made, outlines, note = value
        self.data = self.scan_maps[0]
        self.fits = fits_of(self.result)
        self.selected_grain = None
        self.result_path = path
        self.table_columns = table
        self.grains_note.setText(note)
        self.grains_note.setVisible(bool(note))
        self.csv_button.setEnabled(True)
        self.csv_shown_only.setEnabled(True)
        self.library_button.setEnabled(getattr(self.result, "model", "cuboid") != "cuboid")
        self.proxy.setSourceModel(GrainTableModel(table, self))
        self.table.resizeColumnsToContents()
        self.data_view.set_outlines(outlines)
        self.highlight.setData([], [])
        with QtCore.QSignalBlocker(self.scan_choice):
            self.scan_choice.clear()
            self.scan_choice.addItems([fit.name for fit in self.fits])
            self.scan_choice.setCurrentIndex(0)
        for w in (self.scan_label, self.scan_choice):
            w.setVisible(len(self.fits) > 1)
        self.show_scan(0)
        self._filter_changed()

    def show_scan(self, i: int) -> None:
        """Show scan `i` of the result (of a joint inversion, the scan chosen): its map, its
        residual and the selected grain's own field at its height with its sensor, each on
        the scan's grid; the outlines and the table stay."""
        if not 0 <= i < len(self.fits):
            return
        self.scan_shown = i
        fit = self.fits[i]
        if self.scan_choice.currentIndex() != i:
            with QtCore.QSignalBlocker(self.scan_choice):
                self.scan_choice.setCurrentIndex(i)
        self.data_view.set_map(self.scan_maps[i])
        self.residual_view.set_map(fit.residual)
        # the grain field of another scan (or result) is not drawn over this one's grid
        self._field_wanted += 1
        self.grain_view.set_map(fit.fitted.with_bz(np.zeros_like(fit.fitted.bz)))
        self.grain_view.plot.setTitle(GRAIN_VIEW_TITLE)
        self.grain_view.colour_bar.hide()  # a scale of ±1 µT over no field
        if self.selected_grain is not None:
            self.select_grain(self.selected_grain)

    def _summary(self, notes: list[str]) -> str:
        """What the status line says of the shown result, then `notes` (warnings)."""
        r = self.result
        sigma_text = "from the residual" if r.sigma_from_residual else "given"
        higher = r.higher_orders() if hasattr(r, "higher_orders") else None
        resolved = ("" if higher is None else
                    f"; {int(np.sum(higher[2]))} with resolved higher orders (p < 0.05)")
        scans = f" of {len(r.scans)} scans" if len(getattr(r, "scans", ())) > 1 else ""
        return (
            f"{r.grains.n_grains} grains from {r.n_sensors} pixels{scans}; σ = "
            f"{', '.join(f'{v / NT:.4g}' for v in getattr(r, 'sigmas', ()) or (r.sigma,))} nT "
            f"({sigma_text}); cond(Q) = {r.condition_number:.3g}"
            f"{resolved}" + "".join(f"\nWarning: {note}" for note in notes)
        )

    # --- saved results -------------------------------------------------------------------
    def load_result(self, path: Path, entry: str) -> bool:
        """Start reading the MMT result saved as `entry` of `path`, in a worker of its own
        (an inversion may be running); once read it is shown as a fresh result is, and
        `loadEnded` follows. The grains' cuboids (outlines, a cuboid grain's own field) are
        the entry's own; an entry written before they were stored takes them from the grain
        file it records (its absolute path, then as typed), else the one in Grains, when it
        holds the result's grains. False when no entry is named."""
        if not entry:
            return False
        self._load_wanted += 1
        wanted = self._load_wanted
        typed = self.grain_edit.text().strip()

        def job() -> Shown:
            from smm_daq.analysis.mmt.result_read import grains_from_file, read_result_entry

            saved = read_result_entry(path, entry)
            saved, note = grains_from_file(saved, [saved.grain_file, typed])
            notes = [note] if note else []
            maps = [_measured_map(path, entry, fit, notes) for fit in fits_of(saved)]
            outlines = (grain_segments(saved.grains) if saved.shapes or saved.model != "cuboid"
                        else np.zeros((0, 2, 2)))
            made: dict[str, object] = {"command": saved.command, "grains": saved.grain_file}
            return (maps, saved, saved.table, notes, made, outlines,
                    grains_note(saved, made, saved.table))

        def shown(value: tuple) -> None:
            if wanted != self._load_wanted:  # another result asked for or computed since
                return
            self.shown_entry = entry
            self.unsaved = None  # the fresh result, if any, is no longer there to save
            self._show(value, Path(path))
            saved = value[1]
            self.save_button.setEnabled(False)  # it is in the file already
            self.library_button.setEnabled(saved.model != "cuboid"
                                           and saved.coefficients is not None)
            scans = ", ".join(saved.scans) or "not recorded"
            device = f", computed on {saved.device}" if saved.device else ""
            self.status.setText(f"Saved result '{entry}' of {path} ({saved.model} model; "
                                f"scans {scans}{device}{made_with(saved.options)}): "
                                f"{self._summary(value[3])}")
            self.loadEnded.emit(True, self.status.text())

        def failed(exc: BaseException) -> None:
            if wanted != self._load_wanted:
                return
            text = str(exc) if isinstance(exc, (SmmError, OSError)) else repr(exc)
            self.status.setText(f"Saved result not shown: {text}")
            self.loadEnded.emit(False, self.status.text())

        self.status.setText(f"Reading the saved result '{entry}' of {path}…")
        self.load_worker.submit(job, shown, failed)
        return True

    # --- saving --------------------------------------------------------------------------
    def save_to_file(self, name: str | None = None) -> bool:
        """Start writing the shown result, in the worker, as entry `name` (default: the next
        free ENTRY_mmt) of the session file whose scans it inverted, beside them, even if
        another file has been opened since; `saveEnded` follows (and `saved` once written).
        An entry there already is never replaced. False when there is nothing to save, or an
        inversion or a save is running (their buttons are disabled meanwhile)."""
        path = self.result_path
        if (self.result is None or self.data is None or path is None or self.running
                or self.saving or self.shown_entry is not None):
            return False  # nothing to save, busy, or a saved result: in the file already
        source, result, table, made = self.data.name, self.result, self.table_columns, self.made

        def job() -> str:
            from smm_daq.analysis.mmt.result_file import write_result_entry

            chosen = name
            if chosen is None:  # composed, as a name typed is (a scan of an earlier release's)
                taken = {e.name for e in list_entries(path)}
                stem = unicodedata.normalize("NFC", f"{source}_mmt")
                chosen, n = stem, 1
                while chosen in taken or lookalike(taken, chosen):
                    n += 1
                    chosen = f"{stem}_{n}"
            write_result_entry(path, chosen, source, result, table,
                               {**made, "command": saved_command(str(made["command"]), chosen)})
            return chosen

        self._set_saving(True)
        self.saving_into = path
        self.status.setText(f"Saving the result into {path}…")
        self.worker.submit(job, lambda written: self._saved(path, written), self._save_failed)
        return True

    def show_saved(self, path: Path, entry: str) -> bool:
        """`load_result` as Show saved (or the Session tab's Show in MMT tab) asks for it:
        asked first where it would replace a result in no file (`_unless_kept`). False when no
        entry is named or nothing was begun."""
        if not entry:
            return False
        return self._unless_kept(f"showing the saved result '{entry}'",
                                 lambda: self.load_result(path, entry))

    def _unless_kept(self, doing: str, then: Callable[[], object]) -> bool:
        """Do `then` (what a button asked for, `doing` in words, that replaces the result on
        show), asking first, as the window's close does, where that result is in no file
        (`unsaved`): Yes saves it, then does `then` once it is written (not if the save
        fails); No does `then`, the result dropped; Cancel does neither. A save in hand is
        waited for as after a Yes. While an inversion runs the result cannot be saved: Yes
        or No to dropping it. False where nothing was done or begun."""
        if self.saving:
            self._after_save = (doing, then)
            return True
        if self.unsaved is None:
            then()
            return True
        said = f"{self.unsaved} is not saved (the MMT tab's Save to file)"
        if self.running:
            if not confirm(self, f"{said}, and cannot be while an inversion runs. Go on "
                                 f"{doing} without saving it?"):
                return False
            then()
            return True
        answer = save_first(self, f"{said}. Save it before {doing}?\n\nYes saves it, then "
                                  "goes on; No goes on without saving it (the result is "
                                  "dropped); Cancel keeps it on show and does neither.")
        if answer == "cancel":
            return False
        if answer == "drop":
            then()
            return True
        if not self.save_to_file():  # nothing to save after all, or busy: nothing dropped
            return False
        self._after_save = (doing, then)
        return True

    def _set_saving(self, on: bool) -> None:
        self.saving = on
        self.save_button.setEnabled(not on and self.result is not None
                                    and self.shown_entry is None)
        self.run_button.setEnabled(not on)

    def _saved(self, path: Path, name: str) -> None:
        self._set_saving(False)
        self.unsaved = None
        self.status.setText(f"Saved as entry '{name}' of {path}")
        self.saved.emit(path)
        self.saveEnded.emit(True, self.status.text())
        after, self._after_save = self._after_save, None
        if after is not None:
            after[1]()

    def _save_failed(self, exc: BaseException) -> None:
        self._set_saving(False)
        text = str(exc) if isinstance(exc, (SmmError, OSError)) else repr(exc)
        after, self._after_save = self._after_save, None
        kept = (f"; not {after[0]}: the result is still on show" if after is not None else "")
        self.status.setText(f"Not saved: {text}{kept}")
        self.saveEnded.emit(False, self.status.text())

    def shutdown(self, wait_for_save: bool = True) -> None:
        """Stop the worker as the window closes, without waiting: a save in hand finishes
        writing its entry first (the window's close waits for it: `worker.join`), unless told
        not to (a scan's write has stalled: it waits for the same disk, or for HDF5, which the
        stalled write holds); so do an export and a mask's map images in hand (each is written
        whole: a close not waiting for it would leave the file asked for unwritten); an
        inversion (cancelled), a grain's field and a saved result being read are left to end
        in their threads; what was chosen during the inversion is dropped, so that its end,
        come after the close, applies nothing to the closed window."""
        self._held.clear()
        self._after_save = None  # a save's end, come after the close, begins nothing
        self.field_worker.shutdown(wait=False)
        self.load_worker.shutdown(wait=False)
        self.export_worker.shutdown(wait=self.exports_in_hand != [] and wait_for_save,
                                    timeout=0)
        self.worker.shutdown(wait=self.saving and wait_for_save, timeout=0)

    @property
    def exports_in_hand(self) -> list[str]:
        """What the export worker is writing, as the window's close says it."""
        return ([f"the MMT export into {self.exporting.name}"] if self.exporting else []) + (
            ["the map images for masks"] if self.writing_templates else [])

    def _beside_result(self, name: str) -> str:
        """Where an export of the shown result is first proposed: beside the session file of
        the scans it inverted (not the file opened since); `name` with {stem}, {map}."""
        if self.result_path is None or self.data is None:
            return ""
        return str(self.result_path.with_name(name.format(stem=self.result_path.stem,
                                                          map=in_file_name(self.data.name))))

    def _choose_csv(self) -> None:
        start = self._beside_result("{stem}_{map}_mmt.csv")
        name, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Per-grain results", start,
                                                        "CSV files (*.csv)")
        if name:
            self.export_csv(Path(name))

    def export_csv(self, path: Path) -> bool:
        """Start writing the per-grain table as CSV, of the grains shown (`csv_shown_only`)
        or all, in the result's order, never over an HDF5 (session) file: in a worker, as
        the file may be on a slow share (`exportEnded` follows). False when there is no
        table or an export is under way."""
        from smm_daq.analysis.mmt.result_file import write_result_csv
        from smm_daq.cli.args import output_file

        table = self.table_columns
        if table is None or self.exporting is not None:
            return False
        total = len(table["grain"])
        rows = sorted(self.proxy.shown_rows()) if self.csv_shown_only.isChecked() else None
        if rows is not None:
            table = {name: column[rows] for name, column in table.items()}
        which = (f"all {total} grains" if rows is None
                 else f"the {len(rows)} of {total} grains shown by the limits")

        def write() -> str:
            # the file dialog has asked before replacing a file; a session file never is
            write_result_csv(output_file("CSV file", str(path), overwrite=True), table)
            return f"Per-grain results of {which} written to {path}"

        return self._export(path, f"Writing the per-grain results to {path}…", write)

    def _choose_library_file(self) -> None:
        # the multipole library's own name for its results, InvMagQuad_<sample>.npz
        start = self._beside_result("InvMagQuad_{stem}_{map}.npz")
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Results for mmt_multipole_inversion", start, "NPZ files (*.npz)")
        if name:
            self.export_library(Path(name))

    def export_library(self, path: Path) -> bool:
        """Start writing a point model's results in the multipole library's convention (NPZ),
        in a worker (`exportEnded` follows). False for a cuboid model, or while an export is
        under way."""
        from smm_daq.analysis.mmt.formats.mpe import write_library_results
        from smm_daq.analysis.mmt.solver.joint import as_points
        from smm_daq.cli.args import output_file

        r = self.result
        if r is None or getattr(r, "model", "cuboid") == "cuboid" or self.exporting is not None:
            return False

        def write() -> str:
            grains = r.grains if isinstance(r.grains, PointGrains) else as_points(r.grains)
            write_library_results(output_file("NPZ file", str(path), overwrite=True),
                                  r.coefficients, r.coefficient_covariance, grains)
            return f"Results in the multipole library's convention written to {path}"

        return self._export(path, f"Writing the results for the multipole library to {path}…",
                            write)

    def _export(self, path: Path, doing: str, write: Callable[[], str]) -> bool:
        """Run `write` (of `path`; returns what it wrote, in words) in the export worker, the
        export buttons disabled meanwhile; the status line then says what was written or why
        not."""
        buttons = [b for b in (self.csv_button, self.library_button) if b.isEnabled()]
        self.exporting = path
        for b in buttons:
            b.setEnabled(False)

        def ended(ok: bool, text: str) -> None:
            self.exporting = None
            for b in buttons:  # an export ends the same result's export; a new result's
                b.setEnabled(True)  # buttons were set by its own showing
            self.status.setText(text)
            self.exportEnded.emit(ok, text)

        def failed(exc: BaseException) -> None:
            ended(False, "Not exported: " + (str(exc) if isinstance(exc, (SmmError, OSError))
                                             else repr(exc)))

        self.status.setText(doing)
        self.export_worker.submit(write, lambda text: ended(True, text), failed)
        return True

    # --- results -------------------------------------------------------------------------
    def _filter_changed(self) -> None:
        self.proxy.set_limits(self.min_ssr.value(), self.max_ratio.value() or float("inf"))
        if self.result is None:
            return
        rows = self.proxy.shown_rows()
        self.shown.setText(f"{len(rows)} of {self.result.grains.n_grains} grains shown")
        self.csv_shown_only.setText(f"only the {len(rows)} grains shown")
        labels = [str(self.result.grains.labels[r]) for r in rows]
        self.net.set_directions(self.result.magnetization[rows], labels)

    def sort_by(self, column: str, order=QtCore.Qt.SortOrder.AscendingOrder) -> None:
        """Sort the table by the named column."""
        model = self.proxy.sourceModel()
        if isinstance(model, GrainTableModel):
            self.table.sortByColumn(model.names.index(column), order)

    def select_grain(self, g: int) -> None:
        """Show grain `g` (index into the result): its outline, the map and residual around
        it, and its own field for the scan shown once computed in the worker (`grainShown`
        then)."""
        r, fit = self.result, self.fits[self.scan_shown]
        assert r is not None
        self.selected_grain = g
        label = r.grains.labels[g]
        self._field_wanted += 1
        wanted = self._field_wanted
        self.grain_view.set_bz(np.zeros_like(fit.fitted.bz))  # not the grain selected before
        self.grain_view.colour_bar.hide()  # nor its scale, over no field yet
        self.grain_view.plot.setTitle(f"fitted field of grain {label}: computing…")

        def computed(field: MapData) -> None:
            if wanted == self._field_wanted:  # no other grain or result since
                self.grain_view.set_bz(field.bz)
                self.grain_view.colour_bar.show()
                self.grain_view.plot.setTitle(f"fitted field of grain {label}")
                # laid out now, not after the signal: the pane narrowed by its colour scale
                # shown again changed its range, and through the links the map's, after it
                self.grain_view.settle_layout()
                self.grainShown.emit(g)

        def failed(exc: BaseException) -> None:
            if wanted == self._field_wanted:
                self.grain_view.plot.setTitle(f"fitted field of grain {label}: not computed")
                self.status.setText(f"The field of grain {label} was not computed: "
                                    f"{exc if isinstance(exc, SmmError) else repr(exc)}")

        # a saved cuboid result read without its grain file has no grain shapes
        shaped = getattr(r, "shapes", True) or getattr(r, "model", "cuboid") != "cuboid"
        if shaped:
            self.field_worker.submit(lambda: grain_field(r, g, fit), computed, failed)
            segments = grain_segments(r.grains, only=g) / UM
            self.highlight.setData(segments[:, :, 0].ravel(), segments[:, :, 1].ravel())
        else:
            self.grain_view.plot.setTitle(f"fitted field of grain {label}: needs the grain "
                                          "file")
            self.highlight.setData([], [])
        centre = r.grains.centroids()[g]
        radius = (float(sphere_diameters(r.grains.volume[g])) / 2
                  if isinstance(r.grains, PointGrains) else r.grains.radii()[g])
        half = max(4 * (fit.height - centre[2]), 4 * radius)  # at the shown scan's height
        left, bottom, width, height = pixel_rect(self.scan_maps[self.scan_shown])
        # the grain's surroundings, within the map: beyond it there is nothing to see
        x0, x1 = max(centre[0] - half, left), min(centre[0] + half, left + width)
        y0, y1 = max(centre[1] - half, bottom), min(centre[1] + half, bottom + height)
        if x1 <= x0 or y1 <= y0:  # a grain outside the map: its place beside it
            x0, x1, y0, y1 = centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half
        self.data_view.zoom_to((x0 / UM, x1 / UM), (y0 / UM, y1 / UM))

    def _selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.select_grain(self.proxy.grain_at(rows[0].row()))
