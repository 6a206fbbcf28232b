"""Files written whole (`smm_daq.whole_files`) as a user expects of a file they replace: its
mode and a link to it kept, the content on disk before it takes the name, no scratch file left,
/dev/null written as it is; and every text table the MMT commands write (result, truth, grain
list, point list, study statistics) and the coil calibration written so, not cut short in place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from full_disk import file_size_limit

from smm_daq.analysis.grains import GrainSet, from_arrays, write_grains_csv
from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import point_grains
from smm_daq.analysis.mmt.result_file import write_result_csv
from smm_daq.analysis.mmt.study.stats import write_csv as write_stats_csv
from smm_daq.analysis.mmt.synth import SyntheticSample, write_truth_csv
from smm_daq.instruments import coil_calibration
from smm_daq.whole_files import written_whole

UM = 1e-6
LIMIT = 40  # bytes: every table below is longer
N = 6


def _grains() -> GrainSet:
    cuboids = np.array([[i * 20.0, 0.0, -10.0, 5.0, 5.0, 5.0] for i in range(N)]) * UM
    return from_arrays(cuboids, np.arange(1, N + 1))


WRITERS: dict[str, Callable[[Path], None]] = {
    "mmt result": lambda p: write_result_csv(
        p, {"grain": np.arange(1, N + 1), "mx_A_per_m": np.linspace(1, 2, N)}),
    "synthetic truth": lambda p: write_truth_csv(
        str(p), SyntheticSample(_grains(), np.ones((N, 3)), (1e-4, 1e-4), 2e-5)),
    "grain list": lambda p: write_grains_csv(p, _grains()),
    "point list": lambda p: write_points(
        p, point_grains(np.array([[i * 20e-6, 0.0, -1e-5] for i in range(N)]),
                        np.full(N, 1e-16), np.arange(1, N + 1))),
    "study statistics": lambda p: write_stats_csv(
        p, [{"grains": float(i), "ur_median_pct": 1.5} for i in range(N)]),
}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_table_that_runs_out_of_room_leaves_the_file_it_replaces(
        tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "table.csv"
    WRITERS[kind](out)
    whole = out.read_bytes()
    assert len(whole) > LIMIT
    with file_size_limit(LIMIT), pytest.raises(OSError):
        WRITERS[kind](out)
    assert out.read_bytes() == whole
    assert list(folder.iterdir()) == [out]  # no scratch file left beside it


def test_a_replaced_calibration_keeps_its_mode(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's calibration file, readable by the group, stays so when calibrated again."""
    monkeypatch.setattr(coil_calibration, "calibration_toml", lambda _result: "x = 1\n")
    path = tmp_path / "coils.toml"
    path.write_text("x = 0\n")
    path.chmod(0o644)
    coil_calibration.write_calibration(path, None)  # type: ignore[arg-type]
    assert path.read_text() == "x = 1\n"
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_replaced_file_keeps_every_mode_also_one_the_umask_would_narrow(
        tmp_path: Path) -> None:
    path = tmp_path / "shared.csv"
    path.write_text("old\n")
    path.chmod(0o666)  # as a lab's shared export folder may hold them
    old = os.umask(0o022)
    try:
        with written_whole(path) as part:
            part.write_text("new\n")
    finally:
        os.umask(old)
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o666


def test_a_link_stays_a_link_to_the_new_content(tmp_path: Path) -> None:
    real = tmp_path / "results" / "map.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(real)
    with written_whole(link) as part:
        part.write_text("new\n")
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text() == "new\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["map.csv"]


def test_the_content_is_on_disk_before_it_takes_the_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renamed before its data reach the disk, a power cut can leave an empty file by the
    name where the old, whole one was."""
    calls: list[str] = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace",
                        lambda a, b: (calls.append("replace"), replace(a, b))[1])
    path = tmp_path / "map.csv"
    path.write_text("old\n")
    with written_whole(path) as part:
        part.write_text("new\n")
    assert path.read_text() == "new\n"
    assert calls[:2] == ["fsync", "replace"]


def test_dev_null_is_written_as_it_is_never_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A script discards an output it must name by naming /dev/null; a file renamed onto it
    (as root) would replace the device every program on the machine writes to."""
    def refuse(a: object, b: object) -> None:
        raise AssertionError(f"{a} renamed onto {b}")

    monkeypatch.setattr(os, "replace", refuse)
    with written_whole(os.devnull) as part:
        assert part == Path(os.devnull)
        part.write_text("discarded\n")


def test_a_replaced_file_keeps_its_group(tmp_path: Path) -> None:
    """A lab's shared export, of the group that reads it, stays of that group."""
    path = tmp_path / "shared.csv"
    path.write_text("old\n")
    others = [g for g in (*os.getgroups(), 1, 2, 100) if g != path.stat().st_gid]
    try:
        other = others[0]
        os.chown(path, -1, other)  # one of the user's groups; root: any
    except (IndexError, OSError):
        pytest.skip("no other group this user may give a file")
    with written_whole(path) as part:
        part.write_text("new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_gid == other


@pytest.mark.parametrize("name", ["a" * 255, "é" * 127])  # 255 and 254 bytes
def test_a_file_of_the_longest_name_a_folder_takes_is_written(tmp_path: Path,
                                                               name: str) -> None:
    target = tmp_path / name
    with written_whole(target) as part:
        part.write_text("whole")
    assert target.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == [name]
