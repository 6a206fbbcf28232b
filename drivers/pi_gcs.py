"""Physik Instrumente stage over a GCS 2.0 controller (E-727, C-884, C-867, E-873, ...).

Units are never assumed: at connect the driver asks which commands the controller has
(`HLP?`), then each axis' unit (`PUN?`, or the unit parameter 0x07000601 with `SPA?`), and
scales every position and velocity by it (an E-727 works in µm, a motor controller in mm); an
axis in a unit it does not know (degrees, counts) is refused. Everything outside this module
is SI. The profile's `stage.axes` names the controller axes that move the sample along x, y
and z, and `axis_sign` maps each controller direction onto the sample frame: sample
coordinate = sign × controller position. The controller's axis names are asked for (`SAI?`).

Axes with incremental sensors report whether they are referenced (`FRF?`); an unreferenced axis
is referenced (`RON 1`, `FRF`) only when the profile says `reference_on_connect = true`,
because referencing drives each axis to its reference switch; with `refuse_unreferenced`
false (`smm-daq check`) connecting leaves them unreferenced and names them instead of
refusing. A reference move runs at the controller's reference velocity (parameter 0x50 of
PI's motor controllers), not at `VEL`: its timeout is reckoned from that. The controller's travel
(`TMN?`, `TMX?`) must hold the profile's `travel_um`: a profile allowing more is refused.

Protocol as used here: set commands (`SVO`, `MOV`, `VEL`, `STP`) have no reply, so every one is
followed by `ERR?`; a non-zero code raises `InstrumentError` with PI's code and its meaning.
A stop whose `ERR?` was not read (its check given up on the make-safe path) leaves its error
(10) pending: it is read before the next set command, lest that command's check take it for
its own. On the make-safe path the stop has `ERR?` written just ahead of it, its reply read
after it, so that an error pending before the stop is read, not replaced unread by the stop's
own (`PIGCSStage.stop`); but PI's single-character commands (#24, #5, #7) are processed on
arrival, ahead of a line command not yet parsed: after a #24 that `ERR?` may read the stop's
own 10, and what was pending before is then unknown, and said so. `STP`, a line command, is
parsed in order.
Queries for several axes answer one `axis=value` line per axis, and every line but the last
ends with a space before the line feed: the driver reads on until a line without it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from drivers.link import ConnectionClosed, Link, parse_float, parse_int, shown
from drivers.pi_presets import recorder_shared, servo_time_preset
from smm_daq.clock import Clock
from smm_daq.errors import (
    ConnectStopped,
    InputError,
    InstrumentError,
    InstrumentLost,
    InstrumentTimeout,
    MoveStopped,
    ProtocolError,
    RangeError,
    ReplyUnknown,
    StageUnreferenced,
    StillDropping,
)
from smm_daq.instruments import connect_stop, loss_budget
from smm_daq.instruments.interfaces import (
    STOP_SLICE_S,
    FlyStage,
    Identity,
    RecordedMotion,
    Stage,
    StoppedAlone,
)
from smm_daq.instruments.profile import LinkSettings, StageSettings
from smm_daq.instruments.safe_bound import STAGE_BRAKE_WAIT_S, STAGE_STOPS
from smm_daq.instruments.transport import Transport

T = TypeVar("T")

_LOG = logging.getLogger(__name__)

# Metres per controller unit, by the unit string PUN? answers (case-insensitive).
UNITS = {"m": 1.0, "mm": 1e-3, "µm": 1e-6, "μm": 1e-6, "um": 1e-6, "micron": 1e-6, "nm": 1e-9}
UNIT_PARAMETER = "0x07000601"
STOP_ALL = "\x18"  # GCS single-byte command #24
STOPS = (STOP_ALL, "STP")  # the commands that stop every axis (neither has a reply)
MOTION_STATUS = "\x05"  # GCS single-byte command #5: a hex mask of the axes that move
# stops `stop` sends at most while the controller says something still moves after one
MAX_STOPS = STAGE_STOPS
LIMIT_SLACK = 1e-12  # m: travel limits compare with this slack, for unit conversions' rounding
MAX_REPLY_LINES = 2**18 + 64  # a full data-recorder table and its header
SERVO_UPDATE_TIME = 0x0E000200  # SPA parameter: the servo cycle (s)
# SPA parameter: Data Recorder Max Points: one table's samples, or on the models that share
# them among their tables (`pi_presets.recorder_shared`: an E-727, 32768 each of 8) or list
# Data Recorder Chan Number (0x16000300) all tables', divided among them (`_recorder`)
RECORDER_POINTS = 0x16000200
RECORDER_TABLES = 0x16000300  # SPA parameter: Data Recorder Chan Number, the record tables
RECORDER_TABLES_RANGE = (1, 4096)  # any GCS data recorder's tables (0x16000300, TNR?)
REFERENCE_VELOCITY = 0x50  # SPA parameter of motor controllers: velocity of reference moves
DECELERATION = 0xB  # SPA parameter of motor controllers: the closed-loop deceleration (DEC)
# a stopped axis that still moves is given this × velocity / deceleration, and the slack, to
# brake before it is stopped again; at most `STAGE_BRAKE_WAIT_S`
BRAKE_MARGIN = 1.5
BRAKE_SLACK_S = 0.05
BRAKE_POLL_S = 0.02  # s between the #5 asked while the axes brake
RECORDED_PER_LINE = 4096  # positions recorded per fly line at most (the motion is smooth)
CLOCK_SLACK = 1e-3  # how much faster a controller's clock may run than the rig's, relative
WAVE_POINTS = 100_000  # the most points a fly line's wave segment is given
MAX_VELOCITY = 0.01  # m/s: the fastest velocity setting accepted unless the profile's is higher
SERVO_CYCLE_RANGE = (1e-7, 0.1)  # s: any GCS controller's servo update time
RECORDER_POINTS_RANGE = (2, 2**24)  # any GCS data recorder's points (SPA 0x16000200)
# a table's points taken where the controller does not list 0x16000200 (HPA?; SPA? for a
# parameter it lacks gets no reply at all, as PIPython's presets for a C-884 suggest): the
# smallest table of PI's GCS controllers (PIPython's presets: 1024 .. 262144), so a line fits
UNLISTED_RECORDER_POINTS = 1024
STOPPED_CODES = (0, 10)  # what ERR? answers after STP: 10, the controller stopped by command
ERROR_QUERY = "ERR?"  # the controller's error, cleared as it is read
# `stop_alone`'s marker: every GCS controller answers *IDN? (kept for GPIB compatibility), sets
# no error doing so, and its reply, one line with commas, is like no error code
MARKER = "*IDN?"
MAX_LEFT_LINES = 64  # lines an earlier program's unread reply may hold, read past at most
ERROR_CODES = (0, 99_999)  # what ERR? answers (negative codes are the PC library's own)

# Meanings of the controller error codes (PI GCS error list) this driver can meet.
GCS_ERRORS = {
    1: "parameter syntax error",
    2: "unknown command",
    5: "move attempted on an unreferenced axis or with the servo off",
    54: "unknown parameter",
    7: "position out of limits",
    8: "velocity out of limits",
    10: "controller was stopped by command",
    15: "invalid axis identifier",
    17: "parameter out of range",
}

OpenTransport = Callable[[str, LinkSettings], Transport]


class ReplyCut(InstrumentError):
    """A reply of many lines left unread past the line under way: the make-safe path began
    (an abort) after its query was sent. The rest is dropped before the link's next exchange.
    Also a fly line's recording (`DRR?`) not asked at all, the path begun before it."""


