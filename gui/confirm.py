"""Asking the operator before an action that cannot be taken back."""

from __future__ import annotations

from typing import Literal

from PyQt6 import QtWidgets

TITLE = "smm-daq"


def confirm(parent: QtWidgets.QWidget, question: str) -> bool:
    """Yes or No to `question`, No the default (Enter must not take it back)."""
    yes, no = QtWidgets.QMessageBox.StandardButton.Yes, QtWidgets.QMessageBox.StandardButton.No
    return QtWidgets.QMessageBox.question(parent, TITLE, question, yes | no, no) == yes


def save_first(parent: QtWidgets.QWidget, question: str) -> Literal["save", "drop", "cancel"]:
    """Yes (save first), No (go on without saving) or Cancel (neither) to `question`; Cancel
    the default, and what Escape or the box's close says: Enter must not drop the work."""
    button = QtWidgets.QMessageBox.StandardButton
    answer = QtWidgets.QMessageBox.question(parent, TITLE, question,
                                            button.Yes | button.No | button.Cancel, button.Cancel)
    return "save" if answer == button.Yes else "drop" if answer == button.No else "cancel"
