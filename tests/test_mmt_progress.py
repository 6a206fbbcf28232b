"""The inversion's progress: each block of sensors folded into the QR is reported, on the CPU
and on the device path, an exception from the report stops the inversion, and the command
line shows it on stderr (a bar on a terminal, a line per 10 % elsewhere)."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest

from smm_daq.analysis.mmt import synth, synth_points
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays
from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver
from smm_daq.analysis.mmt.solver.inversion import SOLVING, invert_map
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.cli.inversion_progress import InversionProgress

UM = 1e-6


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(2)
    sample = synth.make_sample((30 * UM, 30 * UM), 15 * UM, 4e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0.0, 0.0), noise=5e-9,
                      rng=rng)
    return sample.grains, data


def _told(calls: list[tuple[int, int]], n_sensors: int, blocks: int) -> None:
    assert [c[1] for c in calls] == [n_sensors] * len(calls)
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == n_sensors
    assert len(done) == blocks  # one call a block


def _cpu_blocks(unknowns: int, n_sensors: int, block: int) -> list[int]:
    """The sizes of the CPU's blocks, in the streams it folds them in (`streams.plan`)."""
    streams = qr_streams.stream_count(unknowns + 1, n_sensors, block)
    return qr_streams.plan(n_sensors, block, streams)[1]


def test_each_block_is_reported_on_the_cpu(case):
    grains, data = case
    calls: list[tuple[int, int]] = []
    result = invert_map(data, grains, height=1 * UM, sensor_size=(0.0, 0.0), block=200,
                        device="cpu", on_block=lambda d, t: calls.append((d, t)))
    sizes = _cpu_blocks(3 * grains.n_grains, result.n_sensors, 200)
    _told(calls, result.n_sensors, len(sizes))
    assert calls[0][0] in sizes