class GCSLink(Link):
    """A `Link` that also reads GCS multi-line replies (lines ending ' ' continue).

    Each line is a read of its own, which may come as late as the link allows (a timeout,
    and on a serial line the largest reply's transfer): a reply of many lines (`HPA?`,
    `HLP?`, one line per axis or wave generator) may take that many times as long. So on the
    make-safe path its lines past the path's deadline, or the stage's share of it, are
    refused (`loss_budget.DeadlineReached`) as a further exchange would be: only the line
    under way as it is reached is waited for, as `safe_bound` counts the stage's exchange
    under way. Elsewhere a reply is read whole, however long (a data recorder's table), but
    for one the make-safe path never needs (`query_lines(cut=True)`: a fly line's `DRR?`,
    minutes of lines at 9600 baud) whose query went before the path began (`Rig.safe_from`:
    an abort): once it has begun, no further line is read (`ReplyCut`), so that the stage's
    stop and the coils' ramps get their time. A reply of a few lines (one per axis, as a
    move's `ONT?` polls) is read on: its lines are ms away, where the drop of its rest
    would wait a timeout for a serial line to be quiet.

    A reply cut short leaves its other lines coming: before the link's next exchange they are
    dropped (the transport's `clear`: a device clear, a socket's new connection, a serial
    line drained until quiet), lest that exchange read them for its own reply; but for a
    stop (the stop byte `#24`, which the controller acts on wherever it arrives, even amid a
    reply it is sending; or `STP`; neither has a reply to be confused with the rest), so that
    the stage stops before the drain. On a serial line the drop goes on aside, so that a Stop
    never waits for it, and the make-safe path waits for it only within the stage's share
    (`Link._drop_rest`).
    """

    def __init__(self, transport: Transport, *, name: str, retries: int = 2,
                 budget: str | None = None) -> None:
        super().__init__(transport, name=name, retries=retries, budget=budget)
        # the stop sent while the rest of a reply still came, if one was (`_drop_rest`)
        self._stopped_amid: str | None = None
        # the exchanges after that stop wait for the drop no more: its checks gave up waiting
        # (the make-safe path refused them), or its drain gave up and was begun again (its
        # check refused then, as any exchange): later exchanges are refused while it goes on,
        # not held for it
        self._checks_given_up = False
        # that stop, still to be sent once more as the drop under way ends (`_send_once_more`)
        self._send_again: str | None = None
        # held while a stop is sent amid a drop aside, or sent once more (`_send_once_more`)
        self._amid = threading.Lock()
        # a stop went out (or may have: its write failed) and no `ERR?` reply was read since
        # (its check given up or lost): the controller may hold the error 10 the stop set,
        # which the next command's check would take for its own (`PIGCSStage._command`)
        self.stop_unread = False

    def query_lines(self, command: str, parse: Callable[[list[str]], T], *,
                    cut: bool = False) -> T:
        """Send `command`, gather every line of its reply, parse them; retried as `query`.
        `cut`: no further line is read once the make-safe path begins (`ReplyCut`)."""

        def action() -> T:
            began = self._path_begun() or not cut
            lines = self._split(self.transport.query(command))
            while lines[-1].endswith(" "):
                if len(lines) > MAX_REPLY_LINES:
                    raise ProtocolError(f"reply to {command!r} does not end", instrument=self.name)
                self._in_time(command, began, len(lines))
                lines.extend(self._split(self.transport.read()))
            return parse([line.strip() for line in lines])

        return self._attempt(action, command)

    def replies_until(self, command: str, is_marker: Callable[[list[str]], bool], *,
                      ahead: int) -> list[list[str]]:
        """The replies read (each its lines, stripped) before the first that `is_marker` takes
        for the reply to `command`, sent earlier by `write`, with at least `ahead` replies
        before it. Never asked again, as a destructive query: one lost, or more than
        MAX_LEFT_LINES lines before it, `ReplyUnknown`."""

        def action() -> list[list[str]]:
            began = self._path_begun()
            replies: list[list[str]] = []
            lines: list[str] = []  # of the reply being read
            while True:
                self._in_time(command, began, sum(map(len, replies)) + len(lines))
                for line in self._split(self.transport.read()):
                    lines.append(line)
                    if line.endswith(" "):
                        continue
                    reply, lines = [x.strip() for x in lines], []
                    if len(replies) >= ahead and is_marker(reply):
                        return replies
                    replies.append(reply)
                if sum(map(len, replies)) + len(lines) > MAX_LEFT_LINES + ahead:
                    raise ProtocolError(f"no reply to {command!r} among "
                                        f"{sum(map(len, replies)) + len(lines)} lines")

        return self._attempt(action, command, destructive=True)

    def reply_left_coming(self) -> None:
        """A reply is still to come, unread (to an `ERR?` written ahead of a stop that was
        then not sent): dropped before the next exchange, as the rest of a reply cut short
        is, lest that exchange read it for its own and every reply after it be one behind."""
        self._unread = True

    def rest_pending(self) -> bool:
        """Whether the rest of a reply cut short is still to be dropped, or being dropped
        aside: a stop goes amid it at once, and nothing may go ahead of it."""
        return self._unread or self._dropping is not None

    def _sent_amid_reply(self, command: str) -> bool:
        """A stop (`#24`, or `STP`: neither has a reply) goes before the rest of a reply cut
        short is dropped, or while it is dropped aside (`_drop_rest`)."""
        if command not in STOPS:
            return False
        if self._unread or self._dropping is not None:
            self._stopped_amid, self._checks_given_up = command, False
            self._send_again = command
        return True

    def _waits_for_drop(self) -> bool:
        """`Link._waits_for_drop`: also the exchanges after a stop sent amid the rest of a
        reply cut short (its checks), which wait for its drop (`Link._drop_rest`: on a serial
        line aside, up to `safe_bound.clear_s`, 36 s on a stage at 115200 baud with a 5 s
        timeout, so that a Stop queued behind the window's poll that met it goes at once);
        the drop sends the stop once more as it ends (`_drained`)."""
        return (self._stopped_amid is not None and not self._checks_given_up) \
            or super()._waits_for_drop()

    def _attempt(self, action: Callable[[], T], command: str, *,
                 destructive: bool = False, written: bool = False) -> T:
        """`Link._attempt`; where the make-safe path refuses the stop's checks (`GivenUp`:
        the end of the stage's share, `DeadlineReached`, as they wait for the drop or before
        one begins, the share ended as the stop went), or the stop's own write amid the drop
        fails (not taken; charged, then refused on its next attempt, `GivenUp`: no check
        follows it), they are given up: the exchanges after them (the window's poll, on the
        rig's one thread) are refused while the drop goes on (`StillDropping`), not held for
        it; the drop still sends the stop once more as it ends (`_drained`)."""
        try:
            return super()._attempt(action, command, destructive=destructive,
                                    written=written)
        except InstrumentError as exc:
            if isinstance(exc, loss_budget.GivenUp) or command in STOPS:
                self._checks_given_up = self._stopped_amid is not None
            raise

    def _after_drop(self, action: Callable[[], T], command: str) -> Callable[[], T]:
        """`Link._after_drop`; a stop sent amid a drop aside goes one at a time with the
        drop's own sending of it once more (`_drained`), never interleaved on the line. An
        `ERR?` read (after any stop the drop sent once more) leaves no stop's error unread
        (`stop_unread`)."""
        sent = super()._after_drop(action, command)
        if command == ERROR_QUERY:

            def error_read() -> T:
                result = sent()
                self.stop_unread = False
                return result

            return error_read
        if command not in STOPS:
            return sent

        def one_at_a_time() -> T:
            with self._amid:
                self.stop_unread = True
                return sent()

        return one_at_a_time

    def _begin_drop(self, command: str, why: str) -> None:
        """`Link._begin_drop`; begun again (the drain before gave up, the line never quiet),
        the stop sent amid the drop is sent once more as this drain ends too (the one before
        may have failed to send it, or this one's flush of the line's output may drop what it
        sent), its checks refused meanwhile, as any exchange is, unless the make-safe path
        waits."""
        if self._dropping_again and self._stopped_amid is not None:
            self._send_again, self._checks_given_up = self._stopped_amid, True
        super()._begin_drop(command, why)

    def _drained(self) -> None:
        """A stop sent amid a drop aside is sent once more (harmless twice) as soon as the
        drain has ended, on the drop's own thread, as the drain may have dropped it too (a
        serial line's output flushed as it began), the controller left moving unknowing:
        not at the link's next exchange, which may never come (the make-safe path gave up on
        the stop's checks at the end of the stage's share; a close before the drain ends
        sends it itself, `_before_close`)."""
        self._send_once_more()

    def _dropped(self) -> None:
        """After a drop has ended for good: a stop sent amid it and not sent once more since
        (the drop was the exchange's own, a socket's new connection that resets the one the
        stop went on, or a device clear) is sent once more now, before the exchange; the
        exchanges after it are the stop's checks no more."""
        try:
            self._send_once_more()
        finally:
            self._stopped_amid, self._checks_given_up = None, False

    def _before_close(self) -> None:
        """A stop sent amid a drop aside that has not ended is sent once more before the
        transport closes (the close ends the drain, its port closed under it, and with it
        the drop's own sending of the stop): one write, its timeout at most, and a reopen of
        a failed port the drain began (`safe_bound.close_wait_s`). Not taken, the close goes
        on and says nothing: it is called where another error may be under way (a connect
        given up, a `stop_alone` that failed), which its own would replace."""
        dropping = self._dropping
        if dropping is not None and dropping.is_alive():
            with contextlib.suppress(InstrumentError):
                self._send_once_more()

    def _send_once_more(self) -> None:
        """The stop sent amid a drop (`_send_again`), if not sent once more since, sent once
        more, one at a time with any other stop. Its write timed out (or its connection
        closed) is the stop not taken, not a line that never went quiet (the drop's own
        `InstrumentTimeout`, which begins another drain): `InstrumentLost`, the check's
        failure."""
        with self._amid:
            stop, self._send_again = self._send_again, None
            if stop is None:
                return
            self.stop_unread = True
            try:
                self.transport.write(stop)
            except (InstrumentTimeout, ConnectionClosed) as exc:
                raise InstrumentLost(f"the stop {shown(stop)}, sent once more after the rest "
                                     f"of a reply cut short that it went amid, was not taken "
                                     f"({exc})", instrument=self.name) from exc

    def _in_time(self, command: str, began: bool, read: int) -> None:
        """Before a further line of the reply to `command` (`read` lines read): `ReplyCut`
        where the make-safe path has begun since the query (`began`: it had then, or the
        reply is read on, not `cut`); `DeadlineReached` past its deadline (or the stage's
        share of it). Either way the reply's other lines are left to drop before the next
        exchange."""
        budget = loss_budget.current() if self.budget_kind else None
        if budget is None or not self.budget_kind:
            return
        try:
            if not began and budget.begun():
                raise ReplyCut(f"the reply to {shown(command)} was cut after {read} lines: the "
                               "rig is being made safe", instrument=self.name)
            budget.refuse(self.name, command, self.budget_kind)
        except InstrumentError:
            self._unread = True
            raise

    @staticmethod
    def _split(text: str) -> list[str]:
        return text.replace("\r", "").rstrip("\n").split("\n")


def _detail(exc: InstrumentError, name: str) -> str:
    """What `exc` says, but the instrument's name it begins with."""
    return str(exc).removeprefix(f"{name}: ")


def _restated(exc: InstrumentError, message: str, name: str) -> InstrumentError:
    """`exc` said as `message`, of its kind, for the instrument `name`; a refusal amid a
    drop keeps the drop, which a caller that asks again waits for (`StillDropping.wait`)."""
    if isinstance(exc, StillDropping):
        return StillDropping(message, instrument=name, drop=exc.drop)
    return type(exc)(message, instrument=name)


def _within_reply(parse: Callable[[str], T], value: str, lines: list[str]) -> T:
    """`parse(value)`, a value of the multi-line reply `lines`; its ProtocolError quotes the
    whole reply, which says where the value came from."""
    try:
        return parse(value)
    except ProtocolError as exc:
        raise ProtocolError(f"{exc} in {shown(lines)}") from None


def _parse_parameter_ids(lines: list[str]) -> set[int]:
    """The parameter ids an `HPA?` reply lists (lines `0x<id>=<description>`; its title and
    end lines have none)."""
    ids = (_hex(line.partition("=")[0].strip()) for line in lines if "=" in line)
    return {pid for pid in ids if pid is not None}


def _parse_table_count(lines: list[str]) -> int:
    """A `TNR?` reply: one line, the count of record tables (a line ending ' ' goes on: the
    lines after it are no part of one count)."""
    if len(lines) != 1:
        raise ProtocolError(f"expected one line, the count of data-recorder tables, got "
                            f"{shown(lines)}")
    return parse_int(lines[0].strip(), what="integer count of data-recorder tables",
                     within=RECORDER_TABLES_RANGE)


