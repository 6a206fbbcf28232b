"""The most time making the rig safe may take (`safe_time_bound`): what `smm-daq safe` prints
and a supervisor waits between SIGTERM and SIGKILL, what a closing program waits for.

The path is bounded by a deadline, not by its worst case: counting every exchange answered
just within its timeout and every reply allowed lost gives a limit of half an hour and more
(a kill grace nobody sets). So the path ramps gracefully until its deadline
(`safe_deadline`: the ramps at their rate, the settling, and room for a few lost replies),
and from then on each supply still energised is switched off where it stands
(`loss_budget.DeadlineReached`: every exchange but a supply's switch-off is refused), with
the stage stopped first (`smm-daq safe` and `Rig.make_safe` give it `stage_share_s` of the
deadline at most, so that a stage slow to answer leaves the supplies the time of their
ramps). The bound is that
deadline, the exchange under way when it is reached, and the switch-offs
(`switch_off_tail_s`).
"""

from __future__ import annotations

from dataclasses import replace

from smm_daq.instruments.loss_budget import TAIL_EXCHANGES
from smm_daq.instruments.profile import (
    CURRENT_READ_MARGIN,
    RAMP_LOST_REPLIES,
    LinkSettings,
    Profile,
)
from smm_daq.instruments.transport import (
    BITS_PER_BYTE,
    DEFAULT_BAUD_RATE,
    LARGEST_REPLY,
    SERIAL_CLEAR_TIMEOUTS,
    is_serial,
)

# the supplies' wait for their measured current to reach the setpoint (the driver's settle
# timeout), and the pause before its last look
SETTLE_ALLOWANCE_S = 2.0 + 0.05
# safety-path exchanges with a lost supply or stage, after its first one's retries
LOST_EXCHANGES = 4
RAMP_PAUSE_S = 0.1  # the drivers' pause between a ramp's steps, at most
# the replies one attempt of the stage's may wait for: its stop on a link of its own reads
# the error from before, the stop's check and a marker in one go. A reply of many lines
# (`HPA?`, `HLP?`, one line per axis), each line as late as the link allows, is no more:
# past the deadline its further lines are refused (`pi_gcs.GCSLink`), so that the line
# under way, after its query's command, is the most waited for
STAGE_REPLIES_PER_ATTEMPT = 3
# the stops a stage's stop sends at most while its controller says something still moves, and
# the wait after each for its axes to brake (a motor controller's deceleration), at most; that
# wait asks the controller, so past the deadline it is refused as any exchange is
STAGE_STOPS = 3
STAGE_BRAKE_WAIT_S = 1.0
# the series of such stops making the rig safe may send: `smm-daq safe` stops the stage on a
# link of its own (the driver's `stop_alone`), then, connected, stops it again (`stop`); each
# series asks the controller's parameter list (`HPA?`) once, for the decelerations it brakes at
STAGE_STOP_SERIES = 2


def supply_loss_budget(profile: Profile) -> int:
    """Replies each coil supply may lose while the rig is made safe, across the whole path
    (`loss_budget`), before it is given up: as many as one that stops answering spends (its
    first query's tries, then one per exchange the path still has with it), and those its
    ramp-down goes on past."""
    return profile.coils.link.retries + 1 + LOST_EXCHANGES + RAMP_LOST_REPLIES


def stage_loss_budget(profile: Profile) -> int:
    """Replies the stage may lose while the rig is made safe, across the whole path
    (`loss_budget`), before it is given up: as many as one that stops answering spends (its
    first exchange's tries, then one per exchange the path still has with it)."""
    return profile.stage.link.retries + 1 + LOST_EXCHANGES


def exchange_s(link: LinkSettings) -> float:
    """How long one exchange on `link` may take and still be answered: its timeout, and on a
    serial line the largest reply's transfer at its baud rate, which a read waits for."""
    return link.timeout_s + _largest_transfer_s(link)


def command_s(link: LinkSettings) -> float:
    """How long the command of one exchange on `link` may take to go out before its reply's
    time begins: on a serial line its write's own timeout (a line held by flow control: the
    write waits that long for room, and the reply then has its timeout too; a port that
    failed is opened again within it, `SerialTransport`); on any other link nothing, as a
    command and its reply share one timeout (`VisaTransport.query`), a raw socket's,
    VXI-11's or HiSLIP's reconnect before them included."""
    return link.timeout_s if is_serial(link.address) else 0.0


