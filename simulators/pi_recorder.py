"""The data recorder of a PI GCS 2.0 controller, sampling the stage model on the virtual clock.

Record tables (`DRC <table> <source> <option>`) each record one quantity of one axis: option 1
the commanded (target) position, 2 the actual position, 3 the position error, 0 nothing. One
sample every `RTR` servo cycles from the trigger (`DRT <table> <source> <value>`: 0 by the
wave generator's start, 1 by any command that changes a target (MOV, MVR), 2 by the next
command of any kind). Nothing is stored: the stage model's motion is closed form in time and
keeps its history, so a sample is computed when `DRR?` reads it, at the time it was taken.
`DRR? [start count [tables]]` answers in PI's GCS array format (a `#` header ending with
`# END_HEADER`, then one row of space-separated values per sample); samples not yet taken read
0, as an empty table would. As PI's GCS manuals say, the start point and the count come
together, with no table named only the tables whose record option is not 0 are read, and a
table's count of recorded points (`DRL?`) is reset to 0 by its `DRC`, until the next trigger.
A `DRC` sent with 'next command' armed is that command: the recording it starts records the
table as that `DRC` set it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from simulators.emulator import number_reply
from simulators.stage_model import StageModel

OPTIONS = {0: "Nothing", 1: "Commanded Position", 2: "Actual Position", 3: "Position Error"}
TRIGGERS = (0, 1, 2)  # default (wave generator start), any target change, next command


class RecorderError(Exception):
    """A refused recorder command; `code` is the GCS error code."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


@dataclass
class _Table:
    source: str
    option: int


class DataRecorder:
    """`tables` record tables of at most `points` samples each, on `servo_cycle` (s) ticks."""

    def __init__(
        self,
        model: StageModel,
        now: Callable[[], float],
        *,
        tables: int,
        points: int,
        servo_cycle: float,
        to_units: Callable[[str, float], float],
        controller: str,
    ) -> None:
        self.model = model
        self.now = now
        self.points = points
        self.servo_cycle = servo_cycle
        self.to_units = to_units  # axis, controller-frame metres -> controller units
        self.controller = controller
        axes = model.axis_names
        self.tables = {
            k: _Table(axes[(k - 1) % len(axes)], 2 if k <= len(axes) else 0)
            for k in range(1, tables + 1)
        }
        self.triggers = dict.fromkeys(self.tables, 0)
        self.rate = 1
        self.started: float | None = None  # when recording was last triggered
        self._configured: set[int] = set()  # tables given a DRC since the last trigger
        self._armed_next = False
        self._fired_by_command = False  # whether the command under way fired 'next command'

    # -- configuration -------------------------------------------------------------------

    def table(self, text: str) -> int:
        try:
            k = int(text)
        except ValueError:
            raise RecorderError(1) from None
        if k not in self.tables:
            raise RecorderError(57)  # invalid record table
        return k

    def configure(self, table: str, source: str, option: str) -> None:
        k = self.table(table)
        if not self.model.has_axis(source):
            raise RecorderError(59)  # invalid record source channel
        try:
            opt = int(option)
        except ValueError:
            raise RecorderError(1) from None
        if opt not in OPTIONS:
            raise RecorderError(58)  # invalid record option
        self.tables[k] = _Table(source, opt)
        if not self._fired_by_command:  # a DRC that fired 'next command' records as it set
            self._configured.add(k)

    def set_trigger(self, table: str, source: str, _value: str) -> None:
        k = self.table(table) if table != "0" else 0
        try:
            trigger = int(source)
        except ValueError:
            raise RecorderError(1) from None
        if trigger not in TRIGGERS:
            raise RecorderError(17)
        for key in self.tables if k == 0 else [k]:
            self.triggers[key] = trigger
        self._armed_next = trigger == 2

    def set_rate(self, text: str) -> None:
        try:
            rate = int(text)
        except ValueError:
            raise RecorderError(1) from None
        if not 1 <= rate <= 2**16:
            raise RecorderError(17)
        self.rate = rate

    # -- triggers ------------------------------------------------------------------------

    def command_seen(self, changes_target: bool) -> None:
        """Every command passes here: it may trigger the recording."""
        self._fired_by_command = self._armed_next
        if self._armed_next:
            self._armed_next = False
            self._trigger()
            for k, trigger in self.triggers.items():
                if trigger == 2:
                    self.triggers[k] = 0  # "next command" resets after it fired
        elif changes_target and any(t == 1 for t in self.triggers.values()):
            self._trigger()

    def wave_started(self) -> None:
        if any(t == 0 for t in self.triggers.values()):
            self._trigger()

    def _trigger(self) -> None:
        self.started = self.now()
        self._configured.clear()

    # -- readout -------------------------------------------------------------------------

    def sample_time(self) -> float:
        return self.rate * self.servo_cycle

    def recorded(self, table: int | None = None) -> int:
        """Samples recorded since the last trigger (up to the table size); 0 for a `table`
        configured since."""
        if self.started is None or table in self._configured:
            return 0
        n = math.floor((self.now() - self.started) / self.sample_time() + 1e-9) + 1
        return min(n, self.points)

    def _value(self, table: _Table, t: float) -> float:
        ax = table.source
        origin = self.model.counter(ax)
        target = self.model.target_at(ax, t)
        actual = self.model.position_at(ax, t)
        if table.option == 1:
            return self.to_units(ax, target - origin)
        if table.option == 2:
            return self.to_units(ax, actual - origin)
        if table.option == 3:
            return self.to_units(ax, target - actual)
        return 0.0

    def read(self, args: list[str]) -> str:
        """The reply to `DRR? [start count [tables...]]` (start counts from 1)."""
        if len(args) == 1:
            raise RecorderError(1)  # a start point without the number of points
        try:
            start = int(args[0]) if args else 1
            count = int(args[1]) if args else None
        except ValueError:
            raise RecorderError(1) from None
        keys = [self.table(a) for a in args[2:]] or [
            k for k, table in self.tables.items() if table.option != 0]
        done = {k: self.recorded(k) for k in keys}
        if count is None:
            count = max(done.values(), default=0)
        if start < 1 or count < 0 or start - 1 + count > self.points:
            raise RecorderError(17)
        dt = self.sample_time()
        t0 = self.started if self.started is not None else self.now()
        header = [
            "# TYPE = 1",
            "# SEPARATOR = 32",
            f"# DIM = {len(keys)}",
            f"# SAMPLE_TIME = {dt:.9g}",
            f"# NDATA = {count}",
        ]
        for i, k in enumerate(keys):
            table = self.tables[k]
            header.append(f"# NAME{i} = {OPTIONS[table.option]} of axis {table.source}")
        header.append("# END_HEADER")
        rows = []
        for j in range(start - 1, start - 1 + count):
            t = t0 + j * dt
            rows.append(
                " ".join(
                    number_reply(self._value(self.tables[k], t) if j < done[k] else 0.0, ".7f")
                    for k in keys
                )
            )
        return " \n".join(header + rows)

    def query_tables(self, args: list[str], value: Callable[[int], str]) -> str:
        keys = [self.table(a) for a in args] or list(self.tables)
        return " \n".join(f"{k}={value(k)}" for k in keys)
