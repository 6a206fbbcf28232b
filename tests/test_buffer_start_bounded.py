"""A lock-in buffer started without a trigger (SR830 `STRT`, SR860 `CAPTURESTART ONE,IMM`) has
no reply, so the driver times it by the buffer's count read right after (`SPTS?`,
`CAPTUREBYTES?`): the start lay between the command leaving and that count's reply, less the
samples it counted. A link that stalled the start command leaves that span wide: the start is
refused (and retried by the scan) rather than a fly line's samples placed where the stage was
not. On the emulators, in one simulated world on the virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.srs_lockin import START_FLOOR_S, start_bound
from smm_daq.errors import ProtocolError
from smm_daq.instruments.profile import load_profile, parse_profile
from smm_daq.instruments.rig import Rig, open_rig

PROFILE = Path("configs/simulator.toml")
START = {"sr830": "STRT", "sr860": "CAPTURESTART"}
COUNT = {"sr830": "SPTS?", "sr860": "CAPTUREBYTES?"}
BUS_LATENCY_S = 0.004  # each message's time on the bus: a healthy link
STALL_S = 0.3  # a link that held the start command this long
SLOW_LINK_S = 0.06  # RS-232 at 9600 baud behind a USB adapter: a slow link, not a stalled one


class StallingStart:
    """The lock-in's transport: the start command reaches the lock-in `stall` s late on the
    rig's clock (0: at once); `taken_at` is the rig-clock time it was passed on. A serial
    line's `baud_rate`, where set (None: a bus that has none)."""

    baud_rate: int | None = None

    def __init__(self, rig: Rig, command: str, stall: float) -> None:
        self.transport = rig.lockin.link.transport  # type: ignore[attr-defined]
        self.clock = rig.clock
        self.command = command
        self.stall = stall
        self.taken_at: float | None = None

    def write(self, message: str) -> None:
        if message.startswith(self.command):
            self.clock.advance(self.stall)  # type: ignore[attr-defined]
            self.taken_at = self.clock.now()
        self.transport.write(message)

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)


@pytest.fixture(params=["sr830", "sr860"])
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rig(model: str) -> Iterator[Rig]:
    text = PROFILE.read_text()
    if model == "sr860":
        text = text.replace('implementation = "sr830"', 'implementation = "sr860"').replace(
            'reserve = "normal"', '# no reserve on an SR860')
    profile = parse_profile(text, PROFILE.resolve()) if model == "sr860" else load_profile(PROFILE)
    with open_rig(profile, world_options={"bus_latency": BUS_LATENCY_S}) as rig:
        rig.lockin.configure_buffer(100.0)  # type: ignore[attr-defined]
        yield rig


def _stalling(rig: Rig, model: str, stall: float) -> StallingStart:
    link = rig.lockin.link  # type: ignore[attr-defined]
    link.transport = StallingStart(rig, START[model], stall)
    return link.transport  # type: ignore[no-any-return]


@pytest.mark.parametrize("held", [0.0, SLOW_LINK_S])
def test_a_start_on_a_healthy_link_is_timed_within_its_round_trip(rig: Rig, model: str,
                                                                  held: float) -> None:
    """The control: the count read after a start the link did not hold, or held as long as a
    slow healthy link does, refuses nothing and times the start within that hold."""
    start = _stalling(rig, model, held)
    before = rig.clock.now()
    started = rig.lockin.start_buffer(on_trigger=False)  # type: ignore[attr-defined]
    assert started is not None and start.taken_at is not None
    # the lock-in took the command one bus latency after it was passed on
    assert abs(started - (start.taken_at + BUS_LATENCY_S)) <= 2 * BUS_LATENCY_S + held / 2
    assert before <= started <= rig.clock.now()


def test_a_start_the_link_stalled_is_refused_not_misplaced(rig: Rig, model: str) -> None:
    """Without the count read after it, the start was timed as the command left: 0.3 s before
    the lock-in began storing, a whole fly line's samples placed 0.3 s early."""
    _stalling(rig, model, STALL_S)
    with pytest.raises(ProtocolError) as err:
        rig.lockin.start_buffer(on_trigger=False)  # type: ignore[attr-defined]
    message = str(err.value)
    assert "the buffer's start is known only within 0.3" in message, message
    assert COUNT[model] in message and rig.lockin.link.name in message  # type: ignore[attr-defined]


def test_a_count_too_high_for_the_time_since_the_start_is_refused(rig: Rig, model: str) -> None:
    """A count reply no buffer just started holds (a corrupted one) is refused, naming it."""
    link = rig.lockin.link  # type: ignore[attr-defined]
    inner = link.transport

    class Inflated:
        def __getattr__(self, name: str) -> object:
            return getattr(inner, name)

        def query(self, message: str) -> str:
            reply = inner.query(message)
            return "4096" if message.startswith(COUNT[model]) else reply

    link.transport = Inflated()
    with pytest.raises(ProtocolError) as err:
        rig.lockin.start_buffer(on_trigger=False)  # type: ignore[attr-defined]
    assert f"{COUNT[model]} held {4096 // (8 if model == 'sr860' else 1)} samples" in str(
        err.value)


