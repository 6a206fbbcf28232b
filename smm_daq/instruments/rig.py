"""The rig factory: the instruments a profile names, connected and configured.

Implementation names in a profile (`lockin.implementation = "sr830"`) are looked up in the
"smm_daq.drivers" entry-point group, so the core never names a driver module. With
`rig.simulated = true`, the transports come from the "smm_daq.simulators" entry point `world`
(one simulated world shared by all instruments) on a virtual clock; otherwise drivers open
real links themselves, on the system clock, after locking every instrument address for this
process (`smm_daq.instruments.rig_lock`): a second process on the same rig is refused before
it sends anything.

Connecting goes coils first, then the stage: whatever fails after them finds them connected,
and they are made safe (a killed program may have left the field on) before they are closed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from smm_daq import interrupts
from smm_daq.clock import Clock, SystemClock, VirtualClock
from smm_daq.errors import (
    ConnectStopped,
    InputError,
    InstrumentError,
    InstrumentLost,
    SmmError,
    StageUnreferenced,
    StillDropping,
)
from smm_daq.instruments import connect_stop, loss_budget, ramp_pieces
from smm_daq.instruments.interfaces import (
    FieldSource,
    Instrument,
    LockIn,
    Magnetometer,
    Stage,
    StoppedAlone,
)
from smm_daq.instruments.profile import Profile
from smm_daq.instruments.ramp_stop import RampStop
from smm_daq.instruments.safe_bound import (
    real_time_bound,
    safe_deadline,
    stage_loss_budget,
    stage_share_s,
    supply_loss_budget,
)
from smm_daq.instruments.safe_bound import (
    safe_time_bound as safe_time_bound,  # imported from here by the rig's callers
)
from smm_daq.plugins import registered
from smm_daq.shell_words import command_line

if TYPE_CHECKING:
    from smm_daq.instruments.rig_lock import RigLock

DRIVER_GROUP = "smm_daq.drivers"
SIMULATOR_GROUP = "smm_daq.simulators"
SIMULATOR_NAME = "world"


# a connect stopped by the operator where no driver's move took the stop (`open_rig`)
CONNECT_STOPPED = ("connecting was stopped by the operator; the rig is not opened, and is made "
                   "safe (the stage stopped, whatever moves it) and closed")


def safe_command(profile: Profile) -> str:
    """The command that makes the rig of `profile` safe: `smm-daq safe` on its file, or on the
    scan it is stored with (a resume's: the file it was read from may be gone or changed)."""
    where = (["--from-file", profile.stored_in[0], "--entry", profile.stored_in[1]]
             if profile.stored_in is not None else ["--profile", str(profile.path)])
    return command_line(["smm-daq", "safe", *where])


def safe_command_hint(profile: Profile) -> str:
    """What to run when a program could not make the rig safe (or was killed before it did)."""
    return (f"Make it safe with `{safe_command(profile)}` (it ramps every coil to "
            "its safe state and stops the stage), or by hand at the supplies")


def safety_statement(profile: Profile, problems: list[str]) -> str:
    """What a command ends by saying: the rig is safe, or what could not be done and what to
    run then."""
    if problems:
        return f"the rig may NOT be safe: {'; '.join(problems)}. {safe_command_hint(profile)}"
    return "the rig is safe (coils at their safe state, stage stopped)"


def looked_at_statement(profile: Profile, problems: list[str]) -> str:
    """`safety_statement` for a command that moves nothing and sets no field (`check`): what
    it could not connect it left as it found it, so no danger of its making; one left by an
    earlier program is still named, with what to run. All made safe: as `safety_statement`."""
    if problems:
        return (f"nothing was moved or energised by this command; not checked: "
                f"{'; '.join(problems)}. If an earlier program left the field on or the stage "
                f"moving: {safe_command_hint(profile)}")
    return safety_statement(profile, problems)


def stage_left_unreferenced(profile: Profile) -> Profile:
    """`profile` for a command that never moves the stage (`check`, `calibrate-coils`): the
    stage is connected (to be read, and stopped when the rig is made safe) but never
    referenced, even with `stage.reference_on_connect = true`, since a reference move drives
    every axis, z included, to its switch; unreferenced axes are left so and named
    (`Stage.unreferenced_axes`), not refused."""
    return replace(profile, stage=replace(profile.stage, reference_on_connect=False,
                                          refuse_unreferenced=False))


def rig_addresses(profile: Profile) -> list[str]:
    """Every instrument address of the profile, in the order they are connected."""
    addresses = [*profile.coils.addresses, profile.stage.link.address,
                 profile.lockin.link.address]
    if profile.fluxgate is not None:
        addresses.append(profile.fluxgate.link.address)
    return addresses


def _keyed_addresses(profile: Profile) -> list[tuple[str, str]]:
    """(profile key, address) of every instrument, as `rig_addresses` orders them."""
    keys = [f"coils.addresses[{k}]" for k in range(3)] + ["stage.address", "lockin.address"]
    if profile.fluxgate is not None:
        keys.append("fluxgate.address")
    return list(zip(keys, rig_addresses(profile), strict=True))


def _check_one_instrument_per_address(profile: Profile) -> None:
    """InputError when two of the profile's instruments have one address, however spelled
    ('GPIB0::1::INSTR' and 'gpib::1'): commands for both would reach one instrument (one
    supply driven as two coils), and the rig lock takes that address once."""
    from smm_daq.instruments.rig_lock import address_key

    seen: dict[str, tuple[str, str]] = {}
    for key, address in _keyed_addresses(profile):
        first = seen.setdefault(address_key(address), (key, address))
        if first[0] != key:
            raise InputError(
                f"key '{key}' is {address!r}, the instrument of '{first[0]}' ({first[1]!r}); "
                "expected each instrument at an address of its own",
                source=str(profile.path),
            )


# Profile section -> what the instrument in it must be.
_ROLES: dict[str, type[Instrument]] = {
    "lockin": LockIn,
    "stage": Stage,
    "coils": FieldSource,
    "fluxgate": Magnetometer,
}


@dataclass
class Rig:
    """The connected instruments of one profile, and (simulated) the world behind them."""

    profile: Profile
    clock: Clock
    stage: Stage
    coils: FieldSource
    lockin: LockIn
    fluxgate: Magnetometer | None
    world: Any = None  # simulators.world.World when simulated
    backend: Any = None  # the simulator backend (its `faults` per address) when simulated
    lock: RigLock | None = field(default=None, repr=False)  # the addresses', when not simulated
    _safing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def instruments(self) -> dict[str, Instrument]:
        out: dict[str, Instrument] = {
            "lockin": self.lockin,
            "stage": self.stage,
            "coils": self.coils,
        }
        if self.fluxgate is not None:
            out["fluxgate"] = self.fluxgate
        return out

    def make_safe(self) -> list[str]:
        """Stop the stage, bring the field to the profile's safe state; every step is tried,
        until the path's deadline (`_making_safe`), the stage within its share of it
        (`safe_bound.stage_share_s`).

        Returns what could not be done (empty when the rig is safe). One thread at a time;
        signals meanwhile are acknowledged and never cut the ramp-down short
        (`smm_daq.interrupts`).
        """
        with self._safing, _making_safe(self.profile, self.clock):
            return _make_safe(self.profile, self.stage, self.coils)

    def begin_measurement(self, name: str, run: int | None) -> tuple[int, int] | None:
        """A measurement (entry `name`, its run: 0 the start, k the k-th resume) begins: a
        simulated rig draws its noise afresh for it and returns where from (its noise base
        and the measurement's number on the connection); a real one has nothing to do."""
        if self.backend is None:
            return None
        base, measurement = self.backend.begin_measurement(name, run)
        return int(base), int(measurement)

    def zero_coils(self) -> None:
        """Ramp the coils to the profile's safe state (`FieldSource.zero`) by the bounded
        make-safe path (`zero_within_bound`), one at a time with `make_safe`; the stage left
        as it is (a field zeroed by hand is no reason to stop a move). Raises what the
        ramp-down could not do."""
        with self._safing:
            zero_within_bound(self.profile, self.clock, self.coils)

    @contextlib.contextmanager
    def safe_from(self, stop: RampStop) -> Iterator[None]:
        """Around a field's ramp that `stop` ends: once `stop` is set, the exchanges inside
        (the rest of the ramp's step under way, then `make_safe` from there) are one bounded
        make-safe path, its deadline counted from the stop's time, its loss budget shared
        (`loss_budget.making_safe_from`); before the stop, nothing is limited. So the ramp
        stopped and made safe ends within `safe_time_bound` of the stop, however slow or lossy
        the links: what a window's close waits for a call in flight."""
        with safe_from(self.profile, self.clock, stop):
            yield

    def snapshot(self) -> dict[str, object]:
        """Every instrument's snapshot; one that fails gives {'error': message}. One refused
        unsent while its link drops the rest of a reply cut short raises `StillDropping`:
        it has not failed, and is asked again once that drop has ended."""
        out: dict[str, object] = {}
        for name, instrument in self.instruments().items():
            try:
                out[name] = instrument.snapshot()
            except StillDropping:
                raise
            except SmmError as exc:
                out[name] = {"error": str(exc)}
        return out

    def close(self) -> None:
        """Close every instrument, then let other processes have the rig."""
        try:
            for instrument in self.instruments().values():
                with contextlib.suppress(Exception):
                    instrument.close()
        finally:
            if self.lock is not None:
                self.lock.release()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def safe_from(profile: Profile, clock: Clock, stop: RampStop) -> Iterator[None]:
    """`Rig.safe_from` for the rig of `profile` on `clock`: for a caller that holds the rig's
    parts rather than a `Rig`. `stop` must keep its time on `clock` (a virtual clock's time
    compared with the system's would put the deadline anywhere)."""
    if stop.clock is not clock:
        raise ValueError(f"the stop keeps its time on {stop.clock!r}, not on the rig's clock "
                         f"{clock!r}: expected a RampStop made with the rig's clock")
    with loss_budget.making_safe_from(
            lambda: stop.at, supply_loss_budget(profile), stage=stage_loss_budget(profile),
            clock=clock, deadline_s=safe_deadline(profile)):
        yield


def zero_within_bound(profile: Profile, clock: Clock, coils: FieldSource) -> None:
    """Ramp `coils` to the safe state of `profile` (`FieldSource.zero`, or `output_off` where
    it is "off", as `Rig.make_safe`) by the bounded make-safe path (`_making_safe`: its
    deadline on `clock` and its loss budget): a slow or dead supply cannot hold the caller
    past `safe_time_bound`, as each supply still energised at the deadline is switched off
    where it stands. Raises what the ramp-down could not do.

    The ramp-down is handed to the driver whole, never in pieces (`ramp_pieces`): it is
    the ramp to the safe state, which no stop ends (signals meanwhile are only acknowledged),
    so there is no stop for a plug-in driver to ignore. What a plug-in driver's field does
    once ramped down (a supply's own ramp going on) is read back, as after `make_safe`
    (`ramp_pieces.off_safe_state`), and raised where it is off the safe state."""
    with _making_safe(profile, clock):
        if profile.coils.safe_state == "off":
            coils.output_off()
        else:
            coils.zero()
        problems = ramp_pieces.off_safe_state(profile, coils)
    if problems:
        raise InstrumentError("; ".join(problems), instrument=coils.name)


def driver_class(profile: Profile, role: str, name: str) -> type[Instrument]:
    """The class registered under `name`, checked to be the right kind for `role`."""
    found = registered(DRIVER_GROUP)
    if name not in found:
        raise InputError(f"key '{role}.implementation' is {name!r}; expected "
                         f"{_drivers_said(role)}", source=str(profile.path))
    try:
        cls = found[name].load()
    except Exception as e:  # a plug-in's own module: any error of its import is its own
        raise InputError(
            f"key '{role}.implementation' is {name!r}, whose driver "
            f"{found[name].value!r} could not be loaded ({type(e).__name__}: {e}); expected "
            "a driver its package can import (is the package installed in this environment, "
            "its dependencies too?)",
            source=str(profile.path),
        ) from e
    expected = _ROLES[role]
    if not (isinstance(cls, type) and issubclass(cls, expected)):
        raise InputError(
            f"key '{role}.implementation' is {name!r}, which is not a {expected.__name__} "
            f"(the driver of another instrument); expected {_drivers_said(role)}",
            source=str(profile.path),
        )
    return cls


def _drivers_said(role: str) -> str:
    """The installed drivers of `role`'s kind, as a refusal offers them: those whose class
    loads and is of that kind (a plug-in that cannot be loaded, or drives another instrument,
    left out). Loaded only for a refusal: each driver's import is its own package's."""
    expected = _ROLES[role]
    names = []
    for name, point in sorted(registered(DRIVER_GROUP).items()):
        try:
            cls = point.load()
        except Exception:  # a plug-in's own module: refused by name where a profile names it
            continue
        if isinstance(cls, type) and issubclass(cls, expected):
            names.append(repr(name))
    if not names:
        return f"the name of an installed {expected.__name__} driver (none is installed)"
    return f"the name of a {expected.__name__} driver: one of {', '.join(names)}"


def simulator_class(profile: Profile) -> Any:
    """The simulator backend class (entry point 'world'), for a simulated profile."""
    if not profile.simulated:
        raise InputError(
            "the profile is not simulated (rig.simulated = false)", source=str(profile.path)
        )
    found = registered(SIMULATOR_GROUP)
    if SIMULATOR_NAME not in found:
        raise InputError(
            f"the profile is simulated, but no simulator is installed ('{SIMULATOR_GROUP}'"
            f" entry point '{SIMULATOR_NAME}')",
            source=str(profile.path),
        )
    return found[SIMULATOR_NAME].load()


def open_rig(
    profile: Profile,
    *,
    clock: Clock | None = None,
    time_scale: float | None = None,
    world_options: dict[str, Any] | None = None,
    statement: Callable[[Profile, list[str]], str] = safety_statement,
    stop: connect_stop.ConnectStop | None = None,
) -> Rig:
    """Connect to and configure every instrument of `profile`.

    Simulated: one world on `clock` (default a VirtualClock running `time_scale` simulated
    seconds per real second, 0 = as fast as possible). Not simulated: `RigInUse` (an
    InputError) before anything is opened when another process holds any of the addresses.
    An instrument that does not answer raises `InstrumentError` naming it. Whatever fails once
    connecting began, the coils and stage already connected are made safe and every instrument
    closed; the error then carries a note (`add_note`) saying whether the rig is safe, as
    `statement` words it (`looked_at_statement` for a command that moves nothing). `stop`,
    requested from another thread while connecting, stops a move the connect started (the
    stage's reference move) and fails the connect with `ConnectStopped`; requested while
    nothing the connect started moves (a stage that needs no reference move, or before or
    after it), the connect fails alike once every instrument has connected, the rig made safe
    as after any failure: a move an earlier program left running is stopped too.
    """
    sections = {"coils": profile.coils, "stage": profile.stage, "lockin": profile.lockin}
    if profile.fluxgate is not None:
        sections["fluxgate"] = profile.fluxgate
    classes = {
        role: driver_class(profile, role, s.link.implementation) for role, s in sections.items()
    }
    backend = None
    lock = None
    if profile.simulated:
        clock = clock or VirtualClock(time_scale=time_scale or 0.0)
        backend = simulator_class(profile)(profile, clock, world_options)
        open_transport = backend.open_transport
    else:
        from smm_daq.instruments.rig_lock import RigLock  # filelock only for a real rig

        clock = clock or SystemClock()
        open_transport = None
        _check_one_instrument_per_address(profile)
        lock = RigLock.acquire(rig_addresses(profile))
    interrupts.set_recovery("" if profile.simulated else safe_command(profile))
    opened: dict[str, Any] = {}
    try:
        with connect_stop.bound(stop):
            for role, cls in classes.items():
                opened[role] = _open_instrument(profile, role, cls, sections[role], clock,
                                                open_transport)
        if stop is not None and stop.requested:  # a stop no driver's move took: the rig's
            raise ConnectStopped(CONNECT_STOPPED)
    except BaseException as exc:
        try:
            # a stage whose connect was stopped (`ConnectStopped`) has stopped its own move
            exc.add_note(statement(profile, _safe_after_failed_connect(
                profile, clock, opened, stage_stopped=isinstance(exc, ConnectStopped))))
        finally:
            for instrument in opened.values():
                with contextlib.suppress(Exception):
                    instrument.close()
            if lock is not None:
                lock.release()
        raise
    return Rig(
        profile=profile,
        clock=clock,
        stage=opened["stage"],
        coils=opened["coils"],
        lockin=opened["lockin"],
        fluxgate=opened.get("fluxgate"),
        world=backend.world if backend is not None else None,
        backend=backend,
        lock=lock,
    )


def _open_instrument(profile: Profile, role: str, cls: type[Instrument], settings: Any,
                     clock: Clock, open_transport: Any) -> Any:
    try:
        return cls.from_profile(  # type: ignore[attr-defined]
            settings, clock=clock, open_transport=open_transport
        )
    except InputError as exc:  # the profile asks more than the instrument can do
        if exc.source is not None:
            raise
        raise _noted(InputError(str(exc), source=str(profile.path)), exc) from exc
    except InstrumentError as exc:
        # the coils' supplies each have an address: all named (the error says which failed)
        where = ", ".join(getattr(settings, "addresses", ())) or settings.link.address
        error = type(exc)(
            f"{role} ({settings.link.implementation} at {where}) does not answer: {exc}"
        )
        error.instrument = role
        raise _noted(error, exc) from exc


def _noted(error: SmmError, cause: BaseException) -> SmmError:
    """`error` with the notes of the `cause` it stands for (what a connect found before it
    failed, such as the errors the coil supplies held from before)."""
    for note in getattr(cause, "__notes__", ()):
        error.add_note(note)
    return error


def _safe_after_failed_connect(profile: Profile, clock: Clock, opened: dict[str, Any], *,
                               stage_stopped: bool = False) -> list[str]:
    """Make safe the coils and stage that connected before connecting failed; what could not
    be done. `stage_stopped`: the stage, not connected, stopped itself as its connect failed."""
    with _making_safe(profile, clock):
        return _make_safe(profile, opened.get("stage"), opened.get("coils"),
                          stage_stopped=stage_stopped)


@contextlib.contextmanager
def _making_safe(profile: Profile, clock: Clock) -> Iterator[None]:
    """The rig of `profile` being made safe inside: signals only acknowledged, each
    instrument's lost replies limited, and the path's deadline on `clock`
    (`safe_bound.safe_deadline`), past which only the supplies' switch-offs are sent. A
    signal meanwhile is told the time left in real seconds: a simulated rig run slower than
    real time takes longer than the bound in its clock's seconds (`real_time_bound`)."""
    real_s = real_time_bound(profile, getattr(clock, "time_scale", 0.0))
    with interrupts.making_safe(real_s), \
            loss_budget.making_safe(supply_loss_budget(profile),
                                     stage=stage_loss_budget(profile), clock=clock,
                                     deadline_s=safe_deadline(profile)):
        yield


def _make_safe(profile: Profile, stage: Stage | None, coils: FieldSource | None, *,
               stage_stopped: bool = False) -> list[str]:
    """Stop the stage, bring the field to the profile's safe state, each tried; what could
    not be done (None: that instrument is not connected, and not stopped unless
    `stage_stopped`)."""
    problems = []
    if stage is None:
        if not stage_stopped:
            where = f"{profile.stage.link.implementation} at {profile.stage.link.address}"
            problems.append(f"stage ({where}) not connected, so not stopped")
    else:
        try:
            # a stage slow to answer, not losing replies, is not limited by its loss budget:
            # its share of the deadline leaves the coils the time of their ramps
            with loss_budget.stage_share(stage_share_s(profile, loss_budget.left_s())):
                stage.stop()
        except Exception as exc:
            problems.append(f"stage {_not_stopped(exc)}: {exc}")
    if coils is None:
        where = f"{profile.coils.link.implementation} at {', '.join(profile.coils.addresses)}"
        problems.append(f"coils ({where}) not connected, so not ramped to their safe state")
    else:
        try:
            if profile.coils.safe_state == "off":
                coils.output_off()
            else:
                coils.zero()
        except Exception as exc:
            problems.append(f"field not ramped down: {exc}")
        else:  # a plug-in driver's, read back (its stop may have been ignored)
            problems += ramp_pieces.off_safe_state(profile, coils)
    return problems


@dataclass(frozen=True)
class SafeState:
    """What `make_rig_safe` found and did for one instrument."""

    role: str  # "coils" or "stage"
    safe: bool
    state: str  # its final state, or why it could not be made safe


def make_rig_safe(profile: Profile, *, clock: Clock | None = None) -> list[SafeState]:
    """Connect to the coils and the stage of `profile` on their own (one that does not answer
    does not keep the other from being made safe), stop the stage, ramp the coils to the
    profile's safe state, and read back each one's final state (coils first in the list). The
    stage is stopped first, as `Rig.make_safe` does: a stop is one command, a ramp-down takes
    seconds in which a stage left moving would go on. The stage has its share of the path's
    deadline (`safe_bound.stage_share_s`): a stage slow to answer is cut short there (its
    stop sent, its position maybe not read), so that the coils keep the time of their ramps;
    the connected stage is closed only once they are made safe, and whatever the stage's part
    raises (a close that failed under its connect) is said of the stage, never keeping the
    coils from being made safe.

    For after a program that could not make the rig safe, or was killed (kill -9) before it
    did. Signals meanwhile are acknowledged, never cut the ramp-down short; its deadline
    does (`_making_safe`): each supply still energised then is switched off where it stands.
    """
    open_transport = None
    if profile.simulated:  # on the clock given, else one of its own (never the system's)
        clock = clock or VirtualClock()
        open_transport = simulator_class(profile)(profile, clock, None).open_transport
    clock = clock or SystemClock()
    with _making_safe(profile, clock), contextlib.ExitStack() as closes:
        try:
            with loss_budget.stage_share(stage_share_s(profile)):
                stage = _safe_stage(profile, clock, open_transport, closes)
        except Exception as exc:  # whatever failed there, the coils are still made safe
            where = f"{profile.stage.link.implementation} at {profile.stage.link.address}"
            stage = SafeState("stage", False, f"{where}: stopping it failed: "
                                              f"{type(exc).__name__}: {exc}")
        return [_safe_coils(profile, clock, open_transport), stage]


def _connect(profile: Profile, role: str, settings: Any, clock: Clock,
             open_transport: Any) -> Any:
    cls = driver_class(profile, role, settings.link.implementation)
    return cls.from_profile(settings, clock=clock, open_transport=open_transport)  # type: ignore[attr-defined]


def _safe_coils(profile: Profile, clock: Clock, open_transport: Any) -> SafeState:
    settings = profile.coils
    where = f"{settings.link.implementation} at {', '.join(settings.addresses)}"
    try:
        coils = _connect(profile, "coils", settings, clock, open_transport)
    except SmmError as exc:
        each = getattr(driver_class(profile, "coils", settings.link.implementation),
                       "ramp_down_each", None)
        if each is None:
            return SafeState("coils", False, f"{where} could not be reached: {exc}")
        states = each(settings, clock=clock, open_transport=open_transport, after=exc)
        notes = "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))
        return SafeState("coils", all(ok for _, ok, _ in states),
                         f"not reachable together ({exc}{notes}); each supply on its own: "
                         + "; ".join(f"{coil} {state}" for coil, _, state in states))
    try:
        problem = ""
        try:
            if settings.safe_state == "off":
                coils.output_off()
            else:
                coils.zero()
        except SmmError as exc:
            problem = f"not ramped to the safe state: {exc}; "
        try:
            currents = np.asarray(coils.currents(), dtype=float)
            field_ut = (settings.calibration @ currents + settings.ambient_field) * 1e6
            state = (f"currents {_numbers(currents, '.4f')} A, field "
                     f"{_numbers(field_ut, '.3g')} µT ({settings.safe_state})")
        except SmmError as exc:
            return SafeState("coils", False, f"{problem}currents not read back: {exc}"
                                             f"{_held(coils)}")
        return SafeState("coils", not problem, problem + state + _lost(coils) + _held(coils))
    finally:
        with contextlib.suppress(Exception):
            coils.close()


def _safe_stage(profile: Profile, clock: Clock, open_transport: Any,
                closes: contextlib.ExitStack) -> SafeState:
    """Stop the stage, before anything else is sent to it: connecting reads a dozen settings
    and sets servo and velocity (a velocity changes the speed of a move under way), in which
    time a stage left moving by a killed program goes on. The driver's `stop_alone` (where it
    has one) stops every axis on a link of its own, and says apart any error the controller
    held from before the stop (which the stop's own would have replaced unread); then the
    stage is connected to read where it stopped. Connecting never references it here (a
    reference move drives every axis to its switch, past the sample). A controller that does
    not answer (`InstrumentLost`) is not called on again: a second try would only spend the
    same timeouts again, before the coils are ramped down. The connected stage, or the first
    stop's link where the stage could not be reached (no connect follows), is closed by
    `closes`, once the coils are made safe: a close may send the stop once more and wait for
    a serial-over-LAN adapter to take it (`safe_bound.stage_close_stop_s`), or fail, and
    neither may cut the coils' time short. The first stop's link is closed before the
    connect otherwise (an adapter takes one connection at a time); a close that fails (an
    `OSError` from its port) is said after the stage's state, and the connect goes on."""
    settings = replace(profile.stage, reference_on_connect=False)
    where = f"{settings.link.implementation} at {settings.link.address}"
    cls = driver_class(profile, "stage", settings.link.implementation)
    alone = getattr(cls, "stop_alone", None)
    stopped: StoppedAlone | None = None  # what stop_alone did and found
    stop_failed: SmmError | None = None
    not_closed = ""  # how the first stop's link failed to close, if it did
    if alone is not None:
        with contextlib.ExitStack() as alone_closes:  # its link closed before the connect
            try:
                stopped = alone(settings, clock=clock, open_transport=open_transport,
                                closes=alone_closes)
            except InstrumentLost as exc:  # no connect follows: closed after the coils
                closes.callback(_closed_quietly, alone_closes.pop_all().close)
                return SafeState("stage", False, f"{where} could not be reached: {exc}")
            except SmmError as exc:  # the connect below stops it once more, or says why not
                stop_failed = exc
            not_closed = _close_said(alone_closes.pop_all())
    state = _connected_stop(settings, cls, clock, open_transport, closes, where, stopped,
                            stop_failed)
    return replace(state, state=state.state + not_closed) if not_closed else state


def _close_said(links: contextlib.ExitStack) -> str:
    """`links` closed now; a close that fails (an `OSError` from a port) said, after the
    stage's state, as what it is: the stop before it holds, and the connect goes on."""
    try:
        links.close()
    except Exception as exc:
        return f"; the first stop's link failed to close: {type(exc).__name__}: {exc}"
    return ""


def _connected_stop(settings: Any, cls: Any, clock: Clock, open_transport: Any,
                    closes: contextlib.ExitStack, where: str, stopped: StoppedAlone | None,
                    stop_failed: SmmError | None) -> SafeState:
    """`_safe_stage` after its first stop (`stopped`, or how it failed: `stop_failed`;
    neither where the driver has no `stop_alone`): the stage connected, stopped again and
    its position read. What the connected stop found unknown only because its #24 may have
    been acted on ahead of the `ERR?` before it (`found_overtaken`) is said only where no
    first stop read what the controller held (its `ERR?` and `STP` are parsed in order, and
    the connect's checks read every error since)."""
    try:
        stage = cls.from_profile(settings, clock=clock,  # type: ignore[attr-defined]
                                 open_transport=open_transport)
    except SmmError as exc:
        if stopped is not None:
            return SafeState("stage", True, f"{stopped.done}; position not read: "
                                            f"{_why_not_connected(exc)}{_found(stopped)}")
        if stop_failed is not None:  # what the stop says is all that is known of the motion
            return SafeState("stage", False, f"{stop_failed}; then {where} could not be "
                                             f"connected: {exc}")
        return SafeState("stage", False, f"{where} could not be reached: {exc}")
    closes.callback(_closed_quietly, stage.close)
    read_first = stopped is not None  # what the controller held was read before

    def found_by_stage() -> str:
        if read_first and getattr(stage, "found_overtaken", False):
            return ""
        return _found(stage)

    try:
        stage.stop()
    except loss_budget.DeadlineReached as exc:
        # the stage's share ended: the stop refused unsent, or sent and its check refused
        # (`stop_sent`); a first stop that went holds either way
        if stopped is None:
            return SafeState("stage", False, f"{_not_stopped(exc)}: {exc}{found_by_stage()}")
        return SafeState("stage", True, f"{stopped.done}; position not read: {exc}"
                                        f"{_found(stopped)}{found_by_stage()}")
    except SmmError as exc:
        return SafeState("stage", False, f"{_not_stopped(exc)}: {exc}{found_by_stage()}")
    first = f" (the first stop said: {stop_failed})" if stop_failed is not None else ""
    found = f"{_found(stopped)}{found_by_stage()}"
    try:
        position = np.asarray(stage.position(), dtype=float) * 1e6
    except SmmError as exc:  # the stop was confirmed: only where it stopped is unknown
        return SafeState("stage", True, f"stopped, position not read: {exc}{first}{found}")
    return SafeState("stage", True, f"stopped at {_numbers(position, '.1f')} µm{first}{found}")


def _closed_quietly(close: Callable[[], object]) -> None:
    """`close()` called; a close that fails says nothing (what was found is said)."""
    with contextlib.suppress(Exception):
        close()


def _not_stopped(exc: BaseException) -> str:
    """How a stage whose stop raised `exc` is said: not stopped; or, where its stop went out
    and only its check failed or was refused (`InstrumentError.stop_sent`), its stop not
    confirmed."""
    return "stop not confirmed" if getattr(exc, "stop_sent", False) else "not stopped"


def _held(coils: FieldSource) -> str:
    """What the supplies' error queues held when connected (where the driver reads them:
    `errors_at_connect`), such as a fault or a refused command a killed program left."""
    found = getattr(coils, "errors_at_connect", [])
    return f"; errors the supplies held from before: {'; '.join(found)}" if found else ""


def _lost(coils: FieldSource) -> str:
    """The replies the supplies lost while ramped down and went on past (where the driver
    says: `replies_lost`)."""
    lost = getattr(coils, "replies_lost", [])
    return f"; ramped down past lost replies: {'; '.join(lost)}" if lost else ""


def _found(stopped: StoppedAlone | Stage | None) -> str:
    """What a stop found the controller holding from before it (an error an earlier program
    or a refused command left pending), said apart from the stop's own outcome: the first
    stop's (`StoppedAlone.found`), or a connected stage's (`found_before_stop`, where its
    driver reads it)."""
    if isinstance(stopped, StoppedAlone):
        found = stopped.found
    else:
        found = getattr(stopped, "found_before_stop", "")
    return f"; {found}" if found else ""


def _why_not_connected(exc: SmmError) -> str:
    """Why `safe` could not connect the stage, in its own terms: the driver's advice on
    unreferenced axes is for a scan, and `safe` never references them."""
    if isinstance(exc, StageUnreferenced):
        return (f"axes {exc.axes} are not referenced (or were still driving to their "
                "reference switches); safe never references them (a reference move drives each "
                "axis to its switch): a scan's or the GUI's connect does, where "
                "stage.reference_on_connect = true")
    return f"connecting failed ({exc})"


def _numbers(values: np.ndarray, fmt: str) -> str:
    return "(" + ", ".join(format(float(v), fmt) for v in values) + ")"
