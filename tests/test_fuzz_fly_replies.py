"""Fuzzing the replies a fly scan reads from a PI stage controller, over the real byte path:
the data recorder of both the E-727 and the C-884 (`SPA?` of its points and of the servo
cycle, `DRL?`, `DRR?` in the GCS array format) and the E-727's wave generator and trigger
output (the `ERR?` that checks each of `DRC`, `RTR`, `DRT`, `WAV`, `WSL`, `WGC`, `WTR`, `CTO`,
`TWC`, `TWS`, `WGO`), through the fault proxy in front of each TCP-served emulator.

Each case must end in an `InstrumentError` naming the stage (with its address), the query and
the reply; once the link answers well again, the driver flies a line again. Mid-scan, the scan
must fail with that message, the field ramped down and the stage still (its wave generator
too), and the file left resumable with every finished line unchanged. The generic corrupted
replies per query are a seeded draw.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from served_rig import (
    HANG_GUARD_S,
    REPO,
    SIM_PROFILE,
    ServedRig,
    assert_failed_then_resumes,
    links_time_out_only_where_faked,
    served_to_pyvisa_py,
)
from test_fuzz_instrument_replies import CORRUPT, restore

from drivers.link import shown
from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.errors import InstrumentError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, make_rig_safe, open_rig

E727_PROFILE = REPO / "configs" / "simulator-e727.toml"
SEED = 20261205
PER_QUERY = 3  # generic corrupted replies (of CORRUPT) drawn per query
CURRENT_ATOL = 2e-3  # A
CENTRE = {"C-884": (12.5e-3, 12.5e-3, 100e-6), "E-727": (900e-6, 900e-6, 100e-6)}
UNIT = {"C-884": 1e-3, "E-727": 1e-6}  # m per controller unit
CYCLE = {"C-884": "0.0001", "E-727": "2e-05"}  # the servo cycle (s) as SAMPLE_TIME gives it
# The links' timeout, on the served world's clock: every link waits for the emulators' replies
# however loaded the machine, and times out only where the proxy made sure none comes (a reply
# it made itself and left incomplete), within `served_rig.FAKED_TIMEOUT_S` real seconds, then
# taking this long on the world's clock (`links_time_out_only_where_faked`).
LINK_TIMEOUT_S = 5.0


def _serve(folder: Path, sim_profile: Path) -> Iterator[ServedRig]:
    # On the rig's sleeps alone (time scale 0): on scaled real time, a loaded machine's delay
    # to an emulator acting on a command (the lock-in's STRT) moved a fly line's samples off
    # the line, so a failed scan's finished lines held NaN (see caught_up_clock).
    with served_to_pyvisa_py(folder, sim_profile=sim_profile, timeout_s=LINK_TIMEOUT_S,
                             time_scale=0) as rig, links_time_out_only_where_faked(rig):
        yield rig


@pytest.fixture(scope="module")
def served_c884(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    yield from _serve(tmp_path_factory.mktemp("c884"), SIM_PROFILE)


@pytest.fixture(scope="module")
def served_e727(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    yield from _serve(tmp_path_factory.mktemp("e727"), E727_PROFILE)


def _served(request: pytest.FixtureRequest, controller: str) -> ServedRig:
    return request.getfixturevalue("served_c884" if controller == "C-884" else "served_e727")


class Rigs(dict):  # type: ignore[type-arg]
    """One connected rig per served controller, opened when first asked for; `release` closes
    them (one process drives a rig at a time: a scan opens its own)."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        super().__init__()
        self.request = request

    def __missing__(self, controller: str) -> Rig:
        served = _served(self.request, controller)
        rig = open_rig(load_profile(served.profile_path), clock=served.clock)
        self[controller] = rig
        return rig

    def release(self) -> None:
        for rig in self.values():
            rig.close()
        self.clear()


@pytest.fixture(scope="module")
def rigs(request: pytest.FixtureRequest) -> Iterator[Rigs]:
    rigs = Rigs(request)
    yield rigs
    rigs.release()


