"""A new session file whose name leaves no room for its hidden scratch files is refused by the
window before anything starts, as the command line refuses it (`check_scratch_room`): the
scan began (the rig ramped, the stage moved) and failed only when the file was made."""

from __future__ import annotations

from pathlib import Path

from recipe_opening import recipe_opened
from test_gui_recipes import RECIPE

LONG_NAME = "é" * 124 + ".h5"  # 251 bytes: the folder takes it, its scratch files not
SAID = "whose name of 251 bytes leaves no room for the hidden files a session file is made"


def test_the_scan_tab_refuses_a_new_file_without_room_for_its_scratch_files(window, tmp_path):
    scan = window.scan
    path = tmp_path / LONG_NAME
    scan.file_edit.setText(str(path))

    assert not scan.start()
    text = scan.status.text()
    assert text.startswith(f"Not started: the session file is {str(path)!r}, {SAID}"), text
    assert "expected a name of at most " in text and "nothing was written" in text, text
    assert scan.live.state == "idle" and not window.holder.busy
    assert scan.live.sequencer is None
    assert not path.exists()


def test_a_name_longer_than_the_file_system_takes_is_refused_alike(window, tmp_path):
    """Its name's length asked of the system (whether a file is there) raised OSError
    (ENAMETOOLONG) out of Start."""
    scan = window.scan
    path = tmp_path / ("a" * 300 + ".h5")
    scan.file_edit.setText(str(path))

    assert not scan.start()
    text = scan.status.text()
    assert text.startswith(f"Not started: the session file is {str(path)!r}, whose name of "
                           "303 bytes leaves no room for the hidden files"), text
    assert scan.live.state == "idle" and not window.holder.busy


def test_a_recipe_into_such_a_file_is_refused_as_it_is_opened(window, qtbot, tmp_path: Path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE, encoding="utf-8")
    window.scan.file_edit.setText(str(tmp_path / LONG_NAME))
    view = window.recipes

    assert not recipe_opened(view, qtbot, recipe)
    assert f"the session file on the Scan tab is {str(tmp_path / LONG_NAME)!r}, {SAID}" \
        in view.message.text(), view.message.text()
    assert not view.run_button.isEnabled()
