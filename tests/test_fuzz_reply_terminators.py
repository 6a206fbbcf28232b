"""Fuzzing instrument replies with more than one reply in them, over the real byte path (real
drivers, pyvisa-py raw sockets, the fault proxy in front of each TCP-served emulator), which
tests/test_fuzz_instrument_replies.py leaves out: a well-formed reply followed, in the same
packet, by an extra terminator (LF, CR LF, a blank line), a second reply, or garbage.

The query may take the first line or refuse the reply with an `InstrumentError`; either way
the next query must read its own reply. An extra line left in the link had been read as the
reply to the next query, and every later query's as the reply to the query before it: a lock-in
sending one line too many shifted every later point of a scan by one reading, silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from served_rig import ServedRig, counted, served_to_pyvisa_py

from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig

LINK_TIMEOUT_S = 5.0  # no reply here is waited for: each is whole, or one the emulator sends

# (role, query the proxy answers, a well-formed reply to it, the driver call that sends it)
QUERIES: list[tuple[str, str, bytes, Callable[[Rig], object]]] = [
    ("lockin", "SNAP?", b"1.5e-06,-2.5e-07\n", lambda r: r.lockin.read_xy()),
    ("lockin", "OFLT?", b"8\n", lambda r: r.lockin.time_constant()),
    ("lockin", "SENS?", b"20\n", lambda r: r.lockin.sensitivity()),
    ("lockin", "LIAS?", b"0\n", lambda r: r.lockin.overloaded()),  # destructive: sent once
    ("lockin", "PHAS?", b"12.5\n", lambda r: r.lockin.phase()),
    ("stage", "POS?", b"1=12.4 \n2=12.6 \n3=0.1\n", lambda r: r.stage.position()),
    ("coil_x", "MEAS:CURR?", b"0.125\n", lambda r: r.coils.currents()),
    ("fluxgate", "READ?", b"0.1,0.2,0.3\n", lambda r: r.fluxgate.read_field()),
]
EXTRA = st.one_of(
    st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b" \n", b"\x00\n"]),
    st.builds(lambda n: b"7" * n + b"\n", st.integers(1, 40)),  # a second reply, a number
    st.binary(min_size=1, max_size=30),  # garbage, terminated or not
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    # time scale 0: the served world's clock moves only in the rig's sleeps, so a query asked
    # twice is answered alike (what the property compares)
    with served_to_pyvisa_py(tmp_path_factory.mktemp("served"), timeout_s=LINK_TIMEOUT_S,
                             time_scale=0) as rig:
        yield rig


@pytest.fixture(scope="module")
def rig(served: ServedRig) -> Iterator[Rig]:
    rig = counted(open_rig(load_profile(served.profile_path), clock=served.clock), served)
    rig.stage.move_to(12.5e-3, 12.5e-3, 100e-6)
    yield rig
    rig.close()


def _restore(served: ServedRig) -> None:
    for proxy in served.proxies.values():
        proxy.restore()


NOISE_T = {"READ?": 1e-7}  # the fluxgate's readings differ by its noise (a few nT); others not


def _same(a: object, b: object, command: str = "") -> bool:
    if command in NOISE_T:
        return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=0, atol=NOISE_T[command]))
    return repr(a) == repr(b)  # tuples and arrays of floats alike


def _answered_with(served: ServedRig, rig: Rig, role: str, command: str, reply: bytes,
                   call: Callable[[Rig], object]) -> object:
    """What `call` gives (or the InstrumentError it raises) with `command` answered `reply`."""
    served.proxies[role].answer(command, reply)
    try:
        return call(rig)
    except InstrumentError as exc:
        return exc
    finally:
        _restore(served)


def test_a_second_reply_is_never_read_as_the_next_querys(served: ServedRig, rig: Rig) -> None:
    """The lock-in answering SNAP? with two readings: the next SNAP? reads the lock-in again,
    not the second reading (it had: 3e-06, 4e-06)."""
    expected = rig.lockin.read_xy()
    got = _answered_with(served, rig, "lockin", "SNAP?", b"1e-06,2e-06\n3e-06,4e-06\n",
                         lambda r: r.lockin.read_xy())
    assert got == (1e-06, 2e-06)
    assert rig.lockin.read_xy() == expected


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(QUERIES), extra=EXTRA)
def test_a_reply_with_more_after_it_leaves_the_link_in_step(
        served: ServedRig, rig: Rig, case: tuple[str, str, bytes, Callable[[Rig], object]],
        extra: bytes) -> None:
    role, command, good, call = case
    expected = call(rig)
    well_formed = _answered_with(served, rig, role, command, good, call)
    assert not isinstance(well_formed, InstrumentError), well_formed  # the control
    got = _answered_with(served, rig, role, command, good + extra, call)
    assert isinstance(got, InstrumentError) or _same(got, well_formed), got
    for _ in range(2):  # and every query after it reads its own reply
        assert _same(call(rig), expected, command), (command, good + extra)
