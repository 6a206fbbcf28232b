"""Entry names wherever they enter (the command line's --name, recipes, the window, import
commands): 'é' typed composed or as 'e' and a combining accent names one entry; a name is
at most ENTRY_NAME_MAX characters and holds no control character, each refused with one
clear line; entries an earlier release named so still list and read."""

from __future__ import annotations

import json
import textwrap

import h5py
import numpy as np
import pytest
from test_gui_subtract import bump_map

from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.names import ENTRY_NAME_MAX
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

NFC = "\u00e9chantillon"  # 'é' one character
NFD = "e\u0301chantillon"  # 'e' and the combining acute accent
LONG = "x" * 10_000
SCAN = ["scan", "--center-um", "12500,12500", "--size-um", "40,20", "--step-um", "20"]


def _refused_option(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_a_name_typed_decomposed_names_the_entry_typed_composed(tmp_path, capsys) -> None:
    path = tmp_path / "s.h5"
    assert main([*SCAN, "--out", str(path), "--name", NFD]) == 0
    assert [e.name for e in list_entries(path)] == [NFC]
    assert main([*SCAN, "--out", str(path), "--name", NFC]) == 2
    assert "already" in capsys.readouterr().err
    assert [e.name for e in list_entries(path)] == [NFC]


@pytest.mark.parametrize(("name", "words"), [
    (LONG, "is 10000 characters long"),
    ("a\nb", "holds '\\n' (U+000A)"),
    ("a\tb", "holds '\\t' (U+0009)"),
    ("a\x1bb", "holds '\\x1b' (U+001B)"),
])
def test_a_long_name_or_one_with_a_control_character_is_refused_on_one_line(
        tmp_path, capsys, name, words) -> None:
    path = tmp_path / "s.h5"
    err = _refused_option(capsys, [*SCAN, "--out", str(path), "--name", name])
    assert words in err and f"at most {ENTRY_NAME_MAX} characters" in err
    assert name not in err and len(err) < 1000  # the name is shown escaped, cut short
    assert not path.exists()


def test_import_commands_take_the_same_names(tmp_path, capsys) -> None:
    m, pj, h5 = tmp_path / "map.txt", tmp_path / "p.json", tmp_path / "f.h5"
    np.savetxt(m, np.arange(12.0).reshape(3, 4) * 1e-6)
    pj.write_text(json.dumps({
        "Sensor center domain LL-x-y": [0.0, 1e-5], "Sensor center domain UR-x-y":
        [3e-6, 1.2e-5], "Scan spacing": 1e-6, "Scan delta-x": 5e-7, "Scan delta-y": 5e-7,
        "Scan height": 4e-6}))
    argv = ["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5), "--name"]
    assert main([*argv, NFD]) == 0
    assert [e.name for e in list_entries(h5)] == [NFC]
    assert "is 10000 characters long" in _refused_option(capsys, [*argv, LONG])
    assert "holds '\\r'" in _refused_option(capsys, [*argv, "a\rb"])


def _recipe(name: str) -> str:
    return textwrap.dedent(f"""
        [scan_defaults]
        center_um = [12500.0, 12500.0]
        size_um = [40.0, 20.0]
        step_um = 20.0
        [[step]]
        kind = "scan"
        name = {json.dumps(name)}
        """)


@pytest.mark.parametrize(("name", "words"), [
    (NFD, "has accents written decomposed ('e\\u0301chantillon')"),
    (LONG, "is 10000 characters long"),
    ("a\u2028b", "holds '\\u2028' (U+2028)"),
])
def test_a_recipe_naming_an_entry_so_is_refused_naming_the_step(tmp_path, capsys, name,
                                                                 words) -> None:
    recipe, path = tmp_path / "r.toml", tmp_path / "s.h5"
    recipe.write_text(_recipe(name), encoding="utf-8")
    assert main(["run", str(recipe), "--out", str(path), "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"{recipe}, step 1" in err and words in err
    assert name not in err or name == NFD  # (a decomposed accent is shown as it looks)
    assert err.count("\n") == 1 and len(err) < 1000
    assert not path.exists()


def test_a_writer_refuses_a_name_an_earlier_entry_has_in_another_form(tmp_path) -> None:
    """An earlier release named an entry with a decomposed accent: a new entry of the same
    name composed would be a second that looks the same; refused, nothing written."""
    path = tmp_path / "s.h5"
    write_map_entry(path, bump_map("rem", (48, 48), 1e-6), kind="scan")
    with h5py.File(path, "a") as f:  # as an earlier release named it
        f.move("rem", NFD)
        f.attrs["default"] = NFD
    before = path.read_bytes()
    with pytest.raises(InputError, match="looks the same as entry"):
        write_map_entry(path, bump_map(NFC, (48, 48), 1e-6), kind="scan")
    assert path.read_bytes() == before
    assert [e.name for e in list_entries(path)] == [NFD]
    assert read_map(path, NFD).bz.shape == (48, 48)


@pytest.mark.parametrize("name", [NFD, LONG, "a\nb"])
def test_entries_an_earlier_release_named_so_still_list_and_read_one_line_each(
        tmp_path, capsys, name) -> None:
    path = tmp_path / "s.h5"
    write_map_entry(path, bump_map("rem", (48, 48), 1e-6), kind="scan")
    with h5py.File(path, "a") as f:
        f.move("rem", name)
        f.attrs["default"] = name
    assert [e.name for e in list_entries(path)] == [name]
    assert read_map(path, name).bz.shape == (48, 48)
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    # the file's line, the entry's one, and under it (its noiseless bump's floor is all the
    # field's bend) one line that names the command measuring its noise, the name quoted
    notes = listing[2:]
    assert len(listing) >= 2 and "[scan, " in listing[1]
    assert len(listing[1]) < 300  # the 10000-character name cut short
    assert len(notes) <= 1 and all(n.startswith("    a repeated scan measures its noise: ")
                                   for n in notes), listing


def test_the_window_composes_a_typed_name_and_refuses_a_long_one(qtbot, tmp_path) -> None:
    from gui.scan_form import ScanForm
    from gui.subtract_dialog import SubtractDialog
    from smm_daq.instruments.profile import load_profile

    form = ScanForm(load_profile())
    qtbot.addWidget(form)
    form.name.setText(f" {NFD} ")
    assert form.plan().name == NFC
    form.name.setText(LONG)
    assert form.checked_plan() is None
    assert "is 10000 characters long" in form.error_text("name")
    path = tmp_path / "s.h5"
    write_map_entry(path, bump_map("rem", (48, 48), 1e-6), kind="scan")
    write_map_entry(path, bump_map("inf", (48, 48), 1e-6, field=(0, 4e-5, 0)), kind="scan")
    dialog = SubtractDialog(list_entries(path))
    qtbot.addWidget(dialog)
    assert dialog.ok_button.isEnabled()
    dialog.name.setText(LONG)
    assert not dialog.ok_button.isEnabled()
    assert "is 10000 characters long" in dialog.problem.text()
    assert LONG not in dialog.problem.text()
    dialog.name.setText(NFD)
    assert dialog.ok_button.isEnabled()
    assert dialog.choice()[2] == NFC


def test_an_earlier_entry_looked_for_composed_is_named_as_the_file_holds_it(tmp_path,
                                                                             capsys) -> None:
    """Typed composed, the name of an earlier release's decomposed entry finds nothing, and
    every listing shows the two alike: the refusal says how to name the entry."""
    path = tmp_path / "s.h5"
    write_map_entry(path, bump_map("rem", (48, 48), 1e-6), kind="scan")
    with h5py.File(path, "a") as f:
        f.move("rem", NFD)
        f.attrs["default"] = NFD
    with pytest.raises(InputError, match=r"name it as the file does, 'e\\u0301chantillon'"):
        read_map(path, NFC)
    assert main(["resume", str(path), "--entry", NFC]) == 2
    err = capsys.readouterr().err
    assert "another Unicode form" in err and "'e\\u0301chantillon'" in err
    assert err.count("\n") == 1


def test_an_mmt_result_named_after_an_earlier_entry_is_composed_or_asks_for_its_name(
        tmp_path, capsys) -> None:
    """`mmt invert` names its result after the scan (SCAN_mmt) where --result-entry gives no
    name: after an earlier release's decomposed entry it is composed, not refused for a name
    nobody typed (the bad grain file is what is refused next); after one of nearly 100
    characters the refusal names --result-entry. Both before the inversion's work."""
    path, grains = tmp_path / "s.h5", tmp_path / "grains.csv"
    x = np.arange(12) * 10e-6
    bz = 1e-6 * np.exp(-((x[None, :] - 55e-6) ** 2 + (x[:, None] - 55e-6) ** 2) / 4e-10)
    near = "n" * 98
    for name in ("a", "b"):
        write_map_entry(path, MapData(bz, x, x, height=20e-6, sensor_size=(0.0, 0.0),
                                      applied_field=np.zeros(3), name=name), kind="scan")
    with h5py.File(path, "a") as f:  # as an earlier release named them
        f.move("a", NFD)
        f.move("b", near)
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8,extra\n")
    invert = ["mmt", "invert", str(path), "--grains", str(grains), "--entry"]
    # the result's name taken: the grain file (read after it, before the work) is what is said
    assert main([*invert, NFD, "--out", str(tmp_path / "a.csv")]) == 2
    err = capsys.readouterr().err
    assert str(grains) in err and "decomposed" not in err
    assert main([*invert, near, "--out", str(tmp_path / "b.csv")]) == 2
    err = capsys.readouterr().err
    assert "is 102 characters long" in err and "expected a name given with --result-entry" in err


def test_info_lists_a_name_of_up_to_the_most_characters_whole(tmp_path, capsys) -> None:
    """A name of 61 to ENTRY_NAME_MAX characters, which a new entry may have, is listed
    whole, to be copied into --entry (it was cut to 40 characters and quoted)."""
    path, name = tmp_path / "s.h5", "long " + "n" * (ENTRY_NAME_MAX - 5)
    assert main([*SCAN, "--out", str(path), "--name", name]) == 0
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith(f"  {name}  [scan, finished]")
