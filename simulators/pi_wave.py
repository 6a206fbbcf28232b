"""The wave generator and trigger output of a PI GCS 2.0 piezo controller (E-727 style).

Wave tables are defined point by point in controller units (`WAV <table> X|& <type> ...`):
`LIN` (a line with smoothed speed-up and speed-down), `RAMP` (up to a centre point and back),
`SIN_P` (one period of a cosine-shaped hump) and `PNT` (explicit points). Generator g drives
axis g (`SAI?` order): `WSL g t` connects table t, `WGC g n` sets the number of cycles
(0: until stopped), `WTR g r 0` outputs one point every r servo cycles, `WGO g 1` starts it
now (`WGO g 257`: the wave is added to the axis' position at the start), `WGO g 0` stops it.
While it runs the axis' set point follows the wave on the virtual clock and the position
trails it by the closed loop's lag (the controller's `tracking_lag`), so positions (`POS?`, the
data recorder, the simulated sensor) move with it and the recorded position error is the
wave's slope times the lag.

Trigger output lines (`CTO line param value`): parameter 2 the axis, 3 the mode (0 position
distance: a pulse every `1` TriggerStep of travel; 4 generator trigger: a pulse at each wave
point marked with `TWS line point 1`), 1 the trigger step. `trigger_edges(line, t0, t1)` gives
the times of the pulses between two times, for whatever the line is wired to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulators.emulator import number_reply
from simulators.stage_model import StageModel

MAX_POINTS = 2**18


class WaveError(Exception):
    """A refused wave or trigger command; `code` is the GCS error code."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise WaveError(1) from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise WaveError(1) from None
    if not math.isfinite(value):
        raise WaveError(1)
    return value


def _line_profile(k: np.ndarray, length: float, updown: float) -> np.ndarray:
    """0 -> 1 over `length` points with a trapezoidal velocity: constant acceleration over the
    first and last `updown` points, constant speed between (LIN's speed-up and speed-down)."""
    span = max(length - 1.0, 1.0)
    n = min(max(updown, 0.0), span / 2)
    k = np.clip(k, 0.0, span)
    if n == 0:
        return k / span
    v = 1.0 / (span - n)
    return np.where(
        k < n,
        v * k**2 / (2 * n),
        np.where(k <= span - n, v * n / 2 + v * (k - n), 1.0 - v * (span - k) ** 2 / (2 * n)),
    )


def wave_points(kind: str, params: list[str]) -> np.ndarray:
    """The points (controller units) of one WAV segment."""
    if kind == "PNT":
        if len(params) < 3:
            raise WaveError(26)
        start, count = _int(params[0]), _int(params[1])
        values = [_float(p) for p in params[2:]]
        if count != len(values) or not 0 <= start <= MAX_POINTS:
            raise WaveError(17)
        return np.concatenate([np.full(start, values[0]), values])
    numbers = [_float(p) for p in params]
    if kind == "LIN":
        if len(numbers) != 6:
            raise WaveError(24)
        seg, amp, offset, length, start, updown = numbers
        _check_segment(seg, length, start)
        return offset + amp * _line_profile(np.arange(int(seg)) - start, length, updown)
    if kind == "RAMP":
        if len(numbers) != 7:
            raise WaveError(24)
        seg, amp, offset, length, start, _updown, centre = numbers
        _check_segment(seg, length, start)
        if not 0 < centre < length:
            raise WaveError(17)
        k = (np.arange(int(seg)) - start) % length
        up = k / centre
        down = (length - k) / (length - centre)
        return offset + amp * np.where(k <= centre, up, down)
    if kind == "SIN_P":
        if len(numbers) != 6:
            raise WaveError(24)
        seg, amp, offset, length, start, _centre = numbers
        _check_segment(seg, length, start)
        k = (np.arange(int(seg)) - start) % length
        return offset + amp * 0.5 * (1.0 - np.cos(2.0 * np.pi * k / length))
    raise WaveError(1)


def _check_segment(seg: float, length: float, start: float) -> None:
    if seg > MAX_POINTS:
        raise WaveError(67)  # wave too large
    if not (seg >= 1 and seg == int(seg) and length >= 1 and 0 <= start < seg):
        raise WaveError(17)


@dataclass
class _Generator:
    table: int = 0  # 0: none connected
    cycles: int = 1
    rate: int = 1
    interpolation: int = 0
    mode: int = 0
    started: float | None = None
    end: float = math.inf
    base: float = 0.0  # m, added to the wave (WGO bit 8)


@dataclass
class _TriggerLine:
    params: dict[int, float] = field(default_factory=lambda: {1: 0.1, 2: 1.0, 3: 0.0})
    points: set[int] = field(default_factory=set)


