"""A stop for a connect under way: the window's Stop (or Esc) while the rig connects.

Connecting may move the stage for seconds to minutes (a reference move, with
`stage.reference_on_connect = true`), and until the connect ends there is no rig to stop.
The window hands `open_rig` a `ConnectStop` and may `request` it from any thread; `open_rig`
binds it to the thread that connects (`bound`), and a driver whose connect moves something
asks `requested()` before it starts the move and between its polls while it waits for the
move: then it stops the move itself (on its own link, so no second thread talks to the
instrument) and fails the connect with `ConnectStopped`. Drivers that move nothing at connect
never ask; a stop no driver took (no reference move ran) fails the connect once every
instrument has connected, and the rig is made safe as after any failed connect, its stage
stopped (a move a killed program left running goes on until then).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class ConnectStop:
    """Asked for once (`request`), from any thread; never cleared (one per connect)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


_bound = threading.local()


@contextlib.contextmanager
def bound(stop: ConnectStop | None) -> Iterator[None]:
    """`stop` is what `requested()` asks in this thread until the block ends."""
    before = getattr(_bound, "stop", None)
    _bound.stop = stop
    try:
        yield
    finally:
        _bound.stop = before


def requested() -> bool:
    """Whether the stop bound to this thread's connect has been asked for."""
    stop = getattr(_bound, "stop", None)
    return stop is not None and stop.requested
