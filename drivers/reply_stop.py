"""A stop asked while a long reply comes in, so that an abort ends the reply under way.

A lock-in's buffer is read in pieces (`LockIn.read_buffer(stop=)`), asked before each; but
on a slow serial line one piece alone takes seconds (an SR830's `TRCA?` at 9600 baud; an
SR860's 64 kB `CAPTUREGET?` block over a minute). Inside `stoppable(stop)`, a transport that
reads a reply by its bytes (`SerialTransport`; `VisaTransport` on a serial line through
pyvisa-py) asks `stop` every `STOP_SLICE_S` of the read: once it is true the read ends with
`ReadStopped`, and the `Link` drops the rest of the reply (still coming) before its next
exchange: aside, on a thread of its own, its exchanges refused meanwhile (`Link._drop_rest`).
A transport that reads a reply whole (VISA elsewhere) is not stopped within it; the piece's
end is then the first stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

_stop: ContextVar[Callable[[], bool] | None] = ContextVar("reply_stop", default=None)


@contextlib.contextmanager
def stoppable(stop: Callable[[], bool] | None) -> Iterator[None]:
    """The replies read inside (in this thread) end once `stop()` is true (None: they do
    not)."""
    token = _stop.set(stop)
    try:
        yield
    finally:
        _stop.reset(token)


def current() -> Callable[[], bool] | None:
    """The stop the reply read now is to ask, if any."""
    return _stop.get()