def test_each_block_is_reported_on_the_device_path(case, monkeypatch):
    grains, data = case
    solver = DeviceSolver(NumpyArrays(), rows=300)
    monkeypatch.setattr(devices, "resolve", lambda device: "gpu")
    monkeypatch.setattr(devices, "gpu_solver", lambda: solver)
    calls: list[tuple[int, int]] = []
    result = invert_map(data, grains, height=1 * UM, sensor_size=(0.0, 0.0), device="gpu",
                        on_block=lambda d, t: calls.append((d, t)))
    _told(calls, result.n_sensors, -(-result.n_sensors // 300))


def test_joint_scans_of_unknown_noise_pass_over_the_sensors_once(case):
    """Each scan's triangle is accumulated once and the passes that settle the σ restack
    them: the blocks are told once, scan after scan, as the share of all the sensors (each
    pass went over every sensor again, as long as the first)."""
    grains, data = case
    points = PointGrains(grains.centroids(), grains.volumes(), grains.labels)
    scans = [Scan(data, 1 * UM, (0.0, 0.0), None, None),
             Scan(data.with_bz(data.bz, name="again"), 1 * UM, (0.0, 0.0), None, None)]
    calls: list[tuple[int, int]] = []
    result = invert_scans(scans, points, model="quadrupole", block=400,
                          on_block=lambda d, t: calls.append((d, t)))
    per_scan = len(_cpu_blocks(8 * grains.n_grains, result.n_sensors // 2, 400))
    assert len(calls) == 2 * per_scan
    assert [c[1] for c in calls] == [result.n_sensors] * len(calls)
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[per_scan - 1] == result.n_sensors // 2
    assert done[-1] == result.n_sensors


def test_an_exception_from_the_report_stops_the_inversion(case):
    grains, data = case
    calls: list[int] = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        invert_map(data, grains, height=1 * UM, sensor_size=(0.0, 0.0), block=200,
                   device="cpu", on_block=stop_after_two)
    sizes = _cpu_blocks(3 * grains.n_grains, int(np.isfinite(data.bz).sum()), 200)
    assert len(calls) == 2  # no block after the one that raised
    assert calls[0] in sizes and calls[1] - calls[0] in sizes


def test_a_line_per_tenth_when_not_a_terminal():
    out = io.StringIO()
    progress = InversionProgress(out)
    for done in range(1000, 10_001, 1000):
        progress(done, 10_000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("Green's matrix and QR:  10.0%")
    assert lines[-1].startswith("Green's matrix and QR: 100.0%")
    assert "10000/10000 sensors" in lines[-1]


def test_a_second_pass_starts_again_and_one_block_shows_nothing():
    out = io.StringIO()
    progress = InversionProgress(out)
    progress(500, 500)  # a single block
    assert out.getvalue() == ""
    for _ in range(2):
        progress(100, 200)
        progress(200, 200)
    lines = out.getvalue().splitlines()
    first, second = "Green's matrix and QR:", "Green's matrix and QR, pass 2:"
    assert [line[:line.index("%")] for line in lines] == [
        f"{first}  50.0", f"{first} 100.0", f"{second}  50.0", f"{second} 100.0"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal():
    out = _Terminal()
    progress = InversionProgress(out)
    for done in (100, 200, 300):
        progress(done, 300)
    text = out.getvalue()
    assert "\r" in text  # redrawn in place
    assert "300/300 sensors" in text.split("\r")[-1]
    assert text.endswith("\n")  # closed when done


@pytest.fixture(scope="module")
def quadrupoles():
    """Point grains whose QR is of more than one panel, and a scan of them."""
    rng = np.random.default_rng(3)
    sample = synth_points.make_point_sample((30 * UM, 30 * UM), 15 * UM, 1.5e6, rng, "quadrupole")
    data = synth_points.scan_points(sample, height=1 * UM, step=1 * UM, sensor_size=(0.0, 0.0),
                                    noise=5e-9, rng=rng)
    return sample, Scan(data, 1 * UM, (0.0, 0.0), 5e-9, None)


def test_a_block_of_many_panels_reports_within_it_and_stops_there(quadrupoles):
    """A block of the lab's size is tens of seconds of QR: its panels report the sensors'
    share done, so a cancel is heard within the block, not after it."""
    sample, scan = quadrupoles
    assert 8 * sample.grains.n_grains > 128  # more than one panel of the QR
    calls: list[tuple[int, int]] = []
    result = invert_scans([scan], sample.grains, model="quadrupole", block=400,
                          on_block=lambda d, t: calls.append((d, t)))
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == result.n_sensors
    assert len(done) > -(-result.n_sensors // 400)  # more reports than blocks
    assert 0 < done[0] < 400  # the first within the first block

    def cancel(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        invert_scans([scan], sample.grains, model="quadrupole", block=400, on_block=cancel)


def test_the_merge_of_two_streams_is_shown_as_its_own_stage_with_its_panels():
    """The merge that follows the last block (a minute or two at the lab's size) has lines
    of its own, by its share of work, naming its panels, not a bar left at 100 %."""
    out = io.StringIO()
    progress = InversionProgress(out)
    for done in (5_000, 10_000):
        progress(done, 10_000)
    shares = [0.0, 0.02, 0.3, 0.55, 0.8, 0.97, 1.0]
    for panel, share in enumerate(shares):
        progress.merge(panel, 6, share)
    lines = out.getvalue().splitlines()
    assert [line[:line.index("%")] for line in lines] == [
        "Green's matrix and QR:  50.0", "Green's matrix and QR: 100.0",
        *[f"merging the two streams' triangles: {p:5.1f}" for p in (30, 55, 80, 97, 100)]]
    assert [line.split("| ")[1].split(",")[0] for line in lines[2:]] == [
        f"{p}/6 panels" for p in (2, 3, 4, 5, 6)]
    assert lines[-1].endswith("ETA 00:00")


def test_a_scans_merge_between_scans_leaves_the_sensors_in_the_same_pass():
    """Scans folded apart merge each their triangles: the next scan's sensors go on in the
    same pass after the merge, and its bar is closed in between."""
    out = _Terminal()
    progress = InversionProgress(out)
    progress(50, 200)
    progress(100, 200)
    progress.merge(0, 2, 0.0)
    progress.merge(2, 2, 1.0)
    progress(150, 200)
    progress(200, 200)
    bars = [part for part in out.getvalue().replace("\r", "\n").splitlines() if part]
    assert "pass 2" not in out.getvalue()
    assert any(b.startswith("merging the two streams' triangles: 100.0%") and "2/2 panels" in b
               for b in bars)
    after = bars[[i for i, b in enumerate(bars) if b.startswith("merging")][-1] + 1:]
    assert after and all(b.startswith("Green's matrix and QR:") for b in after)
    assert "200/200 sensors" in after[-1] and out.getvalue().endswith("\n")
    assert "\r" in out.getvalue().rsplit("2/2 panels", 1)[1]  # a bar again, redrawn in place


@pytest.mark.skipif(not qr_streams._threadsafe_layer(),
                    reason="numba's layer takes kernels from one thread at a time")
def test_an_inversion_in_two_streams_shows_the_sensors_then_the_merge(case):
    """A small case forced into two streams, its progress on the command line's object: the
    sensors' lines up to all of them, then the merge's, each told its panels in order."""
    grains, data = case
    out = io.StringIO()
    progress = InversionProgress(out)
    merges: list[tuple[int, int, float]] = []

    def merge(done: int, total: int, share: float) -> None:
        merges.append((done, total, share))
        progress.merge(done, total, share)

    result = invert_map(data, grains, height=1 * UM, sensor_size=(0.0, 0.0), block=200,
                        device="cpu", streams=2, on_block=progress, on_merge=merge)
    lines = out.getvalue().splitlines()
    sensors = [i for i, line in enumerate(lines) if line.startswith("Green's matrix and QR:")]
    merging = [i for i, line in enumerate(lines) if line.startswith("merging the two")]
    assert sensors and merging and max(sensors) < min(merging)
    assert f"{result.n_sensors}/{result.n_sensors} sensors" in lines[sensors[-1]]
    assert lines[merging[-1]].startswith("merging the two streams' triangles: 100.0%")
    panels = merges[-1][1]
    assert [m[:2] for m in merges] == [(p, panels) for p in range(panels + 1)]
    assert f"{panels}/{panels} panels" in lines[merging[-1]]


@pytest.mark.skipif(not qr_streams._threadsafe_layer(),
                    reason="numba's layer takes kernels from one thread at a time")
def test_without_a_merge_report_the_blocks_report_is_told_in_the_merge_a_chance_to_cancel(
        quadrupoles, monkeypatch):
    """A caller that shows no merge (no on_merge) is told all the sensors again after each of
    its panels but the last: it may still cancel there."""
    sample, scan = quadrupoles
    monkeypatch.setattr(qr_streams, "stream_count", lambda *args, **kwargs: 2)
    told: list[int] = []

    def cancel_in_the_merge(done: int, total: int) -> None:
        told.append(done)
        if told.count(total) == 2:  # once when the streams are done, then in the merge
            raise Stop

    with pytest.raises(Stop):
        invert_scans([scan], sample.grains, model="quadrupole", block=400,
                     on_block=cancel_in_the_merge)


def test_once_q_is_folded_the_solve_is_said_in_one_scan_and_in_several(case):
    """The solve and the fitted map that follow the fold take minutes at the lab's size: the
    progress says so once the fold is done (it said "QR of the Green's matrix" throughout)."""
    grains, data = case
    said: list[str] = []
    invert_map(data, grains, height=1 * UM, sensor_size=(0.0, 0.0), block=200, device="cpu",
               progress=said.append)
    assert said[-1] == SOLVING and sum("QR of the Green's matrix" in s for s in said) == 1

    scans = [Scan(data, 1 * UM, (0.0, 0.0), sigma=5e-9),
             Scan(replace(data, name="again"), 1 * UM, (0.0, 0.0))]  # σ estimated: settled
    for chosen in (scans[:1], scans):
        said.clear()
        invert_scans(chosen, grains, model="cuboid", block=200, progress=said.append)
        assert SOLVING in said
        assert said.index(SOLVING) > max(i for i, s in enumerate(said) if "QR of" in s)
