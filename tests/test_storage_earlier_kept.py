"""An earlier release's whole entry left under `.NAME.smm_daq_staging` (its writer killed
before moving it in) is kept by every writer of NAME until the new entry is whole, as the
analysis products' writer keeps it (test_storage_links_and_marks): the scan writer and the
image writer too. A writer killed while laying its entry out leaves the earlier entry
readable under NAME; one that finishes replaces it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_storage_earlier_staging import _leftover, _session

from smm_daq.analysis.optical import ImageRegistration
from smm_daq.instruments.profile import load_profile
from smm_daq.storage import scan_entry
from smm_daq.storage.nexus import list_entries, read_map
from smm_daq.storage.optical_entry import read_optical_entry, write_optical_entry
from smm_daq.storage.scan_entry import EntryTaken, ScanEntryWriter, check_new_scan
from smm_daq.storage.staging import REPLACED, STAGING, aside_name

EARLIER_BZ = np.ones((5, 6)) * 1e-7  # the map `_leftover` writes for a product

# Run as `python -c WRITER FILE WHICH [kill]`: writes entry 'product' of FILE as a scan or
# an image (WHICH) and, with `kill`, is killed (-9) while laying the new entry out, what it
# wrote so far flushed; exits 0 when it wrote the entry whole.
WRITER = textwrap.dedent(
    """
    import os, sys
    import h5py, numpy as np
    from smm_daq.analysis.optical import ImageRegistration
    from smm_daq.instruments.profile import load_profile
    from smm_daq.storage import optical_entry, scan_entry

    path, which, kill = sys.argv[1], sys.argv[2], sys.argv[3:] == ["kill"]
    module, step = ((scan_entry, "_layout_runs") if which == "scan"
                    else (optical_entry, "_layout"))
    real = getattr(module, step)

    def dying(entry, *args):
        real(entry, *args)
        h5py.h5f.flush(entry.id)
        os.kill(os.getpid(), 9)

    if kill:
        setattr(module, step, dying)
    if which == "scan":
        scan_entry.ScanEntryWriter.create(
            path, name="product", title="t", x=np.arange(4.0) * 1e-6,
            y=np.arange(3.0) * 1e-6, field=np.zeros(3), height=1e-4, plan_text="{}",
            profile=load_profile(), snapshot={})
    else:
        reg = ImageRegistration(np.array([[1e-6, 0, 0], [0, 1e-6, 0]]), np.zeros((3, 2)),
                                np.zeros((3, 2)), 0.0)
        optical_entry.write_optical_entry(path, "product", np.zeros((2, 3, 3), np.uint8),
                                          reg)
    """
)


def _write(path: Path, which: str, *more: str) -> int:
    return subprocess.run([sys.executable, "-c", WRITER, str(path), which, *more],
                          check=False).returncode


@pytest.mark.parametrize("which", ["scan", "optical"])
def test_a_writer_killed_laying_its_entry_out_leaves_the_earlier_entry_readable(
        tmp_path: Path, which: str) -> None:
    path = _session(tmp_path)
    _leftover(path, "product")  # an earlier release's whole product, not yet under its name
    assert _write(path, which, "kill") == -9
    np.testing.assert_array_equal(read_map(path, "product").bz, EARLIER_BZ)
    assert [(e.name, e.kind) for e in list_entries(path)] == [
        ("rem", "scan"), ("inf", "scan"), ("product", "induced")]


def test_a_finished_scan_or_image_replaces_the_earlier_entry(tmp_path: Path) -> None:
    """The earlier entry is superseded, as before, once the new one is whole; no temporary
    group is left."""
    path = _session(tmp_path)
    _leftover(path, "product")
    ScanEntryWriter.create(path, name="product", title="t", x=np.arange(4.0) * 1e-6,
                           y=np.arange(3.0) * 1e-6, field=np.zeros(3), height=1e-4,
                           plan_text="{}", profile=load_profile(), snapshot={})
    assert [(e.name, e.kind) for e in list_entries(path)] == [
        ("rem", "scan"), ("inf", "scan"), ("product", "scan")]
    assert read_map(path, "product").bz.shape == (3, 4)

    _leftover(path, "image")
    reg = ImageRegistration(np.array([[1e-6, 0, 0], [0, 1e-6, 0]]), np.zeros((3, 2)),
                            np.zeros((3, 2)), 0.0)
    write_optical_entry(path, "image", np.full((2, 3, 3), 7, np.uint8), reg)
    assert read_optical_entry(path, "image")[0].tolist() == np.full((2, 3, 3), 7).tolist()
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["image", "inf", "product", "rem"]


def _scan(path: Path, name: str) -> None:
    ScanEntryWriter.create(path, name=name, title="t", x=np.arange(4.0) * 1e-6,
                           y=np.arange(3.0) * 1e-6, field=np.zeros(3), height=1e-4,
                           plan_text="{}", profile=load_profile(), snapshot={})


def test_a_scan_refused_where_its_layout_failed_over_an_earlier_product_names_the_product(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A layout that raises (not a kill) leaves the earlier product under the name: a retry
    is refused naming what holds the name, never pointing to a resume (no scan is there)."""
    path = _session(tmp_path)
    _leftover(path, "product")
    real = scan_entry._layout_runs

    def failing(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(scan_entry, "_layout_runs", failing)
    with pytest.raises(OSError, match="disk full"):
        _scan(path, "product")
    monkeypatch.setattr(scan_entry, "_layout_runs", real)
    assert [(e.name, e.kind) for e in list_entries(path)][-1] == ("product", "induced")
    before = path.read_bytes()
    for refuse in (lambda: check_new_scan(path, "product"), lambda: _scan(path, "product")):
        with pytest.raises(EntryTaken) as taken:
            refuse()
        said = str(taken.value)
        assert taken.value.kind == "induced" and "smm-daq resume" not in said
        assert ("entry 'product' already exists and is an analysis product (kind 'induced'), "
                "not a scan" in said and "expected another scan name" in said)
    assert path.read_bytes() == before


def test_a_scan_refused_over_a_scan_of_its_name_still_points_to_resume(tmp_path: Path
                                                                        ) -> None:
    path = _session(tmp_path)
    _scan(path, "again")
    with pytest.raises(EntryTaken) as taken:
        check_new_scan(path, "again")
    assert taken.value.kind == "scan" and not taken.value.finished
    assert f"`smm-daq resume {path} --entry again` to finish it" in str(taken.value)


def test_a_scan_refused_over_a_scan_cut_off_while_swapped_in_is_a_name_taken(
        tmp_path: Path) -> None:
    """A scan's writer killed after moving it in over an earlier entry of its name, before
    the earlier one went: the refusal of a new scan of that name is still `EntryTaken`
    (the window proposes a free name from it), told to `repair`, then `resume`."""
    path = _session(tmp_path)
    _scan(path, "s1")
    with h5py.File(path, "a") as f:  # as the killed writer left it
        f["s1"].attrs[STAGING] = 1
        f.copy("s1", "old")
        f["old"].attrs["kind"] = "induced"
        del f["old"].attrs[STAGING]
        f["old"].attrs[REPLACED] = 1
        f.move("old", aside_name("s1"))
    with pytest.raises(EntryTaken) as taken:
        check_new_scan(path, "s1")
    assert taken.value.name == "s1" and taken.value.swap_cut_off
    assert not taken.value.finished
    assert (f"`smm-daq repair {path}` to finish the swap, then "
            f"`smm-daq resume {path} --entry s1` to finish the scan") in str(taken.value)


def test_a_scan_refused_over_a_finished_scan_of_its_name_points_to_no_resume(tmp_path: Path
                                                                             ) -> None:
    """`resume` refuses a finished scan, so the refusal of its name advises another name."""
    path = _session(tmp_path)
    writer = ScanEntryWriter.create(path, name="done", title="t", x=np.arange(4.0) * 1e-6,
                                    y=np.arange(3.0) * 1e-6, field=np.zeros(3), height=1e-4,
                                    plan_text="{}", profile=load_profile(), snapshot={})
    writer.set_status("finished")
    with pytest.raises(EntryTaken) as taken:
        check_new_scan(path, "done")
    said = str(taken.value)
    assert taken.value.kind == "scan" and taken.value.finished
    assert "smm-daq resume" not in said
    assert ("entry 'done' already exists and is a finished scan, which nothing resumes or "
            "writes over; expected another scan name") in said


def test_a_scan_refused_over_another_programs_group_names_it_and_no_resume(tmp_path: Path
                                                                           ) -> None:
    path = _session(tmp_path)
    with h5py.File(path, "a") as f:
        f.create_group("foreign")
    with pytest.raises(EntryTaken) as taken:
        check_new_scan(path, "foreign")
    said = str(taken.value)
    assert taken.value.kind == "" and "smm-daq resume" not in said
    assert "is something smm-daq did not write (another program's), not a scan" in said
