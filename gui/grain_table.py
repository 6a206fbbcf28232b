"""The per-grain table of an MMT inversion: sortable by any column, filtered by the signal
strength ratio (SSR) and the uncertainty ratio, the two criteria of seed 001 for picking the
grains whose magnetization is reliable.

A scan holds thousands of grains, so the table sorts with NumPy, in its model (`sort`), not
by the proxy's comparisons of two cells at a time, each read through Python (a sort of 4,300
grains read some 100,000 cells); a table row is therefore not its grain's index in the result:
`GrainTableModel.grain` and `GrainFilter.grain_at` say which grain a row shows."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PyQt6 import QtCore

from gui.grain_columns import column_format, heading, heading_tip

SSR = "ssr_per_um"
RATIO = "uncertainty_ratio_pct"
SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole  # the raw number
DISPLAY = QtCore.Qt.ItemDataRole.DisplayRole
TOOLTIP = QtCore.Qt.ItemDataRole.ToolTipRole
ALIGNMENT = QtCore.Qt.ItemDataRole.TextAlignmentRole
RIGHT = int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
ASCENDING = QtCore.Qt.SortOrder.AscendingOrder
SORT_HINT = QtCore.QAbstractItemModel.LayoutChangeHint.VerticalSortHint


class GrainTableModel(QtCore.QAbstractTableModel):
    """Read-only columns of equal length (name -> array), one row a grain; row r shows grain
    `order[r]` (the grains' order until sorted)."""

    def __init__(self, columns: Mapping[str, np.ndarray], parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.names = list(columns)
        self.columns = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {v.shape[0] for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths {sorted(lengths)}")
        self.rows = lengths.pop() if lengths else 0
        self.order = np.arange(self.rows)
        self.formats = [column_format(self.columns[name]) for name in self.names]

    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self.rows

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.names)

    def grain(self, row: int) -> int:
        """The grain (index into the result) shown in `row`."""
        return int(self.order[row])

    def value(self, row: int, name: str) -> float:
        return float(self.columns[name][self.order[row]])

    def data(self, index: QtCore.QModelIndex, role: int = DISPLAY):
        if not index.isValid():
            return None
        if role == ALIGNMENT:
            return RIGHT
        if role not in (DISPLAY, SORT_ROLE):  # asked for each cell drawn: no value read
            return None
        column = self.columns[self.names[index.column()]]
        v = column[self.order[index.row()]]
        if role == SORT_ROLE:
            return float(v)
        return self.formats[index.column()](v)

    def sort(self, column: int, order: QtCore.Qt.SortOrder = ASCENDING) -> None:
        """Rows by the values of `column`, ascending or descending, NaN (undetermined) last
        either way, rows of equal values in the grains' order; a selected row stays selected."""
        key = self.columns[self.names[column]].astype(float)
        new = np.argsort(key if order == ASCENDING else -key, kind="stable")
        self.layoutAboutToBeChanged.emit([], SORT_HINT)
        row_of = np.empty_like(new)
        row_of[new] = np.arange(new.size)
        kept = self.persistentIndexList()
        self.changePersistentIndexList(
            kept, [self.index(int(row_of[self.order[i.row()]]), i.column()) for i in kept])
        self.order = new
        self.layoutChanged.emit([], SORT_HINT)

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation,
                   role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        """A column's heading says its quantity and unit (`heading`); its tooltip, its name in
        the result's CSV, and a direction's convention."""
        horizontal = orientation == QtCore.Qt.Orientation.Horizontal
        if role == TOOLTIP and horizontal:
            return heading_tip(self.names[section])
        if role != DISPLAY:
            return None
        if horizontal:
            return heading(self.names[section])
        return str(section + 1)


class GrainFilter(QtCore.QSortFilterProxyModel):
    """Shows grains with SSR >= `min_ssr` and uncertainty ratio <= `max_ratio_pct`."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.min_ssr = 0.0
        self.max_ratio_pct = float("inf")
        self.sorted_by: tuple[int, QtCore.Qt.SortOrder] | None = None  # column, order

    def sort(self, column: int, order: QtCore.Qt.SortOrder = ASCENDING) -> None:
        """Sorted by the grain table itself (`GrainTableModel.sort`); a table set later is
        sorted the same way."""
        self.sorted_by = (column, order) if column >= 0 else None
        model = self.sourceModel()
        if isinstance(model, GrainTableModel) and 0 <= column < model.columnCount():
            model.sort(column, order)

    def setSourceModel(self, model: QtCore.QAbstractItemModel) -> None:
        super().setSourceModel(model)
        if isinstance(model, GrainTableModel) and self.sorted_by is not None:
            self.sort(*self.sorted_by)

    def grain_at(self, row: int) -> int:
        """The grain (index into the result) shown in table row `row`."""
        model = self.sourceModel()
        source = self.mapToSource(self.index(row, 0)).row()
        return model.grain(source) if isinstance(model, GrainTableModel) else source

    def set_limits(self, min_ssr: float, max_ratio_pct: float) -> None:
        self.min_ssr, self.max_ratio_pct = float(min_ssr), float(max_ratio_pct)
        self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QtCore.QModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, GrainTableModel):
            return True
        # a limit left open shows every grain; a set one never passes NaN (undetermined)
        ssr_ok = self.min_ssr <= 0 or SSR not in model.columns or (
            model.value(row, SSR) >= self.min_ssr
        )
        ratio_ok = np.isinf(self.max_ratio_pct) or RATIO not in model.columns or (
            model.value(row, RATIO) <= self.max_ratio_pct
        )
        return bool(ssr_ok and ratio_ok)

    def shown_rows(self) -> list[int]:
        """The grains (indices into the result) that pass the filter, in the shown (sorted)
        order."""
        return [self.grain_at(r) for r in range(self.rowCount())]