def clear_s(link: LinkSettings) -> float:
    """How long one device clear on `link` may take: a timeout (a VISA device clear), or on a
    serial line `SERIAL_CLEAR_TIMEOUTS` and the largest reply's transfer, which it drains."""
    if not is_serial(link.address):
        return link.timeout_s
    return SERIAL_CLEAR_TIMEOUTS * link.timeout_s + _largest_transfer_s(link)


def _largest_transfer_s(link: LinkSettings) -> float:
    if not is_serial(link.address):
        return 0.0
    return LARGEST_REPLY * BITS_PER_BYTE / (link.baud_rate or DEFAULT_BAUD_RATE)


def safe_deadline(profile: Profile) -> float:
    """Seconds from the start of making the rig safe to its deadline (s), past which each
    supply still energised is switched off where it stands.

    The ramps, each from up to a supply's rating (`coils.supply_rating_A`, with a reading's
    margin: beyond `coils.max_current_A`) at the ramp rate: connecting the three supplies
    ramps down each one found in voltage mode with its output on, one after another, and
    switches it off; then the three ramp together to their safe state, or, where that
    connect fails, each still on is ramped down on its own: four such ramps at most (a
    ramp's steps are paced by the clock, so a slow link does not lengthen it). Then the
    supplies' settling, and room for slow or lost replies: each supply's link's timeout
    for every reply it may lose (`supply_loss_budget`), and the stage's for each of its
    (`stage_loss_budget`), as the path that answers promptly takes a fraction of that; and
    the stage's braking (`stage_braking_s`)."""
    coils = profile.coils
    room = (len(coils.addresses) * supply_loss_budget(profile) * coils.link.timeout_s
            + stage_loss_budget(profile) * profile.stage.link.timeout_s
            + stage_braking_s(profile))
    return coils_ramps_s(profile) + room


def stage_braking_s(profile: Profile) -> float:
    """The most time the stage's braking may take while the rig is made safe (s): in each of
    its `STAGE_STOP_SERIES` series of stops, the wait for its axes to brake after each stop
    (`STAGE_STOPS` × `STAGE_BRAKE_WAIT_S`), and its parameter list (`HPA?`), a long reply (a
    C-884's runs to several kB): on a serial line the largest reply's transfer at the stage
    link's baud rate, which its read waits for; elsewhere within the timeouts counted."""
    per_series = (STAGE_STOPS * STAGE_BRAKE_WAIT_S
                  + _largest_transfer_s(profile.stage.link))
    return STAGE_STOP_SERIES * per_series


def coils_ramps_s(profile: Profile) -> float:
    """The supplies' share of the deadline when they answer (s): their ramps (`safe_deadline`
    says which) and their settling."""
    coils = profile.coils
    ramp = CURRENT_READ_MARGIN * coils.supply_rating / coils.max_ramp_rate + RAMP_PAUSE_S
    return (len(coils.addresses) + 1) * ramp + SETTLE_ALLOWANCE_S


def stage_share_s(profile: Profile, left_s: float | None = None) -> float:
    """Seconds the stage may take (`smm-daq safe`: its stop, then its connect to read where
    it stopped; `Rig.make_safe`: its stop) before the coils are made safe, with `left_s` to
    the path's deadline (None: the whole of it, the path beginning): that time but the
    coils' ramps and settling (`coils_ramps_s`) and the stage's exchange under way as its
    share ends, so that supplies that answer are ramped down however slow the stage is to
    answer, as the deadline counts only the stage's lost replies and braking beside them;
    at least that one exchange, so that its stop is always sent."""
    attempt = _stage_attempt_s(profile)
    left = safe_deadline(profile) if left_s is None else left_s
    return max(attempt, left - coils_ramps_s(profile) - attempt)


def _stage_attempt_s(profile: Profile) -> float:
    """One attempt of a stage exchange (s): `STAGE_REPLIES_PER_ATTEMPT` replies, each as late
    as its link allows, and the device clear after one lost (more than a query's command and
    its one reply, `command_s` and `exchange_s`, take). A stop written amid a drop aside of a
    reply cut short waits for the drop's reopen of a port that failed before its own write
    time (`transports._waited_for_reopen`: a timeout, then a timeout): within this too, as
    no other stage exchange uses the port while the drop goes on (each waits for it, or is
    refused), and the coils' links drop nothing aside, so no further term counts it."""
    stage = profile.stage.link
    return STAGE_REPLIES_PER_ATTEMPT * exchange_s(stage) + clear_s(stage)