def fly_line(rig: Rig, controller: str) -> object:
    """One short fly line along +x from the centre, read back; then back to the centre."""
    x, y, z = CENTRE[controller]
    stage = rig.stage
    stage.move_to(x, y, z)
    # A short duration, so that the recorder's ROWS points are a whole line to the driver.
    start = stage.fly_x(x + 20e-6, 1e-3, 1e-4)  # type: ignore[attr-defined]
    rig.clock.sleep(0.03)
    while not stage.on_target():
        rig.clock.sleep(0.01)
    stage.set_velocity(rig.profile.stage.velocity)
    motion = stage.read_recorded(start)  # type: ignore[attr-defined]
    stage.move_to(x, y, z)
    assert motion.x.size >= 2, motion
    return motion


# -- the cases ---------------------------------------------------------------------------------

ROWS = 5  # what DRL? is made to answer for the DRR? cases


def _array(controller: str, *, header: dict[str, str] | None = None, drop: tuple[str, ...] = (),
           rows: list[str] | None = None, unmarked: int | None = None, end: bool = True
           ) -> bytes:
    """A DRR? reply of ROWS rows in the GCS array format, as the controller sends it (every line
    but the last ending ' '), with header keys replaced or dropped, other rows, or the line
    `unmarked` (0-based) sent without its continuation marker, or no '# END_HEADER'."""
    keys = {"TYPE": "1", "SEPARATOR": "32", "DIM": "1", "SAMPLE_TIME": CYCLE[controller],
            "NDATA": str(ROWS), "NAME0": "Actual Position of axis 1"} | (header or {})
    x0 = CENTRE[controller][0] / UNIT[controller]
    body = rows if rows is not None else [f"{x0 + 0.001 * k:.7f}" for k in range(ROWS)]
    lines = [f"# {k} = {v}" for k, v in keys.items() if k not in drop]
    lines += ["# END_HEADER"] * end + body
    return b"".join((line + ("" if k in (unmarked, len(lines) - 1) else " ") + "\n")
                    .encode("latin-1") for k, line in enumerate(lines))


@dataclass(frozen=True)
class Case:
    controller: str
    command: str  # what the proxy answers itself (a prefix of the command sent)
    reply: bytes
    kind: str
    after: str | None = None  # answered only after this command (the ERR? that checks it)
    named: str | None = None  # the part of the reply the message must quote, if not all of it

    @property
    def id(self) -> str:
        after = f" after {self.after}" if self.after else ""
        return f"{self.controller} {self.command}{after} <- {self.kind}"


def _drr_cases(controller: str) -> list[Case]:
    x0 = f"{CENTRE[controller][0] / UNIT[controller]:.7f}"
    good = [f"{float(x0) + 0.001 * k:.7f}" for k in range(ROWS)]

    def case(kind: str, named: str, **array: object) -> Case:
        return Case(controller, "DRR? 1", _array(controller, **array), kind,  # type: ignore
                    named=named)

    return [
        case("no SAMPLE_TIME", "SAMPLE_TIME", drop=("SAMPLE_TIME",)),
        case("SAMPLE_TIME NaN", "'nan'", header={"SAMPLE_TIME": "nan"}),
        case("SAMPLE_TIME 0", "'0'", header={"SAMPLE_TIME": "0"}),
        case("SAMPLE_TIME 1e300", "'1e300'", header={"SAMPLE_TIME": "1e300"}),
        case("SAMPLE_TIME an hour", "'3600'", header={"SAMPLE_TIME": "3600"}),
        case("NDATA disagreeing", "'7'", header={"NDATA": "7"}),
        case("DIM 2 (two tables)", "'2'", header={"DIM": "2"}),
        case("no END_HEADER", "# TYPE = 1", end=False),
        case("a row short", "got 4", rows=good[:-1]),
        case("a row too many", "got 6", rows=[*good, good[0]]),
        case("two columns", f"'{good[2]} 0.5'", rows=[*good[:2], good[2] + " 0.5", *good[3:]]),
        case("a row not a number", "'abc'", rows=[*good[:2], "abc", *good[3:]]),
        case("a row NaN", "'nan'", rows=[*good[:2], "nan", *good[3:]]),
        case("a row infinite", "'-inf'", rows=[*good[:2], "-inf", *good[3:]]),
        case("a row far beyond the travel", "'1e300'", rows=[*good[:2], "1e300", *good[3:]]),
        case("a blank row", "''", rows=[*good[:2], "", *good[3:]]),
        case("a header line among the rows", "got 6",
             rows=[*good[:2], "# SAMPLE_TIME = 1", *good[2:]]),
        case("no continuation marker in the header", "'# SEPARATOR = 32'", unmarked=1),
        case("no continuation marker after END_HEADER", "got 0", unmarked=6),
        case("no continuation marker after row 3", "got 3", unmarked=9),
        case("overlong", "got 20000", rows=good * 4000),
        Case(controller, "DRR? 1", b"1=5\n", "a DRL? reply", named="'1=5'"),
    ]


