"""How many lost replies each coil supply may cost while the rig is made safe, across the
whole path: the connect of the three supplies (its retries, its read of each error queue,
its ramps out of voltage mode), their ramp-down and settling, the read-backs and, where the
three cannot be driven together, each supply's connect and ramp-down on its own.

Each lost reply (a timeout, or a garbled reply) costs a link timeout at most. A supply or a
stage that loses some replies and answers again would otherwise spend timeouts without end on
retries that succeed, checks sent again and read-backs, and the limit `smm-daq safe` prints
(what a supervisor waits before SIGKILL) would be no limit. Within `making_safe`, a link that
takes part (`Link(budget=SUPPLY)`: the coil supplies; `Link(budget=STAGE)`: the stage) charges
each lost reply to its instrument's name here; once that instrument has lost what its kind
is allowed, it is given up: every further exchange with it is refused at once (`GivenUp`),
with a single exception, the unchecked switch-off of a supply given up (`last_word`), which
`safe_time_bound` counts as one more exchange. The lock-in's and the fluxgate's links have no
kind: no make-safe path talks to them, and closing a rig after making it safe only closes
their links, which sends them nothing (it waits for an exchange already under way on another
thread, each of whose attempts a link's timeout bounds, its write too, and refuses one begun
meanwhile: `safe_bound.close_wait_s` counts that wait; on a serial-over-LAN port whose last
exchange was a write with no reply, the close first lets that write reach the adapter, within
the rest of that write's timeout, which the same wait counts).

The path also has a deadline on the rig's clock (`safe_bound.safe_deadline` after it began):
once reached, every exchange is refused at once (`DeadlineReached`, a `GivenUp`) but a coil
supply's switch-off (`switching_off`): `TAIL_EXCHANGES` of them per supply, one attempt each,
so that each supply still energised is switched off where it stands and the path ends within
the time `safe_time_bound` says, however slow its links or however many replies they lose.

A path may also begin at a stop (`making_safe_from`): around a field's ramp that Stop ends,
nothing is limited until the stop; from then on the ramp's step under way, and the making safe
after it, are one path, its deadline counted from the stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from smm_daq.clock import Clock
from smm_daq.errors import InstrumentLost
from smm_daq.instruments.quoting import shown

SUPPLY = "supply"  # a coil supply's link
STAGE = "stage"  # the stage's link
# the exchanges a supply may still have past the deadline: its switch-off (`OUTP OFF`) and
# its check, both once more where the check lost its reply, then the switch-off unchecked
TAIL_EXCHANGES = 5


class GivenUp(InstrumentLost):
    """An exchange refused: the instrument lost every reply the make-safe path allows it."""


class DeadlineReached(GivenUp):
    """An exchange refused: the make-safe path's deadline was reached (only a supply's
    switch-off is still sent)."""


@dataclass
class LossBudget:
    """Lost replies per instrument name during one make-safe path; `allowed` each coil
    supply, `allowed_stage` the stage (its link's kind, `SUPPLY` or `STAGE`, says which)."""

    allowed: int
    allowed_stage: int | None = None  # None: the stage's lost replies are not limited
    lost: dict[str, int] = field(default_factory=dict)
    last_words: set[str] = field(default_factory=set)  # names whose last word was sent
    clock: Clock | None = None  # the rig's, on which `deadline` is
    deadline: float | None = None  # clock time past which only switch-offs are sent
    deadline_s: float = 0.0  # the deadline, from the path's start (s)
    late: dict[str, int] = field(default_factory=dict)  # exchanges per name past the deadline
    stage_deadline: float | None = None  # clock time past which the stage is refused too
    stage_share_s: float = 0.0  # the stage's share of the path, from its start (s)
    # a path begun by a stop (`making_safe_from`): the stop's time on `clock`, None until it
    # comes (nothing is limited meanwhile); None for a path begun as it is made
    stopped_at: Callable[[], float | None] | None = None

    def begun(self) -> bool:
        """Whether the path has begun: one begun by a stop once the stop has come, its
        deadline then counted from the stop's time (not from when it is first asked)."""
        if self.deadline is not None or self.stopped_at is None:
            return True
        at = self.stopped_at()
        if at is None:
            return False
        self.deadline = at + self.deadline_s
        return True

    def begin(self) -> None:
        """Begin now a path that waits for a stop, unless the stop has come."""
        if not self.begun() and self.clock is not None:
            self.deadline = self.clock.now() + self.deadline_s

    def charge(self, name: str) -> None:
        """One more reply of `name` lost (none counted before the path has begun)."""
        if self.begun():
            self.lost[name] = self.lost.get(name, 0) + 1

    def allowance(self, kind: str) -> int | None:
        """Replies an instrument of `kind` may lose (None: not limited)."""
        return self.allowed_stage if kind == STAGE else self.allowed

    def spent(self, name: str, kind: str = SUPPLY) -> bool:
        """Whether `name` has lost every reply it may (it is given up)."""
        allowance = self.allowance(kind)
        return allowance is not None and self.lost.get(name, 0) >= allowance

    def refuse(self, name: str, command: str, kind: str = SUPPLY) -> None:
        """`GivenUp` when `name` has lost every reply it may; `DeadlineReached` past the
        deadline (`refuse_late`). Nothing is refused before the path has begun."""
        if not self.begun():
            return
        if self.spent(name, kind):
            raise GivenUp(
                f"given up before {shown(command)}: {_replies(self.lost[name])} lost while making "
                f"the rig safe (at most {self.allowance(kind)} are waited for, so that it "
                "ends in the time it said)", instrument=name)
        self.refuse_late(name, command, kind)

    def past_deadline(self) -> bool:
        """Whether the path's deadline is reached."""
        return (self.begun() and self.clock is not None and self.deadline is not None
                and self.clock.now() >= self.deadline)

    def refuse_late(self, name: str, command: str, kind: str = SUPPLY) -> None:
        """Past the deadline, `DeadlineReached`, but for a supply's switch-off
        (`switching_off`) while it has had fewer than `TAIL_EXCHANGES` exchanges since:
        that one is counted."""
        if kind == STAGE and self.clock is not None and self.stage_deadline is not None \
                and self.clock.now() >= self.stage_deadline:
            raise DeadlineReached(
                f"the stage's share of making the rig safe ({self.stage_share_s:.0f} s) ended "
                f"before {shown(command)}: the rest is the coils', for their ramps",
                instrument=name)
        if not self.past_deadline():
            return
        if kind == SUPPLY and _switching_off.get() and self.late.get(name, 0) < TAIL_EXCHANGES:
            self.late[name] = self.late.get(name, 0) + 1
            return
        raise DeadlineReached(
            f"deadline reached before {shown(command)}: making the rig safe ramps for "
            f"{self.deadline_s:.0f} s at most, then switches off each supply still energised "
            "where it stands", instrument=name)

    def stage_refused_at(self) -> float | None:
        """The time on `clock` from which the stage's exchanges are refused (`refuse_late`:
        the end of its share, or the deadline, the sooner); None where neither is set."""
        ends = [t for t in (self.stage_deadline, self.deadline if self.begun() else None)
                if t is not None]
        return min(ends, default=None)

    def take_last_word(self, name: str) -> bool:
        """Whether `name`, given up, may still be sent its one unchecked last command."""
        if name in self.last_words:
            return False
        self.last_words.add(name)
        return True


def _replies(n: int) -> str:
    return f"{n} repl{'y' if n == 1 else 'ies'}"


_current: ContextVar[LossBudget | None] = ContextVar("loss_budget", default=None)
_switching_off: ContextVar[bool] = ContextVar("switching_off", default=False)


def current() -> LossBudget | None:
    """The budget of the make-safe path under way in this context, if any."""
    return _current.get()


def past_deadline() -> bool:
    """Whether the make-safe path under way in this context has reached its deadline."""
    budget = _current.get()
    return budget is not None and budget.past_deadline()


@contextlib.contextmanager
def switching_off() -> Iterator[None]:
    """The exchanges inside switch a supply off (its `OUTP OFF` and the check of it): sent
    past the deadline too, `TAIL_EXCHANGES` at most per supply."""
    token = _switching_off.set(True)
    try:
        yield
    finally:
        _switching_off.reset(token)


def left_s() -> float | None:
    """Seconds to the deadline of the make-safe path under way in this context (begun: one
    waiting for its stop begins now); None where there is none."""
    budget = _current.get()
    if budget is None or budget.clock is None:
        return None
    budget.begin()
    return None if budget.deadline is None else budget.deadline - budget.clock.now()


@contextlib.contextmanager
def stage_share(seconds: float) -> Iterator[None]:
    """The stage's exchanges inside end `seconds` from now (each one later refused,
    `DeadlineReached`), in the make-safe path under way (none: no limit), or sooner where a
    share around it ends sooner: a stage slow to answer, made safe before the coils, must
    not take the time of their ramps."""
    budget = _current.get()
    if budget is None or budget.clock is None:
        yield
        return
    previous = budget.stage_deadline, budget.stage_share_s
    end = budget.clock.now() + seconds
    if previous[0] is None or end < previous[0]:
        budget.stage_deadline, budget.stage_share_s = end, seconds
    try:
        yield
    finally:
        budget.stage_deadline, budget.stage_share_s = previous


@contextlib.contextmanager
def making_safe(allowed: int, *, stage: int | None = None, clock: Clock | None = None,
                deadline_s: float | None = None) -> Iterator[LossBudget]:
    """A budget of `allowed` lost replies per supply, and `stage` for the stage, for the
    make-safe path run inside, with its deadline `deadline_s` from now on `clock` (both
    given: else none); one path nested in another (a failed connect made safe inside
    `smm-daq safe`, a stopped ramp made safe) shares the outer one, its deadline too, as the
    outer bound counts it; one waiting for its stop begins then."""
    outer = _current.get()
    if outer is not None:
        outer.begin()
        yield outer
        return
    budget = LossBudget(allowed, stage)
    if clock is not None and deadline_s is not None:
        budget.clock, budget.deadline_s = clock, deadline_s
        budget.deadline = clock.now() + deadline_s
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


@contextlib.contextmanager
def making_safe_from(stopped_at: Callable[[], float | None], allowed: int, *,
                     stage: int | None, clock: Clock, deadline_s: float
                     ) -> Iterator[LossBudget]:
    """The make-safe path that a stop begins, for the exchanges inside (a field's ramp that
    Stop ends, and the making safe after it): nothing is limited until `stopped_at()` gives
    the stop's time on `clock`; from then on, as `making_safe`, its deadline `deadline_s`
    after the stop, so that the exchange under way as the stop came, the rest of the ramp's
    step and the making safe that follows all end within `safe_time_bound` of the stop. Inside
    a path already, that one is shared."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    budget = LossBudget(allowed, stage, clock=clock, deadline_s=deadline_s,
                        stopped_at=stopped_at)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)
