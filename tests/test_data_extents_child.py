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
