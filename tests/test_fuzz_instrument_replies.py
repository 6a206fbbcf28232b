"""Fuzzing instrument replies over the real byte path: real drivers, pyvisa-py raw sockets, a
fault proxy in front of each TCP-served emulator answering one query itself with a corrupted
reply (garbage, empty, NaN, infinite, overlong, cut short, the wrong count of fields, a reply
meant for another query, a number out of what the instrument can report).

Each case must end in an `InstrumentError` naming the instrument, the query and the reply;
and once the link answers well again, so must the driver. Mid-scan, the scan must fail with
that message, the field ramped down and the stage still (seen from the emulators), and the
file left resumable with every finished line unchanged. The cases per query are a seeded draw;
the counts are printed (pytest -s).

Every link (the test's rigs, and those `make_rig_safe` opens itself) waits for the emulators'
replies however loaded the machine, and times out only where the proxy made sure none comes
(`links_time_out_only_where_faked`): a reply it made itself and left incomplete (a blank GCS
line, marked to continue) times out after `served_rig.FAKED_TIMEOUT_S`, through the driver's
own timeout path, and then takes LINK_TIMEOUT_S on the served world's clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from served_rig import (
    HANG_GUARD_S,
    SIM_PROFILE,
    ServedRig,
    assert_failed_then_resumes,
    links_time_out_only_where_faked,
    served_to_pyvisa_py,
)

from drivers.link import shown
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, make_rig_safe, open_rig

SEED = 20261205
PER_QUERY = 5  # corrupted replies drawn per query (of CORRUPT, besides its out-of-range ones)
CURRENT_ATOL = 2e-3  # A
LINK_TIMEOUT_S = 5.0  # the links' timeout, on the served world's clock (see the docstring)

CORRUPT: dict[str, bytes] = {
    "garbage": b"#\x15?!\xff\n",
    "empty": b"\n",
    "blank": b"   \n",
    "NaN": b"NaN\n",
    "infinite": b"-inf\n",
    "overlong": b"7" * 70_000 + b"\n",
    "cut short": b"1.25e-\n",
    "cut at a comma": b"1.2,\n",
    "too many fields": b"1,2,3,4,5\n",
    "an *IDN? reply": b"Stanford_Research_Systems,SR830,s/n12345,ver1.07\n",
    "a latin-1 digit": b"\xb2\n",
    "NUL bytes": b"\x00\x00\n",
}


@dataclass(frozen=True)
class Query:
    role: str  # the served instrument (its proxy)
    command: str  # what the proxy answers itself (a prefix of the command sent)
    call: Callable[[Rig], object]  # the driver call that sends it
    out_of_range: tuple[bytes, ...] = ()  # well-formed numbers no such instrument reports
    fine: tuple[str, ...] = ()  # CORRUPT kinds that are a valid reply to this query
    also: tuple[tuple[str, bytes], ...] = ()  # other queries the proxy answers meanwhile,
    also_after: str | None = None  # once this command went through (None: from the start)


QUERIES = (
    Query("lockin", "SNAP?", lambda r: r.lockin.read_xy()),
    Query("lockin", "LIAS?", lambda r: r.lockin.overloaded(), (b"256\n", b"-1\n")),
    Query("lockin", "OFLT?", lambda r: r.lockin.time_constant(), (b"20\n", b"-1\n")),
    Query("lockin", "SENS?", lambda r: r.lockin.sensitivity(), (b"27\n",)),
    Query("lockin", "FREQ?", lambda r: r.lockin.reference(), (b"-1\n", b"1e300\n")),
    Query("lockin", "SLVL?", lambda r: r.lockin.reference(), (b"0\n", b"1e6\n")),
    Query("lockin", "HARM?", lambda r: r.lockin.harmonic(), (b"0\n", b"-3\n", b"20000\n")),
    Query("lockin", "PHAS?", lambda r: r.lockin.phase()),
    Query("lockin", "*IDN?", lambda r: r.lockin.identify(), fine=("an *IDN? reply",)),
    Query("stage", "POS?", lambda r: r.stage.position()),
    Query("stage", "ONT?", lambda r: r.stage.on_target(), (b"1=2\n",)),
    Query("stage", "VEL?", lambda r: r.stage.velocity()),
    Query("stage", "ERR?", lambda r: r.stage.move_to(12.5e-3, 12.5e-3, 100e-6)),
    Query("stage", "*IDN?", lambda r: r.stage.identify(),  # the vendor may hold commas
          fine=("an *IDN? reply", "too many fields")),
    Query("coil_x", "MEAS:CURR?", lambda r: r.coils.currents(), (b"5.6\n", b"-1e300\n")),
    Query("coil_y", "OUTP?", lambda r: r.coils.set_field(np.array([0.0, 2e-6, 0.0])),
          (b"2\n",)),
    Query("coil_z", "SYST:ERR?", lambda r: r.coils.set_field(np.array([0.0, 0.0, 1e-6]))),
    Query("coil_x", "*IDN?", lambda r: r.coils.identify(), fine=("an *IDN? reply",)),
    Query("fluxgate", "READ?", lambda r: r.fluxgate.read_field(), (b"1,2,9e9\n",)),
    Query("fluxgate", "*IDN?", lambda r: r.fluxgate.identify(), fine=("an *IDN? reply",)),
)


def _captured(rig: Rig) -> object:
    """A capture of three seconds (its binary block holds LF bytes: read whole all the same):
    about 450 samples at 152 Hz, the served world's clock moving only in the rig's sleep."""
    rig.lockin.configure_buffer(100.0)  # type: ignore[attr-defined]
    rig.lockin.start_buffer(on_trigger=False)  # type: ignore[attr-defined]
    rig.clock.sleep(3.0)
    trace = rig.lockin.read_buffer()  # type: ignore[attr-defined]
    assert trace.x.size > 10, trace
    return trace


SR860_QUERIES = (  # the SR860's own queries, and its capture buffer (fly scans)
    Query("lockin", "SNAP?", lambda r: r.lockin.read_xy()),
    Query("lockin", "CUROVLDSTAT?", lambda r: r.lockin.overloaded(), (b"65536\n", b"-1\n")),
    Query("lockin", "SCAL?", lambda r: r.lockin.sensitivity(), (b"28\n",)),
    Query("lockin", "OFLT?", lambda r: r.lockin.time_constant(), (b"22\n",)),
    Query("lockin", "HARM?", lambda r: r.lockin.harmonic(), (b"100\n",)),
    Query("lockin", "CAPTURERATEMAX?", lambda r: r.lockin.configure_buffer(100.0),
          (b"0\n", b"-1\n", b"1e300\n")),
    Query("lockin", "CAPTUREBYTES?", lambda r: _captured(r), (b"-8\n", b"1e9\n")),
    # its status bits out of range only: the kinds of CORRUPT go the way every integer's do
    Query("lockin", "CAPTURESTAT?", lambda r: _captured(r), (b"256\n", b"-1\n"),
          fine=tuple(CORRUPT)),
    Query("lockin", "CAPTUREGET?", lambda r: _captured(r),
          (b"#\xb2\n", b"#2\xb2\xb3ab\n", b"#3abc\n", b"#0\n", b"#216short\n",
           b"#14abcd,1.5\n")),
)


def _buffered(rig: Rig) -> object:
    """An SR830 data buffer read back (`TRCA?` per channel, as a fly line reads it) after the
    time its TRCA_POINTS samples take at 64 Hz: the count SPTS? is made to answer is then
    no fewer than that time stores."""
    rig.lockin.configure_buffer(64.0)  # type: ignore[attr-defined]
    rig.lockin.start_buffer(on_trigger=False)  # type: ignore[attr-defined]
    rig.clock.sleep(TRCA_POINTS / 64.0)
    trace = rig.lockin.read_buffer()  # type: ignore[attr-defined]
    assert trace.y.size == trace.x.size, trace
    return trace


TRCA_POINTS = 4  # what SPTS? is made to answer for the TRCA? cases
TRCA_GOOD = b"+1.234567e-003,-7.654321e-004,+2.000000e-003,-1.000000e-006,\n"
TRCA_QUERIES = (  # the SR830's buffer read back: wrong, cut or corrupted points
    Query("lockin", "TRCA?", lambda r: _buffered(r), (
        TRCA_GOOD[:-20] + b"\n",  # cut inside the third point
        TRCA_GOOD[:-5] + b"\n",  # cut inside the last point: no final comma
        TRCA_GOOD[:-2] + b"\n",  # the last comma lost
        TRCA_GOOD[:-1] + b"+5.0e-3,\n",  # a point too many
        TRCA_GOOD[:45] + b"\n",  # a point too few
        b"+1.0e-3,,+2.0e-3,+3.0e-3,\n",  # a point lost between two commas
        b"+1.0e-3,nan,+2.0e-3,+3.0e-3,\n",
        b"+1.0e-3,+inf,+2.0e-3,+3.0e-3,\n",
        b"+1.0e-3,1e300,+2.0e-3,+3.0e-3,\n",  # no display of X or Y reads this
        b"+1.0e-3,-2.5e+02,+2.0e-3,+3.0e-3,\n",
        b"+1.0e-3,abc,+2.0e-3,+3.0e-3,\n",
        b"+1.0e-3,+2.0e-3,+3.0e-3,+4.0e-3\xb2,\n",
        b"4\n",  # the SPTS? reply
        b"1.002398e-05,1.577028e-09\n",  # a SNAP? reply
        b",,,,\n",
    ), also=(("SPTS?", f"{TRCA_POINTS}\n".encode()),), also_after="PAUS"),  # the read's count
)


def _serve(folder: Path, sim_profile: Path = SIM_PROFILE) -> Iterator[ServedRig]:
    # On the rig's sleeps alone (time scale 0, see caught_up_clock): on scaled real time, a
    # loaded machine's delay to the lock-in acting on its buffer's start ran the world's time
    # on meanwhile, so what a buffer held after the rig's sleep depended on the load.
    with served_to_pyvisa_py(folder, sim_profile=sim_profile, timeout_s=LINK_TIMEOUT_S,
                             time_scale=0) as rig, links_time_out_only_where_faked(rig):
        yield rig


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    yield from _serve(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def served_sr860(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    folder = tmp_path_factory.mktemp("served860")
    profile = folder / "simulator-sr860.toml"
    profile.write_text(SIM_PROFILE.read_text().replace(
        'implementation = "sr830"', 'implementation = "sr860"').replace(
        'reserve = "normal"', '# no reserve on an SR860'))
    yield from _serve(folder, profile)


@pytest.fixture
def rig(served: ServedRig) -> Iterator[Rig]:
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    rig.stage.move_to(12.5e-3, 12.5e-3, 100e-6)
    yield rig
    rig.close()


def restore(served: ServedRig) -> None:
    for proxy in served.proxies.values():
        proxy.disarm()
        proxy.restore()


def _cases(queries: tuple[Query, ...] = QUERIES) -> Iterator[tuple[Query, str, bytes]]:
    rng = np.random.default_rng(SEED)
    for q in queries:
        kinds = [k for k in CORRUPT if k not in q.fine]
        for kind in rng.choice(kinds, size=min(PER_QUERY, len(kinds)), replace=False):
            yield q, str(kind), CORRUPT[str(kind)]
        for reply in q.out_of_range:
            yield q, f"out of range {reply.strip().decode('latin-1')!r}", reply


def _named(message: str, q: Query, served: ServedRig, rig: Rig, reply: bytes) -> list[str]:
    """What the message leaves out of: the instrument, the query, the reply."""
    names = {"lockin": rig.lockin.link.name, "stage": rig.stage.link.name,
             "fluxgate": rig.fluxgate.link.name}
    raw = reply.decode("latin-1").removesuffix("\n")  # as a binary block is read
    text = raw.strip()
    missing = [w for w in (names.get(q.role, f"coil {q.role[-1]}"), q.command)
               if w not in message]
    if "no reply within" not in message and shown(text) not in message \
            and shown(raw) not in message:
        missing.append(shown(text))  # (a GCS line ending ' ' goes on: a blank one times out)
    return missing


def test_every_corrupted_reply_to_every_query_is_named_and_ridden_out(
        served: ServedRig, rig: Rig) -> None:
    _fuzz(served, rig, QUERIES)


def test_every_corrupted_sr830_buffer_reply_is_named_and_ridden_out(
        served: ServedRig, rig: Rig) -> None:
    _fuzz(served, rig, TRCA_QUERIES)


def test_a_well_formed_crafted_sr830_buffer_is_read_point_for_point(
        served: ServedRig, rig: Rig) -> None:
    """The control for the TRCA? cases: the same reply, uncorrupted, is read as sent."""
    proxy = served.proxies["lockin"]
    proxy.answer("SPTS?", f"{TRCA_POINTS}\n".encode())
    proxy.answer("TRCA?", TRCA_GOOD)
    try:
        rig.lockin.configure_buffer(64.0)  # type: ignore[attr-defined]
        trace = rig.lockin.read_buffer()  # type: ignore[attr-defined]
    finally:
        restore(served)
    points = [float(v) for v in TRCA_GOOD.decode().strip().rstrip(",").split(",")]
    assert trace.x.tolist() == points and trace.y.tolist() == points


def test_every_corrupted_reply_to_an_sr860_is_named_and_ridden_out(
        served_sr860: ServedRig) -> None:
    rig = open_rig(load_profile(served_sr860.profile_path), clock=served_sr860.clock)
    try:
        _fuzz(served_sr860, rig, SR860_QUERIES)
    finally:
        rig.close()


def _fuzz(served: ServedRig, rig: Rig, queries: tuple[Query, ...]) -> None:
    failures, count = [], 0
    for q, kind, reply in _cases(queries):
        count += 1
        for command, fixed in q.also:
            served.proxies[q.role].answer(command, fixed, after=q.also_after)
        served.proxies[q.role].answer(q.command, reply)
        try:
            q.call(rig)
        except InstrumentError as exc:
            missing = _named(str(exc), q, served, rig, reply)
            if missing or len(str(exc)) > 400:
                failures.append(f"{q.command} <- {kind}: does not name {missing} or is "
                                f"overlong: {str(exc)[:300]!r}")
        except Exception as exc:  # what the fuzzing looks for
            failures.append(f"{q.command} <- {kind}: {type(exc).__name__}: {exc}")
        else:
            failures.append(f"{q.command} <- {kind}: accepted")
        finally:
            restore(served)
        q.call(rig)  # the link answers well again: so does the driver
    print(f"{count} corrupted replies to {len(queries)} queries")
    assert not failures, f"{len(failures)} of {count}:\n" + "\n".join(failures)


def test_an_absurd_current_at_connect_is_named_and_the_rest_made_safe_in_bounded_time(
        served: ServedRig) -> None:
    """A supply answering CURR? with a current beyond any supply (a corrupted reply, or one
    meant for another query) was ramped down from it: 1e300 A in steps of the ramp limit,
    which never ended. Now it is refused; the other supplies are made safe."""
    profile = load_profile(served.profile_path)
    rig = open_rig(profile, clock=served.clock)
    rig.coils.set_field(np.array([0.0, 20e-6, 0.0]))
    rig.close()
    served.proxies["coil_y"].answer("CURR?", b"1e300\n")
    served.proxies["coil_y"].answer("OUTP?", b"1\n")
    try:
        with pytest.raises(InstrumentError) as err:
            open_rig(profile, clock=served.clock)
        assert "coil y" in str(err.value) and "'CURR?'" in str(err.value)
        assert "'1e300'" in str(err.value) and "expected a current in A in" in str(err.value)
        states: list[object] = []
        worker = threading.Thread(
            target=lambda: states.extend(make_rig_safe(profile, clock=served.clock)),
            daemon=True)
        worker.start()
        worker.join(HANG_GUARD_S)
        assert not worker.is_alive(), "making the rig safe never ended"
    finally:
        restore(served)
    coils = next(s for s in states if s.role == "coils")  # type: ignore[attr-defined]
    assert not coils.safe  # type: ignore[attr-defined]
    assert "coil y not made safe" in coils.state and "'1e300'" in coils.state  # type: ignore
    assert "coil x 0.0000 A, output off" in coils.state  # type: ignore[attr-defined]
    assert all(s.safe for s in make_rig_safe(profile, clock=served.clock))


# -- mid-scan ----------------------------------------------------------------------------------

FIELD = (0.0, 40e-6, 0.0)
POINTS = 12  # of the scan below
MID_SCAN = (  # (role, query, reply): answered so from a seeded point of the scan on
    ("lockin", "SNAP?", b"nan,1e-6\n"),
    ("lockin", "LIAS?", b"Stanford_Research_Systems,SR830,s/n12345,ver1.07\n"),
    ("stage", "POS?", b"1=12.5\n"),
    ("stage", "ERR?", b"\n"),
    ("fluxgate", "READ?", b"1.0,2.0\n"),  # read in the field check, before the first point
)


def _plan(name: str) -> ScanPlan:
    return ScanPlan.from_center(name, (12.5e-3, 12.5e-3), (60e-6, 40e-6), 20e-6, field=FIELD)


@pytest.mark.parametrize(("role", "query", "reply"), MID_SCAN, ids=[m[1] for m in MID_SCAN])
def test_a_corrupted_reply_mid_scan_fails_it_safe_and_resumable(
        served: ServedRig, tmp_path: Path, role: str, query: str,
        reply: bytes) -> None:
    rng = np.random.default_rng([SEED, MID_SCAN.index((role, query, reply))])
    proxy = served.proxies[role]
    name = "s"
    path = tmp_path / "s.h5"
    scan_rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    try:
        seq = Sequencer(scan_rig, path, _plan(name))
        if role == "fluxgate":
            proxy.answer(query, reply)
        else:
            points: list[object] = []  # the points seen, to arm the fault at the at-th
            at = int(rng.integers(1, POINTS))
            seq.subscribe(lambda e: (points.append(e), len(points) == at
                                     and proxy.answer(query, reply))
                          if e.kind == "point" else None)
        seq.start()
        status = seq.wait(HANG_GUARD_S)
    finally:
        scan_rig.close()
        restore(served)
    assert status == "failed", (status, seq.message)
    assert query in seq.message and shown(reply.decode().strip()) in seq.message, seq.message
    if seq.safety_problems:  # the stage's stop is checked by ERR?, the query corrupted
        assert query in "".join(seq.safety_problems)
        assert f"smm-daq safe --profile {served.profile_path}" in seq.message
        states = make_rig_safe(load_profile(served.profile_path), clock=served.clock)
        assert all(s.safe for s in states), states
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    assert not served.stage_moving()
    if path.exists():
        with h5py.File(path, "r") as f:
            made = name in f
        if made:
            assert_failed_then_resumes(served, path, _plan(name))
