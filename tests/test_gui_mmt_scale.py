"""MMT tab with hundreds of grains: the work done per action does not grow with the grains
where it need not (cells read through the table's model, the thread the outlines are drawn
on)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from PyQt6 import QtCore

import gui.mmt_view as mmt_view
from gui.grain_outlines import grain_segments
from gui.grain_table import DISPLAY, SORT_ROLE, SSR, GrainTableModel
from gui.mmt_view import ROWS_SIZED, MMTView
from smm_daq.analysis.mmt.models.multipole import PointGrains
from smm_daq.analysis.mmt.solver.joint import MultipoleResult
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData

UM = 1e-6
UT = 1e-6
GRAINS = 400  # well above ROWS_SIZED: a table's work per row shows


class CountingModel(GrainTableModel):
    """The grain table, recording the rows whose values are read through it."""

    rows_read: ClassVar[list[int]] = []

    def data(self, index, role=DISPLAY):
        if index.isValid() and role in (DISPLAY, SORT_ROLE):
            CountingModel.rows_read.append(index.row())
        return super().data(index, role)


def result_of(n: int, seed: int = 0) -> tuple[MapData, MultipoleResult, dict]:
    """A dipole result of `n` point grains with random values (a few SSRs undetermined)."""
    rng = np.random.default_rng(seed)
    x, y = np.arange(60) * 2 * UM, np.arange(50) * 2 * UM
    data = MapData(bz=rng.normal(0, UT, (50, 60)), x=x, y=y, height=5 * UM,
                   sensor_size=(0.0, 0.0), name="scan")
    grains = PointGrains(np.c_[rng.uniform(0, x[-1], n), rng.uniform(0, y[-1], n),
                               rng.uniform(-30 * UM, -2 * UM, n)],
                         rng.uniform(1, 30, n) * UM**3, np.arange(1, n + 1))
    m = rng.normal(0, 3e4, (n, 3))
    cov = np.zeros((n, 3, 3))
    cov[:, range(3), range(3)] = rng.uniform(1e6, 1e9, (n, 3))
    fitted, residual = data.with_bz(0.9 * data.bz), data.with_bz(0.1 * data.bz)
    result = MultipoleResult(
        grains=grains, magnetization=m, covariance=cov, sigma=UT, sigma_from_residual=True,
        fitted=fitted, residual=residual, condition_number=10.0, n_sensors=data.bz.size,
        damping=0.0, height=data.height, model="dipole", coefficients=m,
        coefficient_covariance=cov, scans=("scan",), sigmas=(UT,), fits=[(fitted, residual)],
        masks=[None])
    table = result.table()
    table[SSR][::37] = np.nan  # undetermined
    return data, result, table


@pytest.fixture
def shown(qtbot, monkeypatch):
    """The MMT tab showing a result of GRAINS grains, its table counting the rows read."""
    monkeypatch.setattr(mmt_view, "GrainTableModel", CountingModel)
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.resize(1300, 800)
    view.show()
    data, result, table = result_of(GRAINS)
    CountingModel.rows_read = []
    view._done(([data], result, table, [], {}, grain_segments(result.grains), ""))
    return view


def shown_column(view: MMTView, name: str) -> np.ndarray:
    return np.array([view.table_columns[name][g] for g in view.proxy.shown_rows()])


def test_showing_a_result_reads_a_bounded_number_of_rows(shown):
    rows = set(CountingModel.rows_read)
    assert 0 < len(rows) <= ROWS_SIZED < GRAINS


def test_sorting_reads_no_cells_and_keeps_the_selected_grain(shown):
    view = shown
    view.table.selectRow(view.proxy.shown_rows().index(123))
    CountingModel.rows_read = []
    view.sort_by(SSR)
    assert CountingModel.rows_read == []  # not two cells per comparison through the model
    ssr = shown_column(view, SSR)
    finite = np.isfinite(ssr)
    assert finite[:finite.sum()].all() and not finite[finite.sum():].any()  # NaN last
    assert np.all(np.diff(ssr[finite]) >= 0)
    view.sort_by(SSR, QtCore.Qt.SortOrder.DescendingOrder)
    ssr = shown_column(view, SSR)
    assert np.all(np.diff(ssr[np.isfinite(ssr)]) <= 0) and np.isnan(ssr[-1])
    # the table's rows show the grains they say they do, and the selection followed its grain
    model = view.proxy.sourceModel()
    for row in (0, 57, GRAINS - 1):
        index = view.proxy.index(row, model.names.index("grain"))
        assert index.data(SORT_ROLE) == view.result.grains.labels[view.proxy.grain_at(row)]
    selected = view.table.selectionModel().selectedRows()
    assert [view.proxy.grain_at(i.row()) for i in selected] == [123]


def test_a_new_result_is_sorted_as_the_table_was(shown):
    view = shown
    view.sort_by("depth_um", QtCore.Qt.SortOrder.DescendingOrder)
    data, result, table = result_of(GRAINS, seed=1)
    view._done(([data], result, table, [], {}, grain_segments(result.grains), ""))
    depth = shown_column(view, "depth_um")
    assert np.all(np.diff(depth) <= 0) and depth.size == GRAINS


def test_an_ssr_limit_of_micrometre_grains_can_be_set(shown):
    """The SSRs of micrometre grains tens of µm deep are 1e-5 to 1e-2: a limit among them
    filters them (not rounded to 0, "any")."""
    view = shown
    ssr = view.table_columns[SSR]
    limit = float(np.nanmedian(ssr))
    assert limit < 5e-4  # such grains: below the 3 decimals of a spin box
    view.min_ssr.setValue(limit)
    kept = np.sort(view.proxy.shown_rows())
    np.testing.assert_array_equal(kept, np.flatnonzero(ssr >= view.min_ssr.value()))
    assert abs(view.min_ssr.value() - limit) <= 5e-7
    assert 0 < kept.size < GRAINS
