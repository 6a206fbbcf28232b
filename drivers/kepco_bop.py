"""Three-axis coils driven by three Kepco BOP bipolar supplies (one per coil axis, SCPI).

Field to currents through the profile's calibration: I = C⁻¹ (B − ambient), C the 3 × 3 T/A
matrix (sample frame, columns = coils x, y, z) and ambient the field with every current at
zero, so a requested field of zero nulls the ambient field. Fields beyond `max_field` and
currents beyond `max_current` are refused before anything is sent. Currents ramp in steps on
the injected clock, never faster than `max_ramp_rate`. Every set command is followed by
`SYST:ERR?`, and every ramp step checks `OUTP?`: a supply whose output went off without being
told (a trip) or that reports an error raises `InstrumentError` naming its axis. Reading
`SYST:ERR?` clears what it reports, so a lost reply is not asked again (`ReplyUnknown`): a
field set's current step and an output's switching on, absolute and idempotent, are then
sent once more and checked (lost twice in a row, the set fails); a ramp-down goes on past a
few lost replies, within a bound that keeps making the rig safe in time (`RampLosses`), and
each supply's lost replies over the whole make-safe path are limited (`loss_budget`); a
supply given up on the way is switched off where it stands (`_switch_off_given_up`), as is
each supply still energised when the make-safe path's deadline is reached (`loss_budget`:
every exchange but a switch-off is refused from then on). The safety paths' ramps are paced by
the clock (`ramp_pace`): a slow link does not lengthen them past their deadline; a field set's
steps are capped at what the ramp rate allows in one step's interval, so a slow link lengthens
it instead of steepening it.

Supplies run in current mode (`FUNC:MODE CURR`) with the voltage limit (`VOLT`) as their
compliance. At connect each supply's rating is read from its model in `*IDN?` (a BOP 20-5M is
±20 V, ±5 A): a profile whose `max_current_A` exceeds it is refused, and the compliance is
never set beyond the rated voltage. Then the error queue is read (`SYST:ERR?`) before `*CLS`
empties it: what an earlier program left there (a supply fault, a refused command) is kept,
not cleared unseen (`errors_at_connect`: the snapshot, `smm-daq safe`'s report); a reply to
it lost does not fail the connect (`smm-daq safe` connects this way, to ramp the field down),
and it is said unknown. A connect that fails after reading some supplies' queues says what
they held in a note on its error (`add_note`). The safety paths (`zero`, `output_off`) try
every axis even when one fails, and then raise one error naming every axis that failed.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TypeVar

import numpy as np

from drivers.link import Link, parse_float, shown
from drivers.ramp_losses import RampLosses
from drivers.ramp_pace import capped_fractions, ramp_fractions
from drivers.scpi_errors import errors_found, parse_scpi_error
from smm_daq.clock import Clock
from smm_daq.errors import (
    InputError,
    InstrumentError,
    ProtocolError,
    RampStopped,
    RangeError,
    ReplyUnknown,
    SmmError,
)
from smm_daq.instruments import loss_budget
from smm_daq.instruments.interfaces import FieldSource, Identity
from smm_daq.instruments.loss_budget import DeadlineReached, GivenUp
from smm_daq.instruments.profile import (
    CURRENT_READ_MARGIN,
    MAX_CURRENT_A,
    CoilSettings,
    LinkSettings,
)
from smm_daq.instruments.transport import Transport

AXES = ("x", "y", "z")
RAMP_STEP_S = 0.1  # time between current steps of a ramp
CURRENT_TOLERANCE_A = 5e-3  # how far a current read back may be from the one set
T = TypeVar("T")

OpenTransport = Callable[[str, LinkSettings], Transport]


def bop_rating(model: str) -> tuple[float, float] | None:
    """'BOP 20-5M' -> (20.0, 5.0), the supply's ± volts and amps; None if not a BOP model."""
    match = re.match(r"^BOP\s*(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", model.strip(), re.IGNORECASE)
    return (float(match.group(1)), float(match.group(2))) if match else None


def parse_kepco_idn(reply: str) -> Identity:
    """'KEPCO,BOP 20-5M,E1234,1.66-1.66' -> Identity."""
    parts = [p.strip() for p in reply.split(",")]
    if len(parts) != 4 or not all(parts):
        raise ProtocolError(f"expected 'vendor,model,serial,firmware', got {shown(reply)}")
    return Identity(*parts)


def _parse_mode(reply: str) -> str:
    """FUNC:MODE?: 0 or VOLT (voltage mode), 1 or CURR (current mode)."""
    text = reply.strip().upper()
    if text not in ("0", "1", "VOLT", "CURR"):
        raise ProtocolError(f"expected 0 or 1 from FUNC:MODE?, got {shown(reply)}")
    return "CURR" if text in ("1", "CURR") else "VOLT"


