"""Start the application: `smm-daq gui [--profile FILE] [FILE.h5] [--demo] [--screenshot FILE]`."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from gui.demo import Demo
from gui.demo_folder import clean_up, kept_unread, make_demo_folder
from gui.gui_thread_gc import collect_in_gui_thread
from gui.main_window import MainWindow
from gui.signals import closing_on_signals
from gui.slot_errors import reporting_slot_errors
from smm_daq.cli.args import output_file, session_file
from smm_daq.cli.main import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_WRITE_STALLED, leave_now
from smm_daq.errors import InputError, SmmError
from smm_daq.instruments.profile import Profile, ProfileWarning, load_profile
from smm_daq.text_files import path_shown
from smm_daq.thread_warnings import recorded

ORGANIZATION = "smm-daq"
APPLICATION = "gui"


def settings() -> QtCore.QSettings:
    """The application's persistent settings (an INI file in the user's config folder;
    tests move it with QSettings.setPath)."""
    return QtCore.QSettings(
        QtCore.QSettings.Format.IniFormat,
        QtCore.QSettings.Scope.UserScope,
        ORGANIZATION,
        APPLICATION,
    )


def _check(args: argparse.Namespace) -> None:
    """Refuse, before any window opens, what the other commands refuse: a session file that
    cannot be read (the demo's: one it could not write into), and a screenshot that could not
    be written (one there already is replaced: the README's pictures are made again so)."""
    if args.file is not None:
        if args.demo:
            session_file("FILE.h5", str(args.file))
        else:
            _readable_session(args.file)
    if args.screenshot is not None:
        if args.screenshot.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
            raise InputError(
                f"--screenshot is {path_shown(args.screenshot)}; expected a .png, .jpg or .bmp file"
            )
        output_file("--screenshot", str(args.screenshot), overwrite=True)
    if args.time_scale is not None and not args.time_scale >= 0:
        raise InputError(f"--time-scale is {args.time_scale}; expected a number >= 0")


def _readable_session(path: Path) -> None:
    """InputError naming `path` and what is wrong unless it opens as a session file (missing,
    a directory, not HDF5, cut short, damaged: as `smm-daq info` says it)."""
    from smm_daq.storage.nexus import list_entries

    try:
        list_entries(path)
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc}); expected an smm-daq "
                         "session file (.h5)", source=str(path)) from None


def load_profile_warned(path: Path | None) -> tuple[Profile, list[str]]:
    """The profile at `path` (`load_profile`), with what it warned of as it loaded
    (`ProfileWarning`: a key that has no effect on the instrument named), for the window to
    show whatever the warning filters say; each warning is also warned of again as before,
    once per load, so that the filters (-W, PYTHONWARNINGS) decide, as for any warning,
    whether it is said on stderr, left unsaid, or raised."""
    with recorded(whatever_the_filters=True) as caught:  # each warned again below
        profile = load_profile(path)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return profile, [str(w.message) for w in caught if issubclass(w.category, ProfileWarning)]


def chosen_profile(args: argparse.Namespace, store: QtCore.QSettings
                   ) -> tuple[Profile, list[str]]:
    """The profile the window runs on, with what it warned of (`load_profile_warned`): the
    one given by --profile, else the one the window last ran on, else the simulator's. The
    demo runs the simulator: a remembered profile of a real rig, or one that no longer loads,
    gives way to the simulator's (it was refused, naming a profile the user had not given);
    one given is refused."""
    profile_path = args.profile
    if profile_path is None and store.value("profile/path"):
        remembered = Path(str(store.value("profile/path")))
        # asked on this thread before any window opens: there is no Stop or Esc to answer
        # yet and no rig connected to make safe, and the profile is read here at once anyway
        # (a slow share delays the start, as a profile given by --profile does, once)
        profile_path = remembered if remembered.exists() else None
        if args.demo and profile_path is not None and not _simulator_profile(profile_path):
            profile_path = None
    profile, profile_warnings = load_profile_warned(profile_path)
    if args.demo and not profile.simulated:
        raise InputError(
            f"--demo runs the simulator; profile {profile.path} has rig.simulated = false"
        )
    return profile, profile_warnings


