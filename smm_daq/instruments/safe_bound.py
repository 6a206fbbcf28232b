"""The most time making the rig safe may take (`safe_time_bound`): what `smm-daq safe` prints
and a supervisor waits between SIGTERM and SIGKILL, what a closing program waits for.

Counted on the longest path, and every exchange in it at its link's timeout: a link may be
slow to answer (a loaded bus, a busy instrument) and still answer within its timeout, and a
reply slower than that is lost, counted apart. The exchanges are counted one by one from the
drivers' make-safe paths (`SUPPLY_EXCHANGES`, `STAGE_EXCHANGES`); a ramp's steps are paced by
the clock (`drivers.ramp_pace`), so a slow link makes a ramp's steps fewer, not the ramp
longer, save the steps it talks in after its time is up (`RAMP_STEPS_PAST`).
"""

from __future__ import annotations

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
# Exchanges (a command or a query) one coil supply has at most on the make-safe path, its
# ramps' steps apart. Its connect with the other two: *IDN?, 20 error-queue reads
# (`ERROR_QUEUE_READS`) and *CLS, FUNC:MODE? and OUTP?, then either VOLT?, MEAS:CURR?, OUTP OFF
# and its check (out of voltage mode) or VOLT?, MEAS:CURR?, CURR and its check (a current held
# by a low voltage limit), with OUTP?; FUNC:MODE CURR, VOLT and their checks, CURR? and OUTP?:
# 35. That connect failing, on its own: *IDN?, CURR?, 20 error-queue reads and *CLS, OUTP?,
# OUTP OFF and its check, MEAS:CURR?, or its switch-off when given up (checked, then sent
# once more unchecked): 28. (Connected, the path's rest is shorter: its enable, four; a last
# look while it settles, two; OUTP OFF and its check, MEAS:CURR? and the read-back, four.)
SUPPLY_EXCHANGES = 35 + 28
# Exchanges the stage has at most: its stop on a link of its own (ERR?, STP, ERR?, *IDN?, and
# the stop and its check once more), its connect (ERR?, HLP?, SAI?, the units (PUN? or SPA?),
# TMN?, TMX?, SVO, VEL and their checks, FRF?), its stop (and its check) and POS?
STAGE_EXCHANGES = 6 + 11 + 2 + 1
# A ramp's step talks to each supply in it: OUTP?, the current (or voltage) and its check
STEP_EXCHANGES = 3
# the steps of one ramp that may talk past its duration: the one under way when its time is
# up, the last, and the last once more where its check lost its reply
RAMP_STEPS_PAST = 3
# the ramps one supply takes part in at most: out of voltage mode at connect, then the ramp
# of the three to the safe state or its own
RAMPS_PER_SUPPLY = 2
RAMP_PAUSE_S = 0.1  # the drivers' pause between a ramp's steps, at most


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


def safe_time_bound(profile: Profile) -> float:
    """Seconds that making the rig safe may take at most (s): the ramps, the supplies'
    settling, every exchange of the path answered as late as its link allows, and every
    reply the path can wait for in vain with the device clear after it.

    Ramps, each from up to a supply's rating (`coils.supply_rating_A`, with a reading's
    margin: beyond `coils.max_current_A`) at the ramp rate: connecting the three supplies
    ramps down each one found in voltage mode with its output on, one after another, and
    switches it off. Where that connect fails, each supply with its output on is ramped
    down on its own, one after another: one whose ramp out of voltage mode was cut short by
    a lost reply, and those the connect had not reached; four such ramps at most. Where it
    succeeds, the three then ramp together to their safe state, to the current nulling the
    ambient field (at most `coils.max_current_A`): the connect's three and that one, no
    longer than four either. The drivers pace a ramp's steps by the clock, so that
    exchanges answered slowly make its steps fewer and larger, at the same rate; each
    supply talks in `RAMP_STEPS_PAST` steps of each of its ramps past the ramp's duration.

    Exchanges: each supply's `SUPPLY_EXCHANGES` and the stage's `STAGE_EXCHANGES`, each at
    its link's timeout (a reply later than that is lost).

    Lost replies: each coil supply may lose `supply_loss_budget` replies over the whole path,
    all attempts together, before it is given up (`loss_budget`). Each costs its timeout,
    the device clear after it (`clear_s`) and what it makes sent again or not count as the
    ramp's progress: a command and its check sent once more, or the step it was lost in
    (every supply's exchanges of that step, and a retry), which the ramp does not catch up.
    The stage, stopped first, may lose `stage_loss_budget` replies over the whole path
    before it is given up alike, each with its timeout, its device clear and the stop and
    its check sent once more.

    A supervisor that stops a scan with SIGTERM must wait at least this long before SIGKILL;
    otherwise the coils may be left energised.
    """
    coils = profile.coils
    supplies = len(coils.addresses)
    ramps = supplies + 1
    ramp = ramps * (CURRENT_READ_MARGIN * coils.supply_rating / coils.max_ramp_rate
                    + RAMP_PAUSE_S)
    each = exchange_s(coils.link)
    ramp_talk = RAMPS_PER_SUPPLY * RAMP_STEPS_PAST * STEP_EXCHANGES
    talk = supplies * each * (SUPPLY_EXCHANGES + ramp_talk)
    # after a lost reply: a command and its check sent again, or the step it was lost in
    # (every supply's exchanges in it, and a retry), not counted as the ramp's progress
    after_lost = each * max(2, supplies * STEP_EXCHANGES + 1)
    lost = supplies * supply_loss_budget(profile) * (coils.link.timeout_s + clear_s(coils.link)
                                                     + after_lost)
    stage = profile.stage.link
    # each lost: its wait, its device clear, and the stop and its check sent again
    stage_talk = (exchange_s(stage) * STAGE_EXCHANGES + stage_loss_budget(profile)
                  * (stage.timeout_s + clear_s(stage) + 2 * exchange_s(stage)))
    return ramp + SETTLE_ALLOWANCE_S + talk + lost + stage_talk
