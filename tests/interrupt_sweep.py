"""Fault injection at every kind of instrument call of a scripted day on the simulated rig.

The drivers' classes are wrapped where the core calls them (the methods of the interfaces in
`smm_daq.instruments.interfaces`), so that the first call of one kind — (phase of the day,
instrument, method, whether inside `Rig.make_safe`) — gets a fault:

- "ctrl-c": Ctrl-C (or a routed SIGTERM), which Python raises in the main thread: raised there
  by a call in the main thread; from any other thread (a scan's worker, a ramp's or a close's
  thread) the main thread is interrupted (`_thread.interrupt_main`), as a signal would, and
  the call goes on once the main thread has met it (`_Injector._held`);
- "ctrl-c twice": that, and a second Ctrl-C at the next instrument call after it;
- "error": the call raises the driver's own error for a reply lost (`InstrumentLost`).

`run_day` runs the day (`Session.open`, `set_field`, a 2 × 2 step scan, the smallest fly scan
on its grid, `subtract`, a 3-step recipe (`run_recipe`: set_field, wait, zero_field),
`set_field` again, `close`) and says how the rig and the file were
when the exception reached the script, and after the script's `close`.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smm_daq import interrupts
from smm_daq.acquisition import field_aside, safe_close, sequencer
from smm_daq.acquisition import session as session_module
from smm_daq.acquisition.recipe import parse_recipe, run_recipe
from smm_daq.acquisition.session import Session
from smm_daq.errors import InstrumentLost, SmmError
from smm_daq.instruments import interfaces, rig
from smm_daq.storage.h5file import open_read

GRID = {"center_um": (12500.0, 12500.0), "size_um": (20.0, 20.0), "step_um": 20.0}
# a 3-step recipe: a field, a wait in it, the field ramped down
RECIPE = """
[recipe]
title = "a field held a while"

[[step]]
kind = "set_field"
field_uT = [0.0, 0.0, 5.0]

[[step]]
kind = "wait"
seconds = 1.0