def _parse_output(reply: str) -> bool:
    text = reply.strip().upper()
    if text not in ("0", "1", "ON", "OFF"):
        raise ProtocolError(f"expected 0 or 1 from OUTP?, got {shown(reply)}")
    return text in ("1", "ON")


class _Supply:
    """One BOP: its link, the current last sent, whether its output should be on, whether it
    tripped (then only `output_off` re-arms it: a trip needs the operator's attention), and
    whether it was sent a switch-off not confirmed (given up while the rig was made safe:
    its output found off later is that switch-off, not a trip)."""

    def __init__(self, transport: Transport, axis: str, retries: int, *,
                 rated_current: float = MAX_CURRENT_A) -> None:
        self.axis = axis
        self.name = f"coil {axis}"
        # budgeted: while the rig is made safe, its lost replies are limited (`loss_budget`)
        self.link = Link(transport, name=self.name, retries=retries,
                         budget=loss_budget.SUPPLY)
        self.setpoint = 0.0
        self.enabled = False
        self.tripped = False
        self.sent_off = False  # switched off unconfirmed where it stood (`_switch_off_given_up`)
        # sent its switch-on, not confirmed (a reply lost, the link failed): it may be on,
        # unknown to `enabled`, until it is switched again
        self.maybe_on = False
        self.rating = (math.nan, math.nan)  # ± V, ± A, from the model in *IDN?
        # ± A a current read may be within before the rating is known (`current`)
        self.rated_current = rated_current
        self.errors_at_connect: list[str] = []  # the queue as found at connect, then cleared
        # what connecting the three last knew of its output ('at 2.0000 A ...'; "": nothing),
        # for the report of a connect that failed (`found_at_connect`)
        self.found = ""

    @contextlib.contextmanager
    def _naming_axis(self) -> Iterator[None]:
        """Errors from the transport itself (a lost link) carry its name: add the coil axis."""
        try:
            yield
        except InstrumentError as exc:
            if exc.instrument == self.name:
                raise
            raise type(exc)(str(exc), instrument=self.name) from exc

    def write(self, command: str) -> None:
        with self._naming_axis():
            self.link.write(command)

    def query(self, command: str, parse: Callable[[str], T], *,
              destructive: bool = False) -> T:
        with self._naming_axis():
            return self.link.query(command, parse, destructive=destructive)

    def command(self, command: str, *, resend: bool = False) -> None:
        """Send a set command, then read the error queue; raise naming the axis on an error.
        `resend`, for a command that is idempotent (an absolute setpoint, an output state):
        its check having its reply lost (`ReplyUnknown`: reading the queue clears it, so it is
        not asked again), it is sent once more and checked; lost again, raised."""
        try:
            self._command(command)
        except ReplyUnknown:
            if not resend:
                raise
            self._command(command)

    def _command(self, command: str) -> None:
        self.write(command)
        try:
            code, text = self.query("SYST:ERR?", parse_scpi_error, destructive=True)
        except InstrumentError as exc:  # what `command` did is unknown: say which it was
            detail = str(exc).removeprefix(f"{self.name}: ")
            raise type(exc)(f"checking {command!r}: {detail}", instrument=self.name) from None
        if code != 0:
            raise InstrumentError(
                f"supply reports error {code} ({text}) after {command!r}", instrument=self.name
            )

    def read_errors(self) -> list[str]:
        """The queue as found (`scpi_errors.errors_found`), then emptied by `*CLS`: what an
        earlier program left is kept in `errors_at_connect`, and no later check takes it for
        one of our commands."""
        self.errors_at_connect = errors_found(
            lambda: self.query("SYST:ERR?", parse_scpi_error, destructive=True))
        self.write("*CLS")
        return self.errors_at_connect

    def set_current(self, amps: float, *, resend: bool = False) -> None:
        self.command(f"CURR {amps:.6f}", resend=resend)
        self.setpoint = float(amps)

    def check_output(self) -> None:
        """Raise if the output is off while it should be on (the supply tripped); found off
        after a switch-off sent unconfirmed, it is that switch-off, and off is taken as is."""
        if self.tripped:
            raise InstrumentError(
                "supply tripped; switch the outputs off to re-arm it", instrument=self.name
            )
        if not self.enabled:
            return
        on = self.query("OUTP?", _parse_output)
        sent_off, self.sent_off = self.sent_off, False
        if not on:
            self.enabled = False
            if sent_off:  # the switch-off sent when it was given up arrived: no trip
                return
            self.tripped = True
            try:
                code, text = self.query("SYST:ERR?", parse_scpi_error, destructive=True)
                reason = f": error {code} ({text})" if code else ""
            except ReplyUnknown as exc:  # the trip is the news, not the reply lost with it
                reason = f"; why is unknown: {str(exc).removeprefix(f'{self.name}: ')}"
            raise InstrumentError(
                f"supply output found off (tripped){reason}", instrument=self.name
            )

    def measured(self) -> float:
        return self.current("MEAS:CURR?")

    def current(self, query: str) -> float:
        """A current reply (A) within what the supply can drive (its rating, with a margin for
        a reading; before the rating is known, or where *IDN? did not tell it, the rating the
        profile states): a corrupted reply is never ramped from, and no ramp is longer than
        the bound on making the rig safe counts."""
        amps = self.rating[1] if math.isfinite(self.rating[1]) else self.rated_current
        bound = CURRENT_READ_MARGIN * amps
        return self.query(query, lambda r: parse_float(r, what="current in A",
                                                       within=(-bound, bound)))

    def switch(self, on: bool, *, resend: bool = False) -> None:
        """Output on or off; a switch-off is sent past the make-safe path's deadline too
        (`loss_budget.switching_off`)."""
        if on:
            try:
                self.command("OUTP ON", resend=resend)
            except InstrumentError:
                self.maybe_on = True
                raise
        else:
            with loss_budget.switching_off():
                self.command("OUTP OFF", resend=resend)
        self.enabled = on
        self.sent_off = self.maybe_on = False
        if not on:
            self.tripped = False

    def enable(self) -> None:
        """Output on from 0 A (so it ramps from zero), unless it tripped; each command sent
        once more where its check lost its reply (both are idempotent)."""
        self.check_output()
        if not self.enabled:
            self.set_current(0.0, resend=True)
            self.switch(True, resend=True)