def _meaning(code: int) -> str:
    """A GCS error code's meaning, as far as this driver knows it."""
    return GCS_ERRORS.get(code, "see the controller manual")


def _parse_axis_lines(
    lines: list[str], axes: Sequence[str], parse: Callable[[str], T]
) -> dict[str, T]:
    """'axis=value' lines, exactly one per requested axis."""
    values: dict[str, T] = {}
    for line in lines:
        axis, sep, value = line.partition("=")
        if not sep or axis.strip() not in axes or axis.strip() in values:
            raise ProtocolError(f"expected 'axis=value' for axes {list(axes)}, got {shown(lines)}")
        values[axis.strip()] = _within_reply(parse, value, lines)
    if len(values) != len(axes):
        raise ProtocolError(f"expected one line per axis {list(axes)}, got {shown(lines)}")
    return values


def _um(span: np.ndarray) -> list[float]:
    return [round(float(v) * 1e6, 3) for v in span]


def _hex(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def _parse_help(lines: list[str]) -> set[str]:
    """HLP?: a title line, one 'COMMAND description' line per command, an end line."""
    if len(lines) < 2:
        raise ProtocolError(f"expected the command list from HLP?, got {shown(lines)}")
    return {line.split()[0].upper() for line in lines[1:-1] if line.split()}


def _parse_mask(text: str) -> int:
    """#5: the moving axes as a hexadecimal bit mask (bit k the (k+1)-th axis)."""
    try:
        mask = int(text.strip(), 16)
    except ValueError:
        mask = -1
    if not 0 <= mask < 2**32:
        raise ProtocolError(f"expected a hexadecimal mask of moving axes, got {shown(text)}")
    return mask


def _parse_wave_modes(lines: list[str]) -> list[int]:
    """WGO?: one 'generator=start mode' line per wave generator; the generators running."""
    running = []
    for line in lines:
        generator, sep, mode = line.partition("=")
        if not sep or not generator.strip().isdigit() or not mode.strip().isdigit():
            raise ProtocolError(f"expected 'generator=start mode' lines, got {shown(lines)}")
        if int(mode):
            running.append(int(generator))
    return running


def _still_moving(link: GCSLink, commands: set[str], stop_command: str,
                  axes: Callable[[], list[str]]) -> str:
    """What the controller says still moves after a stop ('' nothing), asked where it lists
    the queries (`commands`, its `HLP?`): `#5` (the axes in motion, a wave generator's too;
    `axes()` gives the controller's axis names, bit k the (k+1)-th) and `WGO?` (each wave
    generator's start mode, 0 once stopped). A reply lost raises the link's error, saying
    that the stop (`stop_command`) was sent but whether the stage still moves is unknown."""
    found = []
    try:
        if "#5" in commands:
            mask = link.query(MOTION_STATUS, _parse_mask)
            if mask:
                moving = [a for k, a in enumerate(axes()) if mask >> k & 1]
                found.append(f"#5 answered {mask:X} (axes {moving} moving)")
        if "WGO?" in commands:
            running = link.query_lines("WGO?", _parse_wave_modes)
            if running:
                found.append(f"WGO? answered wave generators {running} running")
    except InstrumentError as exc:
        detail = str(exc).removeprefix(f"{link.name}: ")
        raise type(exc)(f"stopped ({stop_command}), but whether it still moves is unknown: "
                        f"{detail}", instrument=link.name) from None
    return "; ".join(found)


def _moving_after_stops(stop_command: str, moving: str) -> str:
    """What a stage that every one of its `MAX_STOPS` stops left moving is told by; read
    after "stage not stopped: " where the rig is made safe, it names the motion once."""
    return f"{MAX_STOPS} stops sent ({stop_command}), and after the last {moving}"


def _stopped_alone_until_still(link: GCSLink, clock: Clock, stop: Callable[[], int],
                               refused: Callable[[int], None]) -> int:
    """After `stop_alone`'s first stop on `link`: where the controller can tell (its `HLP?`
    lists `#5` or `WGO?`), whether anything still moves, stopped again (`stop`, its code
    checked by `refused`) while it does, `MAX_STOPS` stops in all, as `PIGCSStage.stop` does;
    the stops sent. Moving after the last, or a reply lost on the way, `InstrumentError`
    (never `InstrumentLost`: the controller answered the stop, and a connect may tell more)."""
    names: list[str] = []

    def axes() -> list[str]:
        if not names:
            names.extend(link.query_lines("SAI?", lambda lines: [ln for ln in lines if ln]))
        return names

    try:
        commands = link.query_lines("HLP?", _parse_help)
    except InstrumentError as exc:
        raise InstrumentError(f"stopped (STP), but whether it still moves is unknown: "
                              f"{str(exc).removeprefix(f'{link.name}: ')}",
                              instrument=link.name) from None
    parameters = functools.cache(lambda: link.query_lines("HPA?", _parse_parameter_ids))
    braking = functools.cache(lambda: _braking_s(link, commands, axes(), parameters))
    try:
        for stops in range(1, MAX_STOPS + 1):
            moving = _moving_once_braked(clock, lambda: _still_moving(link, commands, "STP", axes),
                                         braking)
            if not moving:
                return stops
            if stops < MAX_STOPS:
                refused(stop())
    except InstrumentError as exc:  # of the kind the caller tries a connect after
        raise InstrumentError(str(exc).removeprefix(f"{link.name}: "),
                              instrument=link.name) from None
    raise InstrumentError(_moving_after_stops("STP", moving), instrument=link.name)


def _axis_parameter(link: GCSLink, pid: int, axes: Sequence[str], parse: Callable[[str], T], *,
                    what: str) -> list[T]:
    """Parameter `pid` of each of `axes` (`SPA?`), in their order, parsed by `parse`."""
    request = " ".join(f"{a} 0x{pid:08X}" for a in axes)

    def parse_lines(lines: list[str]) -> list[T]:
        found: dict[str, T] = {}
        for line in lines:
            head, sep, value = line.partition("=")
            axis, _, name = head.strip().partition(" ")
            if not sep or axis not in axes or _hex(name) != pid:
                raise ProtocolError(f"expected 'axis 0x{pid:08X}={what}', got {shown(lines)}")
            found[axis] = _within_reply(parse, value.strip(), lines)
        if set(found) != set(axes):
            raise ProtocolError(f"expected one {what} per axis {list(axes)}, got {shown(lines)}")
        return [found[a] for a in axes]

    return link.query_lines(f"SPA? {request}", parse_lines)


def _braking_s(link: GCSLink, commands: set[str], axes: list[str],
               parameters: Callable[[], set[int]]) -> float:
    """How long `axes`, moving at their velocity settings (`VEL?`), may take to brake after a
    stop (s): the longest velocity / deceleration (parameter 0xB, where `HPA?` lists it:
    `parameters()`; both in the controller's units), × `BRAKE_MARGIN` + `BRAKE_SLACK_S`, at
    most `STAGE_BRAKE_WAIT_S`, the most too where a deceleration reads 0 (an axis would never
    brake at it: the stop's further stops are not given up for it); 0 where the controller
    lists no deceleration (a piezo controller stops at once). A stop neither sets the
    velocity nor the deceleration, so its callers ask this once for all their stops."""
    if not {"HPA?", "SPA?", "VEL?"} <= commands or DECELERATION not in parameters():
        return 0.0
    decelerations = _axis_parameter(link, DECELERATION, axes, lambda v: parse_float(
        v, what="deceleration", within=(0.0, math.inf)), what="deceleration")
    if min(decelerations) <= 0:  # no braking time follows: the most, so the stops go on
        return STAGE_BRAKE_WAIT_S
    velocities = link.query_lines(f"VEL? {' '.join(axes)}", lambda lines: _parse_axis_lines(
        lines, axes, lambda v: parse_float(v, what="velocity", within=(0.0, math.inf))))
    longest = max(velocities[a] / d for a, d in zip(axes, decelerations, strict=True))
    return min(BRAKE_MARGIN * longest + BRAKE_SLACK_S, STAGE_BRAKE_WAIT_S)


def _moving_once_braked(clock: Clock, moving: Callable[[], str],
                        braking_s: Callable[[], float]) -> str:
    """What still moves after a stop ('' nothing; `moving()`, `_still_moving`), asked again
    on `clock` every `BRAKE_POLL_S` for the braking time (`braking_s()`, asked only where
    something moves) while it still does: a motor controller brakes each axis at its
    deceleration, and an axis braking is not one that moves on."""
    found = moving()
    if not found:
        return ""
    end = clock.now() + braking_s()
    while found and clock.now() < end:
        clock.sleep(min(BRAKE_POLL_S, end - clock.now()))
        found = moving()
    return found


def _held_before(before: int | None) -> str:
    """What an `ERR?` sent ahead of a stop (`stop_alone`'s, `PIGCSStage.stop`'s) read
    (`before`: None, its reply lost), said apart from the stop's own outcome ('' no
    error)."""
    if before is None:
        return ("whether the controller held an error from before the stop is unknown "
                "(the reply to the ERR? sent ahead of it was lost)")
    if before:
        return (f"the controller held error {before} ({_meaning(before)}) from before "
                "the stop, left by an earlier program or command")
    return ""


def _parse_bool(text: str) -> bool:
    if text.strip() not in ("0", "1"):
        raise ProtocolError(f"expected 0 or 1, got {shown(text)}")
    return text.strip() == "1"


def parse_gcs_idn(reply: str) -> Identity:
    """'(c)2015 Physik Instrumente (PI) GmbH & Co. KG, E-727, 0116044408, 13.21.00.09'."""
    parts = [p.strip() for p in reply.split(",")]
    if len(parts) < 4 or not all(parts[-3:]):
        raise ProtocolError(f"expected 'vendor, model, serial, firmware', got {shown(reply)}")
    vendor = ", ".join(parts[:-3])
    if vendor.lower().startswith("(c)"):
        vendor = vendor[3:].lstrip("0123456789 ")
    return Identity(vendor=vendor, model=parts[-3], serial=parts[-2], firmware=parts[-1])


def _is_identity(reply: list[str]) -> bool:
    """Whether `reply` is a GCS controller's `*IDN?` reply."""
    try:
        return len(reply) == 1 and bool(parse_gcs_idn(reply[0]))
    except ProtocolError:
        return False


def _header_value(header: dict[str, list[str]], key: str, lines: list[str]) -> str:
    """The value of `key` in a GCS array header, given once; else ProtocolError."""
    values = header.get(key, [])
    if len(values) != 1:
        raise ProtocolError(f"expected one '# {key} = value' in the header, got "
                            f"{len(values)} in {shown(lines)}")
    return values[0]


def _parse_recording(lines: list[str], count: int, sample_time: float | None,
                     within: tuple[float, float], unit: str) -> tuple[float, np.ndarray]:
    """A `DRR? 1 <count> 1` reply (GCS array format: a '#' header ending with '# END_HEADER',
    then one row per sample, one column per table): the sample time (s) and the `count`
    values. The header must say one table (DIM), `count` rows (NDATA) and the sample time
    the recorder was set to (`sample_time`, when known); every row one finite value in
    `within` (controller units). ProtocolError naming the reply otherwise."""
    if "# END_HEADER" not in lines or not lines[0].startswith("#"):
        raise ProtocolError(f"expected a GCS array ('# ...' header lines, '# END_HEADER', "
                            f"then rows), got {shown(lines)}")
    end = lines.index("# END_HEADER")
    header: dict[str, list[str]] = {}
    for line in lines[:end]:
        key, sep, value = line.removeprefix("#").partition("=")
        if not line.startswith("#"):
            raise ProtocolError(f"expected '# KEY = value' header lines, got {shown(line)} "
                                f"in {shown(lines)}")
        if sep:  # a '#' line without '=' ('#', '# REM ...') is a comment, as PI's parser reads it
            header.setdefault(key.strip(), []).append(value.strip())
    raw = _header_value(header, "SAMPLE_TIME", lines)
    dt = parse_float(raw, what="recorder sample time in s", within=(1e-9, 1e6))
    if sample_time is not None and not math.isclose(dt, sample_time, rel_tol=1e-3):
        raise ProtocolError(f"expected SAMPLE_TIME = {sample_time:.6g} s (the rate set by RTR "
                            f"times the servo cycle), got {shown(raw)} in {shown(lines)}")
    for key, want in (("DIM", 1), ("NDATA", count)):
        got = _header_value(header, key, lines)
        if not got.isdigit() or int(got) != want:
            raise ProtocolError(f"expected '# {key} = {want}' for 'DRR? 1 {count} 1', got "
                                f"{shown(got)} in {shown(lines)}")
    rows = lines[end + 1:]
    if len(rows) != count:
        raise ProtocolError(f"expected {count} rows after the header, got {len(rows)} "
                            f"in {shown(lines)}")
    values = np.empty(count)
    for k, row in enumerate(rows):
        fields = row.split()
        if len(fields) != 1:
            raise ProtocolError(f"expected one column in row {k + 1} (one table asked for), "
                                f"got {shown(row)}")
        values[k] = parse_float(fields[0], what=f"recorded position in {unit}", within=within)
    return dt, values


class PIGCSStage(Stage, FlyStage):
    """Three axes of a PI GCS 2.0 controller as a `Stage` in the sample frame.

    Fly lines (`fly_x`): record table 1 records the x axis' actual position (`DRC 1 <x> 2`), one
    sample every `RTR` servo cycles (chosen so the line fits the table); `DRL?` and `DRR?` read
    the record back: the line's points only, the count at least the line's and at most what the
    time since the line was set up can hold (a sample every `RTR` servo cycles, where the servo
    cycle is listed), the array's header (SAMPLE_TIME the rate set, DIM, NDATA), rows and
    columns as asked, every value within reach of the travel. The servo cycle and recorder
    size (`SPA?`) are bounded by what any GCS controller has; where they are not listed
    (`HPA?`) the servo cycle is PIPython's preset for the model (`pi_presets`), checked against
    SAMPLE_TIME, and a table is taken to hold `UNLISTED_RECORDER_POINTS` (`read_recorded` says
    so where it held fewer); on the models that share the recorder among their tables, a table
    holds its share. A controller with a wave generator and trigger outputs (E-727) flies the
    line as a `LIN` wave segment at constant speed on the generator of the x axis, the
    recording started with the wave (`DRT 1 0 0`) and trigger output line 1 pulsing at the
    wave's first point (`CTO 1 3 4`, `TWS 1 1 1`): the edge that starts a wired lock-in's
    buffer. Other controllers (C-884) move x alone by `VEL` then `MOV`, the recording started
    by that move (`DRT 1 1 0`).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        axes: Sequence[str],
        axis_sign: Sequence[int],
        travel: np.ndarray,
        velocity: float,
        clock: Clock,
        retries: int = 2,
        settle_time: float = 0.0,
        max_velocity: float = MAX_VELOCITY,
        poll_interval: float = 0.005,
        reference_on_connect: bool = False,
        refuse_unreferenced: bool = True,
        name: str = "stage",
    ) -> None:
        self.name = name
        self.link = GCSLink(transport, name=name, retries=retries, budget=loss_budget.STAGE)
        self.clock = clock
        self.axes = tuple(axes)
        self.axis_sign = tuple(int(s) for s in axis_sign)
        self.settle_time = settle_time
        self.max_velocity = max_velocity
        self.poll_interval = poll_interval
        self.reference_on_connect = reference_on_connect
        self.refuse_unreferenced = refuse_unreferenced
        self._unreferenced: list[str] = []  # axes connecting left unreferenced
        self.units: list[str] = []
        self._commands: set[str] = set()
        # the parameter ids the controller lists (`HPA?`, a long reply), once asked
        self._parameter_ids: set[int] | None = None
        self._controller_axes: list[str] = []
        self._controller_travel = np.zeros((3, 2))
        self._scale = [1.0, 1.0, 1.0]
        self._referencing = False
        self._model: str | None = None  # the controller's model (`*IDN?`), once asked
        self._recorder_size = 0  # a record table's points, taken by the last fly line
        self._recorder_most = 0  # the most its count may reach (`_recorder`)
        self._sample_time: float | None = None  # s between recorded samples (set by fly_x)
        self._rate = 1  # the last fly line's record table rate (RTR)
        # the last fly line's servo cycle where it is a preset (`_servo_cycle`), said so
        self._cycle_preset = ""
        self._line_duration = 0.0  # s, of the line fly_x started
        self._line_samples = 0  # the recorded points that span it
        # the rig-clock time before the last fly line's recording was set up (`DRC`): it
        # cannot have begun earlier (`_recordable`)
        self._line_set_up = 0.0
        self.error_at_connect = 0  # the error code left pending before connect (cleared then)
        # what the last `stop` found pending before its first stop ("" nothing, or no
        # `ERR?` could go ahead of it): an error its stop's own would have replaced unread
        self.found_before_stop = ""
        # whether what it found is unknown only because its `ERR?` read the 10 of a #24 that
        # may have been acted on ahead of it (`_read_error_ahead`): said where it matters
        self.found_overtaken = False
        try:
            self._limits = self._connect(np.asarray(travel, dtype=float), velocity)
        except BaseException:  # Ctrl-C or a signal too: a reference move must not run on
            if self._referencing:
                with contextlib.suppress(Exception):
                    self.stop()
            self.link.close()
            raise

    @classmethod
    def from_profile(
        cls, settings: StageSettings, *, clock: Clock, open_transport: OpenTransport | None
    ) -> PIGCSStage:
        opener = open_transport or _hardware_transport
        return cls(
            opener(settings.link.address, settings.link),
            axes=settings.axes,
            axis_sign=settings.axis_sign,
            travel=settings.travel,
            velocity=settings.velocity,
            clock=clock,
            retries=settings.link.retries,
            settle_time=settings.settle_time,
            max_velocity=cls.velocity_limit_for(settings),
            reference_on_connect=settings.reference_on_connect,
            refuse_unreferenced=settings.refuse_unreferenced,
            name=f"PI stage at {settings.link.address}",
        )

    @classmethod
    def stop_alone(
        cls, settings: StageSettings, *, clock: Clock, open_transport: OpenTransport | None,
        closes: contextlib.ExitStack | None = None,
    ) -> StoppedAlone:
        """Every axis stopped by `STP` on a link of its own, which needs nothing read from the
        controller first (`smm-daq safe`, before it connects: axes not referenced, or still
        driving to their reference switches after a program was killed, refuse a connect).

        The controller keeps only its last error, and the stop sets its own (10): an error an
        earlier program left pending (1024, the servo switched off on a position error) would
        be replaced unread. So `ERR?` goes first, `STP` right behind it (the stop waits for no
        reply), then the stop's own check (`ERR?`) and a marker (`*IDN?`); that error is
        returned as found before the stop, apart from the stop's own check. Then, as `stop`
        does, the controller is asked whether anything still moves (`#5`, `WGO?`, where its
        `HLP?` lists them: a killed program's move may reach it after the stop) and stopped
        again while it does, `MAX_STOPS` stops in all. Raises `InstrumentError` when the
        controller does not answer (the replies lost, then the stop sent once more and its
        check lost too), refuses the stop, or still moves after the last stop (or whether it
        does is unknown): with these two, what was found before the stop is said too. An axis
        still braking after a stop is waited for on `clock` (`_moving_once_braked`), as
        `stop` does.

        A reply an earlier program left unread (it died between a query and its reply) would
        put every reply one behind: the stop said failed with the pending error as its own, or
        a stale 0 or 10 taken for either. What the link holds is dropped first (a device clear
        on GPIB and USB); one that comes late anyway is told apart by the marker: the replies
        are read until the marker's, whose reply is like no other, and the two just before it
        are the error from before and the stop's check, whatever came ahead of them. A client
        that waits for each reply (this driver, PIPython) leaves at most one unread when killed
        (of one or more lines): a marker-like reply it left (a connect's *IDN?) has fewer than
        two before it and is read past. An earlier `stop_alone` killed after writing and before
        its replies came leaves three, the last its marker's; all three late past the drop,
        they would be taken for this stop's, its own left for the connect after it (which
        retries after a clear): a window of the few ms the controller takes to answer.

        The link is closed as this returns or raises; where `closes` is given, its close is
        left to it (`closes.callback`): a caller that must not wait for it, as `smm-daq safe`
        ramps the coils down before it closes a stage that could not be reached (a close may
        send a stop once more, `GCSLink._before_close`, and wait for a serial-over-LAN
        adapter to take it)."""
        name = f"PI stage at {settings.link.address}"
        link = GCSLink((open_transport or _hardware_transport)(settings.link.address,
                                                               settings.link),
                       name=name, retries=settings.link.retries, budget=loss_budget.STAGE)
        if closes is not None:
            closes.callback(link.close)

        def error(reply: list[str]) -> int | None:
            """The error code `reply` gives; None where it is garbled."""
            try:
                return parse_int(reply[0] if len(reply) == 1 else "",
                                 what="integer GCS error code", within=ERROR_CODES)
            except ProtocolError:
                return None

        def stop() -> int:
            link.write("STP")
            return link.query("ERR?", lambda r: parse_int(r, what="integer GCS error code",
                                                          within=ERROR_CODES), destructive=True)

        def refused(code: int) -> None:
            if code not in STOPPED_CODES:
                raise InstrumentError(f"PI error {code} ({_meaning(code)}) after 'STP'",
                                      instrument=name)

        try:
            link.discard_input()
            for command in ("ERR?", "STP", "ERR?", MARKER):
                link.write(command)
            try:
                *_, ahead, check = link.replies_until(MARKER, _is_identity, ahead=2)
            except ReplyUnknown:  # the stop sent once more and checked; lost again: raised
                before, code = None, stop()
            else:
                before, code = error(ahead), error(check)
                if code is None:  # the check garbled: the stop sent once more and checked
                    code = stop()
            found = _held_before(before)
            try:
                refused(code)
                stops = _stopped_alone_until_still(link, clock, stop, refused)
            except InstrumentError as exc:  # what the ERR? ahead of the stop read, said too
                if not found:
                    raise
                raise InstrumentError(f"{str(exc).removeprefix(f'{name}: ')}; {found}",
                                      instrument=name) from None
        finally:
            if closes is None:
                link.close()
        again = f", {stops} stops: it still moved after the first" if stops > 1 else ""
        return StoppedAlone(f"every axis stopped (STP{again})", found)

    # -- protocol helpers ------------------------------------------------------------------

    def _command(self, command: str, *, allowed: tuple[int, ...] = (0,)) -> None:
        """Send a set command, then read the error queue; raise on a code not allowed."""
        self._read_stop_error(command)
        self.link.write(command)
        self._check_error(command, allowed)

    def _started(self, command: str) -> float:
        """Send a command that starts motion; the rig-clock time it left (its error is read
        after, so the start is timed as it happened)."""
        self._read_stop_error(command)
        self.link.write(command)
        start = self.clock.now()
        self._check_error(command)
        return start

    def _read_stop_error(self, command: str) -> None:
        """Before `command`, the error a stop left unread (`GCSLink.stop_unread`: its check
        given up, as the make-safe path's share ended amid a drop) read and cleared, lest
        `command`'s check take it for its own and a scan after an abort fail on its first
        move: 10 (stopped by command) or 0 as a stop leaves it; another is told as found
        then, `command` not sent (the next is: the error was cleared as it was read)."""
        if not self.link.stop_unread:
            return
        code = self._error_code(f"reading the error a stop left unread, before {command!r} "
                                "(not sent)")
        if code not in STOPPED_CODES:
            raise InstrumentError(
                f"PI error {code} ({_meaning(code)}) pending after a stop whose check was not "
                f"made ({self._stop_command()}), found before {command!r}, which was not sent",
                instrument=self.name)

    def _error_code(self, doing: str) -> int:
        """The controller's error code (`ERR?`, which clears it); the reply lost or garbled,
        the link's error said as met while `doing`."""
        try:
            return self.link.query(ERROR_QUERY, lambda r: parse_int(
                r, what="integer GCS error code", within=ERROR_CODES), destructive=True)
        except InstrumentError as exc:  # what was done is unknown: say what it was
            raise _restated(exc, f"{doing}: {_detail(exc, self.name)}", self.name) from None

    def _check_error(self, command: str, allowed: tuple[int, ...] = (0,)) -> None:
        code = self._error_code(f"checking {command!r}")
        if code not in allowed:
            raise InstrumentError(
                f"PI error {code} ({_meaning(code)}) after {command!r}", instrument=self.name
            )

    def _query_axes(self, command: str, parse: Callable[[str], T],
                    seen: list[str] | None = None) -> list[T]:
        """Ask `command` for the sample x, y, z axes; values in sample-axis order (the reply's
        lines into `seen`, where given)."""

        def parse_lines(lines: list[str]) -> dict[str, T]:
            if seen is not None:
                seen[:] = lines
            return _parse_axis_lines(lines, self.axes, parse)

        values = self.link.query_lines(f"{command} {' '.join(self.axes)}", parse_lines)
        return [values[a] for a in self.axes]

    def _to_sample(self, values: Sequence[float]) -> np.ndarray:
        """Controller values (its units, sample-axis order) -> sample-frame metres."""
        return np.array(
            [s * v * k for s, v, k in zip(self.axis_sign, values, self._scale, strict=True)]
        )

    def _connect(self, travel: np.ndarray, velocity: float) -> np.ndarray:
        # An error left from before (a stop whose error was never read: error 10) would be
        # taken for the first command's, and no connect, `smm-daq safe`'s included, would
        # pass; read, it is cleared, and kept for the snapshot (`smm-daq check`, the scan's
        # metadata): a code such as 1024 (servo switched off on a position error) is news.
        self.error_at_connect = self.link.query(
            "ERR?", lambda r: parse_int(r, what="integer GCS error code", within=ERROR_CODES),
            destructive=True)
        commands = self._commands = self.link.query_lines("HLP?", _parse_help)
        self._parameter_ids, self._model = None, None
        names = self.link.query_lines("SAI?", lambda lines: [ln for ln in lines if ln])
        self._controller_axes = list(names)
        missing = [a for a in self.axes if a not in names]
        if missing:
            raise InstrumentError(
                f"the controller's axes are {names}; the profile's stage.axes {list(self.axes)} "
                f"name {missing}, which it does not have",
                instrument=self.name,
            )
        self.units = self._read_units(commands)
        self._scale = [UNITS[u.lower()] for u in self.units]
        limits = self._check_travel(travel)  # before anything moves
        self._command("SVO " + " ".join(f"{a} 1" for a in self.axes))
        self.set_velocity(velocity)
        if "FRF?" in commands:
            self._reference(commands)
        return limits

    def _check_travel(self, travel: np.ndarray) -> np.ndarray:
        """The profile's travel, if the controller's soft limits hold it; else refuse."""
        lo = self._to_sample(self._query_axes("TMN?", parse_float))
        hi = self._to_sample(self._query_axes("TMX?", parse_float))
        controller = np.column_stack([np.minimum(lo, hi), np.maximum(lo, hi)])
        self._controller_travel = controller
        outside = [
            k
            for k in range(3)
            if travel[k, 0] < controller[k, 0] - LIMIT_SLACK
            or travel[k, 1] > controller[k, 1] + LIMIT_SLACK
        ]
        if outside:
            where = "; ".join(
                f"{'xyz'[k]} {_um(travel[k])} µm, but controller axis {self.axes[k]} travels "
                f"{_um(controller[k])} µm (TMN?/TMX?)"
                for k in outside
            )
            raise InputError(
                f"key 'stage.travel_um' allows more than the stage can travel: {where}; "
                "set stage.travel_um within the controller's travel"
            )
        return travel.copy()

    def _read_units(self, commands: set[str]) -> list[str]:
        """Each axis' unit (sample-axis order), from PUN? or the unit parameter; known ones only."""
        if "PUN?" in commands:
            units = self._query_axes("PUN?", str.strip)
        elif "SPA?" in commands:
            units = self._query_unit_parameter()
        else:
            raise InstrumentError(
                "the controller reports no position unit (it has neither PUN? nor SPA?); "
                "refusing to guess whether it works in mm or µm",
                instrument=self.name,
            )
        unknown = [
            f"axis {a} in {u!r}" for a, u in zip(self.axes, units, strict=True)
            if u.lower() not in UNITS
        ]  # fmt: skip
        if unknown:
            raise InstrumentError(
                f"{', '.join(unknown)}: not a length unit this driver knows "
                f"({', '.join(sorted(UNITS))}); a stage axis must move in one",
                instrument=self.name,
            )
        return units

    def _query_unit_parameter(self) -> list[str]:
        return self._axis_parameter(int(UNIT_PARAMETER, 0), self.axes, str.strip, what="unit")

    def _axis_parameter(self, pid: int, axes: Sequence[str], parse: Callable[[str], T], *,
                        what: str) -> list[T]:
        return _axis_parameter(self.link, pid, axes, parse, what=what)

    def _reference(self, commands: set[str]) -> None:
        """Reference the axes that need it, if the profile allows; else refuse to go on (or,
        not `refuse_unreferenced`, leave them and name them)."""
        pending = [
            a for a, ok in zip(self.axes, self._query_axes("FRF?", _parse_bool), strict=True)
            if not ok
        ]  # fmt: skip
        if not pending:
            return
        if not self.refuse_unreferenced:
            self._unreferenced = pending
            return
        if not self.reference_on_connect:
            raise StageUnreferenced(
                f"axes {pending} are not referenced and refuse to move; reference them (FRF) or "
                "set stage.reference_on_connect = true (each axis then drives to its reference "
                "switch: make sure the sensor is clear of the sample)",
                axes=pending, instrument=self.name,
            )
        velocity = self._reference_velocity(pending, commands)
        if connect_stop.requested():  # Stop pressed while connecting: nothing moved yet by
            self.stop()  # this connect, but a killed program's reference move may drive on
            raise ConnectStopped(f"the reference move of axes {pending} was stopped by the "
                                 "operator before it started (every axis stopped, "
                                 f"{self._stop_command()}); the axes are not referenced",
                                 instrument=self.name)
        if "RON" in commands:
            self._command("RON " + " ".join(f"{a} 1" for a in pending))
        self._referencing = True
        self._command("FRF " + " ".join(pending))
        travel = self._controller_travel  # a reference move crosses at most all of it
        # an axis reports referenced once it has settled at the switch, as on target
        # (`_wait_on_target`): a profile's settle time (up to a minute) counts too
        timeout = (2.0 * float(np.max(travel[:, 1] - travel[:, 0])) / velocity + 10.0
                   + self.settle_time)
        deadline = self.clock.now() + timeout
        while not all(self._query_axes("FRF?", _parse_bool)):
            if connect_stop.requested():
                self.stop()
                self._referencing = False
                raise ConnectStopped(
                    f"the reference move of axes {pending} was stopped by the operator "
                    f"({self._stop_command()}) before it ended; the axes are not referenced",
                    instrument=self.name)
            if self.clock.now() >= deadline:  # stopped as the operator's stop is
                self.stop()
                self._referencing = False
                raise InstrumentTimeout(
                    f"axes {pending} not referenced within {timeout:.3g} s (reference "
                    f"velocity {velocity * 1e3:.3g} mm/s); stopped ({self._stop_command()})",
                    instrument=self.name)
            self.clock.sleep(max(self.poll_interval, 0.05))
        self._referencing = False

    def _reference_velocity(self, axes: Sequence[str], commands: set[str]) -> float:
        """The slowest of `axes`' reference-move velocities (m/s): parameter 0x50, which FRF
        runs at whatever VEL says; the VEL setting where the controller does not list that
        parameter (`HPA?`: asking `SPA?` for a parameter it lacks gets no reply at all)."""
        if not {"HPA?", "SPA?"} <= commands or REFERENCE_VELOCITY not in self._parameters():
            return self._velocity
        scale = dict(zip(self.axes, self._scale, strict=True))
        values = self._axis_parameter(REFERENCE_VELOCITY, axes, lambda v: parse_float(
            v, what="reference velocity", within=(0.0, math.inf)), what="reference velocity")
        velocities = [v * scale[a] for a, v in zip(axes, values, strict=True)]
        if min(velocities) <= 0:
            raise ProtocolError(f"reference velocity (parameter 0x{REFERENCE_VELOCITY:X}) "
                                f"{velocities} m/s: not a velocity an axis can move at",
                                instrument=self.name)
        return min(velocities)

    def unreferenced_axes(self) -> list[str]:
        return list(self._unreferenced)

    # -- Stage -------------------------------------------------------------------------------

    def identify(self) -> Identity:
        return self.link.query("*IDN?", parse_gcs_idn)

    def limits(self) -> np.ndarray:
        return self._limits.copy()

    def position(self) -> np.ndarray:
        return self._to_sample(self._query_axes("POS?", parse_float))

    def velocity(self) -> float:
        """The slowest of the three axes' velocity settings (m/s)."""
        values = self._query_axes("VEL?", parse_float)
        return min(v * k for v, k in zip(values, self._scale, strict=True))

    def set_velocity(self, v: float) -> None:
        if not (math.isfinite(v) and 0 < v <= self.max_velocity):
            raise RangeError(
                f"velocity {v} m/s outside (0, {self.max_velocity}] m/s", instrument=self.name
            )
        self._command(
            "VEL "
            + " ".join(f"{a} {v / k:.7g}" for a, k in zip(self.axes, self._scale, strict=True))
        )
        self._velocity = v

    def on_target(self) -> bool:
        return all(self._query_axes("ONT?", _parse_bool))

    def move_to(self, x: float, y: float, z: float | None = None, *, wait: bool = True,
                stop: Callable[[], bool] | None = None) -> None:
        request = [x, y] if z is None else [x, y, z]
        for k, value in enumerate(request):
            lo, hi = self._limits[k]
            if not (math.isfinite(value) and lo - LIMIT_SLACK <= value <= hi + LIMIT_SLACK):
                raise RangeError(
                    f"{'xyz'[k]} = {value * 1e6:.3f} µm is outside the travel "
                    f"[{lo * 1e6:.3f}, {hi * 1e6:.3f}] µm",
                    instrument=self.name,
                )
        target = "(" + ", ".join(f"{v * 1e6:.3f}" for v in request) + ") µm"
        if stop is not None and stop():
            raise MoveStopped(f"the move to {target} was stopped before it was sent",
                              instrument=self.name)
        start = self.position()
        self._command(
            "MOV "
            + " ".join(
                f"{self.axes[k]} {self.axis_sign[k] * value / self._scale[k]:.10g}"
                for k, value in enumerate(request)
            )
        )
        if wait:
            distance = float(np.max(np.abs(np.asarray(request) - start[: len(request)])))
            self._wait_on_target(distance / self._velocity, stop, target)

    def _wait_on_target(self, travel_time: float, stop: Callable[[], bool] | None,
                        target: str) -> None:
        """Poll ONT? on the clock until every axis settles; timeout from the travel time.
        The travel time is waited before the first poll, in slices of `STOP_SLICE_S` where
        `stop` is given, which is asked between them (`_wait`)."""
        expected = travel_time + self.settle_time
        timeout = 1.5 * expected + 1.0
        deadline = self.clock.now() + timeout
        self._wait(expected, stop, target)
        while True:
            reply: list[str] = []
            flags = self._query_axes("ONT?", _parse_bool, reply)
            if all(flags):
                return
            if self.clock.now() >= deadline:
                late = ", ".join(
                    f"{'xyz'[k]} (controller axis {self.axes[k]})"
                    for k, ok in enumerate(flags)
                    if not ok
                )
                raise InstrumentTimeout(
                    f"axis {late} not on target within {timeout:.3g} s (ONT? answered "
                    f"{shown(reply)})", instrument=self.name
                )
            self._wait(self.poll_interval, stop, target)

    def _wait(self, seconds: float, stop: Callable[[], bool] | None, target: str) -> None:
        """Wait `seconds` on the clock during the move to `target`; with `stop`, in slices
        of `STOP_SLICE_S`, asking it before each and at the end: once it is true, every axis
        is stopped and `MoveStopped` raised (a stop that fails raises its own error)."""
        if stop is None:
            self.clock.sleep(seconds)
            return
        end = self.clock.now() + seconds
        while True:
            if stop():
                self.stop()
                raise MoveStopped(f"the move to {target} was stopped on its way "
                                  f"({self._stop_command()}), every axis stopped",
                                  instrument=self.name)
            left = end - self.clock.now()
            if left <= 0:
                return
            self.clock.sleep(min(STOP_SLICE_S, left))

    # -- FlyStage ----------------------------------------------------------------------------

    def _parameter(self, pid: int, parse: Callable[[str], T]) -> T:
        """Parameter `pid` of the x axis (`SPA?`), its value parsed by `parse` within the
        exchange: a reply that does not parse is retried, then named with the query."""
        ax = self.axes[0]

        def parse_lines(lines: list[str]) -> T:
            head, sep, value = lines[0].partition("=")
            axis, _, name = head.strip().partition(" ")
            if len(lines) != 1 or not sep or axis != ax or _hex(name) != pid:
                raise ProtocolError(f"expected '{ax} 0x{pid:08X}=value', got {shown(lines)}")
            return _within_reply(parse, value, lines)

        return self.link.query_lines(f"SPA? {ax} 0x{pid:08X}", parse_lines)

    @classmethod
    def velocity_limit_for(cls, settings: StageSettings) -> float:
        return max(settings.velocity, MAX_VELOCITY)

    def velocity_limit(self) -> float:
        return self.max_velocity

    def recorder_points(self) -> int:
        """The most points a fly line's record is read back with (`read_recorded`): the
        table's, at most `RECORDED_PER_LINE` and an eighth more. The scan's file lays out
        each line's record for as many: an E-727's whole recorder (262144) made it 4 MB a
        line, nearly all of it padding."""
        return min(self._recorder()[0], RECORDED_PER_LINE + RECORDED_PER_LINE // 8)

    def _recorder(self) -> tuple[int, int]:
        """One record table's points, and the most its count (`DRL?`) may reach.

        The table's: parameter 0x16000200, divided among the tables where it counts them
        all: by parameter 0x16000300 where the controller lists it (as PIPython's
        `getmaxnumvalues` does), else by `TNR?` on a model that shares it
        (`pi_presets.recorder_shared`: an E-727, 262144 in all, 8 tables). PIPython divides
        by `TNR?` on every controller that lists 0x16000200 without 0x16000300 (its branch
        for the C-843); not so here: a C-884, whose tables each hold 0x16000200's 1024
        (`TNR?` 8), would be taken to hold 128. Where the controller does not list
        0x16000200, `UNLISTED_RECORDER_POINTS`, rather than a query left unanswered (the
        link taken for lost, the controller's error 54 read after the next command as that
        command's).

        The most: 0x16000200 undivided, as a firmware whose 0x16000200 is already one
        table's (divided, the table understated) keeps recording after the line up to it;
        where not listed, `RECORDER_POINTS_RANGE`'s highest, a table of a size not known."""
        if not self._recorder_points_listed():
            return UNLISTED_RECORDER_POINTS, RECORDER_POINTS_RANGE[1]
        points = self._parameter(RECORDER_POINTS, lambda v: parse_int(
            v, what="integer count of data-recorder points", within=RECORDER_POINTS_RANGE))
        tables = 1
        if RECORDER_TABLES in self._parameters():
            tables = self._parameter(RECORDER_TABLES, lambda v: parse_int(
                v, what="integer count of data-recorder tables", within=RECORDER_TABLES_RANGE))
        elif "TNR?" in self._commands and recorder_shared(self._controller_model()):
            tables = self.link.query_lines("TNR?", _parse_table_count)
        if points // tables < RECORDER_POINTS_RANGE[0]:  # each reply in range, not together
            raise InstrumentError(
                f"the data recorder lists {points} points (parameter "
                f"0x{RECORDER_POINTS:08X}) shared among {tables} record tables, "
                f"{points // tables} a table; expected at least {RECORDER_POINTS_RANGE[0]} "
                "a table for a fly line's positions, or a step scan", instrument=self.name)
        return points // tables, points

    def _controller_model(self) -> str:
        """The controller's model (`*IDN?`), asked once per connect."""
        if self._model is None:
            self._model = self.identify().model
        return self._model

    def _recorder_points_listed(self) -> bool:
        """Whether the controller lists parameter 0x16000200 (`HPA?`) and answers `SPA?`."""
        return {"HPA?", "SPA?"} <= self._commands and RECORDER_POINTS in self._parameters()

    def trigger_output(self) -> bool:
        return {"WAV", "WGO", "CTO", "TWS"} <= self._commands

    def fly_refused(self) -> str:
        """Also where the servo cycle would be a preset and the line is flown as a wave
        (`trigger_output`): the wave's speed is timed by it, and a wrong preset is caught only
        as the line is read back, after the stage moved at a speed never checked."""
        if self._servo_cycle_listed():
            return ""
        model = self._controller_model()
        unlisted = (f"the stage controller ({model}) does not list its servo update time "
                    f"(parameter 0x{SERVO_UPDATE_TIME:08X} in HPA?), by which a fly line's "
                    "recorded positions are timed")
        preset = self._servo_cycle_preset()
        if preset is None:
            return (f"{unlisted}, and PIPython's presets have none for the {model}; expected "
                    "a controller that lists it, or a step scan")
        if self.trigger_output():
            return (f"{unlisted}, and it flies the line as a wave whose speed that time sets: "
                    f"on PIPython's {preset * 1e6:g} µs preset for the {model}, checked only "
                    "as the line is read back, the stage could move at a speed never "
                    "checked; expected a controller that lists it, or a step scan")
        return ""

    def _servo_cycle_listed(self) -> bool:
        """Whether the servo update time (0x0E000200) is asked (`SPA?`): not where the
        controller's `HPA?` leaves it out (asked, it would get no reply: the link taken for
        lost, error 54 left pending)."""
        return not {"HPA?", "SPA?"} <= self._commands \
            or SERVO_UPDATE_TIME in self._parameters()

    def _servo_cycle_preset(self) -> float | None:
        """The servo update time PIPython takes for this model (`pi_presets`), or None."""
        return servo_time_preset(self._controller_model())

    def _servo_cycle(self) -> float:
        """The servo update time (s): parameter 0x0E000200, or where the controller does not
        list it the preset for its model, kept said in `_cycle_preset` (`read_recorded`
        then checks it against the recorder's SAMPLE_TIME, which is the controller's)."""
        self._cycle_preset = ""
        if self._servo_cycle_listed():
            return self._parameter(SERVO_UPDATE_TIME, lambda v: parse_float(
                v, what="servo update time in s", within=SERVO_CYCLE_RANGE))
        cycle, refused = self._servo_cycle_preset(), self.fly_refused()
        if cycle is None or refused:
            raise InstrumentError(refused, instrument=self.name)
        self._cycle_preset = (f"the {cycle * 1e6:g} µs servo update time PIPython's presets "
                              f"give a {self._controller_model()} (which does not list "
                              f"parameter 0x{SERVO_UPDATE_TIME:08X})")
        return cycle

    def fly_x(self, x_end: float, velocity: float, duration: float) -> float:
        lo, hi = self._limits[0]
        if not (math.isfinite(x_end) and lo - LIMIT_SLACK <= x_end <= hi + LIMIT_SLACK):
            raise RangeError(f"x = {x_end * 1e6:.3f} µm is outside the travel "
                             f"[{lo * 1e6:.3f}, {hi * 1e6:.3f}] µm", instrument=self.name)
        self._line_set_up = self.clock.now()
        cycle = self._servo_cycle()
        self._recorder_size, self._recorder_most = self._recorder()
        samples = self._line_samples = min(self._recorder_size, RECORDED_PER_LINE)
        rate = self._rate = max(1, math.ceil(duration / (samples * cycle)))
        ax = self.axes[0]
        self._command(f"DRC 1 {ax} 2")
        self._command(f"RTR {rate}")
        self._sample_time, self._line_duration = rate * cycle, duration
        if self.trigger_output():
            self._command("DRT 1 0 0")
            return self._fly_wave(x_end, velocity, cycle)
        self._command("DRT 1 1 0")
        self.set_velocity(velocity)
        return self._started(f"MOV {ax} {self.axis_sign[0] * x_end / self._scale[0]:.10g}")

    def _fly_wave(self, x_end: float, velocity: float, cycle: float) -> float:
        """The line as one LIN wave segment of constant speed from here to `x_end`."""
        ax = self.axes[0]
        g = self._controller_axes.index(ax) + 1  # generator g drives the g-th axis
        x_start = float(self.position()[0])
        distance = abs(x_end - x_start)
        rate = max(1, math.ceil(distance / velocity / (cycle * WAVE_POINTS)))
        steps = max(1, round(distance / (velocity * rate * cycle)))
        k = self.axis_sign[0] / self._scale[0]
        self._command(f"WAV 1 X LIN {steps + 1} {(x_end - x_start) * k:.10g} "
                      f"{x_start * k:.10g} {steps + 1} 0 0")
        for command in (f"WSL {g} 1", f"WGC {g} 1", f"WTR {g} {rate} 0", f"CTO 1 2 {g}",
                        "CTO 1 3 4", "TWC", "TWS 1 1 1"):
            self._command(command)
        return self._started(f"WGO {g} 1")

    def read_recorded(self, start: float) -> RecordedMotion:
        """The line `fly_x` started, as recorded: once its motion has ended, the recorder
        holds the whole line (or is full), so fewer points than that (or than 2) are refused
        as a reply no recorder gives, and so are more than the time since the line was set up
        can hold (`_recordable`); but where the table's size was not listed, and taken
        (`UNLISTED_RECORDER_POINTS`), fewer are likely a table that holds fewer, refused
        saying so (`_filled_early`). Where the servo cycle was a preset (`_servo_cycle`), a
        recording whose SAMPLE_TIME is not what the rate set makes of it is refused naming
        the preset: fewer points than the line's are then read for their header first, the
        preset too short leaving its recording short of the line's end."""
        size, bound = ((self._recorder_size, self._recorder_most) if self._recorder_size
                       else self._recorder())
        listed = self._recorder_points_listed()
        # fewer than the line's points are not a reply no recorder gives (`short`, below)
        relaxed = not listed or bool(self._cycle_preset)
        least, why = 2, ""
        if self._sample_time is not None:
            whole = min(size, math.floor(self._line_duration / self._sample_time))
            if whole - 1 > least:
                least = whole - 1  # a sample of slack, for where the recording began
                why = (f" (the {self._line_duration:.6g} s line, one sample every "
                       f"{self._sample_time:.6g} s)")

        def count(lines: list[str]) -> int:
            head, sep, value = lines[0].partition("=")
            if len(lines) != 1 or not sep or head.strip() != "1":
                raise ProtocolError(f"expected '1=count', got {shown(lines)}")
            n = _within_reply(lambda v: parse_int(v, what="integer count of recorded points"),
                              value, lines)
            lowest = 2 if relaxed else least
            most, since = self._recordable(bound)
            if not lowest <= n <= most:
                raise ProtocolError(f"expected {lowest} .. {most} recorded points"
                                    f"{since or why}, got {shown(lines)}")
            return n

        n = self.link.query_lines("DRL? 1", count)
        short = ""  # why fewer than the line's points were recorded (only where `relaxed`)
        if n < least:
            short = (f"expected {least} .. {bound} recorded points{why}, got {n}" if listed
                     else self._filled_early(n, least, size, why))
        if short and not self._cycle_preset:
            raise InstrumentError(short, instrument=self.name)
        if self._line_samples:
            # The recorder goes on after the line until its table is full (32768 points on
            # an E-727: megabytes on the link); the line's points and an eighth more for the
            # stage settling are all the line needs.
            n = min(n, self._line_samples + self._line_samples // 8)
        n = min(n, size)  # no more than the scan's file lays out a line's record for
        # Recorded positions lie within the axis' travel, give or take its span (a servo
        # overshooting a soft limit); a value beyond cannot be one.
        lo, hi = self._controller_travel[0]
        span = hi - lo
        k = self.axis_sign[0] * self._scale[0]  # controller units -> sample metres
        ends = sorted(((lo - span) / k, (hi + span) / k))
        command = f"DRR? 1 {n} 1"
        # an abort as DRL? was read: the recording, minutes at 9600 baud, would be asked
        # within the make-safe path, read whole (only its deadline cuts such a reply) before
        # the stop; the path never reads it, so it is not asked
        if self.link._path_begun():
            raise ReplyCut(f"{shown(command)} not sent: the rig is being made safe",
                           instrument=self.name)
        # a preset servo cycle is checked below, not taken for a garbled reply and asked again
        expected = None if self._cycle_preset else self._sample_time
        dt, values = self.link.query_lines(
            command,
            lambda lines: _parse_recording(lines, n, expected, (ends[0], ends[1]),
                                           self.units[0]), cut=True)
        if expected is None:
            self._check_preset(dt)
        if short:
            raise InstrumentError(short, instrument=self.name)
        return RecordedMotion(t=start + dt * np.arange(n), x=k * values)

    def _recordable(self, bound: int) -> tuple[int, str]:
        """The most points the line's recording can hold now, and why where that is fewer
        than `bound`: one at its start, which came after `_line_set_up`, and one each sample
        time since, with `CLOCK_SLACK` and a sample to spare for the controller's clock
        running a little fast. Not where the sample time comes of a preset servo cycle
        (`_cycle_preset`), which may not be the controller's: the recording's own SAMPLE_TIME
        is checked against it instead (`_check_preset`)."""
        if self._sample_time is None or self._cycle_preset:
            return bound, ""
        elapsed = self.clock.now() - self._line_set_up
        most = math.floor(elapsed * (1 + CLOCK_SLACK) / self._sample_time) + 2
        if most >= bound:
            return bound, ""
        return most, (f" ({elapsed:.6g} s since the {self._line_duration:.6g} s line's "
                      f"recording was set up, one sample every {self._sample_time:.6g} s)")

    def _check_preset(self, dt: float) -> None:
        """InstrumentError where the recording's SAMPLE_TIME `dt` (s) is not what the line's
        rate makes of the preset servo cycle it was flown on (`_servo_cycle`)."""
        if self._sample_time is None or math.isclose(dt, self._sample_time, rel_tol=1e-3):
            return
        raise InstrumentError(
            f"the recording's SAMPLE_TIME is {dt:.6g} s, not the {self._sample_time:.6g} s "
            f"RTR {self._rate} makes of {self._cycle_preset}: that preset is not this "
            f"controller's (its recorder gives a servo cycle of {dt / self._rate:.6g} s), and "
            "the line's positions are refused; expected a controller that lists its servo "
            f"update time (0x{SERVO_UPDATE_TIME:08X} in HPA?), or a step scan",
            instrument=self.name)

    def _filled_early(self, n: int, least: int, size: int, why: str) -> str:
        """Why a line recorded `n` points where it needed `least`, on a table whose size the
        controller does not list (`size` taken): its table likely holds only `n`."""
        return (f"the stage recorded {n} positions of the fly line, which needs at least "
                f"{least}{why}: its record table likely holds only {n} points, fewer than the "
                f"{size} taken where the controller does not list their number (parameter "
                f"0x{RECORDER_POINTS:08X} in HPA?), and was full before the line's end; "
                f"expected a controller that lists it, or whose tables hold at least {size} "
                "points, or a step scan")

    def stop(self) -> None:
        """Every axis stops at once: #24 where the controller lists it (a single byte acted on
        even if a line was cut off half-sent), else STP; error 10 then is expected. The reply
        to the check after it lost (`ReplyUnknown`: not asked again, reading clears it), the
        stop, harmless twice, is sent once more and checked.

        The controller keeps only its last error, and the stop sets its own (10): an error
        pending before it (a command refused whose check was not made: a move whose `ERR?`
        an abort refused, or whose reply was lost; a servo switched off on a position error
        mid-move) would be replaced unread, and on the make-safe path (a scan's end or
        abort, a window's close, `smm-daq safe`) the rig is closed after it: nothing would
        ask again. So there `ERR?` is written just ahead of the first stop, its reply read
        after it (the stop waits for no reply), unless the rest of a reply cut short is still
        to be dropped (the stop goes amid it at once) or the `ERR?` is refused or not taken;
        what it read is kept in `found_before_stop` and logged, apart from the stop's own
        outcome. A #24 is processed on arrival, ahead of that `ERR?` if the controller has
        not parsed it yet: its reading 10 then leaves what was pending unknown (the stop's own
        10 may have replaced it), said so (`found_overtaken`), not taken for none; `STP` is
        parsed after it, in order. Its time is the stage's, within its share of the path.

        Then, where the controller can tell (`#5`, `WGO?`), it is asked whether any axis or
        wave generator still moves: a move or wave start sent just before the stop may be
        acted on after it (sent on a connection the link has since replaced, after a garbled
        reply, which the controller reads on its own). A motor controller brakes each axis at
        its deceleration, so what moves is asked again for the braking time (`_braking_s`)
        before it is stopped again, `MAX_STOPS` stops in all; moving after the last,
        `InstrumentError` says what moves."""
        moving = ""
        braking = functools.cache(lambda: _braking_s(
            self.link, self._commands, self._controller_axes, self._parameters))
        self.found_before_stop, self.found_overtaken = "", False
        # the link held from the ERR? ahead to its reply: another thread's exchange between
        # them (a window's call in flight) would read that reply for its own
        with self.link._lock:
            self._stop_once(ahead=self._error_query_ahead())
        for k in range(MAX_STOPS):
            if k:
                self._stop_once()
            moving = _moving_once_braked(
                self.clock,
                lambda: _still_moving(self.link, self._commands, self._stop_command(),
                                      lambda: self._controller_axes),
                braking)
            if not moving:
                return
        raise InstrumentError(_moving_after_stops(self._stop_command(), moving),
                              instrument=self.name)

    def _parameters(self) -> set[int]:
        """The parameter ids the controller lists (`HPA?`), asked once per connect."""
        if self._parameter_ids is None:
            self._parameter_ids = self.link.query_lines("HPA?", _parse_parameter_ids)
        return self._parameter_ids

    def _error_query_ahead(self) -> bool:
        """Whether `ERR?` was written ahead of the stop (`stop`): on the make-safe path only,
        and not where the rest of a reply cut short is pending or the link is lost (one
        attempt an exchange: the stop's), nor where it is refused or not taken (the stop
        goes all the same, after one attempt at most)."""
        if not self.link._path_begun() or self.link.rest_pending() or self.link.lost:
            return False
        try:
            self.link.write(ERROR_QUERY, once=True)
        except InstrumentError:
            # one attempt that failed is not a controller lost: the stop keeps its retries
            self.link.lost = False
            return False
        return True

    def _read_error_ahead(self, command: str) -> bool:
        """The reply to the `ERR?` written ahead of the stop `command`, read after the stop
        went: an error other than a stop's kept in `found_before_stop` and logged; the reply
        lost, that said unknown; 10 after a #24, which the controller may have acted on
        before it parsed the `ERR?`, what was pending said unknown (`_overtaken`). Whether
        it was read: lost, the clear after it may have dropped the stop too (a serial line's
        output flushed, a socket's new connection). Refused unread (the stage's share
        ended), it is left to be dropped before the next exchange
        (`GCSLink.reply_left_coming`). The stop's own error is still unread
        (`GCSLink.stop_unread`) until its check is read."""
        try:
            code: int | None = self.link.reply(ERROR_QUERY, lambda r: parse_int(
                r, what="integer GCS error code", within=ERROR_CODES))
        except ReplyUnknown:
            code = None
        except InstrumentError:
            self.link.reply_left_coming()
            raise
        finally:
            self.link.stop_unread = True
        if code == STOPPED_CODES[1] and command == STOP_ALL:
            self._overtaken()
            return True
        if code in STOPPED_CODES:
            return True
        self._found(_held_before(code))
        return code is not None

    def _overtaken(self) -> None:
        """The `ERR?` ahead of a #24 read 10: the controller acts on a single-character
        command as it arrives, ahead of a line command not yet parsed, so the 10 may be the
        stop's own, which replaced what was pending unread. Logged at INFO: on a controller
        that parses slower than the next byte comes, it is every make-safe stop's."""
        self.found_overtaken = True
        self.found_before_stop = (
            "whether the controller held an error from before the stop is unknown (the ERR? "
            "sent ahead of it read 10: the stop's own error 10 may have replaced it, #24 "
            "being acted on as it arrives, ahead of that ERR?)")
        _LOG.info("%s: %s", self.name, self.found_before_stop)

    def _found(self, found: str) -> None:
        """`found` (what the `ERR?` ahead of the stop told of the error held before it),
        kept in `found_before_stop` and logged."""
        self.found_before_stop = found
        _LOG.warning("%s: %s", self.name, found)

    def _stop_once(self, *, ahead: bool = False) -> None:
        """The stop sent and checked (`ERR?`: 0, or 10 for stopped by command); the check's
        reply lost, both once more; `ahead`: the reply to an `ERR?` written just before the
        stop read first (`_read_error_ahead`; that reply lost, the stop once more before its
        check), but where the stop's write was tried again: the clear after its failed
        attempt dropped that reply (or the `ERR?` unparsed), so it is not waited for (a
        timeout), and what was pending is said unknown; that clear timed out itself
        (`Link.clears_failed`), the reply may still come: it is dropped before the stop's
        check as the rest of a reply cut short is; the stop not sent, that reply is
        left to be dropped before the next exchange (`GCSLink.reply_left_coming`). A check
        that could not be made once the stop was sent (refused while the rest of a reply cut
        short is dropped, a drop that failed, its reply lost twice, the make-safe path's share
        ended) says what is true: the stop was sent, not confirmed; its error keeps its kind
        (`StillDropping`: a scan's worker waits for the drop and stops again), not a stop
        refused unsent."""
        command = STOP_ALL if self._stop_command() == "#24" else "STP"
        failures, clears_failed = self.link.failures, self.link.clears_failed
        try:
            self.link.write(command)
        except InstrumentError:
            if ahead:
                self.link.reply_left_coming()
            raise
        if ahead and self.link.failures != failures:  # cleared between its attempts
            self.link.stop_unread = True
            if self.link.clears_failed == clears_failed:
                dropped = "was dropped with the stop's first attempt, which failed"
            else:  # dropped before the check, within the stage's share, lest it be read
                self.link.reply_left_coming()
                dropped = ("may have survived the clear after the stop's first attempt, "
                           "which failed, and timed out itself: it is dropped")
            self._found("whether the controller held an error from before the stop is "
                        f"unknown (the reply to the ERR? sent ahead of it {dropped})")
            ahead = False
        try:
            if ahead and not self._read_error_ahead(command):
                self.link.write(command)  # sent once more, as after its check's reply lost
            try:
                self._check_error(command, allowed=(0, 10))
            except ReplyUnknown:
                self.link.write(command)
                self._check_error(command, allowed=(0, 10))
        except (InstrumentLost, StillDropping) as exc:
            error = _restated(exc, f"the stop ({self._stop_command()}) was sent, not "
                                   f"confirmed: {_detail(exc, self.name)}", self.name)
            error.stop_sent = True
            raise error from exc

    def _stop_command(self) -> str:
        """How `stop` stops, as the manual names it: '#24' or 'STP'."""
        return "#24" if "#24" in self._commands else "STP"

    def snapshot(self) -> dict[str, object]:
        return {
            "identity": str(self.identify()),
            "axes": list(self.axes),
            "axis_sign": list(self.axis_sign),
            "units": list(self.units),
            "position_m": self.position().tolist(),
            "on_target": self.on_target(),
            "velocity_m_per_s": self.velocity(),
            "limits_m": self._limits.tolist(),
            "error_at_connect": self._error_text(self.error_at_connect),
            "unreferenced_axes": list(self._unreferenced),
        }

    @staticmethod
    def _error_text(code: int) -> str:
        """'none', or a GCS error code with its meaning."""
        return f"{code} ({_meaning(code)})" if code else "none"

    def close(self) -> None:
        self.link.close()


def _hardware_transport(address: str, link: LinkSettings) -> Transport:
    from drivers.transports import open_transport

    return open_transport(address, link)
