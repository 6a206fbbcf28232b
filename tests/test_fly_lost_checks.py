"""A fly scan rides out one lost reply to an error check that clears what it reports (the PI
stage's `ERR?`, a Kepco supply's `SYST:ERR?`: never asked again, so the link raises
`ReplyUnknown`), over the real byte path: the drivers reach the TCP-served emulators through
the fault proxies, which answer that one check with garbage.

- a set-up command of the stage's fly line (`DRC`, `WAV`) or the line's start (the C-884's
  `MOV`, the E-727's `WGO`): the stage is stopped and the line flown again;
- the velocity set back after a line (`VEL`, absolute): sent again and checked;
- a current step of the field set at the scan's start (the last, which no later step checks),
  or a supply's output switched on for it: the command, idempotent, is sent again and
  checked.

Each scan finishes with the map of a scan without the fault (the world has no sensor noise
or drift here, so the two agree to far below a pixel's signal). Lost twice in a row, the scan
fails safe: the field at its safe state, the stage still, the file resumable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from fault_proxy import GARBAGE
from served_rig import (
    HANG_GUARD_S,
    REPO,
    SIM_PROFILE,
    ServedRig,
    assert_failed_then_resumes,
    served_to_pyvisa_py,
    time_out_only_where_faked,
)

from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import Rig, open_rig

E727_PROFILE = REPO / "configs" / "simulator-e727.toml"
CENTRE = {"C-884": (12.5e-3, 12.5e-3), "E-727": (900e-6, 900e-6)}
FIELD = (0.0, 40e-6, 0.0)
LINES = 4
LINK_TIMEOUT_S = 5.0  # the emulators' replies, however loaded the machine
CURRENT_ATOL = 2e-3  # A
AGREE_T = 1e-9  # a map flown again agrees with one flown once (the signal spans µT)


def _quiet(folder: Path, sim_profile: Path) -> Path:
    """`sim_profile` without sensor noise or drift: two scans of one world give one map."""
    text = sim_profile.read_text()
    for key in ("noise_uT_rms", "drift_uT_per_hour"):
        assert f"\n{key} = " in text
        text = "\n".join(f"{key} = 0.0" if line.startswith(f"{key} = ") else line
                         for line in text.split("\n"))
    path = folder / sim_profile.name
    path.write_text(text)
    return path


def _serve(folder: Path, sim_profile: Path) -> Iterator[ServedRig]:
    with served_to_pyvisa_py(folder, sim_profile=_quiet(folder, sim_profile),
                             timeout_s=LINK_TIMEOUT_S, time_scale=0) as served:
        yield served


@pytest.fixture(scope="module")
def served_c884(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    yield from _serve(tmp_path_factory.mktemp("c884"), SIM_PROFILE)


@pytest.fixture(scope="module")
def served_e727(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedRig]:
    yield from _serve(tmp_path_factory.mktemp("e727"), E727_PROFILE)


def _served(request: pytest.FixtureRequest, controller: str) -> ServedRig:
    return request.getfixturevalue("served_c884" if controller == "C-884" else "served_e727")


def _plan(controller: str, name: str) -> ScanPlan:
    return ScanPlan.from_center(name, CENTRE[controller], (60e-6, 20e-6 * (LINES - 1)), 20e-6,
                                field=FIELD, fly=FlySettings(pixel_time=0.05))


Arm = Callable[[ServedRig, Rig, int], None]  # lose the check `times` times, from now on


def _scan(served: ServedRig, controller: str, path: Path, name: str, arm: Arm | None = None,
          *, times: int = 1, line: int = 0) -> tuple[str, Sequencer]:
    """A fly scan into `path`; `arm` called before it starts (`line` 0) or once line `line`
    - 1 is stored."""
    rig = time_out_only_where_faked(
        open_rig(load_profile(served.profile_path), clock=served.clock), served)
    try:
        seq = Sequencer(rig, path, _plan(controller, name))
        if arm is not None and line == 0:
            arm(served, rig, times)
        elif arm is not None:
            seq.subscribe(lambda e: arm(served, rig, times)
                          if e.kind == "line_done" and e.line == line - 1 else None)
        seq.start()
        status = seq.wait(HANG_GUARD_S)
    finally:
        rig.close()
        for proxy in served.proxies.values():
            proxy.restore()
    return status, seq


@pytest.fixture(scope="module")
def clean(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Callable[[str], np.ndarray]:
    """The map of a scan without faults, per controller (made when first asked for)."""
    maps: dict[str, np.ndarray] = {}

    def clean_map(controller: str) -> np.ndarray:
        if controller not in maps:
            path = tmp_path_factory.mktemp("clean") / "c.h5"
            status, seq = _scan(_served(request, controller), controller, path, "c")
            assert status == "finished", seq.message
            with h5py.File(path, "r") as f:
                maps[controller] = f["c/data/Bz"][()]
            assert np.ptp(maps[controller]) > 1000 * AGREE_T  # a map with structure
        return maps[controller]

    return clean_map


def _lose_after(role: str, query: str, after: str) -> Arm:
    """The reply to `query` lost (garbage) after the command `after` on `role`'s link."""
    def arm(served: ServedRig, _rig: Rig, times: int) -> None:
        served.proxies[role].answer(query, GARBAGE, after=after, times=times)

    return arm


