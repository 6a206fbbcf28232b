"""An smm-daq command run in a child process that SIGKILLs itself just before its Nth file
step, as a crash or `kill -9` would stop it, wherever its writer is.

A step is one HDF5 change a writer makes (a dataset's value written, a link moved or
deleted, an attribute set or deleted) or one flush or close of a file. The child is forked
from the test, with everything imported already, so that each run costs only its own work;
run as a script, it is a process of its own (for a test with threads of its own).
A forked child is waited for only so long (`CHILD_LIMIT_S`): one that hangs (on a lock that
a thread of the test's process held as it forked: a child has none of its threads) is killed
and said, not waited for until the whole run's limit, and never left running after it.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import h5py

_STEPPED = ((h5py.Dataset, "__setitem__"), (h5py.Group, "move"), (h5py.Group, "__delitem__"),
            (h5py.AttributeManager, "__delitem__"), (h5py.AttributeManager, "__setitem__"),
            (h5py.File, "flush"), (h5py.File, "close"))
CHILD_LIMIT_S = 120.0  # s: far beyond a simulated scan's run; a child still running is hung


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


def run_killed_at(kill_at: int, argv: Sequence[str], *, limit_s: float = CHILD_LIMIT_S
                  ) -> tuple[int | None, int]:
    """`smm-daq ARGV` in a forked child killed just before its `kill_at`th step (0: never):
    (its exit code, None when it was killed; the steps it made, 0 when killed).
    AssertionError, the child killed, where it has not ended within `limit_s`."""
    threads = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
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
    try:
        with os.fdopen(read_end, "rb") as reply:
            # readable once the child writes its count or ends (the pipe's end closed with it)
            hung = not select.select([reply], [], [], limit_s)[0]
            made = b"" if hung else reply.read()
    except BaseException:  # the test's own time limit, or Ctrl-C: the child not left behind
        hung = True
        raise
    finally:
        if hung:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if hung:
        raise AssertionError(
            f"smm-daq {' '.join(argv)}, forked to be killed at step {kill_at}, was still "
            f"running after {limit_s:g} s: killed (hung on a lock held at the fork? threads "
            f"of the test's process then: {', '.join(threads) or 'none'})")
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
