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
`safe_time_bound` counts as one more exchange.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from smm_daq.errors import InstrumentLost

SUPPLY = "supply"  # a coil supply's link
STAGE = "stage"  # the stage's link


class GivenUp(InstrumentLost):
    """An exchange refused: the instrument lost every reply the make-safe path allows it."""


@dataclass
class LossBudget:
    """Lost replies per instrument name during one make-safe path; `allowed` each coil
    supply, `allowed_stage` the stage (its link's kind, `SUPPLY` or `STAGE`, says which)."""

    allowed: int
    allowed_stage: int | None = None  # None: the stage's lost replies are not limited
    lost: dict[str, int] = field(default_factory=dict)
    last_words: set[str] = field(default_factory=set)  # names whose last word was sent

    def charge(self, name: str) -> None:
        """One more reply of `name` lost."""
        self.lost[name] = self.lost.get(name, 0) + 1

    def allowance(self, kind: str) -> int | None:
        """Replies an instrument of `kind` may lose (None: not limited)."""
        return self.allowed_stage if kind == STAGE else self.allowed

    def spent(self, name: str, kind: str = SUPPLY) -> bool:
        """Whether `name` has lost every reply it may (it is given up)."""
        allowance = self.allowance(kind)
        return allowance is not None and self.lost.get(name, 0) >= allowance

    def refuse(self, name: str, command: str, kind: str = SUPPLY) -> None:
        """`GivenUp` when `name` has lost every reply it may."""
        if self.spent(name, kind):
            raise GivenUp(
                f"given up before {command!r}: {_replies(self.lost[name])} lost while making "
                f"the rig safe (at most {self.allowance(kind)} are waited for, so that it "
                "ends in the time it said)", instrument=name)

    def take_last_word(self, name: str) -> bool:
        """Whether `name`, given up, may still be sent its one unchecked last command."""
        if name in self.last_words:
            return False
        self.last_words.add(name)
        return True


def _replies(n: int) -> str:
    return f"{n} repl{'y' if n == 1 else 'ies'}"


_current: ContextVar[LossBudget | None] = ContextVar("loss_budget", default=None)


def current() -> LossBudget | None:
    """The budget of the make-safe path under way in this context, if any."""
    return _current.get()


@contextlib.contextmanager
def making_safe(allowed: int, *, stage: int | None = None) -> Iterator[LossBudget]:
    """A budget of `allowed` lost replies per supply, and `stage` for the stage, for the
    make-safe path run inside; one path nested in another (a failed connect made safe inside
    `smm-daq safe`) shares the outer one, as the outer bound counts it."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    budget = LossBudget(allowed, stage)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)
