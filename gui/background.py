"""Run blocking calls (instrument I/O, inversions) off the GUI thread; results come back on it.

One worker thread per `Background`, so the calls it runs are serialised: instrument drivers
are not safe to drive from two threads at once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PyQt6 import QtCore


class Background(QtCore.QObject):
    """Submit callables to one worker thread; callbacks run in the GUI thread."""

    _done = QtCore.pyqtSignal(object, object)  # callback, value

    def __init__(self, name: str, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"smm-gui-{name}")
        self._done.connect(self._deliver)  # queued: emitted from the worker thread
        self.pending = 0
        self._shut = False

    def submit(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future:
        """Run `fn()` in the worker; then `on_result(value)` or `on_error(exc)` in the GUI.
        The future returned holds the value (None after an error). After `shutdown` (the
        window closing, while signals queued before it are still delivered) nothing runs:
        the future returned is cancelled."""
        if self._shut:
            dropped: Future = Future()
            dropped.cancel()
            return dropped
        self.pending += 1

        def job() -> Any:
            try:
                value = fn()
            except Exception as exc:  # delivered to the GUI, which shows it
                self._done.emit(on_error, exc)
                return None
            self._done.emit(on_result, value)
            return value  # also the future's: for a caller that cannot wait for the delivery

        return self._executor.submit(job)

    def _deliver(self, callback: Callable[[Any], None] | None, value: Any) -> None:
        self.pending -= 1
        if callback is not None:
            callback(value)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the thread once what was submitted is finished (wait: before returning), or,
        without waiting, once the call in hand is (what has not started is dropped)."""
        self._shut = True
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


def error_text(exc: BaseException) -> str:
    """An error as the window shows it: the message, then its notes (how a failure left the
    rig: whether it is safe)."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", ())])
