"""A scan's `data/time` is one clock across resumes: seconds since the scan's start, each run's
readings placed after its start (`runs/time_offset`, from the runs' wall-clock starts) whatever
the rig clock read, each line's run in `data/line_run`, each run's start in `runs` (ISO 8601
and epoch seconds). An entry of an earlier version (no `runs`, no `line_run`) still resumes, its
times on the rig clock as before."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from acq_fakes import FakeRig, fake_rig, run_scan

from smm_daq.acquisition.fly.settings import FlySettings
from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.cli.main import main
from smm_daq.clock import VirtualClock
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.shell_words import command_line
from smm_daq.storage import h5file, scan_entry
from smm_daq.storage.h5file import text
from smm_daq.storage.scan_entry import read_runs

NY = 6


def _plan(name: str = "k") -> ScanPlan:
    return ScanPlan.from_center(name, (12.5e-3, 12.5e-3), (40e-6, (NY - 1) * 10e-6), 10e-6,
                                field=(0.0, 20e-6, 0.0))


def _rig(rig_clock_start: float) -> FakeRig:
    """A rig whose clock reads `rig_clock_start` when it connects (a new process's monotonic
    clock has its own origin; a simulator's starts again at 0)."""
    rig = fake_rig()
    rig.clock = VirtualClock(start=rig_clock_start)
    return rig


def _wall(monkeypatch: pytest.MonkeyPatch, epoch: float) -> None:
    """The wall clock the entry's writer reads, set to `epoch`."""
    monkeypatch.setattr(scan_entry, "time", SimpleNamespace(time=lambda: epoch))


def _times_in_measuring_order(f: h5py.File, plan: ScanPlan) -> np.ndarray:
    t = f["k/data/time"][()]
    return np.concatenate([t[iy, plan.line_order(iy)] for iy in range(plan.ny)])


def test_times_increase_across_two_resumes_with_each_line_and_run_recorded(
        tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    assert run_scan(path, _rig(0.0), _plan(), resume=False, stop_after_line=1) == "aborted"
    assert run_scan(path, _rig(0.0), _plan(), resume=True, stop_after_line=3) == "aborted"
    assert run_scan(path, _rig(7.0e5), _plan(), resume=True) == "finished"

    with h5py.File(path, "r") as f:
        times = _times_in_measuring_order(f, _plan())
        assert np.all(np.isfinite(times)) and times[0] >= 0
        assert np.all(np.diff(times) > 0), "data/time must increase across the runs"
        np.testing.assert_array_equal(f["k/data/line_run"][()], [0, 0, 1, 1, 2, 2])
        runs = f["k/runs"]
        assert text(runs.attrs["NX_class"]) == "NXcollection"
        np.testing.assert_array_equal(runs["run"][()], [0, 1, 2])
        starts = [text(s) for s in runs["start_time"][()]]
        assert starts[0] == text(f["k/start_time"][()])
        epochs = runs["start_epoch"][()]
        for iso, epoch in zip(starts, epochs, strict=True):
            assert datetime.fromisoformat(iso).timestamp() == pytest.approx(epoch, abs=1.0)
        assert np.all(np.diff(epochs) >= 0) and np.all(np.diff(runs["time_offset"][()]) > 0)
        assert text(runs["start_epoch"].attrs["units"]) == "s"
        time_ds = f["k/data/time"]
        assert text(time_ds.attrs["units"]) == "s"
        assert text(time_ds.attrs["start"]) == starts[0]
        assert "since the scan's start" in text(time_ds.attrs["long_name"])
        assert "runs/time_offset" in text(time_ds.attrs["description"])
    assert [(r.run, r.start_time) for r in read_runs(path, "k")] == list(enumerate(starts))


def test_a_resume_an_hour_later_reads_an_hour_after_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.h5"
    start = 1.8e9 + 0.25  # the entry's start_time is to the second: 0.25 s before
    _wall(monkeypatch, start)
    first = _rig(100.0)
    assert run_scan(path, first, _plan(), resume=False, stop_after_line=1) == "aborted"
    ran = first.clock.now() - 100.0
    _wall(monkeypatch, start + 3600.0)
    second = _rig(0.0)
    assert run_scan(path, second, _plan(), resume=True) == "finished"

    with h5py.File(path, "r") as f:
        t = f["k/data/time"][()]
        assert datetime.fromisoformat(text(f["k/start_time"][()])).timestamp() == 1.8e9
        assert np.all((t[:2] > 0.25) & (t[:2] <= 0.25 + ran))  # since start_time
        assert np.all((t[2:] > 3600.25) & (t[2:] <= 3600.25 + second.clock.now()))
        np.testing.assert_array_equal(f["k/runs/start_epoch"][()], [start, start + 3600.0])
        np.testing.assert_allclose(f["k/runs/time_offset"][()], [0.25, 3600.25], atol=1e-6)


def test_an_entry_of_an_earlier_version_resumes_its_times_on_the_rig_clock(
        tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    assert run_scan(path, _rig(0.0), _plan(), resume=False, stop_after_line=1) == "aborted"
    with h5py.File(path, "a") as f:  # as an earlier version laid it out
        del f["k/runs"], f["k/data/line_run"]
        f["k/data/time"].attrs["long_name"] = "time of the reading on the rig clock (s)"
        before = f["k/data/time"][:2]
    rig = _rig(0.0)
    assert run_scan(path, rig, _plan(), resume=True) == "finished"
    with h5py.File(path, "r") as f:
        assert "k/runs" not in f and "k/data/line_run" not in f
        t = f["k/data/time"][()]
        np.testing.assert_array_equal(t[:2], before)
        assert np.all((t[2:] > 0) & (t[2:] <= rig.clock.now()))  # its run's rig clock
    assert [r.run for r in read_runs(path, "k")] == [0, 1]  # from the field-check log


def test_info_says_the_runs_of_a_resumed_scan(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    once, resumed = tmp_path / "once.h5", tmp_path / "resumed.h5"
    assert run_scan(once, _rig(0.0), _plan(), resume=False) == "finished"
    assert run_scan(resumed, _rig(0.0), _plan(), resume=False, stop_after_line=1) == "aborted"
    assert run_scan(resumed, _rig(0.0), _plan(), resume=True, stop_after_line=3) == "aborted"
    assert run_scan(resumed, _rig(0.0), _plan(), resume=True) == "finished"
    assert main(["info", str(once)]) == 0
    assert " runs " not in capsys.readouterr().out
    assert main(["info", str(resumed)]) == 0
    starts = [r.start_time for r in read_runs(resumed, "k")]
    assert f"runs 3 (started {starts[0]}, resumed {starts[1]}, {starts[2]})" in (
        capsys.readouterr().out)


def _scans(path: Path, names: list[str]) -> None:
    """Scans `names` into `path`, each cut off and resumed twice."""
    for name in names:
        assert run_scan(path, _rig(0.0), _plan(name), resume=False, stop_after_line=1) == (
            "aborted")
        assert run_scan(path, _rig(0.0), _plan(name), resume=True, stop_after_line=3) == (
            "aborted")
        assert run_scan(path, _rig(0.0), _plan(name), resume=True) == "finished"


def _opens(monkeypatch: pytest.MonkeyPatch, work: Callable[[], object]) -> int:
    """How often `work` opens a session file through the readers' one way in (open_read)."""
    count = [0]
    real = h5file._open_read

    def counted(p: Path, **named: Path) -> AbstractContextManager[h5py.File]:
        count[0] += 1
        return real(p, **named)

    monkeypatch.setattr(h5file, "_open_read", counted)
    try:
        work()
    finally:
        monkeypatch.setattr(h5file, "_open_read", real)
    return count[0]


def test_info_reads_every_scans_runs_in_its_one_listing_open(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`info` lists each scan's runs as its entry records them, reading them while it lists
    the entries: a scan entry more costs it no open of the file, for its runs or its map's
    noise floor (slow on a network disk with many entries)."""
    one, three = tmp_path / "one.h5", tmp_path / "three.h5"
    _scans(one, ["a"])
    _scans(three, ["a", "b", "c"])
    with h5py.File(three, "a") as f:  # c as an earlier version wrote it: no runs recorded
        del f["c/runs"], f["c/data/line_run"]
    assert _opens(monkeypatch, lambda: main(["info", str(three)])) == (
        _opens(monkeypatch, lambda: main(["info", str(one)])))
    capsys.readouterr()
    assert main(["info", str(three)]) == 0
    out = capsys.readouterr().out
    for name in ("a", "b"):
        starts = [r.start_time for r in read_runs(three, name)]
        assert f"  {name}  [scan, finished]" in out
        assert f"runs 3 (started {starts[0]}, resumed {starts[1]}, {starts[2]})" in [
            part for line in out.splitlines() if line.startswith(f"  {name}  ")
            for part in line.split("  ")]
    line_c = next(line for line in out.splitlines() if line.startswith("  c  "))
    assert "  runs 3  " in line_c  # from the field-check log, their starts unrecorded


def test_a_damaged_line_run_is_refused_before_the_rig_is_touched(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    assert run_scan(path, _rig(0.0), _plan(), resume=False, stop_after_line=1) == "aborted"
    with h5py.File(path, "a") as f:
        del f["k/data/line_run"]
        f["k/data/line_run"] = np.zeros(NY - 1, dtype="i4")
    rig = _rig(0.0)
    with pytest.raises(InputError, match="'data/line_run' is not one integer per line"):
        Sequencer(rig, path, _plan(), resume=True).run()
    assert rig.stage.visits == []


def test_a_resume_killed_while_it_lengthened_runs_still_lists_and_resumes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A resume killed between lengthening `runs`' columns (one is a row longer than the
    others) leaves a file that `info` still lists (it failed, exit 2, for the whole file, every
    entry unlisted), with the complete rows; the next resume writes its row after it, and the
    row cut off is not counted as a run."""
    path = tmp_path / "s.h5"
    assert run_scan(path, _rig(0.0), _plan(), resume=False, stop_after_line=1) == "aborted"
    with h5py.File(path, "a") as f:
        f["k/runs/run"].resize(2, axis=0)  # the resume's first column, then the kill
    assert main(["info", str(path)]) == 0
    assert "k  [scan, aborted]" in capsys.readouterr().out
    assert [r.run for r in read_runs(path, "k")] == [0]
    assert run_scan(path, _rig(0.0), _plan(), resume=True) == "finished"
    runs = read_runs(path, "k")
    assert [r.run for r in runs] == [0, 1] and runs[1].start_time  # the cut-off row left out
    with h5py.File(path, "r") as f:
        assert set(f["k/data/line_run"][()]) == {0, 1}


def test_a_resumed_fly_scan_starts_after_every_stored_stream_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flown line's raw streams (`fly_streams/time`, `position_time`) run past its last
    pixel (the run-out). On a simulation faster than the wall clock, a resume whose first
    line starts at once (the stage already at its run-up start, no field to ramp) put that
    line's streams before the previous run's last ones when only `data/time` bounded the
    run's start: the streams, in the order measured, went back in time."""
    _wall(monkeypatch, 1.8e9)  # no wall-clock time passes between the runs
    profile = load_profile("configs/simulator.toml")
    plan = ScanPlan.from_center("k", (12.5e-3, 12.5e-3), (0.2e-3, 0.06e-3), 20e-6,
                                field=(0.0, 0.0, 0.0), fly=FlySettings(pixel_time=0.05))
    path = tmp_path / "s.h5"
    with open_rig(profile) as rig:
        seq = Sequencer(rig, path, plan)
        seq.subscribe(lambda e: seq.abort("test") if e.kind == "line_done" and e.line == 1
                      else None)
        assert seq.run() == "aborted"
    with h5py.File(path, "r") as f:
        run_up = json.loads(text(f["k/fly_streams/settings"]))["run_up_m"]
    with open_rig(profile) as rig:
        rig.stage.move_to(plan.x[0] - run_up, float(plan.y[2]), plan.height)
        assert Sequencer(rig, path, plan, resume=True).run() == "finished"

    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["k/data/line_run"][()], [0, 0, 1, 1])
        for key in ("time", "position_time"):
            streams = f[f"k/fly_streams/{key}"][()]
            lines = [row[np.isfinite(row)] for row in streams]  # measured in line order
            assert all(np.all(np.diff(line) > 0) for line in lines)
            for before, after in itertools.pairwise(lines):
                assert after[0] > before[-1], f"fly_streams/{key} goes back in time"


def test_info_names_the_resume_of_a_scan_cut_off_and_of_none_finished(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scan killed (kill -9, a power cut) said nothing as it ended: `info` is where a user
    learns it was cut off, and says there which command measures the rest."""
    path = tmp_path / "s.h5"
    assert run_scan(path, _rig(0.0), _plan(), resume=False, stop_after_line=1) == "aborted"
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  k  [scan, aborted]")
    assert lines[2] == f"    cut off: `smm-daq resume {path} --entry k` measures the rest"
    assert run_scan(path, _rig(0.0), _plan(), resume=True) == "finished"
    assert main(["info", str(path)]) == 0
    assert "cut off" not in capsys.readouterr().out


def test_info_names_the_recipe_continued_under_a_recipe_scan_cut_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scan a recipe made (its entry stores the recipe's text), cut off: `info` says to
    continue the recipe (`run RECIPE --continue`, as the README and `run` say), which runs
    its other steps after it too, not `resume`, which measures only this scan. Unfixed, it
    named `smm-daq resume` for every scan."""
    path = tmp_path / "s.h5"
    seq = Sequencer(_rig(0.0), path, _plan(), recipe_text='[[step]]\nkind = "scan"\n')
    seq.subscribe(lambda e: seq.abort() if e.kind == "line_done" and e.line == 1 else None)
    assert seq.run() == "aborted"
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  k  [scan, aborted]")
    assert lines[2] == (f"    cut off: `smm-daq run RECIPE --out {path} --continue` measures "
                        "the rest, then runs the recipe's steps after it (RECIPE: the recipe "
                        "it was made by, whose text the entry stores)")


@pytest.mark.parametrize(("recipe", "earlier"), [
    ("configs/recipes/my recipe.toml", False),
    ("caf\udce9.toml", False),  # a byte that is not UTF-8 (a Latin-1 name), stored escaped
    ("", False),  # the window's Recipes tab: the file its dialog chose, by its whole path
    ("configs/recipes/my recipe.toml", True)])  # an earlier version's entry: as given only
def test_info_names_the_recipe_file_run_was_given_under_its_scan_cut_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        recipe: str, earlier: bool) -> None:
    """Where the entry stores the recipe file `run` was given, `info`'s command names it, as
    `run` itself did when it was cut off, so it can be run as it is: from the root, as `info`
    may run in another folder than `run` did (here it does), a byte that is not UTF-8 as bash
    gives it back (`$'\\xe9'`). Unfixed, it said RECIPE; then the file as given, from a folder
    not said, and such a byte as its stored escape's four characters."""
    path, lab = tmp_path / "s.h5", tmp_path / "lab"
    lab.mkdir()
    monkeypatch.chdir(lab)  # where `run` ran
    recipe = recipe or str(tmp_path / "r.toml")
    seq = Sequencer(_rig(0.0), path, _plan(), recipe_text='[[step]]\nkind = "scan"\n',
                    recipe_file=recipe)
    seq.subscribe(lambda e: seq.abort() if e.kind == "line_done" and e.line == 1 else None)
    assert seq.run() == "aborted"
    if earlier:
        with h5py.File(path, "a") as f:
            del f["k/recipe"].attrs["absolute_path"]
    monkeypatch.chdir(tmp_path)
    assert main(["info", str(path)]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    named = command_line([recipe if earlier else os.path.join(lab, recipe)])
    which = ("the recipe as `run` was given it, from the folder it ran in" if earlier
             else "the recipe it was made by")
    assert line == (f"    cut off: `smm-daq run {named} --out {path} --continue` measures the "
                    f"rest, then runs the recipe's steps after it ({which}, whose text the "
                    "entry stores)")
    if "\udce9" in recipe:
        assert "$'" in line and "caf\\xe9.toml'" in line, line


@pytest.mark.parametrize("stored", [["a.toml", "b.toml"], 5])
def test_info_names_no_recipe_file_from_a_stored_path_that_is_no_single_string(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], stored: object) -> None:
    """A recipe's `absolute_path` that holds no single string (another program's array or
    number) names no file: the one `run` was given (its `path`) is named instead. Unfixed,
    the array's repr was named as the recipe's file (`'['"'"'a.toml'"'"' ...`)."""
    path = tmp_path / "s.h5"
    seq = Sequencer(_rig(0.0), path, _plan(), recipe_text='[[step]]\nkind = "scan"\n',
                    recipe_file="r.toml")
    seq.subscribe(lambda e: seq.abort() if e.kind == "line_done" and e.line == 1 else None)
    assert seq.run() == "aborted"
    with h5py.File(path, "a") as f:
        f["k/recipe"].attrs["absolute_path"] = stored
    assert main(["info", str(path)]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert line.startswith(f"    cut off: `smm-daq run r.toml --out {path} --continue` "), line


def test_the_map_commands_warning_names_the_recipe_continued_under_a_recipe_scan_cut_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A map command reading a recipe's scan cut off warns that its result holds the lines
    measured only, and names what measures the rest as `info` does: the recipe continued
    (which runs its steps after the scan too), not `resume`; a scan no recipe made, cut off,
    is still given `resume`. Unfixed, the warning named `smm-daq resume` for every scan."""
    from smm_daq.cli.maps import say_if_unfinished

    path = tmp_path / "s.h5"
    for name, recipe in (("k", '[[step]]\nkind = "scan"\n'), ("plain", "")):
        seq = Sequencer(_rig(0.0), path, _plan(name), recipe_text=recipe)
        seq.subscribe(lambda e, seq=seq: seq.abort()
                      if e.kind == "line_done" and e.line == 1 else None)
        assert seq.run() == "aborted"
    say_if_unfinished(str(path), "k")
    said = capsys.readouterr().err
    assert f"`smm-daq run RECIPE --out {path} --continue` measures the rest, then runs the " \
           "recipe's steps after it" in said, said
    assert "smm-daq resume" not in said, said
    say_if_unfinished(str(path), "plain")
    said = capsys.readouterr().err
    assert f"`smm-daq resume {path} --entry plain` measures the rest; then work it out " \
           "again" in said, said
