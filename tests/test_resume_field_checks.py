"""The field check made before a scan runs is kept per run: the start and each resume add a row
to `instrument/field_check/value_log` (an NXlog) instead of replacing the one before; `value`
holds the latest run's. A resume that stops before its check leaves its row NaN. An entry of an
earlier version (no log) still reads and resumes, its one value replaced as before."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from acq_fakes import FakeRig, fake_rig, run_scan

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.errors import InstrumentLost
from smm_daq.storage.h5file import text
from smm_daq.storage.nexus import list_entries
from smm_daq.storage.scan_entry import read_field_checks

FIELD = np.array([0.0, 20e-6, 0.0])
BIAS = np.array([3e-9, -2e-9, 1e-9])  # what the fluxgate reads off on a later day: in tolerance
LOG = "k/instrument/field_check/value_log"


def _plan() -> ScanPlan:
    return ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (60e-6, 50e-6), 10e-6,
                                field=tuple(FIELD))


def _biased_rig() -> FakeRig:
    rig = fake_rig()
    assert rig.fluxgate is not None
    rig.fluxgate.bias = BIAS.copy()
    return rig


@pytest.fixture
def cut_off(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    assert run_scan(path, fake_rig(), _plan(), resume=False, stop_after_line=1) == "aborted"
    return path


def test_each_resume_adds_its_field_check_and_keeps_the_earlier_ones(cut_off: Path) -> None:
    (first,) = read_field_checks(cut_off, "k")
    assert first.run == 0 and np.isfinite(first.seconds)
    np.testing.assert_allclose(first.field, FIELD)

    broken = fake_rig()  # a resume whose coils are gone: it fails before its field check

    def lost(*_: object, **__: object) -> None:
        raise InstrumentLost("link failed", instrument="coils")

    broken.coils.set_field = lost  # type: ignore[method-assign]
    assert run_scan(cut_off, broken, _plan(), resume=True) == "failed"
    assert run_scan(cut_off, _biased_rig(), _plan(), resume=True) == "finished"

    checks = read_field_checks(cut_off, "k")
    assert [c.run for c in checks] == [0, 1, 2]
    np.testing.assert_allclose(checks[0].field, FIELD)  # the start's, not replaced
    assert np.isnan(checks[1].field).all() and np.isnan(checks[1].seconds)
    np.testing.assert_allclose(checks[2].field, FIELD + BIAS, rtol=0, atol=1e-15)
    with h5py.File(cut_off, "r") as f:  # plain h5py: an NXlog under the NXsensor
        log = f[LOG]
        assert text(log.attrs["NX_class"]) == "NXlog"
        assert log["value"].shape == (3, 3) and text(log["value"].attrs["units"]) == "T"
        assert text(log["time"].attrs["units"]) == "s"
        assert text(log["time"].attrs["start"]) == text(f["k/start_time"][()])
        np.testing.assert_allclose(f["k/instrument/field_check/value"][()], FIELD + BIAS,
                                   rtol=0, atol=1e-15)  # the latest, for readers of (3,)
    (info,) = list_entries(cut_off)
    assert info.status == "finished"
    np.testing.assert_allclose(info.measured_field, FIELD + BIAS, rtol=0, atol=1e-15)


def test_an_entry_of_an_earlier_version_reads_and_resumes_as_before(cut_off: Path) -> None:
    with h5py.File(cut_off, "a") as f:  # as an earlier version laid it out: no log
        del f[LOG]
    (earlier,) = read_field_checks(cut_off, "k")
    assert earlier.run is None and np.isnan(earlier.seconds)
    np.testing.assert_allclose(earlier.field, FIELD)
    assert run_scan(cut_off, _biased_rig(), _plan(), resume=True) == "finished"
    (latest,) = read_field_checks(cut_off, "k")
    np.testing.assert_allclose(latest.field, FIELD + BIAS, rtol=0, atol=1e-15)
    with h5py.File(cut_off, "r") as f:
        assert LOG not in f


def test_a_field_checks_time_is_on_the_clock_of_the_scans_data(tmp_path: Path) -> None:
    """value_log/time and data/time count on one clock, the rig's (virtual here): a field
    ramp of an hour of simulated time puts each run's check an hour before its first reading
    in both. On the wall clock the check was logged at the start, an hour off data/time."""
    from smm_daq.acquisition.sequencer import Sequencer

    path = tmp_path / "s.h5"
    firsts: list[tuple[float, float, tuple[int, int]]] = []  # check, first reading, its pixel
    for resume in (False, True):
        rig = fake_rig()
        set_field = rig.coils.set_field

        def slow_ramp(b: np.ndarray, *, ramp: bool = True, stop: object = None,
                      rig: FakeRig = rig, set_field: object = set_field) -> None:
            set_field(b, ramp=ramp, stop=stop)  # type: ignore[operator]
            rig.clock.advance(3600.0)

        rig.coils.set_field = slow_ramp  # type: ignore[method-assign]
        seq = Sequencer(rig, path, _plan(), resume=resume)
        events: list[object] = []
        seq.subscribe(events.append)
        if not resume:
            seq.subscribe(lambda e, seq=seq: seq.abort() if e.kind == "line_done"
                          and e.line == 1 else None)
        seq.run()
        started = next(e for e in events if e.kind == "started")  # type: ignore[attr-defined]
        point = next(e for e in events if e.kind == "point")  # type: ignore[attr-defined]
        firsts.append((started.time, point.time, point.index))  # type: ignore[attr-defined]
    checks = read_field_checks(path, "k")
    with h5py.File(path, "r") as f:
        data_time = f["k/data/time"][()]
    assert [c.run for c in checks] == [0, 1]
    for check, (checked_at, read_at, pixel) in zip(checks, firsts, strict=True):
        assert check.seconds > 3600.0
        assert check.seconds - data_time[pixel] == pytest.approx(checked_at - read_at, abs=1e-6)
