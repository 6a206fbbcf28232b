"""Small in-test fakes of the four instrument interfaces, for the sequencer's own logic.

Noise-free and instant, with fault hooks, so a test can say exactly what each point must hold.
The done-when tests run on the real simulator rig instead (tests/test_acq_simulated.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.acquisition.session import Session
from smm_daq.clock import VirtualClock
from smm_daq.errors import MoveStopped, RampStopped, RangeError
from smm_daq.instruments.interfaces import FieldSource, Identity, LockIn, Magnetometer, Stage
from smm_daq.instruments.profile import Profile, load_profile
from smm_daq.instruments.ramp_stop import RampStop
from smm_daq.instruments.rig import safe_from

_ID = Identity("fake", "fake", "0", "0")


class FakeStage(Stage):
    def __init__(self, profile: Profile) -> None:
        self.travel = profile.stage.travel
        self.pos = self.travel[:, 0].copy()
        self.visits: list[tuple[float, float]] = []
        self.stops = 0

    def identify(self) -> Identity:
        return _ID

    def snapshot(self) -> dict[str, object]:
        return {"position_m": self.pos.tolist(), "axes": {"x": "1", "y": "2"}}

    def move_to(self, x: float, y: float, z: float | None = None, *, wait: bool = True,
                stop: Callable[[], bool] | None = None) -> None:
        target = np.array([x, y, self.pos[2] if z is None else z])
        if np.any(target < self.travel[:, 0]) or np.any(target > self.travel[:, 1]):
            raise RangeError(f"target {target} outside travel", instrument="stage")
        if stop is not None and stop():  # asked before the move is sent, as a real stage asks
            raise MoveStopped("stage: the move was stopped before it was sent")
        self.pos = target
        self.visits.append((x, y))

    def position(self) -> np.ndarray:
        return self.pos.copy()

    def limits(self) -> np.ndarray:
        return self.travel.copy()

    def velocity(self) -> float:
        return 1e-3

    def set_velocity(self, v: float) -> None:
        pass

    def on_target(self) -> bool:
        return True

    def stop(self) -> None:
        self.stops += 1


class FakeCoils(FieldSource):
    honours_stop = True  # asks its stop before its one step

    def __init__(self, profile: Profile) -> None:
        self.max_field = profile.coils.max_field
        self.setpoint = np.zeros(3)
        self.history: list[np.ndarray] = []

    def identify(self) -> Identity:
        return _ID

    def snapshot(self) -> dict[str, object]:
        return {"field_T": self.setpoint.tolist()}

    def set_field(self, b: np.ndarray, *, ramp: bool = True,
                  stop: Callable[[], bool] | None = None) -> None:
        b = np.asarray(b, dtype=float)
        if np.linalg.norm(b) > self.max_field:
            raise RangeError("too much field", instrument="coils")
        if stop is not None and stop():  # asked before its one step, as a real ramp asks
            raise RampStopped("coils: the ramp was stopped at step 0 of 1")
        self.setpoint = b.copy()
        self.history.append(b.copy())

    def field_setpoint(self) -> np.ndarray:
        return self.setpoint.copy()

    def field(self) -> np.ndarray:
        return self.setpoint.copy()

    def currents(self) -> np.ndarray:
        return self.setpoint / 5e-5

    def zero(self) -> None:
        self.set_field(np.zeros(3))

    def limits(self) -> dict[str, float]:
        return {"max_field_T": self.max_field, "max_current_A": 3.0, "max_ramp_A_per_s": 1.0}

    def output_off(self) -> None:
        self.zero()


class FakeLockIn(LockIn):
    """X = sensitivity × bz(x, y) + offset at the stage's position; hooks per read."""

    RANGES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)

    def __init__(self, profile: Profile, stage: FakeStage, bz: Callable[[float, float], float]):
        self.stage = stage
        self.bz = bz
        self.gain = profile.sensor.sensitivity_V_per_T
        self.offset = profile.sensor.offset_V
        self.full_scale = profile.lockin.sensitivity
        self.tau = profile.lockin.time_constant
        self.reads = 0
        self.hooks: dict[int, Callable[[], object]] = {}  # read number -> raise or return value
        self.overload_reads: set[int] = set()
        self._overloaded = False

    def identify(self) -> Identity:
        return _ID

    def snapshot(self) -> dict[str, object]:
        return {"time_constant_s": self.tau, "sensitivity_V": self.full_scale}

    def time_constant(self) -> float:
        return self.tau

    def set_time_constant(self, tau: float) -> None:
        self.tau = tau

    def sensitivity(self) -> float:
        return self.full_scale

    def set_sensitivity(self, volts: float) -> None:
        self.full_scale = min([r for r in self.RANGES if r >= volts] or [self.RANGES[-1]])

    def reference(self, *, stop: Callable[[], bool] | None = None) -> tuple[float, float]:
        return 1000.0, 1.0

    def set_reference(self, frequency: float, amplitude: float) -> None:
        pass

    def read_xy(self) -> tuple[float, float]:
        self.reads += 1
        hook = self.hooks.get(self.reads)
        if hook is not None:
            value = hook()
            if value is not None:
                return value  # type: ignore[return-value]
        if self.reads in self.overload_reads:
            self._overloaded = True
        x, y = self.stage.pos[:2]
        return self.gain * self.bz(float(x), float(y)) + self.offset, 0.0

    def overloaded(self) -> bool:
        was, self._overloaded = self._overloaded, False
        return was