class KepcoBOPCoils(FieldSource):
    """A `FieldSource` over three Kepco BOP supplies, one transport each."""

    honours_stop = True  # its ramp asks the stop before every step (`_ramp`)
    # its settle (`_settle`) ends at its first look in current mode, the currents having
    # followed the ramp's steps: no wait beyond its exchanges, which no estimate counts
    settle_s = 0.0

    def __init__(
        self,
        transports: Sequence[Transport],
        *,
        calibration: np.ndarray,
        ambient: np.ndarray,
        max_current: float,
        max_ramp_rate: float,
        max_field: float,
        clock: Clock,
        safe_state: str = "zero",
        retries: int = 2,
        voltage_limit: float = 20.0,
        supply_rating: float = MAX_CURRENT_A,
        ramp_step: float = RAMP_STEP_S,
        current_tolerance: float = CURRENT_TOLERANCE_A,
        settle_timeout: float = 2.0,
        name: str = "coils",
    ) -> None:
        if len(transports) != 3:
            raise ValueError(f"need one transport per coil axis (3), got {len(transports)}")
        if safe_state not in ("zero", "off"):
            raise ValueError(f"safe_state must be 'zero' or 'off', got {safe_state!r}")
        self.name = name
        self.calibration = np.array(calibration, dtype=float)
        self.ambient = np.array(ambient, dtype=float)
        self.max_current = max_current
        # the rating the profile states (`coils.supply_rating_A`): the bound on making the rig
        # safe counts the supplies' ramp-downs at it, so a supply rated higher is refused
        self.supply_rating = supply_rating
        self.max_ramp_rate = max_ramp_rate
        self.max_field = max_field
        self.clock = clock
        self.safe_state = safe_state
        self.voltage_limit = voltage_limit
        self.ramp_step = ramp_step
        self.current_tolerance = current_tolerance
        self.settle_timeout = settle_timeout
        self._supplies = [
            _Supply(t, axis, retries, rated_current=supply_rating)
            for t, axis in zip(transports, AXES, strict=True)
        ]
        # what the last ramp-down's supplies lost on the way and went on past, per supply
        # ('coil y: 1 reply lost on the way, ...'), for a report of the safe state reached
        self.replies_lost: list[str] = []
        try:
            for s in self._supplies:
                self._connect(s)
        except Exception as exc:
            self.close()
            found = {s.name: s.found for s in self._supplies if s.found}
            if found:  # for each supply's report, when they are made safe one by one
                exc.found_at_connect = found  # type: ignore[attr-defined]
            if self.errors_at_connect:  # read, then cleared by *CLS: not to be lost with it
                exc.add_note(f"errors the supplies held from before: "
                             f"{'; '.join(self.errors_at_connect)}")
            raise
        self._field_setpoint = self.calibration @ self._setpoints() + self.ambient

    @classmethod
    def ramp_down_each(
        cls, settings: CoilSettings, *, clock: Clock, open_transport: OpenTransport | None,
        after: BaseException | None = None,
    ) -> list[tuple[str, bool, str]]:
        """For when the three supplies cannot be driven together (one does not answer): each
        one that answers, on its own, ramped to 0 A within the ramp limit and switched off.
        Its error queue is read (`read_errors`) once it has answered, before the ramp: what
        an earlier program left there is said with its state, not taken for a refused step.
        One found with its output off is set to 0 A at once: no current flows to ramp.
        Lost replies on the way are gone on past as in the ramp of the three (`RampLosses`:
        a few, never two step checks in a row) and said with the supply's state.

        The ambient field cannot be nulled without all three, so this is the "off" state
        whatever the profile's safe state. A supply given up once its ramp began (lost
        replies, `RampLosses` or the path's `loss_budget`), or given up by the budget before
        it, is switched off where it stands, as `output_off` does (`_switch_off_given_up`
        says why); one given up before it is said where connecting the three (`after`: its
        error) last knew it (`found_at_connect`), not "its current unknown".
        Returns (coil, safe, its final state) per axis.
        """
        opener = open_transport or _hardware_transport
        found = found_at_connect(after)
        results: list[tuple[str, bool, str]] = []
        for address, axis in zip(settings.addresses, AXES, strict=True):
            supply = None
            ramping = False  # from its first step until its switch-off is confirmed
            try:
                supply = _Supply(opener(address, settings.link), axis, settings.link.retries,
                                 rated_current=settings.supply_rating)
                # its rating bounds what a current read back may be; unknown (no valid
                # *IDN?), the rating the profile states (`coils.supply_rating_A`) does
                with contextlib.suppress(SmmError):
                    rated = bop_rating(supply.query("*IDN?", parse_kepco_idn).model)
                    supply.rating = rated if rated is not None else supply.rating
                start = supply.current("CURR?")  # a supply that does not answer fails here
                supply.read_errors()  # else the first step's check takes an earlier error
                # output off (as a connect of the three leaves one it ramped out of voltage
                # mode), no current flows: its setpoint goes to 0 A at once, not ramped
                on = supply.query("OUTP?", _parse_output)
                supply.setpoint = start
                losses = RampLosses(supply)
                ramping = True
                duration = abs(start) / settings.max_ramp_rate if on else 0.0
                for f in ramp_fractions(clock, duration, RAMP_STEP_S,
                                        lambda s=supply: s.link.failures):
                    losses.step(start * (1 - f))
                if losses.unconfirmed:  # the last step once more: where it ends is known
                    losses.step(0.0)
                supply.switch(False, resend=True)
                ramping = False
                amps = _read_off(supply, CURRENT_TOLERANCE_A)
                results.append((supply.name, True, f"{amps:.4f} A, output off{losses.said()}"
                                                   f"{_held_from_before(supply)}"))
            except SmmError as exc:
                held = _held_from_before(supply) if supply is not None else ""
                off = ""
                if supply is not None and (ramping or isinstance(exc, GivenUp)):
                    done = _switch_off_given_up(supply, str(exc), ramped=ramping,
                                                found=found.get(supply.name, ""))
                    off = f"; {done}"
                results.append((f"coil {axis}", False, f"not made safe: {exc}{off}{held}"))
            finally:
                if supply is not None:
                    with contextlib.suppress(Exception):
                        supply.link.close()
        return results

    @classmethod
    def from_profile(
        cls, settings: CoilSettings, *, clock: Clock, open_transport: OpenTransport | None
    ) -> KepcoBOPCoils:
        opener = open_transport or _hardware_transport
        return cls(
            [opener(address, settings.link) for address in settings.addresses],
            calibration=settings.calibration,
            ambient=settings.ambient_field,
            max_current=settings.max_current,
            max_ramp_rate=settings.max_ramp_rate,
            max_field=settings.max_field,
            clock=clock,
            safe_state=settings.safe_state,
            retries=settings.link.retries,
            supply_rating=settings.supply_rating,
        )

    def _connect(self, s: _Supply) -> None:
        """Rating checked, current mode, compliance set; keep whatever current flows (no jump
        at start-up)."""
        identity = s.query("*IDN?", parse_kepco_idn)
        rated = bop_rating(identity.model)
        if rated is None:
            raise InstrumentError(
                f"cannot tell the supply's rating from its model {identity.model!r} (*IDN?); "
                "expected a Kepco 'BOP <volts>-<amps>'",
                instrument=s.name,
            )
        volts, amps = rated
        if self.max_current > amps:
            raise InputError(
                f"key 'coils.max_current_A' is {self.max_current:g} A, but the supply of {s.name} "
                f"({identity.vendor} {identity.model}) is rated ±{amps:g} A; set "
                f"coils.max_current_A to at most {amps:g}"
            )
        if amps > self.supply_rating:
            raise InputError(
                f"key 'coils.supply_rating_A' is {self.supply_rating:g} A, but the supply of "
                f"{s.name} ({identity.vendor} {identity.model}) is rated ±{amps:g} A; set "
                f"coils.supply_rating_A to at least {amps:g} (the time `smm-daq safe` may "
                "take is bounded with it)"
            )
        s.rating = rated
        s.read_errors()
        self._leave_voltage_mode(s)
        s.command("FUNC:MODE CURR")
        compliance = min(self.voltage_limit, volts)
        self._hold_current(s, compliance)
        s.command(f"VOLT {compliance:.3f}")
        s.setpoint = s.current("CURR?")
        s.found = f"at {s.setpoint:.4f} A as connecting the three read it"
        s.enabled = s.query("OUTP?", _parse_output)
        if not s.enabled:
            s.found = "its output off, as connecting the three left it"

    def _hold_current(self, s: _Supply, compliance: float) -> None:
        """A supply found driving current below its setpoint, held there by a voltage limit
        lower than `compliance`: its setpoint is brought to the current that flows before the
        limit is raised, which would otherwise let the current rise to the setpoint at once
        (at `smm-daq safe`'s connect too, before any ramp-down)."""
        if not s.query("OUTP?", _parse_output):
            return
        bound = CURRENT_READ_MARGIN * s.rating[0]
        limit = s.query("VOLT?", lambda r: parse_float(r, what="voltage in V",
                                                       within=(-bound, bound)))
        if limit < compliance:
            s.set_current(s.measured())

    def _leave_voltage_mode(self, s: _Supply) -> None:
        """A supply found in voltage mode with its output on: its voltage ramped to 0 V within
        the ramp rate, then its output switched off, before the mode changes. The current-mode
        setpoint is a setting apart from voltage mode's current limit (so the emulator has it),
        so switching the mode with the output on would step the current at once to whatever
        setpoint the supply's last use in current mode left."""
        if s.query("FUNC:MODE?", _parse_mode) != "VOLT" or not s.query("OUTP?", _parse_output):
            return
        bound = CURRENT_READ_MARGIN * s.rating[0]
        volts = s.query("VOLT?", lambda r: parse_float(r, what="voltage in V",
                                                       within=(-bound, bound)))
        amps = s.measured()
        s.found = (f"in voltage mode at {volts:.4f} V, {amps:.4f} A, as connecting the three "
                   "read it")
        duration = abs(amps) / self.max_ramp_rate
        for f in ramp_fractions(self.clock, duration, self.ramp_step, lambda: s.link.failures):
            s.found = (f"in voltage mode, ramped from {volts:.4f} V ({amps:.4f} A) to "
                       f"{volts * (1 - f):.4f} V as connecting the three left it, its last "
                       "step sent")
            s.command(f"VOLT {volts * (1 - f):.6f}")
        s.switch(False)
        s.found = "its output off: connecting the three ramped it to 0 V and switched it off"

    def _setpoints(self) -> np.ndarray:
        return np.array([s.setpoint if s.enabled else 0.0 for s in self._supplies])

    # -- field <-> currents ------------------------------------------------------------------

    def currents_for(self, b: np.ndarray) -> np.ndarray:
        """Currents (A) making the total field `b` (T) at the sample; RangeError if not allowed."""
        b = np.asarray(b, dtype=float)
        if b.shape != (3,) or not np.all(np.isfinite(b)):
            raise RangeError(f"field must be 3 finite values in T, got {b!r}", instrument=self.name)
        if np.linalg.norm(b) > self.max_field * (1 + 1e-9):
            raise RangeError(
                f"field {np.round(b * 1e6, 4).tolist()} µT has magnitude "
                f"{np.linalg.norm(b) * 1e6:.4g} µT, beyond the limit {self.max_field * 1e6:.4g} µT",
                instrument=self.name,
            )
        currents = np.linalg.solve(self.calibration, b - self.ambient)
        over = [
            f"coil {AXES[k]} {currents[k]:.4g} A"
            for k in range(3)
            if abs(currents[k]) > self.max_current
        ]
        if over:
            raise RangeError(
                f"field {np.round(b * 1e6, 4).tolist()} µT needs {', '.join(over)}, beyond "
                f"the limit ±{self.max_current:g} A",
                instrument=self.name,
            )
        return currents

    def set_field(self, b: np.ndarray, *, ramp: bool = True,
                  stop: Callable[[], bool] | None = None) -> None:
        target = self.currents_for(b)
        for s in self._supplies:
            s.check_output()
        for s in self._supplies:
            s.enable()
        self._ramp(target, rate=self.max_ramp_rate if ramp else math.inf, stop=stop)
        problems = self._settle(target)
        if problems:
            raise InstrumentError(_first_per_coil(problems), instrument=self.name)
        self._field_setpoint = np.asarray(b, dtype=float).copy()

    def _ramp(self, target: np.ndarray, *, rate: float,
              stop: Callable[[], bool] | None = None) -> None:
        """Step every enabled supply to `target` within `rate` A/s (a field set); the first
        failure raises. A step whose check lost its reply is sent once more and checked. Each
        step is at most what `rate` allows in one step's interval and begins that interval
        or more after the one before (`ramp_pace.capped_fractions`): a slow link makes a field
        set longer, never steeper than the profile's ramp limit.
        `stop()` true before a step: `RampStopped`, the supplies left at the last step sent
        (their setpoints), from which a ramp-down starts."""
        active = [s for s in self._supplies if s.enabled]
        start = np.array([s.setpoint for s in self._supplies])
        span = float(np.max(np.abs(target - start)))
        duration = span / rate if math.isfinite(rate) else 0.0
        done = 0.0
        fractions = capped_fractions(self.clock, duration, self.ramp_step)
        for j, f in enumerate(fractions, start=1):
            if stop is not None and stop():
                raise RampStopped(
                    f"{self.name}: the ramp was stopped at step {j - 1} ({done:.0%} of the "
                    f"way), the currents at {_amps(self._setpoints())} on their way to "
                    f"{_amps(target)}")
            for k, s in enumerate(self._supplies):
                if s in active:
                    s.check_output()
                    s.set_current(start[k] + (target[k] - start[k]) * f, resend=True)
            done = f

    def _ramp_down(self, target: np.ndarray) -> tuple[list[str], dict[_Supply, str]]:
        """Step every enabled supply to `target` within the ramp limit (the safety paths).

        Lost replies are gone on past within bounds (`RampLosses`: a ramp-down stopped at a
        lost reply would leave the coil energised, one that waits on every lost reply might
        not end in time); a supply that fails, or is given up, is left out of the remaining
        steps while the others go on, and is switched off where it stands
        (`_switch_off_given_up`), whatever the safe state: its failure says so. Returns the
        failures and the supplies left out, each with what was done to it (switched off,
        or not).
        """
        losses = {s.axis: RampLosses(s) for s in self._supplies if s.enabled}
        start = np.array([s.setpoint for s in self._supplies])
        duration = float(np.max(np.abs(target - start))) / self.max_ramp_rate
        fractions = ramp_fractions(self.clock, duration, self.ramp_step,
                                   lambda: sum(s.link.failures for s in self._supplies))
        problems: list[str] = []
        left_out: dict[_Supply, str] = {}
        # then None: the last step once more, where its check lost its reply (where the ramp
        # ends is known)
        for f in itertools.chain(fractions, [None]):  # each fraction as its step is due
            for k, s in enumerate(self._supplies):
                lost = losses.get(s.axis)
                if lost is None or (f is None and not lost.unconfirmed):
                    continue
                try:
                    s.check_output()
                    lost.check()
                    lost.step(start[k] + (target[k] - start[k]) * (1.0 if f is None else f))
                except InstrumentError as exc:
                    left_out[s] = _switch_off_given_up(s, str(exc))
                    problems.append(f"{exc}; {left_out[s]}")
                    del losses[s.axis]
            if not losses:  # every supply left out: no further step to wait for
                break
        self.replies_lost = [f"coil {axis}: {lost.said().removeprefix('; ')}"
                             for axis, lost in losses.items() if lost.lost]
        return problems, left_out

    def _settle(self, target: np.ndarray, *, tolerant: bool = False,
                skip: Collection[_Supply] = ()) -> list[str]:
        """Wait until every enabled supply measures its setpoint; else name the ones that don't.
        `skip`: supplies a ramp-down gave up (their failure is said; asking again would cost
        their lost replies' timeouts once more)."""
        deadline = self.clock.now() + self.settle_timeout
        while True:
            problems = []
            for k, s in enumerate(self._supplies):
                if not s.enabled or s in skip:
                    continue
                try:
                    s.check_output()
                    measured = s.measured()
                except InstrumentError as exc:
                    if not tolerant:
                        raise
                    problems.append(str(exc))
                    continue
                if abs(measured - target[k]) > self.current_tolerance:
                    problems.append(
                        f"coil {s.axis} measures {measured:.5g} A, set to {target[k]:.5g} A "
                        "(compliance limit or open circuit?)"
                    )
            if not problems or self.clock.now() >= deadline:
                return problems
            if loss_budget.past_deadline():  # nothing but a switch-off is sent any more
                return problems
            self.clock.sleep(0.05)

    # -- FieldSource ---------------------------------------------------------------------------

    def field_setpoint(self) -> np.ndarray:
        return self._field_setpoint.copy()

    def currents(self) -> np.ndarray:
        return np.array([s.measured() for s in self._supplies])

    def field(self) -> np.ndarray:
        return self.calibration @ self.currents() + self.ambient

    def limits(self) -> dict[str, float]:
        return {
            "max_field_T": self.max_field,
            "max_current_A": self.max_current,
            "max_ramp_A_per_s": self.max_ramp_rate,
        }

    def zero(self) -> None:
        """Ramp to the safe state: the ambient field nulled ("zero") or outputs off ("off")."""
        if self.safe_state == "off":
            self.output_off()
            return
        problems: list[str] = []
        target = np.linalg.solve(self.calibration, -self.ambient)
        if np.any(np.abs(target) > self.max_current):
            problems.append(
                f"nulling the ambient field needs {np.round(target, 4).tolist()} A, beyond "
                f"±{self.max_current:g} A: ramped to 0 A instead"
            )
            target = np.zeros(3)
        not_enabled: dict[_Supply, int] = {}  # each supply whose enable failed: its problem
        for s in self._supplies:
            try:
                s.enable()
            except InstrumentError as exc:
                # past the deadline, one on is switched off by the ramp-down, which says so;
                # one whose switch-on was sent is not known on, so it is switched off below
                if isinstance(exc, DeadlineReached) and not s.maybe_on:
                    continue
                not_enabled[s] = len(problems)
                problems.append(str(exc))
        failed, left_out = self._ramp_down(target)
        for s, k in not_enabled.items():  # its first problem, kept alone: what became of it
            if s in left_out:
                problems[k] += f"; {left_out[s]}"
            elif s.enabled:
                problems[k] += "; not switched off: its output on, ramped with the others"
            elif s.maybe_on:  # left out of the ramp, its output perhaps on: switched off
                problems[k] += "; " + _switch_off_given_up(
                    s, problems[k], ramped=False,
                    found=f"at {s.setpoint:.4f} A, its switch-on sent but not confirmed")
        problems += failed
        problems += self._settle(target, tolerant=True, skip=left_out)
        self._field_setpoint = np.zeros(3)
        if problems:
            raise InstrumentError(_first_per_coil(problems), instrument=self.name)

    def output_off(self) -> None:
        """Ramp every supply to 0 A, then switch every output off and read its current back
        (each tried, whatever fails): a supply that reads a current with its output off is
        not taken for off."""
        problems, left_out = self._ramp_down(np.zeros(3))
        for s in self._supplies:
            if s in left_out:  # switched off as it was given up, and said
                continue
            try:
                s.switch(False, resend=True)
                _read_off(s, self.current_tolerance)
            except InstrumentError as exc:
                problems.append(str(exc))
        self._field_setpoint = self.ambient.copy()
        if problems:
            raise InstrumentError(_first_per_coil(problems), instrument=self.name)

    @property
    def errors_at_connect(self) -> list[str]:
        """What each supply's error queue held at connect ('coil <axis>: <code> <message>')."""
        return [f"{s.name}: {error}" for s in self._supplies for error in s.errors_at_connect]

    def identify(self) -> Identity:
        ids = [s.query("*IDN?", parse_kepco_idn) for s in self._supplies]
        return Identity(
            vendor=ids[0].vendor,
            model=" / ".join(i.model for i in ids),
            serial=" / ".join(i.serial for i in ids),
            firmware=" / ".join(i.firmware for i in ids),
        )

    def snapshot(self) -> dict[str, object]:
        currents = self.currents()
        return {
            "identity": str(self.identify()),
            "outputs_on": [bool(s.query("OUTP?", _parse_output)) for s in self._supplies],
            "current_setpoints_A": [s.setpoint for s in self._supplies],
            "currents_A": currents.tolist(),
            "field_T": (self.calibration @ currents + self.ambient).tolist(),
            "field_setpoint_T": self._field_setpoint.tolist(),
            "calibration_T_per_A": self.calibration.tolist(),
            "ambient_field_T": self.ambient.tolist(),
            "safe_state": self.safe_state,
            "errors_at_connect": "; ".join(self.errors_at_connect) or "none",
            "rated_voltages_V": [s.rating[0] for s in self._supplies],
            "rated_currents_A": [s.rating[1] for s in self._supplies],
        }

    def close(self) -> None:
        for s in self._supplies:
            s.link.close()


