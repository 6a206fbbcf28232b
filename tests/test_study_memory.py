"""A parameter study runs only as many solves at once as fit in the memory available (each
solve checks the memory alone, so side by side they could exceed it), and is refused before
any work when not even its largest sample's solve fits alone. A sample's stated need is not
below what its task holds at its peak (numpy's allocations, traced)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import tracemalloc

import dask
import pytest
from distributed import LocalCluster
from test_study_run import _boxes

from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.study import run
from smm_daq.analysis.mmt.study.budget import (
    check_workers,
    sample_grains,
    sample_need,
    study_workers,
)
from smm_daq.analysis.mmt.study.grid import StudySpec
from smm_daq.analysis.mmt.study.run import run_sample
from smm_daq.analysis.mmt.tiles import cluster
from smm_daq.cli.mmt_study import add_study_command
from smm_daq.errors import InputError

GIB = 2**30
SPEC = StudySpec(surfaces_um=(100.0,), thicknesses_um=(20.0,), densities_per_mm3=(2e5, 1e6),
                 intervals_um=(1, 3), noise_nT=(5.0,), repeats=2)
ARGS = ["study", "--surface-um", "100", "--thickness-um", "20", "--densities-per-mm3",
        "200000,1000000", "--intervals-um", "1,3", "--noise-nT", "5", "--repeats", "2"]


def _needs() -> list[int]:
    """The samples' needs, largest first: two at 1e6 grains/mm³, then two at 2e5."""
    return sorted((sample_need(s, SPEC) for s in SPEC.samples()), reverse=True)