class FakeFluxgate(Magnetometer):
    def __init__(self, coils: FakeCoils) -> None:
        self.coils = coils
        self.bias = np.zeros(3)

    def identify(self) -> Identity:
        return _ID

    def snapshot(self) -> dict[str, object]:
        return {}

    def read_field(self) -> np.ndarray:
        return self.coils.setpoint + self.bias


@dataclass
class FakeRig:
    profile: Profile
    clock: VirtualClock
    stage: FakeStage
    coils: FakeCoils
    lockin: FakeLockIn
    fluxgate: FakeFluxgate | None
    world: object = None
    safe_calls: int = 0
    safe_problems: list[str] = field(default_factory=list)

    def make_safe(self) -> list[str]:
        self.safe_calls += 1
        self.coils.zero()
        self.stage.stop()
        return list(self.safe_problems)

    def begin_measurement(self, name: str, run: int | None) -> None:
        pass  # no simulated world: no noise to draw

    def zero_coils(self) -> None:
        self.coils.zero()

    @contextlib.contextmanager
    def safe_from(self, stop: RampStop) -> Iterator[None]:
        with safe_from(self.profile, self.clock, stop):
            yield

    def snapshot(self) -> dict[str, object]:
        return {
            "stage": self.stage.snapshot(),
            "coils": self.coils.snapshot(),
            "lockin": self.lockin.snapshot(),
            "note": None,
        }

    def close(self) -> None:
        pass


def gradient_bz(x: float, y: float) -> float:
    """A smooth, position-unique field (T) so every stored point can be checked."""
    return 1e-6 * (x - 12.5e-3) / 1e-4 + 2e-7 * (y - 12.5e-3) / 1e-4


def fake_rig(
    bz: Callable[[float, float], float] = gradient_bz,
    *,
    fluxgate: bool = True,
    profile: Profile | None = None,
) -> FakeRig:
    profile = profile or load_profile()
    stage = FakeStage(profile)
    coils = FakeCoils(profile)
    return FakeRig(
        profile=profile,
        clock=VirtualClock(),
        stage=stage,
        coils=coils,
        lockin=FakeLockIn(profile, stage, bz),
        fluxgate=FakeFluxgate(coils) if fluxgate else None,
    )


def run_scan(path: Path, rig: FakeRig, plan: ScanPlan, *, resume: bool,
             stop_after_line: int | None = None) -> str:
    """Runs (or with `resume`, resumes) `plan` into `path` on `rig` and returns how it ended;
    with `stop_after_line`, aborted once that line is done, as a user's Abort would."""
    seq = Sequencer(rig, path, plan, resume=resume)
    if stop_after_line is not None:
        seq.subscribe(lambda e: seq.abort() if e.kind == "line_done"
                      and e.line == stop_after_line else None)
    return seq.run()


def session_counting_closes(path: Path) -> tuple[Session, FakeRig, list[bool]]:
    """A session file `path` on a fake rig whose closes are counted in the list returned."""
    rig = fake_rig()
    closed: list[bool] = []
    rig.close = lambda: closed.append(True)  # type: ignore[method-assign]
    return Session(path, rig), rig, closed
