"""Asking the operator before an action that cannot be taken back."""

from __future__ import annotations

from PyQt6 import QtWidgets

TITLE = "smm-daq"


def confirm(parent: QtWidgets.QWidget, question: str) -> bool:
    """Yes or No to `question`, No the default (Enter must not take it back)."""
    yes, no = QtWidgets.QMessageBox.StandardButton.Yes, QtWidgets.QMessageBox.StandardButton.No
    return QtWidgets.QMessageBox.question(parent, TITLE, question, yes | no, no) == yes