def switch_off_tail_s(profile: Profile) -> float:
    """Seconds making the rig safe may take past its deadline (s): the attempt of an exchange
    under way when it is reached (a supply's, or the stage's, whose stop reads up to
    `STAGE_REPLIES_PER_ATTEMPT` replies at once; each reply as late as its link allows, and
    the device clear after one lost), or a ramp's pause; then each supply's switch-off,
    `loss_budget.TAIL_EXCHANGES` exchanges, one attempt each, each with its command's time
    to go out (`command_s`) and its device clear. Each supply is counted on its own link: the
    three share the coils' link settings but not their addresses, and one on a serial line
    takes longer than one on GPIB."""
    coils = profile.coils
    supply_attempts = [
        command_s(link) + exchange_s(link) + clear_s(link)
        for link in (replace(coils.link, address=address) for address in coils.addresses)
    ]
    under_way = max(*supply_attempts, _stage_attempt_s(profile), RAMP_PAUSE_S)
    return under_way + TAIL_EXCHANGES * sum(supply_attempts)


def close_wait_s(profile: Profile) -> float:
    """Seconds closing the rig may wait once it is safe (s): closing a link waits for the
    exchange under way on it in another thread (a scan's worker, a window's call in flight),
    and one begun meanwhile is refused (`Link.close`). The lock-in's and the fluxgate's links
    are outside the make-safe path (no deadline or loss budget cuts their exchanges short):
    for each, one exchange with all its attempts (`retries + 1`), each with its command's time
    to go out, its reply's and a device clear. Two threads may each have one under way. The
    rest of a reply cut short (a buffer piece a stop ended amid, on a serial line: only there
    is a read stopped within a reply) is drained aside, on a thread of its own that the close
    does not wait for (`Link._drop_rest`), never as part of an exchange; but a stage's stop
    sent amid such a drop that has not ended is sent once more as its link closes
    (`stage_close_stop_s`)."""
    links = [profile.lockin.link]
    if profile.fluxgate is not None:
        links.append(profile.fluxgate.link)
    return stage_close_stop_s(profile) + sum(
        (link.retries + 1) * (command_s(link) + exchange_s(link) + clear_s(link))
        for link in links)


def stage_close_stop_s(profile: Profile) -> float:
    """How long closing the stage's link may take sending its stop once more (s): a stop sent
    amid the drain aside of a reply cut short (on a serial line: elsewhere nothing is
    drained aside) that the close meets still under way (the making safe gave up waiting for
    it at the end of the stage's share) is sent once more before the port is closed, as the
    drain, ended by the close, would have sent it as it ended (`pi_gcs.GCSLink`): its write's
    timeout (`command_s`), after a wait for the drain's reopen of a port that failed (a
    timeout), as a stop amid a drop waits for it (`_stage_attempt_s`). A serial-over-LAN
    port's close waits for that stop to reach the adapter within its write's timeout
    (`SerialTransport.close`), nothing more. `smm-daq safe` closes the stage once the coils
    are made safe (but for its first stop's link, closed before its connect), so this time
    follows theirs, never taken from them."""
    stage = profile.stage.link
    return 2 * command_s(stage)


def safe_time_bound(profile: Profile) -> float:
    """Seconds that making the rig safe and closing it may take at most (s): its deadline
    (`safe_deadline`), then the switch-off of each supply still energised where it stands
    (`switch_off_tail_s`), then the close's wait for the lock-in and the fluxgate
    (`close_wait_s`).

    A supervisor that stops a scan with SIGTERM must wait at least this long before SIGKILL;
    otherwise the coils may be left energised.
    """
    return safe_deadline(profile) + switch_off_tail_s(profile) + close_wait_s(profile)


def real_time_bound(profile: Profile, time_scale: float) -> float:
    """`safe_time_bound` in real seconds: longer for a simulated rig run slower than real time
    (`time_scale` simulated seconds a real second, below 1); as it is for a real rig, or a
    simulated one run as fast as it can or faster than real time (0, or 1 and above)."""
    bound = safe_time_bound(profile)
    return bound / time_scale if 0 < time_scale < 1 else bound