# DRL? corrupted upward on a short line: within the table, more than the line's tenths of a
# second since its recording was set up can hold (a sample every 100 µs on the C-884, whose
# tables hold 1024; every 20 µs on the E-727, 262144 in all)
UPWARD = {"C-884": b"1=1000\n", "E-727": b"1=100000\n"}


def _cases() -> list[Case]:
    rng = np.random.default_rng(SEED)
    cases: list[Case] = []
    set_commands = {"C-884": ("DRC", "RTR", "DRT", "VEL", "MOV"),
                    "E-727": ("DRC", "RTR", "DRT", "WAV", "WSL", "WGC", "WTR", "CTO 1 2",
                              "CTO 1 3", "TWC", "TWS", "WGO")}
    for controller in ("C-884", "E-727"):
        specific = {
            "SPA? 1 0x0E000200": [b"1 0x0E000200=0\n", b"1 0x0E000200=-2e-5\n",
                                  b"1 0x0E000200=1e300\n", b"1 0x0E000200=nan\n",
                                  b"1 0x16000200=262144\n",
                                  b"1 0x0E000200=2e-5 \n2 0x0E000200=2e-5\n"],
            "SPA? 1 0x16000200": [b"1 0x16000200=0\n", b"1 0x16000200=-1\n",
                                  b"1 0x16000200=1e9\n", b"1 0x16000200=99999999999\n",
                                  b"1 0x0E000200=2e-5\n",
                                  b"1 0x16000200=1024 \n2 0x16000200=1024\n"],
            "DRL? 1": [b"1=-3\n", b"1=99999999\n", b"2=5\n", b"1=5 \n1=6\n", b"1=1.5\n",
                       b"1=0\n", b"1=1\n",  # fewer than the line, or than 2
                       UPWARD[controller]],
        }
        for command, replies in specific.items():
            for kind in rng.choice(list(CORRUPT), size=PER_QUERY, replace=False):
                cases.append(Case(controller, command, CORRUPT[str(kind)], str(kind)))
            cases += [Case(controller, command, r, repr(r.decode())) for r in replies]
        cases += _drr_cases(controller)
        for after in set_commands[controller]:
            for kind in rng.choice(list(CORRUPT), size=2, replace=False):
                cases.append(Case(controller, "ERR?", CORRUPT[str(kind)], str(kind), after))
            cases.append(Case(controller, "ERR?", b"-1\n", "'-1'", after))
    return cases


CASES = _cases()


def _missing(message: str, case: Case, rig: Rig) -> list[str]:
    """What the message leaves out of: the stage (its address), the query, the reply."""
    text = case.reply.decode("latin-1").removesuffix("\n")
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n")]
    quoted = [case.named] if case.named else [shown(text.strip()), shown(lines)]
    missing = [w for w in (rig.stage.link.name, case.command) if w not in message]
    if case.after and case.after not in message:
        missing.append(f"the command checked ({case.after})")
    if "no reply within" not in message and not any(q in message for q in quoted):
        missing.append(quoted[0])  # (a GCS line ending ' ' goes on: a blank one times out)
    return missing


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_corrupted_fly_reply_is_named_and_ridden_out(
        request: pytest.FixtureRequest, rigs: dict[str, Rig], case: Case) -> None:
    served, rig = _served(request, case.controller), rigs[case.controller]
    proxy = served.proxies["stage"]
    if case.command == "DRR? 1":
        proxy.answer("DRL? 1", f"1={ROWS}\n".encode())
    proxy.answer(case.command, case.reply, after=case.after)
    try:
        with pytest.raises(InstrumentError) as err:
            fly_line(rig, case.controller)
    finally:
        restore(served)
    message = str(err.value)
    assert not _missing(message, case, rig), message
    assert len(message) <= 500, message
    rig.stage.stop()
    fly_line(rig, case.controller)  # the link answers well again: so does the driver


