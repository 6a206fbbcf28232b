"""The per-grain table of an MMT inversion: sortable by any column, filtered by the signal
strength ratio (SSR) and the uncertainty ratio, the two criteria of seed 001 for picking the
grains whose magnetization is reliable."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PyQt6 import QtCore

SSR = "ssr"
RATIO = "uncertainty_ratio_pct"
SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole  # the raw number, so sorting is numeric


class GrainTableModel(QtCore.QAbstractTableModel):
    """Read-only columns of equal length (name -> array), one row a grain."""

    def __init__(self, columns: Mapping[str, np.ndarray], parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.names = list(columns)
        self.columns = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {v.shape[0] for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths {sorted(lengths)}")
        self.rows = lengths.pop() if lengths else 0

    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self.rows

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.names)

    def value(self, row: int, name: str) -> float:
        return float(self.columns[name][row])

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        v = self.columns[self.names[index.column()]][index.row()]
        if role == SORT_ROLE:
            return float(v)
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            if np.issubdtype(np.asarray(v).dtype, np.integer):
                return str(int(v))
            return f"{float(v):.4g}"
        if role == QtCore.Qt.ItemDataRole.TextAlignmentRole:
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation,
                   role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if role != QtCore.Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == QtCore.Qt.Orientation.Horizontal:
            return self.names[section]
        return str(section + 1)


class GrainFilter(QtCore.QSortFilterProxyModel):
    """Shows grains with SSR >= `min_ssr` and uncertainty ratio <= `max_ratio_pct`."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.min_ssr = 0.0
        self.max_ratio_pct = float("inf")
        self.setSortRole(SORT_ROLE)

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
        """Source rows that pass the filter, in the shown (sorted) order."""
        return [self.mapToSource(self.index(r, 0)).row() for r in range(self.rowCount())]
