"""The Session tab's message line (gui/message_line.py): its Details box follows what the line
says, also while the line is out of sight (its tab not the one shown)."""

from __future__ import annotations

from PyQt6 import QtWidgets

from gui.message_line import ERROR_STYLE, MessageLine


def test_details_shown_then_out_of_sight_go_with_the_next_message(qtbot) -> None:
    """Details shown, then the tab left: a message said meanwhile (an error, or an entries
    table read again, which clears the line) left the box shown, emptied, with no link to
    hide it, and the room it took from the maps never given back."""
    tabs = QtWidgets.QTabWidget()
    qtbot.addWidget(tabs)
    message = MessageLine()
    tabs.addTab(message, "Session")
    tabs.addTab(QtWidgets.QWidget(), "other")
    tabs.show()
    room: list[int] = []
    message.detailsShown.connect(room.append)
    message.say("Wrote entry 'induced' (1 note)", ["Note: left out"])
    message.line.linkActivated.emit("details")
    assert not message.more.isHidden() and sum(room) > 0
    tabs.setCurrentIndex(1)  # the Session tab out of sight
    message.setText("refused")
    assert message.more.isHidden() and sum(room) == 0
    assert message.line.styleSheet() == ERROR_STYLE and message.line.text() == "refused"
    message.say("Wrote entry 'again' (1 note)", ["Note: left out again"])
    tabs.setCurrentIndex(0)
    assert message.more.isHidden()
    assert message.line.text().endswith('<a href="details">Details</a>')
    message.line.linkActivated.emit("details")
    assert not message.more.isHidden() and sum(room) > 0
    assert message.line.text().endswith('<a href="details">Hide details</a>')