def _lose_line_start(served: ServedRig, rig: Rig, times: int) -> None:
    """The check of the C-884's `MOV` that starts the next fly line lost, on `times` lines'
    starts in a row (the moves between lines are `MOV` too: armed as a line's set-up begins,
    its `MOV` is the line's)."""
    stage: Any = rig.stage
    fly_x, left = stage.fly_x, [times]

    def arming(*args: object) -> float:
        left[0] -= 1
        if left[0] == 0:
            stage.fly_x = fly_x
        served.proxies["stage"].answer("ERR?", GARBAGE, after="MOV 1", times=1)
        return fly_x(*args)  # type: ignore[no-any-return]

    stage.fly_x = arming


def _lose_last_field_step(served: ServedRig, rig: Rig, times: int) -> None:
    """The check of coil y's last current step of the field's ramp lost: no later step checks
    what that one set."""
    amps = rig.coils.currents_for(np.array(FIELD))[1]  # type: ignore[attr-defined]
    served.proxies["coil_y"].answer("SYST:ERR?", GARBAGE, after=f"CURR {amps:.6f}",
                                    times=times)


def _lose_output_on(served: ServedRig, rig: Rig, times: int) -> None:
    """The outputs found off at the scan's start: the check of coil y's `OUTP ON` lost."""
    rig.coils.output_off()  # type: ignore[attr-defined]
    served.proxies["coil_y"].answer("SYST:ERR?", GARBAGE, after="OUTP ON", times=times)


@dataclass(frozen=True)
class Case:
    id: str
    controller: str
    arm: Arm
    line: int  # lost as this line is flown (0: armed before the start; the field set: 0)
    query: str  # the check lost, named in the note and in a failure
    noted: str  # what the note says was done


