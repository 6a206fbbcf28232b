"""Statistics and figures of the parameter study (seed 001 Figures 4 and 5)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from smm_daq.analysis.mmt.study.grid import StudySpec, parse_list, subsample_index
from smm_daq.analysis.mmt.study.plots import plot_ssr_resolved, plot_uncertainty_boxes
from smm_daq.analysis.mmt.study.stats import (
    model_statistics,
    ssr_resolved,
    ur_quartiles,
    write_csv,
)
from smm_daq.errors import InputError


def test_quartiles_are_those_of_the_sample_and_infinite_ratios_count_as_largest() -> None:
    ur = np.array([4.0, 1.0, 3.0, 2.0, 5.0])
    assert ur_quartiles(ur) == (1.0, 2.0, 3.0, 4.0, 5.0)
    lo, q1, med, q3, hi = ur_quartiles(np.array([1.0, 2.0, 3.0, np.inf, np.nan]))
    assert (lo, q1, med) == (1.0, 2.0, 3.0) and q3 == math.inf and hi == math.inf


def test_ssr_resolved_is_the_lowest_threshold_keeping_99_percent_solved() -> None:
    ssr = np.arange(1.0, 201.0)  # 1 .. 200
    ur = np.where(ssr >= 101, 0.5, 50.0)  # the top 100 grains are solved to 1 %
    # 100 solved of 101 is still 99 %: the threshold takes in one unsolved grain
    assert ssr_resolved(ur, ssr, 1.0) == (100.0, 0.505)
    ur[150] = 50.0  # one failure in the top 100: exactly 99 % of them, no more
    assert ssr_resolved(ur, ssr, 1.0) == (101.0, 0.5)
    ur[160] = 50.0  # two: only the 39 grains above the stronger failure are 99 % solved
    s, kept = ssr_resolved(ur, ssr, 1.0)
    assert s == 162.0 and kept == pytest.approx(39 / 200)
    top = ssr >= s
    assert np.mean(ur[top] <= 1.0) >= 0.99
    assert np.mean(ur[ssr >= s - 1] <= 1.0) < 0.99
    assert ssr_resolved(ur, ssr, 100.0) == (1.0, 1.0)  # every grain solved to 100 %


def test_ssr_resolved_keeps_ties_together_and_reports_none_when_impossible() -> None:
    ssr = np.array([5.0, 5.0, 3.0, 1.0])
    ur = np.array([0.1, 9.0, 0.1, 0.1])  # one of the two strongest fails
    assert math.isnan(ssr_resolved(ur, ssr, 1.0)[0])
    assert ssr_resolved(ur, ssr, 1.0)[1] == 0.0
    assert ssr_resolved(ur, ssr, 10.0) == (1.0, 1.0)


def test_model_row_has_the_figure_columns(tmp_path) -> None:
    rng = np.random.default_rng(0)
    ssr = 10 ** rng.uniform(-5, -2, 400)
    ur = 1e-3 / ssr * 10 ** rng.normal(0, 0.1, 400)  # UR falls as SSR rises
    row = model_statistics(ur, ssr)
    assert row["grains"] == 400
    assert row["ur_median_pct"] == pytest.approx(np.median(ur))
    assert row["ssr99_ur1pct"] > row["ssr99_ur10pct"] > row["ssr99_ur20pct"]
    assert 0 < row["kept_ur1pct"] < row["kept_ur10pct"] <= 1
    out = tmp_path / "s.csv"
    write_csv(out, [{"density_per_mm3": 2500.0, **row}])
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["ur_q3_pct"]) == pytest.approx(row["ur_q3_pct"], rel=1e-5)


def test_figures_are_written_as_png(tmp_path) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for density in (2500.0, 10000.0):
        for interval in (1, 5):
            for noise in (5.0, 100.0):
                ssr = 10 ** rng.uniform(-5, -2, 50)
                ur = noise * interval * density / 1e6 / ssr * 1e-3
                rows.append({"surface_um": 200.0, "thickness_um": 50.0,
                             "density_per_mm3": density, "interval_um": float(interval),
                             "noise_nT": noise, **model_statistics(ur, ssr)})
    for plot, name in ((plot_uncertainty_boxes, "f4.png"), (plot_ssr_resolved, "f5.png")):
        plot(rows, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_grid_counts_table1_and_subsamples_the_1um_grid() -> None:
    spec = StudySpec()
    assert len(list(spec.models())) == 448  # as the seed says
    assert len(spec.samples()) == 2 * 2 * 7 * 15
    assert subsample_index(201, 5).size == 41 and subsample_index(501, 5).size == 101
    assert subsample_index(201, 4)[-1] == 200
    a, b = spec.samples()[0], spec.samples()[1]
    assert a.rng().normal() == spec.samples()[0].rng().normal()
    assert a.rng().normal() != b.rng().normal()


def test_study_options_are_checked() -> None:
    assert parse_list("--intervals-um", "1,2,5", integer=True) == (1, 2, 5)
    with pytest.raises(InputError, match="--intervals-um"):
        parse_list("--intervals-um", "1,2.5", integer=True)
    with pytest.raises(InputError, match="--noise-nT"):
        parse_list("--noise-nT", "5,-1")
    with pytest.raises(InputError, match="repeats"):
        StudySpec(repeats=0)
