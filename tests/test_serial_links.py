"""The serial transport over a real byte path: pyserial's `socket://` URL reaches the emulators
served on loopback TCP (`serial:socket://127.0.0.1:<port>`, as a serial-over-LAN adapter is
reached), so the real drivers talk to them through the serial transport's own framing.

The served world runs on a virtual clock that only the test advances: buffers fill in
simulated time and nothing sleeps.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from drivers.sr860 import SR860
from simulators.backend import SimulatedBackend
from simulators.sr860_emulator import SR860Emulator
from simulators.tcp_server import HOST, EmulatorServer
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import Profile, load_profile

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1.0


def serial_url(port: int) -> str:
    return f"serial:socket://{HOST}:{port}"


@dataclass
class Served:
    clock: VirtualClock
    profile: Profile
    backend: SimulatedBackend
    server: EmulatorServer

    def lockin_address(self) -> str:
        return serial_url(self.server.ports()[self.profile.lockin.link.address])


def _served(folder: Path, model: str) -> Iterator[Served]:
    text = (REPO / "configs" / "simulator.toml").read_text()
    if model == "sr860":
        text = text.replace('implementation = "sr830"', 'implementation = "sr860"').replace(
            'reserve = "normal"', "# no reserve on an SR860")
    path = folder / f"simulator-{model}.toml"
    path.write_text(text)
    profile = load_profile(path)
    clock = VirtualClock()
    backend = SimulatedBackend(profile, clock)
    backend.endpoint(profile.lockin.link.address).handle("*IDN?")  # compile the field code
    server = backend.serve_tcp()
    try:
        yield Served(clock, profile, backend, server)
    finally:
        server.close()


@pytest.fixture(scope="module")
def served_sr860(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(tmp_path_factory.mktemp("sr860"), "sr860")


def _with_crlf(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` float32 values about a volt whose little-endian bytes hold CR LF (0x0D 0x0A)
    within a value, at every byte offset, and across two values."""
    values = rng.uniform(-0.9, 0.9, count).astype("<f4")
    raw = bytearray(values.tobytes())
    for at in range(0, len(raw) - 16, 40):
        raw[at:at + 4] = b"\r\n\x80\x3f"  # 1.0003, CR LF in its low bytes
        raw[at + 5:at + 7] = b"\r\n"  # in the middle bytes
        raw[at + 10:at + 12] = b"\r\n"  # in the exponent byte: a tiny value
        raw[at + 15:at + 17] = b"\r\n"  # the last byte of one value, the first of the next
    return np.frombuffer(bytes(raw), dtype="<f4").copy()


def test_an_sr860_capture_holding_cr_lf_is_read_over_serial_value_for_value(
        served_sr860: Served) -> None:
    """The block's bytes hold CR LF (and the payload ends in CR): a serial read that strips
    a line's trailing CR lost one byte per CR LF and failed the read on every retry."""
    s = served_sr860
    settings = replace(s.profile.lockin, link=replace(
        s.profile.lockin.link, address=s.lockin_address(), timeout_s=TIMEOUT_S))
    lockin = SR860.from_profile(settings, clock=s.clock)
    emulator = s.backend.lockin
    assert isinstance(emulator, SR860Emulator)
    try:
        lockin.configure_buffer(100.0)
        lockin.start_buffer(on_trigger=False)
        lockin.identify()  # a reply: the served emulator took the start (a write has none)
        s.clock.sleep(3.0)  # virtual: the capture runs in simulated time
        lockin.link.write("CAPTURESTOP")
        lockin.identify()
        floats = emulator._captured
        assert floats > 100
        # What the instrument captured, as a real SR860 holds it (its data are any floats;
        # the emulator's own keep LF out of the payload for clients that stop at an LF).
        crafted = _with_crlf(floats, np.random.default_rng(7))
        emulator._capture[:floats] = crafted
        kb_end = -(-floats * 4 // 1024) * 256  # the last float of the last kB read
        emulator._capture[kb_end - 1] = struct.unpack("<f", b"\x00\x00\x80\x0d")[0]
        assert crafted.tobytes().count(b"\r\n") > 10
        trace = lockin.read_buffer()
    finally:
        lockin.close()
    np.testing.assert_array_equal(trace.x, crafted[0::2].astype(float))
    np.testing.assert_array_equal(trace.y, crafted[1::2].astype(float))
