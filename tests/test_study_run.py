"""The parameter study end to end on a tiny grid, in process and on an in-process cluster."""

from __future__ import annotations

import csv
import json

import numpy as np

from smm_daq.analysis.grains import GrainSet, from_arrays
from smm_daq.analysis.mmt.study.grid import SampleSpec, StudySpec
from smm_daq.analysis.mmt.study.run import run_sample, run_study
from smm_daq.analysis.mmt.tiles.cluster import open_client

UM = 1e-6


def _boxes(sample: SampleSpec, rng: np.random.Generator) -> tuple[GrainSet, np.ndarray]:
    """Cubes of 3 µm at the study's density, spread on a lattice so they never touch."""
    volume_mm3 = sample.surface_um**2 * sample.thickness_um * 1e-9
    n = max(1, round(sample.density_per_mm3 * volume_mm3))
    cells = int(np.ceil(np.sqrt(n)))
    pitch = sample.surface_um / cells
    k = rng.choice(cells * cells, n, replace=False)
    x = (k % cells + 0.5) * pitch
    y = (k // cells + 0.5) * pitch
    z = -rng.uniform(1.5, sample.thickness_um - 1.5, n)
    cub = np.c_[x, y, z, np.full((n, 3), 3.0)] * UM
    m = rng.normal(size=(n, 3)) * 5e3
    return from_arrays(cub, np.arange(n)), m


def test_noise_and_coarser_sampling_raise_the_uncertainty_ratio() -> None:
    spec = StudySpec(surfaces_um=(30.0,), thicknesses_um=(8.0,), densities_per_mm3=(5e5,),
                     intervals_um=(1, 3), noise_nT=(5.0, 50.0), repeats=1)
    out = run_sample(spec.samples()[0], spec, _boxes)
    ur = {key: np.median(v[0]) for key, v in out.items()}
    # the covariance scales with σ², so UR with σ at fixed M̂ (to within the noise in M̂)
    assert 5 < ur[(1, 50.0)] / ur[(1, 5.0)] < 20
    assert ur[(3, 5.0)] > ur[(1, 5.0)]
    ssr = out[(1, 5.0)][1]
    np.testing.assert_array_equal(ssr, out[(3, 50.0)][1])  # SSR is geometry only


def test_a_higher_sensor_sees_less_and_raises_the_uncertainty_ratio() -> None:
    near = StudySpec(surfaces_um=(30.0,), thicknesses_um=(8.0,), densities_per_mm3=(5e5,),
                     intervals_um=(1,), noise_nT=(5.0,), repeats=1)
    far = StudySpec(surfaces_um=(30.0,), thicknesses_um=(8.0,), densities_per_mm3=(5e5,),
                    intervals_um=(1,), noise_nT=(5.0,), repeats=1, height_um=4.0,
                    sensor_um=0.0)
    ur_near, ssr_near = run_sample(near.samples()[0], near, _boxes)[(1, 5.0)]
    ur_far, ssr_far = run_sample(far.samples()[0], far, _boxes)[(1, 5.0)]
    assert np.median(ur_far) > 2 * np.median(ur_near)
    assert np.all(ssr_far < ssr_near)  # the same grains, 3.5 µm farther from the sensor


def test_study_writes_statistics_and_figures_through_dask(tmp_path) -> None:
    spec = StudySpec(surfaces_um=(30.0,), thicknesses_um=(8.0,),
                     densities_per_mm3=(2e5, 5e5), intervals_um=(1, 3), noise_nT=(5.0, 50.0),
                     repeats=2)
    events = []
    with open_client(processes=False, n_workers=1) as client:
        paths = run_study(spec, tmp_path, make=_boxes, client=client,
                          progress=lambda *e: events.append(e))
    assert events[-1] == ("study samples", 4, 4)
    with open(paths["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8  # 2 densities × 2 intervals × 2 noise levels
    assert all(r["runs"] == "2" for r in rows)
    dense = [r for r in rows if float(r["density_per_mm3"]) == 5e5]
    assert sum(int(r["grains"]) for r in dense) == 4 * 2 * round(5e5 * 30 * 30 * 8 * 1e-9)
    models = json.loads(paths["json"].read_text())["models"]
    assert len(models) == 8 and models[0]["surface_um"] == 30.0
    for key in ("figure4", "figure5"):
        assert paths[key].read_bytes()[:4] == b"\x89PNG"


def test_a_study_sample_folds_in_the_one_stream_its_budget_counts(monkeypatch) -> None:
    """The study's budget (`study.budget.solve_need`) counts one stream per task, its workers
    being its parallelism: a machine where an inversion alone would fold in two streams
    still folds a study's in one."""
    from smm_daq.analysis.mmt.solver import streams as qr_streams

    planned: list[int] = []
    plan = qr_streams.plan
    monkeypatch.setattr(qr_streams, "stream_count", lambda *args, **kwargs: 2)
    monkeypatch.setattr(qr_streams, "plan",
                        lambda total, block, streams: planned.append(streams)
                        or plan(total, block, streams))
    spec = StudySpec(surfaces_um=(30.0,), thicknesses_um=(8.0,), densities_per_mm3=(5e5,),
                     intervals_um=(1,), noise_nT=(5.0,), repeats=1)
    run_sample(spec.samples()[0], spec, _boxes)
    assert planned == [1]
