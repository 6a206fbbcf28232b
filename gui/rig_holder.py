"""The window's one rig: opened, called and closed off the GUI thread.

While a scan runs the sequencer owns the rig; the holder is then `busy` and refuses other
instrument calls, so two threads never talk to one instrument at once. While a recipe runs
(`recipe_running`), its steps alone drive the rig: the window's manual controls and its own
Start are refused, though the recipe's calls go through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt6 import QtCore

from gui.background import Background
from smm_daq.instruments.profile import Profile

INSTRUMENTS = ("lockin", "stage", "coils", "fluxgate")


class RigHolder(QtCore.QObject):
    """Opens the rig from a profile and runs instrument calls in its own worker thread."""

    opened = QtCore.pyqtSignal(object)  # the Rig
    failed = QtCore.pyqtSignal(str)  # why it could not be opened
    identities = QtCore.pyqtSignal(dict)  # instrument name -> Identity or the exception
    busyChanged = QtCore.pyqtSignal(bool)
    recipeChanged = QtCore.pyqtSignal(bool)  # a recipe started (True) or ended

    def __init__(self, profile: Profile, *, time_scale: float | None = None, world_options=None):
        super().__init__()
        self.profile = profile
        self.time_scale = time_scale
        self.world_options = world_options
        self.rig: Any = None
        self.busy = False
        self.recipe_running = False
        self.background = Background("rig", self)

    def open(self) -> None:
        """Open (or reopen) the rig; `opened` or `failed` follows."""
        profile, time_scale, options = self.profile, self.time_scale, self.world_options

        def job() -> Any:
            from smm_daq.instruments.rig import open_rig

            return open_rig(profile, time_scale=time_scale, world_options=options)

        self.background.submit(job, self._opened, lambda exc: self.failed.emit(_why(exc)))

    def _opened(self, rig: Any) -> None:
        self.rig = rig
        self.call(_identify_all(rig), self.identities.emit)  # before any reading polled
        self.opened.emit(rig)

    def call(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> bool:
        """Run an instrument call in the rig's thread; False (nothing run) if busy or closed."""
        if self.rig is None or self.busy:
            return False
        self.background.submit(fn, on_result, on_error)
        return True

    def set_busy(self, busy: bool) -> None:
        """Mark the rig as owned by a scan (True) or free again (False)."""
        if busy != self.busy:
            self.busy = busy
            self.busyChanged.emit(busy)

    def set_recipe_running(self, running: bool) -> None:
        """Mark the rig as driven by a recipe (True) or by the operator again (False)."""
        if running != self.recipe_running:
            self.recipe_running = running
            self.recipeChanged.emit(running)

    def close(self) -> list[str]:
        """Make the rig safe and close it (waits for calls in flight). Returns problems."""
        self.background.shutdown()
        rig, self.rig = self.rig, None
        if rig is None:
            return []
        try:
            return list(rig.make_safe())
        finally:
            rig.close()  # also lets other processes have the rig


def _why(exc: BaseException) -> str:
    """The error, then its notes (after a failed connect: whether the rig is safe)."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", ())])


def _identify_all(rig: Any) -> Callable[[], dict[str, object]]:
    def job() -> dict[str, object]:
        found: dict[str, object] = {}
        for name in INSTRUMENTS:
            instrument = getattr(rig, name, None)
            if instrument is None:
                continue
            try:
                found[name] = instrument.identify()
            except Exception as exc:  # shown per instrument in the panel
                found[name] = exc
        return found

    return job
