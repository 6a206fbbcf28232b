"""The child process `data_extents` asks HDF5 in: never left running where its caller is
interrupted (a walk hung in HDF5 would spin for ever, an orphan), and not started where
there is no Python to start it with (a frozen app's executable is the app itself)."""

from __future__ import annotations

import queue
import subprocess
import sys
import types

import pytest

from smm_daq.storage import data_extents


def test_a_ctrl_c_while_the_walk_is_waited_for_ends_the_child(tmp_path, monkeypatch):
    started: list[subprocess.Popen[str]] = []
    popen = subprocess.Popen

    def hung(args, **kwargs):  # type: ignore[no-untyped-def]
        # a walk that hangs in HDF5, silent (as on a damaged heap holding a fill value)
        started.append(popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             **kwargs))
        return started[-1]

    class Interrupted(queue.Queue):  # type: ignore[type-arg]
        def get(self, block=True, timeout=None):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt

    monkeypatch.setattr(data_extents.subprocess, "Popen", hung)
    monkeypatch.setattr(data_extents, "queue",
                        types.SimpleNamespace(Queue=Interrupted, Empty=queue.Empty))
    try:
        with pytest.raises(KeyboardInterrupt):
            data_extents.data_extents(tmp_path / "any.h5")
        assert len(started) == 1
        assert started[0].poll() is not None
    finally:
        for child in started:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.mark.parametrize(("frozen", "executable"), [(True, sys.executable), (False, None),
                                                    (False, "")],
                         ids=["frozen", "no-executable", "empty-executable"])
def test_no_process_is_started_without_a_python_to_start(tmp_path, monkeypatch, frozen,
                                                         executable):
    def refused(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(data_extents.subprocess, "Popen", refused)
    monkeypatch.setattr(sys, "frozen", frozen, raising=False)
    monkeypatch.setattr(sys, "executable", executable)
    assert data_extents.data_extents(tmp_path / "any.h5") is None


def test_the_child_imports_nothing_from_the_current_folder(tmp_path, monkeypatch):
    """A folder of the user's holding a module named as one the walk imports (`h5py.py`):
    the child, run from there, still imports the real one and answers."""
    import h5py
    import numpy as np

    path = tmp_path / "values.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(1000))
    (tmp_path / "h5py.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    extents = data_extents.data_extents(path)
    assert extents is not None and len(extents) == 1


def test_on_windows_the_child_has_no_console_window(tmp_path, monkeypatch):
    asked: list[dict[str, object]] = []

    def recorded(args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(kwargs)
        raise OSError("not started here")

    monkeypatch.setattr(data_extents.subprocess, "CREATE_NO_WINDOW", 0x08000000,
                        raising=False)
    monkeypatch.setattr(data_extents.subprocess, "Popen", recorded)
    assert data_extents.data_extents(tmp_path / "any.h5") is None
    assert asked[0].get("creationflags") == 0x08000000


class _Said(queue.Queue):  # type: ignore[type-arg]
    """The child's lines as given, then silence (queue.Empty at once, not waited for)."""

    lines: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.left = list(self.lines)

    def put(self, item, block=True, timeout=None):  # type: ignore[no-untyped-def]
        pass  # the real child's output is not heard

    def get(self, block=True, timeout=None):  # type: ignore[no-untyped-def]
        if self.left:
            return self.left.pop(0)
        raise queue.Empty


@pytest.mark.parametrize(("said", "started"), [((), False), (("walking\n",), True)],
                         ids=["not-started", "started-then-silent"])
def test_a_child_slow_to_start_is_told_from_one_hung_in_hdf5(tmp_path, monkeypatch, said,
                                                            started):
    """Silent before it says it started (an antivirus scanning Python cold): NotStarted, and
    what it found is not remembered; silent after: hung in HDF5 (None, the damage stands and
    is remembered)."""
    from smm_daq.errors import InputError
    from smm_daq.storage import global_heap

    monkeypatch.setattr(data_extents, "queue", types.SimpleNamespace(
        Queue=type("Said", (_Said,), {"lines": said}), Empty=queue.Empty))
    path = tmp_path / "s.h5"
    path.write_bytes(b"not read")
    if started:
        assert data_extents.data_extents(path) is None
    else:
        with pytest.raises(data_extents.NotStarted):
            data_extents.data_extents(path)
    real = global_heap.damaged_collection
    monkeypatch.setattr(global_heap, "data_extents", data_extents.data_extents)
    monkeypatch.setattr(global_heap, "damaged_collection", lambda p, *a: (100, "looks so"))
    with pytest.raises(InputError, match="at byte 100 "):
        global_heap.check_global_heaps(path, settled=True)
    monkeypatch.setattr(global_heap, "damaged_collection", real)
    if started:
        with pytest.raises(InputError, match="at byte 100 "):
            global_heap.check_global_heaps(path)  # remembered
    else:
        global_heap.check_global_heaps(path)  # scanned again: no HDF5 file, nothing found