def _simulator_profile(path: Path) -> bool:
    """Whether the profile at `path` loads and is a simulator's, loaded without a word: the
    demo runs a remembered profile only then, and says nothing of one it does not run (a real
    rig's warnings, or why one edited since no longer loads)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_profile(path).simulated
    except SmmError:
        return False


def run(args: argparse.Namespace) -> int:
    _check(args)
    store = settings()
    profile, profile_warnings = chosen_profile(args, store)

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("smm-daq")
    folder = make_demo_folder() if args.demo else None
    left_stalled_write = rig_unsafe = signalled = False
    try:
        # worker threads must never delete widgets; an error in a slot must not abort the program
        with collect_in_gui_thread(), reporting_slot_errors(profile) as slot_errors:
            signalled_window = _SignalledWindow()
            # a signal while the window opens too: an interruption, not an error of its code
            with closing_on_signals(signalled_window.close):
                window, outcome = _open_window(profile, profile_warnings, store, args, folder)
                signalled_window.opened(window)
                status = app.exec()
                window.close_left_open()  # quit() or exit() called with the window open
            left_stalled_write = window.left_stalled_write
            rig_unsafe = window.rig_may_be_unsafe
            signalled = bool(window.signalled)
            del window  # so that leaving the block frees it here, in the GUI thread
    finally:
        if folder is not None:  # the window is closed: nothing writes there any more
            # past a write stalled inside HDF5, reading the demo's session file would wait
            # for h5py's lock for good: the folder is kept unread
            print(f"smm-daq: {kept_unread(folder) if left_stalled_write else clean_up(folder)}")
    code = exit_code(args, outcome, status, rig_unsafe=rig_unsafe,
                     left_stalled_write=left_stalled_write, signalled=signalled)
    if slot_errors.count:  # the window's code failed (said as it did): as a failure is told
        code = EXIT_FAILED
    if left_stalled_write:
        leave_now(code)
    return code


class _SignalledWindow:
    """What a signal closes (`closing_on_signals`): the window, once it has opened; a signal
    received while it opens closes it from the application's event loop, once that runs (the
    rig it connects made safe)."""

    def __init__(self) -> None:
        self.window: MainWindow | None = None
        self.received = ""  # the signal received before the window had opened

    def close(self, name: str) -> None:
        if self.window is None:
            self.received = name
        else:
            self.window.close_on_signal(name)

    def opened(self, window: MainWindow) -> None:
        self.window = window
        if self.received:
            QtCore.QTimer.singleShot(0, lambda: window.close_on_signal(self.received))


def exit_code(args: argparse.Namespace, outcome: dict[str, bool], status: int, *,
              rig_unsafe: bool = False, left_stalled_write: bool = False,
              signalled: bool = False) -> int:
    """The command's exit code once the window has closed, as a command that drives the rig
    exits: 1 when the demo failed, a screenshot asked for was not written (said, unless its
    write failure was said already), or the window's close could not make the rig safe (said
    as it closed); else 3 when the close left a write to a stalled disk (said as it closed);
    else 130 when a signal closed it."""
    if args.screenshot is not None and not outcome["shot"]:
        if not outcome["shot_failed"]:
            print(f"smm-daq: no screenshot written to {args.screenshot}: the window was closed "
                  "before it was due", file=sys.stderr)
        return EXIT_FAILED
    if not outcome["ok"] or rig_unsafe:
        return EXIT_FAILED
    if status != 0:
        return status
    return EXIT_WRITE_STALLED if left_stalled_write else EXIT_INTERRUPTED if signalled else 0


def _open_window(profile: Profile, profile_warnings: list[str], store: QtCore.QSettings,
                 args: argparse.Namespace, demo_folder: Path | None
                 ) -> tuple[MainWindow, dict[str, bool]]:
    """The main window, shown (with what the profile warned of as it loaded), its rig
    connecting, and the demo (its files in `demo_folder`) or the session file begun; with the
    outcome the demo will report (ok unless it fails)."""
    window = MainWindow(profile, store, time_scale=args.time_scale, persist=not args.demo,
                        profile_warnings=profile_warnings)
    if args.view:
        window.show_view(args.view)
    window.show()
    window.instruments.connect_rig()
    outcome = {"ok": True, "shot": False, "shot_failed": False}
    if demo_folder is not None:
        _start_demo(window, args, outcome, demo_folder)
    else:
        if args.file is not None:  # on the map of the entry it opens on, as in HDF5 viewers
            window.session.open_file(
                args.file, then=lambda shown: window.session.show_default_entry() if shown
                else None)
        elif store.value("session/file"):  # if it is still there (asked off the window's
            # thread: a share that no longer answers must not hold the window's first frame)
            window.session.open_file(Path(str(store.value("session/file"))), missing_ok=True)
        if args.screenshot is not None:  # once the rig's first readings are on show
            shoot = lambda *_: _screenshot(window, args.screenshot, outcome)  # noqa: E731
            window.instruments.updated.connect(shoot, QtCore.Qt.ConnectionType.SingleShotConnection)
            window.holder.failed.connect(shoot)
    return window, outcome


def _start_demo(window: MainWindow, args: argparse.Namespace, outcome: dict,
                folder: Path) -> None:
    demo = Demo(window, folder, session_file=args.file)
    window.statusBar().showMessage(f"Demo: files in {folder}, removed when the window closes "
                                   "unless you add to them")
    print(f"smm-daq: demo files in {folder}")

    def done(ok: bool, message: str) -> None:
        outcome["ok"] = ok
        if not ok:
            print(f"smm-daq: demo failed: {message}", file=sys.stderr)
        if args.view:
            window.show_view(args.view)
        if args.screenshot is not None:
            _screenshot(window, args.screenshot, outcome)

    demo.finished.connect(done)
    demo.start()


SCREENSHOT_SIZE = (1400, 860)


def _screenshot(window: MainWindow, path: Path, outcome: dict[str, bool]) -> None:
    """Save the window as it looks now (at one size, for the docs), then close it (which
    makes the rig safe); nothing when it has been closed, or is closing, already (what the
    screenshot would show is gone: `exit_code` says so). `outcome` records which."""
    window.resize(*SCREENSHOT_SIZE)
    # the session's entries, maps and image, and the selected grain's field, made off the GUI
    # thread
    session = window.session
    while session.reading or session.reader.pending or window.mmt.field_worker.pending:
        QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
    for _ in range(3):  # layouts settle over a few passes of posted events
        QtWidgets.QApplication.sendPostedEvents()
        QtWidgets.QApplication.processEvents()
    window.session.compare.fit()
    QtWidgets.QApplication.processEvents()
    if window.closing or not window.isVisible():  # also while the events above were handled
        return
    if window.grab().save(str(path)):
        outcome["shot"] = True
    else:
        outcome["shot_failed"] = True
        print(f"smm-daq: could not write {path}", file=sys.stderr)
    window.close()
    QtWidgets.QApplication.quit()