@pytest.mark.parametrize("controller", ["C-884", "E-727"])
def test_a_well_formed_crafted_recording_is_read(
        request: pytest.FixtureRequest, rigs: dict[str, Rig], controller: str) -> None:
    """The control for the DRR? cases: the same reply, uncorrupted, is read as sent."""
    served, rig = _served(request, controller), rigs[controller]
    served.proxies["stage"].answer("DRL? 1", f"1={ROWS}\n".encode())
    served.proxies["stage"].answer("DRR? 1", _array(controller))
    try:
        motion = fly_line(rig, controller)
    finally:
        restore(served)
    x0 = CENTRE[controller][0]
    np.testing.assert_allclose(motion.x, x0 + 1e-3 * UNIT[controller] * np.arange(ROWS))  # type: ignore[attr-defined]
    np.testing.assert_allclose(np.diff(motion.t), float(CYCLE[controller]))  # type: ignore[attr-defined]


# -- mid-scan ----------------------------------------------------------------------------------

FIELD = (0.0, 40e-6, 0.0)
LINES = 4  # of the fly scans below
MID_SCAN = (  # (controller, query, reply, after): so from a seeded line of a fly scan on
    # ("fly_x": from the start of that line's motion on; "start": from the scan's start)
    ("C-884", "SPA? 1 0x0E000200", b"1 0x0E000200=0\n", None),  # was a ZeroDivisionError
    ("C-884", "DRL? 1", b"1=-3\n", None),
    ("C-884", "DRR? 1", b"NaN\n", None),
    ("C-884", "ERR?", b"#\x15?!\xff\n", "MOV 1"),  # the line's move started, or a return
    ("E-727", "SPA? 1 0x16000200", b"1 0x16000200=-1\n", None),
    ("E-727", "ERR?", b"\n", "WAV"),
    ("E-727", "ERR?", b"#\x15?!\xff\n", "WGO"),  # the wave generator running
    ("E-727", "DRR? 1", b"# TYPE = 1\n# SEPARATOR = 32 \n# DIM = 1\n", None),  # markers lost
    ("C-884", "DRL? 1", b"1=0\n", None),
    ("E-727", "DRL? 1", b"1=1\n", None),
    ("C-884", "ONT?", b"1=0 \n2=0 \n3=0\n", None),
    ("E-727", "ONT?", b"1=1 \n2=0 \n3=1\n", None),
    ("E-727", "ONT?", b"1=0 \n2=1 \n3=1\n", "fly_x"),  # the fly line never ends
    ("C-884", "SPA? 1 0x16000200", b"1 0x16000200=0\n", "start"),  # the plan's checks
    ("E-727", "SPA? 1 0x16000200", b"1 0x16000200=1e9\n", "start"),
    ("C-884", "SPTS?", b"0\n", None),  # the lock-in's buffer, read beside the recorder
    ("E-727", "SPTS?", b"3\n", None),
    ("C-884", "TRCA?", b"+1.234567e-003,-7.654321e-0\n", None),  # its points, cut short
    ("E-727", "TRCA?", b"+1.0e-3,nan,+2.0e-3,\n", None),
)
LOCKIN_QUERIES = ("SPTS?", "TRCA?")


def _fly_plan(controller: str, name: str) -> ScanPlan:
    x, y, _ = CENTRE[controller]
    return ScanPlan.from_center(name, (x, y), (60e-6, 20e-6 * (LINES - 1)), 20e-6,
                                field=FIELD, fly=FlySettings(pixel_time=0.05))


def _wave_running(served: ServedRig) -> bool:
    emulator = served.backend.endpoint(served.sim_profile.stage.link.address)
    wave = getattr(emulator, "wave", None)
    return wave is not None and wave.running_mask() != "0"


@pytest.mark.parametrize(("controller", "query", "reply", "after"), MID_SCAN,
                         ids=[f"{m[0]} {m[1]}{' after ' + m[3] if m[3] else ''} <- "
                              f"{m[2].decode('latin-1')!r:.24}" for m in MID_SCAN])