CASES = [
    Case("C-884 DRC's ERR?", "C-884", _lose_after("stage", "ERR?", "DRC"), 1, "'ERR?'",
         "the line flown again"),
    Case("C-884 the line's MOV's ERR?", "C-884", _lose_line_start, 2, "'ERR?'",
         "the line flown again"),
    Case("E-727 WAV's ERR?", "E-727", _lose_after("stage", "ERR?", "WAV"), 0, "'ERR?'",
         "the line flown again"),
    Case("E-727 WGO's ERR?", "E-727", _lose_after("stage", "ERR?", "WGO"), 1, "'ERR?'",
         "the line flown again"),
    Case("E-727 the velocity restored after the line", "E-727",
         _lose_after("stage", "ERR?", "VEL"), 1, "'ERR?'", "the velocity sent again"),
    Case("coil y's last ramp step's SYST:ERR?", "C-884", _lose_last_field_step, 0,
         "'SYST:ERR?'", ""),
    Case("coil y's output switched on, its SYST:ERR?", "C-884", _lose_output_on, 0,
         "'SYST:ERR?'", ""),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_check_lost_once_is_ridden_out_and_the_map_is_whole(
        request: pytest.FixtureRequest, clean: Callable[[str], np.ndarray], tmp_path: Path,
        case: Case) -> None:
    served = _served(request, case.controller)
    role = "stage" if case.noted else "coil_y"
    answered = served.proxies[role].answered
    status, seq = _scan(served, case.controller, tmp_path / "f.h5", "f", case.arm,
                        line=case.line)
    assert status == "finished", seq.message
    assert served.proxies[role].answered == answered + 1  # the check was lost, once
    if case.noted:
        assert any(case.query in note and case.noted in note for note in seq.notes), seq.notes
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["f/data/line_done"][()].all()
        bz = f["f/data/Bz"][()]
        field = f["f/instrument/field_check/value"][()]
    np.testing.assert_allclose(bz, clean(case.controller), rtol=0, atol=AGREE_T)
    np.testing.assert_allclose(field, FIELD, rtol=0, atol=50e-9)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_check_lost_twice_in_a_row_fails_the_scan_safe_and_resumable(
        request: pytest.FixtureRequest, tmp_path: Path, case: Case) -> None:
    served = _served(request, case.controller)
    path = tmp_path / "f.h5"
    status, seq = _scan(served, case.controller, path, "f", case.arm, times=2,
                        line=case.line)
    assert status == "failed", seq.message
    assert case.query in seq.message, seq.message
    np.testing.assert_allclose(served.currents(), served.safe_currents(), atol=CURRENT_ATOL)
    assert not served.stage_moving()
    with h5py.File(path, "r") as f:
        done = int(f["f/data/line_done"][()].sum())
    assert done == case.line
    assert_failed_then_resumes(served, path, _plan(case.controller, "f"))


def _streams(path: Path, name: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[f"{name}/fly_streams/{k}"][()] for k in ("time", "lockin_x",
                                                            "position_time")}


def test_a_line_flown_again_stores_only_its_second_flight(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The line whose start lost its check is stored as flown the second time: as many
    samples as a clean scan's line, times increasing within it and after the line before."""
    served = _served(request, "C-884")
    clean_path = tmp_path / "c.h5"
    status, seq = _scan(served, "C-884", clean_path, "c")
    assert status == "finished", seq.message
    status, seq = _scan(served, "C-884", tmp_path / "f.h5", "f", _lose_line_start, line=2)
    assert status == "finished", seq.message
    assert any("the line flown again" in note for note in seq.notes), seq.notes
    clean, again = _streams(clean_path, "c"), _streams(tmp_path / "f.h5", "f")
    for key in ("time", "lockin_x", "position_time"):
        np.testing.assert_array_equal(np.isfinite(again[key]).sum(axis=1),
                                      np.isfinite(clean[key]).sum(axis=1), err_msg=key)
    for key in ("time", "position_time"):
        flat = again[key][np.isfinite(again[key])]
        assert np.all(np.diff(flat) > 0), key


def test_a_pause_between_two_lost_line_starts_makes_the_second_a_first_try(
        request: pytest.FixtureRequest, clean: Callable[[str], np.ndarray],
        tmp_path: Path) -> None:
    """Line 2's start loses its check, the operator pauses and resumes, and the start of the
    line flown after the pause loses its check once more: that is a first try again (the
    line is flown from its start after a pause anyway), so it is flown a third time and the
    scan finishes whole, rather than failing as on two lost starts in a row."""
    served = _served(request, "C-884")
    path = tmp_path / "f.h5"
    rig = time_out_only_where_faked(
        open_rig(load_profile(served.profile_path), clock=served.clock), served)
    try:
        seq = Sequencer(rig, path, _plan("C-884", "f"))
        stage: Any = rig.stage
        fly_x, starts = stage.fly_x, [0]

        def losing(*args: object) -> float:
            starts[0] += 1
            if starts[0] in (1, 2):
                served.proxies["stage"].answer("ERR?", GARBAGE, after="MOV 1", times=1)
            try:
                return fly_x(*args)  # type: ignore[no-any-return]
            finally:
                if starts[0] == 1:
                    seq.pause()  # taken at the line's retry, before it is flown
                elif starts[0] == 3:
                    stage.fly_x = fly_x

        def on_event(e: Any) -> None:
            if e.kind == "line_done" and e.line == 1:
                stage.fly_x = losing
            elif e.kind == "paused":
                seq.resume()

        seq.subscribe(on_event)
        seq.start()
        status = seq.wait(HANG_GUARD_S)
    finally:
        rig.close()
        for proxy in served.proxies.values():
            proxy.restore()
    assert status == "finished", seq.message
    assert starts[0] == 3  # lost, paused, lost again, flown
    assert sum("the line flown again" in note for note in seq.notes) == 2, seq.notes
    with h5py.File(path, "r") as f:
        assert f["f/data/line_done"][()].all()
        bz = f["f/data/Bz"][()]
    np.testing.assert_allclose(bz, clean("C-884"), rtol=0, atol=AGREE_T)