def test_a_samples_need_is_not_below_its_tasks_traced_peak() -> None:
    """The grains' solve is not all of it: the Green's model, what the fitted map keeps of Q's
    rows, the QR's workspace, the sample's 1 µm grid and the maps are held beside it. The
    densest sample of SPEC (200 grains, as cubes: the seed's maker takes ten times as long)
    is run under tracemalloc in this process, after a small one has loaded the kernels (the
    imports and the compiling untraced, as a fresh interpreter's were)."""
    dense = SPEC.samples()[0]
    assert sample_grains(dense) == 200  # 1e6 /mm³ in 100 × 100 × 20 µm
    one = StudySpec(surfaces_um=SPEC.surfaces_um, thicknesses_um=SPEC.thicknesses_um,
                    densities_per_mm3=SPEC.densities_per_mm3, intervals_um=SPEC.intervals_um,
                    noise_nT=SPEC.noise_nT, repeats=1)
    small = StudySpec(surfaces_um=(20.0,), thicknesses_um=(20.0,), densities_per_mm3=(2e5,),
                      intervals_um=(1,), noise_nT=(5.0,), repeats=1)
    run_sample(small.samples()[0], small, _boxes)
    assert not tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        run_sample(one.samples()[0], one, _boxes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    need = sample_need(dense, SPEC)
    assert peak <= need < 3 * peak, (need, peak)


def test_the_workers_are_limited_to_the_solves_that_fit_at_once(monkeypatch) -> None:
    needs = _needs()
    said: list[str] = []
    monkeypatch.setattr(memory, "available_bytes", lambda: needs[0] + needs[1] + needs[2] - 1)
    assert study_workers(SPEC, 4, info=said.append) == 2
    assert said == [f"study: 4 workers would invert the 4 densest samples at once, needing "
                    f"{sum(needs) / GIB:.2f} GiB ({needs[0] / GIB:.2f} GiB for the densest), "
                    f"and this machine has {(sum(needs[:3]) - 1) / GIB:.2f} GiB available: "
                    "running 2 workers"]
    monkeypatch.setattr(memory, "available_bytes", lambda: needs[0])
    assert study_workers(SPEC, 4, info=said.append) == 1
    said.clear()
    monkeypatch.setattr(memory, "available_bytes", lambda: sum(needs))
    assert study_workers(SPEC, 4, info=said.append) == 4
    assert study_workers(SPEC, 9, info=said.append) == 9  # more workers than samples
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    assert study_workers(SPEC, 4, info=said.append) == 4
    assert said == []


def test_a_study_whose_largest_sample_cannot_fit_alone_is_refused(monkeypatch) -> None:
    have = _needs()[0] - 1
    monkeypatch.setattr(memory, "available_bytes", lambda: have)
    with pytest.raises(InputError) as err:
        study_workers(SPEC, 2)
    text = str(err.value)
    assert text.startswith(
        f"the study's largest sample (100 µm × 100 µm, 20 µm thick, 1e+06 grains/mm³: 200 "
        f"grains) needs {_needs()[0] / GIB:.2f} GiB of memory for its solve alone, and this "
        f"machine has {have / GIB:.2f} GiB available; expected at most 199 grains a sample: "
        "--densities-per-mm3 up to 9.95e+05 for that surface and thickness")
    fits = StudySpec(surfaces_um=(100.0,), thicknesses_um=(20.0,), densities_per_mm3=(9.95e5,),
                     intervals_um=(1, 3), noise_nT=(5.0,), repeats=1)
    assert study_workers(fits, 2) == 2  # the density it names fits (one sample: no limit)


def _cli(monkeypatch, tmp_path, workers: int) -> tuple[list[int], argparse.Namespace]:
    """The study command with its cluster and its run imitated: the workers it asks for."""
    asked: list[int] = []

    @contextlib.contextmanager
    def client(scheduler, *, n_workers):
        asked.append(n_workers)
        yield None

    monkeypatch.setattr(cluster, "open_client", client)
    monkeypatch.setattr(cluster, "worker_memory", lambda client, say=None: {})
    monkeypatch.setattr(run, "run_study", lambda *a, **k: {})
    parser = argparse.ArgumentParser()
    add_study_command(parser.add_subparsers(), _boxes)
    return asked, parser.parse_args([*ARGS, "--out", str(tmp_path / "out"),
                                     "--workers", str(workers)])


def test_the_study_command_starts_only_the_workers_that_fit(monkeypatch, tmp_path,
                                                            capsys) -> None:
    needs = _needs()
    monkeypatch.setattr(memory, "available_bytes", lambda: needs[0] + needs[1])
    asked, args = _cli(monkeypatch, tmp_path, 4)
    assert args.func(args) == 0
    assert asked == [2]
    assert capsys.readouterr().err.endswith("available: running 2 workers\n")


def test_the_study_command_refuses_before_writing_anything(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: _needs()[0] - 1)
    asked, args = _cli(monkeypatch, tmp_path, 2)
    with pytest.raises(InputError, match=r"needs .* GiB of memory for its solve alone"):
        args.func(args)
    assert asked == [] and not (tmp_path / "out").exists()


def test_a_worker_whose_limit_cannot_hold_the_samples_it_may_invert_at_once_is_named() -> None:
    """Any sample may go to any worker, as many at once as it has threads: a worker of two
    threads needs the two densest samples' memory; one short of that is named."""
    needs = _needs()
    check_workers(SPEC, {"tcp://192.0.2.7:4000": (needs[0], 1),
                         "tcp://192.0.2.8:4000": (needs[0] + needs[1], 2),
                         "tcp://192.0.2.9:4000": (None, 4)})  # no limit: not checked
    with pytest.raises(InputError) as err:
        check_workers(SPEC, {"tcp://192.0.2.7:4000": (needs[0], 1),
                             "tcp://192.0.2.8:4000": (needs[0] + needs[1] - 1, 2)})
    assert str(err.value) == (
        f"the Dask worker tcp://192.0.2.8:4000 has a memory limit of "
        f"{(needs[0] + needs[1] - 1) / GIB:.2f} GiB, and the study's 2 densest samples, as "
        f"many as it may invert at once (its 2 threads), need {(needs[0] + needs[1]) / GIB:.2f}"
        f" GiB ({needs[0] / GIB:.2f} GiB for the densest: 100 µm × 100 µm, 20 µm thick, "
        f"1e+06 grains/mm³, 200 grains); expected workers with a memory limit of at least "
        f"{(needs[0] + needs[1]) / GIB:.2f} GiB (dask worker --memory-limit), or fewer "
        "threads a worker (dask worker --nthreads)")
    with pytest.raises(InputError, match=r"tcp://192\.0\.2\.7:4000 .* or at most 199 grains a "
                                         r"sample: --densities-per-mm3 up to 9\.95e\+05"):
        check_workers(SPEC, {"tcp://192.0.2.7:4000": (needs[0] - 1, 1)})


def test_the_study_command_checks_the_workers_of_the_scheduler_given(tmp_path) -> None:
    """A scheduler's workers (here one in this process, which does not pause although this
    process holds more than its limit) are checked against their own memory limits, read from
    the scheduler, before anything is written."""
    limit = _needs()[0] - 1
    parser = argparse.ArgumentParser()
    add_study_command(parser.add_subparsers(), _boxes)
    with dask.config.set(cluster.LOCAL_MEMORY_CONFIG), LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, memory_limit=limit,
            dashboard_address=None, silence_logs=logging.ERROR) as remote:
        args = parser.parse_args([*ARGS, "--out", str(tmp_path / "out"),
                                  "--scheduler", remote.scheduler_address])
        with pytest.raises(InputError) as err:
            args.func(args)
        worker = next(iter(remote.scheduler_info["workers"]))
    assert str(err.value).startswith(
        f"the Dask worker {worker} has a memory limit of {limit / GIB:.2f} GiB, and the "
        "study's densest sample, as many as it may invert at once (its 1 thread), needs ")
    assert not (tmp_path / "out").exists()


def test_a_scheduler_without_workers_is_said_to_leave_the_study_unchecked(monkeypatch, tmp_path,
                                                                          capsys) -> None:
    """No worker connected to the scheduler yet: the study says on stderr that no worker's
    memory was checked (it passed the check in silence), then runs (imitated here)."""
    monkeypatch.setattr(run, "run_study", lambda *a, **k: {})
    parser = argparse.ArgumentParser()
    add_study_command(parser.add_subparsers(), _boxes)
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as empty:
        args = parser.parse_args([*ARGS, "--out", str(tmp_path / "out"),
                                  "--scheduler", empty.scheduler_address])
        assert args.func(args) == 0
        address = empty.scheduler_address
    assert (f"smm-daq: warning: no Dask worker is connected to the scheduler at {address} "
            "yet, so no worker's memory was checked against the run") in capsys.readouterr().err