# (pixel time s, the bound on the span its start is known within s): where the floor rules
# (0.05 s pixels: tighter than the 0.15 s allowed whatever the pixel before), and half a pixel
# (0.4 s pixels: wider)
BOUNDS = [(0.05, START_FLOOR_S), (0.4, 0.2)]
UNDER_S = 0.03  # held this much less than the bound: the round trip and a sample period fit


@pytest.mark.parametrize(("pixel_time", "bound"), BOUNDS)
def test_the_start_is_bounded_by_a_part_of_the_pixel_with_a_floor(
        rig: Rig, model: str, pixel_time: float, bound: float) -> None:
    """A start held just under the bound for the fly line's pixel time is timed, at most half
    the bound off (a quarter pixel, or half the floor); held just over it, refused. The span
    is never narrower than the hold (the start came after it)."""
    start = _stalling(rig, model, bound - UNDER_S)
    started = rig.lockin.start_buffer(on_trigger=False,  # type: ignore[attr-defined]
                                      pixel_time=pixel_time)
    assert start.taken_at is not None
    assert abs(started - (start.taken_at + BUS_LATENCY_S)) <= bound / 2
    start.stall = bound + 1e-3
    with pytest.raises(ProtocolError) as err:
        rig.lockin.start_buffer(on_trigger=False,  # type: ignore[attr-defined]
                                pixel_time=pixel_time)
    assert f"expected within {bound:g} s" in str(err.value), str(err.value)
    assert start_bound(pixel_time) == pytest.approx(bound)


# (the start command, the count query and the longest count reply) of each model
EXCHANGE = {"sr830": ("STRT", "SPTS?", "16383"),
            "sr860": ("CAPTURESTART ONE,IMM", "CAPTUREBYTES?", "4194304")}
SLOW_BAUD = 1200  # an SR830's RS-232 goes down to 300 baud
ADAPTER_LATENCY_S = 0.032  # a USB-serial adapter's latency timer, 16 ms each way


def test_on_a_slow_serial_line_the_floor_allows_the_time_its_bytes_take(
        rig: Rig, model: str) -> None:
    """At 1200 baud the start command and the count reply alone take 92 ms (SR830) or 0.24 s
    (SR860), and an adapter's latency 32 ms more: a healthy line, which a fixed 75 ms floor
    refused on every retry, so no fly line could start. The floor follows the baud rate (the
    exchange's bytes and the latency, half as much again); a start stalled well beyond that
    is still refused."""
    start = _stalling(rig, model, 0.0)
    start.baud_rate = SLOW_BAUD
    command, _, reply = EXCHANGE[model]
    per_byte = 10 / SLOW_BAUD  # a start bit, eight data bits, a stop bit
    start.stall = (len(command) + len(reply) + 2) * per_byte + ADAPTER_LATENCY_S
    assert start.stall > START_FLOOR_S
    started = rig.lockin.start_buffer(on_trigger=False,  # type: ignore[attr-defined]
                                      pixel_time=0.05)
    assert start.taken_at is not None
    bound = 1.5 * (ADAPTER_LATENCY_S + sum(len(m) + 1 for m in EXCHANGE[model]) * per_byte)
    assert abs(started - (start.taken_at + BUS_LATENCY_S)) <= bound / 2
    start.stall = bound + 0.01
    with pytest.raises(ProtocolError) as err:
        rig.lockin.start_buffer(on_trigger=False,  # type: ignore[attr-defined]
                                pixel_time=0.05)
    assert f"expected within {bound:.6g} s" in str(err.value), str(err.value)
    assert "at its baud rate" in str(err.value), str(err.value)


def test_a_fly_scan_bounds_its_starts_by_its_pixel_time(rig: Rig, model: str,
                                                        tmp_path: Path) -> None:
    """The sequencer gives the lock-in its plan's pixel time: 0.4 s pixels take a start held
    0.17 s (known within a quarter pixel), which the floor alone refused on every retry."""
    from smm_daq.acquisition.fly.settings import FlySettings
    from smm_daq.acquisition.plan import ScanPlan
    from smm_daq.acquisition.sequencer import Sequencer

    start = _stalling(rig, model, 0.2 - UNDER_S)
    plan = ScanPlan.from_center("p", (12.5e-3, 12.5e-3), (40e-6, 20e-6), 20e-6,
                                fly=FlySettings(pixel_time=0.4))
    seq = Sequencer(rig, tmp_path / "p.h5", plan)
    assert seq.run() == "finished", seq.message
    assert start.taken_at is not None