class WaveGenerator:
    """`generators` wave generators and trigger output lines over one stage model."""

    def __init__(
        self,
        model: StageModel,
        now: Callable[[], float],
        *,
        generators: int,
        servo_cycle: float,
        unit_scale: float,
        on_start: Callable[[], None],
        tracking_lag: float = 0.0,
    ) -> None:
        self.model = model
        self.now = now
        self.servo_cycle = servo_cycle
        self.unit_scale = unit_scale
        self.on_start = on_start
        self.tracking_lag = tracking_lag  # s: the closed loop's position trails the wave
        self.tables: dict[int, np.ndarray] = {k: np.zeros(0) for k in range(1, generators + 1)}
        self.generators = {k: _Generator() for k in range(1, generators + 1)}
        self.lines = {k: _TriggerLine() for k in range(1, 4)}

    def commands(self) -> dict[str, tuple[str, Callable[[list[str]], str | None]]]:
        return {
            "WAV": ("Set Waveform Definition", self._define),
            "WAV?": ("Get Waveform Definition", self._query_wave),
            "WSL": ("Set Connection Of Wave Table To Wave Generator", self._select),
            "WSL?": ("Get Connection Of Wave Table To Wave Generator",
                     lambda a: self._per_generator(a, lambda g: str(g.table))),
            "WGC": ("Set Number Of Wave Generator Cycles", self._cycles),
            "WGC?": ("Get Number Of Wave Generator Cycles",
                     lambda a: self._per_generator(a, lambda g: str(g.cycles))),
            "WTR": ("Set Wave Generator Table Rate", self._rate),
            "WTR?": ("Get Wave Generator Table Rate",
                     lambda a: self._per_generator(a, lambda g: f"{g.rate} {g.interpolation}")),
            "WGO": ("Set Wave Generator Start/Stop Mode", self._start),
            "WGO?": ("Get Wave Generator Start/Stop Mode",
                     lambda a: self._per_generator(a, lambda g: str(g.mode if self._runs(g)
                                                                     else 0))),
            "CTO": ("Set Configuration Of Trigger Output", self._configure_line),
            "CTO?": ("Get Configuration Of Trigger Output", self._query_lines),
            "TWS": ("Set Trigger Line Action To Waveform Point", self._set_points),
            "TWC": ("Clear All Wave Related Triggers", self._clear_points),
        }  # fmt: skip

    # -- definition ----------------------------------------------------------------------

    def _table(self, text: str) -> int:
        k = _int(text)
        if k not in self.tables:
            raise WaveError(17)
        return k

    def _generator(self, text: str) -> int:
        k = _int(text)
        if k not in self.generators:
            raise WaveError(17)
        return k

    def _define(self, args: list[str]) -> None:
        if len(args) < 3:
            raise WaveError(26)
        k = self._table(args[0])
        append = args[1].upper()
        if append not in ("X", "&"):
            raise WaveError(1)
        if any(self._runs(g) and g.table == k for g in self.generators.values()):
            raise WaveError(73)
        points = wave_points(args[2].upper(), args[3:])
        table = np.concatenate([self.tables[k], points]) if append == "&" else points
        if len(table) > MAX_POINTS:
            raise WaveError(67)
        self.tables[k] = table

    def _query_wave(self, args: list[str]) -> str:
        if len(args) % 2:
            raise WaveError(1)
        pairs = list(zip(args[::2], args[1::2], strict=True)) or [
            (str(k), "1") for k in self.tables
        ]
        lines = []
        for table, param in pairs:
            k = self._table(table)
            if _int(param) != 1:
                raise WaveError(54)
            lines.append(f"{k} 1={len(self.tables[k])}")
        return " \n".join(lines)

    def _per_generator(self, args: list[str], value: Callable[[_Generator], str]) -> str:
        keys = [self._generator(a) for a in args] or list(self.generators)
        return " \n".join(f"{k}={value(self.generators[k])}" for k in keys)

    def _pairs(self, args: list[str]) -> list[tuple[int, str]]:
        if not args or len(args) % 2:
            raise WaveError(1)
        return [(self._generator(a), b) for a, b in zip(args[::2], args[1::2], strict=True)]

    def _select(self, args: list[str]) -> None:
        for g, table in self._pairs(args):
            self.generators[g].table = self._table(table) if table != "0" else 0

    def _cycles(self, args: list[str]) -> None:
        for g, n in self._pairs(args):
            cycles = _int(n)
            if cycles < 0:
                raise WaveError(17)
            self.generators[g].cycles = cycles

    def _rate(self, args: list[str]) -> None:
        if len(args) % 3 or not args:
            raise WaveError(1)
        for g, rate, interp in zip(args[::3], args[1::3], args[2::3], strict=True):
            gen = self.generators[self._generator(g)]
            r = _int(rate)
            if r < 1 or _int(interp) not in (0, 1):
                raise WaveError(17)
            gen.rate, gen.interpolation = r, _int(interp)

    # -- running -------------------------------------------------------------------------

    def _axis(self, g: int) -> str:
        return self.model.axis_names[g - 1]

    def _runs(self, g: _Generator) -> bool:
        return g.started is not None and self.now() < g.end

    def _start(self, args: list[str]) -> None:
        for g, mode_text in self._pairs(args):
            mode = _int(mode_text)
            gen = self.generators[g]
            ax = self._axis(g)
            if mode == 0:
                if self._runs(gen):
                    self.model.stop_axis(ax)
                gen.started, gen.mode = None, 0
                continue
            if mode not in (1, 0x101):
                raise WaveError(17)
            table = self.tables.get(gen.table, np.zeros(0))
            if not len(table):
                raise WaveError(75)  # no wave selected / empty table
            if not self.model.servo(ax):
                raise WaveError(5)
            base = self.model.position(ax) if mode & 0x100 else self.model.counter(ax)
            lo, hi = self.model.limits(ax)
            values = base + table * self.unit_scale
            if values.min() < lo - 1e-12 or values.max() > hi + 1e-12:
                raise WaveError(7)
            gen.mode, gen.base, gen.started = mode, base, self.now()
            dt = gen.rate * self.servo_cycle
            gen.end = gen.started + len(table) * dt * gen.cycles if gen.cycles else math.inf
            self.model.follow(ax, self._trajectory(gen, values), gen.end, self.tracking_lag)
            self.on_start()

    def _trajectory(self, gen: _Generator, values: np.ndarray) -> Callable[[float], float]:
        start, dt, end = gen.started, gen.rate * self.servo_cycle, gen.end
        n = len(values)
        assert start is not None

        def position(t: float) -> float:
            if t >= end:
                return float(values[-1])
            i = max(0, math.floor((t - start) / dt + 1e-9))
            if gen.interpolation:  # linear between points
                frac = (t - start) / dt - i
                return float(values[i % n] + (values[(i + 1) % n] - values[i % n]) * frac)
            return float(values[i % n])

        return position

    def drives(self, ax: str) -> bool:
        """True while a running generator drives axis `ax`."""
        k = self.model.axis_names.index(ax) + 1
        gen = self.generators.get(k)
        return gen is not None and self._runs(gen)

    def target(self, ax: str) -> float:
        return self.model.target_at(ax, self.now())

    def running_mask(self) -> str:
        mask = sum(1 << (k - 1) for k, g in self.generators.items() if self._runs(g))
        return f"{mask:X}"

    def stop_axis(self, ax: str) -> None:
        gen = self.generators.get(self.model.axis_names.index(ax) + 1)
        if gen is not None:
            gen.started, gen.mode = None, 0

    def stop_all(self) -> None:
        for gen in self.generators.values():
            gen.started, gen.mode = None, 0

    # -- trigger output ------------------------------------------------------------------

    def _configure_line(self, args: list[str]) -> None:
        if not args or len(args) % 3:
            raise WaveError(1)
        for line, param, value in zip(args[::3], args[1::3], args[2::3], strict=True):
            k, p, v = _int(line), _int(param), _float(value)
            if k not in self.lines or p not in (1, 2, 3):
                raise WaveError(17)
            if p == 3 and v not in (0, 4):
                raise WaveError(17)
            if p == 2 and not 1 <= v <= len(self.model.axis_names):
                raise WaveError(15)
            self.lines[k].params[p] = v

    def _query_lines(self, args: list[str]) -> str:
        if len(args) % 2:
            raise WaveError(1)
        pairs = [(_int(a), _int(b)) for a, b in zip(args[::2], args[1::2], strict=True)] or [
            (k, p) for k in self.lines for p in (1, 2, 3)
        ]
        out = []
        for k, p in pairs:
            if k not in self.lines or p not in self.lines[k].params:
                raise WaveError(17)
            out.append(f"{k} {p}={number_reply(self.lines[k].params[p], 'g')}")
        return " \n".join(out)

    def _set_points(self, args: list[str]) -> None:
        if not args or len(args) % 3:
            raise WaveError(1)
        for line, point, switch in zip(args[::3], args[1::3], args[2::3], strict=True):
            k, i, s = _int(line), _int(point), _int(switch)
            if k not in self.lines or i < 1 or s not in (0, 1):
                raise WaveError(17)
            (self.lines[k].points.add if s else self.lines[k].points.discard)(i)

    def _clear_points(self, _args: list[str]) -> None:
        for line in self.lines.values():
            line.points.clear()

    def trigger_edges(self, line: int, t0: float, t1: float) -> list[float]:
        """Times in [t0, t1) at which trigger output `line` pulses."""
        cfg = self.lines[line]
        g = int(cfg.params[2])
        gen = self.generators.get(g)
        if cfg.params[3] == 4:  # generator trigger: at the marked wave points
            if gen is None or gen.started is None or not cfg.points:
                return []
            n = len(self.tables[gen.table])
            dt = gen.rate * self.servo_cycle
            first = max(0, math.ceil((t0 - gen.started) / dt - 1e-9))
            last = math.floor((min(t1, gen.end) - gen.started) / dt - 1e-9)
            return [
                gen.started + i * dt
                for i in range(first, last + 1)
                if (i % n) + 1 in cfg.points
            ]
        # position distance: a pulse each time the axis has moved one trigger step
        ax = self.model.axis_names[g - 1]
        step = cfg.params[1] * self.unit_scale
        if step <= 0:
            return []
        times = np.linspace(t0, t1, max(2, int((t1 - t0) / self.servo_cycle) + 1))
        cells = np.floor(np.array([self.model.position_at(ax, t) for t in times]) / step)
        return [float(t) for t, a, b in zip(times[1:], cells[:-1], cells[1:], strict=True)
                if a != b]  # fmt: skip
