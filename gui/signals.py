"""Ctrl-C and termination signals to the window: the first closes it as its close button
does, answered Yes for the operator (nobody may be there to answer): a scan aborted, the rig
made safe, what is left said on stderr; later signals are only acknowledged.

Python runs a signal's handler only when the interpreter next runs Python code, and Qt's
event loop is C++: an idle window would never see the signal. A timer ticking every
`TICK_MS` runs Python often enough for the handler to run within that time.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from PyQt6 import QtCore

from smm_daq import interrupts

TICK_MS = 200


@contextmanager
def closing_on_signals(close: Callable[[str], None]) -> Iterator[None]:
    """Within the block, the first of `interrupts.SIGNALS` calls `close(name)` from the event
    loop; later ones are acknowledged on stderr. The handlers before come back afterwards."""
    received: list[str] = []

    def handle(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if received:
            interrupts.acknowledge(name)
            return
        received.append(name)
        QtCore.QTimer.singleShot(0, lambda: close(name))

    tick = QtCore.QTimer()
    tick.timeout.connect(lambda: None)  # Python runs: a pending handler runs with it
    tick.start(TICK_MS)
    previous = {sig: signal.signal(sig, handle) for sig in interrupts.SIGNALS}
    try:
        yield
    finally:
        tick.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
