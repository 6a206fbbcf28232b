"""A transport with bounded retries and device clear, shared by every driver.

Each driver owns one `Link` per connection. A query whose reply times out or does not parse
is retried after a device clear, at most `retries` more times; then the instrument is taken
as lost. Parsers raise `ProtocolError`: a garbled reply is never read as a silent zero. A
command the instrument does not take within the timeout (it stopped reading: the transport's
write raises `InstrumentTimeout`) is counted, charged and retried as a lost reply is, as is
an exchange whose connection the instrument closed (`ConnectionClosed`: a supply whose server
restarted, a LAN-serial adapter that dropped the link), tried again on a new connection: a
ramp-down goes on past it.

An exchange (a command, its reply and any retries) holds the link's lock, so two threads never
talk to one instrument at once and never take each other's replies; a Ctrl-C in the main
thread waits for the exchange to end (`smm_daq.interrupts.atomic`). A device clear that fails
because the link is gone ends the exchange with `InstrumentLost` at once. Once lost, an
instrument gets one attempt per exchange (no retries) until it answers again, so the safety
path that must still try every instrument spends one timeout, not `retries + 1`, on each
exchange with a lost one. Past the make-safe path's deadline (`loss_budget`), every exchange
is refused but a supply's switch-off, which gets one attempt.

A destructive query (`destructive=True`: ERR?, SYST:ERR?, LIAS?; reading it clears what it
reports) is never retried: the instrument may have processed it before its reply was lost,
and the query sent again would answer "no error" for an error or an overload it already
cleared. Its reply lost or garbled ends the exchange in `ReplyUnknown` (an `InstrumentLost`):
what it reports is unknown, and its caller decides what unknown means (the sequencer takes a
lock-in's overload latch lost once as an overload, so the point is read again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from smm_daq import interrupts
from smm_daq.articles import with_article
from smm_daq.errors import (
    InstrumentError,
    InstrumentLost,
    InstrumentTimeout,
    ProtocolError,
    ReadStopped,
    ReplyUnknown,
    StillDropping,
)
from smm_daq.instruments import loss_budget
from smm_daq.instruments.quoting import shown
from smm_daq.instruments.transport import Transport

T = TypeVar("T")

# real seconds between looks at the rig's clock while a stage's exchange waits for a drop
# aside on the make-safe path (`Link._wait_for_drop`)
DROP_WAIT_STEP_S = 0.05


class ConnectionClosed(InstrumentLost):
    """The instrument closed (or reset) the connection during an exchange; the transport
    opens a new one before its next use. A `Link` takes it as a lost reply, told at once."""


class Link:
    """One instrument connection: strict queries, bounded retries, device clear in between."""

    def __init__(self, transport: Transport, *, name: str, retries: int = 2,
                 budget: str | None = None) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.transport = transport
        self.name = name
        self.retries = retries
        self._lock = threading.RLock()
        self.lost = False  # the last exchange ended with InstrumentLost
        # attempts whose reply timed out or was garbled, ever: what a caller that must end in
        # bounded time counts (each cost at most the transport's timeout)
        self.failures = 0
        # clears between attempts that timed out themselves, ever: a reply the clear was to
        # drop may still come (`_attempts`), which a caller that counts on its dropping reads
        # here (`pi_gcs.PIGCSStage._stop_once`)
        self.clears_failed = 0
        # its lost replies count against the make-safe path's budget (`loss_budget`), under
        # `name` and the allowance of its kind (`loss_budget.SUPPLY`, `STAGE`): a coil
        # supply's or the stage's, whatever link reaches it on the way
        self.budget_kind = budget
        self._closing = threading.Event()  # a close waits for the exchange under way (`close`)
        self._closes = 0  # closes done, each under the lock: an exchange that waited for the
        # lock while one was done is refused (`_attempt`)
        self._unread = False  # a reply was cut short: the rest of it is still coming
        self._dropping: threading.Thread | None = None  # the rest dropped aside (`_drop_rest`)
        self._drop_failed: InstrumentError | None = None  # how that drop failed, if it did
        # that drop was begun again after a drain that gave up (the line never quiet): one
        # more such failure is the exchange's, not a third drain (`_drop_rest`)
        self._dropping_again = False

    def write(self, command: str, *, last_word: bool = False, once: bool = False) -> None:
        """Send a command that has no reply. `last_word`: sent even to an instrument the
        make-safe path gave up (once: `LossBudget.take_last_word`), such as the switch-off of
        a supply given up mid-ramp. `once`: one attempt, never sent again (a query whose
        reply is read later, `reply`: sent twice after a write that timed out but went, its
        two replies would put every later one behind)."""
        kind = self.budget_kind
        budget = loss_budget.current() if kind else None
        if last_word and budget is not None and kind and budget.spent(self.name, kind) \
                and budget.take_last_word(self.name):
            budget.refuse_late(self.name, command, kind)  # past the deadline, counted
            with self._lock, interrupts.atomic():
                self.transport.write(command)
            return
        self._attempt(lambda: self.transport.write(command), command, destructive=once,
                      written=True)

    def query(self, command: str, parse: Callable[[str], T], *,
              destructive: bool = False) -> T:
        """Send `command`, parse its reply with `parse` (which raises ProtocolError if garbled);
        `destructive`: reading clears what it reports, so it is sent once, never retried."""
        return self._attempt(lambda: parse(self.transport.query(command).strip()), command,
                             destructive=destructive)

    def reply(self, command: str, parse: Callable[[str], T]) -> T:
        """The reply to `command`, a query sent earlier by `write` (ahead of a command that must
        not wait for its reply), parsed by `parse`. Never asked again, as a destructive query:
        lost or garbled, `ReplyUnknown`."""
        return self._attempt(lambda: parse(self.transport.read().strip()), command,
                             destructive=True)

    def discard_input(self) -> None:
        """Drop a reply an earlier program left unread (it died between a query and its
        reply), waiting for nothing, where the transport can (`discard_input`: serial lines,
        GPIB; a new TCP connection or an in-process link holds nothing from before)."""
        discard: Callable[[], None] | None = getattr(self.transport, "discard_input", None)
        if discard is not None:
            with self._lock:
                discard()

    def _attempt(self, action: Callable[[], T], command: str, *,
                 destructive: bool = False, written: bool = False) -> T:
        closes = self._closes
        with self._lock, interrupts.atomic():
            # begun while a close waits for the lock, or before a close that took the lock
            # first: refused alike, whichever thread the lock went to
            if self._closing.is_set() or self._closes != closes:
                raise InstrumentError(f"{shown(command)} not sent: the link is being closed",
                                      instrument=self.name)
            return self._attempts(self._after_drop(action, command), command, destructive,
                                  written)

    def _after_drop(self, action: Callable[[], T], command: str) -> Callable[[], T]:
        """`action`, the rest of a reply cut short dropped first (the transport's `clear`: a
        device clear, a socket's new connection, a serial line drained until quiet; one that
        fails is the attempt's failure, and its own clear follows), lest `command` read it
        for its own reply; but for a command sent amid a reply (`_sent_amid_reply`). A reply
        the transport cut (`ReadStopped`: a stop asked while it came) leaves its rest so."""

        def dropped_first() -> T:
            if not self._sent_amid_reply(command):
                self._drop_rest(command)
            try:
                return action()
            except ReadStopped:
                self._unread = True
                raise

        return dropped_first

    def _sent_amid_reply(self, command: str) -> bool:
        """Whether `command` is sent even while the rest of a reply cut short still comes
        (none is, here)."""
        return False

    def _drop_rest(self, command: str) -> None:
        """Before `command`, the rest of a reply cut short dropped, where one was: on a line
        that drains (a serial line, which has no device clear: drained until it is quiet, up
        to `safe_bound.clear_s`, over a minute for an SR860's 64 kB block at 9600 baud) aside,
        on a thread of its own, `command` refused at once (`StillDropping`), as is any other
        exchange while it goes on, but for those that wait for it (`_waits_for_drop`, for no
        longer than the stage's share on the make-safe path: `_wait_for_drop`, whether the
        drop began before them or in them); so that a call on the window's one rig thread
        (its readings' poll) holds no Stop queued behind it for the drain, closing the link
        waits for no drain, and the make-safe path leaves a stage's drain to go on past its
        share. Elsewhere (a device clear, a socket's new connection: one round trip to an
        instrument that answers, a timeout at most) as the exchange's first step, on the
        exchange's thread: a Stop queued behind it needs the connection or session that
        clear gives, so it would wait for it aside all the same, and a drop aside that opened
        a new connection beside a Stop's own reconnect would leave two. A drop that failed is
        the failure of the exchange after it; but a drain aside that gave up on a line never
        quiet is begun aside again (once: giving up again, the exchange after it fails,
        `InstrumentLost`), that exchange refused, or waiting for it as for the first."""
        if self._dropping is None:
            if not self._unread:
                return
            if not self._drains():
                # left unread until the clear has ended: one cut short (`InstrumentTimeout`)
                # is the attempt's failure, and the attempt after it clears again, then
                # `_dropped` (a stop sent amid the reply sent once more before its check)
                self.transport.clear()
                self._unread = False
                self._dropped()
                return
            self._unread = False
            self._begin_drop(command, "the rest of a reply cut short is being dropped first")
        while True:
            dropping = self._dropping
            assert dropping is not None
            if dropping.is_alive() and not self._waits_for_drop():
                raise StillDropping(f"{shown(command)} not sent: the rest of a reply cut short "
                                    "is still being dropped",
                                    instrument=self.name, drop=dropping)
            self._wait_for_drop(dropping, command)
            failed, self._dropping, self._drop_failed = self._drop_failed, None, None
            again, self._dropping_again = self._dropping_again, False
            if not isinstance(failed, InstrumentTimeout) or again:
                self._dropped()
            if not isinstance(failed, InstrumentTimeout):
                if failed is not None:  # this exchange's failure, as a drop made in it would be
                    raise failed
                return
            if again:  # never quiet twice: the link said lost, not refused forever
                raise InstrumentLost(f"{shown(command)} not sent: the rest of a reply cut "
                                     f"short could not be dropped, the line did not go "
                                     f"quiet twice (last: {failed})",
                                     instrument=self.name) from failed
            self._dropping_again = True  # the drop is not over (`_dropped` not yet)
            # the line did not go quiet: drained aside again, not on this exchange's thread
            # (its failure's clear would drain it there, a Stop queued behind)
            self._begin_drop(command, f"the line did not go quiet ({failed}): the rest of a "
                                      "reply cut short is being dropped again")

    def _begin_drop(self, command: str, why: str) -> None:
        """The rest of a reply cut short dropped on a thread of its own (`_drop_aside`);
        `command` refused at once (`StillDropping`) for `why`, unless it waits for the
        drop."""
        self._dropping = threading.Thread(target=self._drop_aside, daemon=True,
                                          name=f"drop the rest of a reply of {self.name}")
        self._dropping.start()
        if not self._waits_for_drop():
            raise StillDropping(f"{shown(command)} not sent: {why}",
                                instrument=self.name, drop=self._dropping)

    def _wait_for_drop(self, dropping: threading.Thread, command: str) -> None:
        """Wait for the drop aside `dropping` to end, before `command`; on the make-safe
        path, a stage's wait ends where its exchanges are refused (the end of its share of
        the path, or the path's deadline: `DeadlineReached`, the drop left to go on), so that
        a stage drained for half a minute takes none of the time of the coils' ramps."""
        budget = loss_budget.current() if self.budget_kind == loss_budget.STAGE else None
        end = budget.stage_refused_at() if budget is not None else None
        if budget is None or budget.clock is None or end is None:
            dropping.join()
            return
        while dropping.is_alive():
            left = end - budget.clock.now()
            if left <= 0:
                budget.refuse_late(self.name, command, loss_budget.STAGE)
            # the rig's clock may be a simulation's, advanced by others: looked at again
            dropping.join(min(max(left, 0.0), DROP_WAIT_STEP_S))

    def _waits_for_drop(self) -> bool:
        """Whether the exchange now waits for the rest of a reply cut short to be dropped
        rather than being refused while it is dropped aside: on the make-safe path, where no
        Stop waits behind it and its deadline counts it (a stage's wait, its share)."""
        return self._path_begun()

    def _dropped(self) -> None:
        """After the rest of a reply cut short was dropped (aside, or by the exchange that met
        it), before that exchange; or after its drop failed for good. Not between a drain
        aside that gave up and the one begun again (`_drop_rest`): the drop goes on."""

    def _drains(self) -> bool:
        """Whether the transport's `clear` drains a line until it is quiet (a serial line's:
        it has a baud rate), so that a reply cut short is dropped aside (`_drop_rest`)."""
        return bool(getattr(self.transport, "baud_rate", None))

    def _drop_aside(self) -> None:
        """The transport's `clear`, then `_drained`, on the drop's own thread; how either
        failed (the first) kept for the exchange after it."""
        for step in (self.transport.clear, self._drained):
            try:
                step()
            except InstrumentError as exc:
                self._drop_failed = self._drop_failed or exc
            except Exception as exc:  # the link closed under it (a window's close): port gone
                self._drop_failed = self._drop_failed or InstrumentLost(
                    f"dropping the rest of a reply cut short failed: {exc}",
                    instrument=self.name)

    def _drained(self) -> None:
        """On the drop's own thread, once the transport's `clear` has ended (or failed)."""

    def _drop_under_way(self) -> bool:
        """Whether the rest of a reply cut short is being dropped aside now (`_drop_rest`):
        that drop clears the line itself, so an attempt that failed amid it (a stop's write
        that timed out, or whose connection closed) leaves the port to it, not cleared on
        its own thread as well: two drains of one port at once, or a reopen of the port
        under the drain (which would then drain, or use, the new one), the Stop held for it.
        The drop sends the stop once more as it ends (`pi_gcs.GCSLink._drained`)."""
        dropping = self._dropping
        return dropping is not None and dropping.is_alive()

    def _path_begun(self) -> bool:
        """Whether the make-safe path under way (if any) has begun (`LossBudget.begun`)."""
        budget = loss_budget.current() if self.budget_kind else None
        return budget is not None and budget.begun()

    def _attempts(self, action: Callable[[], T], command: str, destructive: bool,
                  written: bool) -> T:
        """`action` tried as the link allows; `written`: it only sends `command` (a write,
        which has no reply), so that a failure says the command was not taken."""
        last: Exception | None = None
        kind = self.budget_kind
        budget = loss_budget.current() if kind else None
        # past the make-safe path's deadline, what is still sent is sent once
        late = budget is not None and budget.past_deadline()
        attempts = 1 if self.lost or destructive or late else self.retries + 1
        try:
            for _ in range(attempts):
                if budget is not None and kind:
                    budget.refuse(self.name, command, kind)
                try:
                    result = action()
                except (InstrumentTimeout, ProtocolError, ConnectionClosed) as exc:
                    last = exc
                    self.failures += 1
                    if budget is not None:
                        budget.charge(self.name)
                    if not self._drop_under_way():
                        try:
                            self.transport.clear()
                        except InstrumentTimeout:  # the next attempt tells more
                            self.clears_failed += 1
                else:
                    self.lost = False
                    return result
        except InstrumentLost as exc:
            self.lost = True
            if exc.instrument == self.name:
                raise
            # the transport's own (a socket reset, a port gone) names only its address: the
            # instrument and the command are what the operator needs
            raise type(exc)(f"{exc} (at {shown(command)})", instrument=self.name) from exc
        self.lost = True
        unknown = (" (reading it clears what it reports, so it is not asked again: what it "
                   "would report is unknown)" if destructive else "")
        failed = (f"{shown(command)} not taken" if written
                  else f"no valid reply to {shown(command)}")
        raise (ReplyUnknown if destructive else InstrumentLost)(
            f"{failed} after {attempts} attempt{'s' if attempts > 1 else ''} (last: {last})"
            f"{unknown}",
            instrument=self.name,
        )

    def close(self) -> None:
        """Close the transport, once the exchange under way on another thread has ended (each
        of its attempts bounded by the link's timeout). An exchange begun while the close
        waits is refused (`InstrumentError`, nothing sent), also one that waits for the lock
        as the close takes it (it is not sent to the closed transport, which may open anew
        on its next use), so that a call of many exchanges
        (a lock-in's buffer read in chunks) holds the close for one of them, not all: the
        wait `safe_bound.close_wait_s` counts, as it counts what `_before_close` sends (a
        stage's stop once more, where it went amid a drop aside not ended)."""
        self._closing.set()
        try:
            with self._lock:
                try:
                    self._before_close()
                finally:
                    try:
                        self.transport.close()
                    finally:
                        self._closes += 1
        finally:
            self._closing.clear()

    def _before_close(self) -> None:
        """Under the link's lock, as the close begins, before the transport is closed."""


def parse_float(reply: str, *, what: str = "number",
                within: tuple[float, float] | None = None) -> float:
    """A strict float: one token, finite, and in `within` (lo, hi) where given: a value no
    instrument of the kind can report (a reply to another query, a corrupted one) is refused.
    Raises ProtocolError naming the reply."""
    try:
        value = float(reply.strip())
    except ValueError:
        raise ProtocolError(f"expected {with_article(what)}, got {shown(reply)}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ProtocolError(f"expected a finite {what}, got {shown(reply)}")
    if within is not None and not within[0] <= value <= within[1]:
        raise ProtocolError(
            f"expected {with_article(what)} in {within[0]:g} .. {within[1]:g}, got {shown(reply)}")
    return value


def parse_int(reply: str, *, what: str = "integer",
              within: tuple[int, int] | None = None) -> int:
    """A strict integer reply, in `within` (lo, hi) where given. Raises ProtocolError naming
    the reply."""
    text = reply.strip()
    try:
        value = int(text)
    except ValueError:
        raise ProtocolError(f"expected {with_article(what)}, got {shown(reply)}") from None
    if within is not None and not within[0] <= value <= within[1]:
        raise ProtocolError(
            f"expected {with_article(what)} in {within[0]} .. {within[1]}, got {shown(reply)}")
    return value
