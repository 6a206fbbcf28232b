"""Shared test set-up: Qt offscreen, paths to the repository and to its test data."""

from __future__ import annotations

import errno
import gc
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")
# One OpenBLAS thread per test process (NumPy is not loaded yet here; a value set is kept).
# The suite runs a worker per core (`-n 2`), so more threads add no throughput, and with them
# every small call (the lock-in emulator's 4 × 4 `expm` at each exchange with the simulated
# rig) woke a helper thread that then spun on the other worker's core: 7 ms of CPU and up to
# 17 ms of wall time per `expm` instead of 0.05 ms; tests/test_gui_connect.py took 46 s, not
# 25 s, on two loaded cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

# A shell without job control starts a background job (`pytest &`, a CI runner's) with SIGINT
# ignored, and Python then neither installs its Ctrl-C handler nor lets `interrupt_main` raise:
# the tests of what Ctrl-C does would wait out their guards and fail. Python's own handler, as
# an interactive start has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _rig_locks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Rig locks (and the commands run in subprocesses) in a directory of this run, never the
    machine's: tests lock only loopback addresses, but a lab PC's directory stays clean."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMM_DAQ_LOCK_DIR", str(tmp_path_factory.mktemp("rig-locks")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _seeded_simulator_noise() -> Iterator[None]:
    """The simulator's noise seeded (fresh at each connection otherwise), here and in the
    commands run in subprocesses, so that the figures tests compare stay the same from run to
    run; the tests of fresh noise unset it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMM_DAQ_SIM_NOISE_SEED", "20261122")
        yield


@dataclass(frozen=True)
class DemoRun:
    """`smm-daq demo --out PATH` as run once: its exit code, standard output and error, and
    the file it wrote."""

    code: int
    out: str
    err: str
    path: Path

    def copy_to(self, folder: Path) -> Path:
        """The demo's file copied into `folder`, for a test that adds to it or writes over it:
        the run's own file is shared by every test of the session."""
        return Path(shutil.copy(self.path, folder / self.path.name))


@pytest.fixture(scope="session")
def cli_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The full command-line demo, run once a session (it scans three maps: seconds) for the
    tests that check what it printed or read what it wrote; none may change its file."""
    from smm_daq.cli.main import main

    path = tmp_path_factory.mktemp("cli-demo") / "demo.h5"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["demo", "--out", str(path)])
    return DemoRun(code, out.getvalue(), err.getvalue(), path)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def gui_env(tmp_path: Path) -> dict[str, str]:
    """The environment for `smm-daq gui` run as a subprocess: this checkout importable, Qt
    offscreen, and the window's settings (XDG_CONFIG_HOME, HOME) under tmp_path, never the
    user's."""
    return {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen",
            "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "HOME": str(tmp_path)}


@pytest.fixture
def test_data() -> Path:
    """The real data sets kept in the repository (tests/data, each with its licence)."""
    return DATA


@pytest.fixture
def demo_session(tmp_path: Path) -> Path:
    """A session file holding the multipole library's demo scan as entry 'qdm' (16 × 20
    sensors; its grains are tests/data/MagneticSample_mpe_demo.npz), imported as a user
    would."""
    from smm_daq.cli.main import main

    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(DATA / "MetaDict_mpe_demo.json"),
                 str(DATA / "MagneticSample_mpe_demo.npz"), "--out", str(h5),
                 "--name", "qdm"]) == 0
    return h5


def _uses_qt(item: pytest.Item | None) -> bool:
    return item is not None and "qtbot" in getattr(item, "fixturenames", ())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Around a GUI test (see `_gc_in_gui_thread`), what was alive before it is frozen
    (`gc.freeze`), so that the collections during and after it walk only what the test made:
    walking the whole suite's heap took 0.2–0.5 s a GUI test, minutes in all. Once pytest has
    dropped the test's arguments (its window, say), what it made is collected here, in the GUI
    thread. Before a test that is not a GUI test (whose threads collect as they allocate), all
    of the heap is collected here, so what an earlier GUI test left to die later (a widget a
    worker held) is freed in this thread too."""
    gui = _uses_qt(item)
    if gui:
        gc.freeze()
    try:
        yield
    finally:
        if gui and _uses_qt(nextitem):
            gc.collect()
            gc.unfreeze()
        elif gui:
            gc.unfreeze()
            gc.collect()


@pytest.fixture(autouse=True)
def _gc_in_gui_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """GUI tests collect garbage as the application does, in the GUI thread only: otherwise a
    worker thread's collection (an inversion's, a scan's) can free an earlier test's widgets
    there, and Qt crashes. What the test made is collected, in this thread, before the next
    test (again once pytest drops the test's arguments: `pytest_runtest_protocol`)."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    from gui.gui_thread_gc import collect_in_gui_thread

    with collect_in_gui_thread():
        yield


@pytest.fixture
def settings(tmp_path: Path):
    """GUI settings in a temporary file, never the user's."""
    from PyQt6 import QtCore

    return QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def live(qtbot):
    """A live scan in a shown map view, fed events by the test (no rig, no sequencer); it
    takes points in on a frame of its timer, or when the test calls `_frame`."""
    from gui.live_scan import LiveScan
    from gui.map_view import MapView

    view = MapView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    scan = LiveScan(view)
    yield scan
    scan.timer.stop()


@pytest.fixture
def window(qtbot, settings, tmp_path: Path):
    """The main window on the simulator profile, its rig connected and a session file chosen;
    afterwards any scan still running is aborted and the rig made safe and closed."""
    from gui.main_window import MainWindow
    from smm_daq.instruments.profile import load_profile

    wait_ms = 60_000  # generous: the whole suite shares two cores
    w = MainWindow(load_profile(), settings)
    qtbot.addWidget(w)
    w.show()
    w.instruments.connect_rig()
    qtbot.waitUntil(lambda: w.holder.rig is not None, timeout=wait_ms)
    w.scan.file_edit.setText(str(tmp_path / "session.h5"))
    yield w
    if w.scan.live.running:
        w.scan.live.abort()
        qtbot.waitUntil(lambda: not w.scan.live.running, timeout=wait_ms)
    w.holder.close()


@pytest.fixture
def as_gpu(monkeypatch):
    """Makes the MMT device layer take a given solver (e.g. DeviceSolver on NumPy) for a
    usable GPU, so the GPU path's logic runs on any machine."""
    from smm_daq.analysis.mmt.solver import device as devices

    def use(solver) -> None:
        monkeypatch.setattr(devices, "gpu_problem", lambda: None)
        monkeypatch.setattr(devices, "gpu_solver", lambda: solver)

    return use


@pytest.fixture
def in_cuda_simulator():
    """Runs a script of tests/ in a fresh interpreter under numba's CUDA simulator
    (NUMBA_ENABLE_CUDASIM=1, which numba reads at import) and fails with its output unless
    it exits 0."""

    def run(script: str) -> None:
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, str(REPO / "tests" / script)], env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr

    return run


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a file read-only here: its mode, and, for root (whom modes do not stop), every
    open of it for writing refused as the system refuses another user's."""
    real_open = os.open
    paths: set[str] = set()

    def refusing(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if os.fspath(path) in paths and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)

    def make(path: Path) -> None:
        path.chmod(0o444)
        paths.add(os.fspath(path))

    yield make


@pytest.fixture
def met() -> Iterator[threading.Event]:
    """Python's own SIGINT handler (a script's), telling when the main thread met the Ctrl-C."""
    event = threading.Event()

    def handle(signum: int, frame: object) -> None:
        event.set()
        signal.default_int_handler(signum, frame)

    before = signal.signal(signal.SIGINT, handle)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, before)
