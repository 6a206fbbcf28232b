"""Runs a checked recipe step by step from the GUI thread, without blocking it.

Scan steps go through the Scan tab (so they fill the live map and can be paused or aborted
there); field and wait steps run in the rig's thread; prompts are asked in a dialog;
subtractions run in a worker. Each step starts when the previous one has ended. A wait step
runs the window's readings between its slices, a set_field step in the pauses between its
ramp's steps (the readouts stay live through either); from a Stop or a step's failure until
the recipe's making safe has run, they are skipped. A recipe
checked as continued (`check_recipe(continuing=True)`) skips what `skip_reason` names and
resumes its cut-off scan through the Scan tab, as the Session tab's Resume scan does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PyQt6 import QtCore

from gui.background import Background
from gui.command import recorded_command
from gui.rig_holder import RigHolder
from gui.scan_tab import ScanTab
from gui.subtract_dialog import said_in_window
from smm_daq.acquisition import sequencer
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.recipe import (
    PromptStep,
    Recipe,
    ScanStep,
    SetFieldStep,
    SubtractStep,
    WaitStep,
    ZeroFieldStep,
    check_fly_steps,
    skip_reason,
    subtract_step,
    wait_in_slices,
)
from smm_daq.acquisition.recipe_continue import DONE, RESUME
from smm_daq.acquisition.session import Session
from smm_daq.cli.warning_text import said_as
from smm_daq.clock import Clock
from smm_daq.errors import SmmError, StillDropping
from smm_daq.instruments.interfaces import STOP_SLICE_S
from smm_daq.instruments.ramp_stop import RampStop
from smm_daq.shell_words import command_line


class RecipeRunner(QtCore.QObject):
    """One recipe run; `ask(message) -> bool` answers prompts (False stops the recipe)."""

    stepStarted = QtCore.pyqtSignal(int)
    stepEnded = QtCore.pyqtSignal(int, bool, str)  # index, ok, message
    stepSkipped = QtCore.pyqtSignal(int, str)  # index, why (a continued recipe's)
    finished = QtCore.pyqtSignal(bool, str)  # all steps done, message
    # Stop made the rig safe (or failed to) while a subtraction's file work had not returned:
    # what to say, and whether it is a warning (the rig not safe, or the write not returned
    # `WRITE_STALLED_S` after the rig was made safe, as a scan's is told)
    subtractionHeld = QtCore.pyqtSignal(str, bool)

    def __init__(
        self,
        recipe: Recipe,
        path: Path,
        holder: RigHolder,
        scan_tab: ScanTab,
        ask: Callable[[str], bool],
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.recipe, self.path, self.holder, self.scan_tab = recipe, Path(path), holder, scan_tab
        self.ask = ask
        self.index = -1
        self.running = False
        self._stop_requested = False
        self._field_stop: RampStop | None = None  # the set_field step's, set by `stop`
        self.analysis = Background("analysis", self)
        # a subtraction's write not returned `WRITE_STALLED_S` after Stop made the rig safe
        # is told as stalled (a write merely slower than the making safe is not)
        self._stall_timer = QtCore.QTimer(self, singleShot=True)
        self._stall_timer.timeout.connect(self._tell_stalled)
        self._held: tuple[int, str] | None = None  # the subtraction's step and what to tell
        # the steps' notes and warnings, ("note" or "warning", text), said again at the end
        self._warnings: list[tuple[str, str]] = []

    def start(self) -> None:
        """Ask the connected stage controller what each fly step needs (`check_fly_steps`),
        then run the first step; a refusal ends the recipe before it."""
        self.running = True
        self.holder.set_recipe_running(True)
        self._check_fly_steps()

    def _check_fly_steps(self) -> None:
        rig = self.holder.rig
        if rig is None or not self.holder.call(
            lambda: check_fly_steps(self.recipe, rig.stage),
            lambda _: self._next(),
            lambda exc: self._again_once_dropped(exc, self._check_fly_steps,
                                                 lambda why: self._end(False, str(why))),
        ):
            self._end(False, "the rig is not connected")

    @property
    def field_ramping(self) -> bool:
        """Whether a set_field step runs (its ramp, which `stop_field_ramp` ends)."""
        return self.running and 0 <= self.index < len(self.recipe.steps) and isinstance(
            self.recipe.steps[self.index], SetFieldStep)

    def stop_field_ramp(self) -> None:
        """The window's Stop (Esc) during a set_field step: the step's ramp ends at its next
        step, and the recipe with it, the rig made safe (`stop`). Other steps go on: that
        Stop is the stage's."""
        if self.field_ramping:
            self.stop()

    def stop(self) -> None:
        """Abort a scan under way, or stop before the next step. During a subtraction the
        rig is made safe at once: a stalled disk can hold its write for minutes, and a field
        set by an earlier step must not stay on until it returns; the window's readings,
        skipped until then, go on while the write is held."""
        self._stop_requested = True
        if self.running:  # no reading queued goes before the making safe (`_end`'s)
            self.holder.hold_readings(self)
        if self._field_stop is not None:  # a set_field step's ramp: made safe from its stop
            self._field_stop.set()
        rig = self.holder.rig  # read once: the window's close sets it to None in its thread
        if self.scan_tab.live.running:
            self.scan_tab.live.abort()
        elif self.running and 0 <= self.index < len(self.recipe.steps) and isinstance(
                self.recipe.steps[self.index], SubtractStep) and rig is not None:
            index, step = self.index, self.recipe.steps[self.index]

            def told(state: str, safe: bool) -> None:
                if not self._subtracting(index):  # it returned meanwhile
                    return
                self.subtractionHeld.emit(
                    f"Stopping: {state}. The subtraction '{step.name}' into {self.path.name} is "
                    "finishing; the recipe ends when it returns.", not safe)
                self._held = (index, self._held_text(step, state))
                self._stall_timer.start(round(1000 * sequencer.WRITE_STALLED_S))

            self.holder.call_first(  # again at the recipe's end
                rig.make_safe,
                lambda problems: told("the rig is safe (stage stopped, field at its safe "
                                      "state)" if not problems else
                                      "the rig is NOT SAFE: " + "; ".join(problems),
                                      not problems),
                lambda exc: told(f"making the rig safe failed: {exc}", False),
                # the Stop's hold ends with it: the readings go on while the write is held
                key=self,
            )

    def writes_in_hand(self) -> list[str]:
        """The subtraction step being written, as said ("the recipe's subtraction 'd' into
        s.h5"), or none."""
        if not self.running or not 0 <= self.index < len(self.recipe.steps):
            return []
        step = self.recipe.steps[self.index]
        if not isinstance(step, SubtractStep):
            return []
        return [f"the recipe's subtraction '{step.name}' into {self.path.name}"]

    def _subtracting(self, index: int) -> bool:
        """Whether step `index`, a subtraction, is still under way (its write not returned)."""
        return self.running and self.index == index

    def _tell_stalled(self) -> None:
        """`WRITE_STALLED_S` after Stop made the rig safe: the subtraction's write that has
        not returned yet is told as stalled."""
        if self._held is not None and self._subtracting(self._held[0]):
            self.subtractionHeld.emit(self._held[1], True)

    def _held_text(self, step: SubtractStep, rig: str) -> str:
        """What Stop left while the subtraction's file work is held (a stalled disk): the rig,
        and that its write has not returned, so whether its entry is written is not known."""
        info = command_line(["smm-daq", "info", self.path])
        return (f"Stopping: {rig}. The subtraction '{step.name}' into {self.path.name} has "
                "not returned (the disk stalled?); the recipe ends when it does. Whether entry "
                f"'{step.name}' was written: `{info}` once the disk answers.")

    def _next(self) -> None:
        self.index += 1
        self._field_stop = None  # a Stop from now on is no ramp's
        if self._stop_requested:
            self._end(False, "stopped by the operator")
            return
        if self.index >= len(self.recipe.steps):
            self._end(True, "all steps done")
            return
        try:
            skipped = skip_reason(self.recipe, self.index, self.path)
            if not skipped:
                self.stepStarted.emit(self.index)
                self._start(self.recipe.steps[self.index])
        except Exception as exc:  # out of a Qt slot it would end the window with the field
            # on: the recipe ends here instead, the rig made safe
            self._step_failed(exc if isinstance(exc, SmmError) else
                              f"unexpected {type(exc).__name__}: {exc}")
            return
        if skipped:
            self.stepSkipped.emit(self.index, skipped)
            self._next()

    def _start(self, step: object) -> None:
        """Start the step; its end calls `_step_done` or `_step_failed`."""
        rig = self.holder.rig
        if isinstance(step, ScanStep):
            self._scan(self.recipe.plans[self.index], self.recipe.states[self.index] == RESUME)
        elif isinstance(step, SetFieldStep):
            # Stop ends the ramp at its next step, and makes the rig safe from there within
            # the make-safe bound of the stop (the window's close waits that long for it)
            if rig is None:
                self._step_failed("the rig is not connected")
                return
            stop = self._field_stop = RampStop(rig.clock)
            self._rig_step(lambda: self.holder.ramp_field(rig, np.array(step.field), stop))
        elif isinstance(step, ZeroFieldStep):
            self._rig_step(lambda: rig.zero_coils())  # within the make-safe bounds
        elif isinstance(step, WaitStep):
            self._rig_step(lambda: self._wait(rig.clock, step.seconds))
        elif isinstance(step, PromptStep):
            if self.ask(step.message):
                self._step_done(None)
            else:
                self._step_failed("the operator stopped at the prompt")
        elif isinstance(step, SubtractStep):
            session = Session(self.path, rig)  # its subtract writes the entry as `run` does
            said: list[tuple[str, str]] = []
            # what the entry records of how it was made: the recipe's run, as `run` records it
            # (`--continue` where it continues the recipe on a file holding its entries)
            again = ["--continue"] if {DONE, RESUME} & set(self.recipe.states) else []
            made = recorded_command(["run", self.recipe.source, "--out", str(self.path), *again])
            self.analysis.submit(
                lambda: subtract_step(self.recipe, self.index, session, lambda w: said.append(
                    (said_as(type(w)), said_in_window(str(w), recipe=True))), made),
                lambda _: self._step_done(None, said),
                self._step_failed,
            )

    def _scan(self, plan: ScanPlan | None, resume: bool) -> None:
        """Start the step's scan on the Scan tab, or resume it there (its finished lines
        kept and shown) when the recipe was cut off in it."""
        assert plan is not None
        self.scan_tab.set_path(self.path)
        self.scan_tab.scanEnded.connect(self._scan_ended)
        text = self.recipe.text
        started = (self.scan_tab.resume_entry(self.path, plan.name, recipe_text=text) if resume
                   else self.scan_tab.start(plan, recipe_text=text,
                                            recipe_file=self.recipe.file))
        if not started:
            self.scan_tab.scanEnded.disconnect(self._scan_ended)
            self._step_failed(self.scan_tab.status.text())

    def _scan_ended(self, kind: str, message: str) -> None:
        self.scan_tab.scanEnded.disconnect(self._scan_ended)
        if kind == "finished":
            self._step_done(None)
        else:
            self._step_failed(f"scan {kind}" + (f": {message}" if message else ""))

    def _rig_step(self, fn: Callable[[], object]) -> None:
        def step() -> object:
            try:
                return fn()
            except BaseException:  # the recipe's making safe comes next, or the step again:
                self.holder.hold_readings(self)  # no reading queued goes before either
                raise

        if not self.holder.call(step, self._step_done, lambda exc: self._again_once_dropped(
                exc, lambda: self._rig_step(fn), self._step_failed)):
            self._step_failed("the rig is not connected")

    def _again_once_dropped(self, exc: BaseException, again: Callable[[], None],
                            failed: Callable[[object], None]) -> None:
        """A call refused while a link drops the rest of a reply cut short (`StillDropping`:
        nothing sent) is made `again` once that drop has ended, as a scan's are, rather than
        the recipe failing on it; the wait is the window's (asked every `STOP_SLICE_S`), not
        the rig's thread's, so that a Stop pressed meanwhile goes at once. A recipe stopped
        meanwhile ends (`failed`); any other failure is `failed`'s."""
        if not isinstance(exc, StillDropping):
            failed(exc)
        elif self._stop_requested:
            failed("stopped by the operator")
        elif exc.wait(0.0):
            self.holder.release_readings(self)
            again()
        else:
            self.holder.release_readings(self)  # the window's readings meanwhile
            QtCore.QTimer.singleShot(round(STOP_SLICE_S * 1000), functools.partial(
                self._again_once_dropped, exc, again, failed))

    def _step_done(self, _: object, warnings: Sequence[tuple[str, str]] = ()) -> None:
        """The step ended well; its `warnings` ("note" or "warning", text: a subtraction's
        registration notes and concerns, also recorded in its entry) are its message, and are
        said again when the recipe ends."""
        said = [(kind, f"step {self.index + 1}: {text}") for kind, text in warnings]
        self._warnings += said
        self.stepEnded.emit(self.index, True, "\n".join(text for _, text in said))
        self._next()

    def _step_failed(self, why: object) -> None:
        message = str(why)
        self.stepEnded.emit(self.index, False, message)
        self._end(False, f"step {self.index + 1}: {message}")

    def _wait(self, clock: Clock, seconds: float) -> None:
        """A wait step on the rig's `clock`. Stop (or closing the window) ends it within a
        slice (`wait_in_slices`) and fails it, saying how long it waited: a wait cut short
        is not done (the sample has not settled for its time). The window's readings run
        between its slices (`RigHolder.read_between`), the wait's time unchanged."""
        left = wait_in_slices(clock, seconds, lambda: self._stop_requested,
                              lambda left: self.holder.read_between(clock, left))
        if left > 0:
            raise SmmError(
                f"the wait was stopped by the operator after {seconds - left:g} s "
                f"of its {seconds:g} s"
            )

    def _end(self, ok: bool, message: str) -> None:
        """However the recipe ends, the rig goes to its safe state, as `smm-daq run` does;
        the recipe counts as running until that is done, the window's readings queued before
        it skipped. The steps' notes and warnings follow the
        message, so that the one the window shows last still says them."""
        message += "".join(f"; {kind}: {text}" for kind, text in self._warnings)

        def done(ok: bool, message: str) -> None:
            self.running = False
            self.holder.release_readings(self)  # that of a Stop pressed since the making safe
            self.holder.set_recipe_running(False)
            self.finished.emit(ok, message)

        rig = self.holder.rig
        if rig is None or not self.holder.call_first(
            rig.make_safe,
            lambda problems: done(
                ok and not problems, message + "".join(f"; NOT SAFE: {p}" for p in problems)
            ),
            lambda exc: done(False, f"{message}; making the rig safe failed: {exc}"),
            key=self,  # the hold a Stop or a step's failure asked for ends with it
        ):
            done(ok, message)
