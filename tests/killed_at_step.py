"""An smm-daq command run in a child process that SIGKILLs itself just before its Nth file
step, as a crash or `kill -9` would stop it, wherever its writer is.

A step is one HDF5 change a writer makes (a dataset's value written, a link moved or
deleted, an attribute set or deleted) or one flush or close of a file. The child is forked
from the test, with everything imported already, so that each run costs only its own work;
run as a script, it is a process of its own (for a test with threads of its own).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import h5py

_STEPPED = ((h5py.Dataset, "__setitem__"), (h5py.Group, "move"), (h5py.Group, "__delitem__"),
            (h5py.AttributeManager, "__delitem__"), (h5py.AttributeManager, "__setitem__"),
            (h5py.File, "flush"), (h5py.File, "close"))


def _count_steps(kill_at: int) -> list[int]:
    """Count the steps from now (in this process: the child), killing it just before the
    `kill_at`th (0: never); the count so far in the list returned."""
    made = [0]
    for owner, name in _STEPPED:
        original = getattr(owner, name)

        def stepped(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            made[0] += 1
            if made[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _original(self, *args, **kwargs)

        setattr(owner, name, stepped)
    return made


def run_killed_at(kill_at: int, argv: Sequence[str]) -> tuple[int | None, int]:
    """`smm-daq ARGV` in a forked child killed just before its `kill_at`th step (0: never):
    (its exit code, None when it was killed; the steps it made, 0 when killed)."""
    from smm_daq.cli.main import main

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the test
        code = 70
        try:
            os.close(read_end)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            made = _count_steps(kill_at)
            code = main(list(argv))
            os.write(write_end, str(made[0]).encode())
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reply:
        made = reply.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return None, 0
    return os.WEXITSTATUS(status), int(made or 0)


def main() -> int:
    """`python killed_at_step.py N ARGS...`: `smm-daq ARGS` in this process, killed just
    before its Nth step (0: never: the steps made are printed last on stdout), for a test
    whose own threads (a served rig) rule out forking it."""
    kill_at, *argv = sys.argv[1:]
    made = _count_steps(int(kill_at))
    from smm_daq.cli.main import main as smm_daq

    code = smm_daq(argv)
    print(f"steps {made[0]}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
