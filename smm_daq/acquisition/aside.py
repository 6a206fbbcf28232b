"""Work run in a daemon thread of its own, which the main thread waits for awake
(`sequencer.wait_awake`) so that a signal reaches its handler at once, however long the work
holds on (a stalled disk inside HDF5, an instrument's exchange). What a signal then does is
the waiter's: `sequencer.wait_aside` makes the rig safe and waits a while for the file work;
`field_aside` stops the field's ramp and waits for its making safe."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Aside(Generic[T]):
    """`work()` in a daemon thread named `name`, once `start`ed: `began` is set as it starts,
    `done` once it has returned or raised. Start it inside the `try` that catches the signal:
    one may come as soon as the thread runs, before `start` returns, or inside `start` before
    any thread was created: `launched` tells, and `start` may be called again until it is
    (the work runs once, in whichever thread takes it first)."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self.began = threading.Event()
        self.done = threading.Event()
        self._work = work
        self._name = name
        self._returned: list[T] = []
        self._raised: list[BaseException] = []
        self._taken = threading.Lock()  # held by the one run of the work
        self.launched = False  # a thread to run the work was started

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name=self._name).start()
        self.launched = True

    def withhold(self) -> bool:
        """Keep the work from ever running, where no thread has taken it yet (a signal cut
        `start` short before its thread ran it): whether it is kept so (`done` is then never
        set: nothing is to be waited for)."""
        return self._taken.acquire(blocking=False)

    def run_here(self) -> None:
        """`work()` in the calling thread instead, as `start` would run it."""
        self._run()

    def _run(self) -> None:
        if not self._taken.acquire(blocking=False):
            return  # a start made again after a signal: the work is another thread's
        self.began.set()
        try:
            self._returned.append(self._work())
        except BaseException as exc:  # handed to the waiter
            self._raised.append(exc)
        finally:
            self.done.set()

    def raised(self) -> BaseException | None:
        """What the work raised; None where it returned, or has not ended."""
        return self._raised[0] if self._raised else None

    def result(self) -> T:
        """What the work returned, or what it raised raised here; once `done` is set."""
        if self._raised:
            raise self._raised[0]
        return self._returned[0]
