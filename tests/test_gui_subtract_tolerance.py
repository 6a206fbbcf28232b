"""The subtraction window judges zero field by the field tolerance stored with each scan, as
the subtraction it runs does: it neither offers a pair the run refuses nor refuses one the
run makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gui.subtract_dialog import SubtractDialog
from smm_daq.analysis.induced_entry import subtract_entries
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, write_map_entry

GRID = ["--center-um", "12500,12500", "--size-um", "100,100", "--step-um", "50"]
UM = 1e-6
UT = 1e-6
NT = 1e-9
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"


def scans(tmp_path: Path, tolerance_nT: float, fields: dict[str, str]) -> Path:
    """A session file of simulated scans taken with a rig of that field tolerance."""
    text = CONFIG.read_text(encoding="utf-8")
    assert "field_tolerance_nT = 50.0" in text
    profile = tmp_path / "rig.toml"
    profile.write_text(text.replace("field_tolerance_nT = 50.0",
                                    f"field_tolerance_nT = {tolerance_nT!r}"), encoding="utf-8")
    out = tmp_path / "s.h5"
    for name, field in fields.items():
        assert main(["scan", *GRID, "--profile", str(profile), "--field-uT", field, "--name",
                     name, "--out", str(out)]) == 0
    return out


def offered(qtbot, path: Path, in_field: str, remanent: str) -> SubtractDialog:
    dialog = SubtractDialog(list_entries(path))
    qtbot.addWidget(dialog)
    dialog.in_field.setCurrentText(in_field)
    dialog.remanent.setCurrentText(remanent)
    dialog.name.setText("induced")
    return dialog


def test_a_coarse_rigs_weak_field_is_zero_field_in_the_window_too(qtbot, tmp_path) -> None:
    """A rig that sets the field within 500 nT took 'weak' (0.3 µT) in zero field: given as
    the in-field map beside one in 40 µT, the run refuses the pair as the wrong way round,
    and so does the window, before anything is computed."""
    path = scans(tmp_path, 500.0, {"weak": "0,0,0.3", "b": "0,40,0"})
    dialog = offered(qtbot, path, "weak", "b")
    assert not dialog.ok_button.isEnabled()
    assert "other way round" in dialog.problem.text()
    assert ("within its field tolerance, 500 nT, of zero: coils.field_tolerance_nT of the "
            "profile stored with 'weak')") in dialog.problem.text()
    with pytest.raises(InputError, match="other way round"):
        subtract_entries(path, "weak", "b", "induced", register=False)
    for name in ("weak", "b"):  # maps made from the scans keep their fields and tolerance
        assert main(["crop", str(path), "--entry", name, "--name", f"c_{name}",
                     "--x-um", "12450,12550", "--y-um", "12450,12550"]) == 0
    dialog = offered(qtbot, path, "c_weak", "c_b")
    assert ("within its field tolerance, 500 nT, of zero: coils.field_tolerance_nT of the "
            "profile stored with 'weak', which 'c_weak' was made from)") in dialog.problem.text()
    with pytest.raises(InputError, match="500 nT, of zero"):
        subtract_entries(path, "c_weak", "c_b", "induced", register=False)


def test_a_fine_rigs_weak_field_is_a_field_in_the_window_too(qtbot, tmp_path) -> None:
    """A rig that sets the field within 20 nT took 'weak' (30 nT) in a field: the window
    offers it as the in-field map beside one in 40 µT (the 50 nT default had it zero field,
    the pair the wrong way round), and the run makes it."""
    path = scans(tmp_path, 20.0, {"weak": "0,0,0.03", "b": "0,40,0"})
    dialog = offered(qtbot, path, "weak", "b")
    assert dialog.ok_button.isEnabled(), dialog.problem.text()
    subtract_entries(path, "weak", "b", "induced", register=False)
    assert "induced" in [e.name for e in list_entries(path)]


def test_where_no_tolerance_is_stored_the_default_is_named_as_such(qtbot, tmp_path) -> None:
    """Maps whose entries store no profile (imports) are judged by the 50 nT default, and the
    window and the run say so, not that it is their profiles' tolerance."""
    path = tmp_path / "s.h5"
    x = y = np.arange(3) * 50 * UM
    for name, field in (("weak", (0, 0, 30 * NT)), ("b", (0, 40 * UT, 0)), ("z", (0, 0, 0))):
        write_map_entry(path, MapData(bz=np.zeros((3, 3)), x=x, y=y, applied_field=np.array(
            field), name=name), kind="scan")
    dialog = offered(qtbot, path, "weak", "b")
    assert ("within its field tolerance, 50 nT, of zero: the profile's default, as neither "
            "'weak' nor an entry it was made from stores a coils.field_tolerance_nT)"
            ) in dialog.problem.text()
    with pytest.raises(InputError) as refused:
        subtract_entries(path, "z", "weak", "induced", register=False)
    assert ("50 nT each: the profile's default, as neither 'z' nor 'weak' nor an entry they "
            "were made from stores a coils.field_tolerance_nT") in str(refused.value)
    assert "of the profiles" not in str(refused.value)