def _hardware_transport(address: str, link: LinkSettings) -> Transport:
    from drivers.transports import open_transport

    return open_transport(address, link)


def _read_off(supply: _Supply, tolerance: float) -> float:
    """The current (A) a supply reads just after its output was switched off; InstrumentError
    beyond `tolerance` of 0 A (a current still flowing, or a read-back that cannot be trusted:
    either way the coil is not known to be off)."""
    amps = supply.measured()
    if abs(amps) > tolerance:
        raise InstrumentError(f"reads {amps:.4f} A with its output switched off: not confirmed "
                              "at 0 A (a current still flowing, or a wrong read-back)",
                              instrument=supply.name)
    return amps


def _switch_off_given_up(supply: _Supply, said: str, *, ramped: bool = True,
                         found: str = "") -> str:
    """Switch off a supply whose ramp-down was given up, where it stands; what was done, for
    its failure's message.

    The same for each supply still energised when the make-safe path's deadline is reached
    (`loss_budget.DeadlineReached`): only its switch-off and the check of it are still sent.

    Off, not left on, for coils around an irreplaceable sample: a coil left energised holds
    its field on the sample, unwatched, for as long as nobody comes (the sample acquires a
    viscous remanence over hours), from a supply that no longer answers reliably. Switched
    off, the field at the sample steps once by that coil's share (tens of µT for a
    microscope's coils: far below the coercivity of the grains, the same order as the
    ambient field the sample sits in whenever the coils are off), and the BOP's off state
    gives the coil's stored energy a path to be absorbed, so neither coil nor supply is
    harmed (the Kepco BOP manual's warnings on inductive loads; its off state keeps a small
    offset, which a read-back within `CURRENT_TOLERANCE_A` allows). Within the make-safe
    path's budget the switch-off is checked (and sent once more where its check is lost); a
    supply that has spent its budget is sent it once, unchecked
    (`Link.write(last_word=True)`). `said`: the failure already said (not said again);
    `ramped`: its ramp-down began (else the current it was switched off at is unknown, or
    what connecting the three last knew of it, `found`).
    Past the make-safe path's deadline, that is said: '(deadline reached)'."""
    late = loss_budget.past_deadline()
    if ramped:
        at = f"at {supply.setpoint:.4f} A ({'deadline reached' if late else 'its last step sent'})"
    else:
        at = (f"where it was found ({found or 'its current unknown'}"
              f"{'; deadline reached' if late else ''})")
    try:
        supply.switch(False, resend=True)
        return f"switched off {at}, the switch-off confirmed"
    except GivenUp:  # the budget spent: said with the failure
        why = ""
    except InstrumentError as exc:
        why = str(exc).removeprefix(f"{supply.name}: ")
        why = "" if why in said else f": {why}"
    try:
        with loss_budget.switching_off():
            supply.link.write("OUTP OFF", last_word=True)
    except InstrumentError:
        return f"NOT switched off {at}{why}; the coil may still be energised"
    supply.sent_off = True
    return (f"switch-off sent {at}, not confirmed{why}; the coil may still be energised if "
            "it did not arrive")


def found_at_connect(error: BaseException | None) -> dict[str, str]:
    """What a failed connect of the three supplies (`error`) last knew of each one's output,
    per supply name ('coil x': 'at 2.0000 A as connecting the three read it'); {} if
    nothing."""
    return dict(getattr(error, "found_at_connect", {}))


def _amps(currents: np.ndarray) -> str:
    """Coil currents as said to a user: '(0.1000, -0.2000, 0.0000) A'."""
    return "(" + ", ".join(f"{a:.4f}" for a in currents) + ") A"


def _held_from_before(supply: _Supply) -> str:
    """What the supply's error queue held when `ramp_down_each` reached it, if anything."""
    found = supply.errors_at_connect
    return f"; its errors from before: {'; '.join(found)}" if found else ""


def _first_per_coil(problems: list[str]) -> str:
    """The problems joined, only the first of each coil kept: a supply that is gone fails
    its enable, every ramp step tried and the read-back, and the first says it best."""
    seen: set[str] = set()
    kept = []
    for problem in problems:
        coil = problem.split(":", 1)[0] if problem.startswith("coil ") else problem
        if coil not in seen:
            seen.add(coil)
            kept.append(problem)
    return "; ".join(kept)