def test_a_corrupted_reply_mid_fly_scan_fails_it_safe_and_resumable(
        request: pytest.FixtureRequest, rigs: Rigs, tmp_path: Path, controller: str,
        query: str, reply: bytes, after: str | None) -> None:
    rigs.release()
    served = _served(request, controller)
    rng = np.random.default_rng([SEED, MID_SCAN.index((controller, query, reply, after))])
    role = "lockin" if query in LOCKIN_QUERIES else "stage"
    proxy = served.proxies[role]
    name, path = "f", tmp_path / "f.h5"
    at = -1 if after == "start" else int(rng.integers(0, LINES - 1))  # armed once it is written
    rig = open_rig(load_profile(served.profile_path), clock=served.clock)
    try:
        seq = Sequencer(rig, path, _fly_plan(controller, name))

        def arm(event: object) -> None:
            if event.kind == "line_done" and event.line == at:  # type: ignore[attr-defined]
                if after == "fly_x":
                    rig.stage.fly_x = fly_then_arm  # type: ignore[attr-defined]
                else:
                    proxy.answer(query, reply, after=after)

        fly_x = rig.stage.fly_x  # type: ignore[attr-defined]

        def fly_then_arm(*args: object) -> float:
            start = fly_x(*args)
            proxy.answer(query, reply)
            return start

        seq.subscribe(arm)
        if after == "start":  # the checks in start(), before the entry or the field
            proxy.answer(query, reply)
            with pytest.raises(InstrumentError) as err:
                seq.start()
            status, message = "failed", str(err.value)
        else:
            seq.start()
            status, message = seq.wait(HANG_GUARD_S), seq.message
    finally:
        rig.close()
        restore(served)
    assert status == "failed", (status, message)
    lines = [ln.strip() for ln in reply.decode("latin-1").strip().split("\n")]
    named = {"ONT?": shown(lines), "DRL? 1": shown(lines)}.get(query, shown(lines[0]))
    if after == "fly_x":  # the sequencer's wait for the line's end: the state, not the reply
        named, query = "not on target", "fly line did not end"
    if query == "SPTS?":  # the count, checked against the time since the start or the line's
        named = f"{int(reply)} samples"
    for part in (getattr(rig, role).link.name, query, named):
        assert part in message, (part, message)
    if seq.safety_problems:  # the stage's stop is checked by ERR?, the query corrupted
        assert f"smm-daq safe --profile {served.profile_path}" in message
        assert all(s.safe for s in make_rig_safe(load_profile(served.profile_path),
                                                 clock=served.clock))
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    assert not served.stage_moving()
    assert not _wave_running(served)
    if after == "start":  # found by the checks before the entry is made or the field set
        assert not path.exists() or name not in h5py.File(path, "r")
        return
    with h5py.File(path, "r") as f:
        assert int(f[f"{name}/data/line_done"][()].sum()) == at + 1
    assert_failed_then_resumes(served, path, _fly_plan(controller, name))


def test_only_the_line_is_read_from_a_recorder_that_went_on_recording(
        rigs: Rigs) -> None:
    """An E-727 records until its table of 262144 points is full: read late (a slow lock-in
    buffer read, a loaded PC), `DRL?` counted far more than the line, and all of it was read,
    megabytes on the link, past the link's timeout. Now only the line's points (and an eighth
    more) are asked for."""
    rig = rigs["E-727"]
    x, y, z = CENTRE["E-727"]
    rig.stage.move_to(x, y, z)
    start = rig.stage.fly_x(x + 20e-6, 1e-3, 0.02)  # type: ignore[attr-defined]
    rig.clock.sleep(3.0)  # virtual: 150,000 samples of 20 µs
    motion = rig.stage.read_recorded(start)  # type: ignore[attr-defined]
    assert 0.02 / 2e-5 <= motion.x.size <= 4096 * 9 // 8  # type: ignore[attr-defined]
    assert motion.x[-1] == pytest.approx(x + 20e-6, abs=0.1e-6)  # type: ignore[attr-defined]
    rig.stage.set_velocity(rig.profile.stage.velocity)
    rig.stage.move_to(x, y, z)
