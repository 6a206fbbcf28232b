"""What one coil supply lost during one ramp-down, so that the ramp goes on past a few lost
replies and still ends in bounded time.

A step's setpoint is absolute and the next step's check tells whether the supply takes it, so
a step whose error check lost its reply (`ReplyUnknown`: reading the queue clears it, so it is
not asked again) is gone on past; a ramp-down stopped there would leave the coil energised.
Each lost reply costs up to a link timeout, so the ramp gives the supply up where it is when
two step checks in a row lost their replies (nothing it was sent is known to have arrived) or
when more than `allowed` replies were lost during the ramp (every exchange counts, also one
that a retry saved): `InstrumentError` names the current it was left at and what was lost.
The caller switches a supply given up off where it stands (`kepco_bop._switch_off_given_up`).
The whole make-safe path, of which a ramp-down is a part, is bounded by each supply's
`loss_budget`, which `safe_time_bound` counts.
"""

from __future__ import annotations

from typing import Protocol

from drivers.link import Link
from smm_daq.errors import InstrumentError, ReplyUnknown
from smm_daq.instruments.profile import RAMP_LOST_REPLIES


class RampedSupply(Protocol):
    """What a ramp needs of a supply (`kepco_bop._Supply`)."""

    name: str
    link: Link
    setpoint: float

    def set_current(self, amps: float, *, resend: bool = False) -> None: ...


class RampLosses:
    """One supply's lost replies during one ramp; `step` sends each step's current."""

    def __init__(self, supply: RampedSupply, *, allowed: int = RAMP_LOST_REPLIES) -> None:
        self.supply = supply
        self.allowed = allowed
        self._failures_before = supply.link.failures
        self.unconfirmed = False  # the last step's check lost its reply
        self.checks_lost: list[str] = []  # the commands whose check lost its reply

    @property
    def lost(self) -> int:
        """Replies lost (timed out or garbled) since the ramp began."""
        return self.supply.link.failures - self._failures_before

    def step(self, amps: float) -> None:
        """Send `amps` and check it; a lost check is gone on past, unless the last step's was
        lost too or the ramp has lost more than it may (then `InstrumentError`)."""
        supply = self.supply
        try:
            supply.set_current(amps)
        except ReplyUnknown as exc:
            supply.setpoint = amps  # sent; whether it was refused is unknown
            self.checks_lost.append(f"CURR {amps:.6f}")
            if self.unconfirmed:
                raise self._given_up(f"{exc}; two step checks in a row lost") from exc
            self.unconfirmed = True
        else:
            self.unconfirmed = False
        self.check()

    def check(self) -> None:
        """`InstrumentError` once the ramp has lost more replies than it may."""
        if self.lost > self.allowed:
            raise self._given_up(
                f"{self.supply.name}: {self.lost} replies lost during its ramp (at most "
                f"{self.allowed} are gone on past, so that making the rig safe ends in time)")

    def said(self) -> str:
        """What was lost, for a report ('' when nothing)."""
        if not self.lost:
            return ""
        checks = (f", among them the checks of {', '.join(map(repr, self.checks_lost))}"
                  if self.checks_lost else "")
        return f"; {self.lost} repl{'y' if self.lost == 1 else 'ies'} lost on the way{checks}"

    def _given_up(self, why: str) -> InstrumentError:
        name = self.supply.name
        return InstrumentError(
            f"{why.removeprefix(f'{name}: ')}; its ramp-down stopped at "
            f"{self.supply.setpoint:.4f} A (as last sent)",
            instrument=name)