[[step]]
kind = "zero_field"
"""
HOLD_S = 5.0  # real seconds a held call waits at most for the main thread (it never should)

# what the core may call on each instrument: the interfaces' methods, and its close
METHODS = sorted({
    name for cls in (interfaces.Instrument, interfaces.Stage, interfaces.FieldSource,
                     interfaces.LockIn, interfaces.Magnetometer, interfaces.BufferedLockIn,
                     interfaces.FlyStage)
    for name, value in vars(cls).items()
    if callable(value) and not name.startswith("_") and name not in (
        "buffer_limits", "velocity_limit_for")
})

MODES = ("ctrl-c", "ctrl-c twice", "error")
Key = tuple[str, str, str, bool]  # phase, instrument, method, inside make_safe


@dataclass
class Outcome:
    """How one run of the day ended."""

    target: Key | None = None  # the kind of call the fault was for
    injected: list[str] = field(default_factory=list)  # where faults were injected
    raised: BaseException | None = None  # what reached the script
    at_raise: list[str] = field(default_factory=list)  # what was not safe when it did
    close_raised: BaseException | None = None  # what the script's own close raised
    reported: list[str] = field(default_factory=list)  # what a close said was not made safe
    after_close: list[str] = field(default_factory=list)  # what was not safe after it
    file_problems: list[str] = field(default_factory=list)
    survey: list[Key] = field(default_factory=list)  # every kind of call, in order met


class _Injector:
    def __init__(self, target: Key | None, mode: str) -> None:
        self.target = target
        self.mode = mode
        self.phase = "open"
        self.seen: dict[Key, int] = {}
        self.armed = target is not None
        self.second = mode == "ctrl-c twice"
        self.injected: list[str] = []
        self.local = threading.local()
        self.met = threading.Event()  # the main thread met the Ctrl-C sent from a thread
        self.settled = threading.Event()  # ... and waits (or the script has it)
        self.lock = threading.Lock()

    def call(self, instrument: str, method: str) -> None:
        safing = bool(getattr(self.local, "safing", 0))
        key = (self.phase, instrument, method, safing)
        with self.lock:
            self.seen.setdefault(key, len(self.seen))
            fire = False
            if self.armed and key == self.target:
                self.armed, fire = False, True
            elif self.second and not self.armed and self.injected:
                self.second, fire = False, True
            if fire:
                self.injected.append(f"{key} in {threading.current_thread().name}")
        if not fire:
            return
        if self.mode == "error":
            raise InstrumentLost(f"{instrument}: no reply to {method} (injected)")
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt("SIGINT")
        self._held()

    def _held(self) -> None:
        """Ctrl-C sent to the main thread from this one; this call goes on once the main
        thread has met it and then waits, or the script has it: deterministic, as a script
        left going on while this thread still works shows."""
        self.met.clear()
        self.settled.clear()
        _thread.interrupt_main()
        if self.met.wait(HOLD_S):
            self.settled.wait(HOLD_S)

    def waits(self) -> None:
        if threading.current_thread() is threading.main_thread() and self.met.is_set():
            self.settled.set()

    @contextlib.contextmanager
    def safing(self) -> Iterator[None]:
        self.local.safing = getattr(self.local, "safing", 0) + 1
        try:
            yield
        finally:
            self.local.safing -= 1


def _wrapped(injector: _Injector, instrument: str, method: str,
             original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)  # its signature kept: `driver_calls` reads it
    def call(self: object, *args: Any, **kwargs: Any) -> Any:
        injector.call(instrument, method)
        return original(self, *args, **kwargs)

    return call


@contextlib.contextmanager
def injecting(monkeypatch: Any, target: Key | None, mode: str) -> Iterator[_Injector]:
    """The drivers of the simulated rig wrapped (`_Injector.call` before each call), the
    simulated worlds made kept, a SIGINT handler that tells when the main thread met it."""
    from drivers.fluxgate_dmm import DMMFluxgate
    from drivers.kepco_bop import KepcoBOPCoils
    from drivers.pi_gcs import PIGCSStage
    from drivers.sr830 import SR830
    from simulators.backend import SimulatedBackend

    injector = _Injector(target, mode)
    for instrument, cls in (("stage", PIGCSStage), ("coils", KepcoBOPCoils),
                            ("lockin", SR830), ("fluxgate", DMMFluxgate)):
        for method in METHODS:
            original = getattr(cls, method, None)
            if original is not None:
                monkeypatch.setattr(cls, method, _wrapped(injector, instrument, method,
                                                          original))
    make_safe = rig.Rig.make_safe

    def safing(self: rig.Rig) -> list[str]:
        with injector.safing():
            return make_safe(self)

    monkeypatch.setattr(rig.Rig, "make_safe", safing)
    worlds: list[Any] = []
    backend_init = SimulatedBackend.__init__

    def kept(self: Any, *args: Any, **kwargs: Any) -> None:
        backend_init(self, *args, **kwargs)
        worlds.append(self.world)

    monkeypatch.setattr(SimulatedBackend, "__init__", kept)
    awake = sequencer.wait_awake

    def waiting(event: threading.Event, timeout: float | None = None) -> bool:
        injector.waits()
        return awake(event, timeout)

    for module in (sequencer, session_module, safe_close, field_aside):
        monkeypatch.setattr(module, "wait_awake", waiting)
    acknowledge = interrupts.acknowledge

    def acknowledged(name: str) -> None:
        injector.waits()
        acknowledge(name)

    monkeypatch.setattr(interrupts, "acknowledge", acknowledged)

    def met(signum: int, frame: object) -> None:
        injector.met.set()
        raise KeyboardInterrupt("SIGINT")

    before = signal.signal(signal.SIGINT, met)
    injector.worlds = worlds  # type: ignore[attr-defined]
    try:
        yield injector
    finally:
        signal.signal(signal.SIGINT, before)


def not_safe(worlds: list[Any]) -> list[str]:
    """What of the simulated rigs is left energised or moving."""
    found = []
    for world in worlds:
        coils = world.coils
        for i in range(3):
            if coils.output(i) and abs(coils.setpoint(i)) > 1e-9:
                found.append(f"supply {i} at {coils.setpoint(i):.4g} A")
        for axis in world.stage._axes:
            if world.stage.moving(axis):
                found.append(f"stage axis {axis} moving")
    return found


def run_day(path: Path, monkeypatch: Any, target: Key | None = None, mode: str = "ctrl-c"
            ) -> Outcome:
    """The scripted day, the fault of `mode` at the first call of kind `target` (None: no
    fault, only the survey of the kinds met)."""
    out = Outcome(target=target)
    finished: list[str] = []
    with injecting(monkeypatch, target, mode) as injector:
        session: Session | None = None
        try:
            try:
                session = Session.open(path)
                injector.phase = "set_field"
                session.set_field((0.0, 0.0, 20.0))
                injector.phase = "step"
                session.scan("in_field", **GRID)
                finished.append("in_field")
                injector.phase = "fly"
                session.scan("flown", **GRID, field_uT=(0.0, 0.0, 0.0), fly=True)
                finished.append("flown")
                injector.phase = "subtract"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    session.subtract("in_field", "flown", "induced", register=False)
                finished.append("induced")
                injector.phase = "recipe"
                run_recipe(parse_recipe(RECIPE), session, yes=True)
                injector.phase = "set_field again"  # left on: the close ramps it down
                session.set_field((0.0, 0.0, 10.0))
                injector.phase = "close"
                out.reported = session.close()
            except BaseException as exc:
                injector.settled.set()
                out.raised = exc
                out.at_raise = not_safe(injector.worlds)  # type: ignore[attr-defined]
                closing = injector.phase == "close"  # the script's close raised it
                injector.phase = "after"
                injector.armed = injector.second = False
                if session is not None and not closing:
                    try:
                        out.reported = session.close()
                    except BaseException as again:
                        out.close_raised = again
        finally:
            injector.armed = injector.second = False
            # a close's thread or a scan's worker left running is waited for here, so that
            # the next case starts clean; what it left is said below
            for thread in threading.enumerate():
                if thread is not threading.current_thread() and thread.daemon and (
                        thread.name.startswith(("scan ", safe_close.THREAD,
                                                field_aside.THREAD))):
                    thread.join(HOLD_S)
        out.after_close = not_safe(injector.worlds)  # type: ignore[attr-defined]
        out.injected = injector.injected
        out.survey = sorted(injector.seen, key=injector.seen.__getitem__)
    out.file_problems = _file_problems(path, finished)
    return out


def _file_problems(path: Path, finished: list[str]) -> list[str]:
    if not path.exists():
        return []
    try:
        with open_read(path) as f:
            problems = []
            for entry in finished:
                status = f[f"{entry}/status"].asstr()[()] if f"{entry}/status" in f else "?"
                if entry != "induced" and status != "finished":
                    problems.append(f"{entry} is {status}")
                bz = np.asarray(f[f"{entry}/data/Bz"])
                if np.isnan(bz).any():
                    problems.append(f"{entry} lost data")
            return problems
    except Exception as exc:
        return [f"the file does not open: {type(exc).__name__}: {exc}"]


def holes(out: Outcome, mode: str) -> list[str]:
    """What `out` shows wrong for a fault of `mode`."""
    found = []
    if not out.injected:
        return ["the fault was never injected"]
    # the supplies' ramp-down itself lost: its error says so, nothing else can ramp them
    ramp_down_lost = mode == "error" and out.target is not None and out.target[1:3] in (
        ("coils", "zero"), ("coils", "output_off"))
    if out.at_raise and not ramp_down_lost:
        found.append(f"not safe when {type(out.raised).__name__} reached the script: "
                     f"{out.at_raise}")
    if out.after_close and not out.reported:  # a supply that does not answer: said
        found.append(f"not safe after the script's close: {out.after_close}")
    if mode.startswith("ctrl-c") and not isinstance(out.raised, KeyboardInterrupt):
        found.append(f"the Ctrl-C did not reach the script: {out.raised!r}")
    if mode == "error" and out.raised is not None and not isinstance(out.raised, SmmError):
        found.append(f"not a clear error: {out.raised!r}")
    if out.close_raised is not None and not isinstance(out.close_raised, SmmError):
        found.append(f"the script's close raised {out.close_raised!r}")
    found += out.file_problems
    return found
